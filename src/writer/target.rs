//! What is at a target path now, seen without opening it (opening a FIFO would block) and
//! without replacing anything: the writer only replaces regular files (or symlinks to
//! them) and only writes trees into directories.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// The kind of an existing target; `via_symlink` when the path is a symlink to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetKind {
    pub kind: Kind,
    pub via_symlink: bool,
}

/// File types, as `lstat`/`stat` report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    /// A symlink that points at nothing.
    Dangling,
    Other,
}

impl TargetKind {
    /// A regular file, or a symlink to one or to nothing: `rename` replaces the path itself
    /// (never what a symlink points at).
    pub fn is_regular(self) -> bool {
        matches!(self.kind, Kind::Regular | Kind::Dangling)
    }

    /// A directory, or a symlink to one (the tree writer writes inside it).
    pub fn is_directory(self) -> bool {
        self.kind == Kind::Directory
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::Regular => "a regular file",
            Kind::Directory => "a directory",
            Kind::Fifo => "a FIFO (named pipe)",
            Kind::Socket => "a socket",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Dangling => "nothing",
            Kind::Other => "not a regular file",
        };
        if self.via_symlink {
            write!(f, "a symlink to {what}")
        } else {
            f.write_str(what)
        }
    }
}

fn kind_of(md: &fs::Metadata) -> Kind {
    use std::os::unix::fs::FileTypeExt;
    let t = md.file_type();
    if t.is_file() {
        Kind::Regular
    } else if t.is_dir() {
        Kind::Directory
    } else if t.is_fifo() {
        Kind::Fifo
    } else if t.is_socket() {
        Kind::Socket
    } else if t.is_char_device() {
        Kind::CharDevice
    } else if t.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::Other
    }
}

/// What is at `path`: `None` when nothing is. A symlink is followed (with `stat`, which
/// opens nothing) to say what it points at; `/dev/stdout` is a symlink to a pipe, a
/// terminal or a file descriptor's target.
pub fn target_kind(path: &Path) -> io::Result<Option<TargetKind>> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !md.file_type().is_symlink() {
        return Ok(Some(TargetKind {
            kind: kind_of(&md),
            via_symlink: false,
        }));
    }
    let kind = match fs::metadata(path) {
        Ok(md) => kind_of(&md),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Kind::Dangling,
        Err(e) => return Err(e),
    };
    Ok(Some(TargetKind {
        kind,
        via_symlink: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::os::unix::net::UnixListener;

    #[test]
    fn kinds_are_seen_through_symlinks_without_opening() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("file"), b"x").unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(d.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        let _sock = UnixListener::bind(d.join("sock")).unwrap();
        symlink(d.join("fifo"), d.join("to-fifo")).unwrap();
        symlink(d.join("file"), d.join("to-file")).unwrap();
        symlink(d.join("gone"), d.join("dangling")).unwrap();
        let k = |name: &str| target_kind(&d.join(name)).unwrap();
        assert_eq!(k("missing"), None);
        for (name, regular, shown) in [
            ("file", true, "a regular file"),
            ("to-file", true, "a symlink to a regular file"),
            ("dangling", true, "a symlink to nothing"),
            ("fifo", false, "a FIFO (named pipe)"),
            ("to-fifo", false, "a symlink to a FIFO (named pipe)"),
            ("sock", false, "a socket"),
            ("", false, "a directory"),
        ] {
            let kind = k(name).unwrap();
            assert_eq!(kind.is_regular(), regular, "{name}");
            assert_eq!(kind.to_string(), shown, "{name}");
        }
        assert!(k("").unwrap().is_directory());
        let null = target_kind(Path::new("/dev/null")).unwrap().unwrap();
        assert_eq!(null.kind, Kind::CharDevice);
    }
}
