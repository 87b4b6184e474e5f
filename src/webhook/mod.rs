//! `ssm-injector webhook`: the Kubernetes mutating admission webhook, HTTPS only.
//!
//! The HTTP side only decodes the `admission.k8s.io/v1` AdmissionReview, calls the pure
//! [`crate::inject::mutate`] and encodes its decision ([`review`]). The server is a
//! tokio-rustls accept loop with one hyper HTTP/1.1 connection per client ([`server`]); its
//! certificate comes from files and is swapped in when they change ([`tls`]), without
//! touching open connections.
//!
//! Routes: `POST /mutate`, `GET /healthz`, `GET /metrics` (see [`metrics`]).

pub mod config;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;

pub use review::{WebhookState, router};

use crate::cli::WebhookArgs;
use std::net::SocketAddr;
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
}

impl WebhookError {
    /// The process exit code (`app::exit`): bad flags, config or certificate files are
    /// usage errors (2); the rest (port taken, signals) are other errors (1).
    pub fn exit_code(&self) -> u8 {
        use crate::app::exit;
        match self {
            WebhookError::Config(_) | WebhookError::BadListen { .. } | WebhookError::Tls(_) => {
                exit::USAGE
            }
            WebhookError::Bind { .. } | WebhookError::Signal(_) => exit::OTHER,
        }
    }
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
    } = args;
    let inject = config::load(config.as_deref(), image)?;
    let addr: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadListen { value: listen })?;
    let resolver = Arc::new(tls::CertResolver::load(&cert, &key)?);
    let tls_config = tls::server_config(resolver.clone())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(WebhookError::Signal)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebhookError::Bind { addr, source })?;

    let metrics = Arc::new(metrics::WebhookMetrics::new());
    let reload_metrics = metrics.clone();
    let reloader = tokio::spawn(tls::watch(
        resolver,
        cert,
        key,
        cert_check_interval,
        move |ok| reload_metrics.cert_reloaded(ok),
    ));
    tracing::info!(
        listen = %addr,
        image = %inject.image,
        native_sidecar = inject.native_sidecar,
        "webhook serving HTTPS"
    );
    let state = WebhookState::new(inject, metrics);
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: finishing the requests in flight");
    };
    server::serve(listener, Arc::new(tls_config), router(state), shutdown).await;
    reloader.abort();
    Ok(())
}
