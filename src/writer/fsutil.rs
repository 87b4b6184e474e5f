//! Small file-system steps shared by the single-file and the tree writer.

use std::fs::{self, File, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt, fchown};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use super::{FileMeta, Result, WriteError};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `{pid}-{counter}`: unique among the temporary names this process makes.
pub(super) fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Whether `s` looks like [`unique_suffix`] output (`digits-digits`).
pub(super) fn is_unique_suffix(s: &str) -> bool {
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        Some((pid, n)) => all_digits(pid) && all_digits(n),
        None => false,
    }
}

/// Mode of a directory that holds files of `file_mode`: the file's permission bits plus
/// the search bit of every class that may read (`0o400` -> `0o500`, `0o640` -> `0o750`).
pub(super) fn dir_mode(file_mode: u32) -> u32 {
    let m = file_mode & 0o777;
    m | ((m & 0o444) >> 2)
}

/// Whether existing metadata has exactly `mode` and, where `meta` asks for them, its owner.
pub(super) fn same_mode_and_owner(md: &fs::Metadata, mode: u32, meta: &FileMeta) -> bool {
    md.mode() & 0o7777 == mode
        && meta.uid.is_none_or(|uid| md.uid() == uid)
        && meta.gid.is_none_or(|gid| md.gid() == gid)
}

/// Whether the open `file` holds exactly `expected`. The bytes read are zeroed afterwards.
pub(super) fn same_content(file: File, expected: &[u8]) -> io::Result<bool> {
    let mut buf = Zeroizing::new(Vec::with_capacity(expected.len() + 1));
    // One byte more than expected is enough to see that the file is longer.
    file.take(expected.len() as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf.as_slice() == expected)
}

/// chown (when asked) then chmod through an open handle. chown comes first because it
/// may clear set-id bits.
pub(super) fn set_owner_and_mode(
    handle: &File,
    path: &Path,
    mode: u32,
    meta: &FileMeta,
) -> Result<()> {
    if meta.uid.is_some() || meta.gid.is_some() {
        fchown(handle, meta.uid, meta.gid).map_err(|source| WriteError::Chown {
            path: path.to_owned(),
            uid: meta.uid,
            gid: meta.gid,
            source,
        })?;
    }
    handle
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|source| WriteError::Chmod {
            path: path.to_owned(),
            mode,
            source,
        })
}

/// The names in `dir` (each as a `DirEntry`), or none when `dir` does not exist: the
/// "nothing to clean" case of both clean-ups.
pub(super) fn entries_if_exists(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let read_error = |source| WriteError::ReadDirectory {
        path: dir.to_owned(),
        source,
    };
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map_err(read_error)).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(read_error(source)),
    }
}

/// Opens a directory so it can be fsynced (and chmodded through the handle).
pub(super) fn open_dir(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| WriteError::OpenDirectory {
        path: path.to_owned(),
        source,
    })
}

/// fsyncs a directory so that renames and new entries in it survive a crash.
pub(super) fn sync_dir(path: &Path) -> Result<()> {
    open_dir(path)?
        .sync_all()
        .map_err(|source| WriteError::SyncDirectory {
            path: path.to_owned(),
            source,
        })
}

/// Removes a file, symlink or whole directory tree. Directories are made owner-writable
/// first, since the tree writer leaves them read-only (`0o500`). Symlinks are removed,
/// never followed.
pub(super) fn remove_all(path: &Path) -> io::Result<()> {
    let md = fs::symlink_metadata(path)?;
    if !md.is_dir() {
        return fs::remove_file(path);
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o700 != 0o700 {
        fs::set_permissions(path, Permissions::from_mode(mode | 0o700))?;
    }
    for entry in fs::read_dir(path)? {
        remove_all(&entry?.path())?;
    }
    fs::remove_dir(path)
}

/// Removes what a failed write created, unless [`Cleanup::keep`] was called.
///
/// Removal errors cannot be returned from `drop`; they are logged (path only) and the
/// leftovers are found again by the `clean_stale_*` functions on the next start.
pub(super) struct Cleanup {
    path: Option<PathBuf>,
}

impl Cleanup {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    /// The write got far enough that `path` must stay.
    pub(super) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            match remove_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "could not remove leftover of a failed write"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_get_a_search_bit_for_each_class_that_may_read() {
        assert_eq!(dir_mode(0o400), 0o500);
        assert_eq!(dir_mode(0o440), 0o550);
        assert_eq!(dir_mode(0o444), 0o555);
        assert_eq!(dir_mode(0o640), 0o750);
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o644), 0o755);
        assert_eq!(dir_mode(0o200), 0o200);
        assert_eq!(dir_mode(0o4400), 0o500);
    }

    #[test]
    fn unique_suffixes_differ_and_are_recognised() {
        let a = unique_suffix();
        let b = unique_suffix();
        assert_ne!(a, b);
        assert!(is_unique_suffix(&a));
        assert!(!is_unique_suffix("12"));
        assert!(!is_unique_suffix("12-"));
        assert!(!is_unique_suffix("-3"));
        assert!(!is_unique_suffix("1-2-3"));
        assert!(!is_unique_suffix("a-1"));
    }

    #[test]
    fn remove_all_deletes_read_only_trees() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("t");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/f"), b"x").unwrap();
        fs::set_permissions(root.join("sub/f"), Permissions::from_mode(0o400)).unwrap();
        fs::set_permissions(root.join("sub"), Permissions::from_mode(0o500)).unwrap();
        fs::set_permissions(&root, Permissions::from_mode(0o500)).unwrap();
        remove_all(&root).unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn cleanup_removes_unless_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        let kept = tmp.path().join("kept");
        fs::write(&gone, b"x").unwrap();
        fs::write(&kept, b"x").unwrap();
        drop(Cleanup::new(gone.clone()));
        Cleanup::new(kept.clone()).keep();
        assert!(!gone.exists());
        assert!(kept.exists());
    }
}
