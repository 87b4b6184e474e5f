//! The watch loop itself.

use super::config::WatchConfig;
use super::{hub, reload, schedule, spec_watch};
use crate::admin::{self, Health};
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::output::{Prepared, prepare_outputs, write_outputs};
use crate::source::Source;
use crate::spec::Spec;
use crate::values::Values;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{SignalKind, signal};

/// Why the watch loop could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the signal handler: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot watch the spec file {path}: {reason}")]
    SpecWatch { path: String, reason: String },
}

/// Re-reads the spec (file and flags) after the spec file changed.
pub type Rebuild = Box<dyn Fn() -> Result<Spec, String> + Send>;

/// What one watch loop works on.
pub struct Watch {
    pub config: WatchConfig,
    pub spec: Spec,
    pub outputs: Vec<Prepared>,
    pub source: Source,
    /// The spec file to watch, and how to rebuild the spec from it and the flags.
    pub spec_file: Option<(PathBuf, Rebuild)>,
}

/// One poll's result.
enum Poll {
    Ok {
        changed: bool,
    },
    /// `label` for metrics (the first cause), `message` for the log.
    Failed {
        label: &'static str,
        message: String,
    },
}

/// Runs until SIGTERM or SIGINT; returns after the current write finished.
pub async fn run(w: Watch) -> Result<(), WatchError> {
    let Watch {
        config,
        mut spec,
        mut outputs,
        source,
        spec_file,
    } = w;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(config.stale_after));
    let mut source = source.with_observer(metrics.clone());
    tracing::info!(
        interval_s = config.interval.as_secs_f64(),
        slot_percent = (config.slot * 100.0).round() as u32,
        jitter = config.jitter,
        budget = %spec.budget,
        "watching: one poll per interval at this instance's slot"
    );

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = config.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| WatchError::Listen { addr, source })?;
        let router = admin::router(metrics.clone(), health.clone());
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
        tokio::spawn(async move {
            let shutdown = async {
                let _ = admin_stopped.await;
            };
            if let Err(e) = admin::serve(listener, router, shutdown).await {
                tracing::error!("admin server stopped: {e}");
            }
        });
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(WatchError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(WatchError::Signals)?;
    let (_spec_watcher, mut spec_changed, rebuild) = match spec_file {
        Some((path, rebuild)) => {
            let (watcher, rx) =
                spec_watch::SpecWatcher::start(&path).map_err(|e| WatchError::SpecWatch {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            (Some(watcher), Some(rx), Some(rebuild))
        }
        None => (None, None, None),
    };

    // The version hub, if any: a task long-polls it and tells the loop when to fetch.
    let (hub_events_tx, mut hub_events) = tokio::sync::mpsc::channel::<hub::HubEvent>(16);
    let (hub_requests, hub_requests_rx) = tokio::sync::watch::channel(None);
    let hub_task = config.hub.clone().map(|h| {
        tracing::info!(hub = %h.address(), "following the version hub; polling AWS myself only while it is away");
        tokio::spawn(hub::run(h, hub_requests_rx, hub_events_tx, metrics.clone()))
    });
    let mut hub_covering = false;
    let mut hub_fetch_at: Option<tokio::time::Instant>;

    let mut backoff = Backoff::new(
        config.interval.min(Duration::from_secs(1)),
        config.max_backoff,
    );
    let mut previous: Option<BTreeMap<String, (Option<i64>, u64)>> = None;
    let mut reload_due: Option<Instant> = None;
    let mut last_reload: Option<Instant> = None;
    let hasher = RandomState::new();
    let mut first = true;
    // A sidecar restarted after a crash may find rotated values: then the app must reload.
    let mut existed = outputs.iter().any(|o| o.spec.file.exists());

    loop {
        let started = Instant::now();
        hub_fetch_at = None;
        let poll = poll_once(
            &source,
            &spec,
            &outputs,
            &hasher,
            &mut previous,
            &hub_requests,
        )
        .await;
        let wait = match poll {
            Poll::Ok { changed } => {
                metrics.poll_succeeded(started.elapsed(), changed && !first, unix_now());
                health.record_success(Instant::now());
                if backoff.failures() > 0 {
                    tracing::info!(failures = backoff.failures(), "recovered");
                }
                backoff.reset();
                if changed && (!first || existed) && !config.actions.is_empty() {
                    reload_due = Some(schedule::reload_at(
                        Instant::now(),
                        last_reload,
                        config.debounce,
                    ));
                }
                first = false;
                existed = true;
                schedule::next_poll(
                    unix_time(),
                    config.interval,
                    config.slot,
                    config.jitter,
                    fastrand::f64(),
                )
            }
            Poll::Failed { label, message } => {
                metrics.poll_failed(label);
                let delay = backoff.next_delay(fastrand::f64());
                tracing::error!(
                    failures = backoff.failures(),
                    retry_in_ms = delay.as_millis() as u64,
                    "poll failed, keeping the last good files: {message}"
                );
                delay
            }
        };

        let mut next_poll = tokio::time::Instant::now() + wait;
        loop {
            let reload_at = reload_due.map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = sigterm.recv() => return stop(stop_admin, hub_task, "SIGTERM"),
                _ = sigint.recv() => return stop(stop_admin, hub_task, "SIGINT"),
                _ = tokio::time::sleep_until(next_poll) => {
                    if hub_covering && backoff.failures() == 0 {
                        // The hub watches AWS for us: skip this poll, keep the slot.
                        next_poll = tokio::time::Instant::now() + schedule::next_poll(
                            unix_time(), config.interval, config.slot, config.jitter, fastrand::f64(),
                        );
                        continue;
                    }
                    break;
                }
                _ = sleep_until_opt(hub_fetch_at) => break,
                Some(event) = hub_events.recv() => match event {
                    hub::HubEvent::Covering(c) => hub_covering = c,
                    hub::HubEvent::Changed { keys, spread } => {
                        let at = tokio::time::Instant::now() + spread.mul_f64(fastrand::f64());
                        hub_fetch_at = Some(hub_fetch_at.map_or(at, |t| t.min(at)));
                        tracing::debug!(keys, in_ms = at.saturating_duration_since(tokio::time::Instant::now()).as_millis() as u64, "fetch scheduled after a hub change");
                    }
                },
                _ = sleep_until_opt(reload_at) => {
                    reload_due = None;
                    last_reload = Some(Instant::now());
                    run_actions(&config, &metrics).await;
                }
                Some(()) = recv_opt(&mut spec_changed) => {
                    let Some(rebuild) = &rebuild else { continue };
                    match rebuild().and_then(|s| prepare_outputs(&s).map(|o| (s, o)).map_err(|e| e.to_string())) {
                        Ok((new_spec, new_outputs)) => {
                            if new_spec.region != spec.region || new_spec.concurrency != spec.concurrency || new_spec.budget != spec.budget {
                                match Source::from_env(new_spec.region.clone(), new_spec.concurrency, new_spec.budget).await {
                                    Ok(s) => source = s.with_observer(metrics.clone()),
                                    Err(e) => {
                                        metrics.spec_reloaded(false);
                                        tracing::error!("new spec not used, keeping the old one: {e}");
                                        continue;
                                    }
                                }
                            }
                            tracing::info!("spec file changed: re-read it, polling now");
                            metrics.spec_reloaded(true);
                            spec = new_spec;
                            outputs = new_outputs;
                            previous = None;
                            break;
                        }
                        Err(e) => {
                            metrics.spec_reloaded(false);
                            tracing::error!("spec file changed but is not valid, keeping the old spec: {e}");
                        }
                    }
                }
            }
        }
    }
}

fn stop(
    stop_admin: tokio::sync::oneshot::Sender<()>,
    hub_task: Option<tokio::task::JoinHandle<()>>,
    why: &str,
) -> Result<(), WatchError> {
    tracing::info!("{why}: stopping (no write was in progress)");
    if let Some(t) = hub_task {
        t.abort();
    }
    let _ = stop_admin.send(());
    Ok(())
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv_opt(rx: &mut Option<tokio::sync::mpsc::Receiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Fetches, formats and writes; logs which parameters changed (by name and version).
async fn poll_once(
    source: &Source,
    spec: &Spec,
    outputs: &[Prepared],
    hasher: &RandomState,
    previous: &mut Option<BTreeMap<String, (Option<i64>, u64)>>,
    hub_requests: &tokio::sync::watch::Sender<Option<crate::hub_protocol::WatchRequest>>,
) -> Poll {
    let values = match source.fetch(spec).await {
        Ok(v) => {
            if !hub_requests.is_closed() {
                hub_requests.send_replace(Some(hub::request_for(spec, &v)));
            }
            v
        }
        Err(f) => {
            return Poll::Failed {
                label: f.errors.first().map_or("error", |e| e.cause.label()),
                message: f.to_string(),
            };
        }
    };
    let changed = match write_outputs(outputs, &values) {
        Ok(c) => c,
        Err(e) => {
            return Poll::Failed {
                label: "output",
                message: e.to_string(),
            };
        }
    };
    let now = fingerprints(&values, hasher);
    if let Some(before) = previous.as_ref() {
        let rotated: Vec<String> = now
            .iter()
            .filter(|(name, fp)| before.get(*name) != Some(fp))
            .map(|(name, (version, _))| match version {
                Some(v) => format!("{name} (version {v})"),
                None => name.clone(),
            })
            .collect();
        let removed = before.keys().filter(|k| !now.contains_key(*k)).count();
        if !rotated.is_empty() || removed > 0 {
            tracing::info!(
                files_changed = changed,
                removed,
                "changed: {}",
                rotated.join(", ")
            );
        }
    }
    *previous = Some(now);
    Poll::Ok { changed }
}

/// Name → (version, keyed hash of the value). The hash key is random per process, and
/// the hashes stay in memory: they detect changes of values whose version does not move
/// (Secrets Manager references report version 0).
fn fingerprints(values: &Values, hasher: &RandomState) -> BTreeMap<String, (Option<i64>, u64)> {
    values
        .iter()
        .map(|e| {
            let mut h = hasher.build_hasher();
            h.write(e.value.expose().as_bytes());
            (e.name.clone(), (e.version, h.finish()))
        })
        .collect()
}

async fn run_actions(config: &WatchConfig, metrics: &Metrics) {
    for action in &config.actions {
        match reload::run(action, config.action_timeout).await {
            Ok(()) => {
                metrics.reload(action.label(), true);
                tracing::info!(action = action.label(), "reload action done");
            }
            Err(e) => {
                metrics.reload(action.label(), false);
                tracing::warn!(action = action.label(), "reload action failed: {e}");
            }
        }
    }
}

fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn unix_now() -> f64 {
    unix_time().as_secs_f64()
}
