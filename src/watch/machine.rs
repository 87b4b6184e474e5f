//! The watch loop's decisions, apart from its I/O: when to fetch (own slot, backoff, a hub
//! change, a new spec, SIGHUP), when to start the reload actions, how long to wait, when to
//! stop. Pure: time ([`Now`]) and randomness come in from the caller; [`super::run`]
//! performs the [`Action`]s and feeds the results back through the `on_*` events.
//!
//! Reload actions run in the background: [`Action::Reload`] starts them and the loop goes
//! on polling; [`Machine::on_reload_done`] says they finished. One run at a time: changes
//! seen meanwhile are coalesced into one more run after it, still debounced.
//!
//! A stop signal ends the loop at its next step, whatever is in progress: a fetch is
//! dropped (its AWS calls cancelled; nothing was written, since the write that follows a
//! fetch is synchronous and no signal is handled inside it), a running reload is cancelled.

use super::hub_client::machine::HubEvent;
use super::schedule;
use crate::backoff::Backoff;
use std::time::{Duration, Instant};

/// A moment on both clocks: monotonic for waits, the wall clock for the poll grid (polls
/// follow a wall-clock grid so that a fleet stays spread by slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    /// Time since the Unix epoch.
    pub unix: Duration,
}

/// The settings the decisions depend on (from [`super::config::WatchConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub interval: Duration,
    /// Where in each interval this instance polls, in `[0, 1)`.
    pub slot: f64,
    pub jitter: f64,
    pub max_backoff: Duration,
    /// Least time between two reloads.
    pub debounce: Duration,
    /// Whether any reload action is configured.
    pub reloads: bool,
}

/// A signal that stops the loop (SIGHUP is [`Machine::on_hangup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Term,
    Interrupt,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Interrupt => "SIGINT",
        }
    }
}

/// What a fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every watched key's version (own poll, start, new spec, retry after a failure).
    All,
    /// Only the keys the hub reported changed since the last fetch.
    HubChanged,
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fetch from AWS and write the files, then [`Machine::on_poll`].
    Fetch(Scope),
    /// Start the reload actions in the background, then [`Machine::on_reload_done`] when
    /// they finish; the loop does not wait for them.
    Reload,
    /// SIGHUP came: re-read the spec file, if any ([`Machine::on_spec`]); a fetch follows
    /// at once.
    Hangup,
    /// Wait until then, or until an event (signal, hub, spec file) comes.
    Wait { until: Instant },
    /// A stop signal came: cancel a running reload and stop.
    Stop(Stop),
}

/// What a poll's result means, for metrics and logs. `F` is the caller's failure, handed
/// back untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled<F> {
    Succeeded {
        /// Files changed after the first poll: a rotation seen.
        rotated: bool,
        /// The failures in a row this success ends, if any.
        recovered_after: Option<u32>,
    },
    Failed {
        failure: F,
        /// Failures in a row so far.
        failures: u32,
        retry_in: Duration,
    },
}

/// The spec file changed, and the caller re-read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecChange {
    /// The new spec is in use: fetch with it at once.
    Applied,
    /// Not valid, or its AWS client could not be built: the old spec and its schedule stay.
    Rejected,
    /// The same spec and templates as in use (a touch, or a second event of one rename):
    /// nothing to do.
    Unchanged,
}

/// The watch loop's state.
pub struct Machine {
    timing: Timing,
    random: Box<dyn FnMut() -> f64 + Send>,
    backoff: Backoff,
    /// When the next poll of our own is due; None: at once (start, a new spec).
    poll_at: Option<Instant>,
    /// A fetch the hub asked for, at a random point within its spread.
    hub_fetch_at: Option<Instant>,
    /// Whether the hub tracks every watched key: then own polls are skipped.
    hub_covering: bool,
    /// When the next reload is due (changes meanwhile share it).
    reload_at: Option<Instant>,
    /// When the last reload started: the debounce counts from there.
    last_reload: Option<Instant>,
    /// A reload is running in the background.
    reloading: bool,
    /// SIGHUP came and is not handled yet.
    hangup: bool,
    /// No poll has succeeded yet.
    first: bool,
    /// The files exist: from before this start, or written by a poll.
    existed: bool,
    stop: Option<Stop>,
}

impl Machine {
    /// `existed`: the files were there at start (a sidecar restarted after a crash may find
    /// rotated values: then the app must reload). `random` gives numbers uniform in
    /// `[0, 1)` (jitter, backoff, the hub's spread).
    pub fn new(
        timing: Timing,
        existed: bool,
        random: impl FnMut() -> f64 + Send + 'static,
    ) -> Machine {
        let backoff = Backoff::new(
            timing.interval.min(Duration::from_secs(1)),
            timing.max_backoff,
        );
        Machine {
            timing,
            random: Box::new(random),
            backoff,
            poll_at: None,
            hub_fetch_at: None,
            hub_covering: false,
            reload_at: None,
            last_reload: None,
            reloading: false,
            hangup: false,
            first: true,
            existed,
            stop: None,
        }
    }

    /// What to do at `now`. After [`Action::Fetch`], call [`Machine::on_poll`] before the
    /// next call (unless a stop signal cut the fetch short).
    pub fn next(&mut self, now: Now) -> Action {
        if let Some(signal) = self.stop {
            return Action::Stop(signal);
        }
        if self.hangup {
            self.hangup = false;
            self.poll_at = None;
            return Action::Hangup;
        }
        if !self.reloading && self.reload_at.is_some_and(|t| t <= now.at) {
            self.reload_at = None;
            self.last_reload = Some(now.at);
            self.reloading = true;
            return Action::Reload;
        }
        if self.hub_fetch_at.is_some_and(|t| t <= now.at) {
            // Only the hub's keys, unless an own poll is due anyway, or the last fetch
            // failed (then everything is read again).
            let own_due = match self.poll_at {
                None => true,
                Some(t) => t <= now.at && !self.hub_covering,
            };
            let scope = if own_due || self.backoff.failures() > 0 {
                Scope::All
            } else {
                Scope::HubChanged
            };
            return self.fetch(scope);
        }
        let poll_at = match self.poll_at {
            None => return self.fetch(Scope::All),
            Some(t) if t > now.at => t,
            Some(_) if self.hub_covering && self.backoff.failures() == 0 => {
                // The hub watches AWS for us: skip this poll, keep the slot.
                let t = now.at + self.regular_wait(now.unix);
                self.poll_at = Some(t);
                t
            }
            Some(_) => return self.fetch(Scope::All),
        };
        // A reload due while one runs waits for its end, not for a time.
        let reload_at = self.reload_at.filter(|_| !self.reloading);
        let until = [self.hub_fetch_at, reload_at]
            .into_iter()
            .flatten()
            .fold(poll_at, Instant::min);
        Action::Wait { until }
    }

    /// A fetch ended at `now`: `Ok(changed)` when the files were written (`changed`: some
    /// file's bytes moved), `Err(failure)` when nothing was written.
    pub fn on_poll<F>(&mut self, result: Result<bool, F>, now: Now) -> Polled<F> {
        match result {
            Ok(changed) => {
                let recovered_after = Some(self.backoff.failures()).filter(|&f| f > 0);
                self.backoff.reset();
                if changed && (!self.first || self.existed) && self.timing.reloads {
                    let at = schedule::reload_at(now.at, self.last_reload, self.timing.debounce);
                    self.reload_at = Some(self.reload_at.map_or(at, |t| t.min(at)));
                }
                let rotated = changed && !self.first;
                self.first = false;
                self.existed = true;
                self.poll_at = Some(now.at + self.regular_wait(now.unix));
                Polled::Succeeded {
                    rotated,
                    recovered_after,
                }
            }
            Err(failure) => {
                let retry_in = self.backoff.next_delay((self.random)());
                self.poll_at = Some(now.at + retry_in);
                Polled::Failed {
                    failure,
                    failures: self.backoff.failures(),
                    retry_in,
                }
            }
        }
    }

    /// The hub client's news. For a change, returns how long until the fetch it asks for.
    pub fn on_hub(&mut self, event: HubEvent, now: Now) -> Option<Duration> {
        match event {
            HubEvent::Covering(c) => {
                self.hub_covering = c;
                None
            }
            HubEvent::Changed { spread, .. } => {
                let delay = spread.mul_f64((self.random)());
                let at = now.at + delay;
                self.hub_fetch_at = Some(self.hub_fetch_at.map_or(at, |t| t.min(at)));
                Some(delay)
            }
        }
    }

    /// The spec file changed and was re-read.
    pub fn on_spec(&mut self, change: SpecChange) {
        match change {
            SpecChange::Applied => self.poll_at = None,
            SpecChange::Rejected | SpecChange::Unchanged => {}
        }
    }

    /// A stop signal (SIGTERM, SIGINT): the next action is [`Action::Stop`]. The caller
    /// drops a fetch in progress at once (see the module's note on writes).
    pub fn on_signal(&mut self, signal: Stop) {
        self.stop.get_or_insert(signal);
    }

    /// SIGHUP: re-read the spec and fetch now. During a fetch it is kept for after it, so
    /// the spec is re-read and fetched again.
    pub fn on_hangup(&mut self) {
        self.hangup = true;
    }

    /// The reload actions started by [`Action::Reload`] finished (or failed: they are not
    /// retried). A reload that came due meanwhile may start now.
    pub fn on_reload_done(&mut self) {
        self.reloading = false;
    }

    fn fetch(&mut self, scope: Scope) -> Action {
        self.poll_at = None;
        self.hub_fetch_at = None;
        Action::Fetch(scope)
    }

    /// The wait until the next regular poll: this instance's slot, with jitter.
    fn regular_wait(&mut self, unix: Duration) -> Duration {
        schedule::next_poll(
            unix,
            self.timing.interval,
            self.timing.slot,
            self.timing.jitter,
            (self.random)(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const S: Duration = Duration::from_secs(1);

    /// A 60 s interval, slot 0.25 (15 s into each minute), jitter 0.1 (±6 s), backoff from
    /// 1 s up to 30 s, reloads at least 5 s apart.
    fn timing() -> Timing {
        Timing {
            interval: 60 * S,
            slot: 0.25,
            jitter: 0.1,
            max_backoff: 30 * S,
            debounce: 5 * S,
            reloads: true,
        }
    }

    /// A machine on a clock the test moves: `t(s)` is `s` seconds after the start, which is
    /// 1,000 s after the Unix epoch. Every random number is `dice` (the test sets it).
    struct Sim {
        m: Machine,
        start: Instant,
        dice: Arc<Mutex<f64>>,
    }

    impl Sim {
        fn new(timing: Timing, existed: bool, random: f64) -> Sim {
            let dice = Arc::new(Mutex::new(random));
            let d = dice.clone();
            Sim {
                m: Machine::new(timing, existed, move || *d.lock().unwrap()),
                start: Instant::now(),
                dice,
            }
        }

        fn roll(&self, random: f64) {
            *self.dice.lock().unwrap() = random;
        }

        fn t(&self, s: f64) -> Now {
            let d = Duration::from_secs_f64(s);
            Now {
                at: self.start + d,
                unix: 1000 * S + d,
            }
        }

        fn at(&self, s: f64) -> Instant {
            self.t(s).at
        }

        fn next(&mut self, s: f64) -> Action {
            self.m.next(self.t(s))
        }

        fn wait_until(&self, s: f64) -> Action {
            Action::Wait { until: self.at(s) }
        }

        /// Checks that the machine fetches at `s`, and gives it the fetch's result.
        fn poll(&mut self, s: f64, result: Result<bool, &'static str>) -> Polled<&'static str> {
            let next = self.next(s);
            assert!(
                matches!(next, Action::Fetch(_)),
                "a fetch at {s} s, not {next:?}"
            );
            self.m.on_poll(result, self.t(s))
        }

        fn hub(&mut self, s: f64, event: HubEvent) -> Option<Duration> {
            self.m.on_hub(event, self.t(s))
        }
    }

    const FAILED: Result<bool, &str> = Err("throttled");
    const CHANGED: Result<bool, &str> = Ok(true);
    const UNCHANGED: Result<bool, &str> = Ok(false);

    fn changed_at_hub(spread: Duration) -> HubEvent {
        HubEvent::Changed {
            keys: vec!["name:/a".to_owned()],
            spread,
        }
    }

    #[test]
    fn polls_at_once_then_at_its_slot_of_each_interval() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.poll(0.0, CHANGED);
        // At 1,000 s the next grid point more than 6 s ahead is 1,035 s (15 s into minute 17).
        assert_eq!(w.next(0.0), w.wait_until(35.0));
        assert_eq!(w.next(20.0), w.wait_until(35.0));
        assert_eq!(w.next(35.0), Action::Fetch(Scope::All));
        w.m.on_poll(UNCHANGED, w.t(35.5));
        assert_eq!(w.next(35.5), w.wait_until(95.0));
    }

    #[test]
    fn jitter_moves_the_poll_within_its_window_around_the_slot() {
        for (random, at) in [(0.0, 29.0), (0.5, 35.0), (1.0, 41.0)] {
            let mut w = Sim::new(timing(), false, random);
            w.poll(0.0, UNCHANGED);
            assert_eq!(w.next(0.0), w.wait_until(at), "{random}");
        }
    }

    #[test]
    fn failures_back_off_and_a_success_resets_the_backoff() {
        let mut w = Sim::new(timing(), false, 1.0);
        let mut now = 0.0;
        for (n, want) in [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                w.poll(now, FAILED),
                Polled::Failed {
                    failure: "throttled",
                    failures: n as u32 + 1,
                    retry_in: Duration::from_secs_f64(want),
                }
            );
            assert_eq!(w.next(now), w.wait_until(now + want));
            now += want;
        }
        assert_eq!(
            w.poll(now, UNCHANGED),
            Polled::Succeeded {
                rotated: false,
                recovered_after: Some(7),
            }
        );
        // Back on the slot grid: 91 s after the start is 1,091 s; the next slot point more
        // than 6 s ahead is 1,155 s, +6 s jitter.
        assert_eq!(w.next(now), w.wait_until(161.0));
        w.poll(161.0, FAILED);
        assert_eq!(w.next(161.0), w.wait_until(162.0));
    }

    #[test]
    fn the_backoff_never_waits_less_than_its_floor() {
        let mut w = Sim::new(timing(), false, 0.0);
        w.poll(0.0, FAILED);
        let floor = w.at(0.0) + Duration::from_millis(100);
        assert_eq!(w.next(0.0), Action::Wait { until: floor });
    }

    #[test]
    fn a_hub_change_fetches_at_a_random_point_of_the_hubs_spread() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.poll(0.0, UNCHANGED);
        assert_eq!(w.hub(1.0, changed_at_hub(10 * S)), Some(5 * S));
        assert_eq!(w.next(1.0), w.wait_until(6.0));
        // A later change does not put the fetch off; an earlier point brings it forward.
        w.roll(0.9);
        assert_eq!(w.hub(2.0, changed_at_hub(10 * S)), Some(9 * S));
        assert_eq!(w.next(2.0), w.wait_until(6.0));
        w.roll(0.1);
        w.hub(3.0, changed_at_hub(10 * S));
        assert_eq!(w.next(3.0), w.wait_until(4.0));
        w.roll(0.5);
        w.poll(4.0, UNCHANGED);
        // The hub's fetch is done: the wait is for the slot again (1,004 s → 1,035 s).
        assert_eq!(w.next(4.0), w.wait_until(35.0));
    }

    #[test]
    fn a_hub_change_reads_only_the_changed_keys_unless_everything_is_due() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.hub(0.0, HubEvent::Covering(true));
        // The first fetch reads everything, even after a hub change.
        w.hub(0.0, changed_at_hub(Duration::ZERO));
        assert_eq!(w.next(0.0), Action::Fetch(Scope::All));
        w.m.on_poll(UNCHANGED, w.t(0.0));
        w.hub(1.0, changed_at_hub(2 * S));
        assert_eq!(w.next(2.0), Action::Fetch(Scope::HubChanged));
        // After a failed fetch, everything again.
        w.m.on_poll(FAILED, w.t(2.0));
        w.hub(2.0, changed_at_hub(Duration::ZERO));
        assert_eq!(w.next(2.0), Action::Fetch(Scope::All));
        w.m.on_poll(UNCHANGED, w.t(2.0));
        // Not covered and the own slot due at the hub's moment: everything.
        w.hub(3.0, HubEvent::Covering(false));
        w.hub(34.0, changed_at_hub(2 * S));
        assert_eq!(w.next(36.0), Action::Fetch(Scope::All));
    }

    #[test]
    fn own_polls_are_skipped_while_the_hub_covers_and_resume_when_it_goes_away() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.poll(0.0, UNCHANGED);
        assert_eq!(w.hub(1.0, HubEvent::Covering(true)), None);
        // The slot comes: no fetch, the next slot is kept.
        assert_eq!(w.next(35.0), w.wait_until(95.0));
        assert_eq!(w.next(95.0), w.wait_until(155.0));
        // The hub goes away: the next slot is polled again.
        w.hub(100.0, HubEvent::Covering(false));
        assert_eq!(w.next(100.0), w.wait_until(155.0));
        assert_eq!(w.next(155.0), Action::Fetch(Scope::All));
    }

    #[test]
    fn after_a_failure_the_retry_runs_even_while_the_hub_covers() {
        let mut w = Sim::new(timing(), false, 1.0);
        w.hub(0.0, HubEvent::Covering(true));
        w.poll(0.0, FAILED);
        assert_eq!(w.next(0.0), w.wait_until(1.0));
        assert_eq!(w.next(1.0), Action::Fetch(Scope::All));
    }

    #[test]
    fn a_new_spec_fetches_at_once_and_a_rejected_one_changes_nothing() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.poll(0.0, UNCHANGED);
        w.m.on_spec(SpecChange::Rejected);
        assert_eq!(w.next(10.0), w.wait_until(35.0));
        w.m.on_spec(SpecChange::Applied);
        w.poll(10.0, UNCHANGED);
        assert_eq!(w.next(10.0), w.wait_until(35.0));
    }

    #[test]
    fn a_new_spec_is_fetched_even_while_the_hub_covers() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.hub(0.0, HubEvent::Covering(true));
        w.poll(0.0, UNCHANGED);
        w.m.on_spec(SpecChange::Applied);
        assert_eq!(w.next(10.0), Action::Fetch(Scope::All));
    }

    #[test]
    fn sigterm_during_a_fetch_stops_at_once_without_waiting_for_it() {
        let mut w = Sim::new(timing(), true, 0.5);
        w.poll(0.0, UNCHANGED);
        assert_eq!(w.next(35.0), Action::Fetch(Scope::All));
        // The fetch hangs; the first signal wins, and the loop stops without its result.
        w.m.on_signal(Stop::Term);
        w.m.on_signal(Stop::Interrupt);
        assert_eq!(w.next(35.1), Action::Stop(Stop::Term));
        assert_eq!(Stop::Term.name(), "SIGTERM");
    }

    #[test]
    fn a_fetch_that_wrote_before_the_signal_counts_and_starts_no_reload() {
        let mut w = Sim::new(timing(), true, 0.5);
        w.poll(0.0, UNCHANGED);
        assert_eq!(w.next(35.0), Action::Fetch(Scope::All));
        // The signal was read after the write (writes are synchronous): the write counts,
        // the reload it would start does not run.
        w.m.on_signal(Stop::Term);
        assert!(matches!(
            w.m.on_poll(CHANGED, w.t(36.0)),
            Polled::Succeeded { rotated: true, .. }
        ));
        assert_eq!(w.next(36.0), Action::Stop(Stop::Term));
    }

    #[test]
    fn sigterm_while_a_reload_runs_stops_at_once() {
        let mut w = Sim::new(timing(), true, 0.5);
        w.poll(0.0, CHANGED);
        assert_eq!(w.next(0.0), Action::Reload);
        // The reload hangs in the background; the loop waits for its slot meanwhile.
        assert_eq!(w.next(0.1), w.wait_until(35.0));
        w.m.on_signal(Stop::Term);
        assert_eq!(w.next(0.2), Action::Stop(Stop::Term));
    }

    #[test]
    fn polling_goes_on_while_a_reload_hangs() {
        let mut w = Sim::new(timing(), true, 0.5);
        w.poll(0.0, CHANGED);
        assert_eq!(w.next(0.0), Action::Reload);
        // It never finishes, yet every slot is polled and the backoff retries on time.
        w.poll(35.0, UNCHANGED);
        w.poll(95.0, FAILED);
        assert_eq!(w.next(95.0), w.wait_until(95.5));
        w.poll(95.5, CHANGED);
        // A change while it runs: no second reload at once, and no busy wait for it.
        assert_eq!(w.next(95.5), w.wait_until(155.0));
        assert_eq!(w.next(120.0), w.wait_until(155.0));
    }

    #[test]
    fn changes_during_a_reload_coalesce_into_one_more_run_after_it_still_debounced() {
        let mut w = Sim::new(timing(), true, 0.5);
        w.poll(0.0, CHANGED);
        assert_eq!(w.next(0.0), Action::Reload);
        for at in [1.0, 2.0, 3.0] {
            w.m.on_poll(CHANGED, w.t(at));
            assert_eq!(w.next(at), w.wait_until(35.0), "no reload while one runs");
        }
        // It ends within the debounce: one more run, 5 s after the first started.
        w.m.on_reload_done();
        assert_eq!(w.next(4.0), w.wait_until(5.0));
        assert_eq!(w.next(5.0), Action::Reload);
        assert_eq!(w.next(5.0), w.wait_until(35.0));
        // It ends long after the debounce with a change pending: the next run starts at once.
        w.m.on_poll(CHANGED, w.t(6.0));
        assert_eq!(w.next(20.0), w.wait_until(35.0));
        w.m.on_reload_done();
        assert_eq!(w.next(20.0), Action::Reload);
        w.m.on_reload_done();
        assert_eq!(w.next(20.0), w.wait_until(35.0));
    }

    #[test]
    fn sighup_rereads_the_spec_and_fetches_at_once() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.poll(0.0, UNCHANGED);
        assert_eq!(w.next(10.0), w.wait_until(35.0));
        w.m.on_hangup();
        assert_eq!(w.next(10.0), Action::Hangup);
        // A rejected (or unchanged) spec still polls now.
        w.m.on_spec(SpecChange::Rejected);
        w.poll(10.0, UNCHANGED);
        assert_eq!(w.next(10.0), w.wait_until(35.0));
    }

    #[test]
    fn sighup_during_a_fetch_rereads_and_fetches_again_after_it() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.hub(0.0, HubEvent::Covering(true));
        w.poll(0.0, UNCHANGED);
        assert_eq!(w.next(35.0), w.wait_until(95.0));
        w.m.on_spec(SpecChange::Applied);
        assert_eq!(w.next(40.0), Action::Fetch(Scope::All));
        w.m.on_hangup();
        w.m.on_hangup();
        w.m.on_poll(UNCHANGED, w.t(41.0));
        // Two signals during the fetch, one re-read; a fetch even while the hub covers.
        assert_eq!(w.next(41.0), Action::Hangup);
        w.m.on_spec(SpecChange::Unchanged);
        w.poll(41.0, UNCHANGED);
        assert_eq!(w.next(41.0), w.wait_until(95.0));
    }

    #[test]
    fn a_stop_signal_wins_over_sighup() {
        let mut w = Sim::new(timing(), false, 0.5);
        w.poll(0.0, UNCHANGED);
        w.m.on_hangup();
        w.m.on_signal(Stop::Interrupt);
        assert_eq!(w.next(1.0), Action::Stop(Stop::Interrupt));
    }

    #[test]
    fn sigint_during_the_backoff_stops_at_once() {
        let mut w = Sim::new(timing(), false, 1.0);
        w.poll(0.0, FAILED);
        assert_eq!(w.next(0.0), w.wait_until(1.0));
        w.m.on_signal(Stop::Interrupt);
        assert_eq!(w.next(0.5), Action::Stop(Stop::Interrupt));
        assert_eq!(Stop::Interrupt.name(), "SIGINT");
    }

    #[test]
    fn reloads_only_after_a_write_that_changed_files() {
        let mut w = Sim::new(timing(), false, 0.5);
        // The first write creates the files: the app starts with them, no reload.
        assert_eq!(
            w.poll(0.0, CHANGED),
            Polled::Succeeded {
                rotated: false,
                recovered_after: None
            }
        );
        assert_eq!(w.next(0.0), w.wait_until(35.0));
        // Unchanged: no reload.
        w.poll(35.0, UNCHANGED);
        assert_eq!(w.next(35.0), w.wait_until(95.0));
        // Changed: reload at once.
        assert!(matches!(
            w.poll(95.0, CHANGED),
            Polled::Succeeded { rotated: true, .. }
        ));
        assert_eq!(w.next(95.0), Action::Reload);
        assert_eq!(w.next(95.0), w.wait_until(155.0));
        w.m.on_reload_done();
        // A failed poll never reloads (it retries after half the 1 s backoff here).
        w.poll(155.0, FAILED);
        assert_eq!(w.next(155.0), w.wait_until(155.5));
    }

    #[test]
    fn reloads_wait_out_the_debounce_and_changes_meanwhile_share_one() {
        let mut w = Sim::new(timing(), true, 0.5);
        w.poll(0.0, CHANGED);
        assert_eq!(w.next(0.0), Action::Reload, "the files were there before");
        w.m.on_reload_done();
        for at in [1.0, 2.0] {
            w.hub(at - 1.0, changed_at_hub(2 * S));
            w.poll(at, CHANGED);
            assert_eq!(w.next(at), w.wait_until(5.0));
        }
        assert_eq!(w.next(5.0), Action::Reload);
        assert_eq!(w.next(5.0), w.wait_until(35.0));
    }

    #[test]
    fn without_reload_actions_nothing_is_reloaded() {
        let t = Timing {
            reloads: false,
            ..timing()
        };
        let mut w = Sim::new(t, true, 0.5);
        w.poll(0.0, CHANGED);
        assert_eq!(w.next(0.0), w.wait_until(35.0));
    }
}
