//! Logging to stderr with `tracing`. `RUST_LOG` picks levels (default `info`).
//!
//! The AWS SDK's crates (and the HTTP stack under them) are capped at `debug` whatever
//! `RUST_LOG` says, including directives for their submodules: at `trace` they can log
//! raw HTTP bodies (with `LOG_SENSITIVE_BODIES=true`), which hold decrypted values. The
//! cap is a second filter layer, so no `RUST_LOG` directive can lift it. Release builds
//! go further: `tracing` and `log` are built with `release_max_level_debug`, so no crate's
//! trace-level logging is even compiled in (Cargo.toml).

use crate::cli::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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

/// The user's `RUST_LOG` (default `info`; an invalid value falls back to `info`).
pub fn user_filter(rust_log: Option<&str>) -> EnvFilter {
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    EnvFilter::try_new(base).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The cap: [`CAPPED`] crates (and all their modules) at most `debug`, the rest open.
pub fn cap() -> Targets {
    CAPPED.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, krate| t.with_target(*krate, LevelFilter::DEBUG),
    )
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
        .with(fmt.with_filter(user).with_filter(cap()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_cap_holds_for_submodules_of_capped_crates() {
        let cap = cap();
        assert!(!cap.would_enable("aws_smithy_runtime::client::orchestrator", &Level::TRACE));
        assert!(cap.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(!cap.would_enable("hyper_util::client", &Level::TRACE));
        assert!(cap.would_enable("ssm_injector::source", &Level::TRACE));
    }
}
