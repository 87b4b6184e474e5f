//! Exponential backoff with full jitter, for every retry loop (the sidecar's polls and its
//! hub client, the hub's SQS reader). Pure: randomness comes in as a number in `[0, 1)`.

use std::time::Duration;

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
    }
}
