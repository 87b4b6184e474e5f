//! The per-process call budget: a token bucket in front of every AWS call, on top of the
//! SDK's own retries. Parameter Store's throughput quota (40 calls/s by default) is shared
//! by every caller in an account and region, so no single process may use it up: a burst
//! (an init render, a spec reload) is allowed up to `burst` calls, after which calls wait
//! for tokens that refill at `per_second`.
//!
//! A process's first render (`render`, `exec`, the first fetch of `render --watch`) is
//! exempt ([`Budget::exempt`]): it only delays the pod's start, and it happens once; the
//! budget is for the polls after it.
//!
//! [`TokenBucket`] is pure (time comes in as an argument); [`Budget`] wraps it for async
//! callers. The setting, and its checks, is [`BudgetConfig`] (pure, in the spec).

use crate::spec::budget::BudgetConfig;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

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
    /// Exemptions held ([`Exempt`] guards alive): while any is, calls go at once.
    exempt: AtomicUsize,
}

/// While alive, calls go out at once and take no token (see [`Budget::exempt`]).
#[derive(Debug)]
#[must_use = "the exemption ends when the guard is dropped"]
pub struct Exempt<'a>(&'a Budget);

impl Drop for Exempt<'_> {
    fn drop(&mut self) {
        self.0.exempt.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Budget {
    pub fn new(config: BudgetConfig) -> Budget {
        Budget {
            bucket: Mutex::new(TokenBucket::new(config, Instant::now())),
            exempt: AtomicUsize::new(0),
        }
    }

    /// Until the guard is dropped (also when the future holding it is), calls neither wait
    /// nor take a token: a process's first render, which the budget must not slow. The
    /// bucket stays full for the polls after it.
    pub fn exempt(&self) -> Exempt<'_> {
        self.exempt.fetch_add(1, Ordering::Relaxed);
        Exempt(self)
    }

    /// Waits until the next call may go; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        if self.exempt.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
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

    #[tokio::test(start_paused = true)]
    async fn an_exempt_render_neither_waits_nor_empties_the_bucket() {
        let budget = Budget::new(config(1.0, 1));
        {
            let _first = budget.exempt();
            for _ in 0..30 {
                assert_eq!(budget.acquire().await, Duration::ZERO);
            }
        }
        // After it the budget holds again, from a full bucket.
        assert_eq!(budget.acquire().await, Duration::ZERO);
        assert_eq!(budget.acquire().await, Duration::from_secs(1));
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
