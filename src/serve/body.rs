//! The response bodies of the local endpoint, as the AWS Parameters and Secrets Lambda
//! Extension writes them (the AWS SDK for Go's output structs through `encoding/json`):
//! every member present, `null` when absent, times as RFC 3339 strings, and an empty
//! `ResultMetadata`. Code written against the extension reads these unchanged; code that
//! reads the AWS API's own shape finds the same member names. Pure.
//!
//! The body holds a value, so it is built in a buffer reserved once (no reallocation
//! leaves a copy behind) and zeroed when the response is done with it
//! ([`zeroize::Zeroizing`]).

use serde::Serialize;
use std::time::{Duration, UNIX_EPOCH};
use zeroize::Zeroizing;

/// What a parameter's answer says about it.
#[derive(Debug, Clone, Copy)]
pub struct ParameterFacts<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub version: i64,
    /// `String`, `StringList` or `SecureString`.
    pub kind: &'a str,
    pub arn: Option<&'a str>,
    /// Seconds since the epoch.
    pub modified: Option<f64>,
    pub data_type: Option<&'a str>,
    /// `:3` or `:label` when the read named one.
    pub selector: Option<&'a str>,
}

/// What a secret's answer says about it.
#[derive(Debug, Clone, Copy)]
pub struct SecretFacts<'a> {
    pub arn: Option<&'a str>,
    pub name: &'a str,
    pub version_id: Option<&'a str>,
    /// `SecretString`, or with `binary` `SecretBinary` (base64).
    pub value: &'a str,
    pub binary: bool,
    pub stages: &'a [String],
    /// Seconds since the epoch.
    pub created: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ParameterBody<'a> {
    parameter: Parameter<'a>,
    result_metadata: Empty,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Parameter<'a> {
    #[serde(rename = "ARN")]
    arn: Option<&'a str>,
    #[serde(rename = "DataType")]
    data_type: Option<&'a str>,
    #[serde(rename = "LastModifiedDate")]
    modified: Option<String>,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Selector")]
    selector: Option<&'a str>,
    #[serde(rename = "SourceResult")]
    source_result: Option<&'a str>,
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "Value")]
    value: &'a str,
    #[serde(rename = "Version")]
    version: i64,
}

#[derive(Serialize)]
struct SecretBody<'a> {
    #[serde(rename = "ARN")]
    arn: Option<&'a str>,
    #[serde(rename = "CreatedDate")]
    created: Option<String>,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "SecretBinary")]
    binary: Option<&'a str>,
    #[serde(rename = "SecretString")]
    value: Option<&'a str>,
    #[serde(rename = "VersionId")]
    version_id: Option<&'a str>,
    #[serde(rename = "VersionStages")]
    stages: &'a [String],
    #[serde(rename = "ResultMetadata")]
    result_metadata: Empty,
}

/// `seconds` since the epoch as RFC 3339 with milliseconds (`2022-11-16T08:22:40.362Z`).
pub fn rfc3339(seconds: f64) -> Option<String> {
    // Rounded to the millisecond: AWS's times are milliseconds, which f64 seconds do not
    // hold exactly (1668586960.362 is 1668586960.36199…).
    let ms = (seconds * 1000.0).round();
    if !(0.0..=u64::MAX as f64).contains(&ms) {
        return None;
    }
    let at = UNIX_EPOCH.checked_add(Duration::from_millis(ms as u64))?;
    Some(humantime::format_rfc3339_millis(at).to_string())
}

/// JSON of `body` in a buffer sized for `value` escaped at worst (six bytes a character).
fn encode(body: &impl Serialize, value: &str, rest: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 6 + rest + 512));
    // Writing to a Vec cannot fail, and these types always serialise.
    let _ = serde_json::to_writer(&mut *out, body);
    out
}

/// `{"Parameter": {...}, "ResultMetadata": {}}`.
pub fn parameter(f: &ParameterFacts<'_>) -> Zeroizing<Vec<u8>> {
    let rest = f.name.len() + f.arn.map_or(0, str::len) * 2;
    encode(
        &ParameterBody {
            parameter: Parameter {
                arn: f.arn,
                data_type: f.data_type,
                modified: f.modified.and_then(rfc3339),
                name: f.name,
                selector: f.selector,
                source_result: None,
                kind: f.kind,
                value: f.value,
                version: f.version,
            },
            result_metadata: Empty {},
        },
        f.value,
        rest,
    )
}

/// The GetSecretValue answer.
pub fn secret(f: &SecretFacts<'_>) -> Zeroizing<Vec<u8>> {
    let rest = f.name.len() + f.arn.map_or(0, str::len) * 2 + 64 * f.stages.len();
    encode(
        &SecretBody {
            arn: f.arn,
            created: f.created.and_then(rfc3339),
            name: f.name,
            binary: f.binary.then_some(f.value),
            value: (!f.binary).then_some(f.value),
            version_id: f.version_id,
            stages: f.stages,
            result_metadata: Empty {},
        },
        f.value,
        rest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn a_parameter_reads_as_the_extension_writes_it() {
        let body = parameter(&ParameterFacts {
            name: "/app/db",
            value: "s3cr3t \"quoted\" \u{2028}",
            version: 3,
            kind: "SecureString",
            arn: Some("arn:aws:ssm:eu-west-1:111122223333:parameter/app/db"),
            modified: Some(1_668_586_960.362),
            data_type: Some("text"),
            selector: None,
        });
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"Parameter": {
                "ARN": "arn:aws:ssm:eu-west-1:111122223333:parameter/app/db",
                "DataType": "text",
                "LastModifiedDate": "2022-11-16T08:22:40.362Z",
                "Name": "/app/db",
                "Selector": null,
                "SourceResult": null,
                "Type": "SecureString",
                "Value": "s3cr3t \"quoted\" \u{2028}",
                "Version": 3
            }, "ResultMetadata": {}})
        );
        // Reserved once: the value was never copied by a growing buffer.
        assert!(body.capacity() >= body.len());
    }

    #[test]
    fn a_secret_reads_as_the_extension_writes_it() {
        let stages = ["AWSCURRENT".to_owned()];
        let body = secret(&SecretFacts {
            arn: Some("arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/api-AbCdEf"),
            name: "app/api",
            version_id: Some("v-1"),
            value: "{\"key\":\"k\"}",
            binary: false,
            stages: &stages,
            created: None,
        });
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["SecretString"], "{\"key\":\"k\"}");
        assert_eq!(v["VersionStages"], json!(["AWSCURRENT"]));
        assert_eq!(v["CreatedDate"], Value::Null);
        assert_eq!(v["SecretBinary"], Value::Null);
        assert_eq!(v["ResultMetadata"], json!({}));
    }

    #[test]
    fn a_binary_secret_is_secret_binary_and_its_string_null() {
        let stages = ["AWSCURRENT".to_owned()];
        let body = secret(&SecretFacts {
            arn: None,
            name: "app/keystore",
            version_id: Some("v-1"),
            value: "AAEC/w==",
            binary: true,
            stages: &stages,
            created: None,
        });
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["SecretBinary"], "AAEC/w==");
        assert_eq!(v["SecretString"], Value::Null);
    }

    #[test]
    fn times_outside_the_clock_are_left_out() {
        assert_eq!(rfc3339(-1.0), None);
        assert_eq!(rfc3339(f64::NAN), None);
        assert_eq!(rfc3339(0.0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
    }
}
