//! `iam-policy`: the least-privilege IAM policy a spec needs, as JSON and as a Terraform
//! `aws_iam_policy_document` data block.
//!
//! Pure: account, region and partition come in as a checked [`Target`]; no AWS call.

use crate::spec::Spec;
use crate::spec::names::{ParamRef, SECRETS_MANAGER_PREFIX};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Where ARNs without their own region and account point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub partition: String,
    pub region: String,
    pub account: String,
}

/// A bad `--account`, `--region`, `--partition` or `--kms-key-arn`; the message names the
/// flag and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    #[error(
        "no AWS account: pass --account ID (or set AWS_ACCOUNT_ID); iam-policy makes no AWS call to look it up"
    )]
    NoAccount,
    #[error("--account {value:?} is not an AWS account id (12 digits)")]
    BadAccount { value: String },
    #[error("no AWS region: pass --region (or set AWS_REGION)")]
    NoRegion,
    #[error("region {value:?} is not an AWS region (like eu-west-1)")]
    BadRegion { value: String },
    #[error("--partition {value:?} is not an AWS partition (aws, aws-cn, aws-us-gov, aws-iso…)")]
    BadPartition { value: String },
    #[error(
        "--kms-key-arn {value:?} is not a KMS key or alias ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID)"
    )]
    BadKmsKeyArn { value: String },
}

use crate::spec::region::is_region;

fn is_partition(p: &str) -> bool {
    matches!(p, "aws" | "aws-cn" | "aws-us-gov")
        || (p.starts_with("aws-iso") && p.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
}

/// The partition a region belongs to (`cn-north-1` -> `aws-cn`).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

impl Target {
    /// Checks the raw values; the partition defaults to the region's.
    pub fn build(
        account: Option<&str>,
        region: Option<&str>,
        partition: Option<&str>,
    ) -> Result<Target, IamError> {
        let account = account.map(str::trim).filter(|a| !a.is_empty());
        let account = account.ok_or(IamError::NoAccount)?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IamError::BadAccount {
                value: account.to_owned(),
            });
        }
        let region = region
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or(IamError::NoRegion)?;
        if !is_region(region) {
            return Err(IamError::BadRegion {
                value: region.to_owned(),
            });
        }
        let partition = partition.unwrap_or_else(|| partition_of(region));
        if !is_partition(partition) {
            return Err(IamError::BadPartition {
                value: partition.to_owned(),
            });
        }
        Ok(Target {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        })
    }
}

/// Checks a `--kms-key-arn` value: `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `alias/NAME`.
pub fn check_kms_key_arn(arn: &str) -> Result<(), IamError> {
    let bad = || IamError::BadKmsKeyArn {
        value: arn.to_owned(),
    };
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(p), Some("kms"), Some(r), Some(a), Some(res)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let res_ok = res
        .strip_prefix("key/")
        .or_else(|| res.strip_prefix("alias/"))
        .is_some_and(|id| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
        });
    let account_ok = a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
    if is_partition(p) && is_region(r) && account_ok && res_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Statement ids, stable across runs.
pub const SID_BY_PATH: &str = "SsmGetParametersByPath";
pub const SID_PARAMETERS: &str = "SsmGetParameters";
pub const SID_SECRETS: &str = "SecretsManagerGetSecretValue";
pub const SID_DECRYPT: &str = "KmsDecryptViaService";

/// `arn:P:ssm:R:A:parameter/NAME` for `/NAME` or `NAME`.
fn parameter_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    let name = name.strip_prefix('/').unwrap_or(name);
    format!("arn:{partition}:ssm:{region}:{account}:parameter/{name}")
}

/// Where a parameter lives: its own ARN's partition, region and account, or the target's.
fn home<'a>(param: &'a ParamRef, target: &'a Target) -> (&'a str, &'a str, &'a str) {
    match &param.arn {
        Some(arn) => (&arn.partition, &arn.region, &arn.account),
        None => (&target.partition, &target.region, &target.account),
    }
}

/// The policy document for `spec`. `kms_keys` narrows `kms:Decrypt` to those keys
/// (default `*`, always limited by `kms:ViaService`).
pub fn policy(spec: &Spec, target: &Target, kms_keys: &[String]) -> Value {
    let t = target;
    let mut by_path = BTreeSet::new();
    let mut parameters = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    // (service, region) pairs for kms:ViaService.
    let mut via = BTreeSet::new();

    for p in &spec.paths {
        let trimmed = p.path.trim_matches('/');
        if trimmed.is_empty() {
            // The root path: everything in the account and region.
            by_path.insert(format!(
                "arn:{}:ssm:{}:{}:parameter/*",
                t.partition, t.region, t.account
            ));
            parameters.insert(format!(
                "arn:{}:ssm:{}:{}:parameter/*",
                t.partition, t.region, t.account
            ));
        } else {
            by_path.insert(parameter_arn(&t.partition, &t.region, &t.account, trimmed));
            parameters.insert(parameter_arn(
                &t.partition,
                &t.region,
                &t.account,
                &format!("{trimmed}/*"),
            ));
        }
        via.insert(("ssm", t.region.clone()));
    }

    for req in &spec.params {
        let (partition, region, account) = home(&req.param, t);
        parameters.insert(parameter_arn(partition, region, account, &req.param.name));
        via.insert(("ssm", region.to_owned()));
        if let Some(secret) = req.param.name.strip_prefix(SECRETS_MANAGER_PREFIX) {
            // Secrets Manager appends a dash and 6 random characters to every secret ARN.
            secrets.insert(format!(
                "arn:{partition}:secretsmanager:{region}:{account}:secret:{secret}-??????"
            ));
            via.insert(("secretsmanager", region.to_owned()));
        }
    }

    let mut statements = Vec::new();
    let statement = |sid: &str, actions: &[&str], resources: &BTreeSet<String>| {
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources.iter().collect::<Vec<_>>(),
        })
    };
    if !by_path.is_empty() {
        statements.push(statement(
            SID_BY_PATH,
            &["ssm:GetParametersByPath"],
            &by_path,
        ));
    }
    if !parameters.is_empty() {
        statements.push(statement(
            SID_PARAMETERS,
            &["ssm:GetParameter", "ssm:GetParameters"],
            &parameters,
        ));
    }
    if !secrets.is_empty() {
        statements.push(statement(
            SID_SECRETS,
            // DescribeSecret: the sidecar's polls read the version id without decrypting.
            &[
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
            ],
            &secrets,
        ));
    }
    if !via.is_empty() {
        let keys: BTreeSet<String> = if kms_keys.is_empty() {
            BTreeSet::from(["*".to_owned()])
        } else {
            kms_keys.iter().cloned().collect()
        };
        let services: Vec<String> = via
            .iter()
            .map(|(service, region)| format!("{service}.{region}.amazonaws.com"))
            .collect();
        let mut s = statement(SID_DECRYPT, &["kms:Decrypt"], &keys);
        s["Condition"] = json!({"StringEquals": {"kms:ViaService": services}});
        statements.push(s);
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A Terraform string literal: escapes `"`, `\`, control characters and template
/// sequences (`${`, `%{`).
fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hcl_list(values: &Value, indent: &str) -> String {
    let items: Vec<String> = values
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(hcl_string).collect())
        .unwrap_or_default();
    if items.len() <= 1 {
        return format!("[{}]", items.join(", "));
    }
    let mut out = String::from("[\n");
    for i in items {
        let _ = writeln!(out, "{indent}  {i},");
    }
    out.push_str(indent);
    out.push(']');
    out
}

/// The policy as a Terraform `data "aws_iam_policy_document" "NAME"` block.
pub fn terraform(policy: &Value, name: &str) -> String {
    let mut out = format!("data \"aws_iam_policy_document\" {} {{\n", hcl_string(name));
    let empty = Vec::new();
    let statements = policy["Statement"].as_array().unwrap_or(&empty);
    for (i, s) in statements.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("  statement {\n");
        if let Some(sid) = s["Sid"].as_str() {
            let _ = writeln!(out, "    sid       = {}", hcl_string(sid));
        }
        let effect = s["Effect"].as_str().unwrap_or("Allow");
        let _ = writeln!(out, "    effect    = {}", hcl_string(effect));
        let _ = writeln!(out, "    actions   = {}", hcl_list(&s["Action"], "    "));
        let _ = writeln!(out, "    resources = {}", hcl_list(&s["Resource"], "    "));
        if let Some(conditions) = s["Condition"].as_object() {
            for (test, vars) in conditions {
                for (variable, values) in vars.as_object().into_iter().flatten() {
                    out.push_str("\n    condition {\n");
                    let _ = writeln!(out, "      test     = {}", hcl_string(test));
                    let _ = writeln!(out, "      variable = {}", hcl_string(variable));
                    let _ = writeln!(out, "      values   = {}", hcl_list(values, "      "));
                    out.push_str("    }\n");
                }
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ParamRequest, PathRequest, names::parse_param_ref};
    use proptest::prelude::*;

    fn target() -> Target {
        Target::build(Some("111122223333"), Some("eu-west-1"), None).unwrap()
    }

    fn spec(paths: &[&str], names: &[&str]) -> Spec {
        Spec {
            region: None,
            paths: paths
                .iter()
                .map(|p| PathRequest {
                    path: p.to_string(),
                    recursive: true,
                    optional: false,
                })
                .collect(),
            params: names
                .iter()
                .enumerate()
                .map(|(i, n)| ParamRequest {
                    key: format!("K{i}"),
                    param: parse_param_ref(n).unwrap(),
                    optional: false,
                })
                .collect(),
            outputs: vec![],
            concurrency: 1,
            budget: Default::default(),
        }
    }

    fn statement<'a>(doc: &'a Value, sid: &str) -> Option<&'a Value> {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
    }

    fn resources(doc: &Value, sid: &str) -> Vec<String> {
        statement(doc, sid).map_or_else(Vec::new, |s| {
            s["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect()
        })
    }

    fn via(doc: &Value) -> Vec<String> {
        statement(doc, SID_DECRYPT).unwrap()["Condition"]["StringEquals"]["kms:ViaService"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_path_gets_by_path_on_itself_and_get_parameters_below_it() {
        let doc = policy(&spec(&["/app/prod/"], &[]), &target(), &[]);
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(
            resources(&doc, SID_BY_PATH),
            ["arn:aws:ssm:eu-west-1:111122223333:parameter/app/prod"]
        );
        assert_eq!(
            resources(&doc, SID_PARAMETERS),
            ["arn:aws:ssm:eu-west-1:111122223333:parameter/app/prod/*"]
        );
        let actions = &statement(&doc, SID_PARAMETERS).unwrap()["Action"];
        assert_eq!(actions, &json!(["ssm:GetParameter", "ssm:GetParameters"]));
        assert!(statement(&doc, SID_SECRETS).is_none());
        assert_eq!(via(&doc), ["ssm.eu-west-1.amazonaws.com"]);
        assert_eq!(resources(&doc, SID_DECRYPT), ["*"]);
    }

    #[test]
    fn the_root_path_is_the_whole_account_and_region() {
        let doc = policy(&spec(&["/"], &[]), &target(), &[]);
        assert_eq!(
            resources(&doc, SID_BY_PATH),
            ["arn:aws:ssm:eu-west-1:111122223333:parameter/*"]
        );
    }

    #[test]
    fn named_parameters_get_exactly_their_arn_without_selector_or_field() {
        let doc = policy(
            &spec(
                &[],
                &["/app/db:3", "/app/db:stable", "/app/json#field", "flat"],
            ),
            &target(),
            &[],
        );
        assert!(statement(&doc, SID_BY_PATH).is_none());
        assert_eq!(
            resources(&doc, SID_PARAMETERS),
            [
                "arn:aws:ssm:eu-west-1:111122223333:parameter/app/db",
                "arn:aws:ssm:eu-west-1:111122223333:parameter/app/json",
                "arn:aws:ssm:eu-west-1:111122223333:parameter/flat",
            ]
        );
    }

    #[test]
    fn arns_keep_their_own_account_and_region_and_add_their_region_to_via_service() {
        let doc = policy(
            &spec(
                &[],
                &[
                    "arn:aws:ssm:us-east-2:444455556666:parameter/shared/db:2",
                    "/app/x",
                ],
            ),
            &target(),
            &[],
        );
        assert_eq!(
            resources(&doc, SID_PARAMETERS),
            [
                "arn:aws:ssm:eu-west-1:111122223333:parameter/app/x",
                "arn:aws:ssm:us-east-2:444455556666:parameter/shared/db",
            ]
        );
        assert_eq!(
            via(&doc),
            ["ssm.eu-west-1.amazonaws.com", "ssm.us-east-2.amazonaws.com"]
        );
    }

    #[test]
    fn secret_references_need_the_reference_parameter_the_secret_and_secretsmanager_via() {
        let doc = policy(
            &spec(
                &[],
                &["/aws/reference/secretsmanager/prod/db-creds:AWSPREVIOUS#password"],
            ),
            &target(),
            &[],
        );
        assert_eq!(
            resources(&doc, SID_PARAMETERS),
            [
                "arn:aws:ssm:eu-west-1:111122223333:parameter/aws/reference/secretsmanager/prod/db-creds"
            ]
        );
        assert_eq!(
            resources(&doc, SID_SECRETS),
            ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-creds-??????"]
        );
        let secrets = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == SID_SECRETS)
            .unwrap();
        assert_eq!(
            secrets["Action"],
            json!([
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue"
            ])
        );
        assert_eq!(
            via(&doc),
            [
                "secretsmanager.eu-west-1.amazonaws.com",
                "ssm.eu-west-1.amazonaws.com"
            ]
        );
    }

    #[test]
    fn resources_are_deduplicated_and_sorted() {
        let doc = policy(
            &spec(&["/b/", "/a/"], &["/z", "/z:2", "/a/x"]),
            &target(),
            &[],
        );
        let r = resources(&doc, SID_PARAMETERS);
        let mut sorted = r.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(r, sorted);
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn kms_keys_narrow_decrypt_but_keep_the_condition() {
        let key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        check_kms_key_arn(key).unwrap();
        let doc = policy(&spec(&["/a/"], &[]), &target(), &[key.to_owned()]);
        assert_eq!(resources(&doc, SID_DECRYPT), [key]);
        assert_eq!(via(&doc), ["ssm.eu-west-1.amazonaws.com"]);
        assert!(check_kms_key_arn("arn:aws:kms:eu-west-1:1:key/x").is_err());
        assert!(check_kms_key_arn("*").is_err());
    }

    #[test]
    fn target_needs_an_account_and_a_region_and_derives_the_partition() {
        assert_eq!(
            Target::build(None, Some("eu-west-1"), None),
            Err(IamError::NoAccount)
        );
        assert!(IamError::NoAccount.to_string().contains("--account"));
        assert!(matches!(
            Target::build(Some("12"), Some("eu-west-1"), None),
            Err(IamError::BadAccount { .. })
        ));
        assert_eq!(
            Target::build(Some("111122223333"), None, None),
            Err(IamError::NoRegion)
        );
        let cn = Target::build(Some("111122223333"), Some("cn-north-1"), None).unwrap();
        assert_eq!(cn.partition, "aws-cn");
        let gov = Target::build(Some("111122223333"), Some("us-gov-west-1"), None).unwrap();
        assert_eq!(gov.partition, "aws-us-gov");
        assert!(matches!(
            Target::build(Some("111122223333"), Some("eu-west-1"), Some("azure")),
            Err(IamError::BadPartition { .. })
        ));
    }

    #[test]
    fn terraform_output_is_a_data_block_with_every_statement_and_condition() {
        let doc = policy(
            &spec(&["/app/prod/"], &["/aws/reference/secretsmanager/s"]),
            &target(),
            &[],
        );
        let tf = terraform(&doc, "ssm_injector");
        assert!(tf.starts_with("data \"aws_iam_policy_document\" \"ssm_injector\" {\n"));
        assert_eq!(tf.matches("  statement {").count(), 4);
        assert!(tf.contains("    sid       = \"SsmGetParametersByPath\"\n"));
        assert!(tf.contains("    actions   = [\"ssm:GetParametersByPath\"]\n"));
        assert!(tf.contains(
            "      \"arn:aws:ssm:eu-west-1:111122223333:parameter/aws/reference/secretsmanager/s\",\n"
        ));
        assert!(tf.contains("\"arn:aws:secretsmanager:eu-west-1:111122223333:secret:s-??????\""));
        assert!(tf.contains("      test     = \"StringEquals\"\n"));
        assert!(tf.contains("      variable = \"kms:ViaService\"\n"));
        assert!(tf.ends_with("  }\n}\n"));
        assert_eq!(tf.matches('{').count(), tf.matches('}').count());
    }

    #[test]
    fn terraform_strings_escape_quotes_and_template_sequences() {
        assert_eq!(hcl_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(hcl_string("${x} %{y} $z"), "\"$${x} %%{y} $z\"");
    }

    /// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` with the parts we emit.
    fn well_formed_arn(r: &str) -> bool {
        let parts: Vec<&str> = r.splitn(6, ':').collect();
        let [arn, p, service, region, account, resource] = parts[..] else {
            return false;
        };
        let resource_ok = match service {
            // Secret names may contain `/` anywhere (even `//`); parameter names may not.
            "ssm" => resource.strip_prefix("parameter/").is_some_and(|n| {
                n.strip_prefix(&SECRETS_MANAGER_PREFIX[1..]).map_or_else(
                    || !n.is_empty() && !n.starts_with('/') && !n.contains("//"),
                    |secret| !secret.is_empty(),
                )
            }),
            "secretsmanager" => resource
                .strip_prefix("secret:")
                .and_then(|n| n.strip_suffix("-??????"))
                .is_some_and(|n| !n.is_empty()),
            _ => false,
        };
        arn == "arn"
            && is_partition(p)
            && is_region(region)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource_ok
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_.-]{1,8}"
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(segment(), 1..4).prop_map(|s| format!("/{}", s.join("/"))),
            segment(),
            prop::collection::vec(segment(), 1..3).prop_map(|s| format!(
                "arn:aws-cn:ssm:cn-north-1:999988887777:parameter/{}:2",
                s.join("/")
            )),
            "[a-zA-Z0-9/_+=.@-]{1,20}".prop_map(|s| format!("{SECRETS_MANAGER_PREFIX}{s}#f")),
        ]
    }

    proptest! {
        #[test]
        fn policy_never_panics_and_every_resource_is_a_well_formed_arn(
            paths in prop::collection::vec(prop::collection::vec(segment(), 0..4), 0..3),
            names in prop::collection::vec(name(), 0..6),
            region in "[a-z]{2}-[a-z]{4,7}-[1-9]",
            account in "[0-9]{12}",
        ) {
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| parse_param_ref(n).is_ok())
                .collect();
            let paths: Vec<String> = paths
                .into_iter()
                .map(|s| if s.is_empty() { "/".to_owned() } else { format!("/{}/", s.join("/")) })
                .collect();
            let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let target = Target::build(Some(&account), Some(&region), None).unwrap();
            let doc = policy(&spec(&path_refs, &name_refs), &target, &[]);
            for s in doc["Statement"].as_array().unwrap() {
                let resources = s["Resource"].as_array().unwrap();
                prop_assert!(!resources.is_empty());
                for r in resources {
                    let r = r.as_str().unwrap();
                    if s["Sid"] == SID_DECRYPT {
                        prop_assert_eq!(r, "*");
                    } else {
                        prop_assert!(well_formed_arn(r), "{}", r);
                    }
                }
            }
            let tf = terraform(&doc, "p");
            prop_assert_eq!(tf.matches("statement {").count(), doc["Statement"].as_array().unwrap().len());
        }
    }
}
