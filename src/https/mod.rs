//! HTTPS for the three servers (the webhook, the hub, the sidecar's admin port) and the one
//! client (the sidecar → the hub). A leaf: it imports nothing of the commands above it
//! (only [`crate::exit`] and [`crate::kubeconfig`]).
//!
//! - [`server`]: the one start-up: bind, TLS or plain HTTP, the accept loop with one hyper
//!   HTTP/1.1 connection per client, SIGTERM/SIGINT, graceful shutdown; [`ServeError`],
//!   which each command wraps; [`Limits`], the per-connection policy.
//! - [`held`]: the small path of [`Limits::held`] requests (the hub's long poll): the
//!   request head parsed (pure), the answer written as hyper writes it, the bytes read
//!   replayed to hyper for any other request; [`lean_tls`]: the TLS stream (rustls's
//!   unbuffered API) of servers with held routes, whose buffers are freed while it waits.
//! - [`listen`]: `--listen` of the webhook and the hub (pure).
//! - [`routes`]: the one `GET /healthz`, and the OpenMetrics answer of `/metrics`.
//! - [`metrics`]: the one certificate-reload counter ([`CertReloads`]).
//! - [`tls`]: rustls on ring; the certificate resolver, reloaded from files.
//! - [`ca`]: the self-managed CA (pure); [`selftls`]: keeps it in a Secret and issues the
//!   serving certificate in memory (`--tls-secret`), for the webhook and the hub.
//! - [`client`]: HTTPS/1.1 client on rustls.

pub mod ca;
pub mod client;
pub mod held;
pub mod lean_tls;
pub mod listen;
pub mod metrics;
pub mod routes;
pub mod selftls;
pub mod server;
pub mod tls;

pub use listen::{BadListen, parse_listen};
pub use metrics::{CertReloads, LimitRefusals};
pub use server::{LimitError, Limits, Refusal, ServeError, Server, StopSignal};
