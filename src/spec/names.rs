//! AWS naming rules: parameter names, paths, selectors, ARNs and Secrets Manager references.
//!
//! Everything here is checked before any call is made, so a typo costs no API call and
//! gets a message that says which rule was broken.

use std::fmt;

/// Prefix under which Parameter Store exposes Secrets Manager secrets.
pub const SECRETS_MANAGER_PREFIX: &str = "/aws/reference/secretsmanager/";

const MAX_NAME_LEN: usize = 1011;
const MAX_ARN_LEN: usize = 2048;
const MAX_LEVELS: usize = 15;
const MAX_LABEL_LEN: usize = 100;
const MAX_SECRET_ID_LEN: usize = 512;

/// A broken naming rule; the message states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is {len} characters long; AWS allows at most {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "contains {found:?}; parameter names may only use letters, digits and the characters _ . - /"
    )]
    BadChar { found: char },
    #[error(
        "contains {found:?}; secret names may only use letters, digits and the characters / _ + = . @ -"
    )]
    BadSecretChar { found: char },
    #[error("must start with / because it contains /")]
    NotFullyQualified,
    #[error("must start with /")]
    PathNotAbsolute,
    #[error("has an empty level (//) or ends with /")]
    EmptyLevel,
    #[error("has {levels} levels; AWS allows at most {MAX_LEVELS}")]
    TooDeep { levels: usize },
    #[error("has an empty selector after ':'; use NAME:VERSION or NAME:LABEL")]
    EmptySelector,
    #[error("has version 0; versions start at 1")]
    VersionZero,
    #[error(
        "has label {label:?}; labels use letters, digits, _ . - (at most 100), must not start with a digit, \"aws\" or \"ssm\""
    )]
    BadLabel { label: String },
    #[error("has an empty #field; write NAME#FIELD to take one key of a JSON value")]
    EmptyField,
    #[error(
        "is not a valid SSM parameter ARN ({reason}); expected arn:PARTITION:ssm:REGION:ACCOUNT:parameter/NAME"
    )]
    BadArn { reason: &'static str },
    #[error("names no secret after {SECRETS_MANAGER_PREFIX}")]
    EmptySecret,
}

/// A version or label after `:` in a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `NAME:3`
    Version(u64),
    /// `NAME:stable`, or a staging label / version id for a Secrets Manager reference.
    Label(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Version(v) => write!(f, "{v}"),
            Selector::Label(l) => f.write_str(l),
        }
    }
}

/// The parts of an ARN that matter to us.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arn {
    pub partition: String,
    pub region: String,
    pub account: String,
}

/// A checked reference to one parameter, as the user wrote it (after `${VAR}` expansion).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamRef {
    /// The parameter name without selector, ARN or field: `/app/prod/db`.
    pub name: String,
    /// Set when the user gave a full ARN (shared, cross-account parameters).
    pub arn: Option<Arn>,
    pub selector: Option<Selector>,
    /// `#field`: one key of a JSON value.
    pub field: Option<String>,
}

impl ParamRef {
    /// The string sent to AWS: name or ARN, with the selector, without the field.
    pub fn request(&self) -> String {
        let mut s = match &self.arn {
            Some(arn) => format!(
                "arn:{}:ssm:{}:{}:parameter{}{}",
                arn.partition,
                arn.region,
                arn.account,
                if self.name.starts_with('/') { "" } else { "/" },
                self.name
            ),
            None => self.name.clone(),
        };
        if let Some(sel) = &self.selector {
            s.push(':');
            s.push_str(&sel.to_string());
        }
        s
    }

    /// True for `/aws/reference/secretsmanager/…` names.
    pub fn is_secrets_manager(&self) -> bool {
        self.name.starts_with(SECRETS_MANAGER_PREFIX)
    }

    /// The region this parameter must be read in, when the ARN fixes it.
    pub fn region(&self) -> Option<&str> {
        self.arn.as_ref().map(|a| a.region.as_str())
    }
}

impl fmt::Display for ParamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.request())?;
        if let Some(field) = &self.field {
            write!(f, "#{field}")?;
        }
        Ok(())
    }
}

/// Parses and checks `NAME`, `NAME:3`, `NAME:label`, `arn:…:parameter/NAME[:sel]`, each with
/// an optional `#field`.
pub fn parse_param_ref(raw: &str) -> Result<ParamRef, NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    let (body, field) = match raw.split_once('#') {
        Some((_, "")) => return Err(NameError::EmptyField),
        Some((body, field)) => (body, Some(field.to_owned())),
        None => (raw, None),
    };
    let (arn, rest) = if let Some(after) = body.strip_prefix("arn:") {
        if body.len() > MAX_ARN_LEN {
            return Err(NameError::TooLong {
                len: body.len(),
                max: MAX_ARN_LEN,
            });
        }
        let (arn, resource) = parse_arn(after)?;
        (Some(arn), resource)
    } else {
        (None, body.to_owned())
    };
    let (name, selector) = match rest.rsplit_once(':') {
        Some((name, sel)) => (name.to_owned(), Some(parse_selector(sel, name)?)),
        None => (rest, None),
    };
    check_name(&name)?;
    Ok(ParamRef {
        name,
        arn,
        selector,
        field,
    })
}

/// Splits `PARTITION:ssm:REGION:ACCOUNT:parameter/NAME…` (after `arn:`) and returns the
/// ARN parts and the name with any selector still on it.
fn parse_arn(after: &str) -> Result<(Arn, String), NameError> {
    let mut parts = after.splitn(5, ':');
    let partition = parts.next().unwrap_or_default();
    let service = parts.next().unwrap_or_default();
    let region = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    let resource = parts.next().unwrap_or_default();
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") && !partition.starts_with("aws-iso") {
        return Err(NameError::BadArn {
            reason: "unknown partition",
        });
    }
    if service != "ssm" {
        return Err(NameError::BadArn {
            reason: "service is not ssm",
        });
    }
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(NameError::BadArn {
            reason: "bad region",
        });
    }
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return Err(NameError::BadArn {
            reason: "account must be 12 digits",
        });
    }
    let Some(name) = resource.strip_prefix("parameter") else {
        return Err(NameError::BadArn {
            reason: "resource is not parameter/NAME",
        });
    };
    let name = match name.strip_prefix('/') {
        // `parameter/app/x` names `/app/x`; `parameter/x` names `x`.
        Some(rest) if rest.contains('/') => name.to_owned(),
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => {
            return Err(NameError::BadArn {
                reason: "no parameter name",
            });
        }
    };
    Ok((
        Arn {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        },
        name,
    ))
}

fn parse_selector(sel: &str, name: &str) -> Result<Selector, NameError> {
    if sel.is_empty() {
        return Err(NameError::EmptySelector);
    }
    if sel.chars().all(|c| c.is_ascii_digit()) {
        return match sel.parse::<u64>() {
            Ok(0) => Err(NameError::VersionZero),
            Ok(v) => Ok(Selector::Version(v)),
            Err(_) => Err(NameError::BadLabel {
                label: sel.to_owned(),
            }),
        };
    }
    let charset_ok = sel.len() <= MAX_LABEL_LEN
        && sel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    // Secrets Manager references take staging labels (AWSCURRENT) and version ids (UUIDs).
    let label_ok = if name.starts_with(SECRETS_MANAGER_PREFIX) {
        charset_ok
    } else {
        let lower = sel.to_ascii_lowercase();
        charset_ok
            && !sel.starts_with(|c: char| c.is_ascii_digit())
            && !lower.starts_with("aws")
            && !lower.starts_with("ssm")
    };
    if label_ok {
        Ok(Selector::Label(sel.to_owned()))
    } else {
        Err(NameError::BadLabel {
            label: sel.to_owned(),
        })
    }
}

/// Checks a parameter name (no selector, no ARN) against AWS's rules.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(secret) = name.strip_prefix(SECRETS_MANAGER_PREFIX) {
        return check_secret_id(secret);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    check_chars(name)?;
    if name.contains('/') {
        if !name.starts_with('/') {
            return Err(NameError::NotFullyQualified);
        }
        check_levels(&name[1..], false)?;
    }
    Ok(())
}

/// Checks a path for GetParametersByPath: absolute, trailing `/` allowed, `/` alone allowed.
pub fn check_path(path: &str) -> Result<(), NameError> {
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    if !path.starts_with('/') {
        return Err(NameError::PathNotAbsolute);
    }
    if path.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: path.len(),
            max: MAX_NAME_LEN,
        });
    }
    check_chars(path)?;
    if path == "/" {
        return Ok(());
    }
    check_levels(&path[1..], true)
}

fn check_chars(s: &str) -> Result<(), NameError> {
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        Some(found) => Err(NameError::BadChar { found }),
        None => Ok(()),
    }
}

/// `rest` is the name after its leading `/`.
fn check_levels(rest: &str, trailing_slash_ok: bool) -> Result<(), NameError> {
    let rest = if trailing_slash_ok {
        rest.strip_suffix('/').unwrap_or(rest)
    } else {
        rest
    };
    let levels: Vec<&str> = rest.split('/').collect();
    if levels.iter().any(|l| l.is_empty()) {
        return Err(NameError::EmptyLevel);
    }
    if levels.len() > MAX_LEVELS {
        return Err(NameError::TooDeep {
            levels: levels.len(),
        });
    }
    Ok(())
}

fn check_secret_id(secret: &str) -> Result<(), NameError> {
    if secret.is_empty() {
        return Err(NameError::EmptySecret);
    }
    if secret.len() > MAX_SECRET_ID_LEN {
        return Err(NameError::TooLong {
            len: secret.len(),
            max: MAX_SECRET_ID_LEN,
        });
    }
    match secret.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-'))
    }) {
        Some(found) => Err(NameError::BadSecretChar { found }),
        None => Ok(()),
    }
}

/// Component-wise: `/a/b` is under `/a`, `/ab` is not.
pub fn is_under(path: &str, dir: &str) -> bool {
    let dir = dir.strip_suffix('/').unwrap_or(dir);
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parsed(s: &str) -> ParamRef {
        match parse_param_ref(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn plain_names_parse_without_selector() {
        let r = parsed("/app/prod/db-password");
        assert_eq!(r.name, "/app/prod/db-password");
        assert_eq!(r.selector, None);
        assert_eq!(r.request(), "/app/prod/db-password");
        assert_eq!(parsed("simple_name.v2").name, "simple_name.v2");
    }

    #[test]
    fn versions_and_labels_are_selectors() {
        assert_eq!(parsed("/a/b:3").selector, Some(Selector::Version(3)));
        assert_eq!(
            parsed("/a/b:stable").selector,
            Some(Selector::Label("stable".into()))
        );
        assert_eq!(parsed("/a/b:stable").request(), "/a/b:stable");
    }

    #[test]
    fn labels_follow_aws_rules() {
        for bad in [
            "/a:aws-x",
            "/a:SSMfoo",
            "/a:1abc",
            "/a:",
            "/a:0",
            "/a:bad label",
        ] {
            assert!(parse_param_ref(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn secrets_manager_references_take_staging_labels_and_fields() {
        let r = parsed("/aws/reference/secretsmanager/prod/db-creds:AWSPREVIOUS#password");
        assert!(r.is_secrets_manager());
        assert_eq!(r.name, "/aws/reference/secretsmanager/prod/db-creds");
        assert_eq!(r.selector, Some(Selector::Label("AWSPREVIOUS".into())));
        assert_eq!(r.field.as_deref(), Some("password"));
        assert_eq!(
            r.request(),
            "/aws/reference/secretsmanager/prod/db-creds:AWSPREVIOUS"
        );
        assert!(parse_param_ref("/aws/reference/secretsmanager/a+b=c@d").is_ok());
        assert_eq!(
            parse_param_ref("/aws/reference/secretsmanager/"),
            Err(NameError::EmptySecret)
        );
    }

    #[test]
    fn arns_keep_region_and_account_and_rebuild_the_same_request() {
        let raw = "arn:aws:ssm:eu-west-1:123456789012:parameter/shared/db:2";
        let r = parsed(raw);
        assert_eq!(r.name, "/shared/db");
        assert_eq!(r.region(), Some("eu-west-1"));
        assert_eq!(r.selector, Some(Selector::Version(2)));
        assert_eq!(r.request(), raw);
        let flat = parsed("arn:aws:ssm:us-east-1:123456789012:parameter/flat");
        assert_eq!(flat.name, "flat");
        assert_eq!(
            flat.request(),
            "arn:aws:ssm:us-east-1:123456789012:parameter/flat"
        );
    }

    #[test]
    fn bad_arns_say_what_is_wrong() {
        let e = parse_param_ref("arn:aws:s3:::bucket").unwrap_err();
        assert!(e.to_string().contains("service is not ssm"), "{e}");
        let e = parse_param_ref("arn:aws:ssm:us-east-1:12:parameter/x").unwrap_err();
        assert!(e.to_string().contains("12 digits"), "{e}");
    }

    #[test]
    fn names_with_bad_characters_name_the_character() {
        let e = parse_param_ref("/app/prod/db password").unwrap_err();
        assert_eq!(e, NameError::BadChar { found: ' ' });
        assert!(e.to_string().contains("' '"));
        assert_eq!(
            parse_param_ref("app/x").unwrap_err(),
            NameError::NotFullyQualified
        );
        assert_eq!(
            parse_param_ref("/app//x").unwrap_err(),
            NameError::EmptyLevel
        );
        assert_eq!(
            parse_param_ref("/app/x/").unwrap_err(),
            NameError::EmptyLevel
        );
        assert_eq!(parse_param_ref("/a#").unwrap_err(), NameError::EmptyField);
    }

    #[test]
    fn depth_and_length_limits_are_enforced() {
        let deep = "/a".repeat(16);
        assert_eq!(
            parse_param_ref(&deep).unwrap_err(),
            NameError::TooDeep { levels: 16 }
        );
        assert!(parse_param_ref(&"/a".repeat(15)).is_ok());
        let long = format!("/{}", "x".repeat(1011));
        assert!(matches!(
            parse_param_ref(&long),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn paths_allow_a_trailing_slash_and_the_root() {
        assert!(check_path("/app/prod/").is_ok());
        assert!(check_path("/app/prod").is_ok());
        assert!(check_path("/").is_ok());
        assert_eq!(check_path("app/"), Err(NameError::PathNotAbsolute));
        assert_eq!(check_path("/app//x/"), Err(NameError::EmptyLevel));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = parse_param_ref(&s);
            let _ = check_path(&s);
        }

        #[test]
        fn valid_names_round_trip_through_request(
            levels in prop::collection::vec("[a-zA-Z0-9_.-]{1,8}", 1..6),
            version in proptest::option::of(1u64..1000),
        ) {
            let name = format!("/{}", levels.join("/"));
            let raw = match version { Some(v) => format!("{name}:{v}"), None => name.clone() };
            let r = parse_param_ref(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&r.name, &name);
            prop_assert_eq!(r.request(), raw);
        }
    }
}
