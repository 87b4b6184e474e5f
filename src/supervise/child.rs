//! The supervised command's process: started with the values in its environment, signals
//! forwarded, every ended child reaped, restarted on request, its end passed on.
//!
//! One task ([`Supervisor::run`]) owns the child. It waits for `SIGCHLD` and reaps with
//! `waitpid(-1)`: as PID 1 (or a subreaper, which the process makes itself otherwise) it
//! is the parent of every orphan in the container, and a zombie left unreaped would fill
//! the process table. So `exec --watch` runs no other child process of its own.
//!
//! The child gets its own process group, so that `SIGKILL` after the grace period reaches
//! whatever it started too; every other signal goes to the child alone, as a shell's `exec`
//! would have it receive them.

use super::limit::RestartLimit;
use super::status::exit_code;
use crate::secret::Secret;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

/// The values, as the child's environment adds them to this process's.
pub type Env = Vec<(String, Secret)>;

/// How the command is run and restarted.
#[derive(Debug, Clone)]
pub struct Command {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Sent to the child to restart it (`--restart-signal`).
    pub restart_signal: Signal,
    /// How long the child has to end after the restart signal; then its process group gets
    /// `SIGKILL` (`--restart-grace`).
    pub grace: Duration,
    /// Start the command again when it ends on its own (`--restart-on-exit`), within the
    /// restart limit; otherwise the supervisor ends with the child's exit code.
    pub restart_on_exit: bool,
    /// Restarts allowed per hour, for changes and exits alike.
    pub limit: RestartLimit,
}

/// Why the command could not be supervised.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl SuperviseError {
    /// As `exec`: 127 when the command is not found, 126 when it cannot be run.
    pub fn exit_code(&self) -> u8 {
        match self {
            SuperviseError::Spawn { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                crate::exit::EXEC_NOT_FOUND
            }
            SuperviseError::Spawn { .. } => crate::exit::EXEC_FAILED,
            SuperviseError::Signals(_) => crate::exit::OTHER,
        }
    }
}

/// What became of a restart asked for with [`SupervisorHandle::restart`].
#[derive(Debug, PartialEq, Eq)]
pub enum Restarted {
    /// The old child ended (with this code) and the new one runs.
    Done { old_exit: u8 },
    /// The restart limit is reached: the old child keeps running with its old values.
    Limited,
    /// The supervisor is stopping or has ended: nothing was done.
    Stopping,
    /// The new child could not be started (the supervisor then ends with the error's code).
    Failed,
}

/// What the supervisor reports besides restarts.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildEvent {
    /// The child ended on its own (no restart asked) with this code and was started again
    /// (`--restart-on-exit`).
    RestartedAfterExit { exit: u8 },
    /// An orphan was reaped.
    Reaped,
}

/// Asks the supervisor for restarts.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    requests: mpsc::Sender<(Env, oneshot::Sender<Restarted>)>,
}

impl SupervisorHandle {
    /// Restarts the child with `env`: the restart signal, at most the grace period, then
    /// `SIGKILL`; the new child starts once the old one is gone.
    pub async fn restart(&self, env: Env) -> Restarted {
        let (tx, rx) = oneshot::channel();
        if self.requests.send((env, tx)).await.is_err() {
            return Restarted::Stopping;
        }
        rx.await.unwrap_or(Restarted::Stopping)
    }
}

/// The signals passed on to the child. `SIGTERM`, `SIGINT` and `SIGQUIT` also mean the
/// supervisor ends once the child has.
const FORWARDED: [(Signal, bool); 7] = [
    (Signal::SIGTERM, true),
    (Signal::SIGINT, true),
    (Signal::SIGQUIT, true),
    (Signal::SIGHUP, false),
    (Signal::SIGUSR1, false),
    (Signal::SIGUSR2, false),
    (Signal::SIGWINCH, false),
];

/// The running child and what the supervisor listens to.
pub struct Supervisor {
    command: Command,
    env: Env,
    child: Pid,
    requests: mpsc::Receiver<(Env, oneshot::Sender<Restarted>)>,
    events: mpsc::UnboundedSender<ChildEvent>,
    chld: tokio::signal::unix::Signal,
    forwarded: Vec<(Signal, bool, tokio::signal::unix::Signal)>,
    /// A stop signal was passed on: the next end of the child is the supervisor's.
    stopping: bool,
    /// Every [`SupervisorHandle`] is gone: no restart can be asked for any more.
    unrequested: bool,
}

impl Supervisor {
    /// Starts `command` with `env`; from now on signals are caught (and passed on by
    /// [`Supervisor::run`]) and this process reaps orphans. Events other than restarts
    /// go to the returned receiver.
    pub fn start(
        command: Command,
        env: Env,
    ) -> Result<
        (
            Supervisor,
            SupervisorHandle,
            mpsc::UnboundedReceiver<ChildEvent>,
        ),
        SuperviseError,
    > {
        // Before the child exists: its end must not be missed.
        let chld = signal(SignalKind::child()).map_err(SuperviseError::Signals)?;
        let forwarded = FORWARDED
            .iter()
            .map(|&(sig, stops)| signal(SignalKind::from_raw(sig as i32)).map(|s| (sig, stops, s)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SuperviseError::Signals)?;
        if std::process::id() != 1 {
            // Orphans of the child's tree come to us (as they would to a PID 1).
            if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
                tracing::warn!("cannot become a subreaper ({e}): orphans go to PID 1");
            }
        }
        let child = spawn(&command, &env)?;
        let (tx, requests) = mpsc::channel(1);
        let (events_tx, events) = mpsc::unbounded_channel();
        Ok((
            Supervisor {
                command,
                env,
                child,
                requests,
                events: events_tx,
                chld,
                forwarded,
                stopping: false,
                unrequested: false,
            },
            SupervisorHandle { requests: tx },
            events,
        ))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_raw().unsigned_abs()
    }

    /// Supervises until the child ends for good; the exit code to end with: the child's
    /// (128 + signal if a signal ended it), or the start error's.
    pub async fn run(mut self) -> u8 {
        loop {
            let ended = tokio::select! {
                _ = self.chld.recv() => self.reap(),
                sig = forwarded_signal(&mut self.forwarded) => {
                    self.pass_on(sig);
                    None
                }
                request = self.requests.recv(), if !self.stopping && !self.unrequested => {
                    let Some((env, reply)) = request else {
                        // Not `continue` on every turn: a closed channel is always ready.
                        self.unrequested = true;
                        continue;
                    };
                    let (answer, end) = self.restart(env).await;
                    let _ = reply.send(answer);
                    end
                }
            };
            let Some(code) = ended else { continue };
            if self.stopping || !self.command.restart_on_exit {
                return code;
            }
            if !self.command.limit.try_restart(std::time::Instant::now()) {
                tracing::error!(
                    exit = code,
                    "the command ended and the restart limit is reached: ending with its code"
                );
                return code;
            }
            tracing::warn!(exit = code, "the command ended: starting it again");
            match spawn(&self.command, &self.env) {
                Ok(pid) => {
                    self.child = pid;
                    let _ = self
                        .events
                        .send(ChildEvent::RestartedAfterExit { exit: code });
                }
                Err(e) => {
                    tracing::error!("{e}");
                    return e.exit_code();
                }
            }
        }
    }

    /// Passes `sig` on to the child; a stop signal makes its next end the last.
    fn pass_on(&mut self, (sig, stops): (Signal, bool)) {
        if stops {
            self.stopping = true;
        }
        tracing::info!(signal = %sig, pid = self.pid(), "passing the signal on to the command");
        if let Err(e) = kill(self.child, sig) {
            tracing::debug!(signal = %sig, "the command is gone already: {e}");
        }
    }

    /// Reaps every ended child; the exit code if the command was one of them.
    fn reap(&mut self) -> Option<u8> {
        let mut ours = None;
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return ours,
                Ok(status) => {
                    let Some(code) = exit_code(&status) else {
                        continue;
                    };
                    if status.pid() == Some(self.child) {
                        ours = Some(code);
                    } else {
                        tracing::debug!(pid = ?status.pid(), "reaped an orphan");
                        let _ = self.events.send(ChildEvent::Reaped);
                    }
                }
            }
        }
    }

    /// Stops the child (the restart signal, the grace period, then `SIGKILL` to its
    /// process group) and starts it again with `env`. Signals that come meanwhile are
    /// passed on; a stop signal among them means no new child: then the old one's exit
    /// code is returned as the supervisor's end.
    async fn restart(&mut self, env: Env) -> (Restarted, Option<u8>) {
        if !self.command.limit.try_restart(std::time::Instant::now()) {
            return (Restarted::Limited, None);
        }
        let sig = self.command.restart_signal;
        tracing::info!(signal = %sig, pid = self.pid(), "restarting the command with the new values");
        let _ = kill(self.child, sig);
        let deadline = tokio::time::Instant::now() + self.command.grace;
        let mut killed = false;
        let old_exit = loop {
            tokio::select! {
                _ = self.chld.recv() => {
                    if let Some(code) = self.reap() {
                        break code;
                    }
                }
                sig = forwarded_signal(&mut self.forwarded) => self.pass_on(sig),
                () = tokio::time::sleep_until(deadline), if !killed => {
                    tracing::warn!(
                        grace_ms = self.command.grace.as_millis() as u64,
                        "the command did not end within the grace period: SIGKILL"
                    );
                    let _ = killpg(self.child, Signal::SIGKILL);
                    killed = true;
                }
            }
        };
        if self.stopping {
            return (Restarted::Stopping, Some(old_exit));
        }
        self.env = env;
        match spawn(&self.command, &self.env) {
            Ok(pid) => {
                self.child = pid;
                (Restarted::Done { old_exit }, None)
            }
            Err(e) => {
                tracing::error!("{e}");
                (Restarted::Failed, Some(e.exit_code()))
            }
        }
    }
}

/// The next forwarded signal.
async fn forwarded_signal(
    signals: &mut [(Signal, bool, tokio::signal::unix::Signal)],
) -> (Signal, bool) {
    std::future::poll_fn(|cx| {
        for (sig, stops, stream) in signals.iter_mut() {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready((*sig, *stops));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Starts the command in its own process group with `env` added to this process's
/// environment. If the supervisor dies without passing the end on (`SIGKILL`, the OOM
/// killer), the kernel kills the command too ([`die_with_parent`]): it never runs on,
/// orphaned, with values nobody keeps current.
fn spawn(command: &Command, env: &Env) -> Result<Pid, SuperviseError> {
    let mut cmd = std::process::Command::new(&command.program);
    cmd.args(&command.args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.expose())))
        .process_group(0);
    die_with_parent(&mut cmd);
    let child = cmd.spawn().map_err(|source| SuperviseError::Spawn {
        command: command.program.to_string_lossy().into_owned(),
        source,
    })?;
    // The std handle is dropped without waiting: the child is reaped by `waitpid(-1)`.
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    tracing::info!(pid, command = %command.program.to_string_lossy(), "command started");
    Ok(Pid::from_raw(pid))
}

/// Asks the kernel to send the child `SIGKILL` when its parent (this process's thread
/// that spawns: the only one, the runtime is single-threaded) dies
/// (`prctl(PR_SET_PDEATHSIG)`), and fails the start if the parent died already.
///
/// `pre_exec` is the only way std offers to run code in the child before `exec`, and it is
/// `unsafe` because that code runs in a forked copy of a process that may have had other
/// threads: it must not allocate or take locks. This closure only makes two system calls
/// (`prctl`, `getppid`) and compares two integers; its error is an OS error code, which
/// allocates nothing. (The crate denies `unsafe` everywhere else but in `trim`.)
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut std::process::Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: see above: no allocation, no lock, only async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                // The supervisor ended before the command started (an OS error: no
                // allocation).
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
