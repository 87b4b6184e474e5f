//! Coalescing of identical calls in flight: when a second caller asks for exactly what a
//! first caller is already fetching (same operation, region and names), it waits for that
//! answer instead of making its own call.
//!
//! If the first caller is cancelled before it finishes, its waiters are told so and each
//! makes the call itself: a cancelled leader can delay a follower but never lose its answer.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Calls in flight by key; `V` is the answer every waiter gets a copy of.
#[derive(Debug)]
pub struct Coalescer<K, V> {
    inflight: Mutex<HashMap<K, Vec<oneshot::Sender<V>>>>,
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Coalescer {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

/// How a call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// This caller made the call.
    Called,
    /// Another caller's call answered it.
    Shared,
}

impl<K: Eq + Hash + Clone, V: Clone> Coalescer<K, V> {
    /// Runs `call` unless the same `key` is already in flight, in which case it waits for
    /// that call's answer.
    pub async fn run<F, Fut>(&self, key: K, call: F) -> (V, Served)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let waiter = {
            let mut map = self.lock();
            match map.get_mut(&key) {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Some(rx)
                }
                None => {
                    map.insert(key.clone(), Vec::new());
                    None
                }
            }
        };
        if let Some(rx) = waiter {
            if let Ok(v) = rx.await {
                return (v, Served::Shared);
            }
            // The leader was cancelled: make the call without coalescing.
            return (call().await, Served::Called);
        }
        let guard = Leader {
            owner: self,
            key: Some(key),
        };
        let v = call().await;
        guard.finish(&v);
        (v, Served::Called)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Vec<oneshot::Sender<V>>>> {
        self.inflight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes the in-flight entry when the leader finishes or is dropped (cancelled); on
/// drop the waiters' senders go with it, which tells them to call themselves.
struct Leader<'a, K: Eq + Hash + Clone, V: Clone> {
    owner: &'a Coalescer<K, V>,
    key: Option<K>,
}

impl<K: Eq + Hash + Clone, V: Clone> Leader<'_, K, V> {
    fn finish(mut self, v: &V) {
        if let Some(key) = self.key.take() {
            let waiters = self.owner.lock().remove(&key).unwrap_or_default();
            for w in waiters {
                let _ = w.send(v.clone());
            }
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.owner.lock().remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_with_one_key_share_one_call() {
        let c: Coalescer<&str, u32> = Coalescer::default();
        let calls = AtomicUsize::new(0);
        let call = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            7
        };
        let (a, b, d) = tokio::join!(c.run("k", call), c.run("k", call), c.run("k", call));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            [a, b, d],
            [
                (7, Served::Called),
                (7, Served::Shared),
                (7, Served::Shared)
            ]
        );
        // Later calls are new calls: nothing is cached.
        assert_eq!(c.run("k", call).await, (7, Served::Called));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_do_not_wait_for_each_other() {
        let c: Coalescer<&str, &str> = Coalescer::default();
        let calls = AtomicUsize::new(0);
        let call = |v| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                v
            }
        };
        let (a, b) = tokio::join!(c.run("a", call("A")), c.run("b", call("B")));
        assert_eq!((a.0, b.0), ("A", "B"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_leaves_its_waiters_to_call_themselves() {
        let c: Coalescer<&str, u32> = Coalescer::default();
        let calls = AtomicUsize::new(0);
        let call = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            1
        };
        let leader = c.run("k", call);
        let follower = async {
            // Join after the leader started.
            tokio::time::sleep(Duration::from_millis(10)).await;
            c.run("k", call).await
        };
        let cancelled_leader = tokio::time::timeout(Duration::from_millis(20), leader);
        let (lead, follow) = tokio::join!(cancelled_leader, follower);
        assert!(lead.is_err(), "the leader timed out");
        assert_eq!(follow, (1, Served::Called));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(c.lock().is_empty(), "nothing is left in flight");
    }
}
