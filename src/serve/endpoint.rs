//! The local endpoint's server side: every request goes token → route → rule → answer.
//! Watched names are answered from the values the watch loop holds ([`Endpoint::publish`]
//! after each successful poll: never older than it, no AWS call); on-demand names are
//! read through the one AWS call path ([`Source`], its call budget included) and kept for
//! the TTL. Served over plain HTTP on loopback by the shared server, like the admin port.
//!
//! No value is logged: the log names the route, the rule and the status.

use super::body::{self, ParameterFacts, SecretFacts};
use super::cache::TtlCache;
use super::request::{self, ParameterRead, Refusal, Route, SecretRead};
use super::rules::{Answer, Rules};
use super::token;
use crate::https::Limits;
use crate::https::routes::TEXT_CONTENT_TYPE;
use crate::secret::Secret;
use crate::source::delta::{Held, Meta, SecretMeta};
use crate::source::{Cause, Fetched, Kind, Source};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How the endpoint is set up (`--serve*`, the extension's variables).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: std::net::SocketAddr,
    /// `--serve-allow`: prefixes of names read on demand.
    pub allow: Vec<String>,
    /// `SSM_PARAMETER_STORE_TTL`.
    pub parameter_ttl: Duration,
    /// `SECRETS_MANAGER_TTL`.
    pub secret_ttl: Duration,
    /// `PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE`.
    pub cache_size: usize,
}

/// The endpoint's per-connection limits: the shared server's, with room for the
/// keep-alive pools of an app's workers (the AWS Secrets Manager Agent allows 800). A
/// read has no body; a client that sends its head slowly is cut off at the header
/// deadline.
pub const LIMITS: Limits = Limits {
    max_connections: 800,
    max_body: 0,
    ..Limits::DEFAULT
};

/// An on-demand answer kept for the TTL.
#[derive(Debug)]
enum Cached {
    Parameter(Fetched),
    Secret(Secret, SecretMeta),
}

/// The endpoint's state.
pub struct Endpoint {
    /// The rules and the source of the spec in use (a new spec file replaces both).
    spec: RwLock<(Arc<Rules>, Arc<Source>)>,
    allow: Vec<String>,
    token: Zeroizing<Vec<u8>>,
    /// The held values of the last successful poll; `None` before it.
    held: RwLock<Option<Held>>,
    parameters: Mutex<TtlCache<Cached>>,
    secrets: Mutex<TtlCache<Cached>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn new(
        config: &ServeConfig,
        rules: Rules,
        token: Zeroizing<Vec<u8>>,
        source: Arc<Source>,
    ) -> Endpoint {
        Endpoint {
            spec: RwLock::new((Arc::new(rules), source)),
            allow: config.allow.clone(),
            token,
            held: RwLock::new(None),
            parameters: Mutex::new(TtlCache::new(config.parameter_ttl, config.cache_size)),
            secrets: Mutex::new(TtlCache::new(config.secret_ttl, config.cache_size)),
        }
    }

    /// The values of a successful poll: watched reads are answered from them from now on.
    pub fn publish(&self, held: Held) {
        *self.held.write().unwrap_or_else(PoisonError::into_inner) = Some(held);
    }

    /// A new spec file: its rules and source from now on; its values from its first
    /// successful poll (until then watched reads answer 503).
    pub fn respec(&self, spec: &crate::spec::Spec, source: Arc<Source>) {
        let rules = Rules::new(&spec.params, &spec.paths, &self.allow);
        *self.spec.write().unwrap_or_else(PoisonError::into_inner) = (Arc::new(rules), source);
        *self.held.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn rules(&self) -> Arc<Rules> {
        self.spec
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    fn source(&self) -> Arc<Source> {
        self.spec
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// The values of the last successful poll.
    fn held(&self) -> Option<Held> {
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The router: every path goes to [`answer`] (its own 404 and 405).
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new().fallback(answer).with_state(endpoint)
}

/// A plain-text refusal.
fn refusal(r: Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
        format!("{}\n", r.message),
    )
        .into_response()
}

/// An AWS error as the AWS JSON protocol writes it (`{"__type": …, "message": …}`), with
/// the status AWS gives it: 400 for the service's refusals, 502 when AWS could not be
/// reached or answered 5xx.
fn aws_error(code: &str, message: &str, unavailable: bool) -> Response {
    let status = if unavailable {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::BAD_REQUEST
    };
    let body = serde_json::json!({"__type": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn cause(c: &Cause) -> Response {
    let code = match c {
        Cause::AccessDenied { code, .. }
        | Cause::Kms { code, .. }
        | Cause::BadCredentials { code, .. }
        | Cause::Throttled { code, .. }
        | Cause::ServerError { code, .. }
        | Cause::Rejected { code, .. } => code.as_str(),
        Cause::NotFound => "ParameterNotFound",
        _ => "InternalFailure",
    };
    aws_error(code, &c.to_string(), c.kind() == Kind::Unavailable)
}

fn not_found(what: &str, code: &str) -> Response {
    aws_error(code, &format!("{what} was not found"), false)
}

/// A JSON answer whose body is zeroed once sent.
fn json(body: Zeroizing<Vec<u8>>) -> Response {
    let bytes = bytes::Bytes::from_owner(body);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response()
}

/// The values of the header `name`, each one.
fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a [u8]> {
    headers.get_all(name).iter().map(|v| v.as_bytes())
}

async fn answer(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let route = match request::route(parts.method.as_str(), parts.uri.path(), parts.uri.query()) {
        Ok(r) => r,
        Err(r) => return refusal(r),
    };
    if route == Route::Ping {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
            "healthy",
        )
            .into_response();
    }
    let given: Vec<&[u8]> = token::HEADERS
        .iter()
        .flat_map(|h| header_values(&parts.headers, h))
        .collect();
    let forwarded = parts.headers.contains_key("x-forwarded-for");
    if let Err(r) = token::check(&given, forwarded, &endpoint.token) {
        tracing::info!(status = r.status, "local read refused: token");
        return refusal(r);
    }
    match route {
        Route::Parameter(read) => parameter(&endpoint, read).await,
        Route::Secret(read) => secret(&endpoint, read).await,
        Route::Ping => refusal(Refusal {
            status: 404,
            message: "not found".into(),
        }),
    }
}

/// Where a read is answered from, with what it needs.
enum From {
    /// The held values of the last poll, under this key.
    Held(Held, String),
    OnDemand,
}

/// The rule's answer made concrete: the refusal (403), or 503 for a watched read before
/// the first successful poll.
fn answered_from(endpoint: &Endpoint, ruled: Result<Answer, Refusal>) -> Result<From, Refusal> {
    match ruled {
        Err(r) => {
            tracing::info!(status = r.status, "local read refused: not in the spec");
            Err(r)
        }
        Ok(Answer::OnDemand) => Ok(From::OnDemand),
        Ok(Answer::Watched(key)) => match endpoint.held() {
            Some(held) => Ok(From::Held(held, key)),
            None => Err(Refusal {
                status: 503,
                message: "not ready: no successful poll yet".into(),
            }),
        },
    }
}

/// A parameter's answer: its body, or, for a SecureString read without
/// `withDecryption=true`, a 400 (the extension would return the ciphertext, which the
/// sidecar never holds).
fn parameter_answer(
    name: &str,
    value: &str,
    version: i64,
    meta: &Meta,
    selector: Option<&str>,
    decrypt: bool,
) -> Response {
    if meta.kind.as_deref() == Some("SecureString") && !decrypt {
        return refusal(Refusal {
            status: 400,
            message: format!(
                "{name} is a SecureString: add withDecryption=true (this endpoint holds it decrypted, never its ciphertext)"
            ),
        });
    }
    json(body::parameter(&ParameterFacts {
        name,
        value,
        version,
        kind: meta.kind.as_deref().unwrap_or("String"),
        arn: meta.arn.as_deref(),
        modified: meta.modified,
        data_type: meta.data_type.as_deref(),
        selector,
    }))
}

async fn parameter(endpoint: &Endpoint, read: ParameterRead) -> Response {
    let from = match answered_from(endpoint, endpoint.rules().parameter(&read)) {
        Ok(from) => from,
        Err(r) => return refusal(r),
    };
    let selector = read.param.selector.as_ref().map(|s| format!(":{s}"));
    if let From::Held(held, key) = &from {
        return match held.value(key) {
            Some(v) => parameter_answer(
                v.name,
                v.value,
                v.version,
                v.meta,
                selector.as_deref(),
                read.decrypt,
            ),
            None => not_found(&read.param.request(), "ParameterNotFound"),
        };
    }
    let key = read.param.request();
    let now = Instant::now();
    {
        let cache = endpoint
            .parameters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Cached::Parameter(f)) = cache.get(&key, now) {
            return parameter_answer(
                &f.name,
                f.value.expose(),
                f.version,
                &f.meta,
                selector.as_deref(),
                read.decrypt,
            );
        }
    }
    // Always decrypted: one cached answer serves both kinds of read.
    match endpoint.source().read_parameter(&read.param, true).await {
        Ok(Some(f)) => {
            let response = parameter_answer(
                &f.name,
                f.value.expose(),
                f.version,
                &f.meta,
                selector.as_deref(),
                read.decrypt,
            );
            endpoint
                .parameters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .put(key, Cached::Parameter(f), now);
            response
        }
        Ok(None) => not_found(&key, "ParameterNotFound"),
        Err(c) => cause(&c),
    }
}

fn secret_facts<'a>(
    id: &'a str,
    value: &'a str,
    meta: &'a SecretMeta,
    current: &'a [String],
) -> SecretFacts<'a> {
    SecretFacts {
        arn: meta.arn.as_deref(),
        name: meta.name.as_deref().unwrap_or(id),
        version_id: meta.version_id.as_deref(),
        value,
        binary: meta.binary,
        stages: if meta.stages.is_empty() {
            current
        } else {
            &meta.stages
        },
        created: meta.created,
    }
}

async fn secret(endpoint: &Endpoint, read: SecretRead) -> Response {
    let from = match answered_from(endpoint, endpoint.rules().secret(&read)) {
        Ok(from) => from,
        Err(r) => return refusal(r),
    };
    let current = ["AWSCURRENT".to_owned()];
    if let From::Held(held, key) = &from {
        return match held.value(key) {
            Some(v) => {
                let empty = SecretMeta::default();
                let meta = v.meta.secret.as_ref().unwrap_or(&empty);
                let mut facts = secret_facts(&read.id, v.value, meta, &current);
                if facts.version_id.is_none() {
                    facts.version_id = v.secret_version;
                }
                json(body::secret(&facts))
            }
            None => not_found(&read.id, "ResourceNotFoundException"),
        };
    }
    let key = format!(
        "{}\u{0}{}\u{0}{}",
        read.id,
        read.version_stage.as_deref().unwrap_or_default(),
        read.version_id.as_deref().unwrap_or_default()
    );
    let now = Instant::now();
    {
        let cache = endpoint
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Cached::Secret(value, meta)) = cache.get(&key, now) {
            return json(body::secret(&secret_facts(
                &read.id,
                value.expose(),
                meta,
                &current,
            )));
        }
    }
    match endpoint
        .source()
        .read_secret(
            &read.id,
            read.version_stage.as_deref(),
            read.version_id.as_deref(),
        )
        .await
    {
        Ok(Some(s)) => {
            let response = json(body::secret(&secret_facts(
                &read.id,
                s.value.expose(),
                &s.meta,
                &current,
            )));
            endpoint
                .secrets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .put(key, Cached::Secret(s.value, s.meta), now);
            response
        }
        Ok(None) => not_found(&read.id, "ResourceNotFoundException"),
        Err(c) => cause(&c),
    }
}
