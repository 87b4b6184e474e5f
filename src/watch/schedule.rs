//! When to poll next: the interval with jitter, each instance at its own slot, and when to
//! reload. Pure: randomness comes in as a number in `[0, 1)`. The backoff after failures is
//! [`crate::backoff`].

use std::time::{Duration, Instant};

/// The poll slot of one pod or task: a fraction of the interval in `[0, 1)`, from a stable
/// hash of its identity (64-bit FNV-1a, then MurmurHash3's finalizer so that ids differing
/// only in their last characters land far apart). The same id always gets the same slot, in every
/// version of this program; different ids spread uniformly.
pub fn slot_of(instance_id: &str) -> f64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = instance_id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    let hash = fmix64(hash);
    // The top 53 bits make an exact f64 in [0, 1).
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The wait from `now` (time since the Unix epoch) until the next regular poll.
///
/// Polls follow a wall-clock grid: one per interval, at `slot * interval` into it, moved by
/// up to `jitter * interval` either way (`random` is uniform in `[0, 1)`). The next grid
/// point is the first one more than `jitter * interval` ahead, so the wait is never
/// negative and, poll after poll, exactly one poll falls in each interval on average. A
/// fleet restarted together therefore keeps polling spread by slot, instead of in step
/// from the moment it started.
pub fn next_poll(
    now: Duration,
    interval: Duration,
    slot: f64,
    jitter: f64,
    random: f64,
) -> Duration {
    let i = interval.as_secs_f64();
    if i <= 0.0 {
        return Duration::ZERO;
    }
    let jitter = jitter.clamp(0.0, 0.5) * i;
    let phase = slot.clamp(0.0, 1.0) * i;
    let t = now.as_secs_f64();
    let k = ((t + jitter - phase) / i).floor() + 1.0;
    let grid = phase + k * i;
    let target = grid + (2.0 * random.clamp(0.0, 1.0) - 1.0) * jitter;
    Duration::from_secs_f64((target - t).max(0.0))
}

/// When to run the reload actions after a change seen at `now`: at once, unless the last
/// reload was less than `debounce` ago, then when the debounce ends. Changes seen while a
/// reload is pending get the same time, so they coalesce into one reload.
pub fn reload_at(now: Instant, last_reload: Option<Instant>, debounce: Duration) -> Instant {
    last_reload.map_or(now, |t| (t + debounce).max(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_are_stable_and_spread() {
        assert_eq!(slot_of("web-7d9f-abcde"), slot_of("web-7d9f-abcde"));
        assert_ne!(slot_of("web-7d9f-abcde"), slot_of("web-7d9f-abcdf"));
        // FNV-1a of the empty string is the offset basis: a fixed value in every version.
        let empty = fmix64(0xcbf2_9ce4_8422_2325) >> 11;
        assert_eq!(slot_of(""), empty as f64 / (1u64 << 53) as f64);
        // 10,000 pod names fill 10 equal buckets evenly (each within 20% of 1,000).
        let mut buckets = [0u32; 10];
        for n in 0..10_000 {
            let s = slot_of(&format!("app-5c8d7f9b6-{n:05x}"));
            assert!((0.0..1.0).contains(&s));
            buckets[(s * 10.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (800..=1200).contains(&b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn polls_land_on_the_slot_of_each_interval() {
        let i = Duration::from_secs(600);
        // Slot 0.25 of a 600 s grid: 150 s into each interval. At t = 1000 s the next
        // grid point more than 60 s ahead is 1350 s.
        let at = |now: u64, random: f64| next_poll(Duration::from_secs(now), i, 0.25, 0.1, random);
        assert_eq!(at(1000, 0.5), Duration::from_secs(350));
        assert_eq!(at(1000, 0.0), Duration::from_secs(290));
        assert_eq!(at(1000, 1.0), Duration::from_secs(410));
        // Just before a grid point (closer than the jitter), the following one is used.
        assert_eq!(at(1300, 0.5), Duration::from_secs(650));
        // Without jitter the wait is exact.
        assert_eq!(
            next_poll(Duration::from_secs(1000), i, 0.25, 0.0, 0.9),
            Duration::from_secs(350)
        );
    }

    #[test]
    fn reloads_wait_out_the_debounce_and_coalesce() {
        let t0 = Instant::now();
        let d = Duration::from_secs(5);
        assert_eq!(reload_at(t0, None, d), t0, "first reload runs at once");
        let last = t0;
        let change1 = t0 + Duration::from_secs(1);
        let change2 = t0 + Duration::from_secs(3);
        assert_eq!(reload_at(change1, Some(last), d), t0 + d);
        assert_eq!(reload_at(change2, Some(last), d), t0 + d, "coalesced");
        let late = t0 + Duration::from_secs(9);
        assert_eq!(reload_at(late, Some(last), d), late);
    }

    proptest! {
        #[test]
        fn polls_keep_one_per_interval_and_never_wait_too_long(
            start in 0u64..2_000_000_000,
            millis in 100u64..3_600_000,
            slot in 0.0f64..1.0,
            jitter in 0.0f64..0.5,
            randoms in prop::collection::vec(0.0f64..1.0, 1..40),
        ) {
            let i = Duration::from_millis(millis);
            let mut now = Duration::from_millis(start);
            let first = now;
            for r in &randoms {
                let wait = next_poll(now, i, slot, jitter, *r);
                prop_assert!(wait <= i.mul_f64(1.0 + 2.0 * jitter) + Duration::from_millis(1));
                now += wait;
            }
            // n polls cover about n intervals: never fewer than n-1, never more than n+1.
            let intervals = (now - first).as_secs_f64() / i.as_secs_f64();
            let n = randoms.len() as f64;
            prop_assert!(intervals >= n - 1.0 - 1e-6 && intervals <= n + 1.0 + 1e-6, "{intervals} for {n}");
        }
    }
}
