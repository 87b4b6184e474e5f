//! The wire protocol of `POST /v1/watch` (docs/hub.md): serde types, keys, tokens and the
//! checks of a request, shared by the hub server ([`crate::hub`]) and the sidecar's hub
//! client ([`crate::watch::hub_client`]). Pure: no I/O, no time.

use crate::spec::names::{self, ParamRef};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// The audience of the token a sidecar presents to the hub, unless configured: the hub's
/// `--audience` default and the webhook config's `hub-audience` default.
pub const DEFAULT_AUDIENCE: &str = "ssm-injector-hub";
/// Largest request body, bytes (413 above).
pub const MAX_BODY: usize = 256 * 1024;
/// The path of the long poll (`POST`).
pub const WATCH_PATH: &str = "/v1/watch";
/// Most names in one request.
pub const MAX_NAMES: usize = 1_000;
/// Most paths in one request.
pub const MAX_PATHS: usize = 100;
/// The token of a parameter that does not exist, or of a path with nothing under it.
pub const MISSING: &str = "missing";
/// The token of a key the hub cannot track (listed in `unavailable`).
pub const UNAVAILABLE: &str = "unavailable";

/// A request as sent. Unknown fields are ignored (newer clients, older hubs).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct WatchRequest {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub paths: Vec<PathSpec>,
    /// Key → the token the client has.
    #[serde(default)]
    pub known: BTreeMap<String, String>,
    /// How long the hub may hold the request (clamped to `[0, --max-wait]`).
    #[serde(default)]
    pub wait_seconds: Option<f64>,
}

/// One watched path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PathSpec {
    pub path: String,
    #[serde(default = "yes")]
    pub recursive: bool,
}

fn yes() -> bool {
    true
}

/// An answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WatchResponse {
    /// Every key of the request → its token (`"unavailable"` for the keys in `unavailable`).
    pub versions: BTreeMap<String, String>,
    /// Keys whose token differs from the request's `known` (or that it lacked).
    pub changed: Vec<String>,
    /// Keys the hub cannot track: the client polls them itself.
    pub unavailable: Vec<String>,
    /// Spread the re-fetch of the changed keys over this long (a random point in it).
    pub spread_ms: u64,
    /// The hub's poll interval.
    pub interval_ms: u64,
}

/// The error body of every refusal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// What a client watches: one parameter request or one path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A name or ARN with an optional selector, never a `#field`.
    Name(ParamRef),
    /// Everything under a path, recursively or one level.
    Path { path: String, recursive: bool },
}

impl Key {
    /// A checked name key (a parameter request string, no `#field`).
    pub fn name(raw: &str) -> Result<Key, RequestError> {
        let r = names::parse_param_ref(raw).map_err(|e| RequestError::BadName {
            name: raw.to_owned(),
            reason: e.to_string(),
        })?;
        if r.field.is_some() {
            return Err(RequestError::Field {
                name: raw.to_owned(),
            });
        }
        Ok(Key::Name(r))
    }

    /// A checked path key.
    pub fn path(path: &str, recursive: bool) -> Result<Key, RequestError> {
        names::check_path(path).map_err(|e| RequestError::BadPath {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Key::Path {
            path: path.to_owned(),
            recursive,
        })
    }

    /// Parses the wire form (`name:REQUEST`, `path:PATH:r`, `path:PATH:1`).
    pub fn parse(s: &str) -> Result<Key, RequestError> {
        if let Some(n) = s.strip_prefix("name:") {
            return Key::name(n);
        }
        let bad = || RequestError::BadKey { key: s.to_owned() };
        let p = s.strip_prefix("path:").ok_or_else(bad)?;
        match p.rsplit_once(':') {
            Some((path, "r")) => Key::path(path, true),
            Some((path, "1")) => Key::path(path, false),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Key {
    /// The wire form, used as the key in `known`, `versions` and `changed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Name(r) => write!(f, "name:{}", r.request()),
            Key::Path { path, recursive } => {
                write!(f, "path:{path}:{}", if *recursive { "r" } else { "1" })
            }
        }
    }
}

/// A request that was refused (400); the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body is not a watch request: {0}")]
    Json(String),
    #[error("name {name:?} {reason}")]
    BadName { name: String, reason: String },
    #[error(
        "name {name:?} has a #field; watch the parameter without it (the hub tracks versions, not values)"
    )]
    Field { name: String },
    #[error("path {path:?} {reason}")]
    BadPath { path: String, reason: String },
    #[error("key {key:?} is not name:REQUEST, path:PATH:r or path:PATH:1")]
    BadKey { key: String },
    #[error("{count} names; at most {MAX_NAMES} per request")]
    TooManyNames { count: usize },
    #[error("{count} paths; at most {MAX_PATHS} per request")]
    TooManyPaths { count: usize },
    #[error("nothing to watch: give names or paths")]
    Empty,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Every key, once, sorted.
    pub keys: Vec<Key>,
    /// The client's tokens by key string (only keys of this request).
    pub known: BTreeMap<String, String>,
    /// How long to hold the request at most.
    pub wait: Duration,
}

/// Parses and checks a body. Never panics, whatever the bytes.
pub fn parse(body: &[u8], max_wait: Duration) -> Result<Checked, RequestError> {
    let req: WatchRequest =
        serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    check(req, max_wait)
}

/// Checks a request: limits, every name and path by AWS's rules, `wait_seconds` clamped.
pub fn check(req: WatchRequest, max_wait: Duration) -> Result<Checked, RequestError> {
    if req.names.len() > MAX_NAMES {
        return Err(RequestError::TooManyNames {
            count: req.names.len(),
        });
    }
    if req.paths.len() > MAX_PATHS {
        return Err(RequestError::TooManyPaths {
            count: req.paths.len(),
        });
    }
    if req.names.is_empty() && req.paths.is_empty() {
        return Err(RequestError::Empty);
    }
    let mut keys = BTreeSet::new();
    for n in &req.names {
        keys.insert(Key::name(n)?);
    }
    for p in &req.paths {
        keys.insert(Key::path(&p.path, p.recursive)?);
    }
    let keys: Vec<Key> = keys.into_iter().collect();
    let wanted: BTreeSet<String> = keys.iter().map(Key::to_string).collect();
    let known = req
        .known
        .into_iter()
        .filter(|(k, _)| wanted.contains(k))
        .collect();
    Ok(Checked {
        keys,
        known,
        wait: clamp_wait(req.wait_seconds, max_wait),
    })
}

/// `wait_seconds` within `[0, max_wait]`; absent means `max_wait`.
pub fn clamp_wait(wait_seconds: Option<f64>, max_wait: Duration) -> Duration {
    match wait_seconds {
        None => max_wait,
        Some(s) if s.is_nan() || s <= 0.0 => Duration::ZERO,
        Some(s) if s >= max_wait.as_secs_f64() => max_wait,
        Some(s) => Duration::from_secs_f64(s),
    }
}

/// The token of a path: lowercase hex SHA-256 of the sorted lines `"<name> <version>\n"` of
/// every parameter under it; [`MISSING`] when there is none.
pub fn path_token<'a>(parameters: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    let mut lines: Vec<String> = parameters
        .into_iter()
        .map(|(name, version)| format!("{name} {version}\n"))
        .collect();
    if lines.is_empty() {
        return MISSING.to_owned();
    }
    lines.sort();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for l in &lines {
        ctx.update(l.as_bytes());
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const MAX: Duration = Duration::from_secs(55);

    fn body(v: serde_json::Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn the_documented_example_parses_into_sorted_keys() {
        let c = parse(
            &body(json!({
                "names": ["/app/db", "/app/key:live", "/app/x:3", "/aws/reference/secretsmanager/stripe"],
                "paths": [{"path": "/app/prod/", "recursive": true}],
                "known": {"name:/app/db": "3", "path:/app/prod/:r": "b3f1", "name:/other": "1"},
                "wait_seconds": 25
            })),
            MAX,
        )
        .unwrap();
        let keys: Vec<String> = c.keys.iter().map(Key::to_string).collect();
        assert_eq!(
            keys,
            [
                "name:/app/db",
                "name:/app/key:live",
                "name:/app/x:3",
                "name:/aws/reference/secretsmanager/stripe",
                "path:/app/prod/:r"
            ]
        );
        assert_eq!(c.wait, Duration::from_secs(25));
        // Keys the request does not watch are dropped from known.
        assert_eq!(c.known.len(), 2);
    }

    #[test]
    fn keys_round_trip_through_their_wire_form() {
        for s in [
            "name:/a/b",
            "name:/a/b:live",
            "name:/a/b:3",
            "name:arn:aws:ssm:eu-west-1:111122223333:parameter/shared/db",
            "path:/app/:r",
            "path:/app:1",
            "path:/:r",
        ] {
            assert_eq!(Key::parse(s).unwrap().to_string(), s);
        }
        assert!(Key::parse("value:/a").is_err());
        assert!(Key::parse("path:/a").is_err());
    }

    #[test]
    fn a_field_is_refused_naming_the_name() {
        let e = parse(&body(json!({"names": ["/ok", "/app/db#password"]})), MAX).unwrap_err();
        assert!(matches!(e, RequestError::Field { .. }));
        assert!(e.to_string().contains("/app/db#password"), "{e}");
    }

    #[test]
    fn bad_names_and_paths_are_named_with_the_rule() {
        let e = parse(&body(json!({"names": ["/ok", "/bad name"]})), MAX).unwrap_err();
        assert!(e.to_string().contains("\"/bad name\""), "{e}");
        assert!(e.to_string().contains("letters, digits"), "{e}");
        let e = parse(&body(json!({"paths": [{"path": "relative/"}]})), MAX).unwrap_err();
        assert!(e.to_string().contains("relative/"), "{e}");
        let e = parse(&body(json!({"names": ["/a:0"]})), MAX).unwrap_err();
        assert!(e.to_string().contains("version 0"), "{e}");
    }

    #[test]
    fn limits_are_enforced_with_the_limit_in_the_message() {
        let names: Vec<String> = (0..1001).map(|i| format!("/n{i}")).collect();
        let e = parse(&body(json!({ "names": names })), MAX).unwrap_err();
        assert_eq!(e.to_string(), "1001 names; at most 1000 per request");
        let paths: Vec<_> = (0..101)
            .map(|i| json!({"path": format!("/p{i}/")}))
            .collect();
        let e = parse(&body(json!({ "paths": paths })), MAX).unwrap_err();
        assert_eq!(e, RequestError::TooManyPaths { count: 101 });
        assert_eq!(
            parse(&body(json!({})), MAX).unwrap_err(),
            RequestError::Empty
        );
    }

    #[test]
    fn wait_seconds_is_clamped() {
        assert_eq!(clamp_wait(None, MAX), MAX);
        assert_eq!(clamp_wait(Some(-3.0), MAX), Duration::ZERO);
        assert_eq!(clamp_wait(Some(0.5), MAX), Duration::from_millis(500));
        assert_eq!(clamp_wait(Some(1e300), MAX), MAX);
    }

    #[test]
    fn a_path_token_is_the_sha256_of_the_sorted_lines() {
        // printf '/a/x 2\n/a/y 1\n' | sha256sum
        let t = path_token([("/a/y", 1), ("/a/x", 2)]);
        assert_eq!(
            t,
            "39bd141fdf0882f1b505c852b53753fc11ac3c229b9318a7da2e319e8b03a402"
        );
        assert_eq!(t.len(), 64);
        assert_eq!(t, path_token([("/a/x", 2), ("/a/y", 1)]));
        assert_ne!(t, path_token([("/a/x", 3), ("/a/y", 1)]));
        assert_eq!(path_token([]), MISSING);
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            let _ = parse(v.to_string().as_bytes(), MAX);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&b, MAX);
        }

        #[test]
        fn arbitrary_names_never_panic(names in proptest::collection::vec(".{0,40}", 0..8)) {
            let _ = parse(&body(json!({"names": names, "paths": [{"path": "/x"}]})), MAX);
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[/a-z:#0-9 ]{0,20}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("names".to_owned()),
                        Just("paths".to_owned()),
                        Just("known".to_owned()),
                        Just("wait_seconds".to_owned()),
                        Just("path".to_owned()),
                        Just("recursive".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
