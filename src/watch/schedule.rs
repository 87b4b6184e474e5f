//! When to poll next: the interval with jitter, and exponential backoff with full jitter
//! after failures. Pure: randomness comes in as a number in `[0, 1)`.

use std::time::{Duration, Instant};

/// The wait before the next regular poll: `interval` scaled by a factor drawn uniformly
/// from `[1 - jitter, 1 + jitter]`, so a fleet started together spreads out.
pub fn next_interval(interval: Duration, jitter: f64, random: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 1.0);
    let factor = 1.0 - jitter + 2.0 * jitter * random.clamp(0.0, 1.0);
    interval.mul_f64(factor.max(0.0))
}

/// When to run the reload actions after a change seen at `now`: at once, unless the last
/// reload was less than `debounce` ago, then when the debounce ends. Changes seen while a
/// reload is pending get the same time, so they coalesce into one reload.
pub fn reload_at(now: Instant, last_reload: Option<Instant>, debounce: Duration) -> Instant {
    last_reload.map_or(now, |t| (t + debounce).max(now))
}

/// Exponential backoff with full jitter (AWS architecture blog): attempt `n` (from 0)
/// waits a uniform random time in `[0, min(cap, base * 2^n)]`, and never less than `floor`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    floor: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            floor: Duration::from_millis(100).min(base),
            attempt: 0,
        }
    }

    /// The wait after one more failure; `random` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let exp = self
            .base
            .checked_mul(1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.cap)
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        exp.mul_f64(random.clamp(0.0, 1.0)).max(self.floor)
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn jitter_spreads_around_the_interval() {
        let i = Duration::from_secs(60);
        assert_eq!(next_interval(i, 0.1, 0.0), Duration::from_secs(54));
        assert_eq!(next_interval(i, 0.1, 0.5), Duration::from_secs(60));
        assert_eq!(next_interval(i, 0.0, 0.9), i);
    }

    #[test]
    fn backoff_grows_to_the_cap_and_resets_after_success() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let upper: Vec<Duration> = (0..8).map(|_| b.next_delay(0.999_999)).collect();
        assert!(upper[0] < Duration::from_secs(1) + Duration::from_millis(1));
        assert!(upper[3] > Duration::from_secs(7) && upper[3] <= Duration::from_secs(8));
        assert!(upper.iter().all(|d| *d <= Duration::from_secs(30)));
        assert_eq!(upper[7], Duration::from_secs(30).mul_f64(0.999_999));
        assert_eq!(b.failures(), 8);
        b.reset();
        assert!(b.next_delay(0.999_999) <= Duration::from_secs(1));
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

    #[test]
    fn full_jitter_never_goes_below_the_floor() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(b.next_delay(0.0), Duration::from_millis(100));
    }

    proptest! {
        #[test]
        fn delays_stay_within_floor_and_cap(randoms in prop::collection::vec(0.0f64..1.0, 1..80)) {
            let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(20));
            for r in randoms {
                let d = b.next_delay(r);
                prop_assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(20));
            }
        }

        #[test]
        fn jittered_intervals_stay_in_range(secs in 1u64..3600, jitter in 0.0f64..0.5, r in 0.0f64..1.0) {
            let i = Duration::from_secs(secs);
            let d = next_interval(i, jitter, r);
            prop_assert!(d >= i.mul_f64(1.0 - jitter) && d <= i.mul_f64(1.0 + jitter));
        }
    }
}
