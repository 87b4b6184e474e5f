//! Atomic writes of rendered outputs: one file, or a set of files published at once.
//!
//! Everything here is synchronous `std::fs` and knows nothing about SSM. Each call returns
//! [`Outcome::Changed`] or [`Outcome::Unchanged`], which drives reloads and metrics; when
//! nothing changed, nothing on disk is touched.
//!
//! - [`write_file`]: temp file in the same directory (`.{name}.tmp-{pid}-{counter}`), write,
//!   chown, chmod, fsync, `rename` over the target, fsync the directory.
//! - [`write_tree`]: the Kubernetes atomic-writer scheme (`pkg/volume/util/atomic_writer.go`):
//!   the files live in a timestamped directory `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN`, the
//!   symlink `..data` points at it and is replaced with one `rename`, and each top-level
//!   name is a symlink `NAME -> ..data/NAME`. Unlike Kubernetes we fsync files and
//!   directories.
//! - [`clean_stale_file`], [`clean_stale_tree`]: remove what a crashed earlier run left
//!   behind. Call them at start, before any write to the same target.
//!
//! No function here is safe against a second writer on the same target at the same time;
//! callers write each target from one place.
//!
//! Errors name the step that failed and the path, never the content.

mod file;
mod fsutil;
mod target;
mod tree;

use std::io;
use std::path::PathBuf;

pub use file::{clean_stale_file, copy_file, write_file};
pub use target::{TargetKind, target_kind};
pub use tree::{clean_stale_tree, write_tree};

/// Mode given to written files when the user sets none.
pub const DEFAULT_MODE: u32 = 0o400;

/// Mode of a `write_tree` target directory that the writer creates itself.
///
/// Readable and searchable by everyone: what protects the values is the mode of the files
/// and of the timestamped directory inside (both derived from [`FileMeta::mode`]).
pub const TREE_DIR_MODE: u32 = 0o755;

/// Permissions and owner of written files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Permission bits (at most `0o7777`). In a tree, directories get these bits plus the
    /// search bit of each class that may read (`0o400` -> `0o500`, `0o440` -> `0o550`).
    pub mode: u32,
    /// Owner to set; `None` keeps the writer's own.
    pub uid: Option<u32>,
    /// Group to set; `None` keeps the writer's own.
    pub gid: Option<u32>,
}

impl Default for FileMeta {
    fn default() -> Self {
        Self {
            mode: DEFAULT_MODE,
            uid: None,
            gid: None,
        }
    }
}

/// Whether a write changed what readers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New content, mode or owner was published.
    Changed,
    /// The target already had this content, mode and owner; nothing was touched.
    Unchanged,
}

impl Outcome {
    /// `true` for [`Outcome::Changed`].
    pub fn is_changed(self) -> bool {
        self == Outcome::Changed
    }
}

/// Result of a writer step.
pub type Result<T, E = WriteError> = std::result::Result<T, E>;

/// A failed step of a write or clean-up. Variants name the step; none holds content.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The requested mode has bits outside `0o7777`.
    #[error("invalid file mode {mode:o}: allowed are 0 to 7777 (octal)")]
    InvalidMode { mode: u32 },
    /// The target exists and is not a regular file nor a symlink to one (a device, FIFO,
    /// socket, directory): it is never replaced.
    #[error(
        "{} is {kind}, not a regular file; it is left as it is (use --output - for standard output)",
        .path.display()
    )]
    NotRegular { path: PathBuf, kind: TargetKind },
    /// The target path has no file name (`/`, `..`, empty).
    #[error("invalid target {}: {reason}", .path.display())]
    InvalidTarget { path: PathBuf, reason: &'static str },
    /// A key of a file set is not a safe relative path.
    #[error("invalid output file name {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The directory that should hold the target is missing or not a directory.
    #[error(
        "could not use directory {} for the output (it must exist): {source}",
        .path.display()
    )]
    Directory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not create directory {}: {source}", .path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not list directory {}: {source}", .path.display())]
    ReadDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading the current target to decide whether it changed.
    #[error("could not read existing {}: {source}", .path.display())]
    ReadExisting {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not read symlink {}: {source}", .path.display())]
    ReadLink {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not create temporary file {}: {source}", .path.display())]
    CreateTemp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not create file {}: {source}", .path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not fsync {}: {source}", .path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not set mode {mode:04o} on {}: {source}", .path.display())]
    Chmod {
        path: PathBuf,
        mode: u32,
        #[source]
        source: io::Error,
    },
    #[error(
        "could not change owner of {} to {}: {source}",
        .path.display(),
        owner_text(*.uid, *.gid)
    )]
    Chown {
        path: PathBuf,
        uid: Option<u32>,
        gid: Option<u32>,
        #[source]
        source: io::Error,
    },
    #[error("could not rename {} to {}: {source}", .from.display(), .to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not open directory {}: {source}", .path.display())]
    OpenDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not fsync directory {}: {source}", .path.display())]
    SyncDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "could not create symlink {} -> {}: {source}",
        .path.display(),
        .target.display()
    )]
    Symlink {
        path: PathBuf,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not remove {}: {source}", .path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl WriteError {
    /// The failed step as a short fixed label, for metrics and structured logs.
    pub fn step(&self) -> &'static str {
        match self {
            WriteError::InvalidMode { .. } => "invalid_mode",
            WriteError::InvalidTarget { .. } => "invalid_target",
            WriteError::NotRegular { .. } => "not_regular",
            WriteError::InvalidKey { .. } => "invalid_key",
            WriteError::Directory { .. } => "directory",
            WriteError::CreateDirectory { .. } => "create_directory",
            WriteError::ReadDirectory { .. } => "read_directory",
            WriteError::ReadExisting { .. } => "read_existing",
            WriteError::ReadLink { .. } => "read_link",
            WriteError::CreateTemp { .. } => "create_temp",
            WriteError::CreateFile { .. } => "create_file",
            WriteError::Write { .. } => "write",
            WriteError::Sync { .. } => "fsync",
            WriteError::Chmod { .. } => "chmod",
            WriteError::Chown { .. } => "chown",
            WriteError::Rename { .. } => "rename",
            WriteError::OpenDirectory { .. } => "open_directory",
            WriteError::SyncDirectory { .. } => "fsync_directory",
            WriteError::Symlink { .. } => "symlink",
            WriteError::Remove { .. } => "remove",
        }
    }
}

fn owner_text(uid: Option<u32>, gid: Option<u32>) -> String {
    match (uid, gid) {
        (Some(u), Some(g)) => format!("uid {u} gid {g}"),
        (Some(u), None) => format!("uid {u}"),
        (None, Some(g)) => format!("gid {g}"),
        (None, None) => "(unchanged)".to_owned(),
    }
}

/// Rejects modes with bits outside `0o7777`.
fn check_mode(meta: &FileMeta) -> Result<()> {
    if meta.mode & !0o7777 != 0 {
        return Err(WriteError::InvalidMode { mode: meta.mode });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn default_meta_is_owner_read_only_with_no_owner_change() {
        let meta = FileMeta::default();
        assert_eq!(meta.mode, 0o400);
        assert_eq!((meta.uid, meta.gid), (None, None));
    }

    #[test]
    fn messages_name_the_step_and_the_paths_and_keep_the_cause() {
        let err = WriteError::Rename {
            from: "/ssm/.app.env.tmp-1-0".into(),
            to: "/ssm/app.env".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with("could not rename /ssm/.app.env.tmp-1-0 to /ssm/app.env: "),
            "{msg}"
        );
        assert!(err.source().is_some());
        assert_eq!(err.step(), "rename");
    }

    #[test]
    fn chown_message_names_only_the_ids_that_were_asked_for() {
        let err = WriteError::Chown {
            path: "/ssm/a".into(),
            uid: Some(1000),
            gid: None,
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(
            err.to_string()
                .starts_with("could not change owner of /ssm/a to uid 1000: ")
        );
    }

    #[test]
    fn modes_beyond_the_permission_bits_are_rejected() {
        let meta = FileMeta {
            mode: 0o100_644,
            ..FileMeta::default()
        };
        let err = check_mode(&meta).unwrap_err();
        assert!(matches!(err, WriteError::InvalidMode { .. }));
        assert!(check_mode(&FileMeta::default()).is_ok());
    }
}
