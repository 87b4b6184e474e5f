//! The on-demand reads' cache, with the extension's semantics: an answer is reused for the
//! TTL (`SSM_PARAMETER_STORE_TTL`, `SECRETS_MANAGER_TTL`; 0: never cached), at most
//! `capacity` entries (the oldest goes first). Pure: the caller gives the time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Answers by key, each with the time it was fetched.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: BTreeMap<String, (Instant, V)>,
}

impl<V> TtlCache<V> {
    pub fn new(ttl: Duration, capacity: usize) -> TtlCache<V> {
        TtlCache {
            ttl,
            capacity,
            entries: BTreeMap::new(),
        }
    }

    /// The answer for `key` if it was fetched less than the TTL before `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, v)| v)
    }

    /// Keeps `value` for `key` from `now`: expired entries go first, then, when full, the
    /// oldest. Nothing is kept with a TTL or capacity of 0.
    pub fn put(&mut self, key: String, value: V, now: Instant) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let ttl = self.ttl;
        self.entries
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
        while self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
        self.entries.insert(key, (now, value));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_reused_for_the_ttl_only() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(Duration::from_secs(300), 10);
        c.put("a".into(), 1, t0);
        assert_eq!(c.get("a", t0 + Duration::from_secs(299)), Some(&1));
        assert_eq!(c.get("a", t0 + Duration::from_secs(300)), None);
        assert_eq!(c.get("b", t0), None);
    }

    #[test]
    fn a_zero_ttl_or_capacity_caches_nothing() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(Duration::ZERO, 10);
        c.put("a".into(), 1, t0);
        assert!(c.is_empty());
        let mut c = TtlCache::new(Duration::from_secs(1), 0);
        c.put("a".into(), 1, t0);
        assert!(c.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_more_than_the_capacity_and_the_newest_is_kept(
            puts in proptest::collection::vec((0u8..20, 0u64..1000), 1..200),
            capacity in 1usize..8,
        ) {
            let t0 = Instant::now();
            let mut c = TtlCache::new(Duration::from_secs(100), capacity);
            let mut now = t0;
            for (key, step) in puts {
                now += Duration::from_millis(step);
                c.put(key.to_string(), key, now);
                proptest::prop_assert!(c.len() <= capacity);
                proptest::prop_assert_eq!(c.get(&key.to_string(), now), Some(&key));
            }
        }
    }
}
