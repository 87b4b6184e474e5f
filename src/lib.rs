//! ssm-injector: AWS SSM Parameter Store values and Secrets Manager secrets into containers.
//!
//! Pure logic (`spec`, `format`, `source::batch`) is kept apart from I/O (`source::ssm`,
//! `writer`); `app` glues them together per subcommand; `exit` is the table of exit codes.
#![deny(unsafe_code)]

pub mod app;
pub mod backoff;
pub mod capacity;
pub mod cli;
pub mod exec;
pub mod exit;
pub mod format;
pub mod https;
pub mod hub;
pub mod hub_protocol;
pub mod iam;
pub mod inject;
pub mod install;
pub mod kubeconfig;
pub mod locked;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod probe;
pub mod reload_action;
pub mod secret;
pub mod serve;
pub mod source;
pub mod spec;
pub mod supervise;
pub mod trim;
pub mod values;
pub mod watch;
pub mod webhook;
pub mod writer;
