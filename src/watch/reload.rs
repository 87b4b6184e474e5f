//! STUB (being written): reload actions after a change.
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("not implemented yet")]
    Todo,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Signal {
        signal: Signal,
        target: SignalTarget,
    },
    Command(Vec<String>),
    Http(hyper::Uri),
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalTarget {
    PidFile(PathBuf),
    ProcessName(String),
}
impl Action {
    pub fn label(&self) -> &'static str {
        match self {
            Action::Signal { .. } => "signal",
            Action::Command(_) => "command",
            Action::Http(_) => "http",
        }
    }
}
pub fn parse_signal(_s: &str) -> Result<Signal, ReloadError> {
    Err(ReloadError::Todo)
}
pub fn parse_command(_s: &str) -> Result<Vec<String>, ReloadError> {
    Err(ReloadError::Todo)
}
pub fn parse_url(_s: &str) -> Result<hyper::Uri, ReloadError> {
    Err(ReloadError::Todo)
}
pub async fn run(_action: &Action, _timeout: Duration) -> Result<(), ReloadError> {
    Err(ReloadError::Todo)
}
