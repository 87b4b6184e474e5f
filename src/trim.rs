//! Give back the pages of the binary that start-up touched and a long-running process will
//! not touch again (argument parsing, configuration, credentials, trust roots, the first
//! render), so its resident memory is what its loop uses.
//!
//! Why by hand: the kernel maps the binary's file pages in 64 KiB windows around each page
//! touched (fault-around), so start-up alone maps most of a 12 MiB binary. `madvise` with
//! `MADV_DONTNEED` on the binary's read-only mappings unmaps them from this process; they
//! stay in the page cache (shared with every other process of the same image) and come
//! back on the next touch. No crate does this for the executable's own mappings.
//!
//! It is sound only on mappings that hold nothing but the file's bytes: read-only (`r-x`,
//! `r--`) mappings of the executable with no anonymous (copy-on-write) pages. A mapping
//! that was written before it became read-only (RELRO after relocation) has anonymous
//! pages and is left alone, as is every writable mapping. Best effort: failures are
//! counted in the result, never fatal.
//!
//! One of the two places in the crate with `unsafe` (the other: `supervise::child`'s
//! `pre_exec`); the crate denies it everywhere else.
#![allow(unsafe_code)]

/// One mapping of `/proc/self/smaps`: the parts this module decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    /// `r-xp` and the like.
    pub perms: String,
    /// `major:minor` of the file's device and its inode (`0` for anonymous memory).
    pub file: (String, u64),
    /// `Anonymous:` in bytes: pages this mapping holds that are not the file's (`None`
    /// when the kernel did not say: then the mapping is never released).
    pub anonymous: Option<u64>,
    /// `Rss:` in bytes.
    pub rss: u64,
}

/// The mappings of a `/proc/PID/smaps` text; lines it does not understand are skipped.
pub fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(m) = header(line) {
            out.push(m);
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        if let Some(kib) = field_kib(line, "Anonymous:") {
            last.anonymous = Some(kib.saturating_mul(1024));
        } else if let Some(kib) = field_kib(line, "Rss:") {
            last.rss = kib.saturating_mul(1024);
        }
    }
    out
}

/// `start-end perms offset dev inode [path]`.
fn header(line: &str) -> Option<Mapping> {
    let mut parts = line.split_ascii_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?;
    if perms.len() != 4 || end < start {
        return None;
    }
    let _offset = parts.next()?;
    let dev = parts.next()?;
    if !dev.contains(':') {
        return None;
    }
    let inode = parts.next()?.parse().ok()?;
    Some(Mapping {
        start,
        end,
        perms: perms.to_owned(),
        file: (dev.to_owned(), inode),
        anonymous: None,
        rss: 0,
    })
}

fn field_kib(line: &str, key: &str) -> Option<u64> {
    let rest = line.strip_prefix(key)?.trim();
    rest.strip_suffix("kB")?.trim().parse().ok()
}

/// The mappings that may be given back: those of the file that holds `anchor` (an address
/// in this binary's code), read-only, with no anonymous pages and something resident.
pub fn releasable(maps: &[Mapping], anchor: usize) -> Vec<&Mapping> {
    let Some(exe) = maps.iter().find(|m| (m.start..m.end).contains(&anchor)) else {
        return Vec::new();
    };
    if exe.file.1 == 0 {
        return Vec::new();
    }
    maps.iter()
        .filter(|m| m.file == exe.file)
        .filter(|m| m.perms.starts_with('r') && m.perms.as_bytes().get(1) == Some(&b'-'))
        .filter(|m| m.anonymous == Some(0) && m.rss > 0)
        .collect()
}

/// What [`release_startup_pages`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Resident bytes of the mappings given back (before).
    pub bytes: u64,
    pub mappings: usize,
    pub failures: usize,
}

/// Unmaps the resident pages of this binary's read-only mappings (see the module
/// documentation). Linux only; elsewhere, or when `/proc/self/smaps` cannot be read, it
/// does nothing.
pub fn release_startup_pages() -> Released {
    let mut done = Released::default();
    if !cfg!(target_os = "linux") {
        return done;
    }
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return done;
    };
    let maps = parse_smaps(&text);
    let anchor = release_startup_pages as fn() -> Released as usize;
    for m in releasable(&maps, anchor) {
        // SAFETY: the range is a whole mapping of the executable file, read-only and
        // without anonymous pages (checked above from the kernel's own account; a
        // read-only mapping cannot gain any). MADV_DONTNEED on such a private file
        // mapping only drops this process's page-table entries: the next access maps the
        // same bytes again from the page cache, so no code or constant changes.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            done.bytes += m.rss;
            done.mappings += 1;
        } else {
            done.failures += 1;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMAPS: &str = "\
00400000-00401000 r--p 00000000 fd:00 42 /usr/bin/ssm-injector
Size:                  4 kB
Rss:                   4 kB
Anonymous:             0 kB
00401000-00c00000 r-xp 00001000 fd:00 42 /usr/bin/ssm-injector
Size:               8188 kB
Rss:                6000 kB
Anonymous:             0 kB
00c00000-00e00000 r--p 00800000 fd:00 42 /usr/bin/ssm-injector
Rss:                1500 kB
Anonymous:             0 kB
00e00000-00e10000 r--p 00a00000 fd:00 42 /usr/bin/ssm-injector
Rss:                  64 kB
Anonymous:            12 kB
00e10000-00e20000 rw-p 00a10000 fd:00 42 /usr/bin/ssm-injector
Rss:                  64 kB
Anonymous:            64 kB
00f00000-00f10000 r--p 00000000 fd:00 77 /usr/lib/other.so
Rss:                  64 kB
Anonymous:             0 kB
01000000-01100000 rw-p 00000000 00:00 0 [heap]
Rss:                1024 kB
Anonymous:          1024 kB
";

    #[test]
    fn only_the_executables_read_only_file_pages_are_released() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 7);
        let picked: Vec<&str> = releasable(&maps, 0x0050_0000)
            .iter()
            .map(|m| m.perms.as_str())
            .collect();
        // Text and rodata; not the relocated (anonymous) read-only page, not data, not
        // another file, not the heap.
        assert_eq!(picked, ["r--p", "r-xp", "r--p"]);
        let starts: Vec<usize> = releasable(&maps, 0x0050_0000)
            .iter()
            .map(|m| m.start)
            .collect();
        assert_eq!(starts, [0x0040_0000, 0x0040_1000, 0x00c0_0000]);
    }

    #[test]
    fn a_mapping_whose_anonymous_pages_the_kernel_did_not_report_is_kept() {
        let text = "00401000-00c00000 r-xp 00001000 fd:00 42 /usr/bin/ssm-injector\nRss: 6000 kB\n";
        let maps = parse_smaps(text);
        assert_eq!(maps[0].anonymous, None);
        assert!(releasable(&maps, 0x0050_0000).is_empty());
    }

    #[test]
    fn an_anchor_outside_every_file_mapping_releases_nothing() {
        let maps = parse_smaps(SMAPS);
        assert!(
            releasable(&maps, 0x0100_0100).is_empty(),
            "the heap is anonymous"
        );
        assert!(
            releasable(&maps, 0x7fff_0000).is_empty(),
            "not mapped at all"
        );
    }

    #[test]
    fn the_process_itself_can_release_and_still_runs() {
        let released = release_startup_pages();
        assert_eq!(released.failures, 0);
        if cfg!(target_os = "linux") {
            assert!(released.mappings >= 1, "{released:?}");
        }
        // Code and constants come back on the next touch.
        assert_eq!(parse_smaps(SMAPS).len(), 7);
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panicking(text in "(?s).{0,400}") {
            let maps = parse_smaps(&text);
            let _ = releasable(&maps, 0x1000);
        }

        #[test]
        fn any_header_like_lines_parse_without_panicking(
            lines in proptest::collection::vec(
                "[0-9a-f]{1,17}-[0-9a-f]{1,17} [rwxps-]{1,5} [0-9a-f]{1,8} [0-9a-f:]{1,6} [0-9]{1,21}( /x)?|(Rss|Anonymous): +[0-9]{1,22} kB",
                0..20,
            )
        ) {
            let maps = parse_smaps(&lines.join("\n"));
            for m in &maps {
                prop_assert!(m.start <= m.end);
            }
            let _ = releasable(&maps, 0x1000);
        }
    }
}
