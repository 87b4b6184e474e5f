//! Sidecar mode: render, then keep polling and rewrite the files atomically when a value
//! changes, run the reload actions, serve health and metrics, stop cleanly on SIGTERM.
//!
//! Each poll fetches exactly what `render` fetches (⌈N/10⌉ GetParameters calls plus one
//! call per page of each path) and compares the rendered bytes with the files: equal
//! bytes write nothing and run no action. Errors keep the last good files and back off.

pub mod admin;
pub mod config;
pub mod hub_client;
pub mod machine;
pub mod reload;
mod run;
pub mod schedule;
pub mod spec_watch;

pub use run::{
    Delivery, EnvDelivery, Ports, Rebuild, Watch, WatchError, bind, env_fingerprint, run,
};
