//! At most `max` restarts in any hour (`--max-restarts-per-hour`): a value flapping between
//! two versions must not restart the app every poll. Pure: times come in as arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window the limit counts over.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// The restarts of the last hour, and how many are allowed.
#[derive(Debug, Clone)]
pub struct RestartLimit {
    max: u32,
    /// When each restart of the last [`WINDOW`] happened, oldest first.
    recent: VecDeque<Instant>,
}

impl RestartLimit {
    /// `max` restarts per hour; 0 allows none.
    pub fn per_hour(max: u32) -> RestartLimit {
        RestartLimit {
            max,
            recent: VecDeque::new(),
        }
    }

    /// Whether a restart may happen at `now`; if so it is counted.
    pub fn try_restart(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max as usize {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// When the next restart will be allowed, if none is allowed now.
    pub fn next_allowed(&self, now: Instant) -> Option<Instant> {
        if self.recent.len() < self.max as usize {
            return None;
        }
        let oldest = *self.recent.front()?;
        Some((oldest + WINDOW).max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allows_max_an_hour_then_again_once_the_oldest_is_an_hour_old() {
        let t0 = Instant::now();
        let mut l = RestartLimit::per_hour(2);
        assert!(l.try_restart(t0));
        assert!(l.try_restart(t0 + Duration::from_secs(10)));
        assert!(!l.try_restart(t0 + Duration::from_secs(20)));
        assert_eq!(
            l.next_allowed(t0 + Duration::from_secs(20)),
            Some(t0 + WINDOW)
        );
        assert!(!l.try_restart(t0 + WINDOW - Duration::from_millis(1)));
        assert!(l.try_restart(t0 + WINDOW));
        assert!(!l.try_restart(t0 + WINDOW + Duration::from_secs(1)));
    }

    #[test]
    fn zero_allows_none() {
        let mut l = RestartLimit::per_hour(0);
        assert!(!l.try_restart(Instant::now()));
    }

    proptest! {
        /// Whatever the times, no hour ever holds more than `max` allowed restarts.
        #[test]
        fn no_hour_holds_more_than_max(
            max in 0u32..5,
            gaps in proptest::collection::vec(0u64..2_000, 0..60),
        ) {
            let t0 = Instant::now();
            let mut l = RestartLimit::per_hour(max);
            let mut at = t0;
            let mut allowed = Vec::new();
            for g in gaps {
                at += Duration::from_secs(g);
                if l.try_restart(at) {
                    allowed.push(at);
                }
            }
            for (i, &start) in allowed.iter().enumerate() {
                let within = allowed[i..].iter().take_while(|&&t| t - start < WINDOW).count();
                prop_assert!(within <= max as usize);
            }
        }
    }
}
