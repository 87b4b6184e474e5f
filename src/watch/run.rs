//! The watch loop's I/O: it performs what [`Machine`] decides (fetch and write, reload,
//! wait, re-read the spec, stop) and feeds the results, signals, hub news, spec changes and
//! the end of a reload back to it.
//!
//! Signals: SIGTERM and SIGINT stop the loop at once. The AWS calls of a fetch are
//! cancelled (the future is dropped); the write that follows a fetch is synchronous
//! ([`Poller::write`]), so no signal is handled inside it and the exit comes after it. A
//! running reload action is cancelled (a command's whole process group is killed). SIGHUP
//! re-reads the spec file, if any, and polls now.

use super::admin::{self, Health};
use super::config::TokenSource;
use super::config::WatchConfig;
use super::hub_client::{self, HubEvent};
use super::machine::{Action, Machine, Now, Polled, Scope, SpecChange, Stop, Timing};
use super::{reload, spec_watch};
use crate::https::{ServeError, Server};
use crate::hub_protocol::WatchRequest;
use crate::metrics::Metrics;
use crate::output::{Prepared, prepare_outputs, write_outputs};
use crate::serve::endpoint::{self, Endpoint};
use crate::serve::rules::Rules;
use crate::source::Source;
use crate::source::delta::Held;
use crate::spec::Spec;
use crate::supervise::{Env, Restarted, SupervisorHandle};
use crate::values::Values;
use crate::writer::FileMeta;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{Signal, SignalKind, signal};
use zeroize::Zeroizing;

/// Why the watch loop could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The admin port (`--listen`) cannot be bound.
    #[error("{0}")]
    Admin(#[from] ServeError),
    #[error("cannot install the signal handler: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot watch the spec file {path}: {reason}")]
    SpecWatch { path: String, reason: String },
    #[error("--serve: no token from {from}: {reason}")]
    ServeToken { from: String, reason: String },
}

/// Re-reads the spec (file and flags) after the spec file changed.
pub type Rebuild = Box<dyn Fn() -> Result<Spec, String> + Send>;

/// What one watch loop works on.
pub struct Watch {
    pub config: WatchConfig,
    pub spec: Spec,
    pub delivery: Delivery,
    pub source: Source,
    /// The values of a fetch made before the loop (`exec --watch`'s first), by version:
    /// the loop's polls then decrypt only what changed since.
    pub held: Held,
    /// The spec file to watch, and how to rebuild the spec from it and the flags.
    pub spec_file: Option<(PathBuf, Rebuild)>,
    /// The ports, bound by [`bind`] before anything else starts: a port in use ends the
    /// command before a supervised command ever ran.
    pub ports: Ports,
}

/// The watch loop's listening sockets.
pub struct Ports {
    /// `--listen`: `/healthz`, `/readyz`, `/metrics`.
    admin: Option<Server>,
    /// `--serve`: the local endpoint, with its token.
    serve: Option<(Server, Zeroizing<Vec<u8>>)>,
}

/// Binds the admin port of `--listen` and the endpoint of `--serve`, if any, and reads
/// the endpoint's token (making it first, with `token_meta`'s owner and mode, when asked
/// to and the file does not exist).
pub async fn bind(config: &WatchConfig, token_meta: FileMeta) -> Result<Ports, WatchError> {
    let serve = match &config.serve {
        Some((serve, token)) => {
            if let TokenSource::File { path, create: true } = token {
                create_token(path, &token_meta)?;
            }
            let token = read_token(token)?;
            Some((Server::http(serve.addr).await?, token))
        }
        None => None,
    };
    let admin = match config.listen {
        Some(addr) => Some(Server::http(addr).await?),
        None => None,
    };
    Ok(Ports { admin, serve })
}

/// Writes a new random token (32 bytes from the system's CSPRNG, hex) to `path` unless it
/// exists: a restarted sidecar keeps the token the app has read.
fn create_token(path: &std::path::Path, meta: &FileMeta) -> Result<(), WatchError> {
    if path.exists() {
        return Ok(());
    }
    let fail = |reason: String| WatchError::ServeToken {
        from: path.display().to_string(),
        reason,
    };
    let mut raw = Zeroizing::new([0u8; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw[..])
        .map_err(|_| fail("the system's random source failed".to_owned()))?;
    let mut hex = Zeroizing::new(String::with_capacity(64));
    for b in raw.iter() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    crate::writer::write_file(path, hex.as_bytes(), meta).map_err(|e| fail(e.to_string()))?;
    tracing::info!(path = %path.display(), "made a new token for the local endpoint");
    Ok(())
}

/// The endpoint's token: the file's content or `AWS_SESSION_TOKEN`, trimmed, not empty.
fn read_token(source: &TokenSource) -> Result<Zeroizing<Vec<u8>>, WatchError> {
    let (raw, from) = match source {
        TokenSource::File { path, .. } => (
            std::fs::read(path).map_err(|e| WatchError::ServeToken {
                from: path.display().to_string(),
                reason: e.to_string(),
            })?,
            path.display().to_string(),
        ),
        TokenSource::SessionToken => (
            std::env::var_os("AWS_SESSION_TOKEN")
                .map(|v| v.into_encoded_bytes())
                .unwrap_or_default(),
            "AWS_SESSION_TOKEN".to_owned(),
        ),
    };
    let raw = Zeroizing::new(raw);
    let token = raw.trim_ascii();
    if token.is_empty() {
        return Err(WatchError::ServeToken {
            from,
            reason: "it is empty or not set: give --serve-token-file FILE".to_owned(),
        });
    }
    Ok(Zeroizing::new(token.to_vec()))
}

/// Where the values go.
pub enum Delivery {
    /// Files written atomically (`render --watch`); a change runs the reload actions.
    Files(Vec<Prepared>),
    /// The environment of a supervised command (`exec --watch`), started before the loop
    /// with the values of its first fetch; a change restarts it.
    Env(EnvDelivery),
}

/// Builds a supervised command's environment from a set of values (the error says why
/// it cannot be built, naming keys only).
pub type EnvBuilder = Box<dyn Fn(&Values) -> Result<Env, String> + Send>;

/// `exec --watch`'s side of the loop.
pub struct EnvDelivery {
    pub supervisor: SupervisorHandle,
    /// Ends with the exit code once the command has ended for good.
    pub ended: tokio::task::JoinHandle<u8>,
    /// The environment for a set of values (key case, clashes: as `exec`).
    pub build: EnvBuilder,
    /// The values the command runs with: their fingerprint ([`env_fingerprint`]) with
    /// `hasher`'s key.
    pub running: u64,
    pub hasher: RandomState,
}

/// Why a poll wrote nothing: `label` for metrics (the first cause), `message` for the log.
struct Failure {
    label: &'static str,
    message: String,
}

/// Runs until SIGTERM or SIGINT (files: returns at once, or after the write in progress;
/// 0), or until the supervised command has ended for good (its exit code).
pub async fn run(w: Watch) -> Result<u8, WatchError> {
    let Watch {
        config,
        spec,
        delivery,
        source,
        held,
        spec_file,
        ports,
    } = w;
    let (outputs, env, mut command_ended) = match delivery {
        Delivery::Files(outputs) => (outputs, None, None),
        Delivery::Env(EnvDelivery {
            supervisor,
            ended,
            build,
            running,
            hasher,
        }) => (
            Vec::new(),
            Some((
                EnvTarget {
                    supervisor,
                    build,
                    running,
                    pending: None,
                },
                hasher,
            )),
            Some(ended),
        ),
    };
    let (mut env, hasher) = match env {
        Some((target, hasher)) => (Some(target), hasher),
        None => (None, RandomState::new()),
    };
    // First: from here on SIGHUP never kills, and SIGTERM waits for no write. With a
    // supervised command, the supervisor catches them and passes them on.
    let mut signals = Signals::install(env.is_none()).map_err(WatchError::Signals)?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(config.stale_after));
    let source = Arc::new(source.with_observer(metrics.clone()));
    tracing::info!(
        interval_s = config.interval.as_secs_f64(),
        slot_percent = (config.slot * 100.0).round() as u32,
        jitter = config.jitter,
        budget = %spec.budget,
        "watching: one poll per interval at this instance's slot"
    );

    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_serve, serve_stopped) = tokio::sync::oneshot::channel::<()>();
    let endpoint = match (ports.serve, &config.serve) {
        (Some((server, token)), Some((serve, _))) => {
            let rules = Rules::new(&spec.params, &spec.paths, &serve.allow);
            let endpoint = Arc::new(Endpoint::new(serve, rules, token, source.clone()));
            if let Ok(addr) = server.local_addr() {
                tracing::info!(%addr, "serving the Lambda extension's API for the watched values");
            }
            let server = server.with_limits(endpoint::LIMITS);
            tokio::spawn(server.serve(endpoint::router(endpoint.clone()), async {
                let _ = serve_stopped.await;
            }));
            Some(endpoint)
        }
        _ => None,
    };
    if let Some(server) = ports.admin {
        let router = admin::router(metrics.clone(), health.clone());
        if let Ok(addr) = server.local_addr() {
            tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
        }
        tokio::spawn(server.serve(router, async {
            let _ = admin_stopped.await;
        }));
    }
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
    let (hub_events_tx, mut hub_events) = tokio::sync::mpsc::channel::<HubEvent>(16);
    let (hub_requests, hub_requests_rx) = tokio::sync::watch::channel(None);
    let hub_task = config.hub.clone().map(|h| {
        tracing::info!(hub = %h.address(), "following the version hub; polling AWS myself only while it is away");
        tokio::spawn(hub_client::run(h, hub_requests_rx, hub_events_tx, metrics.clone()))
    });

    // A sidecar restarted after a crash may find rotated values: then the app must reload.
    // A supervised command runs with the values of the first fetch: any change restarts.
    let existed = env.is_some() || outputs.iter().any(|o| o.spec.file.exists());
    let timing = Timing {
        interval: config.interval,
        slot: config.slot,
        jitter: config.jitter,
        max_backoff: config.max_backoff,
        debounce: config.debounce,
        reloads: !config.actions.is_empty() || env.is_some(),
    };
    let mut machine = Machine::new(timing, existed, fastrand::f64);
    if env.is_some() {
        // The fetch before the command started was this loop's first poll: its values are
        // the endpoint's from the start (the command may read them at once).
        let polled = machine.on_poll(Ok::<bool, Failure>(false), now());
        report(polled, Instant::now(), &metrics, &health);
        if let Some(e) = &endpoint {
            e.publish(held.clone());
        }
    }
    let actions = Arc::new(Actions {
        list: config.actions.clone(),
        timeout: config.action_timeout,
    });
    // The reload actions running in the background, if any.
    let mut reloading: Option<tokio::task::JoinHandle<()>> = None;
    let mut poller = Poller {
        source,
        spec,
        outputs,
        hasher,
        previous: None,
        first: true,
        held,
        hub_requests,
        metrics: metrics.clone(),
        env: env.take(),
        endpoint,
        _stop_serve: stop_serve,
    };

    let has_spec_file = rebuild.is_some();
    // The keys the hub reported changed since the last fetch (its wire form).
    let mut hub_changed: BTreeSet<String> = BTreeSet::new();
    // Start-up's pages of the binary are given back after the first good poll, once.
    let mut trimmed = false;
    loop {
        match machine.next(now()) {
            Action::Stop(signal) => {
                stop(stop_admin, hub_task, reloading, signal.name()).await;
                return Ok(crate::exit::OK);
            }
            Action::Fetch(scope) => {
                let started = Instant::now();
                let changed = std::mem::take(&mut hub_changed);
                let changed = match scope {
                    Scope::HubChanged => Some(changed),
                    Scope::All => None,
                };
                // A stop signal drops the fetch: its AWS calls are cancelled, nothing is
                // written. The write runs after it, with no await inside: never cut.
                let fetched = tokio::select! {
                    fetched = poller.fetch(changed) => Some(fetched),
                    () = signals.until_stop(&mut machine, has_spec_file) => None,
                    code = ended(&mut command_ended) => {
                        return Ok(command_gone(code, stop_admin, hub_task, reloading).await);
                    }
                };
                match fetched {
                    Some(fetched) => {
                        let result = fetched.and_then(|values| poller.write(&values));
                        let polled = machine.on_poll(result, now());
                        let succeeded = matches!(polled, Polled::Succeeded { .. });
                        report(polled, started, &metrics, &health);
                        if succeeded && !std::mem::replace(&mut trimmed, true) {
                            let released = crate::trim::release_startup_pages();
                            tracing::debug!(
                                bytes = released.bytes,
                                mappings = released.mappings,
                                failures = released.failures,
                                "start-up pages of the binary given back"
                            );
                        }
                    }
                    None => tracing::info!("the fetch in progress was cancelled; nothing written"),
                }
            }
            Action::Reload => {
                // In the background: polling goes on while an action hangs.
                reloading = Some(match poller.env.as_mut() {
                    Some(target) => tokio::spawn(restart(target.take_restart(), metrics.clone())),
                    None => tokio::spawn(run_actions(actions.clone(), metrics.clone())),
                });
            }
            Action::Hangup => {
                if let Some(rebuild) = &rebuild {
                    respec(
                        &mut poller,
                        rebuild,
                        &mut machine,
                        &mut signals,
                        has_spec_file,
                    )
                    .await;
                }
            }
            Action::Wait { until } => tokio::select! {
                code = ended(&mut command_ended) => {
                    return Ok(command_gone(code, stop_admin, hub_task, reloading).await);
                }
                received = signals.recv() => received.apply(&mut machine, has_spec_file),
                _ = tokio::time::sleep_until(until.into()) => {}
                () = finished(&mut reloading) => machine.on_reload_done(),
                Some(event) = hub_events.recv() => {
                    let keys = match &event {
                        HubEvent::Changed { keys, .. } => {
                            hub_changed.extend(keys.iter().cloned());
                            keys.len()
                        }
                        HubEvent::Covering(_) => 0,
                    };
                    if let Some(delay) = machine.on_hub(event, now()) {
                        tracing::debug!(keys, in_ms = delay.as_millis() as u64, "fetch scheduled after a hub change");
                    }
                }
                Some(()) = recv_opt(&mut spec_changed) => {
                    if let Some(rebuild) = &rebuild {
                        respec(&mut poller, rebuild, &mut machine, &mut signals, has_spec_file).await;
                    }
                }
            },
        }
    }
}

/// Counts and logs a poll's outcome.
fn report(polled: Polled<Failure>, started: Instant, metrics: &Metrics, health: &Health) {
    match polled {
        Polled::Succeeded {
            rotated,
            recovered_after,
        } => {
            metrics.poll_succeeded(started.elapsed(), rotated, unix_now());
            health.record_success(Instant::now());
            if let Some(failures) = recovered_after {
                tracing::info!(failures, "recovered");
            }
        }
        Polled::Failed {
            failure,
            failures,
            retry_in,
        } => {
            metrics.poll_failed(failure.label);
            tracing::error!(
                failures,
                retry_in_ms = retry_in.as_millis() as u64,
                "poll failed, keeping the last good files: {}",
                failure.message
            );
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP; none with a supervised command (its supervisor catches
/// them and passes them on).
struct Signals(Option<(Signal, Signal, Signal)>);

/// A signal received.
#[derive(Debug, Clone, Copy)]
enum Received {
    Stop(Stop),
    Hangup,
}

impl Received {
    /// Hands the signal to the machine; a SIGHUP is logged, once per signal.
    fn apply(self, machine: &mut Machine, has_spec_file: bool) {
        match self {
            Received::Stop(s) => machine.on_signal(s),
            Received::Hangup => {
                if has_spec_file {
                    tracing::info!("SIGHUP: re-reading the spec file and polling now");
                } else {
                    tracing::info!("SIGHUP: polling now");
                }
                machine.on_hangup();
            }
        }
    }
}

impl Signals {
    fn install(catch: bool) -> std::io::Result<Signals> {
        if !catch {
            return Ok(Signals(None));
        }
        Ok(Signals(Some((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))))
    }

    /// The next signal; never without them.
    async fn recv(&mut self) -> Received {
        let Some((term, int, hup)) = &mut self.0 else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => Received::Stop(Stop::Term),
            _ = int.recv() => Received::Stop(Stop::Interrupt),
            _ = hup.recv() => Received::Hangup,
        }
    }

    /// Hands signals to the machine until a stop signal comes (a SIGHUP is noted for
    /// after the work in progress); then the caller drops that work.
    async fn until_stop(&mut self, machine: &mut Machine, has_spec_file: bool) {
        loop {
            let received = self.recv().await;
            received.apply(machine, has_spec_file);
            if let Received::Stop(_) = received {
                return;
            }
        }
    }
}

/// Re-reads the spec; a stop signal meanwhile cancels it (the old spec stays: nothing is
/// replaced before the new one is complete).
async fn respec(
    poller: &mut Poller,
    rebuild: &Rebuild,
    machine: &mut Machine,
    signals: &mut Signals,
    has_spec_file: bool,
) {
    let change = tokio::select! {
        change = poller.respec(rebuild) => change,
        () = signals.until_stop(machine, has_spec_file) => return,
    };
    machine.on_spec(change);
}

/// Stops the loop: cancels a running reload action (and waits until it is gone: a
/// command's process group is killed), stops the hub client and the admin port.
async fn stop(
    stop_admin: tokio::sync::oneshot::Sender<()>,
    hub_task: Option<tokio::task::JoinHandle<()>>,
    reloading: Option<tokio::task::JoinHandle<()>>,
    why: &str,
) {
    tracing::info!("{why}: stopping (no write was in progress)");
    if let Some(t) = reloading {
        t.abort();
        if t.await.is_err_and(|e| e.is_cancelled()) {
            tracing::info!("the running reload action was cancelled");
        }
    }
    if let Some(t) = hub_task {
        t.abort();
    }
    let _ = stop_admin.send(());
}

/// The supervised command ended for good: stops the loop's helpers; the code to exit with.
async fn command_gone(
    code: u8,
    stop_admin: tokio::sync::oneshot::Sender<()>,
    hub_task: Option<tokio::task::JoinHandle<()>>,
    reloading: Option<tokio::task::JoinHandle<()>>,
) -> u8 {
    tracing::info!(exit = code, "the command ended: exiting with its code");
    if let Some(t) = reloading {
        t.abort();
    }
    if let Some(t) = hub_task {
        t.abort();
    }
    let _ = stop_admin.send(());
    code
}

/// The supervised command's end (its exit code); never without one. A supervisor task
/// that died (it cannot panic: `panic = "abort"`) counts as exit code 1.
async fn ended(task: &mut Option<tokio::task::JoinHandle<u8>>) -> u8 {
    match task {
        Some(t) => t.await.unwrap_or(crate::exit::OTHER),
        None => std::future::pending().await,
    }
}

/// Restarts the supervised command with new values (in a task of its own:
/// [`Action::Reload`]); counted as the `restart` reload action.
async fn restart(restart: Option<(SupervisorHandle, Env)>, metrics: Arc<Metrics>) {
    let Some((supervisor, env)) = restart else {
        return;
    };
    match supervisor.restart(env).await {
        Restarted::Done { old_exit } => {
            metrics.reload("restart", true);
            tracing::info!(old_exit, "the command runs with the new values");
        }
        Restarted::Limited => {
            metrics.reload("restart", false);
            tracing::error!(
                "the restart limit (--max-restarts-per-hour) is reached: the command keeps running with its old values"
            );
        }
        Restarted::Stopping | Restarted::Failed => {}
    }
}

/// Completes when the background reload ends (and forgets it); never without one.
async fn finished(task: &mut Option<tokio::task::JoinHandle<()>>) {
    let Some(t) = task else {
        return std::future::pending().await;
    };
    if let Err(e) = t.await {
        tracing::warn!("the reload actions ended abnormally: {e}");
    }
    *task = None;
}

async fn recv_opt(rx: &mut Option<tokio::sync::mpsc::Receiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What a fetch works with; a new spec replaces the spec, the outputs and, when its
/// region, concurrency or budget differ, the source.
struct Poller {
    source: Arc<Source>,
    spec: Spec,
    outputs: Vec<Prepared>,
    hasher: RandomState,
    /// The fingerprints of the values last fetched, to log what changed.
    previous: Option<BTreeMap<String, (Option<i64>, u64)>>,
    /// No fetch has run yet: the first one does not wait for the call budget.
    first: bool,
    /// The values of the last poll, by version: a poll decrypts only what changed.
    held: Held,
    hub_requests: tokio::sync::watch::Sender<Option<WatchRequest>>,
    metrics: Arc<Metrics>,
    /// The supervised command whose environment the values are (`exec --watch`).
    env: Option<EnvTarget>,
    /// The local endpoint (`--serve`): given the held values of each successful poll.
    endpoint: Option<Arc<Endpoint>>,
    /// Dropped with the poller: the endpoint stops serving.
    _stop_serve: tokio::sync::oneshot::Sender<()>,
}

/// The supervised command's environment as the poller sees it.
struct EnvTarget {
    supervisor: SupervisorHandle,
    build: EnvBuilder,
    /// The keyed fingerprint of the environment the command runs with (or will, once the
    /// restart that is due has run).
    running: u64,
    /// The environment of the restart that is due.
    pending: Option<Env>,
}

impl EnvTarget {
    /// Builds the environment for `values`; whether it differs from the one the command
    /// runs with (then it is the next restart's).
    fn offer(&mut self, values: &Values, hasher: &RandomState) -> Result<bool, Failure> {
        let env = (self.build)(values).map_err(|message| Failure {
            label: "output",
            message,
        })?;
        let fingerprint = env_fingerprint(&env, hasher);
        if fingerprint == self.running {
            return Ok(false);
        }
        self.running = fingerprint;
        self.pending = Some(env);
        Ok(true)
    }

    /// The due restart's handle and environment.
    fn take_restart(&mut self) -> Option<(SupervisorHandle, Env)> {
        Some((self.supervisor.clone(), self.pending.take()?))
    }
}

/// A keyed hash of an environment (names and values, in order); the key is random per
/// process and the hash stays in memory.
pub fn env_fingerprint(env: &Env, hasher: &RandomState) -> u64 {
    let mut h = hasher.build_hasher();
    for (k, v) in env {
        h.write(k.as_bytes());
        h.write_u8(0);
        h.write(v.expose().as_bytes());
        h.write_u8(0);
    }
    h.finish()
}

impl Poller {
    /// Fetches the values (the AWS calls: cancellable, nothing is written here): versions
    /// without decryption, then only what changed with decryption. `hub_changed`: only
    /// the keys the hub reported changed (wire form); a key that cannot be read back
    /// means everything.
    async fn fetch(&mut self, hub_changed: Option<BTreeSet<String>>) -> Result<Values, Failure> {
        let changed = hub_changed.and_then(|keys| hub_client::changed_keys(&keys));
        // The first fetch does not wait for the call budget (it only delays the start);
        // the guard ends the exemption when the fetch ends or is cancelled.
        let _exempt = std::mem::take(&mut self.first)
            .then(|| self.source.exempt_from_budget())
            .flatten();
        let polled = match &changed {
            Some(c) => {
                self.source
                    .poll_changed(&self.spec, &mut self.held, c)
                    .await
            }
            None => self.source.poll(&self.spec, &mut self.held).await,
        };
        self.metrics.held_locked(self.held.locked());
        match polled {
            Ok(v) => {
                if let Some(e) = &self.endpoint {
                    e.publish(self.held.clone());
                }
                if !self.hub_requests.is_closed() {
                    self.hub_requests
                        .send_replace(Some(hub_client::request_for(&self.spec, &v)));
                }
                Ok(v)
            }
            Err(f) => Err(Failure {
                label: f.errors.first().map_or("error", |e| e.cause.label()),
                message: f.to_string(),
            }),
        }
    }

    /// Formats and writes; logs which parameters changed (by name and version).
    /// `Ok(changed)`: whether any file changed. Synchronous on purpose: a signal is never
    /// handled in the middle of a write, and the stop waits for its end.
    fn write(&mut self, values: &Values) -> Result<bool, Failure> {
        let changed = match self.env.as_mut() {
            Some(env) => env.offer(values, &self.hasher)?,
            None => write_outputs(&self.outputs, values).map_err(|e| Failure {
                label: "output",
                message: e.to_string(),
            })?,
        };
        let now = fingerprints(values, &self.hasher);
        if let Some(before) = self.previous.as_ref() {
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
        self.previous = Some(now);
        Ok(changed)
    }

    /// Re-reads the spec after the spec file changed; keeps the old one if the new one is
    /// not valid or its AWS client cannot be built.
    async fn respec(&mut self, rebuild: &Rebuild) -> SpecChange {
        let rebuilt = rebuild().and_then(|s| {
            prepare_outputs(&s)
                .map(|o| (s, o))
                .map_err(|e| e.to_string())
        });
        let (new_spec, new_outputs) = match rebuilt {
            Ok(new) => new,
            Err(e) => {
                self.metrics.spec_reloaded(false);
                tracing::error!("spec file changed but is not valid, keeping the old spec: {e}");
                return SpecChange::Rejected;
            }
        };
        if new_spec == self.spec && new_outputs == self.outputs {
            // One rename can reach us as several file events; a touch changes nothing.
            tracing::debug!("spec file event, but the spec and its templates are unchanged");
            self.metrics.spec_unchanged();
            return SpecChange::Unchanged;
        }
        let spec = &self.spec;
        if new_spec.region != spec.region
            || new_spec.concurrency != spec.concurrency
            || new_spec.budget != spec.budget
        {
            match Source::from_env(
                new_spec.region.clone(),
                new_spec.concurrency,
                new_spec.budget,
            )
            .await
            {
                Ok(s) => self.source = Arc::new(s.with_observer(self.metrics.clone())),
                Err(e) => {
                    self.metrics.spec_reloaded(false);
                    tracing::error!("new spec not used, keeping the old one: {e}");
                    return SpecChange::Rejected;
                }
            }
        }
        tracing::info!("spec file changed: re-read it, polling now");
        self.metrics.spec_reloaded(true);
        self.spec = new_spec;
        self.outputs = new_outputs;
        self.previous = None;
        // A new spec (maybe another region or account) starts with nothing held.
        self.held = Held::default();
        if let Some(e) = &self.endpoint {
            e.respec(&self.spec, self.source.clone());
        }
        SpecChange::Applied
    }
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

/// The reload actions and their time limit, shared with the background task.
struct Actions {
    list: Vec<crate::reload_action::Action>,
    timeout: Duration,
}

/// Runs the reload actions one after the other (in a task of its own: [`Action::Reload`]).
async fn run_actions(actions: Arc<Actions>, metrics: Arc<Metrics>) {
    for action in &actions.list {
        match reload::run(action, actions.timeout).await {
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

fn now() -> Now {
    Now {
        at: tokio::time::Instant::now().into_std(),
        unix: unix_time(),
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
