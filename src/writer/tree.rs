//! A set of files published at once (the Kubernetes atomic-writer scheme).
//!
//! Layout of `dir` after a write of `{"a", "db/password"}`:
//!
//! ```text
//! dir/..2024_05_01_12_00_00.123456789/a             the files (mode from FileMeta)
//! dir/..2024_05_01_12_00_00.123456789/db/password
//! dir/..data -> ..2024_05_01_12_00_00.123456789     swapped with one rename
//! dir/a      -> ..data/a                             user-visible, never change target
//! dir/db     -> ..data/db
//! ```
//!
//! A reader that opens `dir/a` resolves `..data` once, so it gets a file of one complete
//! set. Names starting with `..` are reserved for the writer.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::fsutil::{
    Cleanup, dir_mode, entries_if_exists, is_unique_suffix, open_dir, remove_all, same_content,
    same_mode_and_owner, set_owner_and_mode, sync_dir, unique_suffix,
};
use super::{FileMeta, Outcome, Result, TREE_DIR_MODE, WriteError, check_mode};
use crate::secret::SecretBytes;

/// The symlink readers go through; points at the current timestamped directory.
const DATA_LINK: &str = "..data";
/// The new `..data`, before it is renamed over the old one.
const DATA_TMP: &str = "..data_tmp";
/// Temporary names for user-visible symlinks before they are renamed into place.
const LINK_TMP_PREFIX: &str = "..link_tmp-";
/// How many timestamped names to try when one is taken.
const NAME_ATTEMPTS: u128 = 1000;

/// Publishes `files` (relative path -> bytes) in `dir` so that readers see the whole old
/// set or the whole new set.
///
/// If `..data` already holds exactly these files with these bytes, modes and (when given)
/// owner, and the user-visible symlinks are in place, the result is
/// [`Outcome::Unchanged`] and nothing is touched. (If only symlinks are missing, say after
/// a crash right after the swap, they are restored and the result is `Changed`.)
///
/// Otherwise: a new timestamped directory is filled (files fsynced, owner and mode set on
/// every file and directory, directories fsynced), `..data_tmp -> <new dir>` is renamed
/// over `..data`, `dir` is fsynced, user-visible symlinks are created or removed, and the
/// old timestamped directory is deleted. A failure before the swap removes the new
/// directory and `..data_tmp`, leaving the old set as it was. Failing to delete the old
/// directory after a successful swap is only logged: the new set is live, and
/// [`clean_stale_tree`] removes it later.
///
/// `dir` is created with mode [`TREE_DIR_MODE`] if missing; its parent must exist. Keys
/// must be relative paths of plain segments (no empty, `.` or `..` segment, the first not
/// starting with `..`), and no key may be a directory of another.
pub fn write_tree(
    dir: &Path,
    files: &BTreeMap<String, SecretBytes>,
    meta: &FileMeta,
) -> Result<Outcome> {
    check_mode(meta)?;
    let plan = Plan::new(files)?;
    ensure_dir(dir)?;

    let old = current_data_dir(dir)?;
    if let Some(old) = &old
        && tree_matches(&dir.join(old), files, meta)?
    {
        let links_changed = sync_visible_links(dir, &plan)?;
        return Ok(if links_changed {
            Outcome::Changed
        } else {
            Outcome::Unchanged
        });
    }

    let new_name = create_timestamped_dir(dir)?;
    let new_dir = dir.join(&new_name);
    let new_dir_cleanup = Cleanup::new(new_dir.clone());
    populate(&new_dir, files, &plan, meta)?;
    // Make the new directory's entry in `dir` durable before anything points at it.
    sync_dir(dir)?;

    let tmp_link = dir.join(DATA_TMP);
    remove_if_present(&tmp_link)?;
    symlink(&new_name, &tmp_link).map_err(|source| WriteError::Symlink {
        path: tmp_link.clone(),
        target: PathBuf::from(&new_name),
        source,
    })?;
    let tmp_link_cleanup = Cleanup::new(tmp_link.clone());
    let data_link = dir.join(DATA_LINK);
    fs::rename(&tmp_link, &data_link).map_err(|source| WriteError::Rename {
        from: tmp_link.clone(),
        to: data_link.clone(),
        source,
    })?;
    // The swap happened: the new set is live and must stay.
    tmp_link_cleanup.keep();
    new_dir_cleanup.keep();
    sync_dir(dir)?;

    sync_visible_links(dir, &plan)?;

    if let Some(old) = old.filter(|old| *old != new_name) {
        let old_dir = dir.join(&old);
        if let Err(e) = remove_all(&old_dir) {
            tracing::warn!(
                path = %old_dir.display(),
                error = %e,
                "could not remove the previous data directory; it is removed at the next start"
            );
        }
    }
    Ok(Outcome::Changed)
}

/// Removes what an interrupted [`write_tree`] left in `dir`: `..data_tmp`, temporary
/// symlinks, and every timestamped directory that `..data` does not point at. The live
/// set and user files are kept. Returns how many entries were removed; a missing `dir`
/// counts as nothing to clean. Call it before writing `dir`, not during.
pub fn clean_stale_tree(dir: &Path) -> Result<usize> {
    let entries = entries_if_exists(dir)?;
    let live = current_data_dir(dir)?;
    let mut removed = 0;
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = name == DATA_TMP
            || name
                .strip_prefix(LINK_TMP_PREFIX)
                .is_some_and(is_unique_suffix)
            || (is_timestamped_name(name) && live.as_deref() != Some(name));
        if !stale {
            continue;
        }
        let path = entry.path();
        match remove_all(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(WriteError::Remove { path, source }),
        }
    }
    Ok(removed)
}

/// The checked keys of one write.
#[derive(Debug)]
struct Plan {
    /// First segments: the names of the user-visible symlinks.
    top_level: BTreeSet<String>,
    /// Every directory inside the timestamped directory, as a relative path.
    dirs: BTreeSet<String>,
}

impl Plan {
    fn new(files: &BTreeMap<String, SecretBytes>) -> Result<Self> {
        let mut top_level = BTreeSet::new();
        let mut dirs = BTreeSet::new();
        for key in files.keys() {
            let segments = check_key(key)?;
            for depth in 1..segments.len() {
                let parent = segments[..depth].join("/");
                if files.contains_key(&parent) {
                    return Err(WriteError::InvalidKey {
                        key: key.clone(),
                        reason: "another key names a file where this key needs a directory",
                    });
                }
                dirs.insert(parent);
            }
            top_level.insert(segments[0].to_owned());
        }
        Ok(Self { top_level, dirs })
    }
}

/// Splits a key into its path segments, or says why it could escape or clash.
fn check_key(key: &str) -> Result<Vec<&str>> {
    let invalid = |reason| WriteError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.starts_with('/') {
        return Err(invalid("it is an absolute path; use a relative one"));
    }
    if key.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let segments: Vec<&str> = key.split('/').collect();
    for segment in &segments {
        match *segment {
            "" => {
                return Err(invalid(
                    "it has an empty path segment (`//` or a trailing `/`)",
                ));
            }
            "." | ".." => return Err(invalid("it has a `.` or `..` path segment")),
            _ => {}
        }
    }
    if segments[0].starts_with("..") {
        return Err(invalid(
            "it starts with `..`, which is reserved for the writer's own entries",
        ));
    }
    Ok(segments)
}

/// Creates `dir` (mode [`TREE_DIR_MODE`]) unless it is already a directory.
fn ensure_dir(dir: &Path) -> Result<()> {
    let create_err = |source| WriteError::CreateDirectory {
        path: dir.to_owned(),
        source,
    };
    match fs::metadata(dir) {
        Ok(md) if md.is_dir() => return Ok(()),
        Ok(_) => return Err(create_err(io::Error::from(io::ErrorKind::NotADirectory))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(create_err(e)),
    }
    match DirBuilder::new().mode(TREE_DIR_MODE).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away; the documented mode is exact.
            fs::set_permissions(dir, Permissions::from_mode(TREE_DIR_MODE)).map_err(|source| {
                WriteError::Chmod {
                    path: dir.to_owned(),
                    mode: TREE_DIR_MODE,
                    source,
                }
            })?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(create_err(e)),
    }
}

/// Name of the timestamped directory `..data` points at, if it is one of ours.
///
/// A `..data` that is missing is `None`. One that points anywhere else is also `None`,
/// so the writer neither reads nor deletes outside `dir`; the swap then replaces it.
fn current_data_dir(dir: &Path) -> Result<Option<String>> {
    let link = dir.join(DATA_LINK);
    match fs::read_link(&link) {
        Ok(target) => Ok(target
            .to_str()
            .filter(|t| is_timestamped_name(t))
            .map(str::to_owned)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(WriteError::ReadLink { path: link, source }),
    }
}

/// Whether the tree at `root` holds exactly `files` with the modes and owner of `meta`.
fn tree_matches(
    root: &Path,
    files: &BTreeMap<String, SecretBytes>,
    meta: &FileMeta,
) -> Result<bool> {
    let mut seen = 0;
    match walk_matches(root, "", files, meta, &mut seen) {
        Ok(matches) => Ok(matches && seen == files.len()),
        // The old set vanished or is partial: write a new one.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(WriteError::ReadExisting {
            path: root.to_owned(),
            source,
        }),
    }
}

fn walk_matches(
    dir: &Path,
    rel: &str,
    files: &BTreeMap<String, SecretBytes>,
    meta: &FileMeta,
    seen: &mut usize,
) -> io::Result<bool> {
    let md = fs::symlink_metadata(dir)?;
    if !md.is_dir() || !same_mode_and_owner(&md, dir_mode(meta.mode), meta) {
        return Ok(false);
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            return Ok(false);
        };
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let md = fs::symlink_metadata(&path)?;
        if md.is_dir() {
            if !walk_matches(&path, &key, files, meta, seen)? {
                return Ok(false);
            }
            continue;
        }
        let Some(expected) = files.get(&key) else {
            return Ok(false);
        };
        if !md.file_type().is_file()
            || md.len() != expected.len() as u64
            || !same_mode_and_owner(&md, meta.mode, meta)
        {
            return Ok(false);
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        if !same_content(file, expected)? {
            return Ok(false);
        }
        *seen += 1;
    }
    Ok(true)
}

/// Creates `dir/..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` (UTC, mode 0700 until populated).
/// If the name is taken (two writes in one nanosecond), the next nanosecond is tried.
fn create_timestamped_dir(dir: &Path) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    create_timestamped_dir_at(dir, now)
}

fn create_timestamped_dir_at(dir: &Path, now: u128) -> Result<String> {
    let mut last_err = None;
    for step in 0..NAME_ATTEMPTS {
        let name = timestamped_name(now + step);
        match DirBuilder::new().mode(0o700).create(dir.join(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some((name, e)),
            Err(source) => {
                return Err(WriteError::CreateDirectory {
                    path: dir.join(name),
                    source,
                });
            }
        }
    }
    let (path, source) = match last_err {
        Some((name, source)) => (dir.join(name), source),
        None => (
            dir.to_owned(),
            io::Error::other("no directory name was tried"),
        ),
    };
    Err(WriteError::CreateDirectory { path, source })
}

/// `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` for a time in nanoseconds since the Unix epoch (UTC).
fn timestamped_name(nanos: u128) -> String {
    let secs = (nanos / 1_000_000_000) as i64;
    let nano = nanos % 1_000_000_000;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sec_of_day = secs.rem_euclid(86_400);
    format!(
        "..{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}.{nano:09}",
        sec_of_day / 3600,
        sec_of_day % 3600 / 60,
        sec_of_day % 60,
    )
}

/// Whether `name` has the shape [`timestamped_name`] produces.
fn is_timestamped_name(name: &str) -> bool {
    const SHAPE: &[u8] = b"..DDDD_DD_DD_DD_DD_DD.DDDDDDDDD";
    name.len() == SHAPE.len()
        && name.bytes().zip(SHAPE).all(|(b, &s)| match s {
            b'D' => b.is_ascii_digit(),
            _ => b == s,
        })
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes every file under `root`, then sets owner and mode on each directory (deepest
/// first, `root` last) and fsyncs it.
fn populate(
    root: &Path,
    files: &BTreeMap<String, SecretBytes>,
    plan: &Plan,
    meta: &FileMeta,
) -> Result<()> {
    // Sorted, so a parent comes before its children.
    for rel in &plan.dirs {
        let path = root.join(rel);
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| WriteError::CreateDirectory { path, source })?;
    }
    for (key, content) in files {
        let path = root.join(key);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| WriteError::CreateFile {
                path: path.clone(),
                source,
            })?;
        file.write_all(content)
            .map_err(|source| WriteError::Write {
                path: path.clone(),
                source,
            })?;
        set_owner_and_mode(&file, &path, meta.mode, meta)?;
        file.sync_all()
            .map_err(|source| WriteError::Sync { path, source })?;
    }
    let mut dirs: Vec<PathBuf> = plan.dirs.iter().map(|rel| root.join(rel)).collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    dirs.push(root.to_owned());
    let mode = dir_mode(meta.mode);
    for path in &dirs {
        // Through one handle: opening works before the chmod, which may drop write access.
        let handle = open_dir(path)?;
        set_owner_and_mode(&handle, path, mode, meta)?;
        handle
            .sync_all()
            .map_err(|source| WriteError::SyncDirectory {
                path: path.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Makes `dir/NAME -> ..data/NAME` exist for every top-level name of the plan and removes
/// such symlinks for names no longer in it. Each is replaced atomically (temp symlink, then
/// rename). Entries that are not our symlinks are left alone unless a name is needed.
/// Returns whether anything changed.
fn sync_visible_links(dir: &Path, plan: &Plan) -> Result<bool> {
    let mut changed = false;
    for name in &plan.top_level {
        let link = dir.join(name);
        let target = Path::new(DATA_LINK).join(name);
        if fs::read_link(&link).is_ok_and(|t| t == target) {
            continue;
        }
        let tmp = dir.join(format!("{LINK_TMP_PREFIX}{}", unique_suffix()));
        symlink(&target, &tmp).map_err(|source| WriteError::Symlink {
            path: tmp.clone(),
            target: target.clone(),
            source,
        })?;
        let cleanup = Cleanup::new(tmp.clone());
        fs::rename(&tmp, &link).map_err(|source| WriteError::Rename {
            from: tmp.clone(),
            to: link.clone(),
            source,
        })?;
        cleanup.keep();
        changed = true;
    }

    let entries = fs::read_dir(dir).map_err(|source| WriteError::ReadDirectory {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| WriteError::ReadDirectory {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        if is_needed_or_reserved(&name, plan) {
            continue;
        }
        let path = entry.path();
        let ours = fs::read_link(&path).is_ok_and(|t| t == Path::new(DATA_LINK).join(&name));
        if !ours {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => changed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(WriteError::Remove { path, source }),
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(changed)
}

fn is_needed_or_reserved(name: &OsStr, plan: &Plan) -> bool {
    match name.to_str() {
        Some(name) => name.starts_with("..") || plan.top_level.contains(name),
        // Keys are UTF-8, so a non-UTF-8 name was never ours.
        None => true,
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match remove_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WriteError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    use zeroize::Zeroizing;

    /// A temp dir that is removed even when the writer left read-only directories in it
    /// (`TempDir` alone cannot remove those when the tests run without root).
    struct Scratch(tempfile::TempDir);

    impl Scratch {
        fn path(&self) -> &Path {
            self.0.path()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = remove_all(self.0.path());
        }
    }

    fn scratch() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    fn set(entries: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Zeroizing::new(v.as_bytes().to_vec())))
            .collect()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        names.sort();
        names
    }

    fn timestamped_dirs(dir: &Path) -> Vec<String> {
        names_in(dir)
            .into_iter()
            .filter(|n| is_timestamped_name(n))
            .collect()
    }

    fn data_target(dir: &Path) -> String {
        fs::read_link(dir.join(DATA_LINK))
            .unwrap()
            .into_os_string()
            .into_string()
            .unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn publishes_files_behind_data_symlink_and_top_level_links() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        let files = set(&[("a", "1"), ("db/password", "pw"), ("db/user", "u")]);
        let out = write_tree(&dir, &files, &FileMeta::default()).unwrap();
        assert_eq!(out, Outcome::Changed);

        let ts = data_target(&dir);
        assert!(is_timestamped_name(&ts), "{ts}");
        assert_eq!(names_in(&dir), sorted(&["..data", &ts, "a", "db"]));
        assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(
            fs::read_link(dir.join("db")).unwrap(),
            Path::new("..data/db")
        );
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"1");
        assert_eq!(fs::read(dir.join("db/password")).unwrap(), b"pw");
        assert_eq!(fs::read(dir.join("db/user")).unwrap(), b"u");
        assert_eq!(names_in(&dir.join(&ts)), ["a", "db"]);
        assert_eq!(mode_of(&dir), TREE_DIR_MODE);
    }

    #[test]
    fn files_get_the_mode_and_directories_the_matching_search_bits() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        let meta = FileMeta {
            mode: 0o440,
            ..FileMeta::default()
        };
        write_tree(&dir, &set(&[("a", "1"), ("db/password", "pw")]), &meta).unwrap();
        let ts = dir.join(data_target(&dir));
        assert_eq!(mode_of(&ts.join("a")), 0o440);
        assert_eq!(mode_of(&ts.join("db/password")), 0o440);
        assert_eq!(mode_of(&ts.join("db")), 0o550);
        assert_eq!(mode_of(&ts), 0o550);

        write_tree(&dir, &set(&[("a", "1")]), &FileMeta::default()).unwrap();
        let ts = dir.join(data_target(&dir));
        assert_eq!(mode_of(&ts.join("a")), 0o400);
        assert_eq!(mode_of(&ts), 0o500);
    }

    #[test]
    fn files_and_directories_get_the_requested_owner() {
        let tmp = scratch();
        let probe = tmp.path().join("probe");
        fs::write(&probe, b"").unwrap();
        let md = fs::metadata(&probe).unwrap();
        let mut owners = vec![(md.uid(), md.gid())];
        if md.uid() == 0 {
            owners.push((65534, 65534));
        }
        let dir = tmp.path().join("out");
        let files = set(&[("db/password", "pw")]);
        for (uid, gid) in owners {
            let meta = FileMeta {
                mode: 0o400,
                uid: Some(uid),
                gid: Some(gid),
            };
            write_tree(&dir, &files, &meta).unwrap();
            let ts = dir.join(data_target(&dir));
            for path in [ts.join("db/password"), ts.join("db"), ts.clone()] {
                let md = fs::metadata(&path).unwrap();
                assert_eq!((md.uid(), md.gid()), (uid, gid), "{}", path.display());
            }
            assert_eq!(write_tree(&dir, &files, &meta).unwrap(), Outcome::Unchanged);
        }
    }

    #[test]
    fn identical_set_is_unchanged_and_touches_nothing() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        let files = set(&[("a", "1"), ("db/password", "pw")]);
        write_tree(&dir, &files, &FileMeta::default()).unwrap();
        let names = names_in(&dir);
        let ino = fs::metadata(dir.join("a")).unwrap().ino();
        let out = write_tree(&dir, &files, &FileMeta::default()).unwrap();
        assert_eq!(out, Outcome::Unchanged);
        assert_eq!(names_in(&dir), names);
        assert_eq!(fs::metadata(dir.join("a")).unwrap().ino(), ino);
    }

    #[test]
    fn changed_value_mode_or_key_set_is_changed() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        let meta = FileMeta::default();
        write_tree(&dir, &set(&[("a", "1"), ("b", "2")]), &meta).unwrap();
        let cases = [
            (set(&[("a", "1"), ("b", "3")]), meta),
            (set(&[("a", "1"), ("b", "3"), ("c", "4")]), meta),
            (set(&[("a", "1"), ("b", "3")]), meta),
            (
                set(&[("a", "1"), ("b", "3")]),
                FileMeta {
                    mode: 0o444,
                    ..meta
                },
            ),
        ];
        for (files, meta) in &cases {
            assert_eq!(write_tree(&dir, files, meta).unwrap(), Outcome::Changed);
            assert_eq!(write_tree(&dir, files, meta).unwrap(), Outcome::Unchanged);
        }
    }

    #[test]
    fn a_removed_key_disappears_and_the_old_data_dir_is_gone() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        write_tree(
            &dir,
            &set(&[("a", "1"), ("b", "2"), ("db/x", "x")]),
            &FileMeta::default(),
        )
        .unwrap();
        let first = data_target(&dir);
        write_tree(&dir, &set(&[("a", "1")]), &FileMeta::default()).unwrap();
        let second = data_target(&dir);
        assert_ne!(first, second);
        assert_eq!(timestamped_dirs(&dir), std::slice::from_ref(&second));
        assert_eq!(names_in(&dir), sorted(&["..data", &second, "a"]));
        assert!(fs::symlink_metadata(dir.join("b")).is_err());
        assert!(fs::symlink_metadata(dir.join("db")).is_err());
    }

    #[test]
    fn a_file_key_can_become_a_directory_key() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        write_tree(&dir, &set(&[("db", "flat")]), &FileMeta::default()).unwrap();
        write_tree(&dir, &set(&[("db/password", "pw")]), &FileMeta::default()).unwrap();
        assert_eq!(fs::read(dir.join("db/password")).unwrap(), b"pw");
    }

    #[test]
    fn user_files_in_the_directory_are_left_alone() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("README"), b"mine").unwrap();
        symlink("elsewhere", dir.join("link")).unwrap();
        write_tree(&dir, &set(&[("a", "1")]), &FileMeta::default()).unwrap();
        write_tree(&dir, &set(&[("b", "2")]), &FileMeta::default()).unwrap();
        assert_eq!(fs::read(dir.join("README")).unwrap(), b"mine");
        assert_eq!(
            fs::read_link(dir.join("link")).unwrap(),
            Path::new("elsewhere")
        );
        assert!(fs::symlink_metadata(dir.join("a")).is_err());
    }

    #[test]
    fn a_missing_visible_link_is_restored_without_a_new_data_dir() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        let files = set(&[("a", "1"), ("b", "2")]);
        write_tree(&dir, &files, &FileMeta::default()).unwrap();
        let ts = data_target(&dir);
        // As if the writer crashed right after the swap.
        fs::remove_file(dir.join("b")).unwrap();
        assert_eq!(
            write_tree(&dir, &files, &FileMeta::default()).unwrap(),
            Outcome::Changed
        );
        assert_eq!(data_target(&dir), ts);
        assert_eq!(fs::read(dir.join("b")).unwrap(), b"2");
        assert_eq!(
            write_tree(&dir, &files, &FileMeta::default()).unwrap(),
            Outcome::Unchanged
        );
    }

    #[test]
    fn an_empty_set_publishes_an_empty_directory() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        write_tree(&dir, &set(&[("a", "1")]), &FileMeta::default()).unwrap();
        assert_eq!(
            write_tree(&dir, &set(&[]), &FileMeta::default()).unwrap(),
            Outcome::Changed
        );
        let ts = data_target(&dir);
        assert_eq!(names_in(&dir), sorted(&["..data", &ts]));
        assert_eq!(
            write_tree(&dir, &set(&[]), &FileMeta::default()).unwrap(),
            Outcome::Unchanged
        );
    }

    #[test]
    fn missing_parent_of_the_directory_is_an_error() {
        let tmp = scratch();
        let dir = tmp.path().join("missing/out");
        let err = write_tree(&dir, &set(&[("a", "1")]), &FileMeta::default()).unwrap_err();
        assert!(matches!(err, WriteError::CreateDirectory { .. }), "{err:?}");
        assert!(names_in(tmp.path()).is_empty());
    }

    #[test]
    fn unsafe_keys_are_rejected_before_anything_is_written() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        let bad = [
            "",
            "/etc/passwd",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "..",
            "a/../../b",
            "..data",
            "..2024_01_01_00_00_00.000000000",
            "nul\0byte",
        ];
        for key in bad {
            let err = write_tree(&dir, &set(&[(key, "x")]), &FileMeta::default()).unwrap_err();
            assert!(
                matches!(err, WriteError::InvalidKey { .. }),
                "{key:?}: {err:?}"
            );
        }
        let err = write_tree(
            &dir,
            &set(&[("db", "x"), ("db/password", "y")]),
            &FileMeta::default(),
        )
        .unwrap_err();
        assert!(matches!(err, WriteError::InvalidKey { .. }), "{err:?}");
        assert!(!dir.exists());
    }

    #[test]
    fn a_failure_before_the_swap_keeps_the_old_set_and_leaves_nothing_behind() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        write_tree(&dir, &set(&[("a", "old")]), &FileMeta::default()).unwrap();
        let before = names_in(&dir);
        // A name longer than NAME_MAX fails at file creation, even as root.
        let long = "x".repeat(300);
        let err = write_tree(
            &dir,
            &set(&[("a", "new"), (&long, "y")]),
            &FileMeta::default(),
        )
        .unwrap_err();
        assert!(matches!(err, WriteError::CreateFile { .. }), "{err:?}");
        assert!(!err.to_string().contains("new"));
        assert_eq!(names_in(&dir), before);
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"old");
    }

    #[test]
    fn clean_stale_tree_removes_leftovers_and_keeps_the_live_set() {
        let tmp = scratch();
        let dir = tmp.path().join("out");
        write_tree(&dir, &set(&[("a", "1")]), &FileMeta::default()).unwrap();
        let live = data_target(&dir);
        // Leftovers of a crashed write: an orphan (read-only) data dir, ..data_tmp and a
        // temp link.
        let orphan = dir.join("..2001_02_03_04_05_06.000000007");
        fs::create_dir_all(orphan.join("sub")).unwrap();
        fs::write(orphan.join("sub/f"), b"x").unwrap();
        fs::set_permissions(orphan.join("sub"), Permissions::from_mode(0o500)).unwrap();
        fs::set_permissions(&orphan, Permissions::from_mode(0o500)).unwrap();
        symlink("..2001_02_03_04_05_06.000000007", dir.join(DATA_TMP)).unwrap();
        symlink("..data/a", dir.join("..link_tmp-1-2")).unwrap();
        // Look-alikes that are not ours.
        fs::create_dir(dir.join("..2001_02_03")).unwrap();
        fs::write(dir.join("user.txt"), b"").unwrap();

        assert_eq!(clean_stale_tree(&dir).unwrap(), 3);
        assert_eq!(
            names_in(&dir),
            sorted(&["..2001_02_03", "..data", &live, "a", "user.txt"])
        );
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"1");
        assert_eq!(clean_stale_tree(&dir).unwrap(), 0);
    }

    #[test]
    fn clean_stale_tree_without_data_link_removes_every_data_dir() {
        let tmp = scratch();
        let dir = tmp.path();
        fs::create_dir(dir.join("..2001_02_03_04_05_06.000000007")).unwrap();
        assert_eq!(clean_stale_tree(dir).unwrap(), 1);
        assert!(names_in(dir).is_empty());
    }

    #[test]
    fn clean_stale_tree_of_a_missing_directory_removes_nothing() {
        let tmp = scratch();
        assert_eq!(clean_stale_tree(&tmp.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn timestamped_names_are_utc_calendar_dates() {
        assert_eq!(timestamped_name(0), "..1970_01_01_00_00_00.000000000");
        // 2024-02-29T23:59:59.123456789Z, a leap day.
        assert_eq!(
            timestamped_name(1_709_251_199_123_456_789),
            "..2024_02_29_23_59_59.123456789"
        );
        assert_eq!(
            timestamped_name(951_782_400_000_000_001),
            "..2000_02_29_00_00_00.000000001"
        );
        assert!(is_timestamped_name(&timestamped_name(
            1_709_251_199_123_456_789
        )));
        assert!(!is_timestamped_name("..data"));
        assert!(!is_timestamped_name("..2024_02_29_23_59_59.12345678"));
        assert!(!is_timestamped_name("..2024_02_29_23_59_59x123456789"));
    }

    #[test]
    fn writes_in_the_same_nanosecond_get_distinct_directories() {
        let tmp = scratch();
        let now = 1_709_251_199_999_999_999;
        let first = create_timestamped_dir_at(tmp.path(), now).unwrap();
        let second = create_timestamped_dir_at(tmp.path(), now).unwrap();
        assert_eq!(first, "..2024_02_29_23_59_59.999999999");
        assert_eq!(second, "..2024_03_01_00_00_00.000000000");
        assert!(tmp.path().join(&first).is_dir() && tmp.path().join(&second).is_dir());
    }

    /// Readers see one complete set: `a` and `b` always carry the same version.
    #[test]
    fn concurrent_reader_never_sees_a_missing_file_or_a_mixed_set() {
        const VERSIONS: usize = 300;
        const MAX_READS: usize = 1_000_000;
        let tmp = scratch();
        let dir = tmp.path().join("out");
        let version = |n: usize| set(&[("a", &n.to_string()), ("b", &n.to_string())]);
        write_tree(&dir, &version(0), &FileMeta::default()).unwrap();

        let done = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(2));
        let reader = {
            let (dir, done, start) = (dir.clone(), done.clone(), start.clone());
            std::thread::spawn(move || {
                let data = dir.join(DATA_LINK);
                let (mut snapshots, mut replaced, mut visible) = (0, 0, 0);
                start.wait();
                for _ in 0..MAX_READS {
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    // Snapshot: resolve ..data once, read both files of that set.
                    let ts = fs::read_link(&data).expect("..data is always present");
                    let snap = dir.join(&ts);
                    match (fs::read(snap.join("a")), fs::read(snap.join("b"))) {
                        (Ok(a), Ok(b)) => {
                            assert_eq!(a, b, "mixed set in {}", ts.display());
                            assert!(!a.is_empty());
                            snapshots += 1;
                        }
                        // Allowed only if that set was replaced (and so deleted) meanwhile.
                        (Err(e), _) | (_, Err(e)) => {
                            assert_eq!(e.kind(), io::ErrorKind::NotFound);
                            assert_ne!(
                                fs::read_link(&data).unwrap(),
                                ts,
                                "file missing from live set"
                            );
                            replaced += 1;
                        }
                    }
                    // Through the user-visible link: always a whole value. A miss is
                    // allowed only if a swap happened during the open.
                    let before = fs::read_link(&data).unwrap();
                    match fs::read(dir.join("a")) {
                        Ok(a) => {
                            let n: usize = std::str::from_utf8(&a).unwrap().parse().unwrap();
                            assert!(n <= VERSIONS);
                            visible += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), io::ErrorKind::NotFound);
                            assert_ne!(fs::read_link(&data).unwrap(), before, "dir/a missing");
                        }
                    }
                }
                (snapshots, replaced, visible)
            })
        };

        start.wait();
        for n in 1..=VERSIONS {
            assert_eq!(
                write_tree(&dir, &version(n), &FileMeta::default()).unwrap(),
                Outcome::Changed
            );
        }
        done.store(true, Ordering::Release);
        let (snapshots, _replaced, visible) = reader.join().unwrap();
        assert!(snapshots > 0 && visible > 0);
        assert_eq!(
            fs::read(dir.join("a")).unwrap(),
            VERSIONS.to_string().as_bytes()
        );
        assert_eq!(timestamped_dirs(&dir).len(), 1);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;
        use std::path::Component;

        proptest! {
            #[test]
            fn accepted_keys_never_leave_the_directory(key in "[a-z./]{0,12}") {
                if let Ok(segments) = check_key(&key) {
                    prop_assert!(!segments.is_empty());
                    prop_assert!(!segments[0].starts_with(".."));
                    for c in Path::new(&key).components() {
                        prop_assert!(matches!(c, Component::Normal(_)), "{key:?}");
                    }
                }
            }

            #[test]
            fn every_timestamped_name_is_recognised(nanos in 0u128..=4_102_444_800_000_000_000) {
                prop_assert!(is_timestamped_name(&timestamped_name(nanos)));
            }
        }
    }
}
