//! What every server answers the same way: `GET /healthz`, and the OpenMetrics answer of
//! `GET /metrics` (each server encodes its own metrics).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The `Content-Type` of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of the plain-text answers (`/healthz`, reasons, `not found`).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// `GET /healthz`: `200 ok` whenever the process is alive and serving. It looks at nothing
/// else (AWS, the API server): a failing dependency must not get a working server
/// restarted; readiness (`/readyz`) is where a server says it cannot serve yet.
pub async fn healthz() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
        "ok\n",
    )
        .into_response()
}

/// `200` with the OpenMetrics `text` (which ends with `# EOF\n`).
pub fn metrics(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn healthz_is_ok_as_plain_text() {
        let answer = healthz().await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], TEXT_CONTENT_TYPE);
        let body = answer.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"ok\n");
    }
}
