//! End-to-end tests: one binary, against moto's server over HTTP.

mod no_secret_leaks;
mod render;
mod render_failures;
mod support;
