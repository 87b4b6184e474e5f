//! `ssm-injector hub` flags → checked settings (pure). [`HubSettings::build`] applies every
//! default and checks every bound, in the order of the flags, like `Spec::build`; the first
//! flag out of range is the error, which names it and what is allowed. Files (certificate,
//! key, --config) are read later, by [`super::run`], and the `--auth kubernetes` flags by
//! [`super::token_reviewer::setup`].

use crate::cli::{HubArgs, HubAuth, HubKubeArgs, HubSelfTlsArgs};
use crate::https::listen::{BadListen, parse_listen};
use crate::https::{LimitError, Limits};
use crate::hub_protocol::{MAX_BODY, WATCH_PATH};
use crate::spec::budget::{BudgetConfig, BudgetError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Shortest `--interval`.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest `--max-wait` (load balancers and proxies cut idle requests after minutes).
pub const MAX_MAX_WAIT: Duration = Duration::from_secs(600);
/// Most AWS calls in flight at once (`--concurrency`).
pub const MAX_CONCURRENCY: usize = 64;

/// A flag out of range; the message names it and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("{0}")]
    BadListen(#[from] BadListen),
    #[error("--interval must be at least {MIN_INTERVAL:?}, not {0:?}")]
    Interval(Duration),
    #[error("--max-wait must be at most {MAX_MAX_WAIT:?}, not {0:?}")]
    MaxWait(Duration),
    #[error("--client-budget must be a number of calls per second above 0, not {0}")]
    ClientBudget(f64),
    #[error("--concurrency must be between 1 and {MAX_CONCURRENCY}, not {0}")]
    Concurrency(usize),
    #[error("{0}")]
    Limit(#[from] LimitError),
    #[error("--max-keys-per-client must be at least 1, not {0}")]
    MaxKeys(usize),
    #[error("{0}")]
    QueueUrl(#[from] QueueUrlError),
    #[error("{0}")]
    Budget(#[from] BudgetError),
    #[error("{at}: {value:?} is not an AWS region (like eu-west-1 or us-gov-west-1)")]
    Region { at: String, value: String },
}

/// The hub's flags, checked, with their defaults applied.
#[derive(Debug)]
pub struct HubSettings {
    /// `--listen`.
    pub addr: SocketAddr,
    /// `--cert`, `--key`: read (and re-read) by the TLS set-up; or `--tls-secret` and its
    /// flags (clap requires one of the two), checked by the TLS set-up.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub self_tls: HubSelfTlsArgs,
    pub cert_check_interval: Duration,
    /// At least [`MIN_INTERVAL`].
    pub interval: Duration,
    /// At most [`MAX_MAX_WAIT`].
    pub max_wait: Duration,
    /// Finite and above 0.
    pub client_budget: f64,
    pub max_spread: Duration,
    pub auth: HubAuth,
    /// Checked by [`super::token_reviewer::setup`], which reads `--config`.
    pub kube: HubKubeArgs,
    /// `--max-keys-per-client`, at least 1.
    pub max_keys_per_client: usize,
    /// `--request-timeout`, `--max-connections`, and the body size of the protocol.
    pub limits: Limits,
    pub region: Option<String>,
    /// `--max-tps`, `--burst`.
    pub budget: BudgetConfig,
    /// 1 to [`MAX_CONCURRENCY`].
    pub concurrency: usize,
    /// `--queue-url` with `{ordinal}` filled in from `--instance-id`.
    pub queue_url: Option<String>,
}

impl HubSettings {
    /// Checks the flags (no I/O: `--instance-id` comes in already defaulted from HOSTNAME).
    pub fn build(args: HubArgs) -> Result<HubSettings, FlagError> {
        let HubArgs {
            listen,
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
            request_timeout,
            max_connections,
            region,
            max_tps,
            burst,
            concurrency,
            queue_url,
            instance_id,
        } = args;
        let addr = parse_listen(&listen)?;
        if interval < MIN_INTERVAL {
            return Err(FlagError::Interval(interval));
        }
        if max_wait > MAX_MAX_WAIT {
            return Err(FlagError::MaxWait(max_wait));
        }
        if client_budget.is_nan() || client_budget <= 0.0 || client_budget.is_infinite() {
            return Err(FlagError::ClientBudget(client_budget));
        }
        if max_keys_per_client == 0 {
            return Err(FlagError::MaxKeys(max_keys_per_client));
        }
        // The long poll is held: read on the server's small path, which keeps no HTTP/1
        // buffers while it waits (docs/hub.md, "Memory").
        let limits = Limits {
            held: &[WATCH_PATH],
            ..Limits::server(request_timeout, max_connections, MAX_BODY)?
        };
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(FlagError::Concurrency(concurrency));
        }
        if let Some(r) = &region
            && !crate::spec::region::is_region(r)
        {
            return Err(FlagError::Region {
                at: "--region".to_owned(),
                value: r.clone(),
            });
        }
        let queue_url = queue_url
            .map(|template| self::queue_url(&template, instance_id.as_deref()))
            .transpose()?;
        let defaults = BudgetConfig::default();
        let budget = BudgetConfig::new(
            max_tps.unwrap_or(defaults.per_second),
            burst.unwrap_or(defaults.burst),
        )?;
        Ok(HubSettings {
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
        })
    }
}

/// The placeholder in `--queue-url` for the replica's ordinal.
pub const ORDINAL: &str = "{ordinal}";

/// A `--queue-url` that cannot be used; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueUrlError {
    #[error(
        "--queue-url {url:?} is not an http:// or https:// URL (for example https://sqs.eu-west-1.amazonaws.com/111122223333/ssm-injector-hub-{{ordinal}})"
    )]
    NotUrl { url: String },
    #[error(
        "--queue-url contains {{ordinal}}, but --instance-id {id:?} does not end in -N (StatefulSet pods are named NAME-0, NAME-1, ...); set --instance-id (SSM_INJECTOR_HUB_INSTANCE_ID) or give the URL of this replica's queue"
    )]
    NoOrdinal { id: String },
    #[error(
        "--queue-url contains {{ordinal}}, but there is no --instance-id and HOSTNAME is not set; set --instance-id (SSM_INJECTOR_HUB_INSTANCE_ID) or give the URL of this replica's queue"
    )]
    NoInstanceId,
}

/// The trailing number of a StatefulSet pod name (`hub-2` → `2`).
pub fn ordinal(instance_id: &str) -> Option<&str> {
    let (_, n) = instance_id.rsplit_once('-')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

/// This replica's queue URL: `template` with every `{ordinal}` replaced by the trailing
/// number of `instance_id`.
pub fn queue_url(template: &str, instance_id: Option<&str>) -> Result<String, QueueUrlError> {
    let url = template.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(QueueUrlError::NotUrl {
            url: template.to_owned(),
        });
    }
    if !url.contains(ORDINAL) {
        return Ok(url.to_owned());
    }
    let id = instance_id
        .filter(|id| !id.is_empty())
        .ok_or(QueueUrlError::NoInstanceId)?;
    let n = ordinal(id).ok_or_else(|| QueueUrlError::NoOrdinal { id: id.to_owned() })?;
    Ok(url.replace(ORDINAL, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn the_ordinal_is_the_trailing_number_of_the_instance_id() {
        let t = "https://sqs.eu-west-1.amazonaws.com/111122223333/hub-{ordinal}";
        assert_eq!(
            queue_url(t, Some("ssm-injector-hub-2")).as_deref(),
            Ok("https://sqs.eu-west-1.amazonaws.com/111122223333/hub-2")
        );
        assert_eq!(
            queue_url(t, Some("hub")),
            Err(QueueUrlError::NoOrdinal { id: "hub".into() })
        );
        assert_eq!(
            queue_url(t, Some("hub-")),
            Err(QueueUrlError::NoOrdinal { id: "hub-".into() })
        );
        assert_eq!(
            queue_url(t, Some("web-7d9f-abcde")),
            Err(QueueUrlError::NoOrdinal {
                id: "web-7d9f-abcde".into()
            })
        );
        assert_eq!(queue_url(t, None), Err(QueueUrlError::NoInstanceId));
        assert_eq!(queue_url(t, Some("")), Err(QueueUrlError::NoInstanceId));
        // Without the placeholder the id does not matter.
        assert_eq!(
            queue_url("http://127.0.0.1:4566/000000000000/q", None).as_deref(),
            Ok("http://127.0.0.1:4566/000000000000/q")
        );
        assert!(matches!(
            queue_url("sqs://x", Some("hub-0")),
            Err(QueueUrlError::NotUrl { .. })
        ));
        let msg = QueueUrlError::NoOrdinal { id: "hub".into() }.to_string();
        assert!(msg.contains("{ordinal}") && msg.contains("NAME-0"), "{msg}");
    }

    /// `ssm-injector hub --cert c --key k FLAGS…` as clap reads it.
    fn args(flags: &[&str]) -> HubArgs {
        let argv = ["ssm-injector", "hub", "--cert=c", "--key=k"]
            .into_iter()
            .chain(flags.iter().copied());
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Hub(a)) => a,
            other => panic!("{flags:?}: {other:?}"),
        }
    }

    fn build(flags: &[&str]) -> Result<HubSettings, FlagError> {
        HubSettings::build(args(flags))
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let s = build(&[]).expect("defaults are valid");
        assert_eq!(s.addr, "0.0.0.0:8443".parse().expect("address"));
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.max_wait, Duration::from_secs(55));
        assert_eq!(s.client_budget, 20.0);
        assert_eq!(s.max_spread, Duration::from_secs(20 * 60));
        assert_eq!(s.concurrency, 4);
        assert_eq!(s.budget, BudgetConfig::default());
        assert_eq!(s.queue_url, None);
        assert_eq!(s.auth, HubAuth::None);
        assert_eq!(s.max_keys_per_client, 5000);
        assert_eq!(s.limits.body_read, Duration::from_secs(10));
        assert_eq!(s.limits.max_connections, 4096);
        assert_eq!(s.limits.max_body, MAX_BODY);
        assert_eq!(s.limits.held, [WATCH_PATH]);
        assert_eq!(
            (s.cert, s.key),
            (Some(PathBuf::from("c")), Some(PathBuf::from("k")))
        );
    }

    #[test]
    fn the_bounds_themselves_are_allowed() {
        let s = build(&[
            "--listen= 127.0.0.1:0 ",
            "--interval=100ms",
            "--max-wait=600s",
            "--client-budget=0.001",
            "--concurrency=64",
            "--max-tps=10000",
            "--burst=10000",
        ])
        .expect("valid");
        assert_eq!(s.addr, "127.0.0.1:0".parse().expect("address"));
        assert_eq!(s.interval, MIN_INTERVAL);
        assert_eq!(s.max_wait, MAX_MAX_WAIT);
        assert_eq!(s.concurrency, MAX_CONCURRENCY);
        assert_eq!(
            s.budget,
            BudgetConfig::new(10_000.0, 10_000).expect("valid")
        );
        assert_eq!(build(&["--concurrency=1"]).expect("valid").concurrency, 1);
    }

    #[test]
    fn a_bad_flag_is_an_error_that_names_it_and_what_is_allowed() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--listen=localhost:8443"],
                r#"--listen "localhost:8443": not an address and port (for example 0.0.0.0:8443)"#,
            ),
            (
                &["--interval=99ms"],
                "--interval must be at least 100ms, not 99ms",
            ),
            (
                &["--max-wait=601s"],
                "--max-wait must be at most 600s, not 601s",
            ),
            (
                &["--max-keys-per-client=0"],
                "--max-keys-per-client must be at least 1, not 0",
            ),
            (
                &["--request-timeout=999ms"],
                "--request-timeout must be between 1s and 600s, not 999ms",
            ),
            (
                &["--max-connections=0"],
                "--max-connections must be between 1 and 1000000, not 0",
            ),
            (
                &["--region=eu_west_1"],
                r#"--region: "eu_west_1" is not an AWS region (like eu-west-1 or us-gov-west-1)"#,
            ),
            (
                &["--client-budget=0"],
                "--client-budget must be a number of calls per second above 0, not 0",
            ),
            (
                &["--client-budget=-1"],
                "--client-budget must be a number of calls per second above 0, not -1",
            ),
            (
                &["--client-budget=NaN"],
                "--client-budget must be a number of calls per second above 0, not NaN",
            ),
            (
                &["--client-budget=inf"],
                "--client-budget must be a number of calls per second above 0, not inf",
            ),
            (
                &["--concurrency=0"],
                "--concurrency must be between 1 and 64, not 0",
            ),
            (
                &["--concurrency=65"],
                "--concurrency must be between 1 and 64, not 65",
            ),
            (
                &["--queue-url=ftp://x"],
                r#"--queue-url "ftp://x" is not an http:// or https:// URL"#,
            ),
            (
                &["--queue-url=https://sqs/q-{ordinal}", "--instance-id=hub"],
                r#"--queue-url contains {ordinal}, but --instance-id "hub" does not end in -N"#,
            ),
            (
                &["--max-tps=0"],
                "--max-tps must be between 0.001 and 10000 calls per second, not 0",
            ),
            (
                &["--burst=0"],
                "--burst must be between 1 and 10000 calls, not 0",
            ),
        ];
        for (flags, want) in cases {
            let e = build(flags).expect_err(want);
            assert!(e.to_string().starts_with(want), "{flags:?}: {e}");
        }
    }

    #[test]
    fn the_first_bad_flag_in_flag_order_is_the_one_reported() {
        let chain = [
            "--listen=nonsense",
            "--interval=1ms",
            "--max-wait=1h",
            "--client-budget=0",
            "--max-keys-per-client=0",
            "--request-timeout=0s",
            "--concurrency=0",
            "--region=x",
            "--queue-url=ftp://x",
            "--max-tps=0",
        ];
        let flags = |e: &FlagError| match e {
            FlagError::BadListen { .. } => "--listen",
            FlagError::Interval(_) => "--interval",
            FlagError::MaxWait(_) => "--max-wait",
            FlagError::ClientBudget(_) => "--client-budget",
            FlagError::MaxKeys(_) => "--max-keys-per-client",
            FlagError::Limit(_) => "--request-timeout",
            FlagError::Concurrency(_) => "--concurrency",
            FlagError::Region { .. } => "--region",
            FlagError::QueueUrl(_) => "--queue-url",
            FlagError::Budget(_) => "--max-tps",
        };
        for skip in 0..chain.len() {
            let e = build(&chain[skip..]).expect_err("bad");
            assert!(
                chain[skip].starts_with(flags(&e)),
                "{:?}: {e}",
                &chain[skip..]
            );
        }
    }

    #[test]
    fn a_bad_flag_stops_the_hub_with_the_usage_exit_code_and_the_same_message() {
        let e = build(&["--concurrency=0"]).expect_err("bad");
        let text = e.to_string();
        let e = crate::hub::HubError::from(e);
        assert_eq!(e.exit_code(), crate::exit::USAGE);
        assert_eq!(e.to_string(), text);
    }

    #[test]
    fn the_queue_url_takes_the_ordinal_of_the_instance_id() {
        let s = build(&[
            "--queue-url= https://sqs/q-{ordinal} ",
            "--instance-id=hub-3",
        ])
        .expect("valid");
        assert_eq!(s.queue_url.as_deref(), Some("https://sqs/q-3"));
        let s = build(&["--queue-url=https://sqs/fixed"]).expect("valid");
        assert_eq!(s.queue_url.as_deref(), Some("https://sqs/fixed"));
    }
}
