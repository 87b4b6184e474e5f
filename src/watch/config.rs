//! Watch-mode flags, checked.

use crate::cli::WatchArgs;
use crate::reload_action::{self, Action, ActionError, SignalTarget};
use crate::serve::endpoint::ServeConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// A bad watch flag; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum WatchConfigError {
    #[error("--interval must be more than 0")]
    ZeroInterval,
    #[error("--jitter must be between 0 and 0.5, not {0}")]
    Jitter(f64),
    #[error("--listen {0:?} is not an address like 0.0.0.0:8099 (or \"off\")")]
    Listen(String),
    #[error(transparent)]
    Hub(#[from] super::hub_client::HubConfigError),
    #[error("--reload-signal needs a target: --reload-pid-file FILE or --reload-process NAME")]
    SignalWithoutTarget,
    #[error(
        "{0} is for render --watch: exec --watch restarts the command when a value changes (see --restart-signal, --restart-grace)"
    )]
    ReloadInExec(&'static str),
    #[error("--restart-signal: {0}")]
    RestartSignal(#[source] ActionError),
    #[error("--serve {0:?} is not an address like 127.0.0.1:2773")]
    Serve(String),
    #[error(
        "--serve {0} is not a loopback address: the values would be readable from the network with only the token; use 127.0.0.1 (the pod's or task's containers share it)"
    )]
    ServeNotLoopback(SocketAddr),
    #[error(
        "--serve-allow {prefix:?} {reason}; give absolute parameter paths like /my-app/shared/ or /aws/reference/secretsmanager/my-app/"
    )]
    ServeAllow {
        prefix: String,
        reason: crate::spec::names::NameError,
    },
    #[error("{flag}: {source}")]
    Reload {
        flag: &'static str,
        #[source]
        source: ActionError,
    },
}

/// Everything the watch loop needs to know besides the spec.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub interval: Duration,
    pub jitter: f64,
    /// Where in each interval this instance polls (`schedule::slot_of`), in `[0, 1)`.
    pub slot: f64,
    pub max_backoff: Duration,
    pub listen: Option<SocketAddr>,
    pub stale_after: Option<Duration>,
    /// The version hub to follow, if any.
    pub hub: Option<super::hub_client::HubConfig>,
    pub actions: Vec<Action>,
    pub debounce: Duration,
    pub action_timeout: Duration,
    /// The local endpoint (`--serve`), if any.
    pub serve: Option<(ServeConfig, TokenSource)>,
}

impl WatchConfig {
    /// `exec --watch`: the watch flags without the reload actions (a change restarts the
    /// command); `--reload-debounce` is the least time between two restarts.
    pub fn build_for_exec(args: WatchArgs) -> Result<WatchConfig, WatchConfigError> {
        let given = [
            ("--reload-signal", args.reload_signal.is_some()),
            ("--reload-pid-file", args.reload_pid_file.is_some()),
            ("--reload-process", args.reload_process.is_some()),
            ("--reload-command", args.reload_command.is_some()),
            ("--reload-url", args.reload_url.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
            return Err(WatchConfigError::ReloadInExec(flag));
        }
        WatchConfig::build(args)
    }

    pub fn build(args: WatchArgs) -> Result<WatchConfig, WatchConfigError> {
        let WatchArgs {
            watch: _,
            interval,
            jitter,
            instance_id,
            max_backoff,
            hub,
            hub_ca,
            hub_ca_pem,
            hub_token_file,
            listen,
            stale_after,
            reload_signal,
            reload_pid_file,
            reload_process,
            reload_command,
            reload_url,
            reload_debounce,
            reload_timeout,
            serve,
        } = args;
        let serve = serve_config(serve)?;
        if interval.is_zero() {
            return Err(WatchConfigError::ZeroInterval);
        }
        if !(0.0..=0.5).contains(&jitter) {
            return Err(WatchConfigError::Jitter(jitter));
        }
        let listen = match listen.trim() {
            "off" | "" => None,
            a => Some(
                a.parse::<SocketAddr>()
                    .map_err(|_| WatchConfigError::Listen(a.to_owned()))?,
            ),
        };
        let hub = hub
            .filter(|h| !h.trim().is_empty())
            .map(|url| {
                super::hub_client::HubConfig::build(url.trim(), hub_ca, hub_ca_pem, hub_token_file)
            })
            .transpose()?;
        let reload_err = |flag| move |source| WatchConfigError::Reload { flag, source };
        let mut actions = Vec::new();
        let target = match (reload_pid_file, reload_process) {
            (Some(f), _) => Some(SignalTarget::PidFile(f)),
            (None, Some(p)) => Some(SignalTarget::ProcessName(p)),
            (None, None) => None,
        };
        match (reload_signal, target) {
            (Some(_), None) => return Err(WatchConfigError::SignalWithoutTarget),
            (sig, Some(target)) => {
                let signal = reload_action::parse_signal(sig.as_deref().unwrap_or("HUP"))
                    .map_err(reload_err("--reload-signal"))?;
                actions.push(Action::Signal { signal, target });
            }
            (None, None) => {}
        }
        if let Some(c) = reload_command {
            actions.push(Action::Command(
                reload_action::parse_command(&c).map_err(reload_err("--reload-command"))?,
            ));
        }
        if let Some(u) = reload_url {
            actions.push(Action::Http(
                reload_action::parse_url(&u).map_err(reload_err("--reload-url"))?,
            ));
        }
        // No identity at all (neither flag nor HOSTNAME): a random slot still spreads a
        // fleet, it only changes at each restart.
        let slot = instance_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map_or_else(fastrand::f64, super::schedule::slot_of);
        Ok(WatchConfig {
            interval,
            jitter,
            slot,
            max_backoff: max_backoff.max(interval.min(Duration::from_secs(1))),
            listen,
            stale_after,
            hub,
            actions,
            debounce: reload_debounce,
            action_timeout: reload_timeout,
            serve,
        })
    }
}

/// Where the local endpoint's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--serve-token-file`: the file's content, trimmed; with `--serve-token-create`,
    /// made with a new random token when it does not exist.
    File {
        path: std::path::PathBuf,
        create: bool,
    },
    /// `AWS_SESSION_TOKEN`, as the extension takes it.
    SessionToken,
}

/// `--serve` and its flags: the endpoint's config and its token's source.
fn serve_config(
    args: crate::cli::ServeArgs,
) -> Result<Option<(ServeConfig, TokenSource)>, WatchConfigError> {
    let Some(addr) = args.serve.filter(|a| !a.trim().is_empty()) else {
        return Ok(None);
    };
    let mut parsed = addr
        .trim()
        .parse::<SocketAddr>()
        .map_err(|_| WatchConfigError::Serve(addr.clone()))?;
    if let Some(port) = args.serve_port {
        parsed.set_port(port);
    }
    if !parsed.ip().is_loopback() {
        return Err(WatchConfigError::ServeNotLoopback(parsed));
    }
    let token = match args.serve_token_file {
        Some(path) => TokenSource::File {
            path,
            create: args.serve_token_create,
        },
        None => TokenSource::SessionToken,
    };
    let mut allow = Vec::new();
    for prefix in args.serve_allow.iter().map(|p| p.trim()) {
        if prefix.is_empty() {
            continue;
        }
        crate::spec::names::check_path(prefix).map_err(|reason| WatchConfigError::ServeAllow {
            prefix: prefix.to_owned(),
            reason,
        })?;
        allow.push(prefix.to_owned());
    }
    Ok(Some((
        ServeConfig {
            addr: parsed,
            allow,
            parameter_ttl: args.serve_parameter_ttl,
            secret_ttl: args.serve_secret_ttl,
            cache_size: usize::from(args.serve_cache_size),
        },
        token,
    )))
}
