//! End-to-end tests: one binary, against moto's server over HTTP and, for `cluster_*`, a
//! real kube-apiserver (`support::cluster`, from KUBEBUILDER_ASSETS).

mod cluster_access;
mod cluster_env;
mod cluster_exec;
mod cluster_manifests;
mod cluster_serve;
mod cluster_tls;
mod cluster_webhook;
mod env_readers;
mod exec;
mod exec_watch;
mod fleet;
mod hostile;
mod hub;
mod hub_auth;
mod hub_follow;
mod hub_push;
mod iam_policy;
mod no_secret_leaks;
mod readers;
mod render;
mod render_failures;
mod serve;
mod support;
mod watch;
mod watch_delta;
mod webhook;
