//! One file, replaced atomically: temp file in the same directory, then `rename`.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::fsutil::{
    Cleanup, entries_if_exists, is_unique_suffix, same_content, same_mode_and_owner,
    set_owner_and_mode, sync_dir, unique_suffix,
};
use super::{FileMeta, Outcome, Result, WriteError, check_mode};

/// How many temp names to try when one is taken (a leftover with a reused pid).
const TEMP_ATTEMPTS: usize = 16;

/// Writes `content` to `path` so that readers see the old file or the new one, never a mix.
///
/// If `path` already is a regular file with these bytes, `meta.mode` and (when given) this
/// owner, nothing is touched and the result is [`Outcome::Unchanged`]. Otherwise a temp
/// file `.{name}.tmp-{pid}-{counter}` is created next to `path` (`O_EXCL`, mode `0600`),
/// written, chowned, chmodded and fsynced, then renamed over `path`, and the directory is
/// fsynced. On any error before the rename the temp file is removed and `path` is left as
/// it was. An error fsyncing the directory after the rename is still returned, although
/// the new file is then already in place. The directory of `path` must exist; it is never
/// created here.
pub fn write_file(path: &Path, content: &[u8], meta: &FileMeta) -> Result<Outcome> {
    check_mode(meta)?;
    let (dir, name) = split_target(path)?;
    check_directory(dir)?;
    check_replaceable(path)?;
    if is_unchanged(path, content, meta)? {
        return Ok(Outcome::Unchanged);
    }

    publish(path, dir, name, meta, |file| file.write_all(content))
}

/// Copies `source` to `path` as [`write_file`] writes (temp file, fsync, `rename`, no
/// partial file ever visible), streaming, without comparing with what is there: always
/// [`Outcome::Changed`]. For large files (the binary `install` copies).
pub fn copy_file(path: &Path, source: &mut dyn io::Read, meta: &FileMeta) -> Result<Outcome> {
    check_mode(meta)?;
    let (dir, name) = split_target(path)?;
    check_directory(dir)?;
    check_replaceable(path)?;
    publish(path, dir, name, meta, |file| {
        io::copy(source, file).map(|_| ())
    })
}

/// The temp file in `dir`, filled by `fill`, owner and mode set, fsynced, renamed over
/// `path`, the directory fsynced; the temp file removed on any error before the rename.
fn publish(
    path: &Path,
    dir: &Path,
    name: &OsStr,
    meta: &FileMeta,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<Outcome> {
    let (mut file, tmp_path) = create_temp(dir, name)?;
    let cleanup = Cleanup::new(tmp_path.clone());
    fill(&mut file).map_err(|source| WriteError::Write {
        path: tmp_path.clone(),
        source,
    })?;
    set_owner_and_mode(&file, &tmp_path, meta.mode, meta)?;
    // One fsync after chmod/chown makes data and metadata durable together.
    file.sync_all().map_err(|source| WriteError::Sync {
        path: tmp_path.clone(),
        source,
    })?;
    drop(file);
    fs::rename(&tmp_path, path).map_err(|source| WriteError::Rename {
        from: tmp_path.clone(),
        to: path.to_owned(),
        source,
    })?;
    cleanup.keep();
    sync_dir(dir)?;
    Ok(Outcome::Changed)
}

/// Removes the temp files that an interrupted [`write_file`] to `path` left behind
/// (`.{name}.tmp-{digits}-{digits}` next to `path`). Other files are kept, including temp
/// files of other targets. Returns how many were removed; a missing directory counts as
/// nothing to clean. Call it before writing `path`, not during.
pub fn clean_stale_file(path: &Path) -> Result<usize> {
    let (dir, name) = split_target(path)?;
    let entries = entries_if_exists(dir)?;
    let prefix = temp_prefix(name);
    let mut removed = 0;
    for entry in entries {
        let file_name = entry.file_name();
        let Some(rest) = file_name.as_bytes().strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        if !std::str::from_utf8(rest).is_ok_and(is_unique_suffix) {
            continue;
        }
        let stale = entry.path();
        // Only regular files: we never made anything else under this name.
        match entry.file_type() {
            Ok(t) if t.is_file() => {}
            _ => continue,
        }
        match fs::remove_file(&stale) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(WriteError::Remove {
                    path: stale,
                    source,
                });
            }
        }
    }
    Ok(removed)
}

/// Refuses a target that is not a regular file, a symlink to one, or nothing: `rename`
/// would replace a device, FIFO or socket (or a symlink to one, such as `/dev/stdout`) with
/// a file of values.
fn check_replaceable(path: &Path) -> Result<()> {
    match super::target_kind(path) {
        Ok(Some(kind)) if !kind.is_regular() => Err(WriteError::NotRegular {
            path: path.to_owned(),
            kind,
        }),
        Ok(_) => Ok(()),
        Err(source) => Err(WriteError::ReadExisting {
            path: path.to_owned(),
            source,
        }),
    }
}

/// `(directory, file name)` of a target; a bare name is in the current directory.
fn split_target(path: &Path) -> Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| WriteError::InvalidTarget {
        path: path.to_owned(),
        reason: "the path does not end in a file name",
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

fn check_directory(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(WriteError::Directory {
            path: dir.to_owned(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        }),
        Err(source) => Err(WriteError::Directory {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// `.{name}.tmp-`
fn temp_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    prefix
}

fn create_temp(dir: &Path, name: &OsStr) -> Result<(File, PathBuf)> {
    let prefix = temp_prefix(name);
    let mut attempt = 0;
    loop {
        let mut tmp_name = prefix.clone();
        tmp_name.push(unique_suffix());
        let tmp_path = dir.join(tmp_name);
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path);
        match opened {
            Ok(file) => return Ok((file, tmp_path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < TEMP_ATTEMPTS => {
                attempt += 1;
            }
            Err(source) => {
                return Err(WriteError::CreateTemp {
                    path: tmp_path,
                    source,
                });
            }
        }
    }
}

/// Whether `path` is a regular file with these bytes, mode and (when asked) owner.
fn is_unchanged(path: &Path, content: &[u8], meta: &FileMeta) -> Result<bool> {
    let read_err = |source| WriteError::ReadExisting {
        path: path.to_owned(),
        source,
    };
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(read_err(e)),
    };
    if !md.file_type().is_file()
        || md.len() != content.len() as u64
        || !same_mode_and_owner(&md, meta.mode, meta)
    {
        return Ok(false);
    }
    // O_NOFOLLOW: if the file was swapped for a symlink since the stat, do not read
    // through it.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(read_err(e)),
    };
    same_content(file, content).map_err(read_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_the_file_with_mode_0400_and_the_content() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("app.env");
        let out = write_file(&target, b"A=1\n", &FileMeta::default()).unwrap();
        assert_eq!(out, Outcome::Changed);
        assert_eq!(fs::read(&target).unwrap(), b"A=1\n");
        assert_eq!(mode_of(&target), 0o400);
        assert_eq!(names_in(tmp.path()), ["app.env"]);
    }

    #[test]
    fn identical_second_write_is_unchanged_and_touches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("app.env");
        let meta = FileMeta::default();
        write_file(&target, b"A=1\n", &meta).unwrap();
        let before = fs::metadata(&target).unwrap();
        let out = write_file(&target, b"A=1\n", &meta).unwrap();
        assert_eq!(out, Outcome::Unchanged);
        let after = fs::metadata(&target).unwrap();
        assert_eq!(before.ino(), after.ino());
        assert_eq!(
            (before.mtime(), before.mtime_nsec()),
            (after.mtime(), after.mtime_nsec())
        );
        assert_eq!(
            (before.ctime(), before.ctime_nsec()),
            (after.ctime(), after.ctime_nsec())
        );
    }

    #[test]
    fn changed_content_is_renamed_into_place_as_a_new_inode() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("app.env");
        let meta = FileMeta::default();
        write_file(&target, b"A=1\n", &meta).unwrap();
        let old_ino = fs::metadata(&target).unwrap().ino();
        let out = write_file(&target, b"A=2\n", &meta).unwrap();
        assert_eq!(out, Outcome::Changed);
        assert_eq!(fs::read(&target).unwrap(), b"A=2\n");
        assert_ne!(fs::metadata(&target).unwrap().ino(), old_ino);
        assert_eq!(names_in(tmp.path()), ["app.env"]);
    }

    #[test]
    fn same_content_with_a_longer_or_shorter_file_is_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("f");
        let meta = FileMeta::default();
        write_file(&target, b"abc", &meta).unwrap();
        assert_eq!(write_file(&target, b"ab", &meta).unwrap(), Outcome::Changed);
        assert_eq!(
            write_file(&target, b"abcd", &meta).unwrap(),
            Outcome::Changed
        );
        assert_eq!(write_file(&target, b"", &meta).unwrap(), Outcome::Changed);
        assert_eq!(write_file(&target, b"", &meta).unwrap(), Outcome::Unchanged);
        assert_eq!(fs::read(&target).unwrap(), b"");
    }

    #[test]
    fn a_mode_change_alone_is_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("app.env");
        write_file(&target, b"A=1\n", &FileMeta::default()).unwrap();
        let meta = FileMeta {
            mode: 0o440,
            ..FileMeta::default()
        };
        assert_eq!(
            write_file(&target, b"A=1\n", &meta).unwrap(),
            Outcome::Changed
        );
        assert_eq!(mode_of(&target), 0o440);
        assert_eq!(
            write_file(&target, b"A=1\n", &meta).unwrap(),
            Outcome::Unchanged
        );
    }

    #[test]
    fn sets_the_requested_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let probe = tmp.path().join("probe");
        fs::write(&probe, b"").unwrap();
        let md = fs::metadata(&probe).unwrap();
        let (uid, gid) = (md.uid(), md.gid());
        let target = tmp.path().join("owned");
        let meta = FileMeta {
            mode: 0o400,
            uid: Some(uid),
            gid: Some(gid),
        };
        write_file(&target, b"x", &meta).unwrap();
        let md = fs::metadata(&target).unwrap();
        assert_eq!((md.uid(), md.gid()), (uid, gid));
        assert_eq!(
            write_file(&target, b"x", &meta).unwrap(),
            Outcome::Unchanged
        );

        if uid == 0 {
            // As root, an owner change alone is a change and is applied.
            let nobody = FileMeta {
                uid: Some(65534),
                gid: Some(65534),
                ..meta
            };
            assert_eq!(
                write_file(&target, b"x", &nobody).unwrap(),
                Outcome::Changed
            );
            let md = fs::metadata(&target).unwrap();
            assert_eq!((md.uid(), md.gid()), (65534, 65534));
            assert_eq!(mode_of(&target), 0o400);
            assert_eq!(
                write_file(&target, b"x", &nobody).unwrap(),
                Outcome::Unchanged
            );
        }
    }

    #[test]
    fn missing_parent_directory_is_an_error_naming_it_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("missing");
        let err = write_file(&dir.join("app.env"), b"A=1\n", &FileMeta::default()).unwrap_err();
        assert!(matches!(err, WriteError::Directory { .. }), "{err:?}");
        assert!(err.to_string().contains(&*dir.to_string_lossy()), "{err}");
        assert!(names_in(tmp.path()).is_empty());
    }

    #[test]
    fn parent_that_is_a_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let not_dir = tmp.path().join("plain");
        fs::write(&not_dir, b"").unwrap();
        let err = write_file(&not_dir.join("x"), b"", &FileMeta::default()).unwrap_err();
        assert!(matches!(err, WriteError::Directory { .. }), "{err:?}");
    }

    #[test]
    fn a_directory_at_the_target_is_refused_before_any_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("app.env");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"old").unwrap();
        let err = write_file(&target, b"new", &FileMeta::default()).unwrap_err();
        assert!(matches!(err, WriteError::NotRegular { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("is a directory, not a regular file"),
            "{err}"
        );
        assert!(!err.to_string().contains("new"));
        assert_eq!(fs::read(target.join("keep")).unwrap(), b"old");
        assert_eq!(names_in(tmp.path()), ["app.env"]);
    }

    #[test]
    fn a_symlink_to_a_fifo_is_neither_replaced_nor_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let target = tmp.path().join("stdout");
        std::os::unix::fs::symlink(&fifo, &target).unwrap();
        // Opening the FIFO for writing would block here with no reader.
        let err = write_file(&target, b"new", &FileMeta::default()).unwrap_err();
        assert!(matches!(err, WriteError::NotRegular { .. }), "{err:?}");
        assert!(err.to_string().contains("a symlink to a FIFO"), "{err}");
        assert!(
            fs::symlink_metadata(&target)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(names_in(tmp.path()), ["pipe", "stdout"]);
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::write(&elsewhere, b"x").unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o400)).unwrap();
        let target = tmp.path().join("app.env");
        std::os::unix::fs::symlink(&elsewhere, &target).unwrap();
        let out = write_file(&target, b"x", &FileMeta::default()).unwrap();
        assert_eq!(out, Outcome::Changed);
        assert!(fs::symlink_metadata(&target).unwrap().is_file());
        assert_eq!(fs::read(&elsewhere).unwrap(), b"x");
    }

    #[test]
    fn a_path_without_a_file_name_is_rejected() {
        let err = write_file(Path::new("/"), b"", &FileMeta::default()).unwrap_err();
        assert!(matches!(err, WriteError::InvalidTarget { .. }), "{err:?}");
    }

    #[test]
    fn clean_stale_file_removes_our_temp_files_and_keeps_look_alikes() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("app.env");
        let names = [
            ".app.env.tmp-1-0",      // ours, stale
            ".app.env.tmp-4242-17",  // ours, stale
            ".app.env.bak.tmp-1-0",  // another target's temp file
            ".app.env.tmp-x-1",      // not our pattern
            ".app.env.tmp-1-0.keep", // not our pattern
            "app.env.tmp-1-0",       // no leading dot
            ".other.env.tmp-1-0",    // another target
            "app.env",               // the target itself
        ];
        for name in names {
            fs::write(tmp.path().join(name), b"").unwrap();
        }
        assert_eq!(clean_stale_file(&target).unwrap(), 2);
        assert_eq!(
            names_in(tmp.path()),
            [
                ".app.env.bak.tmp-1-0",
                ".app.env.tmp-1-0.keep",
                ".app.env.tmp-x-1",
                ".other.env.tmp-1-0",
                "app.env",
                "app.env.tmp-1-0",
            ]
        );
        assert_eq!(clean_stale_file(&target).unwrap(), 0);
    }

    #[test]
    fn clean_stale_file_in_a_missing_directory_removes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("missing/app.env");
        assert_eq!(clean_stale_file(&target).unwrap(), 0);
    }

    #[test]
    fn write_succeeds_next_to_a_stale_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("app.env");
        let stale = tmp
            .path()
            .join(format!(".app.env.tmp-{}-0", std::process::id()));
        fs::write(&stale, b"old").unwrap();
        write_file(&target, b"new", &FileMeta::default()).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
