//! Push events: an SQS message body → the parameters and secrets it says changed, and
//! which watched keys that can move. Pure: no I/O, no time. docs/hub.md ("Push") lists the
//! accepted shapes, with the AWS pages they come from.
//!
//! | `source` | `detail-type` | names come from |
//! | --- | --- | --- |
//! | `aws.ssm` | `Parameter Store Change` | `detail.name` (any `operation`) |
//! | `aws.ssm` | `AWS API Call via CloudTrail` | `detail.requestParameters.name` / `.names` of [`SSM_CALLS`] |
//! | `aws.secretsmanager` | `Secret Label Updated` | `detail.name`, `resources` |
//! | `aws.secretsmanager` | `AWS API Call via CloudTrail` | `detail.requestParameters.secretId` / `.name`, `detail.responseElements.arn` / `.aRN` of [`SECRET_CALLS`] |
//! | `aws.secretsmanager` | `AWS Service Event via CloudTrail` | `detail.additionalEventData.SecretId`, `detail.serviceEventDetails.secretId`, `resources` of [`SECRET_SERVICE_EVENTS`] |
//!
//! Any of these may come wrapped in an SNS notification (`{"Type": "Notification",
//! "Message": "<the event as a string>"}`). Every other JSON object is [`Parsed::Ignored`];
//! a body that is not a JSON object, or one of the events above without its name, is an
//! [`EventError`]. Errors name the shape, never the body's content.

use super::registry::under;
use crate::hub_protocol::Key;
use crate::spec::names::SECRETS_MANAGER_PREFIX;
use serde_json::{Map, Value};

/// Most names one message may carry (a DeleteParameters call names at most 10).
pub const MAX_CHANGES: usize = 100;

/// Secrets Manager API calls (CloudTrail) that can move a secret's `AWSCURRENT` version or
/// other staging labels, or make a secret appear or disappear.
pub const SECRET_CALLS: &[&str] = &[
    "PutSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "RotateSecret",
    "CreateSecret",
    "DeleteSecret",
    "RestoreSecret",
];

/// Secrets Manager service events (CloudTrail) that move a secret's version.
pub const SECRET_SERVICE_EVENTS: &[&str] = &["RotationSucceeded"];

/// Parameter Store API calls (CloudTrail) that change a parameter's version or labels
/// (for accounts that route CloudTrail instead of `Parameter Store Change`).
pub const SSM_CALLS: &[&str] = &[
    "PutParameter",
    "DeleteParameter",
    "DeleteParameters",
    "LabelParameterVersion",
    "UnlabelParameterVersion",
];

/// Something an event says may have changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// A Parameter Store parameter, by name (`/app/db`; `db` for a name at the root).
    Parameter(String),
    /// A Secrets Manager secret, by name or ARN as the event gives it.
    Secret(String),
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// What may have changed: never empty, sorted, without duplicates.
    Changes(Vec<Change>),
    /// A well-formed message that changes nothing the hub tracks.
    Ignored(Ignored),
}

/// Why a message was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// A JSON object that is no EventBridge event (no `source` or `detail-type`).
    NotAnEvent,
    /// An event of another service.
    OtherSource,
    /// An event of Parameter Store or Secrets Manager that changes no value (a policy
    /// action, a read, a tag, a failed rotation).
    OtherEvent,
    /// A CloudTrail record of a call that failed (`errorCode` set).
    FailedCall,
    /// An SNS subscription or unsubscription confirmation.
    SnsControl,
}

impl Ignored {
    /// A fixed word for logs.
    pub fn label(self) -> &'static str {
        match self {
            Ignored::NotAnEvent => "not_an_event",
            Ignored::OtherSource => "other_source",
            Ignored::OtherEvent => "other_event",
            Ignored::FailedCall => "failed_call",
            Ignored::SnsControl => "sns_control",
        }
    }
}

/// Why a message could not be read. Messages name the shape, never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("a message of {len} bytes is not JSON")]
    NotJson { len: usize },
    #[error("a message of {len} bytes is JSON but not an object")]
    NotObject { len: usize },
    #[error("an SNS notification whose Message is not a JSON object")]
    BadSnsMessage,
    #[error("a {event} event names no {what}")]
    NoName {
        event: &'static str,
        what: &'static str,
    },
    #[error("a {event} event names more than {MAX_CHANGES} parameters or secrets")]
    TooMany { event: &'static str },
}

/// Reads one SQS message body.
pub fn parse(body: &str) -> Result<Parsed, EventError> {
    let value: Value =
        serde_json::from_str(body).map_err(|_| EventError::NotJson { len: body.len() })?;
    let Value::Object(obj) = value else {
        return Err(EventError::NotObject { len: body.len() });
    };
    match str_at(&obj, "Type") {
        Some("Notification") => {
            let inner = str_at(&obj, "Message").ok_or(EventError::BadSnsMessage)?;
            match serde_json::from_str(inner) {
                Ok(Value::Object(event)) => parse_event(&event),
                _ => Err(EventError::BadSnsMessage),
            }
        }
        Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => {
            Ok(Parsed::Ignored(Ignored::SnsControl))
        }
        _ => parse_event(&obj),
    }
}

/// One EventBridge event.
fn parse_event(event: &Map<String, Value>) -> Result<Parsed, EventError> {
    let (Some(source), Some(detail_type)) = (str_at(event, "source"), str_at(event, "detail-type"))
    else {
        return Ok(Parsed::Ignored(Ignored::NotAnEvent));
    };
    let empty = Map::new();
    let detail = match event.get("detail") {
        Some(Value::Object(d)) => d,
        _ => &empty,
    };
    let mut changes = Vec::new();
    let kind = match (source, detail_type) {
        ("aws.ssm", "Parameter Store Change") => {
            const EVENT: &str = "Parameter Store Change";
            push_str(&mut changes, detail.get("name"), Change::Parameter);
            (EVENT, "parameter")
        }
        ("aws.ssm", "AWS API Call via CloudTrail") => {
            const EVENT: &str = "Parameter Store CloudTrail";
            if let Some(skip) = skip_call(detail, SSM_CALLS) {
                return Ok(Parsed::Ignored(skip));
            }
            let request = obj_at(detail, "requestParameters");
            push_str(&mut changes, request.get("name"), Change::Parameter);
            push_strs(&mut changes, request.get("names"), Change::Parameter);
            (EVENT, "parameter")
        }
        ("aws.secretsmanager", "Secret Label Updated") => {
            const EVENT: &str = "Secret Label Updated";
            push_str(&mut changes, detail.get("name"), Change::Secret);
            push_strs(&mut changes, event.get("resources"), Change::Secret);
            (EVENT, "secret")
        }
        ("aws.secretsmanager", "AWS API Call via CloudTrail") => {
            const EVENT: &str = "Secrets Manager CloudTrail";
            if let Some(skip) = skip_call(detail, SECRET_CALLS) {
                return Ok(Parsed::Ignored(skip));
            }
            let request = obj_at(detail, "requestParameters");
            let response = obj_at(detail, "responseElements");
            push_str(&mut changes, request.get("secretId"), Change::Secret);
            push_str(&mut changes, request.get("name"), Change::Secret);
            push_str(&mut changes, response.get("arn"), Change::Secret);
            push_str(&mut changes, response.get("aRN"), Change::Secret);
            (EVENT, "secret")
        }
        ("aws.secretsmanager", "AWS Service Event via CloudTrail") => {
            const EVENT: &str = "Secrets Manager service";
            if let Some(skip) = skip_call(detail, SECRET_SERVICE_EVENTS) {
                return Ok(Parsed::Ignored(skip));
            }
            let additional = obj_at(detail, "additionalEventData");
            let service = obj_at(detail, "serviceEventDetails");
            push_str(&mut changes, additional.get("SecretId"), Change::Secret);
            push_str(&mut changes, service.get("secretId"), Change::Secret);
            push_strs(&mut changes, event.get("resources"), Change::Secret);
            (EVENT, "secret")
        }
        ("aws.ssm" | "aws.secretsmanager", _) => return Ok(Parsed::Ignored(Ignored::OtherEvent)),
        _ => return Ok(Parsed::Ignored(Ignored::OtherSource)),
    };
    let (event, what) = kind;
    changes.sort();
    changes.dedup();
    if changes.is_empty() {
        return Err(EventError::NoName { event, what });
    }
    if changes.len() > MAX_CHANGES {
        return Err(EventError::TooMany { event });
    }
    Ok(Parsed::Changes(changes))
}

/// For a CloudTrail record: why to skip it (a call not in `calls`, or a failed call).
fn skip_call(detail: &Map<String, Value>, calls: &[&str]) -> Option<Ignored> {
    if !str_at(detail, "eventName").is_some_and(|n| calls.contains(&n)) {
        return Some(Ignored::OtherEvent);
    }
    match detail.get("errorCode") {
        None | Some(Value::Null) => None,
        Some(_) => Some(Ignored::FailedCall),
    }
}

fn str_at<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// The object at `key`, or an empty one.
fn obj_at<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match obj.get(key) {
        Some(Value::Object(o)) => o,
        _ => EMPTY.get_or_init(Map::new),
    }
}

/// Adds a non-empty string value.
fn push_str(out: &mut Vec<Change>, v: Option<&Value>, make: fn(String) -> Change) {
    if let Some(s) = v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        out.push(make(s.to_owned()));
    }
}

/// Adds the non-empty strings of an array value.
fn push_strs(out: &mut Vec<Change>, v: Option<&Value>, make: fn(String) -> Change) {
    if let Some(items) = v.and_then(Value::as_array) {
        for item in items {
            push_str(out, Some(item), make);
        }
    }
}

impl Change {
    /// True when this change can move the token of `key`: a parameter moves the keys of
    /// its name (any selector, or an ARN with that name) and of every path it is under; a
    /// secret moves `/aws/reference/secretsmanager/NAME` (any selector) when the event's
    /// name or ARN is that secret's.
    pub fn affects(&self, key: &Key) -> bool {
        match (self, key) {
            (Change::Parameter(name), Key::Name(r)) => !r.is_secrets_manager() && r.name == *name,
            (Change::Parameter(name), Key::Path { path, recursive }) => {
                under(name, path, *recursive)
            }
            (Change::Secret(id), Key::Name(r)) => r
                .name
                .strip_prefix(SECRETS_MANAGER_PREFIX)
                .is_some_and(|watched| same_secret(id, watched)),
            (Change::Secret(_), Key::Path { .. }) => false,
        }
    }
}

/// True when two secret ids (names, ARNs or partial ARNs) can name the same secret.
/// Region and account are not compared: at worst the hub reads one secret it did not need.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (secret_names(a), secret_names(b));
    a.iter()
        .flatten()
        .any(|x| b.iter().flatten().any(|y| x == y))
}

/// The names a secret id can stand for: a name itself; for an ARN
/// (`arn:…:secret:NAME-AbCdEf`), the part after `secret:` as it is (a partial ARN) and
/// without the `-` and six characters Secrets Manager appends.
fn secret_names(id: &str) -> [Option<&str>; 2] {
    if !id.starts_with("arn:") {
        return [Some(id).filter(|s| !s.is_empty()), None];
    }
    let Some((_, tail)) = id.split_once(":secret:") else {
        return [None, None];
    };
    let base = tail
        .len()
        .checked_sub(7)
        .filter(|&i| tail.is_char_boundary(i))
        .and_then(|i| {
            let (base, suffix) = tail.split_at(i);
            let random = suffix.strip_prefix('-')?;
            (!base.is_empty() && random.chars().all(|c| c.is_ascii_alphanumeric())).then_some(base)
        });
    [Some(tail).filter(|s| !s.is_empty()), base]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn changes(body: &str) -> Vec<Change> {
        match parse(body) {
            Ok(Parsed::Changes(c)) => c,
            other => panic!("{body}: {other:?}"),
        }
    }

    fn p(n: &str) -> Change {
        Change::Parameter(n.to_owned())
    }

    fn s(n: &str) -> Change {
        Change::Secret(n.to_owned())
    }

    const ARN: &str = "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db-a1B2c3";

    /// Samples as the AWS documentation shows them (docs/hub.md cites the pages).
    #[test]
    fn documented_samples_name_what_changed() {
        let table: Vec<(&str, Value, Vec<Change>)> = vec![
            (
                "Parameter Store Change, Update (Systems Manager user guide)",
                json!({"version": "0", "id": "9547ef2d-3b7e-4057-b6cb-5fdf09ee7c8f",
                    "detail-type": "Parameter Store Change", "source": "aws.ssm",
                    "account": "123456789012", "time": "2017-05-22T16:44:48Z", "region": "us-east-2",
                    "resources": ["arn:aws:ssm:us-east-2:123456789012:parameter/MyExampleParameter"],
                    "detail": {"operation": "Update", "name": "MyExampleParameter",
                        "type": "String", "description": "Sample Parameter"}}),
                vec![p("MyExampleParameter")],
            ),
            (
                "Parameter Store Change, LabelParameterVersion on a hierarchical name",
                json!({"detail-type": "Parameter Store Change", "source": "aws.ssm",
                    "detail": {"operation": "LabelParameterVersion", "name": "/app/prod/db",
                        "type": "SecureString", "labels": ["live"]}}),
                vec![p("/app/prod/db")],
            ),
            (
                "Parameter Store Change, Delete",
                json!({"detail-type": "Parameter Store Change", "source": "aws.ssm",
                    "detail": {"operation": "Delete", "name": "/app/x", "type": "String"}}),
                vec![p("/app/x")],
            ),
            (
                "Secret Label Updated (Secrets Manager user guide)",
                json!({"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                    "detail-type": "Secret Label Updated", "source": "aws.secretsmanager",
                    "account": "012345678901", "time": "2024-02-06T16:43:48Z", "region": "us-west-2",
                    "resources": ["arn:aws:secretsmanager:us-west-2:012345678901:secret:mySecret-a1b2c3"],
                    "detail": {"name": "mySecret", "labelUpdated": "AWSCURRENT",
                        "versionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}}),
                vec![
                    s("arn:aws:secretsmanager:us-west-2:012345678901:secret:mySecret-a1b2c3"),
                    s("mySecret"),
                ],
            ),
            (
                "PutSecretValue via CloudTrail, by name",
                json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
                    "detail": {"eventSource": "secretsmanager.amazonaws.com",
                        "eventName": "PutSecretValue",
                        "requestParameters": {"secretId": "prod/db", "clientRequestToken": "x"},
                        "responseElements": {"arn": ARN, "versionId": "v2"}}}),
                vec![s(ARN), s("prod/db")],
            ),
            (
                "UpdateSecretVersionStage via CloudTrail, the pre-2024 aRN key",
                json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
                    "detail": {"eventName": "UpdateSecretVersionStage",
                        "requestParameters": {"secretId": ARN, "versionStage": "AWSCURRENT"},
                        "responseElements": {"aRN": ARN}}}),
                vec![s(ARN)],
            ),
            (
                "CreateSecret via CloudTrail names the secret in requestParameters.name",
                json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.secretsmanager",
                    "detail": {"eventName": "CreateSecret", "requestParameters": {"name": "new/one"},
                        "responseElements": null}}),
                vec![s("new/one")],
            ),
            (
                "RotationSucceeded (AWS Service Event via CloudTrail)",
                json!({"version": "0", "id": "dd5fd657-7361-f5d2-0c0f-0fe27390611b",
                    "detail-type": "AWS Service Event via CloudTrail", "source": "aws.secretsmanager",
                    "resources": [],
                    "detail": {"eventVersion": "1.08", "eventSource": "secretsmanager.amazonaws.com",
                        "eventName": "RotationSucceeded", "requestParameters": null,
                        "responseElements": null, "additionalEventData": {"SecretId": ARN},
                        "eventType": "AwsServiceEvent"}}),
                vec![s(ARN)],
            ),
            (
                "RotationSucceeded with serviceEventDetails",
                json!({"detail-type": "AWS Service Event via CloudTrail", "source": "aws.secretsmanager",
                    "detail": {"eventName": "RotationSucceeded",
                        "serviceEventDetails": {"secretId": ARN}}}),
                vec![s(ARN)],
            ),
            (
                "DeleteParameters via CloudTrail",
                json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ssm",
                    "detail": {"eventName": "DeleteParameters",
                        "requestParameters": {"names": ["/a", "/b", "/a"]}}}),
                vec![p("/a"), p("/b")],
            ),
        ];
        for (what, event, want) in table {
            assert_eq!(changes(&event.to_string()), want, "{what}");
            let sns = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t",
                "Message": event.to_string()});
            assert_eq!(changes(&sns.to_string()), want, "{what}, wrapped by SNS");
        }
    }

    #[test]
    fn events_that_change_no_value_are_ignored() {
        let table: Vec<(&str, Value, Ignored)> = vec![
            (
                "EC2 state change",
                json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
                    "detail": {"instance-id": "i-1", "state": "running"}}),
                Ignored::OtherSource,
            ),
            (
                "parameter policy action",
                json!({"source": "aws.ssm", "detail-type": "Parameter Store Policy Action",
                    "detail": {"parameter-name": "/a", "policy-type": "Expiration"}}),
                Ignored::OtherEvent,
            ),
            (
                "GetSecretValue via CloudTrail",
                json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
                    "detail": {"eventName": "GetSecretValue", "requestParameters": {"secretId": "x"}}}),
                Ignored::OtherEvent,
            ),
            (
                "a PutSecretValue that failed",
                json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
                    "detail": {"eventName": "PutSecretValue", "errorCode": "AccessDenied",
                        "requestParameters": {"secretId": "x"}}}),
                Ignored::FailedCall,
            ),
            (
                "RotationFailed",
                json!({"source": "aws.secretsmanager", "detail-type": "AWS Service Event via CloudTrail",
                    "detail": {"eventName": "RotationFailed", "additionalEventData": {"SecretId": "x"}}}),
                Ignored::OtherEvent,
            ),
            (
                "JSON that is no event",
                json!({"hello": "world"}),
                Ignored::NotAnEvent,
            ),
            (
                "SNS subscription confirmation",
                json!({"Type": "SubscriptionConfirmation", "Token": "t", "SubscribeURL": "u"}),
                Ignored::SnsControl,
            ),
        ];
        for (what, event, want) in table {
            assert_eq!(
                parse(&event.to_string()),
                Ok(Parsed::Ignored(want)),
                "{what}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_errors_that_do_not_quote_them() {
        let table: Vec<(&str, String, EventError)> = vec![
            (
                "not JSON",
                "password=hunter2".to_owned(),
                EventError::NotJson { len: 16 },
            ),
            (
                "a JSON string",
                "\"x\"".to_owned(),
                EventError::NotObject { len: 3 },
            ),
            (
                "a change without a name",
                json!({"source": "aws.ssm", "detail-type": "Parameter Store Change",
                    "detail": {"operation": "Update", "name": ""}})
                .to_string(),
                EventError::NoName {
                    event: "Parameter Store Change",
                    what: "parameter",
                },
            ),
            (
                "a rotation without a secret",
                json!({"source": "aws.secretsmanager",
                    "detail-type": "AWS Service Event via CloudTrail",
                    "detail": {"eventName": "RotationSucceeded"}})
                .to_string(),
                EventError::NoName {
                    event: "Secrets Manager service",
                    what: "secret",
                },
            ),
            (
                "an SNS notification around garbage",
                json!({"Type": "Notification", "Message": "hunter2"}).to_string(),
                EventError::BadSnsMessage,
            ),
            (
                "too many names",
                json!({"source": "aws.ssm", "detail-type": "AWS API Call via CloudTrail",
                    "detail": {"eventName": "DeleteParameters", "requestParameters": {
                        "names": (0..=MAX_CHANGES).map(|i| format!("/n{i}")).collect::<Vec<_>>()}}})
                .to_string(),
                EventError::TooMany {
                    event: "Parameter Store CloudTrail",
                },
            ),
        ];
        for (what, body, want) in table {
            let err = parse(&body).expect_err(what);
            assert_eq!(err, want, "{what}");
            assert!(!err.to_string().contains("hunter2"), "{what}: {err}");
        }
    }

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn a_parameter_moves_its_names_and_the_paths_it_is_under() {
        let change = p("/app/db");
        for (k, want) in [
            ("name:/app/db", true),
            ("name:/app/db:live", true),
            ("name:/app/db:3", true),
            (
                "name:arn:aws:ssm:us-east-1:111122223333:parameter/app/db",
                true,
            ),
            ("name:/app/dbx", false),
            ("path:/app/:r", true),
            ("path:/app:1", true),
            ("path:/:1", false),
            ("path:/:r", true),
            ("path:/other/:r", false),
            ("name:/aws/reference/secretsmanager/app/db", false),
        ] {
            assert_eq!(change.affects(&key(k)), want, "{k}");
        }
        assert!(p("root").affects(&key("name:root")));
        assert!(p("root").affects(&key("path:/:1")) == under("root", "/", false));
    }

    #[test]
    fn a_secret_moves_its_references_by_name_or_arn() {
        for (id, k, want) in [
            (
                "prod/db",
                "name:/aws/reference/secretsmanager/prod/db",
                true,
            ),
            (
                "prod/db",
                "name:/aws/reference/secretsmanager/prod/db:AWSPREVIOUS",
                true,
            ),
            (ARN, "name:/aws/reference/secretsmanager/prod/db", true),
            (
                "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db",
                "name:/aws/reference/secretsmanager/prod/db",
                true,
            ),
            (
                ARN,
                "name:/aws/reference/secretsmanager/prod/db-a1B2c3",
                true,
            ),
            (ARN, "name:/aws/reference/secretsmanager/prod", false),
            (
                "prod/db",
                "name:/aws/reference/secretsmanager/prod/dbx",
                false,
            ),
            ("prod/db", "name:/prod/db", false),
            ("prod/db", "path:/aws/reference/secretsmanager/:r", false),
            (
                "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db-a1B2c3-xY9876",
                "name:/aws/reference/secretsmanager/prod/db",
                false,
            ),
            (
                "arn:aws:s3:::bucket",
                "name:/aws/reference/secretsmanager/x",
                false,
            ),
        ] {
            assert_eq!(s(id).affects(&key(k)), want, "{id} {k}");
        }
    }

    /// An event of one of the accepted shapes, for the names given.
    fn event_for(shape: u8, names: &[String]) -> Value {
        let first = names.first().cloned().unwrap_or_default();
        match shape % 5 {
            0 => json!({"source": "aws.ssm", "detail-type": "Parameter Store Change",
                "detail": {"operation": "Update", "name": first, "type": "String"}}),
            1 => json!({"source": "aws.ssm", "detail-type": "AWS API Call via CloudTrail",
                "detail": {"eventName": "DeleteParameters", "requestParameters": {"names": names}}}),
            2 => json!({"source": "aws.secretsmanager", "detail-type": "Secret Label Updated",
                "resources": names, "detail": {"name": first, "labelUpdated": "AWSCURRENT"}}),
            3 => {
                json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
                "detail": {"eventName": "PutSecretValue", "requestParameters": {"secretId": first}}})
            }
            _ => {
                json!({"source": "aws.secretsmanager", "detail-type": "AWS Service Event via CloudTrail",
                "resources": names,
                "detail": {"eventName": "RotationSucceeded", "additionalEventData": {"SecretId": first}}})
            }
        }
    }

    /// What [`event_for`] should parse to.
    fn expected(shape: u8, names: &[String]) -> Vec<Change> {
        let mut out: Vec<Change> = match shape % 5 {
            0 => vec![p(&names[0])],
            1 => names.iter().map(|n| p(n)).collect(),
            3 => vec![s(&names[0])],
            _ => names.iter().map(|n| s(n)).collect(),
        };
        out.sort();
        out.dedup();
        out
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(body in ".{0,400}") {
            let _ = parse(&body);
        }

        #[test]
        fn never_panics_on_event_like_json(
            source in prop::sample::select(vec!["aws.ssm", "aws.secretsmanager", "x"]),
            detail_type in prop::sample::select(vec![
                "Parameter Store Change", "AWS API Call via CloudTrail",
                "AWS Service Event via CloudTrail", "Secret Label Updated", ""]),
            event_name in prop::sample::select(vec!["PutSecretValue", "RotationSucceeded", "DeleteParameters", "?"]),
            junk in ".{0,20}",
            number in any::<i64>(),
            wrap in any::<bool>(),
        ) {
            let event = json!({"source": source, "detail-type": detail_type, "resources": [junk, number],
                "detail": {"eventName": event_name, "name": number, "requestParameters": {"secretId": junk,
                "names": [number, junk]}, "additionalEventData": junk, "errorCode": null}});
            let body = if wrap {
                json!({"Type": "Notification", "Message": event.to_string()}).to_string()
            } else {
                event.to_string()
            };
            if let Ok(Parsed::Changes(c)) = parse(&body) {
                prop_assert!(!c.is_empty() && c.len() <= MAX_CHANGES);
            }
        }

        #[test]
        fn generated_events_round_trip(
            shape in 0u8..5,
            names in prop::collection::vec("/?[a-zA-Z0-9_.-]{1,12}(/[a-zA-Z0-9_.-]{1,12}){0,3}", 1..12),
            wrap in any::<bool>(),
        ) {
            let event = event_for(shape, &names);
            let body = if wrap {
                json!({"Type": "Notification", "Message": event.to_string()}).to_string()
            } else {
                event.to_string()
            };
            prop_assert_eq!(parse(&body), Ok(Parsed::Changes(expected(shape, &names))));
        }

        #[test]
        fn a_secret_arn_names_the_secret_it_was_made_for(
            name in "[a-zA-Z0-9/_+=.@-]{1,40}",
            suffix in "[a-zA-Z0-9]{6}",
        ) {
            let arn = format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-{suffix}");
            prop_assert!(same_secret(&arn, &name));
            prop_assert!(same_secret(&name, &arn));
            prop_assert!(same_secret(&name, &name));
            let other = format!("{name}x");
            prop_assert!(!same_secret(&other, &name));
        }
    }
}
