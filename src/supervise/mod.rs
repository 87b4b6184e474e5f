//! `exec --watch`: ssm-injector as the app's parent (often PID 1), so that rotated values
//! reach an app that reads them from its environment at start: the app runs with the values
//! in its environment, and a change restarts it with the new ones.
//!
//! - [`limit`] (pure): at most so many restarts an hour ([`RestartLimit`]).
//! - [`status`] (pure): the exit code a child's end becomes (its own, or 128 + signal).
//! - [`child`]: the process side. It starts the command, forwards signals to it, reaps
//!   every child that ends (a PID 1's duty; elsewhere the process is made a subreaper),
//!   restarts it (signal, grace period, `SIGKILL` of its process group) and says when it
//!   ended on its own.
//!
//! Values are only ever in the child's environment: never on a command line, never logged.

pub mod child;
pub mod limit;
pub mod status;

pub use child::{
    ChildEvent, Command, Env, Restarted, SuperviseError, Supervisor, SupervisorHandle,
};
pub use limit::RestartLimit;
