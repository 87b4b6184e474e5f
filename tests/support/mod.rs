//! Test support: the AWS emulator (moto's server + a fault proxy, driven by
//! `emulator.py`), a runner for the real binary, and the deadline poller ([`wait`]).

pub mod chart;
pub mod cluster;
pub mod emulator;
pub mod hub;
pub mod pki;
pub mod relay;
pub mod run;
pub mod sidecar;
pub mod wait;
pub mod webhook;

pub use emulator::{Emulator, shared};
pub use run::Run;

use std::sync::atomic::{AtomicUsize, Ordering};

/// A parameter prefix no other test uses, for tests sharing one emulator.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/t{}-{}/{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    )
}
