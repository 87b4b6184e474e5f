//! `ssm-injector webhook`: the Kubernetes mutating admission webhook, HTTPS only.
//!
//! The HTTP side only decodes the `admission.k8s.io/v1` AdmissionReview, calls the pure
//! [`crate::inject::mutate`] and encodes its decision ([`admission`]). The server is the
//! shared one ([`crate::https::Server`]); its certificate comes from files and is swapped in
//! when they change ([`crate::https::tls`]), or, with `--tls-secret`, is issued in memory
//! from a CA the webhook keeps in a Secret ([`crate::https::selftls`]), whose bundle it also
//! keeps in its MutatingWebhookConfiguration ([`ca_bundle`]); either way a new certificate
//! never touches open connections.
//!
//! Routes: `POST /mutate`, `GET /healthz`, `GET /metrics` (see [`metrics`]).

pub mod admission;
pub mod ca_bundle;
pub mod config;
pub mod metrics;

pub use admission::{WebhookState, router};

use crate::cli::{WebhookArgs, WebhookSelfTlsArgs};
use crate::https::{self, ServeError, ca, selftls, tls};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that stops the webhook from starting (or keeps it from serving).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// `--listen`, the certificate files, the port, the signal handlers.
    #[error("{0}")]
    Serve(#[from] ServeError),
    #[error("self-managed TLS: {0}")]
    SelfTls(#[from] selftls::SelfTlsError),
}

impl WebhookError {
    /// The process exit code ([`crate::exit`]): bad flags, config or certificate files are
    /// usage errors (2); the rest (port taken, signals) are other errors (1).
    pub fn exit_code(&self) -> u8 {
        match self {
            WebhookError::Config(_) => crate::exit::USAGE,
            WebhookError::Serve(e) => e.exit_code(),
            WebhookError::SelfTls(e) => e.exit_code(),
        }
    }
}

/// Where the serving certificate comes from.
enum Source {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// `--tls-secret`, and the MutatingWebhookConfiguration to keep the CA bundle in.
    Secret {
        settings: selftls::Settings,
        configuration: String,
    },
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
    let settings = selftls::settings(raw)?;
    let configuration = webhook_configuration.unwrap_or_default();
    selftls::check_name("--webhook-configuration", &configuration)?;
    Ok(Source::Secret {
        settings,
        configuration,
    })
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
        request_timeout,
        max_connections,
        self_tls,
    } = args;
    let limits = https::Limits::server(request_timeout, max_connections, admission::MAX_BODY)
        .map_err(ServeError::from)?;
    let source = source(cert, key, self_tls)?;
    let inject = config::load(
        config.as_deref(),
        image,
        matches!(source, Source::Secret { .. }),
    )?;
    let addr = https::parse_listen(&listen).map_err(ServeError::from)?;
    let metrics = Arc::new(metrics::WebhookMetrics::new());
    let (image, native_sidecar) = (inject.image.clone(), inject.native_sidecar);
    let state = WebhookState::new(inject, metrics.clone());

    // No HTTPS before a certificate is in hand.
    let reloads = metrics.cert_reloads().clone();
    let (resolver, keeper) = match source {
        Source::Files { cert, key } => {
            tls::from_files(cert, key, cert_check_interval, reloads).map_err(ServeError::from)?
        }
        Source::Secret {
            settings,
            configuration,
        } => {
            let (patches, hub_ca) = (metrics.clone(), state.clone());
            let configuration =
                ca_bundle::Configuration::new(configuration, move || patches.ca_bundle_patched());
            let hooks = selftls::Hooks {
                reloads,
                bundle: Box::new(move |pem| hub_ca.set_hub_ca_from_secret(pem)),
            };
            let (resolver, manager) =
                selftls::start(settings, hooks, Some(Box::new(configuration))).await?;
            (resolver, tokio::spawn(manager.run()))
        }
    };
    let (server, stop) = https::Server::https(addr, resolver).await?;
    let server = server
        .with_limits(limits)
        .counting(metrics.limit_refusals().clone());
    tracing::info!(
        listen = %addr,
        image = %image,
        native_sidecar,
        "webhook serving HTTPS"
    );
    let shutdown = async move {
        stop.wait().await;
        tracing::info!("shutting down: finishing the requests in flight");
    };
    server.serve(router(state), shutdown).await;
    keeper.abort();
    Ok(())
}
