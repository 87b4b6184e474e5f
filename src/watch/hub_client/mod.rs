//! The sidecar's hub client (`--hub URL`; the hub server is [`crate::hub`]): what to ask the
//! hub for, computed from the spec and the values last fetched (pure), the client's
//! decisions ([`machine`], pure), and the HTTPS long-poll that performs them.
//!
//! The hub only ever says *that* something changed. Values are always fetched from AWS by
//! the sidecar itself, with its own role, so least privilege and the audit trail stay per
//! workload, and a hub that is down or wrong can delay a rotation but never corrupt a file.

pub mod machine;

use crate::https::client::{self as https_client, ClientError, Endpoint};
use crate::hub_protocol::{self, Key, PathSpec, WatchRequest, WatchResponse};
use crate::source::delta::Changed;
use crate::spec::Spec;
use crate::values::{SourceKey, Values};
use machine::{Action, LONG_POLL, Machine, OnRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

pub use machine::HubEvent;

/// Largest answer read from the hub.
const MAX_ANSWER: usize = 1024 * 1024;

/// A bad `--hub*` flag.
#[derive(Debug, thiserror::Error)]
pub enum HubConfigError {
    #[error("--hub {0:?} is not a URL like https://ssm-injector-hub.ssm-injector.svc:8443")]
    Url(String),
    #[error(
        "--hub needs the CA that signed the hub's certificate: --hub-ca FILE or SSM_INJECTOR_HUB_CA_PEM"
    )]
    NoCa,
    #[error("--hub-ca {path}: {reason}")]
    Ca { path: String, reason: String },
}

/// Why one exchange with the hub failed (then the sidecar polls AWS itself).
#[derive(Debug, thiserror::Error)]
pub enum HubClientError {
    #[error("cannot connect to the hub: {0}")]
    Connect(String),
    #[error("TLS with the hub failed: {0}")]
    Tls(String),
    #[error("the hub did not answer: {0}")]
    Http(String),
    /// 4xx: this client may not follow the hub (token, namespace policy, bad request).
    #[error("the hub refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    /// 5xx: the hub cannot serve now (e.g. it cannot check tokens, or is full).
    #[error("the hub cannot serve the request now (HTTP {status}): {message}")]
    Unavailable { status: u16, message: String },
    #[error("the hub's answer is not a watch response: {0}")]
    Answer(String),
    #[error("cannot read the token file {path}: {reason}")]
    Token { path: String, reason: String },
}

/// Where the hub is and how to trust it.
#[derive(Debug, Clone)]
pub struct HubConfig {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    /// The projected service account token, re-read for every request (the kubelet
    /// rotates it).
    token_file: Option<PathBuf>,
}

impl HubConfig {
    /// Checks the URL (`https://HOST[:PORT]`, default port 443) and loads the CA from
    /// `ca_file` or the PEM text `ca_pem`.
    pub fn build(
        url: &str,
        ca_file: Option<PathBuf>,
        ca_pem: Option<String>,
        token_file: Option<PathBuf>,
    ) -> Result<HubConfig, HubConfigError> {
        let endpoint = Endpoint::parse(url).ok_or_else(|| HubConfigError::Url(url.to_owned()))?;
        let (shown, pem) = match (ca_file, ca_pem) {
            (Some(path), _) => {
                let shown = path.display().to_string();
                let text = std::fs::read(&path).map_err(|e| HubConfigError::Ca {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                (shown, text)
            }
            (None, Some(pem)) if !pem.trim().is_empty() => {
                ("SSM_INJECTOR_HUB_CA_PEM".to_owned(), pem.into_bytes())
            }
            _ => return Err(HubConfigError::NoCa),
        };
        let tls = https_client::trusting(&pem).map_err(|e| HubConfigError::Ca {
            path: shown,
            reason: e.to_string(),
        })?;
        Ok(HubConfig {
            endpoint,
            tls,
            token_file,
        })
    }

    /// `host:port`, for logs.
    pub fn address(&self) -> String {
        self.endpoint.address()
    }

    /// One `POST /v1/watch`; the hub holds it until something changes or `wait` passes.
    pub async fn watch(&self, request: &WatchRequest) -> Result<WatchResponse, HubClientError> {
        let body = serde_json::to_vec(request).map_err(|e| HubClientError::Http(e.to_string()))?;
        let mut headers = Vec::new();
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path).map_err(|e| HubClientError::Token {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            headers.push(https_client::bearer(token.trim()).ok_or_else(|| {
                HubClientError::Token {
                    path: path.display().to_string(),
                    reason: "not a token (it has characters a header cannot carry)".to_owned(),
                }
            })?);
        }
        let answer = https_client::post_json(
            &self.endpoint,
            &self.tls,
            "/v1/watch",
            headers,
            body,
            MAX_ANSWER,
        )
        .await
        .map_err(|e| match e {
            ClientError::Connect(e) => HubClientError::Connect(e),
            ClientError::Tls(e) => HubClientError::Tls(e),
            ClientError::Http(e) => HubClientError::Http(e),
        })?;
        if answer.status != 200 {
            let message = serde_json::from_slice::<hub_protocol::ErrorBody>(&answer.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| {
                    String::from_utf8_lossy(&answer.body)
                        .chars()
                        .take(200)
                        .collect()
                });
            return Err(if answer.status >= 500 {
                HubClientError::Unavailable {
                    status: answer.status,
                    message,
                }
            } else {
                HubClientError::Refused {
                    status: answer.status,
                    message,
                }
            });
        }
        serde_json::from_slice::<WatchResponse>(&answer.body)
            .map_err(|e| HubClientError::Answer(e.to_string()))
    }
}

/// What the sidecar asks the hub about, with the tokens of the values it holds: the hub
/// then answers at once only if AWS has moved on since. Secrets Manager references get no
/// token (their version id is not in the fetched value), so the hub's first answer names
/// them and costs one re-fetch at start.
pub fn request_for(spec: &Spec, values: &Values) -> WatchRequest {
    let mut names = Vec::new();
    let mut known = BTreeMap::new();
    for p in &spec.params {
        let request = p.param.request();
        let key = format!("name:{request}");
        if !names.contains(&request) {
            names.push(request);
        }
        let version = values.iter().find_map(|e| match &e.key {
            SourceKey::Explicit(k) if *k == p.key => e.version,
            _ => None,
        });
        let token = match version {
            Some(v) if !p.param.is_secrets_manager() => Some(v.to_string()),
            _ => None,
        };
        if let Some(t) = token {
            known.insert(key, t);
        }
    }
    let mut paths = Vec::new();
    for p in &spec.paths {
        paths.push(PathSpec {
            path: p.path.clone(),
            recursive: p.recursive,
        });
        let under = values.iter().filter_map(|e| match (&e.key, e.version) {
            (SourceKey::Relative(rel), Some(v))
                if e.name.starts_with(&p.path) && (p.recursive || !rel.contains('/')) =>
            {
                Some((e.name.as_str(), v))
            }
            _ => None,
        });
        let key = Key::Path {
            path: p.path.clone(),
            recursive: p.recursive,
        };
        known.insert(key.to_string(), hub_protocol::path_token(under));
    }
    WatchRequest {
        names,
        paths,
        known,
        wait_seconds: Some(LONG_POLL.as_secs_f64()),
    }
}

/// The hub's changed keys (wire form) as the source takes them; `None` if one of them
/// cannot be read (then the loop reads everything).
pub fn changed_keys(keys: &BTreeSet<String>) -> Option<Changed> {
    let mut changed = Changed::default();
    for k in keys {
        match Key::parse(k).ok()? {
            Key::Name(r) => {
                changed.requests.insert(r.request());
            }
            Key::Path { path, recursive } => {
                changed.paths.insert((path, recursive));
            }
        }
    }
    Some(changed)
}

/// Long-polls the hub for as long as the loop runs: performs what [`Machine`] decides.
/// `requests` carries the latest [`request_for`] (after every successful fetch); events go
/// to the loop.
pub async fn run(
    hub: HubConfig,
    mut requests: watch::Receiver<Option<WatchRequest>>,
    events: mpsc::Sender<HubEvent>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut machine = Machine::new(fastrand::f64);
    loop {
        let latest = requests.borrow_and_update().clone();
        match machine.next(latest.as_ref(), now()) {
            Action::AwaitRequest => {
                if requests.changed().await.is_err() {
                    return;
                }
            }
            Action::Wait { until } => tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                c = requests.changed() => {
                    if c.is_err() {
                        return;
                    }
                    machine.on_request(requests.borrow_and_update().as_ref());
                }
            },
            Action::Ask { request, deadline } => {
                let call = tokio::time::timeout_at(deadline.into(), hub.watch(&request));
                tokio::pin!(call);
                let answer = loop {
                    tokio::select! {
                        r = &mut call => break Some(r.unwrap_or_else(|_| Err(HubClientError::Http("no answer in time".into())))),
                        c = requests.changed() => {
                            if c.is_err() {
                                return;
                            }
                            let new = requests.borrow_and_update().clone();
                            if machine.on_request(new.as_ref()) == OnRequest::AskAgain {
                                break None;
                            }
                        }
                    }
                };
                match answer {
                    None => {}
                    Some(Ok(resp)) => {
                        let a = machine.on_answer(resp);
                        metrics.hub_answer(a.label());
                        if a.recovered {
                            tracing::info!(hub = %hub.address(), "hub answers again: following it");
                        }
                        if !a.covering() {
                            tracing::warn!(
                                keys = a.unavailable,
                                "the hub cannot track some watched keys: polling AWS myself as well"
                            );
                        }
                        metrics.hub_up(a.covering());
                        if !a.changed.is_empty() {
                            tracing::info!(
                                keys = a.changed.len(),
                                spread_ms = a.spread.as_millis() as u64,
                                "hub: watched parameters changed"
                            );
                        }
                        for event in a.events() {
                            let _ = events.send(event).await;
                        }
                    }
                    Some(Err(e)) => {
                        metrics.hub_answer("error");
                        metrics.hub_up(false);
                        let _ = events.send(HubEvent::Covering(false)).await;
                        let f =
                            machine.on_error(matches!(e, HubClientError::Refused { .. }), now());
                        if f.warn {
                            tracing::warn!(
                                hub = %hub.address(),
                                retry_in_ms = f.retry_in.as_millis() as u64,
                                "{e}; polling AWS myself until the hub answers"
                            );
                        }
                    }
                }
            }
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
