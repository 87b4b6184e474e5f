//! HTTPS for every server and the one client.

pub mod ca;
pub mod client;
pub mod selftls;
pub mod server;
pub mod tls;
