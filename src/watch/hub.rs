//! The sidecar's side of the version hub (`--hub URL`): what to ask the hub for, computed
//! from the spec and the values last fetched (pure), and the HTTPS long-poll itself.
//!
//! The hub only ever says *that* something changed. Values are always fetched from AWS by
//! the sidecar itself, with its own role, so least privilege and the audit trail stay per
//! workload, and a hub that is down or wrong can delay a rotation but never corrupt a file.

use crate::hub::protocol::{self, Key, PathSpec, WatchRequest, WatchResponse};
use crate::spec::Spec;
use crate::values::{SourceKey, Values};
use crate::watch::schedule::Backoff;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Largest answer read from the hub.
const MAX_ANSWER: usize = 1024 * 1024;
/// Longest hold asked of the hub (it may clamp it lower).
pub const LONG_POLL: Duration = Duration::from_secs(50);

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
pub enum HubError {
    #[error("cannot connect to the hub: {0}")]
    Connect(String),
    #[error("TLS with the hub failed: {0}")]
    Tls(String),
    #[error("the hub did not answer: {0}")]
    Http(String),
    #[error("the hub refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the hub's answer is not a watch response: {0}")]
    Answer(String),
    #[error("cannot read the token file {path}: {reason}")]
    Token { path: String, reason: String },
}

/// Where the hub is and how to trust it.
#[derive(Debug, Clone)]
pub struct HubConfig {
    host: String,
    port: u16,
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
        let bad = || HubConfigError::Url(url.to_owned());
        let rest = url
            .trim_end_matches('/')
            .strip_prefix("https://")
            .ok_or_else(bad)?;
        if rest.is_empty()
            || rest.contains(['/', '?', '#', '@'])
            || rest.contains(char::is_whitespace)
        {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(']') || h.ends_with(']') => {
                (h, p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?)
            }
            _ => (rest, 443),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() || ServerName::try_from(host.clone()).is_err() {
            return Err(bad());
        }
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
        let ca_err = |reason: String| HubConfigError::Ca {
            path: shown.clone(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ca_err(format!("not PEM certificates: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ca_err(format!("not a usable CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_err("no certificate in it".into()));
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::webhook::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ca_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(HubConfig {
            host,
            port,
            tls: Arc::new(tls),
            token_file,
        })
    }

    /// `host:port`, for logs.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// One `POST /v1/watch`; the hub holds it until something changes or `wait` passes.
    pub async fn watch(&self, request: &WatchRequest) -> Result<WatchResponse, HubError> {
        let body = serde_json::to_vec(request).map_err(|e| HubError::Http(e.to_string()))?;
        let token = match &self.token_file {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map(|t| t.trim().to_owned())
                    .map_err(|e| HubError::Token {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?,
            ),
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| HubError::Connect(format!("{}: {e}", self.address())))?;
        let _ = tcp.set_nodelay(true);
        let name =
            ServerName::try_from(self.host.clone()).map_err(|e| HubError::Tls(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| HubError::Tls(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| HubError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut builder = hyper::Request::post("/v1/watch")
            .header(hyper::header::HOST, self.address())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CONNECTION, "close");
        if let Some(t) = token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HubError::Http(e.to_string()))?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| HubError::Http(e.to_string()))?;
            let status = resp.status().as_u16();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| HubError::Http(e.to_string()))?
                .to_bytes();
            if status != 200 {
                let message = serde_json::from_slice::<protocol::ErrorBody>(&bytes)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| {
                        String::from_utf8_lossy(&bytes).chars().take(200).collect()
                    });
                return Err(HubError::Refused { status, message });
            }
            serde_json::from_slice::<WatchResponse>(&bytes)
                .map_err(|e| HubError::Answer(e.to_string()))
        }
        .await;
        driver.abort();
        result
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
        known.insert(key.to_string(), protocol::path_token(under));
    }
    WatchRequest {
        names,
        paths,
        known,
        wait_seconds: Some(LONG_POLL.as_secs_f64()),
    }
}

/// What the hub task tells the watch loop.
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// Whether the hub currently tracks every watched key (then the loop skips its own
    /// polls); false while the hub is unreachable, refuses, or cannot track some keys.
    Covering(bool),
    /// Something watched changed: fetch from AWS at a random point within `spread`.
    Changed { keys: usize, spread: Duration },
}

/// Long-polls the hub for as long as the loop runs. `requests` carries the latest
/// [`request_for`] (after every successful fetch); events go to the loop.
pub async fn run(
    hub: HubConfig,
    mut requests: watch::Receiver<Option<WatchRequest>>,
    events: mpsc::Sender<HubEvent>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    // The hub's tokens from its last answer; None after a failure or a new spec, when the
    // tokens computed from our own fetch are sent instead.
    let mut known: Option<BTreeMap<String, String>> = None;
    let mut failing = false;
    loop {
        let Some(mut base) = requests.borrow_and_update().clone() else {
            if requests.changed().await.is_err() {
                return;
            }
            continue;
        };
        let mut req = base.clone();
        match &known {
            Some(k) => req.known = k.clone(),
            // First contact (start, a new spec, after a failure): an answer at once tells
            // whether the hub covers every key, so own polling can stop without waiting
            // out a long poll.
            None => req.wait_seconds = Some(0.0),
        }
        let call = tokio::time::timeout(LONG_POLL + Duration::from_secs(15), hub.watch(&req));
        tokio::pin!(call);
        let answer = loop {
            tokio::select! {
                r = &mut call => break Some(r.unwrap_or_else(|_| Err(HubError::Http("no answer in time".into())))),
                c = requests.changed() => {
                    if c.is_err() {
                        return;
                    }
                    let new = requests.borrow_and_update().clone();
                    match new {
                        Some(n) if n.names == base.names && n.paths == base.paths => base = n,
                        _ => {
                            // A new spec: ask again about the new set.
                            known = None;
                            break None;
                        }
                    }
                }
            }
        };
        let Some(answer) = answer else { continue };
        match answer {
            Ok(resp) => {
                metrics.hub_answer(if resp.changed.is_empty() {
                    "unchanged"
                } else {
                    "changed"
                });
                if failing {
                    tracing::info!(hub = %hub.address(), "hub answers again: following it");
                    failing = false;
                }
                backoff.reset();
                let covering = resp.unavailable.is_empty();
                if !covering {
                    tracing::warn!(
                        keys = resp.unavailable.len(),
                        "the hub cannot track some watched keys: polling AWS myself as well"
                    );
                }
                metrics.hub_up(covering);
                let _ = events.send(HubEvent::Covering(covering)).await;
                if !resp.changed.is_empty() {
                    let spread = Duration::from_millis(resp.spread_ms);
                    tracing::info!(
                        keys = resp.changed.len(),
                        spread_ms = resp.spread_ms,
                        "hub: watched parameters changed"
                    );
                    let _ = events
                        .send(HubEvent::Changed {
                            keys: resp.changed.len(),
                            spread,
                        })
                        .await;
                }
                known = Some(resp.versions);
            }
            Err(e) => {
                metrics.hub_answer("error");
                metrics.hub_up(false);
                let _ = events.send(HubEvent::Covering(false)).await;
                known = None;
                let refused = matches!(e, HubError::Refused { .. });
                let delay = if refused {
                    Duration::from_secs(60)
                } else {
                    backoff.next_delay(fastrand::f64())
                };
                if !failing || refused {
                    tracing::warn!(
                        hub = %hub.address(),
                        retry_in_ms = delay.as_millis() as u64,
                        "{e}; polling AWS myself until the hub answers"
                    );
                }
                failing = true;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    c = requests.changed() => if c.is_err() { return; },
                }
            }
        }
    }
}
