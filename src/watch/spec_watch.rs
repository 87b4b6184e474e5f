//! Watches the spec file so the loop can re-read it when it changes.
//!
//! The file's parent directory is watched (non-recursively), not the file: replacing the file
//! by rename, or swapping the `..data` symlink the way Kubernetes updates a mounted ConfigMap,
//! puts a new inode in place, and a watch on the old inode would never fire again. Events
//! that concern neither the file's name nor `..data` are dropped, as are opens, reads and
//! removals (the loop's own reading of the spec must not trigger another read).

use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The name Kubernetes' atomic writer swaps to publish a new version of a volume.
const DATA_LINK: &str = "..data";

/// The spec file could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum SpecWatchError {
    #[error("{} does not name a file", .path.display())]
    NoFileName { path: PathBuf },
    #[error("could not start watching files: {source}")]
    Start {
        #[source]
        source: notify::Error,
    },
    #[error("could not watch directory {}: {source}", .dir.display())]
    Watch {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Watches a spec file; each change (write, create, rename-in, as Kubernetes ConfigMap
/// symlink swaps do) sends `()` on the returned channel, coalesced. Dropping it stops the
/// watch.
pub struct SpecWatcher {
    path: PathBuf,
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for SpecWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecWatcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SpecWatcher {
    /// Starts watching `path`'s directory. The receiver holds at most one pending change:
    /// several changes before the loop looks are one re-read.
    pub fn start(path: &Path) -> Result<(SpecWatcher, mpsc::Receiver<()>), SpecWatchError> {
        let name = path
            .file_name()
            .ok_or_else(|| SpecWatchError::NoFileName {
                path: path.to_owned(),
            })?
            .to_owned();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let (tx, rx) = mpsc::channel(1);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            match res {
                Ok(event) if concerns(&event, &name) => {
                    tracing::debug!(kind = ?event.kind, "spec file changed");
                    // Full means a change is already pending: coalesced. Closed means the
                    // loop is gone: nothing to do.
                    let _ = tx.try_send(());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("watching the spec file: {e}"),
            }
        })
        .map_err(|source| SpecWatchError::Start { source })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| SpecWatchError::Watch {
                dir: dir.clone(),
                source,
            })?;
        Ok((
            SpecWatcher {
                path: path.to_owned(),
                _watcher: watcher,
            },
            rx,
        ))
    }
}

/// Whether `event` (in the watched directory) may have changed the file called `name`.
fn concerns(event: &Event, name: &OsString) -> bool {
    if event.need_rescan() {
        return true; // events were lost: re-reading is the safe answer
    }
    let relevant = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n == name.as_os_str() || n == OsStr::new(DATA_LINK))
    };
    match event.kind {
        // Opens, reads and closes: the loop reads the spec itself.
        EventKind::Access(_) => false,
        // Gone or moved away: nothing new to read; the replacement comes as its own event.
        EventKind::Remove(_) => false,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => false,
        // A rename with both ends known: only the destination matters.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.last().is_some_and(relevant)
        }
        _ => event.paths.iter().any(relevant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, RemoveKind};
    use std::os::unix::fs::symlink;
    use std::time::Duration;
    use tokio::time::timeout;

    const DEADLINE: Duration = Duration::from_secs(5);
    /// How long an unrelated change gets to (wrongly) show up.
    const QUIET: Duration = Duration::from_millis(300);

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    #[test]
    fn keeps_only_changes_to_the_file_or_the_data_link() {
        let name = OsString::from("spec.yaml");
        let modify = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let create = EventKind::Create(CreateKind::File);
        let table: &[(&str, Event, bool)] = &[
            ("write", event(modify, &["/d/spec.yaml"]), true),
            ("create", event(create, &["/d/spec.yaml"]), true),
            (
                "rename in",
                event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                    &["/d/spec.yaml"],
                ),
                true,
            ),
            (
                "rename over",
                event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                    &["/d/.spec.tmp", "/d/spec.yaml"],
                ),
                true,
            ),
            (
                "data link swap",
                event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                    &["/d/..data_tmp", "/d/..data"],
                ),
                true,
            ),
            (
                "rename away",
                event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                    &["/d/spec.yaml", "/d/spec.yaml.bak"],
                ),
                false,
            ),
            (
                "moved from",
                event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                    &["/d/spec.yaml"],
                ),
                false,
            ),
            (
                "read",
                event(EventKind::Access(AccessKind::Any), &["/d/spec.yaml"]),
                false,
            ),
            (
                "remove",
                event(EventKind::Remove(RemoveKind::File), &["/d/spec.yaml"]),
                false,
            ),
            ("other file", event(modify, &["/d/other.yaml"]), false),
            ("similar name", event(modify, &["/d/spec.yaml.swp"]), false),
            (
                "rescan",
                event(EventKind::Other, &[]).set_flag(notify::event::Flag::Rescan),
                true,
            ),
        ];
        for (what, ev, want) in table {
            assert_eq!(concerns(ev, &name), *want, "{what}");
        }
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        let err = SpecWatcher::start(Path::new("/")).unwrap_err();
        assert!(matches!(err, SpecWatchError::NoFileName { .. }), "{err:?}");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("spec.yaml");
        let err = SpecWatcher::start(&path).unwrap_err();
        assert!(matches!(err, SpecWatchError::Watch { .. }), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    async fn expect_change(rx: &mut mpsc::Receiver<()>, what: &str) {
        timeout(DEADLINE, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no event after {what}"))
            .expect("watcher gone");
    }

    /// Empties the channel of changes already reported.
    fn drain(rx: &mut mpsc::Receiver<()>) {
        while rx.try_recv().is_ok() {}
    }

    #[tokio::test]
    async fn writing_the_file_in_place_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.yaml");
        std::fs::write(&spec, "a: 1\n").unwrap();
        let (_w, mut rx) = SpecWatcher::start(&spec).unwrap();
        std::fs::write(&spec, "a: 2\n").unwrap();
        expect_change(&mut rx, "write").await;
    }

    #[tokio::test]
    async fn replacing_the_file_by_rename_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.yaml");
        std::fs::write(&spec, "a: 1\n").unwrap();
        let (_w, mut rx) = SpecWatcher::start(&spec).unwrap();
        let tmp = dir.path().join(".spec.yaml.tmp");
        std::fs::write(&tmp, "a: 2\n").unwrap();
        std::fs::rename(&tmp, &spec).unwrap();
        expect_change(&mut rx, "rename").await;
        // And again: the watch is on the directory, not the replaced inode.
        drain(&mut rx);
        std::fs::write(&tmp, "a: 3\n").unwrap();
        std::fs::rename(&tmp, &spec).unwrap();
        expect_change(&mut rx, "second rename").await;
    }

    #[tokio::test]
    async fn a_file_created_after_the_start_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.yaml");
        let (_w, mut rx) = SpecWatcher::start(&spec).unwrap();
        std::fs::write(&spec, "a: 1\n").unwrap();
        expect_change(&mut rx, "create").await;
    }

    #[tokio::test]
    async fn a_configmap_style_data_link_swap_is_a_change() {
        // The layout kubelet's atomic writer makes:
        // spec.yaml -> ..data/spec.yaml, ..data -> ..v1
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/spec.yaml"), "a: 1\n").unwrap();
        symlink("..v1", d.join("..data")).unwrap();
        symlink("..data/spec.yaml", d.join("spec.yaml")).unwrap();
        let spec = d.join("spec.yaml");
        let (_w, mut rx) = SpecWatcher::start(&spec).unwrap();

        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/spec.yaml"), "a: 2\n").unwrap();
        symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        std::fs::remove_dir_all(d.join("..v1")).unwrap();
        expect_change(&mut rx, "..data swap").await;
        assert_eq!(std::fs::read_to_string(&spec).unwrap(), "a: 2\n");
    }

    #[tokio::test]
    async fn changes_to_other_files_in_the_directory_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.yaml");
        std::fs::write(&spec, "a: 1\n").unwrap();
        let (_w, mut rx) = SpecWatcher::start(&spec).unwrap();
        let other = dir.path().join("other.yaml");
        std::fs::write(&other, "x\n").unwrap();
        std::fs::write(&other, "y\n").unwrap();
        std::fs::rename(&other, dir.path().join("other2.yaml")).unwrap();
        // Reading the spec (as the loop does after a change) is not a change either.
        std::fs::read_to_string(&spec).unwrap();
        assert!(
            timeout(QUIET, rx.recv()).await.is_err(),
            "an unrelated change was reported"
        );
        // The watcher is alive: a real change still comes through.
        std::fs::write(&spec, "a: 2\n").unwrap();
        expect_change(&mut rx, "write after unrelated changes").await;
    }

    #[tokio::test]
    async fn many_changes_before_the_loop_looks_are_coalesced() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.yaml");
        std::fs::write(&spec, "a: 0\n").unwrap();
        let (_w, mut rx) = SpecWatcher::start(&spec).unwrap();
        // Capacity 1: however many events, at most one change is pending.
        assert_eq!(rx.max_capacity(), 1);
        for i in 1..=20 {
            std::fs::write(&spec, format!("a: {i}\n")).unwrap();
        }
        expect_change(&mut rx, "writes").await;
    }

    #[tokio::test]
    async fn a_relative_path_watches_the_current_directory() {
        // Only checks that start accepts a bare file name; the cwd is shared by all tests.
        let (_w, _rx) =
            SpecWatcher::start(Path::new("spec-watch-test-does-not-exist.yaml")).unwrap();
    }
}
