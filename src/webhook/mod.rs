//! `ssm-injector webhook`: the Kubernetes mutating admission webhook, HTTPS only.
//!
//! The HTTP side only decodes the `admission.k8s.io/v1` AdmissionReview, calls the pure
//! [`crate::inject::mutate`] and encodes its decision ([`admission`]). The server is a
//! tokio-rustls accept loop with one hyper HTTP/1.1 connection per client ([`server`]); its
//! certificate comes from files and is swapped in when they change ([`tls`]), or, with
//! `--tls-secret`, is issued in memory from a CA the webhook keeps in a Secret
//! ([`selftls`], [`ca`]); either way a new one never touches open connections.
//!
//! Routes: `POST /mutate`, `GET /healthz`, `GET /metrics` (see [`metrics`]).

pub mod admission;
pub mod config;
pub mod metrics;

pub use admission::{WebhookState, router};

use crate::cli::{WebhookArgs, WebhookSelfTlsArgs};
use crate::https::{ca, selftls, server, tls};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that stops the webhook from starting (or keeps it from serving).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("--listen {value:?}: not an address and port (for example 0.0.0.0:8443)")]
    BadListen { value: String },
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the SIGTERM handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("self-managed TLS: {0}")]
    SelfTls(#[from] selftls::SelfTlsError),
}

impl WebhookError {
    /// The process exit code ([`crate::exit`]): bad flags, config or certificate files are
    /// usage errors (2); the rest (port taken, signals) are other errors (1).
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            WebhookError::Config(_) | WebhookError::BadListen { .. } | WebhookError::Tls(_) => {
                exit::USAGE
            }
            WebhookError::Bind { .. } | WebhookError::Signal(_) => exit::OTHER,
            WebhookError::SelfTls(e) => e.exit_code(),
        }
    }
}

/// Where the serving certificate comes from.
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Secret(selftls::Settings),
}

/// The certificate source of the flags (clap lets through only one of the two).
fn source(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    self_tls: WebhookSelfTlsArgs,
) -> Result<Source, WebhookError> {
    let WebhookSelfTlsArgs {
        tls_secret,
        webhook_configuration,
        service_name,
        namespace,
        tls_extra_san,
        tls_ca_validity,
        tls_ca_renew_before,
        tls_ca_propagation,
        tls_cert_validity,
        tls_check_interval,
    } = self_tls;
    if let (Some(cert), Some(key)) = (cert, key) {
        return Ok(Source::Files { cert, key });
    }
    let raw = selftls::RawSettings {
        secret: tls_secret.unwrap_or_default(),
        webhook_configuration: Some(webhook_configuration.unwrap_or_default()),
        service: service_name.unwrap_or_default(),
        namespace,
        extra_names: tls_extra_san,
        lifetimes: ca::Lifetimes {
            ca: tls_ca_validity,
            ca_renew_before: tls_ca_renew_before,
            ca_propagation: tls_ca_propagation,
            leaf: tls_cert_validity,
        },
        check_interval: tls_check_interval,
        manage_ca: true,
    };
    Ok(Source::Secret(settings(raw)?))
}

/// [`selftls::Settings::build`] with the pod's namespace from POD_NAMESPACE or the service
/// account's namespace file.
pub fn settings(raw: selftls::RawSettings) -> Result<selftls::Settings, selftls::SelfTlsError> {
    let pod_namespace = std::env::var("POD_NAMESPACE").ok();
    let file = match (&raw.namespace, &pod_namespace) {
        (None, None) => std::fs::read_to_string(selftls::NAMESPACE_FILE).ok(),
        _ => None,
    };
    selftls::Settings::build(raw, pod_namespace, file)
}

/// Runs the webhook until SIGTERM or SIGINT, then lets the requests in flight finish.
pub async fn run(args: WebhookArgs) -> Result<(), WebhookError> {
    let WebhookArgs {
        cert,
        key,
        listen,
        config,
        image,
        cert_check_interval,
        self_tls,
    } = args;
    let source = source(cert, key, self_tls)?;
    let inject = config::load(
        config.as_deref(),
        image,
        matches!(source, Source::Secret(_)),
    )?;
    let addr: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadListen { value: listen })?;
    let metrics = Arc::new(metrics::WebhookMetrics::new());
    let (image, native_sidecar) = (inject.image.clone(), inject.native_sidecar);
    let state = WebhookState::new(inject, metrics.clone());

    // No HTTPS before a certificate is in hand.
    let (resolver, keeper) = match source {
        Source::Files { cert, key } => {
            let resolver = Arc::new(tls::CertResolver::load(&cert, &key)?);
            let m = metrics.clone();
            let keeper = tokio::spawn(tls::watch(
                resolver.clone(),
                cert,
                key,
                cert_check_interval,
                move |ok| m.cert_reloaded(ok),
            ));
            (resolver, keeper)
        }
        Source::Secret(settings) => {
            let (m, p, hub_ca) = (metrics.clone(), metrics.clone(), state.clone());
            let hooks = selftls::Hooks {
                leaf: Box::new(move |ok| m.cert_reloaded(ok)),
                bundle: Box::new(move |pem| hub_ca.set_hub_ca_from_secret(pem)),
                patched: Box::new(move || p.ca_bundle_patched()),
            };
            let (resolver, manager) = selftls::start(settings, hooks).await?;
            (resolver, tokio::spawn(manager.run()))
        }
    };
    let tls_config = tls::server_config(resolver)?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(WebhookError::Signal)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebhookError::Bind { addr, source })?;
    tracing::info!(
        listen = %addr,
        image = %image,
        native_sidecar,
        "webhook serving HTTPS"
    );
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: finishing the requests in flight");
    };
    server::serve(listener, Arc::new(tls_config), router(state), shutdown).await;
    keeper.abort();
    Ok(())
}
