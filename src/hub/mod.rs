//! `ssm-injector hub`: a stateless HTTPS service that tracks the current *versions* (never
//! values) of the parameters and paths its clients watch, reads them for all clients
//! together once per interval without decryption, and answers a long poll
//! (`POST /v1/watch`) as soon as something a client watches changes. docs/hub.md has the
//! protocol.
//!
//! - [`flags`]: the flags → checked [`HubSettings`] (pure).
//! - [`crate::hub_protocol`]: wire types, keys, tokens, request checks (pure), shared with
//!   the sidecar's hub client ([`crate::watch::hub_client`]).
//! - [`registry`]: keys → token, watchers, change generation (pure data structure).
//! - [`spread`]: how long clients spread their re-fetch (pure).
//! - [`poller`]: the one poll loop over [`crate::source::versions::VersionSource`].
//! - [`server`]: the axum router; HTTPS by the shared [`crate::https::Server`], the
//!   certificate from files ([`crate::https::tls`]) or the webhook's CA
//!   ([`crate::https::selftls`]).
//! - [`auth`]: the authentication and policy seams, and the namespace policy (pure).
//! - [`token_review`]: TokenReview answers, service account names, the token cache (pure).
//! - [`token_reviewer`]: `--auth kubernetes`: sends the TokenReviews to the API server (the
//!   `kube` client).
//! - [`events`]: push events (SQS message bodies) → what changed (pure).
//! - [`push`]: the SQS consumer that re-reads the keys an event moves at once.

pub mod auth;
pub mod events;
pub mod flags;
pub mod metrics;
pub mod poller;
pub mod push;
pub mod registry;
pub mod server;
pub mod spread;
pub mod token_review;
pub mod token_reviewer;

use crate::cli::{HubArgs, HubSelfTlsArgs};
use crate::https::{self, ServeError, ca, selftls, tls};
use crate::source::config::{AwsConfigError, load_config};
use crate::source::queue::EventQueue;
use crate::source::versions::VersionSource;
use std::sync::Arc;
use std::time::Duration;

pub use flags::{FlagError, HubSettings};

/// Everything that stops the hub from starting.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    Flags(#[from] FlagError),
    #[error("{0}")]
    Setup(#[from] AwsConfigError),
    /// The certificate files, the port, the signal handlers.
    #[error("{0}")]
    Serve(#[from] ServeError),
    #[error("{0}")]
    Auth(#[from] token_reviewer::SetupError),
    #[error("give --cert and --key, or --tls-secret")]
    NoCertificate,
    #[error("certificate from the webhook's CA: {0}")]
    SelfTls(#[from] selftls::SelfTlsError),
}

impl HubError {
    /// The process exit code: bad flags, region or certificate files are usage errors
    /// (2); the rest (port taken, signals) are other errors (1).
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            HubError::Serve(e) => e.exit_code(),
            HubError::SelfTls(e) => e.exit_code(),
            _ => exit::USAGE,
        }
    }
}

/// The settings of `--tls-secret` (`None` without it): the hub only reads the CA.
fn self_tls_settings(args: HubSelfTlsArgs) -> Result<Option<selftls::Settings>, HubError> {
    let HubSelfTlsArgs {
        tls_secret,
        service_name,
        namespace,
        tls_extra_san,
        tls_ca_propagation,
        tls_cert_validity,
        tls_check_interval,
    } = args;
    let Some(secret) = tls_secret else {
        return Ok(None);
    };
    let raw = selftls::RawSettings {
        secret,
        service: service_name.unwrap_or_default(),
        namespace,
        extra_names: tls_extra_san,
        lifetimes: ca::Lifetimes {
            ca_propagation: tls_ca_propagation,
            leaf: tls_cert_validity,
            ..ca::Lifetimes::default()
        },
        check_interval: tls_check_interval,
        manage_ca: false,
    };
    Ok(Some(selftls::settings(raw)?))
}

/// Runs the hub until SIGTERM or SIGINT; held requests are then answered at once.
pub async fn run(args: HubArgs) -> Result<(), HubError> {
    let HubSettings {
        addr,
        cert,
        key,
        self_tls,
        cert_check_interval,
        interval,
        max_wait,
        client_budget,
        max_spread,
        auth,
        kube,
        max_keys_per_client,
        limits,
        region,
        budget,
        concurrency,
        queue_url,
    } = HubSettings::build(args)?;
    // Without --region the SDK reads these variables: a malformed one is a usage error now,
    // not "AWS could not be reached" after a call to a made-up host.
    if region.is_none()
        && let Some((name, value)) =
            crate::spec::region::malformed_in_environment(&|n| std::env::var(n).ok())
    {
        return Err(FlagError::Region {
            at: format!("environment variable {name}"),
            value,
        }
        .into());
    }
    let self_tls = self_tls_settings(self_tls)?;
    let metrics = Arc::new(metrics::HubMetrics::new());
    let (authorizer, policy) = token_reviewer::setup(auth, kube, metrics.clone()).await?;

    let aws = load_config(region).await?;
    let source = Arc::new(VersionSource::from_config(&aws, budget).with_observer(metrics.clone()));
    // No HTTPS before a certificate is in hand.
    let reloads = metrics.cert_reloads().clone();
    let (resolver, reloader) = match (self_tls, cert, key) {
        (Some(settings), _, _) => {
            let hooks = selftls::Hooks {
                reloads,
                ..Default::default()
            };
            let (resolver, manager) = selftls::start(settings, hooks, None).await?;
            (resolver, tokio::spawn(manager.run()))
        }
        (None, Some(cert), Some(key)) => {
            tls::from_files(cert, key, cert_check_interval, reloads).map_err(ServeError::from)?
        }
        // clap requires --cert and --key, or --tls-secret.
        (None, _, _) => return Err(HubError::NoCertificate),
    };
    let (https_server, stop) = https::Server::https(addr, resolver).await?;
    let https_server = https_server
        .with_limits(limits)
        .counting(metrics.limit_refusals().clone());

    let registry = Arc::new(registry::Registry::new());
    let poller = tokio::spawn(poller::run(
        registry.clone(),
        source.clone(),
        poller::PollerConfig {
            interval,
            ttl: max_wait.max(Duration::from_secs(1)) * 3,
            debounce: Duration::from_millis(25),
            concurrency,
        },
        metrics.clone(),
    ));
    let pusher = queue_url.map(|url| {
        tracing::info!(queue = %url, "push: reading change events from SQS");
        tokio::spawn(push::run(
            Arc::new(EventQueue::new(&aws, url).with_observer(metrics.clone())),
            registry.clone(),
            metrics.clone(),
        ))
    });
    let state = server::HubState {
        registry,
        settings: server::Settings {
            interval,
            max_wait,
            client_budget,
            max_spread,
            max_keys_per_client,
        },
        authorizer,
        policy,
        metrics,
    };
    tracing::info!(
        listen = %addr,
        region = source.region(),
        interval_ms = interval.as_millis() as u64,
        max_wait_s = max_wait.as_secs(),
        budget = %budget,
        "hub serving HTTPS"
    );
    let stopping = state.registry.clone();
    let shutdown = async move {
        stop.wait().await;
        tracing::info!("shutting down: answering the held requests");
        stopping.stop();
    };
    https_server
        .holding(server::held(state.clone()))
        .serve(server::router(state), shutdown)
        .await;
    poller.abort();
    reloader.abort();
    if let Some(p) = pusher {
        p.abort();
    }
    Ok(())
}
