//! The hub's HTTP side: `POST /v1/watch` (the long poll), `/healthz`, `/readyz` and
//! `/metrics`. Served over HTTPS by the shared server ([`crate::https::Server`]).

use super::auth::Identity;
use super::auth::{AuthError, Authorizer, Policy};
use super::metrics::{HubMetrics, Reason};
use super::registry::{Registry, State, Tokens, compare_aligned};
use super::spread::spread;
use crate::https::held::{HeldHandler, HeldRequest};
use crate::https::routes;
use crate::hub_protocol::{self, Checked, ErrorBody, WatchResponse};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Longest time a request waits for the first read of keys new to the hub.
pub const FIRST_READ_LIMIT: Duration = Duration::from_secs(10);
/// Most requests held at once; more are refused with 503.
pub const MAX_WAITING: u64 = 100_000;

/// The hub's settings that answers depend on.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub interval: Duration,
    pub max_wait: Duration,
    pub client_budget: f64,
    pub max_spread: Duration,
    /// Most keys one client may have watched (`--max-keys-per-client`, [`client`]).
    pub max_keys_per_client: usize,
}

/// What the handlers share.
#[derive(Clone)]
pub struct HubState {
    pub registry: Arc<Registry>,
    pub settings: Settings,
    pub authorizer: Arc<dyn Authorizer>,
    pub policy: Arc<dyn Policy>,
    pub metrics: Arc<HubMetrics>,
}

/// The routes (see the module documentation).
pub fn router(state: HubState) -> Router {
    Router::new()
        .route(hub_protocol::WATCH_PATH, post(watch_handler))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found".to_owned()) })
        .with_state(state)
}

fn error(status: StatusCode, message: String) -> Response {
    let body = serde_json::to_string(&ErrorBody { error: message })
        .unwrap_or_else(|_| "{\"error\":\"error\"}".to_owned());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn readyz(AxState(s): AxState<HubState>) -> Response {
    if s.registry.ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no answer from AWS yet",
        )
            .into_response()
    }
}

async fn metrics(AxState(s): AxState<HubState>) -> Response {
    let (watched, waiting) = s.registry.sizes();
    s.metrics.sizes(watched, waiting);
    routes::metrics(s.metrics.encode())
}

/// Who a request counts against for `--max-keys-per-client`: its namespace (`--auth
/// kubernetes`), else the client's IP address (`--auth none`).
pub fn client(identity: &Identity, peer: Option<SocketAddr>) -> String {
    match (&identity.namespace, peer) {
        (Some(namespace), _) => format!("namespace {namespace}"),
        (None, Some(peer)) => format!("address {}", peer.ip()),
        (None, None) => identity.name.clone(),
    }
}

/// The handler of the long poll on the server's small path
/// ([`crate::https::Server::holding`]): no router, no axum handler around the wait, and
/// the request's headers gone before its future is made (a future keeps its arguments for
/// its whole life: see [`watch_answer`]).
pub fn held(state: HubState) -> HeldHandler {
    let state = Arc::new(state);
    Arc::new(move |request: HeldRequest| {
        let bearer = bearer(&request.headers);
        Box::pin(watch_answer(
            state.clone(),
            bearer,
            Some(request.peer),
            request.body,
        ))
    })
}

/// `POST /v1/watch` as the router serves it (a request that went to hyper: another
/// framing, HTTP/1.0); the small path calls [`held`]'s handler. Both answer with
/// [`watch_answer`].
async fn watch_handler(
    AxState(s): AxState<HubState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(peer))| peer);
    let bearer = bearer(&headers);
    drop(headers);
    watch_answer(Arc::new(s), bearer, peer, body).await
}

/// The body arrives whole: the server read it within its limits ([`crate::https::Limits`]:
/// `hub_protocol::MAX_BODY`, `--request-timeout`).
///
/// A held request is the hub's most numerous object, so its future keeps only what its
/// answer needs. An async function keeps its arguments and every local alive across an
/// `.await` for its whole life, so: the arguments are small (the token, not the headers;
/// the state behind one `Arc`), whatever is done with before the wait is dropped before
/// it, and the wait has one suspension point ([`answer`]); the keys are the registry's own
/// strings ([`super::registry::Held::keys`]).
async fn watch_answer(
    s: Arc<HubState>,
    bearer: Option<String>,
    peer: Option<SocketAddr>,
    body: Bytes,
) -> Response {
    let admitted = admit(&s, bearer, peer, body).await;
    let answer = match admitted {
        Ok(checked) => answer(&s, checked).await,
        Err((status, message)) => {
            s.metrics.refused(status.as_u16());
            tracing::debug!(status = status.as_u16(), "watch refused: {message}");
            return error(status, message);
        }
    };
    let body = serde_json::to_string(&answer).unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

type Refusal = (StatusCode, String);

/// The bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

/// Authenticates the client, parses and authorizes its request and registers its keys:
/// the request to hold, or the refusal.
async fn admit(
    s: &HubState,
    bearer: Option<String>,
    peer: Option<SocketAddr>,
    body: Bytes,
) -> Result<Checked, Refusal> {
    let identity = s
        .authorizer
        .authorize(bearer.as_deref())
        .await
        .map_err(|e| match e {
            AuthError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
            AuthError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        })?;
    drop(bearer);
    let checked = hub_protocol::parse(&body, s.settings.max_wait)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    drop(body);
    for key in &checked.keys {
        s.policy
            .check(&identity, key)
            .map_err(|e| (StatusCode::FORBIDDEN, e.to_string()))?;
    }
    if s.registry.sizes().1 >= MAX_WAITING {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_WAITING} requests are waiting already; try another replica or later"),
        ));
    }
    s.registry
        .want_as(
            &client(&identity, peer),
            &checked.keys,
            std::time::Instant::now(),
            s.settings.max_keys_per_client,
        )
        .map_err(|e| (StatusCode::TOO_MANY_REQUESTS, e.to_string()))?;
    Ok(checked)
}

/// Holds the request until a token differs from the client's, the wait is over or the
/// hub stops (its keys are registered already). Keys new to the hub first get (at most
/// [`FIRST_READ_LIMIT`]) their first read.
///
/// One subscription (the registry's, which [`Registry::stop`] also wakes) and one timer,
/// at one suspension point: a held request's future is the hub's most numerous object.
async fn answer(s: &HubState, checked: Checked) -> WatchResponse {
    let Checked { keys, known, wait } = checked;
    let start = tokio::time::Instant::now();
    let held = s.registry.hold(&keys);
    drop(keys);
    let keys = held.keys();
    // The client's tokens, in the order of the keys; the map they came in is dropped (a
    // shadowed binding would live, and be held, until the end of the function).
    let tokens = Tokens::new(keys.iter().map(|k| known.get(&**k).map(String::as_str)));
    drop(known);
    let known = tokens;
    let mut changes = s.registry.subscribe();
    let first_deadline = start + FIRST_READ_LIMIT.min(wait.max(Duration::from_secs(1)));
    let deadline = start + wait;
    let mut first_read = true;
    let names = keys.len() as u64;
    loop {
        changes.borrow_and_update();
        let stopping = s.registry.stopping();
        let now = tokio::time::Instant::now();
        // Keys new to the hub: wait (briefly) for their first read.
        first_read = first_read
            && !stopping
            && now < first_deadline
            && s.registry
                .view_wire(keys)
                .iter()
                .any(|v| v.state == State::Pending);
        let until = if first_read {
            first_deadline
        } else {
            let c = compare_aligned(&s.registry.view_wire(keys), &known);
            let reason = if c.first {
                Some(Reason::First)
            } else if !c.changed.is_empty() {
                Some(Reason::Changed)
            } else if now >= deadline || stopping {
                Some(Reason::Timeout)
            } else {
                None
            };
            if let Some(reason) = reason {
                s.metrics.answered(reason);
                let spread_for = if c.changed.is_empty() {
                    0
                } else {
                    c.watchers.max(1)
                };
                return WatchResponse {
                    versions: c.versions,
                    changed: c.changed,
                    unavailable: c.unavailable,
                    spread_ms: millis(spread(
                        spread_for,
                        names,
                        s.settings.client_budget,
                        s.settings.max_spread,
                    )),
                    interval_ms: millis(s.settings.interval),
                };
            }
            // The comparison (maps of every key's token) is not held while the request
            // waits: it is a temporary of this block.
            deadline
        };
        // The registry's sender lives as long as the registry: `changed` cannot fail here.
        let _ = tokio::time::timeout_at(until, changes.changed()).await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::auth::{AllowAll, AuthError, AuthFuture, Denied, Identity, NamespacePolicy};
    use crate::hub::registry::State;
    use crate::hub_protocol::Key;
    use crate::policy::Prefixes;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    struct NoOne;
    impl Authorizer for NoOne {
        fn authorize<'a>(&'a self, bearer: Option<&'a str>) -> AuthFuture<'a> {
            Box::pin(async move {
                match bearer {
                    Some("good") => Ok(Identity {
                        namespace: Some("apps".into()),
                        name: "web".into(),
                    }),
                    Some("team-a") => Ok(Identity {
                        namespace: Some("team-a".into()),
                        name: "web".into(),
                    }),
                    Some("api-down") => Err(AuthError::Unavailable(
                        "cannot reach the Kubernetes API".into(),
                    )),
                    _ => Err(AuthError::Unauthenticated(
                        "a valid service account token is needed".into(),
                    )),
                }
            })
        }
    }
    struct OnlyApp;
    impl Policy for OnlyApp {
        fn check(&self, _identity: &Identity, key: &Key) -> Result<(), Denied> {
            if key.to_string().starts_with("name:/app/") {
                Ok(())
            } else {
                Err(Denied(format!("{key} is outside /app/")))
            }
        }
    }

    pub(super) fn state(
        authorizer: Arc<dyn Authorizer>,
        policy: Arc<dyn Policy>,
    ) -> (HubState, ()) {
        (
            HubState {
                registry: Arc::new(Registry::new()),
                settings: Settings {
                    interval: Duration::from_secs(30),
                    max_wait: Duration::from_secs(55),
                    client_budget: 20.0,
                    max_spread: Duration::from_secs(300),
                    max_keys_per_client: 1000,
                },
                authorizer,
                policy,
                metrics: Arc::new(HubMetrics::new()),
            },
            (),
        )
    }

    async fn post(s: &HubState, body: Vec<u8>, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut req = axum::http::Request::post("/v1/watch");
        if let Some(b) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        let resp = router(s.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[tokio::test]
    async fn refusals_are_json_with_the_right_status() {
        let (s, _stop) = state(Arc::new(AllowAll), Arc::new(AllowAll));
        let (st, v) = post(&s, body(json!({"names": ["/a#f"]})), None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(v["error"].as_str().unwrap().contains("/a#f"), "{v}");
        let (st, _) = post(&s, b"{not json".to_vec(), None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_client_past_its_most_keys_gets_429_naming_the_limit() {
        let (mut s, _stop) = state(Arc::new(NoOne), Arc::new(AllowAll));
        s.settings.max_keys_per_client = 2;
        let two = body(json!({"names": ["/app/a", "/app/b"], "wait_seconds": 0}));
        let (st, v) = post(&s, two, Some("good")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let third = body(json!({"names": ["/app/a", "/app/c"], "wait_seconds": 0}));
        let (st, v) = post(&s, third.clone(), Some("good")).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(
            e.starts_with("namespace apps has the hub watch 2 names and paths and this request adds 1: at most 2 per client (--max-keys-per-client)"),
            "{e}"
        );
        // Another namespace has its own count.
        let (st, v) = post(&s, third, Some("team-a")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(
            s.metrics
                .encode()
                .contains("hub_refusals_total{status=\"429\"} 1")
        );
        let peer = |ip: [u8; 4]| Some(SocketAddr::from((ip, 4000)));
        let anonymous = Identity {
            namespace: None,
            name: "anonymous".into(),
        };
        assert_eq!(client(&anonymous, peer([10, 0, 0, 7])), "address 10.0.0.7");
        assert_eq!(client(&anonymous, None), "anonymous");
    }

    #[tokio::test]
    async fn the_authorizer_runs_first_and_the_policy_per_key() {
        let (s, _stop) = state(Arc::new(NoOne), Arc::new(OnlyApp));
        let req = body(json!({"names": ["/app/a", "/other/b"], "wait_seconds": 0}));
        let (st, v) = post(&s, req.clone(), None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
        let (st, v) = post(&s, req, Some("good")).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(
            v["error"].as_str().unwrap().contains("name:/other/b"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn refusals_map_to_401_403_and_503_and_count_by_status() {
        let policy = NamespacePolicy::new(Prefixes::from([(
            "team-a".to_owned(),
            vec!["/apps/team-a/".to_owned()],
        )]));
        let (s, _stop) = state(Arc::new(NoOne), Arc::new(policy));
        let own = body(json!({"names": ["/apps/team-a/x"], "wait_seconds": 0}));
        let other = body(json!({"names": ["/apps/team-a/x"], "paths": [{"path": "/apps/"}]}));
        // (case, bearer, body, status, text in the error)
        let cases = [
            (
                "no token",
                None,
                &own,
                StatusCode::UNAUTHORIZED,
                "service account token",
            ),
            (
                "a bad token",
                Some("bad"),
                &own,
                StatusCode::UNAUTHORIZED,
                "needed",
            ),
            (
                "the API server is away",
                Some("api-down"),
                &own,
                StatusCode::SERVICE_UNAVAILABLE,
                "Kubernetes API",
            ),
            (
                "a path above the prefix",
                Some("team-a"),
                &other,
                StatusCode::FORBIDDEN,
                "path:/apps/:r is outside the policy: namespace team-a may only read /apps/team-a/*",
            ),
            (
                "an unlisted namespace",
                Some("good"),
                &own,
                StatusCode::FORBIDDEN,
                "name:/apps/team-a/x: namespace apps has no allowed parameter prefixes",
            ),
            ("own prefix", Some("team-a"), &own, StatusCode::OK, ""),
        ];
        for (case, bearer, req, want, text) in cases {
            let (st, v) = post(&s, req.clone(), bearer).await;
            assert_eq!(st, want, "{case}: {v}");
            if want != StatusCode::OK {
                let e = v["error"].as_str().unwrap_or_default();
                assert!(e.contains(text), "{case}: {e}");
            }
        }
        let m = s.metrics.encode();
        for series in [
            "hub_refusals_total{status=\"401\"} 2",
            "hub_refusals_total{status=\"403\"} 2",
            "hub_refusals_total{status=\"503\"} 1",
        ] {
            assert!(m.contains(series), "{series}:\n{m}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_answers_when_its_key_changes() {
        let (s, _stop) = state(Arc::new(AllowAll), Arc::new(AllowAll));
        let keys = vec![Key::name("/app/a").unwrap()];
        s.registry.want(&keys, std::time::Instant::now());
        s.registry
            .record(vec![("name:/app/a".into(), State::Token("1".into()))]);
        let req = body(json!({"names": ["/app/a"], "known": {"name:/app/a": "1"}}));
        let s2 = s.clone();
        let held = tokio::spawn(async move { post(&s2, req, None).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!held.is_finished(), "nothing changed: still held");
        s.registry
            .record(vec![("name:/app/a".into(), State::Token("2".into()))]);
        let (st, v) = held.await.unwrap();
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["versions"]["name:/app/a"], "2");
        assert_eq!(v["changed"], json!(["name:/app/a"]));
        assert_eq!(v["interval_ms"], 30_000);
        // One watcher with one name: 1 × 1 / 20 s.
        assert_eq!(v["spread_ms"], 50);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unchanged_request_times_out_and_shutdown_answers_at_once() {
        let (s, _stop) = state(Arc::new(AllowAll), Arc::new(AllowAll));
        let keys = vec![Key::name("/app/a").unwrap()];
        s.registry.want(&keys, std::time::Instant::now());
        s.registry
            .record(vec![("name:/app/a".into(), State::Token("1".into()))]);
        let req =
            body(json!({"names": ["/app/a"], "known": {"name:/app/a": "1"}, "wait_seconds": 3}));
        let (st, v) = post(&s, req.clone(), None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["changed"], json!([]));
        let s2 = s.clone();
        let held = tokio::spawn(async move { post(&s2, req, None).await });
        tokio::task::yield_now().await;
        s.registry.stop();
        let (st, _) = held.await.unwrap();
        assert_eq!(st, StatusCode::OK);
        let m = s.metrics.encode();
        assert!(m.contains("hub_answers_total{reason=\"timeout\"} 2"), "{m}");
    }

    /// A held watch's future is the hub's most numerous object: each byte here is a
    /// megabyte at a million held clients. 688 bytes with rustc 1.95; it was 1,552 with the
    /// headers, the request and axum's handler in it (`docs/hub.md`, "Memory").
    #[test]
    fn a_held_watch_keeps_a_small_future() {
        let (s, _stop) = state(Arc::new(AllowAll), Arc::new(AllowAll));
        let handler = held(s);
        let request = HeldRequest {
            peer: "127.0.0.1:1".parse().unwrap(),
            uri: "/v1/watch".parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        let future = handler(request);
        let size = std::mem::size_of_val(&*future);
        assert!(size <= 1024, "a held watch's future takes {size} bytes");
    }
}
