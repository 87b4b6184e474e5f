//! The hub client's decisions, apart from its I/O: what to ask the hub and with which
//! tokens, when to give up on an answer, how long to wait after a failure, and what to tell
//! the watch loop. Pure: time and randomness come in from the caller; [`super::run`]
//! performs the [`Action`]s and feeds the answers back.

use crate::backoff::Backoff;
use crate::hub_protocol::{PathSpec, WatchRequest, WatchResponse};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest hold asked of the hub (it may clamp it lower).
pub const LONG_POLL: Duration = Duration::from_secs(50);
/// How much longer than [`LONG_POLL`] an answer may take before it counts as a failure.
const ANSWER_GRACE: Duration = Duration::from_secs(15);
/// The wait after the hub refused the request (4xx: token, namespace policy, bad request):
/// asking again soon would not help.
const REFUSED_WAIT: Duration = Duration::from_secs(60);
/// The backoff after other failures.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What the hub client tells the watch loop.
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// Whether the hub currently tracks every watched key (then the loop skips its own
    /// polls); false while the hub is unreachable, refuses, or cannot track some keys.
    Covering(bool),
    /// Something watched changed: fetch those keys (the wire form of
    /// [`crate::hub_protocol::Key`]) from AWS at a random point within `spread`.
    Changed { keys: Vec<String>, spread: Duration },
}

/// What the client does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// No fetch has succeeded yet, so there is nothing to ask about: wait for a request.
    AwaitRequest,
    /// After a failure: wait until then, or until the watch loop sends a new request.
    Wait { until: Instant },
    /// Send `request` ([`LONG_POLL`] or an answer at once); no answer by `deadline` is a
    /// failure.
    Ask {
        request: WatchRequest,
        deadline: Instant,
    },
}

/// What a new request from the watch loop means for the call or wait in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRequest {
    /// The same keys: keep waiting for the answer (the hub's tokens stay valid).
    KeepWaiting,
    /// Stop waiting and ask again: other keys (a new spec), or the wait after a failure
    /// is cut short.
    AskAgain,
}

/// An answer, for metrics, logs and the watch loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The first answer after failures.
    pub recovered: bool,
    /// Keys the hub cannot track (the sidecar polls them itself).
    pub unavailable: usize,
    /// Keys whose token moved.
    pub changed: Vec<String>,
    /// Spread the re-fetch over this long.
    pub spread: Duration,
}

impl Answered {
    /// Whether the hub tracks every watched key.
    pub fn covering(&self) -> bool {
        self.unavailable == 0
    }

    /// The `hub_answer` metric label.
    pub fn label(&self) -> &'static str {
        if self.changed.is_empty() {
            "unchanged"
        } else {
            "changed"
        }
    }

    /// What to tell the watch loop, in order.
    pub fn events(&self) -> Vec<HubEvent> {
        let mut events = vec![HubEvent::Covering(self.covering())];
        if !self.changed.is_empty() {
            events.push(HubEvent::Changed {
                keys: self.changed.clone(),
                spread: self.spread,
            });
        }
        events
    }
}

/// A failed exchange, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// When the client asks again (sooner if a new request comes).
    pub retry_in: Duration,
    /// Log it: the first failure in a row, and every refusal.
    pub warn: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Idle,
    /// A call is out about these keys.
    Asking {
        names: Vec<String>,
        paths: Vec<PathSpec>,
    },
    Retrying {
        until: Instant,
    },
}

/// The hub client's state.
pub struct Machine {
    backoff: Backoff,
    /// The hub's tokens from its last answer; None after a failure or a new spec, when the
    /// tokens computed from our own fetch are sent instead.
    known: Option<BTreeMap<String, String>>,
    failing: bool,
    phase: Phase,
    random: Box<dyn FnMut() -> f64 + Send>,
}

impl Machine {
    /// `random` gives numbers uniform in `[0, 1)` (the backoff's jitter).
    pub fn new(random: impl FnMut() -> f64 + Send + 'static) -> Machine {
        Machine {
            backoff: Backoff::new(BACKOFF_BASE, BACKOFF_CAP),
            known: None,
            failing: false,
            phase: Phase::Idle,
            random: Box::new(random),
        }
    }

    /// What to do at `now`, given the watch loop's latest request (from its last fetch).
    pub fn next(&mut self, latest: Option<&WatchRequest>, now: Instant) -> Action {
        if let Phase::Retrying { until } = self.phase
            && now < until
        {
            return Action::Wait { until };
        }
        self.phase = Phase::Idle;
        let Some(base) = latest else {
            return Action::AwaitRequest;
        };
        let mut request = base.clone();
        match &self.known {
            Some(k) => request.known = k.clone(),
            // First contact (start, a new spec, after a failure): an answer at once tells
            // whether the hub covers every key, so own polling can stop without waiting
            // out a long poll.
            None => request.wait_seconds = Some(0.0),
        }
        self.phase = Phase::Asking {
            names: base.names.clone(),
            paths: base.paths.clone(),
        };
        Action::Ask {
            request,
            deadline: now + LONG_POLL + ANSWER_GRACE,
        }
    }

    /// The watch loop sent a new request (after a fetch), or none (it stopped following).
    pub fn on_request(&mut self, new: Option<&WatchRequest>) -> OnRequest {
        match &self.phase {
            Phase::Asking { names, paths } => match new {
                Some(n) if n.names == *names && n.paths == *paths => OnRequest::KeepWaiting,
                _ => {
                    // A new spec: ask again about the new set.
                    self.known = None;
                    self.phase = Phase::Idle;
                    OnRequest::AskAgain
                }
            },
            Phase::Retrying { .. } | Phase::Idle => {
                self.phase = Phase::Idle;
                OnRequest::AskAgain
            }
        }
    }

    /// The hub answered.
    pub fn on_answer(&mut self, answer: WatchResponse) -> Answered {
        let answered = Answered {
            recovered: std::mem::replace(&mut self.failing, false),
            unavailable: answer.unavailable.len(),
            changed: answer.changed,
            spread: Duration::from_millis(answer.spread_ms),
        };
        self.backoff.reset();
        self.known = Some(answer.versions);
        self.phase = Phase::Idle;
        answered
    }

    /// The exchange failed at `now`; `refused` when the hub answered 4xx.
    pub fn on_error(&mut self, refused: bool, now: Instant) -> Failed {
        self.known = None;
        let retry_in = if refused {
            REFUSED_WAIT
        } else {
            self.backoff.next_delay((self.random)())
        };
        let warn = !self.failing || refused;
        self.failing = true;
        self.phase = Phase::Retrying {
            until: now + retry_in,
        };
        Failed { retry_in, warn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(names: &[&str], known: &[(&str, &str)]) -> WatchRequest {
        WatchRequest {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            paths: vec![PathSpec {
                path: "/app/".to_owned(),
                recursive: true,
            }],
            known: known
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            wait_seconds: Some(LONG_POLL.as_secs_f64()),
        }
    }

    fn answer(changed: &[&str], unavailable: &[&str], versions: &[(&str, &str)]) -> WatchResponse {
        WatchResponse {
            versions: versions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            changed: changed.iter().map(|k| (*k).to_owned()).collect(),
            unavailable: unavailable.iter().map(|k| (*k).to_owned()).collect(),
            spread_ms: 2_000,
            interval_ms: 10_000,
        }
    }

    fn asked(action: Action) -> (WatchRequest, Instant) {
        match action {
            Action::Ask { request, deadline } => (request, deadline),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// The upper end of every jitter range: delays are the backoff's bounds.
    fn machine() -> Machine {
        Machine::new(|| 1.0)
    }

    /// A machine that had one answer (the hub's token for `/a`: 4) and holds the next
    /// long poll.
    fn following(base: &WatchRequest, now: Instant) -> Machine {
        let mut m = machine();
        asked(m.next(Some(base), now));
        m.on_answer(answer(&[], &[], &[("name:/a", "4")]));
        asked(m.next(Some(base), now));
        m
    }

    #[test]
    fn waits_for_a_request_before_asking_anything() {
        let mut m = machine();
        assert_eq!(m.next(None, Instant::now()), Action::AwaitRequest);
    }

    #[test]
    fn first_contact_asks_for_an_answer_at_once_with_the_tokens_of_its_own_fetch() {
        let mut m = machine();
        let t0 = Instant::now();
        let base = request(&["/a"], &[("name:/a", "3")]);
        let (sent, deadline) = asked(m.next(Some(&base), t0));
        assert_eq!(sent.wait_seconds, Some(0.0));
        assert_eq!(sent.known, base.known);
        assert_eq!(sent.names, base.names);
        assert_eq!(deadline, t0 + Duration::from_secs(65));
    }

    #[test]
    fn after_an_answer_it_holds_a_long_poll_with_the_hubs_tokens() {
        let mut m = machine();
        let t0 = Instant::now();
        let base = request(&["/a"], &[("name:/a", "3")]);
        asked(m.next(Some(&base), t0));
        let a = m.on_answer(answer(&[], &[], &[("name:/a", "4")]));
        assert_eq!(
            a,
            Answered {
                recovered: false,
                unavailable: 0,
                changed: vec![],
                spread: Duration::from_secs(2),
            }
        );
        assert_eq!(a.label(), "unchanged");
        assert_eq!(a.events(), vec![HubEvent::Covering(true)]);
        let (sent, _) = asked(m.next(Some(&base), t0));
        assert_eq!(sent.wait_seconds, Some(50.0));
        assert_eq!(sent.known.get("name:/a").map(String::as_str), Some("4"));
    }

    #[test]
    fn a_change_tells_the_loop_to_fetch_within_the_hubs_spread() {
        let mut m = machine();
        let base = request(&["/a", "/b"], &[]);
        asked(m.next(Some(&base), Instant::now()));
        let a = m.on_answer(answer(&["name:/a", "name:/b"], &[], &[]));
        assert_eq!(a.label(), "changed");
        assert_eq!(
            a.events(),
            vec![
                HubEvent::Covering(true),
                HubEvent::Changed {
                    keys: vec!["name:/a".to_owned(), "name:/b".to_owned()],
                    spread: Duration::from_secs(2)
                }
            ]
        );
    }

    #[test]
    fn keys_the_hub_cannot_track_mean_it_does_not_cover_the_sidecar() {
        let mut m = machine();
        asked(m.next(Some(&request(&["/a"], &[])), Instant::now()));
        let a = m.on_answer(answer(&[], &["name:/a"], &[("name:/a", "unavailable")]));
        assert!(!a.covering());
        assert_eq!(a.events(), vec![HubEvent::Covering(false)]);
    }

    #[test]
    fn a_new_request_for_the_same_keys_keeps_the_long_poll() {
        let t0 = Instant::now();
        let base = request(&["/a"], &[("name:/a", "3")]);
        let mut m = following(&base, t0);
        let refetched = request(&["/a"], &[("name:/a", "4")]);
        assert_eq!(m.on_request(Some(&refetched)), OnRequest::KeepWaiting);
        // The answer still counts and the hub's tokens are used next.
        m.on_answer(answer(&[], &[], &[("name:/a", "4")]));
        let (sent, _) = asked(m.next(Some(&refetched), t0));
        assert_eq!(sent.wait_seconds, Some(50.0));
    }

    #[test]
    fn a_new_spec_drops_the_long_poll_and_asks_about_the_new_keys_at_once() {
        let t0 = Instant::now();
        let mut m = following(&request(&["/a"], &[]), t0);
        let new = request(&["/a", "/b"], &[("name:/b", "1")]);
        assert_eq!(m.on_request(Some(&new)), OnRequest::AskAgain);
        let (sent, _) = asked(m.next(Some(&new), t0));
        assert_eq!(
            sent.wait_seconds,
            Some(0.0),
            "first contact about the new set"
        );
        assert_eq!(sent.known, new.known, "the hub's old tokens are dropped");
        // No request at all any more: drop the call too.
        asked(m.next(Some(&new), t0));
        assert_eq!(m.on_request(None), OnRequest::AskAgain);
        assert_eq!(m.next(None, t0), Action::AwaitRequest);
    }

    #[test]
    fn failures_back_off_warn_once_and_send_the_own_tokens_again() {
        let t0 = Instant::now();
        let base = request(&["/a"], &[("name:/a", "3")]);
        let mut m = following(&base, t0);
        let mut now = t0;
        let mut warned = Vec::new();
        for want in [1, 2, 4, 8, 16, 30, 30] {
            let f = m.on_error(false, now);
            assert_eq!(f.retry_in, Duration::from_secs(want));
            warned.push(f.warn);
            let until = now + f.retry_in;
            assert_eq!(
                m.next(Some(&base), now + f.retry_in / 2),
                Action::Wait { until }
            );
            now = until;
            let (sent, _) = asked(m.next(Some(&base), now));
            assert_eq!(sent.wait_seconds, Some(0.0));
            assert_eq!(sent.known, base.known, "the hub's tokens are dropped");
        }
        assert_eq!(warned, [true, false, false, false, false, false, false]);
    }

    /// Asks at `now` and fails.
    fn fail(m: &mut Machine, base: &WatchRequest, now: Instant, refused: bool) -> Failed {
        asked(m.next(Some(base), now));
        m.on_error(refused, now)
    }

    #[test]
    fn a_refusal_waits_a_minute_and_is_logged_every_time() {
        let mut m = machine();
        let t0 = Instant::now();
        let base = request(&["/a"], &[]);
        for i in 0..3 {
            assert_eq!(
                fail(&mut m, &base, t0 + Duration::from_secs(60 * i), true),
                Failed {
                    retry_in: Duration::from_secs(60),
                    warn: true
                }
            );
        }
        // Refusals do not grow the backoff of other failures.
        let f = fail(&mut m, &base, t0 + Duration::from_secs(180), false);
        assert_eq!(f.retry_in, Duration::from_secs(1));
    }

    #[test]
    fn the_first_answer_after_failures_recovers_and_resets_the_backoff() {
        let mut m = machine();
        let t0 = Instant::now();
        let base = request(&["/a"], &[]);
        fail(&mut m, &base, t0, false);
        fail(&mut m, &base, t0 + Duration::from_secs(1), false);
        let t2 = t0 + Duration::from_secs(3);
        asked(m.next(Some(&base), t2));
        assert!(m.on_answer(answer(&[], &[], &[])).recovered);
        asked(m.next(Some(&base), t2));
        assert!(!m.on_answer(answer(&[], &[], &[])).recovered);
        assert_eq!(
            fail(&mut m, &base, t2, false),
            Failed {
                retry_in: Duration::from_secs(1),
                warn: true
            }
        );
    }

    #[test]
    fn a_new_request_cuts_the_wait_after_a_failure_short() {
        let mut m = machine();
        let t0 = Instant::now();
        let base = request(&["/a"], &[]);
        fail(&mut m, &base, t0, true);
        assert!(matches!(m.next(Some(&base), t0), Action::Wait { .. }));
        assert_eq!(m.on_request(Some(&base)), OnRequest::AskAgain);
        let (sent, _) = asked(m.next(Some(&base), t0));
        assert_eq!(sent.wait_seconds, Some(0.0));
    }
}
