//! A local endpoint compatible with the AWS Parameters and Secrets Lambda Extension
//! (`render --watch --serve 127.0.0.1:2773`): code written for Lambda reads the sidecar's
//! values over HTTP unchanged. The decisions are pure ([`request`], [`token`], [`rules`],
//! [`body`], [`cache`]); [`endpoint`] is the server's side: the held values of the watch
//! loop, on-demand reads through the one AWS call path, the TTL caches.

pub mod body;
pub mod cache;
pub mod endpoint;
pub mod request;
pub mod rules;
pub mod token;
