//! Every metric of the sidecar (`render --watch`), with its name and label set, in one place.
//!
//! All names carry the prefix `ssm_injector_`; OpenMetrics appends `_total` to counters.
//! Labels hold only fixed words (operation names, outcome and cause labels, reload action
//! kinds): never a parameter name and never a value.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `ssm_injector_api_calls_total` | counter | `operation`, `outcome` (`ok` or a cause label) |
//! | `ssm_injector_throttles_total` | counter | |
//! | `ssm_injector_budget_wait_seconds_total` | counter | |
//! | `ssm_injector_coalesced_calls_total` | counter | `operation` |
//! | `ssm_injector_hub_answers_total` | counter | `outcome` (`changed`, `unchanged`, `error`) |
//! | `ssm_injector_hub_covering` | gauge | |
//! | `ssm_injector_polls_total` | counter | `outcome` (`ok`, `error`) |
//! | `ssm_injector_poll_failures_total` | counter | `cause` |
//! | `ssm_injector_rotations_total` | counter | |
//! | `ssm_injector_last_success_timestamp_seconds` | gauge | |
//! | `ssm_injector_consecutive_failures` | gauge | |
//! | `ssm_injector_up_to_date` | gauge | |
//! | `ssm_injector_held_values_locked` | gauge | |
//! | `ssm_injector_render_duration_seconds` | histogram | |
//! | `ssm_injector_reload_actions_total` | counter | `action` (`signal`, `command`, `http`; `restart`: `exec --watch`), `outcome` |
//! | `ssm_injector_spec_reloads_total` | counter | `outcome` (`ok`, `error`, `unchanged`: a file event with the same spec and templates) |

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::source::{CallObserver, Cause, Operation};

/// The prefix of every metric name.
pub const PREFIX: &str = "ssm_injector";

/// Upper bounds (seconds) of the render duration buckets: 5 ms up to 30 s.
const RENDER_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `ok` or `error`.
pub fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// Labels of `api_calls`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCallLabels {
    /// The SSM operation, as `Operation::as_str`.
    operation: &'static str,
    /// `ok`, or the failure's `Cause::label`.
    outcome: &'static str,
}

/// Labels of `coalesced_calls`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    /// The SSM operation, as `Operation::as_str`.
    operation: &'static str,
}

/// Labels of `reload_actions`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `signal`, `command` or `http`.
    action: &'static str,
    /// `ok` or `error`.
    outcome: &'static str,
}

/// Labels of the counters split only by outcome (`polls`, `spec_reloads`, the
/// webhook's `cert_reloads`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels of `poll_failures`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    /// The cause label passed to `poll_failed`.
    cause: &'static str,
}

/// The sidecar's metrics. `Send + Sync`; share it as `Arc<Metrics>` between the watch loop,
/// the source (as its [`CallObserver`]) and the admin server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    api_calls: Family<ApiCallLabels, Counter>,
    throttles: Counter,
    budget_wait: Counter<f64, AtomicU64>,
    coalesced: Family<OperationLabels, Counter>,
    hub_answers: Family<OutcomeLabels, Counter>,
    hub_covering: Gauge,
    polls: Family<OutcomeLabels, Counter>,
    poll_failures: Family<CauseLabels, Counter>,
    rotations: Counter,
    last_success: Gauge<f64, AtomicU64>,
    consecutive_failures: Gauge,
    up_to_date: Gauge,
    held_locked: Gauge,
    render_duration: Histogram,
    reload_actions: Family<ReloadLabels, Counter>,
    spec_reloads: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Creates and registers every metric under the prefix `ssm_injector`.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix(PREFIX),
            api_calls: Family::default(),
            throttles: Counter::default(),
            budget_wait: Counter::default(),
            coalesced: Family::default(),
            hub_answers: Family::default(),
            hub_covering: Gauge::default(),
            polls: Family::default(),
            poll_failures: Family::default(),
            rotations: Counter::default(),
            last_success: Gauge::default(),
            consecutive_failures: Gauge::default(),
            up_to_date: Gauge::default(),
            held_locked: Gauge::default(),
            render_duration: Histogram::new(RENDER_BUCKETS),
            reload_actions: Family::default(),
            spec_reloads: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "api_calls",
            "SSM API calls (after the SDK's retries) by operation and outcome (ok or the cause)",
            m.api_calls.clone(),
        );
        r.register(
            "throttles",
            "SSM API calls that failed because AWS throttled them",
            m.throttles.clone(),
        );
        r.register(
            "budget_wait_seconds",
            "Time AWS calls waited for this process's call budget (--max-tps, --burst)",
            m.budget_wait.clone(),
        );
        r.register(
            "coalesced_calls",
            "SSM calls not made because an identical call in flight answered them",
            m.coalesced.clone(),
        );
        r.register(
            "hub_answers",
            "Long-polls of the version hub (--hub), by outcome (changed, unchanged, error)",
            m.hub_answers.clone(),
        );
        r.register(
            "hub_covering",
            "1 while the hub tracks every watched key (own polls are skipped), else 0",
            m.hub_covering.clone(),
        );
        r.register(
            "polls",
            "Polls of the parameters, by outcome (ok or error)",
            m.polls.clone(),
        );
        r.register(
            "poll_failures",
            "Failed polls, by cause",
            m.poll_failures.clone(),
        );
        r.register(
            "rotations",
            "Polls that changed at least one output file",
            m.rotations.clone(),
        );
        r.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful poll",
            m.last_success.clone(),
        );
        r.register(
            "consecutive_failures",
            "Polls failed in a row since the last successful one",
            m.consecutive_failures.clone(),
        );
        r.register(
            "up_to_date",
            "1 when the last poll succeeded, 0 when it failed (the files keep the last good content)",
            m.up_to_date.clone(),
        );
        r.register(
            "held_values_locked",
            "1 when the values held between polls are locked in memory (mlock: never swapped), 0 when locking failed (RLIMIT_MEMLOCK) or nothing is held",
            m.held_locked.clone(),
        );
        r.register(
            "render_duration_seconds",
            "Duration of successful polls: fetch, render and write",
            m.render_duration.clone(),
        );
        r.register(
            "reload_actions",
            "Reload actions run after a change, by action (signal, command, http; restart for exec --watch) and outcome",
            m.reload_actions.clone(),
        );
        r.register(
            "spec_reloads",
            "Re-reads of the spec file after it changed, by outcome (error keeps the old spec)",
            m.spec_reloads.clone(),
        );
        // Known series start at 0, so rate() and alerts see them before the first event.
        // (Families with no series yet are left out of the exposition.)
        for ok in [true, false] {
            let labels = OutcomeLabels {
                outcome: outcome(ok),
            };
            drop(m.polls.get_or_create(&labels));
            drop(m.spec_reloads.get_or_create(&labels));
        }
        m
    }

    /// Records a successful poll that took `duration`; `changed` when it rewrote at least
    /// one file (a rotation). Resets the consecutive failures and sets `up_to_date` to 1.
    pub fn poll_succeeded(&self, duration: Duration, changed: bool, now_unix_secs: f64) {
        self.polls
            .get_or_create(&OutcomeLabels { outcome: "ok" })
            .inc();
        if changed {
            self.rotations.inc();
        }
        self.render_duration.observe(duration.as_secs_f64());
        self.last_success.set(now_unix_secs);
        self.consecutive_failures.set(0);
        self.up_to_date.set(1);
    }

    /// Whether the values held between polls are in locked memory.
    pub fn held_locked(&self, locked: bool) {
        self.held_locked.set(i64::from(locked));
    }

    /// Counts one answer (or failure) of the version hub.
    pub fn hub_answer(&self, outcome: &'static str) {
        self.hub_answers
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Whether the hub currently tracks every watched key.
    pub fn hub_up(&self, covering: bool) {
        self.hub_covering.set(i64::from(covering));
    }

    /// Records a failed poll with its cause label (`Cause::label`, or a word of the caller's
    /// such as `write`). Adds one consecutive failure and sets `up_to_date` to 0.
    pub fn poll_failed(&self, cause_label: &'static str) {
        self.polls
            .get_or_create(&OutcomeLabels { outcome: "error" })
            .inc();
        self.poll_failures
            .get_or_create(&CauseLabels { cause: cause_label })
            .inc();
        self.consecutive_failures.inc();
        self.up_to_date.set(0);
    }

    /// Records one reload action: `action` is `signal`, `command` or `http`.
    pub fn reload(&self, action: &'static str, ok: bool) {
        self.reload_actions
            .get_or_create(&ReloadLabels {
                action,
                outcome: outcome(ok),
            })
            .inc();
    }

    /// Records a re-read of the spec file; `ok == false` means the old spec was kept.
    pub fn spec_reloaded(&self, ok: bool) {
        self.spec_reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome(ok),
            })
            .inc();
    }

    /// The spec file had an event but the spec and its templates are the same.
    pub fn spec_unchanged(&self) {
        self.spec_reloads
            .get_or_create(&OutcomeLabels {
                outcome: "unchanged",
            })
            .inc();
    }

    /// The OpenMetrics text exposition of every metric, ending with `# EOF\n`.
    pub fn encode(&self) -> String {
        encode_registry(&self.registry)
    }
}

/// The OpenMetrics text of a registry, ending with `# EOF\n`. Writing to a String cannot
/// fail; if it did, the answer is a valid empty exposition rather than half a one.
pub fn encode_registry(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl CallObserver for Metrics {
    /// Counts one finished API call by operation and outcome; throttling also counts in
    /// `throttles_total`.
    fn observe(&self, op: Operation, failure: Option<&Cause>) {
        let outcome = failure.map_or("ok", Cause::label);
        self.api_calls
            .get_or_create(&ApiCallLabels {
                operation: op.as_str(),
                outcome,
            })
            .inc();
        if let Some(Cause::Throttled { .. }) = failure {
            self.throttles.inc();
        }
    }

    fn budget_waited(&self, waited: Duration) {
        self.budget_wait.inc_by(waited.as_secs_f64());
    }

    fn coalesced(&self, op: Operation) {
        self.coalesced
            .get_or_create(&OperationLabels {
                operation: op.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled() -> Cause {
        Cause::Throttled {
            code: "ThrottlingException".into(),
            attempts: 3,
        }
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[track_caller]
    fn assert_line(text: &str, line: &str) {
        assert!(has_line(text, line), "missing {line:?} in:\n{text}");
    }

    #[test]
    fn metrics_are_shareable_between_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Metrics>();
        send_sync::<std::sync::Arc<Metrics>>();
    }

    #[test]
    fn a_fresh_registry_shows_unlabelled_and_known_series_at_zero() {
        let text = Metrics::new().encode();
        for family in [
            "ssm_injector_throttles counter",
            "ssm_injector_polls counter",
            "ssm_injector_rotations counter",
            "ssm_injector_last_success_timestamp_seconds gauge",
            "ssm_injector_consecutive_failures gauge",
            "ssm_injector_up_to_date gauge",
            "ssm_injector_render_duration_seconds histogram",
            "ssm_injector_spec_reloads counter",
        ] {
            assert_line(&text, &format!("# TYPE {family}"));
        }
        assert_line(&text, "ssm_injector_throttles_total 0");
        assert_line(&text, "ssm_injector_up_to_date 0");
        assert_line(&text, r#"ssm_injector_polls_total{outcome="ok"} 0"#);
        assert_line(&text, r#"ssm_injector_polls_total{outcome="error"} 0"#);
        assert_line(
            &text,
            r#"ssm_injector_spec_reloads_total{outcome="error"} 0"#,
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn every_family_is_exposed_once_used() {
        let m = Metrics::new();
        m.observe(Operation::GetParameters, None);
        m.poll_failed("throttled");
        m.reload("command", true);
        let text = m.encode();
        for family in [
            "ssm_injector_api_calls counter",
            "ssm_injector_poll_failures counter",
            "ssm_injector_reload_actions counter",
        ] {
            assert_line(&text, &format!("# TYPE {family}"));
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn api_calls_are_counted_by_operation_and_outcome_and_throttles_apart() {
        let m = Metrics::new();
        m.observe(Operation::GetParameters, None);
        m.observe(Operation::GetParameters, None);
        m.observe(Operation::GetParametersByPath, Some(&throttled()));
        m.observe(Operation::GetParameter, Some(&Cause::NotFound));
        let text = m.encode();
        assert_line(
            &text,
            r#"ssm_injector_api_calls_total{operation="GetParameters",outcome="ok"} 2"#,
        );
        assert_line(
            &text,
            r#"ssm_injector_api_calls_total{operation="GetParametersByPath",outcome="throttled"} 1"#,
        );
        assert_line(
            &text,
            r#"ssm_injector_api_calls_total{operation="GetParameter",outcome="not_found"} 1"#,
        );
        assert_line(&text, "ssm_injector_throttles_total 1");
    }

    #[test]
    fn budget_waits_and_coalesced_calls_are_counted() {
        let m = Metrics::new();
        m.budget_waited(Duration::from_millis(250));
        m.budget_waited(Duration::from_millis(500));
        m.coalesced(Operation::GetParameters);
        let text = m.encode();
        assert_line(&text, "ssm_injector_budget_wait_seconds_total 0.75");
        assert_line(
            &text,
            r#"ssm_injector_coalesced_calls_total{operation="GetParameters"} 1"#,
        );
    }

    #[test]
    fn a_successful_poll_records_time_duration_and_rotation() {
        let m = Metrics::new();
        m.poll_succeeded(Duration::from_millis(20), true, 1_700_000_000.5);
        m.poll_succeeded(Duration::from_millis(3), false, 1_700_000_060.0);
        let text = m.encode();
        assert_line(&text, r#"ssm_injector_polls_total{outcome="ok"} 2"#);
        assert_line(&text, "ssm_injector_rotations_total 1");
        assert_line(
            &text,
            "ssm_injector_last_success_timestamp_seconds 1700000060.0",
        );
        assert_line(&text, "ssm_injector_render_duration_seconds_count 2");
        assert_line(
            &text,
            r#"ssm_injector_render_duration_seconds_bucket{le="0.005"} 1"#,
        );
        assert_line(
            &text,
            r#"ssm_injector_render_duration_seconds_bucket{le="0.025"} 2"#,
        );
        assert_line(
            &text,
            r#"ssm_injector_render_duration_seconds_bucket{le="30.0"} 2"#,
        );
    }

    #[test]
    fn consecutive_failures_grow_and_reset_on_success() {
        let m = Metrics::new();
        m.poll_failed("throttled");
        m.poll_failed("unreachable");
        let text = m.encode();
        assert_line(&text, "ssm_injector_consecutive_failures 2");
        assert_line(&text, r#"ssm_injector_polls_total{outcome="error"} 2"#);
        assert_line(
            &text,
            r#"ssm_injector_poll_failures_total{cause="throttled"} 1"#,
        );
        assert_line(
            &text,
            r#"ssm_injector_poll_failures_total{cause="unreachable"} 1"#,
        );

        m.poll_succeeded(Duration::from_millis(10), false, 1.0);
        let text = m.encode();
        assert_line(&text, "ssm_injector_consecutive_failures 0");
        assert_line(&text, r#"ssm_injector_polls_total{outcome="error"} 2"#);
    }

    #[test]
    fn up_to_date_flips_with_the_last_poll() {
        let m = Metrics::new();
        m.poll_succeeded(Duration::from_millis(10), true, 1.0);
        assert_line(&m.encode(), "ssm_injector_up_to_date 1");
        m.poll_failed("server_error");
        assert_line(&m.encode(), "ssm_injector_up_to_date 0");
        m.poll_succeeded(Duration::from_millis(10), false, 2.0);
        assert_line(&m.encode(), "ssm_injector_up_to_date 1");
    }

    #[test]
    fn reload_actions_and_spec_reloads_are_counted_by_outcome() {
        let m = Metrics::new();
        m.reload("signal", true);
        m.reload("signal", true);
        m.reload("http", false);
        m.spec_reloaded(true);
        m.spec_reloaded(false);
        let text = m.encode();
        assert_line(
            &text,
            r#"ssm_injector_reload_actions_total{action="signal",outcome="ok"} 2"#,
        );
        assert_line(
            &text,
            r#"ssm_injector_reload_actions_total{action="http",outcome="error"} 1"#,
        );
        assert_line(&text, r#"ssm_injector_spec_reloads_total{outcome="ok"} 1"#);
        assert_line(
            &text,
            r#"ssm_injector_spec_reloads_total{outcome="error"} 1"#,
        );
    }
}
