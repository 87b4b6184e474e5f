//! STUB (being written): watch the spec file.
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SpecWatchError {
    #[error("not implemented yet")]
    Todo,
}
pub struct SpecWatcher;
impl SpecWatcher {
    pub fn start(
        _path: &Path,
    ) -> Result<(SpecWatcher, tokio::sync::mpsc::Receiver<()>), SpecWatchError> {
        Err(SpecWatchError::Todo)
    }
}
