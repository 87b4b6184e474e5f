//! How long clients should spread their re-fetch after a change. Pure.
//!
//! When a key changes, every client watching it fetches its values from AWS. A client with
//! `n` names makes about ⌈n/10⌉ GetParameters calls; so that `w` watchers together stay
//! within `client_budget` calls/s, each picks a random moment within
//!
//! ```text
//! spread = w × ⌈n/10⌉ / client_budget   seconds, at most max_spread
//! ```

use std::time::Duration;

/// Names per GetParameters call, the unit of a client's re-fetch.
const NAMES_PER_CALL: u64 = 10;

/// The spread for `watchers` clients of a changed key, each re-fetching `client_names`
/// names, within `client_budget` calls/s (a budget ≤ 0 or NaN means `max_spread`).
pub fn spread(
    watchers: u64,
    client_names: u64,
    client_budget: f64,
    max_spread: Duration,
) -> Duration {
    if watchers == 0 || client_names == 0 {
        return Duration::ZERO;
    }
    if client_budget.is_nan() || client_budget <= 0.0 {
        return max_spread;
    }
    let calls = watchers.saturating_mul(client_names.div_ceil(NAMES_PER_CALL)) as f64;
    let secs = calls / client_budget;
    if secs >= max_spread.as_secs_f64() {
        max_spread
    } else {
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    #[test]
    fn one_client_with_twenty_names_spreads_two_calls_over_the_budget() {
        // 1 × ⌈20/10⌉ / 20 = 0.1 s
        assert_eq!(spread(1, 20, 20.0, FIVE_MIN), Duration::from_millis(100));
    }

    #[test]
    fn a_thousand_watchers_take_a_hundred_seconds_at_twenty_calls_per_second() {
        // 1000 × 2 / 20 = 100 s
        assert_eq!(spread(1000, 20, 20.0, FIVE_MIN), Duration::from_secs(100));
        // 11 names are 2 calls per client.
        assert_eq!(spread(1000, 11, 20.0, FIVE_MIN), Duration::from_secs(100));
    }

    #[test]
    fn the_spread_is_capped() {
        assert_eq!(spread(100_000, 1000, 20.0, FIVE_MIN), FIVE_MIN);
        assert_eq!(spread(u64::MAX, u64::MAX, 20.0, FIVE_MIN), FIVE_MIN);
        assert_eq!(spread(3, 5, 0.0, FIVE_MIN), FIVE_MIN);
        assert_eq!(spread(3, 5, f64::NAN, FIVE_MIN), FIVE_MIN);
    }

    #[test]
    fn nobody_watching_needs_no_spread() {
        assert_eq!(spread(0, 20, 20.0, FIVE_MIN), Duration::ZERO);
        assert_eq!(spread(5, 0, 20.0, FIVE_MIN), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn more_watchers_never_spread_less(w in 0u64..100_000, n in 0u64..2000, b in 0.01f64..1000.0) {
            let a = spread(w, n, b, FIVE_MIN);
            let c = spread(w + 1, n, b, FIVE_MIN);
            prop_assert!(a <= c);
            prop_assert!(c <= FIVE_MIN);
        }
    }
}
