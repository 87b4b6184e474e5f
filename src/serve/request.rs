//! A local read, as the AWS Parameters and Secrets Lambda Extension takes it: the method,
//! path and query of a request → what is asked, or the refusal (status and message).
//! Pure: the server checks the token ([`super::token`]) and then calls [`route`].
//!
//! - `GET /systemsmanager/parameters/get?name=NAME[&withDecryption=true][&version=N|&label=L]`
//!   (also with a `/` before `?`): the name is a parameter name or ARN, percent-encoded;
//!   `version` and `label` are separate parameters and, as the extension documents, only
//!   the first of them is used when both are given.
//! - `GET /secretsmanager/get?secretId=ID[&versionStage=S|&versionId=V]`.
//! - `GET /ping`: `200 healthy`, as the AWS Secrets Manager Agent answers (no token).
//!
//! Unknown query parameters are refused (a typo such as `withdecryption` would otherwise
//! silently read the encrypted value), as the Secrets Manager Agent does.

use crate::spec::names::{NameError, ParamRef, SECRETS_MANAGER_PREFIX, Selector, parse_param_ref};

/// The route of a parameter read.
pub const PARAMETER_PATH: &str = "/systemsmanager/parameters/get";
/// The route of a secret read.
pub const SECRET_PATH: &str = "/secretsmanager/get";
/// The health route (no token).
pub const PING_PATH: &str = "/ping";

/// Longest query accepted (a name is at most 2,048 characters as an ARN, percent-encoded
/// three times over, plus the other parameters).
pub const MAX_QUERY: usize = 8 * 1024;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Parameter(ParameterRead),
    Secret(SecretRead),
    Ping,
}

/// `GET /systemsmanager/parameters/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterRead {
    /// The checked name (or ARN) with the selector of `version` / `label`, if any.
    pub param: ParamRef,
    /// `withDecryption=true`.
    pub decrypt: bool,
}

/// `GET /secretsmanager/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRead {
    /// The secret's name or ARN.
    pub id: String,
    pub version_stage: Option<String>,
    pub version_id: Option<String>,
}

impl SecretRead {
    /// The Parameter Store reference of the secret, as a spec names it
    /// (`/aws/reference/secretsmanager/ID`), when `id` is a name.
    pub fn reference(&self) -> Option<String> {
        (!self.id.starts_with("arn:")).then(|| format!("{SECRETS_MANAGER_PREFIX}{}", self.id))
    }

    /// True when the current version is asked for (no stage, or `AWSCURRENT`, and no id).
    pub fn is_current(&self) -> bool {
        self.version_id.is_none()
            && self
                .version_stage
                .as_deref()
                .is_none_or(|s| s == "AWSCURRENT")
    }
}

/// A request refused before any lookup: the status and a one-line message (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// What `method`, `path` and `query` ask for.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, Refusal> {
    let path = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let known = matches!(path, PARAMETER_PATH | SECRET_PATH | PING_PATH);
    if !known {
        return Err(refuse(
            404,
            format!("not found: {PARAMETER_PATH}, {SECRET_PATH} and {PING_PATH} are served"),
        ));
    }
    if method != "GET" {
        return Err(refuse(405, "method not allowed: use GET"));
    }
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY {
        return Err(refuse(
            414,
            format!("the query is longer than {MAX_QUERY} bytes"),
        ));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match path {
        PARAMETER_PATH => parameter(&pairs).map(Route::Parameter),
        SECRET_PATH => secret(&pairs).map(Route::Secret),
        _ => Ok(Route::Ping),
    }
}

/// The one value of `key` (the last when repeated, as the Secrets Manager Agent takes it).
fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn only_known(pairs: &[(String, String)], known: &[&str]) -> Result<(), Refusal> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(refuse(
            400,
            format!("unknown parameter: {k:?}; use {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn parameter(pairs: &[(String, String)]) -> Result<ParameterRead, Refusal> {
    only_known(pairs, &["name", "withDecryption", "version", "label"])?;
    let name = value(pairs, "name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| refuse(400, "missing parameter name: ?name=/app/prod/db_password"))?;
    let decrypt = match value(pairs, "withDecryption")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(refuse(
                400,
                format!("withDecryption {other:?} is not true or false"),
            ));
        }
    };
    let bad = |e: NameError| refuse(400, format!("name {name:?} {e}"));
    let mut param = parse_param_ref(name).map_err(bad)?;
    if param.field.is_some() {
        return Err(refuse(
            400,
            format!("name {name:?}: # is not part of a parameter name"),
        ));
    }
    // The first of version and label in the query (the extension's documented rule).
    let selector = pairs.iter().find_map(|(k, v)| match k.as_str() {
        "version" => Some(("version", v)),
        "label" => Some(("label", v)),
        _ => None,
    });
    if let Some((kind, v)) = selector {
        if param.selector.is_some() {
            return Err(refuse(
                400,
                format!("name {name:?} has a selector already; drop {kind}"),
            ));
        }
        let with = parse_param_ref(&format!("{}:{v}", param.name))
            .map_err(|e| refuse(400, format!("{kind} {v:?}: the name with it {e}")))?;
        match (kind, &with.selector) {
            ("version", Some(Selector::Version(_))) | ("label", Some(Selector::Label(_))) => {}
            _ => {
                return Err(refuse(400, format!("{kind} {v:?} is not a {kind}")));
            }
        }
        param.selector = with.selector;
    }
    Ok(ParameterRead { param, decrypt })
}

/// Longest secret id (an ARN) Secrets Manager takes.
const MAX_SECRET_ID: usize = 2048;

fn secret(pairs: &[(String, String)]) -> Result<SecretRead, Refusal> {
    only_known(pairs, &["secretId", "versionStage", "versionId"])?;
    let id = value(pairs, "secretId")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| refuse(400, "missing parameter secretId: ?secretId=my-app/prod/db"))?;
    if id.len() > MAX_SECRET_ID || id.chars().any(char::is_control) {
        return Err(refuse(400, "secretId is not a secret name or ARN"));
    }
    let stage = value(pairs, "versionStage").filter(|s| !s.is_empty());
    let version_id = value(pairs, "versionId").filter(|s| !s.is_empty());
    if stage.is_some() && version_id.is_some() {
        return Err(refuse(400, "give versionStage or versionId, not both"));
    }
    Ok(SecretRead {
        id: id.to_owned(),
        version_stage: stage.map(str::to_owned),
        version_id: version_id.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(q: &str) -> Result<ParameterRead, Refusal> {
        match route("GET", PARAMETER_PATH, Some(q))? {
            Route::Parameter(p) => Ok(p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_parameter_read_takes_the_name_decryption_and_the_first_selector() {
        let p = param("name=%2Fapp%2Fprod%2Fdb&withDecryption=true").unwrap();
        assert_eq!(
            (p.param.request(), p.decrypt),
            ("/app/prod/db".to_owned(), true)
        );
        let p = param("name=/app/db&version=3&label=stable").unwrap();
        assert_eq!(p.param.request(), "/app/db:3");
        let p = param("name=/app/db&label=stable&version=3").unwrap();
        assert_eq!(p.param.request(), "/app/db:stable");
        assert!(!param("name=/app/db").unwrap().decrypt);
        let arn = "arn:aws:ssm:eu-west-1:111122223333:parameter/app/db";
        assert_eq!(param(&format!("name={arn}")).unwrap().param.request(), arn);
        // The trailing-slash form of the route.
        assert!(route("GET", "/systemsmanager/parameters/get/", Some("name=/a")).is_ok());
    }

    #[test]
    fn bad_reads_are_refused_with_the_status_and_the_rule() {
        for (q, status, says) in [
            ("", 400, "missing parameter name"),
            ("name=", 400, "missing parameter name"),
            ("name=/a&withdecryption=true", 400, "unknown parameter"),
            ("name=/a&withDecryption=yes", 400, "withDecryption"),
            ("name=/a&version=0", 400, "version"),
            ("name=/a&version=x", 400, "not a version"),
            ("name=/a&label=3", 400, "not a label"),
            ("name=/a:3&version=4", 400, "selector already"),
            ("name=/a%23b", 400, "#"),
            ("name=a b", 400, "name"),
        ] {
            let r = param(q).unwrap_err();
            assert_eq!(r.status, status, "{q}: {r:?}");
            assert!(r.message.contains(says), "{q}: {}", r.message);
        }
        assert_eq!(route("POST", PARAMETER_PATH, None).unwrap_err().status, 405);
        assert_eq!(route("GET", "/v1/x", None).unwrap_err().status, 404);
        assert_eq!(route("GET", "/", None).unwrap_err().status, 404);
        let long = format!("name=/{}", "a".repeat(MAX_QUERY));
        assert_eq!(
            route("GET", PARAMETER_PATH, Some(&long))
                .unwrap_err()
                .status,
            414
        );
    }

    #[test]
    fn a_secret_read_takes_the_id_and_one_version() {
        let Route::Secret(s) = route("GET", SECRET_PATH, Some("secretId=my%2Fdb")).unwrap() else {
            panic!()
        };
        assert_eq!(
            s.reference().as_deref(),
            Some("/aws/reference/secretsmanager/my/db")
        );
        assert!(s.is_current());
        let Route::Secret(s) = route(
            "GET",
            SECRET_PATH,
            Some("secretId=x&versionStage=AWSPREVIOUS"),
        )
        .unwrap() else {
            panic!()
        };
        assert!(!s.is_current());
        for q in [
            "",
            "secretId=",
            "secretId=x&versionStage=A&versionId=B",
            "secretId=x&stage=A",
        ] {
            assert_eq!(
                route("GET", SECRET_PATH, Some(q)).unwrap_err().status,
                400,
                "{q}"
            );
        }
        assert_eq!(route("GET", PING_PATH, None), Ok(Route::Ping));
    }

    proptest::proptest! {
        #[test]
        fn any_request_line_is_routed_or_refused_without_panic(
            method in "[A-Z]{0,8}",
            path in "(/[a-z/]{0,40})|(/systemsmanager/parameters/get/?)|(/secretsmanager/get)",
            query in proptest::option::of(".{0,200}"),
        ) {
            match route(&method, &path, query.as_deref()) {
                Ok(_) => proptest::prop_assert_eq!(method.as_str(), "GET"),
                Err(r) => proptest::prop_assert!((400..500).contains(&r.status)),
            }
        }
    }
}
