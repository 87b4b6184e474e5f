//! What the hub tracks: every key some client asked about, with its current token, when it
//! was last wanted and how many requests are waiting on it. A pure data structure (time
//! comes in as an argument); a change generation on a `watch` channel wakes the waiting
//! requests and a `Notify` wakes the poller for keys to read at once.

use crate::hub_protocol::{Key, MISSING, UNAVAILABLE};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// What the hub knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not read yet.
    Pending,
    /// The current token (a version, a version id, a path digest or `missing`).
    Token(String),
    /// The last read failed; `cause` is a metric label (`denied`, `throttled`, ...).
    Unavailable { cause: &'static str },
}

impl State {
    /// The token clients see: pending and unavailable keys are both `unavailable`.
    pub fn token(&self) -> &str {
        match self {
            State::Token(t) => t,
            State::Pending | State::Unavailable { .. } => UNAVAILABLE,
        }
    }

    fn same(&self, other: &State) -> bool {
        match (self, other) {
            (State::Token(a), State::Token(b)) => a == b,
            (State::Pending, State::Pending) => true,
            (State::Unavailable { .. }, State::Unavailable { .. }) => true,
            _ => false,
        }
    }
}

/// The token of a missing parameter or empty path.
pub fn missing() -> State {
    State::Token(MISSING.to_owned())
}

#[derive(Debug)]
struct Entry {
    key: Key,
    state: State,
    last_wanted: Instant,
    /// Requests waiting on this key now.
    held: u64,
    /// `held` when the token last changed: the clients that will re-fetch.
    watchers_at_change: u64,
    /// The clients ([`Registry::want_as`]) that want it, and when each last did.
    clients: HashMap<Arc<str>, Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed by the wire form; a held request shares these strings ([`Held::keys`]).
    entries: HashMap<Arc<str>, Entry>,
    /// Keys to read at once (new keys, [`Registry::refresh_now`]).
    refresh: BTreeSet<String>,
    /// AWS answered at least one read.
    answered: bool,
    /// Requests waiting now.
    waiting: u64,
    /// How many keys each client wants (the entries whose `clients` name it).
    per_client: HashMap<Arc<str>, usize>,
}

/// A request that would take a client past its most keys (`--max-keys-per-client`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{client} has the hub watch {has} names and paths and this request adds {adds}: at most {max} per client (--max-keys-per-client); watch fewer, or let unused ones expire"
)]
pub struct TooManyKeys {
    pub client: String,
    pub has: usize,
    pub adds: usize,
    pub max: usize,
}

/// One key as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub key: String,
    pub state: State,
    /// Clients watching it: those waiting now, or those waiting when it last changed.
    pub watchers: u64,
}

/// The keys, their tokens and who waits on them. `Send + Sync`; share as `Arc<Registry>`.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
    refresh: Notify,
    /// The hub is shutting down ([`Registry::stop`]).
    stopping: std::sync::atomic::AtomicBool,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            inner: Mutex::new(Inner::default()),
            changes: watch::channel(0).0,
            refresh: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Registry::want_as`] for one client without a limit.
    pub fn want(&self, keys: &[Key], now: Instant) -> usize {
        self.want_as("", keys, now, usize::MAX).unwrap_or(0)
    }

    /// Registers `keys` as wanted by `client` at `now`; new keys are pending and queued for
    /// an immediate read. Returns how many were new to the hub; or, when the keys new to
    /// `client` would take it past `max_keys`, registers nothing and says so.
    pub fn want_as(
        &self,
        client: &str,
        keys: &[Key],
        now: Instant,
        max_keys: usize,
    ) -> Result<usize, TooManyKeys> {
        let wanted: BTreeMap<String, &Key> = keys.iter().map(|k| (k.to_string(), k)).collect();
        let mut new = 0;
        {
            let mut inner = self.lock();
            let Inner {
                entries,
                refresh,
                per_client,
                ..
            } = &mut *inner;
            let has = per_client.get(client).copied().unwrap_or(0);
            let adds = wanted
                .keys()
                .filter(|s| {
                    !entries
                        .get(s.as_str())
                        .is_some_and(|e| e.clients.contains_key(client))
                })
                .count();
            if has.saturating_add(adds) > max_keys {
                return Err(TooManyKeys {
                    client: client.to_owned(),
                    has,
                    adds,
                    max: max_keys,
                });
            }
            let name: Arc<str> = per_client
                .get_key_value(client)
                .map_or_else(|| Arc::from(client), |(k, _)| k.clone());
            for (s, key) in wanted {
                let e = entries.entry(Arc::from(s)).or_insert_with_key(|s| {
                    refresh.insert(s.to_string());
                    new += 1;
                    Entry {
                        key: key.clone(),
                        state: State::Pending,
                        last_wanted: now,
                        held: 0,
                        watchers_at_change: 0,
                        clients: HashMap::new(),
                    }
                });
                e.last_wanted = e.last_wanted.max(now);
                let last = e.clients.entry(name.clone()).or_insert_with(|| {
                    *per_client.entry(name.clone()).or_default() += 1;
                    now
                });
                *last = (*last).max(now);
            }
        }
        if new > 0 {
            self.refresh.notify_one();
        }
        Ok(new)
    }

    /// Counts a request as waiting on `keys` until the guard is dropped. The guard keeps
    /// the keys' wire forms, shared with the registry's entries (a held request is the
    /// hub's most numerous object: it copies no key).
    pub fn hold(self: &Arc<Self>, keys: &[Key]) -> Held {
        let keys: Box<[Arc<str>]> = {
            let mut inner = self.lock();
            inner.waiting += 1;
            keys.iter()
                .map(|k| {
                    let wire = k.to_string();
                    let shared = inner
                        .entries
                        .get_key_value(wire.as_str())
                        .map(|(k, _)| k.clone());
                    match shared {
                        Some(shared) => {
                            if let Some(e) = inner.entries.get_mut(&shared) {
                                e.held += 1;
                            }
                            shared
                        }
                        None => Arc::from(wire),
                    }
                })
                .collect()
        };
        Held {
            registry: self.clone(),
            keys,
        }
    }

    /// The current state of `keys` (a key no longer registered is pending).
    pub fn view(&self, keys: &[Key]) -> Vec<View> {
        let wire: Vec<String> = keys.iter().map(Key::to_string).collect();
        self.view_wire(&wire)
    }

    /// [`Registry::view`] of keys in their wire form ([`Held::keys`]).
    pub fn view_wire<K: AsRef<str>>(&self, keys: &[K]) -> Vec<View> {
        let inner = self.lock();
        keys.iter()
            .map(|k| {
                let key = k.as_ref().to_owned();
                match inner.entries.get(key.as_str()) {
                    Some(e) => View {
                        state: e.state.clone(),
                        watchers: e.held.max(e.watchers_at_change),
                        key,
                    },
                    None => View {
                        key,
                        state: State::Pending,
                        watchers: 0,
                    },
                }
            })
            .collect()
    }

    /// A receiver that sees every change of any token, and [`Registry::stop`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The hub shuts down: every waiter is woken ([`Registry::subscribe`]) and sees
    /// [`Registry::stopping`], so held requests answer at once. One wake-up for both, so a
    /// waiting request needs one subscription, not two.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.changes.send_modify(|g| *g += 1);
    }

    /// Whether [`Registry::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records what reads found. Returns the keys whose token changed (a pending key
    /// getting its first token is not counted as a change, but does wake waiters).
    pub fn record(&self, results: Vec<(String, State)>) -> Vec<String> {
        let mut changed = Vec::new();
        let mut woke = false;
        {
            let mut inner = self.lock();
            let mut any_ok = false;
            for (key, state) in results {
                if !matches!(state, State::Unavailable { .. }) {
                    any_ok = true;
                }
                let Some(e) = inner.entries.get_mut(key.as_str()) else {
                    continue;
                };
                if e.state.same(&state) {
                    e.state = state;
                    continue;
                }
                if e.state != State::Pending {
                    changed.push(key);
                }
                e.state = state;
                e.watchers_at_change = e.held;
                woke = true;
            }
            inner.answered |= any_ok;
        }
        if woke {
            self.changes.send_modify(|g| *g += 1);
        }
        changed
    }

    /// Forgets keys nobody has wanted for `ttl` and nobody waits on, and, for the keys
    /// nobody waits on, the clients that have not wanted them for `ttl` (they no longer
    /// count towards those clients' most keys); returns how many keys were forgotten.
    pub fn expire(&self, now: Instant, ttl: Duration) -> usize {
        let mut inner = self.lock();
        let Inner {
            entries,
            refresh,
            per_client,
            ..
        } = &mut *inner;
        let before = entries.len();
        entries.retain(|_, e| {
            if e.held > 0 {
                return true;
            }
            e.clients.retain(|client, last| {
                let keep = now.saturating_duration_since(*last) <= ttl;
                if !keep && let Some(n) = per_client.get_mut(client) {
                    *n = n.saturating_sub(1);
                }
                keep
            });
            now.saturating_duration_since(e.last_wanted) <= ttl
        });
        per_client.retain(|_, n| *n > 0);
        refresh.retain(|k| entries.contains_key(k.as_str()));
        before - entries.len()
    }

    /// Every registered key.
    pub fn keys(&self) -> Vec<Key> {
        let inner = self.lock();
        let mut keys: Vec<Key> = inner.entries.values().map(|e| e.key.clone()).collect();
        keys.sort();
        keys
    }

    /// Makes the poller re-read these keys at once (those registered; others are
    /// ignored). The push consumer calls it when an event names a parameter.
    pub fn refresh_now(&self, keys: &[Key]) {
        let queued = {
            let mut inner = self.lock();
            let mut queued = false;
            for k in keys {
                let s = k.to_string();
                if inner.entries.contains_key(s.as_str()) {
                    inner.refresh.insert(s);
                    queued = true;
                }
            }
            queued
        };
        if queued {
            self.refresh.notify_one();
        }
    }

    /// The registered keys `affected` picks (the push consumer passes
    /// [`super::events::Change::affects`]), sorted.
    pub fn keys_matching(&self, affected: impl Fn(&Key) -> bool) -> Vec<Key> {
        let inner = self.lock();
        let mut keys: Vec<Key> = inner
            .entries
            .values()
            .filter(|e| affected(&e.key))
            .map(|e| e.key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Waits until keys are queued for an immediate read.
    pub async fn refresh_wanted(&self) {
        self.refresh.notified().await;
    }

    /// Takes the keys queued for an immediate read.
    pub fn take_refresh(&self) -> Vec<Key> {
        let mut inner = self.lock();
        let queued = std::mem::take(&mut inner.refresh);
        queued
            .iter()
            .filter_map(|k| inner.entries.get(k.as_str()).map(|e| e.key.clone()))
            .collect()
    }

    /// Ready: AWS answered a read, or there is nothing to watch.
    pub fn ready(&self) -> bool {
        let inner = self.lock();
        inner.answered || inner.entries.is_empty()
    }

    /// (keys tracked, requests waiting).
    pub fn sizes(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.entries.len(), inner.waiting)
    }
}

/// True when parameter `name` is under `path` (directly, unless `recursive`).
pub fn under(name: &str, path: &str, recursive: bool) -> bool {
    let prefix = format!("{}/", path.trim_end_matches('/'));
    match name.strip_prefix(&prefix) {
        Some(rest) if !rest.is_empty() => recursive || !rest.contains('/'),
        _ => false,
    }
}

/// A request waiting on some keys; dropping it stops counting it.
#[derive(Debug)]
pub struct Held {
    registry: Arc<Registry>,
    keys: Box<[Arc<str>]>,
}

impl Held {
    /// The keys held, in their wire form, in the order given to [`Registry::hold`].
    pub fn keys(&self) -> &[Arc<str>] {
        &self.keys
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.waiting = inner.waiting.saturating_sub(1);
        for k in &self.keys {
            if let Some(e) = inner.entries.get_mut(&**k) {
                e.held = e.held.saturating_sub(1);
            }
        }
    }
}

/// What an answer says, from the keys' views and the client's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    pub versions: BTreeMap<String, String>,
    /// Keys whose token differs from `known`, or that `known` lacks.
    pub changed: Vec<String>,
    /// Keys `known` lacks (a client's first request).
    pub first: bool,
    pub unavailable: Vec<String>,
    /// The most watchers of any changed key.
    pub watchers: u64,
}

/// Compares the hub's tokens with the client's.
pub fn compare(views: &[View], known: &BTreeMap<String, String>) -> Comparison {
    compare_by(views, |v, _| known.get(&v.key).map(String::as_str))
}

/// [`compare`] with the client's tokens in the order of `views`, as a held request keeps
/// them.
pub fn compare_aligned(views: &[View], known: &Tokens) -> Comparison {
    compare_by(views, |_, i| known.get(i))
}

/// A held request's tokens, in the order of its keys (`None`: the client has none), in two
/// allocations, one string and one table of ends, instead of one per key: a held request
/// is the hub's most numerous object (20 keys: about 0.6 KiB less per request).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tokens {
    text: Box<str>,
    /// Where each token ends in `text`, with [`Tokens::ABSENT`] set for a key without one.
    ends: Box<[u32]>,
}

impl Tokens {
    const ABSENT: u32 = 1 << 31;

    /// The tokens, in order. A request's body is far below 2 GiB (`hub_protocol::MAX_BODY`);
    /// a token that would end beyond is kept as absent, which only makes the request answer
    /// at once with every version (as a client without tokens is answered).
    pub fn new<'a>(tokens: impl IntoIterator<Item = Option<&'a str>>) -> Tokens {
        let mut text = String::new();
        let mut ends = Vec::new();
        for token in tokens {
            let start = text.len();
            let end = token.and_then(|t| u32::try_from(start + t.len()).ok());
            match (token, end) {
                (Some(t), Some(end)) if end < Tokens::ABSENT => {
                    text.push_str(t);
                    ends.push(end);
                }
                // `start` fits: every end pushed before it did.
                _ => ends.push(u32::try_from(start).unwrap_or(0) | Tokens::ABSENT),
            }
        }
        Tokens {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// The `i`th key's token.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        if end & Tokens::ABSENT != 0 {
            return None;
        }
        let start = match i.checked_sub(1) {
            Some(before) => self.ends[before] & !Tokens::ABSENT,
            None => 0,
        };
        self.text.get(start as usize..end as usize)
    }
}

fn compare_by<'k>(views: &[View], known: impl Fn(&View, usize) -> Option<&'k str>) -> Comparison {
    let mut c = Comparison::default();
    for (i, v) in views.iter().enumerate() {
        let token = v.state.token();
        if matches!(v.state, State::Pending | State::Unavailable { .. }) {
            c.unavailable.push(v.key.clone());
        }
        match known(v, i) {
            Some(k) if k == token => {}
            other => {
                c.first |= other.is_none();
                c.changed.push(v.key.clone());
                c.watchers = c.watchers.max(v.watchers);
            }
        }
        c.versions.insert(v.key.clone(), token.to_owned());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<Key> {
        names.iter().map(|n| Key::name(n).unwrap()).collect()
    }

    fn tok(s: &str) -> State {
        State::Token(s.to_owned())
    }

    #[test]
    fn new_keys_are_pending_and_queued_once() {
        let r = Registry::new();
        let t0 = Instant::now();
        assert_eq!(r.want(&keys(&["/a", "/b"]), t0), 2);
        assert_eq!(r.want(&keys(&["/a", "/b", "/c"]), t0), 1);
        let queued: Vec<String> = r.take_refresh().iter().map(Key::to_string).collect();
        assert_eq!(queued, ["name:/a", "name:/b", "name:/c"]);
        assert!(r.take_refresh().is_empty());
        assert!(r.view(&keys(&["/a"]))[0].state == State::Pending);
        assert!(!r.ready(), "keys but no answer from AWS yet");
    }

    #[test]
    fn a_changed_token_bumps_the_generation_and_is_reported() {
        let r = Arc::new(Registry::new());
        let k = keys(&["/a"]);
        r.want(&k, Instant::now());
        let mut rx = r.subscribe();
        // The first token wakes waiters but is not a change.
        assert!(r.record(vec![("name:/a".into(), tok("1"))]).is_empty());
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert!(r.ready());
        // The same token again: nothing.
        assert!(r.record(vec![("name:/a".into(), tok("1"))]).is_empty());
        assert!(!rx.has_changed().unwrap());
        // A new one: a change, with the watchers waiting at that moment.
        let held = r.hold(&k);
        let _second = r.hold(&k);
        assert_eq!(r.record(vec![("name:/a".into(), tok("2"))]), ["name:/a"]);
        assert!(rx.has_changed().unwrap());
        drop(held);
        assert_eq!(r.view(&k)[0].watchers, 2, "remembered from the change");
        assert_eq!(r.sizes(), (1, 1));
    }

    #[test]
    fn unavailable_causes_do_not_count_as_changes_among_themselves() {
        let r = Registry::new();
        r.want(&keys(&["/a"]), Instant::now());
        r.record(vec![(
            "name:/a".into(),
            State::Unavailable { cause: "throttled" },
        )]);
        assert!(!r.ready(), "no read succeeded");
        let mut rx = r.subscribe();
        r.record(vec![(
            "name:/a".into(),
            State::Unavailable { cause: "denied" },
        )]);
        assert!(!rx.has_changed().unwrap());
        assert_eq!(r.record(vec![("name:/a".into(), tok("3"))]), ["name:/a"]);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
    }

    #[test]
    fn keys_nobody_wants_expire_unless_someone_waits() {
        let r = Arc::new(Registry::new());
        let t0 = Instant::now();
        let ttl = Duration::from_secs(165);
        r.want(&keys(&["/old", "/held"]), t0);
        r.want(&keys(&["/new"]), t0 + Duration::from_secs(100));
        let _h = r.hold(&keys(&["/held"]));
        assert_eq!(r.expire(t0 + Duration::from_secs(200), ttl), 1);
        let left: Vec<String> = r.keys().iter().map(Key::to_string).collect();
        assert_eq!(left, ["name:/held", "name:/new"]);
        // The queued read of the expired key is dropped too.
        assert!(
            r.take_refresh()
                .iter()
                .all(|k| k.to_string() != "name:/old")
        );
    }

    #[test]
    fn each_client_may_want_at_most_its_keys_until_they_expire() {
        let r = Registry::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(165);
        assert_eq!(r.want_as("a", &keys(&["/1", "/2"]), t0, 3), Ok(2));
        // Keys it has already and repeats within a request do not count again.
        assert_eq!(
            r.want_as("a", &keys(&["/1", "/2", "/3", "/3"]), t0, 3),
            Ok(1)
        );
        let e = r
            .want_as("a", &keys(&["/1", "/4"]), t0, 3)
            .expect_err("a fourth key");
        assert_eq!((e.has, e.adds, e.max), (3, 1, 3));
        assert!(
            e.to_string().starts_with("a has the hub watch 3 names and paths and this request adds 1: at most 3 per client (--max-keys-per-client)"),
            "{e}"
        );
        assert_eq!(r.sizes().0, 3, "nothing of the refused request registered");
        // Another client is counted on its own, also for keys a already has.
        assert_eq!(r.want_as("b", &keys(&["/1", "/4", "/5"]), t0, 3), Ok(2));
        // a's keys expire for a (b wanted /1 later, so /1 stays registered).
        let later = t0 + Duration::from_secs(100);
        assert_eq!(r.want_as("b", &keys(&["/1"]), later, 3), Ok(0));
        assert_eq!(r.expire(t0 + Duration::from_secs(200), ttl), 4);
        assert_eq!(r.sizes().0, 1);
        assert_eq!(r.want_as("a", &keys(&["/6", "/7", "/8"]), later, 3), Ok(3));
    }

    #[test]
    fn refresh_now_queues_only_registered_keys() {
        let r = Registry::new();
        r.want(&keys(&["/a"]), Instant::now());
        r.take_refresh();
        r.refresh_now(&keys(&["/a", "/unknown"]));
        let queued: Vec<String> = r.take_refresh().iter().map(Key::to_string).collect();
        assert_eq!(queued, ["name:/a"]);
    }

    #[test]
    fn a_parameter_maps_to_its_names_and_paths() {
        let r = Registry::new();
        let mut k = keys(&["/app/db", "/app/db:live", "/app/other"]);
        k.push(Key::path("/app/", true).unwrap());
        k.push(Key::path("/app", false).unwrap());
        k.push(Key::path("/other/", true).unwrap());
        r.want(&k, Instant::now());
        let change = super::super::events::Change::Parameter("/app/db".into());
        let hit: Vec<String> = r
            .keys_matching(|k| change.affects(k))
            .iter()
            .map(Key::to_string)
            .collect();
        assert_eq!(
            hit,
            [
                "name:/app/db",
                "name:/app/db:live",
                "path:/app:1",
                "path:/app/:r"
            ]
        );
        assert!(under("/a/b/c", "/a/", true));
        assert!(!under("/a/b/c", "/a/", false));
        assert!(!under("/ab", "/a", true));
        assert!(under("/x", "/", false));
    }

    #[test]
    fn comparison_reports_differences_and_first_requests() {
        let views = vec![
            View {
                key: "name:/a".into(),
                state: tok("2"),
                watchers: 7,
            },
            View {
                key: "name:/b".into(),
                state: tok("5"),
                watchers: 1,
            },
            View {
                key: "name:/c".into(),
                state: State::Unavailable { cause: "denied" },
                watchers: 1,
            },
        ];
        let known: BTreeMap<String, String> = [
            ("name:/a".to_owned(), "1".to_owned()),
            ("name:/b".to_owned(), "5".to_owned()),
            ("name:/c".to_owned(), UNAVAILABLE.to_owned()),
        ]
        .into();
        let c = compare(&views, &known);
        assert_eq!(c.changed, ["name:/a"]);
        assert!(!c.first);
        assert_eq!(c.watchers, 7);
        assert_eq!(c.unavailable, ["name:/c"]);
        assert_eq!(c.versions["name:/c"], "unavailable");

        let c = compare(&views, &BTreeMap::new());
        assert!(c.first);
        assert_eq!(c.changed.len(), 3);

        // The tokens a held request keeps, in the order of its keys, compare the same.
        let aligned = Tokens::new(views.iter().map(|v| known.get(&v.key).map(String::as_str)));
        assert_eq!(compare_aligned(&views, &aligned), compare(&views, &known));
        let partly = Tokens::new([Some("2"), None]);
        let c = compare_aligned(&views, &partly);
        assert_eq!(c.changed, ["name:/b", "name:/c"]);
        assert!(c.first);
    }

    #[test]
    fn a_held_request_shares_the_registrys_key_strings_and_is_counted_until_dropped() {
        let r = Arc::new(Registry::new());
        let ks = keys(&["/a", "/b"]);
        r.want(&ks, Instant::now());
        let held = r.hold(&ks);
        assert_eq!(r.sizes(), (2, 1));
        let shared = r
            .lock()
            .entries
            .get_key_value("name:/a")
            .map(|(k, _)| k.clone());
        assert!(shared.is_some_and(|k| Arc::ptr_eq(&k, &held.keys()[0])));
        assert_eq!(r.view_wire(held.keys()), r.view(&ks));
        drop(held);
        assert_eq!(r.sizes(), (2, 0));
    }

    proptest::proptest! {
        /// Every token comes back as it went in, absent ones too, and nothing past the end.
        #[test]
        fn tokens_keep_each_token_in_order(
            tokens in proptest::collection::vec(proptest::option::of(".{0,12}"), 0..40)
        ) {
            let kept = Tokens::new(tokens.iter().map(Option::as_deref));
            for (i, token) in tokens.iter().enumerate() {
                proptest::prop_assert_eq!(kept.get(i), token.as_deref());
            }
            proptest::prop_assert_eq!(kept.get(tokens.len()), None);
        }
    }
}
