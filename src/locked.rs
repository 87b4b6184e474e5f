//! Secret bytes kept between polls in one page-aligned arena that is locked in RAM
//! (`mlock`: never written to swap) where the platform allows it, best effort.
//!
//! The arena owns whole pages: it is cut out of a buffer one page larger than needed, at
//! its first page boundary, so no other allocation shares a locked page (per-value locks
//! would be wrong: unlocking one value's page would unlock its neighbour's). The bytes are
//! zeroed before the pages are unlocked and freed. A lock that fails (`EPERM`, `ENOMEM`,
//! `RLIMIT_MEMLOCK`) is never fatal: it is counted ([`failures`]) and logged once.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use zeroize::Zeroize;

static FAILURES: AtomicU64 = AtomicU64::new(0);
static LOGGED: AtomicBool = AtomicBool::new(false);

/// Arenas that could not be locked so far (this process).
pub fn failures() -> u64 {
    FAILURES.load(Ordering::Relaxed)
}

/// Bytes in locked pages, zeroed on drop.
#[derive(Default)]
pub struct Arena {
    // Field order is drop order: after `Drop::drop` zeroed the bytes, the pages are
    // unlocked, then freed.
    lock: Option<region::LockGuard>,
    buf: Vec<u8>,
    /// Where the page-aligned part of `buf` starts.
    start: usize,
    /// Bytes used after `start`.
    used: usize,
}

impl Arena {
    /// An arena holding `values` one after the other; each value's range in it, in order.
    /// Empty values and an empty list lock nothing.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> (Arena, Vec<Range<usize>>) {
        let values: Vec<&str> = values.into_iter().collect();
        let used: usize = values.iter().map(|v| v.len()).sum();
        if used == 0 {
            return (Arena::default(), vec![0..0; values.len()]);
        }
        let page = region::page::size().max(1);
        let pages = used.div_ceil(page) * page;
        let mut buf = vec![0u8; pages + page];
        let start = (page - buf.as_ptr() as usize % page) % page;
        let mut ranges = Vec::with_capacity(values.len());
        let mut at = start;
        for v in values {
            let end = at + v.len();
            if let Some(dst) = buf.get_mut(at..end) {
                dst.copy_from_slice(v.as_bytes());
            }
            ranges.push(at - start..end - start);
            at = end;
        }
        let lock = match buf.get(start..start + pages) {
            Some(locked) => match region::lock(locked.as_ptr(), pages) {
                Ok(guard) => Some(guard),
                Err(e) => {
                    FAILURES.fetch_add(1, Ordering::Relaxed);
                    if !LOGGED.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            bytes = pages,
                            "cannot lock the held values in memory ({e}); they stay in \
                             ordinary memory (zeroed when dropped, but may be swapped): \
                             raise RLIMIT_MEMLOCK or allow IPC_LOCK to lock them"
                        );
                    }
                    None
                }
            },
            None => None,
        };
        (
            Arena {
                lock,
                buf,
                start,
                used,
            },
            ranges,
        )
    }

    /// The text at `range` (from [`Arena::new`]); empty if out of range.
    pub fn get(&self, range: &Range<usize>) -> &str {
        if range.start > range.end || range.end > self.used {
            return "";
        }
        let (a, b) = (self.start + range.start, self.start + range.end);
        self.buf
            .get(a..b)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
    }

    /// Whether the arena's pages are locked (always false when it is empty).
    pub fn locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("bytes", &self.used)
            .field("locked", &self.locked())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_from_their_ranges() {
        let (arena, ranges) = Arena::new(["alpha", "", "βeta", "gamma"]);
        let back: Vec<&str> = ranges.iter().map(|r| arena.get(r)).collect();
        assert_eq!(back, ["alpha", "", "βeta", "gamma"]);
        assert_eq!(arena.len(), 5 + 5 + 5);
        assert_eq!(arena.get(&(10..200)), "");
        assert!(!format!("{arena:?}").contains("alpha"));
    }

    #[test]
    fn the_arena_owns_whole_pages() {
        let page = region::page::size();
        let big = "x".repeat(page + 1);
        let (arena, ranges) = Arena::new([big.as_str()]);
        let first = arena.buf.as_ptr() as usize + arena.start;
        assert_eq!(first % page, 0, "page-aligned");
        assert!(
            arena.start + 2 * page <= arena.buf.len(),
            "two whole pages inside"
        );
        assert_eq!(arena.get(&ranges[0]), big);
        // Locked where the limit allows (a failure is counted, never fatal).
        assert!(arena.locked() || failures() > 0);
    }

    #[test]
    fn an_empty_arena_locks_nothing() {
        let (arena, ranges) = Arena::new(["", ""]);
        assert!(arena.is_empty() && !arena.locked());
        assert_eq!(ranges, [0..0, 0..0]);
    }
}
