//! Logging to stderr with `tracing`. `RUST_LOG` picks levels (default `info`).
//!
//! The AWS SDK's own crates are capped at `debug` whatever `RUST_LOG` says: at `trace`
//! they may log raw HTTP bodies, which hold decrypted values.

use crate::cli::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Crates whose `trace` output can include HTTP bodies.
const CAPPED: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_sdk_ssm",
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// Builds the filter: the user's `RUST_LOG` (default `info`), with [`CAPPED`] crates at
/// most at `debug`.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let mut filter = EnvFilter::try_new(base).unwrap_or_else(|_| EnvFilter::new("info"));
    if base.to_ascii_lowercase().contains("trace") {
        for krate in CAPPED {
            if let Ok(d) = format!("{krate}=debug").parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    filter
}

/// Installs the global subscriber (stderr; text or JSON lines).
pub fn init(format: LogFormat) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
