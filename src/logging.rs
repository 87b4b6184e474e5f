//! Logging to stderr with `tracing`. `RUST_LOG` picks levels (default `info`).
//!
//! The AWS SDK's crates (and the HTTP stack under them) are capped at `debug` whatever
//! `RUST_LOG` says, including directives for their submodules: at `trace` they can log
//! raw HTTP bodies (with `LOG_SENSITIVE_BODIES=true`), which hold decrypted values. The
//! cap is applied to the user's directives ([`capped`]), so no `RUST_LOG` directive can
//! lift it; being one filter, its level hint is the user's, so a disabled `debug!` costs a
//! level comparison, not a lookup per callsite (CPU of every poll). Release builds
//! go further: `tracing` is built with `release_max_level_debug` and `log` with
//! `release_max_level_info`, so no crate's trace-level logging is even compiled in
//! (Cargo.toml).

use crate::cli::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates whose `trace` output can include HTTP bodies.
pub const CAPPED: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_smithy_json",
    "aws_sdk_ssm",
    "aws_sdk_sts",
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// The user's `RUST_LOG` (default `info`; an invalid value falls back to `info`): a level
/// and `target=level` directives (`info,ssm_injector=debug`). Span and field filters of
/// `EnvFilter` are not taken: `Targets` does the rest, and leaving `EnvFilter` (with its
/// directive matcher) out keeps the static binary within its 12 MiB goal.
pub fn user_filter(rust_log: Option<&str>) -> Targets {
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    base.trim()
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
}

/// `user` with the cap applied ([`CAPPED`] crates, and all their modules, at most
/// `debug`), as one filter: it enables exactly what both enable.
/// (`Targets` matches a directive on a plain prefix of the target and the longest wins,
/// so each capped crate gets the user's own level for it, capped, and every user
/// directive inside a capped crate is capped too.)
pub fn capped(user: &Targets) -> Targets {
    let in_capped = |target: &str| CAPPED.iter().any(|k| target.starts_with(k));
    let mut out = Targets::new().with_default(user.default_level().unwrap_or(LevelFilter::OFF));
    for krate in CAPPED {
        out = out.with_target(*krate, level_for(user, krate).min(LevelFilter::DEBUG));
    }
    for (target, level) in user.iter() {
        let level = if in_capped(target) {
            level.min(LevelFilter::DEBUG)
        } else {
            level
        };
        out = out.with_target(target, level);
    }
    out
}

/// The most verbose level `filter` enables for `target`.
fn level_for(filter: &Targets, target: &str) -> LevelFilter {
    use tracing::Level;
    [
        Level::TRACE,
        Level::DEBUG,
        Level::INFO,
        Level::WARN,
        Level::ERROR,
    ]
    .into_iter()
    .find(|l| filter.would_enable(target, l))
    .map_or(LevelFilter::OFF, LevelFilter::from_level)
}

/// Installs the global subscriber (stderr; text or JSON lines).
pub fn init(format: LogFormat) {
    let user = user_filter(std::env::var("RUST_LOG").ok().as_deref());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(capped(&user)))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cap as a filter of its own: what [`capped`] must agree with.
    fn cap() -> Targets {
        CAPPED.iter().fold(
            Targets::new().with_default(LevelFilter::TRACE),
            |t, krate| t.with_target(*krate, LevelFilter::DEBUG),
        )
    }
    use tracing::Level;

    #[test]
    fn the_cap_holds_for_submodules_of_capped_crates() {
        let cap = cap();
        assert!(!cap.would_enable("aws_smithy_runtime::client::orchestrator", &Level::TRACE));
        assert!(cap.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(!cap.would_enable("hyper_util::client", &Level::TRACE));
        assert!(cap.would_enable("ssm_injector::source", &Level::TRACE));
    }

    #[test]
    fn the_capped_filter_enables_exactly_what_the_user_filter_and_the_cap_both_enable() {
        use tracing::Level;
        let targets = [
            "aws_smithy_runtime",
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_runtime_api::client",
            "aws_sdk_ssm",
            "hyper",
            "hyper_util::client::legacy",
            "rustls::conn",
            "ssm_injector::watch",
            "kube_client",
            "aws",
            "",
        ];
        let levels = [
            Level::TRACE,
            Level::DEBUG,
            Level::INFO,
            Level::WARN,
            Level::ERROR,
        ];
        for rust_log in [
            "info",
            "trace",
            "debug",
            "off",
            "warn,ssm_injector=debug",
            "trace,aws_smithy_runtime=info",
            "info,aws_smithy_runtime::client=trace",
            "error,aws=trace,hyper_util=warn",
            "aws_smithy_runtime_api=trace",
            "info,aws_sdk_ssm=off",
        ] {
            let user = user_filter(Some(rust_log));
            let both = capped(&user);
            let cap = cap();
            for t in targets {
                for l in &levels {
                    assert_eq!(
                        both.would_enable(t, l),
                        user.would_enable(t, l) && cap.would_enable(t, l),
                        "RUST_LOG={rust_log}: {t} at {l}"
                    );
                }
            }
        }
    }

    #[test]
    fn by_default_the_filter_says_info_is_the_most_verbose_level() {
        use tracing_subscriber::layer::Filter;
        let f = capped(&user_filter(None));
        assert_eq!(
            Filter::<tracing_subscriber::Registry>::max_level_hint(&f),
            Some(LevelFilter::INFO)
        );
    }

    #[test]
    fn rust_log_takes_a_level_and_target_directives_and_falls_back_to_info() {
        use tracing::Level;
        let f = user_filter(Some("warn,ssm_injector=debug"));
        assert!(f.would_enable("ssm_injector::watch", &Level::DEBUG));
        assert!(!f.would_enable("ssm_injector::watch", &Level::TRACE));
        assert!(!f.would_enable("kube_client", &Level::INFO));
        assert!(f.would_enable("kube_client", &Level::WARN));
        for fallback in [None, Some(""), Some("  "), Some("ssm_injector=loud")] {
            let f = user_filter(fallback);
            assert!(f.would_enable("x", &Level::INFO), "{fallback:?}");
            assert!(!f.would_enable("x", &Level::DEBUG), "{fallback:?}");
        }
        assert!(!user_filter(Some("off")).would_enable("x", &Level::ERROR));
    }
}
