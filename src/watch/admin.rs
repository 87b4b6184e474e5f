//! The sidecar's local HTTP endpoints: `/healthz`, `/readyz` and `/metrics`, served over
//! plain HTTP by the shared server ([`crate::https::Server::http`]).
//!
//! - `GET /healthz` answers `200 ok` whenever the process is alive and serving
//!   ([`crate::https::routes::healthz`]). It does not look at AWS: a failing poll must not
//!   get a working sidecar restarted.
//! - `GET /readyz` answers `503 not ready: no successful render yet` until the first render
//!   has written every file, then `200 ready`. Ready means the files exist and are complete.
//!   While later polls fail (throttling, network, a revoked permission) the files stay as
//!   last written and the sidecar **stays ready**: the application keeps working with the
//!   last good values. With `--stale-after D`, readiness is lost once the last successful
//!   poll is older than `D` (`503 stale: last successful poll Ns ago (limit Ms)`), and comes
//!   back with the next successful poll. Staleness is always visible in `/metrics`
//!   (`ssm_injector_up_to_date`, `ssm_injector_consecutive_failures`,
//!   `ssm_injector_last_success_timestamp_seconds`).
//! - `GET /metrics` answers the OpenMetrics text of [`Metrics`].
//! - Any other path answers `404`; a known path with another method answers `405`.
//!
//! No response ever contains a parameter value or name: the bodies are fixed words, numbers
//! of seconds, and metric labels (operation names and cause labels).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::https::routes::{self, TEXT_CONTENT_TYPE};
use crate::metrics::Metrics;

/// Readiness of the sidecar, as answered by `/readyz`.
///
/// Not ready until the first successful render; then ready for as long as the process runs,
/// unless `stale_after` is set and the last success is older than that. Failed polls are not
/// recorded here: the files keep their last good content, so they do not make the sidecar
/// unready by themselves.
#[derive(Debug)]
pub struct Health {
    /// The last successful render or poll; `None` until the first.
    last_success: Mutex<Option<Instant>>,
    /// `--stale-after`: the longest time since the last success that still counts as ready.
    stale_after: Option<Duration>,
}

impl Health {
    /// Not ready yet. `stale_after` is `--stale-after` (`None`: never stale).
    pub fn new(stale_after: Option<Duration>) -> Health {
        Health {
            last_success: Mutex::new(None),
            stale_after,
        }
    }

    /// Records a successful render or poll finished at `at`; the first call makes the
    /// sidecar ready. An `at` older than one already recorded is ignored.
    pub fn record_success(&self, at: Instant) {
        let mut last = self
            .last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|prev| at > prev) {
            *last = Some(at);
        }
    }

    /// `Ok` when ready at `now`, else the one-line reason (no value, no parameter name).
    pub fn is_ready(&self, now: Instant) -> Result<(), String> {
        let last = *self
            .last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(last) = last else {
            return Err("not ready: no successful render yet".to_owned());
        };
        match self.stale_after {
            Some(limit) => {
                let age = now.saturating_duration_since(last);
                if age > limit {
                    Err(format!(
                        "stale: last successful poll {}s ago (limit {}s)",
                        age.as_secs(),
                        limit.as_secs()
                    ))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The admin endpoints (see the module documentation).
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .with_state(AdminState { metrics, health })
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.health.is_ready(Instant::now()) {
        Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    routes::metrics(state.metrics.encode())
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::https::routes::OPENMETRICS_CONTENT_TYPE;
    use crate::source::{CallObserver, Operation};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(stale_after: Option<Duration>) -> (Arc<Metrics>, Arc<Health>, Router) {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new(stale_after));
        let router = router(metrics.clone(), health.clone());
        (metrics, health, router)
    }

    async fn call(router: Router, method: &str, uri: &str) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.expect("body");
        let body = String::from_utf8(body.to_bytes().to_vec()).expect("utf-8");
        (status, content_type, body)
    }

    fn ago(secs: u64) -> Instant {
        Instant::now()
            .checked_sub(Duration::from_secs(secs))
            .expect("the monotonic clock is older than the test")
    }

    #[test]
    fn health_is_not_ready_before_the_first_success() {
        let health = Health::new(None);
        assert_eq!(
            health.is_ready(Instant::now()),
            Err("not ready: no successful render yet".to_owned())
        );
    }

    #[test]
    fn health_without_stale_after_stays_ready_forever() {
        let health = Health::new(None);
        let t = Instant::now();
        health.record_success(t);
        assert_eq!(
            health.is_ready(t + Duration::from_secs(365 * 86_400)),
            Ok(())
        );
    }

    #[test]
    fn health_turns_stale_after_the_limit_and_recovers_on_success() {
        let health = Health::new(Some(Duration::from_secs(300)));
        let t = Instant::now();
        health.record_success(t);
        assert_eq!(health.is_ready(t + Duration::from_secs(300)), Ok(()));
        assert_eq!(
            health.is_ready(t + Duration::from_secs(301)),
            Err("stale: last successful poll 301s ago (limit 300s)".to_owned())
        );
        health.record_success(t + Duration::from_secs(400));
        assert_eq!(health.is_ready(t + Duration::from_secs(401)), Ok(()));
    }

    #[test]
    fn an_older_success_does_not_move_the_last_success_back() {
        let health = Health::new(Some(Duration::from_secs(10)));
        let t = Instant::now();
        health.record_success(t + Duration::from_secs(100));
        health.record_success(t);
        assert_eq!(health.is_ready(t + Duration::from_secs(105)), Ok(()));
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_before_ready() {
        let (_, _, router) = app(None);
        let (status, content_type, body) = call(router, "GET", "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, TEXT_CONTENT_TYPE);
        assert_eq!(body, "ok\n");
    }

    #[tokio::test]
    async fn readyz_is_503_before_the_first_good_render() {
        let (_, _, router) = app(None);
        let (status, _, body) = call(router, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: no successful render yet\n");
    }

    #[tokio::test]
    async fn readyz_is_200_after_a_good_render() {
        let (_, health, router) = app(Some(Duration::from_secs(300)));
        health.record_success(Instant::now());
        let (status, _, body) = call(router, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ready\n");
    }

    #[tokio::test]
    async fn readyz_stays_200_while_polls_fail_without_stale_after() {
        let (metrics, health, router) = app(None);
        health.record_success(ago(3_600));
        metrics.poll_failed("unreachable");
        let (status, _, body) = call(router, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ready\n");
    }

    #[tokio::test]
    async fn readyz_is_503_when_the_last_success_is_older_than_stale_after() {
        let (_, health, router) = app(Some(Duration::from_secs(5)));
        health.record_success(ago(60));
        let (status, _, body) = call(router, "GET", "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("stale: last successful poll 6")
                && body.ends_with("s ago (limit 5s)\n"),
            "{body:?}"
        );
        assert_eq!(body.lines().count(), 1);
    }

    #[tokio::test]
    async fn metrics_answers_openmetrics_text() {
        let (metrics, _, router) = app(None);
        metrics.observe(Operation::GetParameters, None);
        let (status, content_type, body) = call(router, "GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
        assert!(
            body.contains(
                "ssm_injector_api_calls_total{operation=\"GetParameters\",outcome=\"ok\"} 1\n"
            ),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        for uri in ["/", "/metrics/x", "/healthz/", "/debug/pprof", "/READYZ"] {
            let (_, _, router) = app(None);
            let (status, _, body) = call(router, "GET", uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(body, "not found\n", "{uri}");
        }
    }

    #[tokio::test]
    async fn other_methods_on_known_paths_are_405() {
        let (_, _, router) = app(None);
        let (status, _, _) = call(router, "POST", "/metrics").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
