//! Whether two outputs would write into each other: the same file, or one inside the
//! other's directory (a `files` tree at `/ssm/tree` and a file at `/ssm/tree/db`). Pure and
//! lexical here (`.` and `..` resolved on the text); `output::prepare_outputs` runs the same
//! check again on the paths with their existing directories resolved (symlinks).

use std::path::{Component, Path, PathBuf};

/// How two output paths collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Both name the same file or directory.
    Same,
    /// The first is inside the second (a directory, or a file used as one).
    Inside,
    /// The second is inside the first.
    Contains,
}

/// `path` with `.` segments and repeated `/` dropped and each `..` taking away the segment
/// before it (`..` above the root stays at the root; a relative path keeps its leading
/// `..`s). Text only: no file system access, so a symlink followed by `..` is resolved as
/// if it were a directory; [`overlap`] of canonical paths catches that case.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// Whether `a` and `b` (already normalized, or canonical) collide. Paths of different kinds
/// (one absolute, one relative) are not compared here.
pub fn overlap(a: &Path, b: &Path) -> Option<Overlap> {
    if a == b {
        Some(Overlap::Same)
    } else if a.starts_with(b) {
        Some(Overlap::Inside)
    } else if b.starts_with(a) {
        Some(Overlap::Contains)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> PathBuf {
        normalize(Path::new(p))
    }

    #[test]
    fn dots_and_double_slashes_are_resolved_on_the_text() {
        for (raw, want) in [
            ("/ssm/./a", "/ssm/a"),
            ("/ssm//a", "/ssm/a"),
            ("/ssm/x/../a", "/ssm/a"),
            ("/../ssm/a", "/ssm/a"),
            ("a/../../b", "../b"),
            ("./a", "a"),
            ("a/..", "."),
        ] {
            assert_eq!(n(raw), PathBuf::from(want), "{raw}");
        }
    }

    #[test]
    fn same_inside_and_apart_are_told_apart_by_whole_segments() {
        assert_eq!(
            overlap(&n("/ssm/tree/db"), &n("/ssm/tree")),
            Some(Overlap::Inside)
        );
        assert_eq!(
            overlap(&n("/ssm/tree"), &n("/ssm/tree/sub/db")),
            Some(Overlap::Contains)
        );
        assert_eq!(
            overlap(&n("/ssm/a"), &n("/ssm/x/../a")),
            Some(Overlap::Same)
        );
        assert_eq!(overlap(&n("/ssm/tree2"), &n("/ssm/tree")), None);
        assert_eq!(overlap(&n("/ssm/a.env"), &n("/ssm/a.json")), None);
    }
}
