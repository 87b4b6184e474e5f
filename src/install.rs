//! `install DIR`: this binary copies itself into a directory, so that a container whose
//! image does not have it can run it from a shared volume (`exec --watch` as the app's
//! entrypoint, on ECS and Kubernetes). The image has no shell and no `cp`: the copy is
//! the binary's own job.
//!
//! The copy is atomic ([`crate::writer::copy_file`]: a temp file, fsync, `rename`), mode
//! `0555` (the app usually runs as another user), and streamed: the 12 MiB binary never
//! sits in this process's memory (an init container's limit is 32 MiB).

use crate::writer::{FileMeta, WriteError, copy_file};
use std::path::{Path, PathBuf};

/// The installed file's name and mode: those the injector's pods expect.
pub use crate::inject::patch::{INSTALLED_MODE as MODE, INSTALLED_NAME as NAME};

/// The directory's mode when `install` creates it.
const DIR_MODE: u32 = 0o755;

/// Why the binary could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read this binary ({path}): {source}")]
    ReadSelf {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the directory {path} (its parent must exist): {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install into {dir}: {source}")]
    Write {
        dir: PathBuf,
        #[source]
        source: WriteError,
    },
}

/// What [`install`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Installed {
    pub path: PathBuf,
    pub bytes: usize,
}

/// Copies the running binary to `dir/ssm-injector` (mode 0555), creating `dir` (but not
/// its parents) if needed. The binary is read from `/proc/self/exe`, or, where `/proc` is
/// not mounted (a bare `chroot`), from the absolute path it was started by.
pub fn install(dir: &Path) -> Result<Installed, InstallError> {
    const SELF: &str = "/proc/self/exe";
    let opened = std::fs::File::open(SELF).or_else(|e| {
        match std::env::args_os().next().map(PathBuf::from) {
            Some(argv0) if e.kind() == std::io::ErrorKind::NotFound && argv0.is_absolute() => {
                std::fs::File::open(argv0)
            }
            _ => Err(e),
        }
    });
    let mut binary = opened.map_err(|source| InstallError::ReadSelf { path: SELF, source })?;
    let bytes = binary
        .metadata()
        .map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
    install_from(dir, &mut binary, bytes)
}

fn install_from(
    dir: &Path,
    source: &mut dyn std::io::Read,
    bytes: usize,
) -> Result<Installed, InstallError> {
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|source| InstallError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
    }
    let path = dir.join(NAME);
    let meta = FileMeta {
        mode: MODE,
        uid: None,
        gid: None,
    };
    copy_file(&path, source, &meta).map_err(|source| InstallError::Write {
        dir: dir.to_owned(),
        source,
    })?;
    Ok(Installed { path, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn put(dir: &Path, bytes: &[u8]) -> Installed {
        install_from(dir, &mut &bytes[..], bytes.len()).unwrap()
    }

    #[test]
    fn installs_executable_read_only_and_replaces_an_older_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bin");
        let first = put(&dir, b"\x7fELF one");
        assert_eq!(first.path, dir.join("ssm-injector"));
        let meta = std::fs::metadata(&first.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o555);
        assert_eq!(std::fs::read(&first.path).unwrap(), b"\x7fELF one");
        // A newer image replaces it (the read-only mode does not stop a rename).
        put(&dir, b"\x7fELF two");
        assert_eq!(std::fs::read(&first.path).unwrap(), b"\x7fELF two");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left");
    }

    #[test]
    fn a_missing_parent_is_an_error_that_names_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("no/such");
        let err = install_from(&dir, &mut &b"x"[..], 1).unwrap_err();
        assert!(matches!(err, InstallError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("no/such"), "{err}");
    }
}
