//! The per-process call budget: a token bucket in front of every AWS call, on top of the
//! SDK's own retries. Parameter Store's throughput quota (40 calls/s by default) is shared
//! by every caller in an account and region, so no single process may use it up: a burst
//! (an init render, a spec reload) is allowed up to `burst` calls, after which calls wait
//! for tokens that refill at `per_second`.
//!
//! [`TokenBucket`] is pure (time comes in as an argument); [`Budget`] wraps it for async
//! callers.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Default calls per second of one process: half the account's default quota.
pub const DEFAULT_MAX_TPS: f64 = 20.0;
/// Default burst: a render of 400 names (40 GetParameters calls) runs without waiting.
pub const DEFAULT_BURST: u32 = 40;
/// Bounds of `--max-tps`: a token every 1,000 s at the least, and no more than the
/// highest quota Parameter Store sells.
pub const MIN_TPS: f64 = 0.001;
pub const MAX_TPS: f64 = 10_000.0;
/// Upper bound of `--burst`.
pub const MAX_BURST: u32 = 10_000;

/// A checked budget setting: `per_second` in `[MIN_TPS, MAX_TPS]`, `burst` in
/// `[1, MAX_BURST]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    pub per_second: f64,
    pub burst: u32,
}

// `per_second` is never NaN (checked in `BudgetConfig::new`), so equality is total.
impl Eq for BudgetConfig {}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            per_second: DEFAULT_MAX_TPS,
            burst: DEFAULT_BURST,
        }
    }
}

/// A budget flag out of range; the message gives the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("--max-tps must be between {MIN_TPS} and {MAX_TPS} calls per second, not {0}")]
    Rate(String),
    #[error("--burst must be between 1 and {MAX_BURST} calls, not {0}")]
    Burst(u32),
}

impl BudgetConfig {
    /// Checks both settings.
    pub fn new(per_second: f64, burst: u32) -> Result<BudgetConfig, BudgetError> {
        if !(MIN_TPS..=MAX_TPS).contains(&per_second) {
            return Err(BudgetError::Rate(per_second.to_string()));
        }
        if !(1..=MAX_BURST).contains(&burst) {
            return Err(BudgetError::Burst(burst));
        }
        Ok(BudgetConfig { per_second, burst })
    }
}

impl fmt::Display for BudgetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} calls/s, burst {}", self.per_second, self.burst)
    }
}

/// A token bucket that hands out reservations: a call takes a token now if one is left,
/// else it is told how long to wait for its own future token (which it then owns, so
/// waiting callers are served in order and never more than `per_second` on average).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    config: BudgetConfig,
    /// Tokens left at `at`; negative when calls have reserved future tokens.
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(config: BudgetConfig, now: Instant) -> TokenBucket {
        TokenBucket {
            config,
            tokens: f64::from(config.burst),
            at: now,
        }
    }

    /// Takes one token at `now` and returns how long the caller must wait before its call
    /// (zero when a token was available).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if now > self.at {
            let refill = now.duration_since(self.at).as_secs_f64() * self.config.per_second;
            self.tokens = (self.tokens + refill).min(f64::from(self.config.burst));
            self.at = now;
        }
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.config.per_second)
        }
    }
}

/// The budget shared by every AWS call of one process.
#[derive(Debug)]
pub struct Budget {
    bucket: Mutex<TokenBucket>,
}

impl Budget {
    pub fn new(config: BudgetConfig) -> Budget {
        Budget {
            bucket: Mutex::new(TokenBucket::new(config, Instant::now())),
        }
    }

    /// Waits until the next call may go; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let wait = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(per_second: f64, burst: u32) -> BudgetConfig {
        BudgetConfig::new(per_second, burst).unwrap()
    }

    #[test]
    fn a_burst_goes_at_once_then_calls_wait_their_turn() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(config(10.0, 3), t0);
        let waits: Vec<Duration> = (0..6).map(|_| b.reserve(t0)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(100));
        assert_eq!(waits[4], Duration::from_millis(200));
        assert_eq!(waits[5], Duration::from_millis(300));
    }

    #[test]
    fn the_bucket_refills_at_the_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(config(2.0, 4), t0);
        for _ in 0..4 {
            assert_eq!(b.reserve(t0), Duration::ZERO);
        }
        // One second later two tokens are back, not more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.reserve(t1), Duration::ZERO);
        assert_eq!(b.reserve(t1), Duration::ZERO);
        assert_eq!(b.reserve(t1), Duration::from_millis(500));
        // A long idle time refills to the burst only.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..4 {
            assert_eq!(b.reserve(t2), Duration::ZERO);
        }
        assert_eq!(b.reserve(t2), Duration::from_millis(500));
    }

    #[test]
    fn settings_out_of_range_are_refused_with_the_range() {
        assert_eq!(
            BudgetConfig::new(0.0, 1).unwrap_err().to_string(),
            "--max-tps must be between 0.001 and 10000 calls per second, not 0"
        );
        assert!(BudgetConfig::new(f64::NAN, 1).is_err());
        assert!(BudgetConfig::new(f64::INFINITY, 1).is_err());
        assert_eq!(
            BudgetConfig::new(1.0, 0).unwrap_err(),
            BudgetError::Burst(0)
        );
        assert!(BudgetConfig::new(MAX_TPS, MAX_BURST).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn callers_beyond_the_burst_are_spread_at_the_rate() {
        let budget = Budget::new(config(5.0, 2));
        let start = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..7 {
            budget.acquire().await;
            waits.push(start.elapsed());
        }
        // 2 at once, then one every 200 ms.
        let ms: Vec<u128> = waits.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 0, 200, 400, 600, 800, 1000]);
    }

    proptest! {
        /// Over any schedule of calls, the number granted by time t never exceeds
        /// burst + rate * t.
        #[test]
        fn never_more_than_burst_plus_rate_times_elapsed(
            rate in 0.5f64..100.0,
            burst in 1u32..50,
            gaps in proptest::collection::vec(0u64..500, 1..200),
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::new(config(rate, burst), t0);
            let mut now = t0;
            let mut starts = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                starts.push(now + b.reserve(now));
            }
            for (i, s) in starts.iter().enumerate() {
                let elapsed = s.duration_since(t0).as_secs_f64();
                let allowed = f64::from(burst) + rate * elapsed + 1e-6;
                prop_assert!((i + 1) as f64 <= allowed, "call {} at {elapsed}s", i + 1);
            }
            // And reservations are handed out in order.
            prop_assert!(starts.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
