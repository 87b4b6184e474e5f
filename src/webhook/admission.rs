//! The webhook's routes: `POST /mutate` decodes the AdmissionReview, calls the pure
//! [`inject::mutate`] and encodes its decision; `GET /healthz`; `GET /metrics`.
//!
//! `/mutate` never answers 500 and never panics on input:
//! - a body that is not JSON, or JSON without a request UID → `400` with a one-line reason;
//! - a review that cannot be read but has a UID → a well-formed review refusing the request
//!   (`allowed: false`, reason `InvalidRequest`);
//! - a review for anything other than the CREATE of a pod → allowed, no patch;
//! - a pod: [`Decision::Skip`] → allowed, no patch; [`Decision::Patch`] → allowed with a
//!   base64 `JSONPatch` and the decision's warnings (`kubectl` prints them as
//!   `Warning: ...`); [`Decision::Deny`] → `allowed: false` with the message, which names
//!   the annotation at fault.
//!
//! Every review is logged once at info (uid, namespace, pod name or generateName, decision,
//! reason; for a denial the annotation name and the message) and counted in the metrics.

use crate::https::routes::{self, TEXT_CONTENT_TYPE as TEXT};
use crate::inject::{self, Decision, InjectConfig};
use crate::webhook::metrics::{Outcome, WebhookMetrics};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::prelude::BASE64_STANDARD;
use k8s_openapi::api::core::v1::Pod;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube_core::{DynamicObject, TypeMeta};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

/// Largest accepted review body: the API server caps objects at 3 MiB (etcd's limit), and
/// the review wraps one (two for UPDATE). The server enforces it while reading
/// ([`crate::https::Limits::max_body`], set by [`super::run`]).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The only review this webhook reads and writes (`admissionReviewVersions: [v1]`).
const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
const REVIEW_KIND: &str = "AdmissionReview";

const JSON: &str = "application/json";

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct WebhookState {
    config: Arc<RwLock<Arc<InjectConfig>>>,
    metrics: Arc<WebhookMetrics>,
}

impl WebhookState {
    pub fn new(config: InjectConfig, metrics: Arc<WebhookMetrics>) -> WebhookState {
        WebhookState {
            config: Arc::new(RwLock::new(Arc::new(config))),
            metrics,
        }
    }

    /// The config reviews are answered with now.
    pub fn config(&self) -> Arc<InjectConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Gives injected sidecars `pem` as the hub's CA from now on, when the hub's CA comes
    /// from the webhook's CA Secret (no `hub-ca-file`); otherwise does nothing.
    pub fn set_hub_ca_from_secret(&self, pem: &str) {
        let mut current = self.config.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(hub) = &current.hub
            && hub.ca_file.is_none()
            && hub.ca_pem != pem
        {
            let mut next = InjectConfig::clone(&current);
            if let Some(hub) = &mut next.hub {
                hub.ca_pem = pem.to_owned();
            }
            *current = Arc::new(next);
        }
    }
}

/// `/mutate`, `/healthz` and `/metrics`; anything else is 404.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // The server read the body already, within its limits (`MAX_BODY`).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn metrics(State(state): State<WebhookState>) -> Response {
    routes::metrics(state.metrics.encode())
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, TEXT)],
        "not found\n",
    )
        .into_response()
}

async fn mutate(State(state): State<WebhookState>, body: Bytes) -> Response {
    let started = Instant::now();
    let (response, outcome) = match answer(&body, &state.config()) {
        Ok((review, outcome)) => (
            (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], review).into_response(),
            outcome,
        ),
        Err(reason) => {
            tracing::info!(decision = "error", "bad admission request: {reason}");
            (
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, TEXT)],
                    format!("{reason}\n"),
                )
                    .into_response(),
                Outcome::Error,
            )
        }
    };
    state.metrics.review(outcome, started.elapsed());
    response
}

/// The review's body to send back and its outcome, or the reason for a 400. Public for the
/// fuzz target (`fuzz/fuzz_targets/admission_review.rs`); the router is the only caller.
///
/// The API server's reviews are decoded straight into typed structs, the pod included
/// ([`fast`]); a body that does not decode that way (not JSON, another version, an object
/// that is no pod) goes the general way ([`general`]), which says what is wrong with it.
pub fn answer(body: &[u8], config: &InjectConfig) -> Result<(Vec<u8>, Outcome), String> {
    match fast(body) {
        Some(mut request) => {
            let object = request.object.take();
            let (response, outcome) = decide(&request, || object.map(Ok), config);
            Ok((encode(response), outcome))
        }
        None => general(body, config),
    }
}

/// A well-formed `admission.k8s.io/v1` review whose object, if any, reads as a pod: its
/// request with the pod decoded once, from the bytes (no JSON tree in between). `None` for
/// anything else.
fn fast(body: &[u8]) -> Option<AdmissionRequest<Pod>> {
    /// kube-core's `AdmissionReview` without its `#[serde(flatten)]` of the type fields,
    /// which makes serde buffer the whole review (the pod included) before decoding it.
    #[derive(Deserialize)]
    struct Review<'a> {
        #[serde(rename = "apiVersion", borrow)]
        api_version: Cow<'a, str>,
        #[serde(borrow)]
        kind: Cow<'a, str>,
        request: Option<AdmissionRequest<Pod>>,
        #[serde(default, rename = "response")]
        _response: Option<AdmissionResponse>,
    }
    let review: Review = serde_json::from_slice(body).ok()?;
    if review.api_version != REVIEW_API_VERSION || review.kind != REVIEW_KIND {
        return None;
    }
    let mut request = review.request?;
    request.types = TypeMeta {
        api_version: REVIEW_API_VERSION.to_owned(),
        kind: REVIEW_KIND.to_owned(),
    };
    Some(request)
}

/// [`answer`] for any body: parsed as JSON first, so that a review that cannot be read
/// still gets an answer for its UID.
fn general(body: &[u8], config: &InjectConfig) -> Result<(Vec<u8>, Outcome), String> {
    let mut raw: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a JSON AdmissionReview: {e}"))?;
    let uid = raw
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    // Take the object out, so the pod is decoded once, straight from the parsed JSON.
    let object = raw
        .pointer_mut("/request/object")
        .map(Value::take)
        .filter(|o| !o.is_null());
    let request: AdmissionRequest<DynamicObject> =
        match AdmissionReview::<DynamicObject>::deserialize(raw)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                // kube-core reads any apiVersion and kind, and its answer copies them; the API
                // server sends (and expects back) exactly these.
                if r.types.api_version != REVIEW_API_VERSION || r.types.kind != REVIEW_KIND {
                    return Err(format!(
                        "apiVersion {:?} and kind {:?}, expected {REVIEW_API_VERSION} and {REVIEW_KIND}",
                        r.types.api_version, r.types.kind
                    ));
                }
                r.try_into()
                    .map_err(|_| "the review has no request".to_owned())
            }) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("not an admission.k8s.io/v1 AdmissionReview: {e}");
                let Some(uid) = uid else {
                    return Err(format!("{reason} (and no request.uid to answer)"));
                };
                tracing::info!(%uid, decision = "error", "{reason}");
                let mut response = AdmissionResponse::invalid(&reason);
                response.uid = uid;
                return Ok((encode(response), Outcome::Error));
            }
        };
    let pod = || {
        object.map(|o| {
            serde_json::from_value::<Pod>(o)
                .map_err(|e| format!("ssm-injector could not read the object as a Pod: {e}"))
        })
    };
    let (response, outcome) = decide(&request, pod, config);
    Ok((encode(response), outcome))
}

/// Decides on a decoded request; logs the decision. `object` gives the pod (`None`: the
/// review has no object; an error: it is not a pod), read only for the CREATE of a pod.
fn decide<T: kube_core::Resource>(
    req: &AdmissionRequest<T>,
    object: impl FnOnce() -> Option<Result<Pod, String>>,
    config: &InjectConfig,
) -> (AdmissionResponse, Outcome) {
    let allow = AdmissionResponse::from(req);
    let is_pod = req.kind.group.is_empty()
        && req.kind.kind == "Pod"
        && req.sub_resource.as_deref().unwrap_or("").is_empty();
    if !is_pod {
        log_skip(req, "", "", "not a pod");
        return (allow, Outcome::Skipped);
    }
    if req.operation != Operation::Create {
        log_skip(req, "", &req.name, "not a CREATE");
        return (allow, Outcome::Skipped);
    }
    let pod = match object() {
        Some(Ok(pod)) => pod,
        None => {
            return refuse(
                req,
                allow,
                "the review has no object: ssm-injector needs the pod",
            );
        }
        Some(Err(reason)) => return refuse(req, allow, &reason),
    };
    let namespace = req
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(pod.metadata.namespace.as_deref())
        .unwrap_or("");
    let name = pod
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(pod.metadata.generate_name.as_deref())
        .unwrap_or("");
    match inject::mutate(&pod, namespace, config) {
        Decision::Skip(reason) => {
            log_skip(req, namespace, name, reason);
            (allow, Outcome::Skipped)
        }
        Decision::Patch { patch, .. } if patch.0.is_empty() => {
            log_skip(req, namespace, name, "nothing to change");
            (allow, Outcome::Skipped)
        }
        Decision::Patch { patch, warnings } => {
            let operations = patch.len();
            match patch.to_bytes() {
                Ok(bytes) => {
                    tracing::info!(
                        uid = %req.uid,
                        namespace,
                        pod = name,
                        decision = "injected",
                        operations,
                        warnings = warnings.join(" | "),
                        "pod injected"
                    );
                    let mut r = allow;
                    // `encode` writes it as base64 with `patchType: JSONPatch`.
                    r.patch = Some(bytes);
                    if !warnings.is_empty() {
                        r.warnings = Some(warnings);
                    }
                    (r, Outcome::Injected)
                }
                Err(e) => refuse(
                    req,
                    allow,
                    &format!("ssm-injector could not encode its patch: {e}"),
                ),
            }
        }
        Decision::Deny(denial) => {
            let message = match &denial.annotation {
                Some(a) if !denial.message.contains(a.as_str()) => {
                    format!("{a}: {}", denial.message)
                }
                _ => denial.message.clone(),
            };
            tracing::info!(
                uid = %req.uid,
                namespace,
                pod = name,
                decision = "denied",
                annotation = denial.annotation.as_deref().unwrap_or(""),
                "pod denied: {message}"
            );
            (allow.deny(message), Outcome::Denied)
        }
    }
}

fn log_skip<T: kube_core::Resource>(
    req: &AdmissionRequest<T>,
    namespace: &str,
    name: &str,
    reason: &str,
) {
    let namespace = if namespace.is_empty() {
        req.namespace.as_deref().unwrap_or("")
    } else {
        namespace
    };
    tracing::info!(
        uid = %req.uid,
        namespace,
        pod = name,
        decision = "skipped",
        reason,
        "pod left unchanged"
    );
}

/// The pod in the review cannot be read: refuse it (the API server sends valid pods, so this
/// is a client talking to the webhook directly, or a bug).
fn refuse<T: kube_core::Resource>(
    req: &AdmissionRequest<T>,
    allow: AdmissionResponse,
    reason: &str,
) -> (AdmissionResponse, Outcome) {
    // A decoding error may quote the request: never echo a huge one whole.
    let reason = crate::inject::bound_text(reason);
    tracing::info!(
        uid = %req.uid,
        namespace = req.namespace.as_deref().unwrap_or(""),
        decision = "error",
        "pod refused: {reason}"
    );
    (allow.deny(reason), Outcome::Error)
}

/// The review as JSON, with the patch (`response.patch`, JSONPatch bytes) as base64 and its
/// `patchType` (what the API server expects; kube-core would write the patch as an array of
/// numbers). Written straight to bytes, without a JSON tree or a base64 string in between.
fn encode(mut response: AdmissionResponse) -> Vec<u8> {
    /// `AdmissionResponse::into_review`, with the patch as a base64 string.
    #[derive(serde::Serialize)]
    struct Review<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'a str,
        kind: &'a str,
        response: Answer<'a>,
    }
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        #[serde(flatten)]
        response: &'a AdmissionResponse,
        #[serde(skip_serializing_if = "Option::is_none")]
        patch: Option<Base64<'a>>,
        #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
        patch_type: Option<&'static str>,
    }
    /// Bytes written as a base64 string, without building the string first.
    struct Base64<'a>(&'a [u8]);
    impl serde::Serialize for Base64<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&base64::display::Base64Display::new(
                self.0,
                &BASE64_STANDARD,
            ))
        }
    }
    let patch = response.patch.take();
    let review = Review {
        api_version: &response.types.api_version,
        kind: &response.types.kind,
        response: Answer {
            response: &response,
            patch: patch.as_deref().map(Base64),
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
        },
    };
    match serde_json::to_vec(&review) {
        Ok(bytes) => bytes,
        // Not reachable with serde_json; still answer a valid refusal rather than a 500.
        Err(e) => serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": response.uid,
                "allowed": false,
                "status": {"code": 500, "message": format!("ssm-injector could not encode its answer: {e}")},
            },
        })
        .to_string()
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use base64::Engine;
    use http_body_util::BodyExt;
    use serde_json::json;
    use tower::ServiceExt;

    #[test]
    fn the_hub_ca_follows_the_ca_secret_only_when_no_hub_ca_file_is_set() {
        let hub = |ca_file: Option<&str>| InjectConfig {
            hub: Some(inject::HubInjection {
                url: "https://hub.ssm.svc:8443".into(),
                ca_file: ca_file.map(str::to_owned),
                ca_pem: "FILE".into(),
                audience: inject::DEFAULT_HUB_AUDIENCE.into(),
            }),
            ..InjectConfig::default()
        };
        let metrics = Arc::new(WebhookMetrics::new());
        let from_secret = WebhookState::new(hub(None), metrics.clone());
        from_secret.set_hub_ca_from_secret("BUNDLE");
        let pem = |s: &WebhookState| s.config().hub.as_ref().map(|h| h.ca_pem.clone());
        assert_eq!(pem(&from_secret).as_deref(), Some("BUNDLE"));
        let from_file = WebhookState::new(hub(Some("/hub-ca/ca.crt")), metrics.clone());
        from_file.set_hub_ca_from_secret("BUNDLE");
        assert_eq!(pem(&from_file).as_deref(), Some("FILE"));
        let no_hub = WebhookState::new(InjectConfig::default(), metrics);
        no_hub.set_hub_ca_from_secret("BUNDLE");
        assert!(no_hub.config().hub.is_none());
    }

    fn app() -> (Router, Arc<WebhookMetrics>) {
        let metrics = Arc::new(WebhookMetrics::new());
        let state = WebhookState::new(InjectConfig::default(), metrics.clone());
        (router(state), metrics)
    }

    fn pod(annotations: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "web-", "namespace": "apps", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}
        })
    }

    fn injected_pod() -> Value {
        pod(json!({
            "ssm-injector.io/inject": "true",
            "ssm-injector.io/path": "/app/prod/"
        }))
    }

    fn review(operation: &str, object: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "apps",
                "operation": operation,
                "userInfo": {"username": "admin"},
                "object": object,
                "oldObject": null,
                "dryRun": false
            }
        })
    }

    async fn post(router: Router, body: impl Into<Body>) -> (StatusCode, Bytes) {
        let request = Request::builder()
            .method("POST")
            .uri("/mutate")
            .header(header::CONTENT_TYPE, JSON)
            .body(body.into())
            .expect("request");
        send(router, request).await
    }

    /// One request through the router; the status and the whole body.
    async fn send(router: Router, request: Request<Body>) -> (StatusCode, Bytes) {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    }

    async fn post_review(review: &Value) -> Value {
        let (status, body) = post(app().0, review.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("a JSON review")
    }

    fn unbase64(s: &str) -> Vec<u8> {
        BASE64_STANDARD.decode(s).expect("valid base64")
    }

    #[tokio::test]
    async fn an_annotated_pod_is_allowed_with_a_base64_patch_that_injects() {
        let original = injected_pod();
        let answer = post_review(&review("CREATE", original.clone())).await;
        let response = &answer["response"];
        assert_eq!(response["allowed"], true, "{answer}");
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["patchType"], "JSONPatch");
        let patch_bytes = unbase64(response["patch"].as_str().expect("base64 patch"));
        let patch: json_patch::Patch = serde_json::from_slice(&patch_bytes).expect("a JSONPatch");
        let mut mutated = original;
        json_patch::patch(&mut mutated, &patch).expect("the patch applies");
        let pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(mutated).expect("still a Pod");
        let spec = pod.spec.expect("a spec");
        let init = spec.init_containers.expect("init containers");
        assert_eq!(init[0].name, "ssm-injector-init");
        assert!(
            spec.volumes
                .expect("volumes")
                .iter()
                .any(|v| v.name == "ssm-injector")
        );
        let mounts = spec.containers[0].volume_mounts.clone().expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/ssm" && m.read_only == Some(true))
        );
    }

    #[tokio::test]
    async fn the_decisions_warnings_reach_the_client_and_only_when_there_are_some() {
        // No securityContext: mode 0444, which the client is told about.
        let answer = post_review(&review("CREATE", injected_pod())).await;
        let warnings = answer["response"]["warnings"]
            .as_array()
            .unwrap_or_else(|| panic!("warnings in {answer}"));
        assert_eq!(warnings.len(), 1, "{answer}");
        let w = warnings[0].as_str().unwrap_or_default();
        assert!(
            w.contains("mode 0444") && w.contains("fsGroup") && w.contains("app"),
            "{w}"
        );
        // One uid for every container: 0400 for it, nothing to warn about.
        let mut p = injected_pod();
        p["spec"]["securityContext"] = json!({"runAsUser": 1000});
        let answer = post_review(&review("CREATE", p)).await;
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert!(answer["response"].get("warnings").is_none(), "{answer}");
    }

    #[tokio::test]
    async fn an_unannotated_pod_is_allowed_without_a_patch() {
        let answer = post_review(&review("CREATE", pod(json!({})))).await;
        assert_eq!(answer["response"]["allowed"], true);
        assert!(answer["response"].get("patch").is_none(), "{answer}");
        assert!(answer["response"].get("patchType").is_none(), "{answer}");
    }

    #[tokio::test]
    async fn a_bad_annotation_is_denied_naming_it() {
        let mut p = injected_pod();
        p["metadata"]["annotations"]["ssm-injector.io/bogus"] = json!("x");
        let answer = post_review(&review("CREATE", p)).await;
        assert_eq!(answer["response"]["allowed"], false);
        let message = answer["response"]["status"]["message"]
            .as_str()
            .expect("a message");
        assert!(message.contains("ssm-injector.io/bogus"), "{message}");
    }

    #[tokio::test]
    async fn other_operations_are_allowed_without_a_patch() {
        for op in ["UPDATE", "DELETE", "CONNECT"] {
            let answer = post_review(&review(op, injected_pod())).await;
            assert_eq!(answer["response"]["allowed"], true, "{op}");
            assert!(answer["response"].get("patch").is_none(), "{op}: {answer}");
        }
    }

    #[tokio::test]
    async fn other_kinds_are_allowed_without_a_patch() {
        let mut r = review("CREATE", json!({"metadata": {"name": "x"}, "data": {}}));
        r["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
        let answer = post_review(&r).await;
        assert_eq!(answer["response"]["allowed"], true);
        assert!(answer["response"].get("patch").is_none());
    }

    #[tokio::test]
    async fn malformed_bodies_are_400_with_a_reason() {
        for body in [
            "",
            "{",
            "null",
            "[]",
            "{\"request\": 5}",
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
        ] {
            let (status, text) = post(app().0, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
            assert!(!text.is_empty(), "{body:?}");
        }
    }

    #[tokio::test]
    async fn an_unreadable_review_with_a_uid_gets_a_refusal_for_that_uid() {
        let mut r = review("CREATE", injected_pod());
        r["request"]["operation"] = json!("EXPLODE");
        let answer = post_review(&r).await;
        assert_eq!(
            answer["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(answer["response"]["allowed"], false);
    }

    /// Found by the admission_review fuzz target: kube-core reads any apiVersion and kind and
    /// its answer copied them, so a misspelled kind was allowed with a misspelled answer.
    #[tokio::test]
    async fn a_review_of_another_kind_or_version_is_refused_with_a_v1_answer() {
        let found: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/fuzz/admission_review/wrong-kind-echoed.json"
        ))
        .expect("fixture is JSON");
        let mut v1beta1 = review("CREATE", injected_pod());
        v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
        for r in [found, v1beta1] {
            let answer = post_review(&r).await;
            assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{answer}");
            assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
            assert_eq!(answer["response"]["allowed"], false, "{answer}");
            assert_eq!(answer["response"]["uid"], r["request"]["uid"], "{answer}");
            let message = answer["response"]["status"]["message"]
                .as_str()
                .unwrap_or("");
            assert!(message.contains("expected admission.k8s.io/v1"), "{answer}");
        }
    }

    #[tokio::test]
    async fn a_pod_that_is_not_a_pod_is_refused_not_500() {
        let answer = post_review(&review("CREATE", json!({"spec": {"containers": 7}}))).await;
        assert_eq!(answer["response"]["allowed"], false);
        let answer = post_review(&review("CREATE", Value::Null)).await;
        assert_eq!(answer["response"]["allowed"], false);
    }

    #[tokio::test]
    async fn a_body_above_axum_s_default_limit_is_read() {
        // The server enforces MAX_BODY; the router must not cut at axum's 2 MiB.
        let (status, _) = post(app().0, vec![b' '; 3 * 1024 * 1024]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn healthz_metrics_and_unknown_paths() {
        let (router, metrics) = app();
        let _ = post(router.clone(), review("CREATE", injected_pod()).to_string()).await;
        let call = |uri: &'static str| {
            let router = router.clone();
            async move {
                let request = Request::get(uri).body(Body::empty()).expect("request");
                let (status, body) = send(router, request).await;
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        assert_eq!(call("/healthz").await, (StatusCode::OK, "ok\n".to_owned()));
        let (status, text) = call("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("ssm_injector_webhook_reviews_total{decision=\"injected\"} 1\n"),
            "{text}"
        );
        assert_eq!(call("/nope").await.0, StatusCode::NOT_FOUND);
        drop(metrics);
    }
}
