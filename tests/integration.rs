//! End-to-end tests: one binary, against moto's server over HTTP.

mod render;
mod support;
