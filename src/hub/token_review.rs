//! `--auth kubernetes`, the pure part: the TokenReview request, what its answer means,
//! service account usernames, and the cache of successful reviews. No I/O and no clock:
//! times come in as arguments. [`super::token_reviewer`] sends the review with the kube client and
//! hands the outcome here as an [`Answer`].

use super::auth::{AuthError, Identity};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The prefix of a service account's username.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// Longest a successful review is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most reviews cached at once.
pub const CACHE_SIZE: usize = 10_000;
/// Longest token looked at (projected tokens are about 1 KiB).
pub const MAX_TOKEN: usize = 16 * 1024;
/// Longest part of an API server message passed on.
const MAX_MESSAGE: usize = 300;

/// The 401 message when the request carries no token.
pub const NO_TOKEN: &str = "no bearer token: send Authorization: Bearer <a projected service account token>, as the sidecar does with --hub-token-file";

/// The TokenReview for `token`, limited to `audience`, as JSON.
pub fn request_body(token: &str, audience: &str) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: Some(vec![audience.to_owned()]),
        },
        ..Default::default()
    })
}

/// What became of one TokenReview request, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx answer: its body, which should be a TokenReview (it repeats `spec.token`).
    Body(String),
    /// The API server refused or failed the request: the HTTP status and the message of
    /// its `Status`.
    Status { code: u16, message: String },
    /// No answer: the API server at `server` could not be reached (connection, TLS, a
    /// broken answer); `error` says why.
    NoAnswer { server: String, error: String },
    /// The hub's own credentials could not be put on the request (e.g. a token file that
    /// is not a header value); `error` says why.
    Credentials(String),
}

/// What the answer to a TokenReview means: the caller's identity, a 401 (the token is not
/// valid for the hub) or a 503 (the hub cannot tell now). `token` is only used to make
/// sure no message repeats it.
pub fn interpret(answer: Answer, token: &str, audience: &str) -> Result<Identity, AuthError> {
    // Text from outside (the API server, the client library) is redacted and shortened;
    // the hub's own words, which say the fix, are kept whole.
    let outside = |text: &str| shown(text, token);
    let body = match answer {
        Answer::Body(body) => body,
        Answer::Status { code: 401, message } => {
            return Err(AuthError::Unavailable(format!(
                "the Kubernetes API did not accept the hub's own token (HTTP 401: {}); give the hub a valid service account token (--kube-token-file, or the kubeconfig's user)",
                outside(&message)
            )));
        }
        Answer::Status { code: 403, message } => {
            return Err(AuthError::Unavailable(format!(
                "the Kubernetes API refused the hub's TokenReview (HTTP 403: {}); bind the hub's service account to the ClusterRole system:auth-delegator",
                outside(&message)
            )));
        }
        Answer::Status { code, message } => {
            return Err(AuthError::Unavailable(format!(
                "the Kubernetes API answered the hub's TokenReview with HTTP {code} ({}); try again later",
                outside(&message)
            )));
        }
        Answer::NoAnswer { server, error } => {
            return Err(AuthError::Unavailable(format!(
                "cannot reach the Kubernetes API at {} to check the token: {}",
                outside(&server),
                outside(&error)
            )));
        }
        Answer::Credentials(error) => {
            return Err(AuthError::Unavailable(format!(
                "the hub's own credentials for the Kubernetes API cannot be used ({}); the token file must hold the token alone, without a newline",
                outside(&error)
            )));
        }
    };
    let review: TokenReview = serde_json::from_str(&body).map_err(|e| {
        AuthError::Unavailable(format!(
            "the Kubernetes API's answer is not a TokenReview: {}",
            outside(&e.to_string())
        ))
    })?;
    let status = review.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        let why = status
            .error
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "not authenticated".to_owned());
        return Err(AuthError::Unauthenticated(format!(
            "the token was not accepted: {}",
            outside(&why)
        )));
    }
    // An audience-aware API server returns the audiences it checked; none means the
    // token is only good for the API server itself.
    let audiences = status.audiences.unwrap_or_default();
    if !audiences.iter().any(|a| a == audience) {
        return Err(AuthError::Unauthenticated(format!(
            "the token is not for audience {audience}; project a service account token with audience {audience}"
        )));
    }
    let username = status.user.and_then(|u| u.username).unwrap_or_default();
    service_account(&username)
}

/// Why the hub's own token file cannot be used, if it cannot: the kube client sends its
/// content as it is (no trimming), re-reading it every minute.
pub fn check_own_token(text: &str) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        return Err("the file is empty");
    }
    if text.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(
            "the token has a newline, space or control character in it, which the Kubernetes client would send as is; write the token alone (e.g. kubectl create token NAME | tr -d '\\n' > FILE)",
        );
    }
    Ok(())
}

/// `system:serviceaccount:NAMESPACE:NAME` → the identity; any other user is refused (the
/// policy is by namespace, and only service accounts have one).
pub fn service_account(username: &str) -> Result<Identity, AuthError> {
    let refuse = || {
        AuthError::Unauthenticated(format!(
            "user {:?} is not a service account; the hub serves service accounts (system:serviceaccount:NAMESPACE:NAME) only",
            truncate(username)
        ))
    };
    let rest = username
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .ok_or_else(refuse)?;
    let (namespace, name) = rest.split_once(':').ok_or_else(refuse)?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return Err(refuse());
    }
    Ok(Identity {
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    })
}

/// The key a review is cached under: SHA-256 of the token (the token itself is never kept).
pub type CacheKey = [u8; 32];

/// SHA-256 of the token.
pub fn cache_key(token: &str) -> CacheKey {
    let mut key = [0u8; 32];
    key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    key
}

/// How long a successful review of `token` may be reused: [`CACHE_TTL`], or less if the
/// token is a JWT whose `exp` comes sooner (read without checking the signature, which is
/// safe because it can only shorten the time). `now_unix` is the wall clock in seconds.
pub fn lifetime(token: &str, now_unix: u64) -> Duration {
    match jwt_exp(token) {
        Some(exp) => CACHE_TTL.min(Duration::from_secs(exp.saturating_sub(now_unix))),
        None => CACHE_TTL,
    }
}

/// The `exp` claim of a JWT (`header.payload.signature`, base64url), if it has one.
pub fn jwt_exp(token: &str) -> Option<u64> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > MAX_TOKEN {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Successful reviews by [`cache_key`], each until its own deadline; at most `capacity`.
#[derive(Debug)]
pub struct TokenCache {
    entries: HashMap<CacheKey, (Identity, Instant)>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The cached identity, unless it expired (then it is dropped).
    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Identity> {
        match self.entries.get(key) {
            Some((identity, until)) if *until > now => Some(identity.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches `identity` until `until` (nothing if that is not after `now`). When full, the
    /// expired entries go first, then the one that would expire soonest.
    pub fn insert(&mut self, key: CacheKey, identity: Identity, until: Instant, now: Instant) {
        if until <= now || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, u)| *u > now);
            if self.entries.len() >= self.capacity
                && let Some(soonest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, u))| *u)
                    .map(|(k, _)| *k)
            {
                self.entries.remove(&soonest);
            }
        }
        self.entries.insert(key, (identity, until));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_MESSAGE).collect()
}

/// Text from outside as shown in a message: every occurrence of `token` blanked out (before
/// shortening, so no part of it is left), trimmed, shortened; "no message" when empty.
fn shown(text: &str, token: &str) -> String {
    let text = if token.is_empty() {
        text.to_owned()
    } else {
        text.replace(token, "<token>")
    };
    let text = text.trim();
    if text.is_empty() {
        "no message".to_owned()
    } else {
        truncate(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    const AUD: &str = "ssm-injector-hub";

    fn answer(status: serde_json::Value) -> Answer {
        Answer::Body(
            json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": "tok", "audiences": [AUD]},
                "status": status
            })
            .to_string(),
        )
    }

    fn status(code: u16, message: &str) -> Answer {
        Answer::Status {
            code,
            message: message.to_owned(),
        }
    }

    fn jwt(claims: serde_json::Value) -> String {
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b(br#"{"alg":"RS256"}"#),
            b(claims.to_string().as_bytes()),
            b(b"signature")
        )
    }

    #[test]
    fn the_request_is_a_token_review_with_the_audience() {
        let body: serde_json::Value =
            serde_json::from_slice(&request_body("tok", AUD).unwrap()).unwrap();
        assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(body["kind"], "TokenReview");
        assert_eq!(body["spec"], json!({"token": "tok", "audiences": [AUD]}));
    }

    #[test]
    fn an_authenticated_service_account_is_its_namespace_and_name() {
        let body = answer(json!({
            "authenticated": true,
            "user": {"username": "system:serviceaccount:team-a:web", "uid": "1"},
            "audiences": [AUD]
        }));
        assert_eq!(
            interpret(body, "tok", AUD),
            Ok(Identity {
                namespace: Some("team-a".into()),
                name: "web".into()
            })
        );
    }

    #[test]
    fn answers_map_to_401_or_503_without_the_token() {
        let secret = "eyJhbGciOi.secret-token.sig";
        // (case, answer, 401?, text in the message)
        let cases: Vec<(&str, Answer, bool, &str)> = vec![
            (
                "rejected, with the API server's reason",
                answer(
                    json!({"authenticated": false, "error": "[invalid bearer token, token has expired]"}),
                ),
                true,
                "token has expired",
            ),
            (
                "rejected without a reason",
                answer(json!({"authenticated": false})),
                true,
                "not authenticated",
            ),
            (
                "a reason that repeats the token",
                answer(json!({"authenticated": false, "error": format!("bad token {secret}")})),
                true,
                "bad token <token>",
            ),
            (
                "another audience",
                answer(
                    json!({"authenticated": true, "audiences": ["https://kubernetes.default.svc"],
                    "user": {"username": "system:serviceaccount:a:b"}}),
                ),
                true,
                "not for audience ssm-injector-hub",
            ),
            (
                "no audience: a token for the API server only",
                answer(
                    json!({"authenticated": true, "user": {"username": "system:serviceaccount:a:b"}}),
                ),
                true,
                "not for audience",
            ),
            (
                "a person",
                answer(
                    json!({"authenticated": true, "audiences": [AUD], "user": {"username": "alice"}}),
                ),
                true,
                "user \"alice\" is not a service account",
            ),
            (
                "the hub may not review tokens",
                status(
                    403,
                    "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:hub:hub\" cannot create resource",
                ),
                false,
                "bind the hub's service account to the ClusterRole system:auth-delegator",
            ),
            (
                "the hub's own token is refused",
                status(401, "Unauthorized"),
                false,
                "did not accept the hub's own token (HTTP 401: Unauthorized)",
            ),
            (
                "the API server fails",
                status(500, "etcdserver: request timed out"),
                false,
                "HTTP 500 (etcdserver: request timed out)",
            ),
            (
                "a failure without a message",
                status(502, " "),
                false,
                "HTTP 502 (no message)",
            ),
            (
                "a failure message that repeats the token",
                status(500, &format!("cannot review {secret}")),
                false,
                "cannot review <token>",
            ),
            (
                "a long failure message keeps the fix",
                status(403, &"x".repeat(1000)),
                false,
                "; bind the hub's service account to the ClusterRole system:auth-delegator",
            ),
            (
                "a token across the cut of a long message",
                status(500, &format!("{}{secret}", "y".repeat(290))),
                false,
                "HTTP 500 (yyy",
            ),
            (
                "no answer",
                Answer::NoAnswer {
                    server: "https://127.0.0.1:6443/".to_owned(),
                    error: "Connection refused (os error 111)".to_owned(),
                },
                false,
                "cannot reach the Kubernetes API at https://127.0.0.1:6443/ to check the token: Connection refused",
            ),
            (
                "the hub's own token cannot be sent",
                Answer::Credentials(
                    "invalid bearer token: failed to parse header value".to_owned(),
                ),
                false,
                "without a newline",
            ),
            (
                "not JSON",
                Answer::Body("<html>".to_owned()),
                false,
                "not a TokenReview",
            ),
            (
                "another kind",
                Answer::Body(r#"{"apiVersion":"v1","kind":"Status"}"#.to_owned()),
                false,
                "not a TokenReview",
            ),
        ];
        for (case, answer, unauthenticated, text) in cases {
            let e = interpret(answer, secret, AUD).expect_err(case);
            assert_eq!(
                matches!(e, AuthError::Unauthenticated(_)),
                unauthenticated,
                "{case}: {e:?}"
            );
            let m = e.to_string();
            assert!(m.contains(text), "{case}: {m}");
            assert!(!m.contains(&secret[..12]), "{case}: {m}");
            assert!(m.len() < 1000, "{case}: {m}");
        }
    }

    #[test]
    fn the_hubs_own_token_file_must_hold_the_token_alone() {
        assert_eq!(check_own_token("eyJhbGciOi.payload.sig"), Ok(()));
        for (text, why) in [
            ("", "empty"),
            ("\n", "empty"),
            ("eyJ.a.b\n", "newline"),
            (" eyJ.a.b", "newline"),
            ("eyJ.a\u{7f}.b", "control character"),
        ] {
            let e = check_own_token(text).expect_err(text);
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn only_service_account_usernames_are_identities() {
        let ok = service_account("system:serviceaccount:team-a:default").unwrap();
        assert_eq!(ok.namespace.as_deref(), Some("team-a"));
        assert_eq!(ok.name, "default");
        for bad in [
            "",
            "alice",
            "system:serviceaccount:",
            "system:serviceaccount:team-a",
            "system:serviceaccount::web",
            "system:serviceaccount:team-a:",
            "system:serviceaccount:team-a:web:extra",
            "system:node:ip-10-0-0-1",
            "system:serviceaccounts:team-a",
        ] {
            assert!(
                matches!(service_account(bad), Err(AuthError::Unauthenticated(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_cache_lifetime_never_passes_the_tokens_exp() {
        let now = 1_700_000_000;
        assert_eq!(lifetime(&jwt(json!({"exp": now + 3600})), now), CACHE_TTL);
        assert_eq!(
            lifetime(&jwt(json!({"exp": now + 20})), now),
            Duration::from_secs(20)
        );
        assert_eq!(lifetime(&jwt(json!({"exp": now - 5})), now), Duration::ZERO);
        assert_eq!(lifetime(&jwt(json!({"sub": "x"})), now), CACHE_TTL);
        assert_eq!(lifetime("opaque-token", now), CACHE_TTL);
        assert_eq!(lifetime("a.%%%.c", now), CACHE_TTL);
        assert_eq!(jwt_exp(&jwt(json!({"exp": 12.0}))), Some(12));
        assert_eq!(jwt_exp(&jwt(json!({"exp": "soon"}))), None);
        assert_eq!(jwt_exp("a.b.c.d"), None);
    }

    #[test]
    fn the_cache_keeps_reviews_until_their_deadline_and_stays_bounded() {
        let t0 = Instant::now();
        let id = |n: &str| Identity {
            namespace: Some("ns".into()),
            name: n.into(),
        };
        let mut c = TokenCache::new(2);
        let (a, b, d) = (cache_key("a"), cache_key("b"), cache_key("d"));
        assert_ne!(a, b);
        c.insert(a, id("a"), t0 + CACHE_TTL, t0);
        assert_eq!(c.get(&a, t0 + Duration::from_secs(59)), Some(id("a")));
        assert_eq!(c.get(&a, t0 + CACHE_TTL), None, "expired");
        assert!(c.is_empty(), "an expired entry is dropped when seen");

        // Not cached: a deadline already passed.
        c.insert(a, id("a"), t0, t0);
        assert!(c.is_empty());

        // Full: the entry expiring soonest goes.
        c.insert(a, id("a"), t0 + Duration::from_secs(10), t0);
        c.insert(b, id("b"), t0 + Duration::from_secs(60), t0);
        c.insert(d, id("d"), t0 + Duration::from_secs(30), t0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&a, t0), None);
        assert_eq!(c.get(&b, t0), Some(id("b")));
        assert_eq!(c.get(&d, t0), Some(id("d")));

        // Full with an expired entry: that one goes instead.
        let later = t0 + Duration::from_secs(40);
        c.insert(a, id("a"), later + CACHE_TTL, later);
        assert_eq!(c.get(&b, later), Some(id("b")));
        assert_eq!(c.get(&a, later), Some(id("a")));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn the_cache_key_is_the_sha256_of_the_token() {
        // printf 'abc' | sha256sum
        let hex: String = cache_key("abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
