//! The hub's metrics (prometheus-client), all prefixed `ssm_injector_`.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `ssm_injector_hub_watched_keys` | gauge | |
//! | `ssm_injector_hub_waiting_clients` | gauge | |
//! | `ssm_injector_hub_api_calls_total` | counter | `operation`, `outcome` (`ok` or a cause label) |
//! | `ssm_injector_hub_budget_wait_seconds_total` | counter | |
//! | `ssm_injector_hub_coalesced_calls_total` | counter | `operation` |
//! | `ssm_injector_hub_polls_total` | counter | `kind` (`interval`, `refresh`), `outcome` (`ok`, `error`) |
//! | `ssm_injector_hub_changes_total` | counter | |
//! | `ssm_injector_hub_answers_total` | counter | `reason` (`changed`, `timeout`, `first`) |
//! | `ssm_injector_hub_refusals_total` | counter | `status` (`400`, `401`, `403`, `429`, `503`) |
//! | `ssm_injector_hub_token_reviews_total` | counter | `outcome` (`authenticated`, `unauthenticated`, `unavailable`) |
//! | `ssm_injector_hub_cert_reloads_total` | counter | `outcome` (`ok`, `error`: the old certificate is kept); with `--tls-secret`, serving certificates issued in memory ([`CertReloads`]) |
//! | `ssm_injector_hub_limit_refusals_total` | counter | `limit` (`body_size`, `body_time`, `body_broken`, `connections`): refused by the server's limits ([`LimitRefusals`]) |
//! | `ssm_injector_hub_events_total` | counter | `outcome` (`matched`, `unwatched`, `ignored`, `malformed`) |
//! | `ssm_injector_hub_event_keys_total` | counter | |
//! | `ssm_injector_hub_event_delay_seconds` | histogram | |
//! | `ssm_injector_hub_queue_calls_total` | counter | `operation` (`ReceiveMessage`, `DeleteMessageBatch`), `outcome` |
//!
//! Labels are fixed words: never a parameter name, path or token.

use crate::https::{CertReloads, LimitRefusals};
use crate::metrics::{encode_registry, outcome};
use crate::source::{CallObserver, Cause, Operation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    outcome: &'static str,
}

/// Seconds from SQS receiving an event to the hub queuing the re-read it leads to.
const EVENT_DELAY_BUCKETS: [f64; 11] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// What became of one push event (an SQS message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// It named something a client watches: those keys are read at once.
    Matched,
    /// It named only things no client watches: no AWS call.
    Unwatched,
    /// Well formed, but it changes no value (another event type, a failed call).
    Ignored,
    /// Not JSON, or an accepted event without its name.
    Malformed,
}

impl EventOutcome {
    pub const ALL: [EventOutcome; 4] = [
        EventOutcome::Matched,
        EventOutcome::Unwatched,
        EventOutcome::Ignored,
        EventOutcome::Malformed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            EventOutcome::Matched => "matched",
            EventOutcome::Unwatched => "unwatched",
            EventOutcome::Ignored => "ignored",
            EventOutcome::Malformed => "malformed",
        }
    }
}

/// What became of one TokenReview the hub sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// A service account's token for the hub's audience.
    Authenticated,
    /// Any other token (401 to the client).
    Unauthenticated,
    /// No verdict: the API server was unreachable, failed or refused the hub (503).
    Unavailable,
}

impl ReviewOutcome {
    pub const ALL: [ReviewOutcome; 3] = [
        ReviewOutcome::Authenticated,
        ReviewOutcome::Unauthenticated,
        ReviewOutcome::Unavailable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ReviewOutcome::Authenticated => "authenticated",
            ReviewOutcome::Unauthenticated => "unauthenticated",
            ReviewOutcome::Unavailable => "unavailable",
        }
    }
}

/// Why an answer was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A token differs from the client's.
    Changed,
    /// Nothing changed within the wait.
    Timeout,
    /// The client lacked tokens (its first request).
    First,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Changed => "changed",
            Reason::Timeout => "timeout",
            Reason::First => "first",
        }
    }
}

/// `Send + Sync`; share as `Arc<HubMetrics>`.
#[derive(Debug)]
pub struct HubMetrics {
    registry: Registry,
    watched: Gauge,
    waiting: Gauge,
    calls: Family<CallLabels, Counter>,
    budget_wait: Counter<f64, AtomicU64>,
    coalesced: Family<OperationLabels, Counter>,
    polls: Family<PollLabels, Counter>,
    changes: Counter,
    answers: Family<ReasonLabels, Counter>,
    refusals: Family<StatusLabels, Counter>,
    token_reviews: Family<ReviewLabels, Counter>,
    cert_reloads: CertReloads,
    limit_refusals: LimitRefusals,
    events: Family<EventLabels, Counter>,
    event_keys: Counter,
    event_delay: Histogram,
    queue_calls: Family<CallLabels, Counter>,
}

impl Default for HubMetrics {
    fn default() -> Self {
        HubMetrics::new()
    }
}

impl HubMetrics {
    pub fn new() -> HubMetrics {
        let mut m = HubMetrics {
            registry: Registry::with_prefix(crate::metrics::PREFIX),
            watched: Gauge::default(),
            waiting: Gauge::default(),
            calls: Family::default(),
            budget_wait: Counter::default(),
            coalesced: Family::default(),
            polls: Family::default(),
            changes: Counter::default(),
            answers: Family::default(),
            refusals: Family::default(),
            token_reviews: Family::default(),
            cert_reloads: CertReloads::default(),
            limit_refusals: LimitRefusals::default(),
            events: Family::default(),
            event_keys: Counter::default(),
            event_delay: Histogram::new(EVENT_DELAY_BUCKETS),
            queue_calls: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "hub_watched_keys",
            "Keys (names and paths) the hub tracks",
            m.watched.clone(),
        );
        r.register(
            "hub_waiting_clients",
            "Watch requests held open now",
            m.waiting.clone(),
        );
        r.register(
            "hub_api_calls",
            "AWS calls (after the SDK's retries) by operation and outcome (ok or the cause)",
            m.calls.clone(),
        );
        r.register(
            "hub_budget_wait_seconds",
            "Time AWS calls waited for the call budget (--max-tps, --burst)",
            m.budget_wait.clone(),
        );
        r.register(
            "hub_coalesced_calls",
            "AWS calls not made because an identical call in flight answered them",
            m.coalesced.clone(),
        );
        r.register(
            "hub_polls",
            "Reads of the tracked keys, by kind (interval, refresh) and outcome (error: some key could not be read)",
            m.polls.clone(),
        );
        r.register(
            "hub_changes",
            "Token changes seen (a key's version moved)",
            m.changes.clone(),
        );
        r.register(
            "hub_answers",
            "Watch answers by reason (changed, timeout, first)",
            m.answers.clone(),
        );
        r.register(
            "hub_refusals",
            "Watch requests refused, by HTTP status",
            m.refusals.clone(),
        );
        r.register(
            "hub_token_reviews",
            "TokenReviews sent to the Kubernetes API (--auth kubernetes; cached answers are not counted), by outcome",
            m.token_reviews.clone(),
        );
        m.cert_reloads = CertReloads::register(r, "hub");
        m.limit_refusals = LimitRefusals::register(r, "hub");
        r.register(
            "hub_events",
            "Push events (SQS messages) by outcome: matched (watched keys re-read at once), unwatched (no AWS call), ignored, malformed",
            m.events.clone(),
        );
        r.register(
            "hub_event_keys",
            "Watched keys queued for an immediate read by push events",
            m.event_keys.clone(),
        );
        r.register(
            "hub_event_delay_seconds",
            "Time from SQS receiving a push event to the hub queuing its re-read",
            m.event_delay.clone(),
        );
        r.register(
            "hub_queue_calls",
            "SQS calls (after the SDK's retries) by operation and outcome (ok or the cause)",
            m.queue_calls.clone(),
        );
        for o in EventOutcome::ALL {
            drop(m.events.get_or_create(&EventLabels { outcome: o.label() }));
        }
        for o in ReviewOutcome::ALL {
            drop(
                m.token_reviews
                    .get_or_create(&ReviewLabels { outcome: o.label() }),
            );
        }
        for reason in [Reason::Changed, Reason::Timeout, Reason::First] {
            drop(m.answers.get_or_create(&ReasonLabels {
                reason: reason.label(),
            }));
        }
        for kind in ["interval", "refresh"] {
            for ok in [true, false] {
                drop(m.polls.get_or_create(&PollLabels {
                    kind,
                    outcome: outcome(ok),
                }));
            }
        }
        m
    }

    pub fn sizes(&self, watched: usize, waiting: u64) {
        self.watched.set(i64::try_from(watched).unwrap_or(i64::MAX));
        self.waiting.set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    pub fn poll(&self, interval: bool, ok: bool, changes: usize) {
        self.polls
            .get_or_create(&PollLabels {
                kind: if interval { "interval" } else { "refresh" },
                outcome: outcome(ok),
            })
            .inc();
        self.changes.inc_by(changes as u64);
    }

    pub fn answered(&self, reason: Reason) {
        self.answers
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }

    pub fn refused(&self, status: u16) {
        self.refusals.get_or_create(&StatusLabels { status }).inc();
    }

    /// One TokenReview answered (or failed).
    pub fn token_reviewed(&self, outcome: ReviewOutcome) {
        self.token_reviews
            .get_or_create(&ReviewLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// New serving certificates (reloaded files, or issued in memory).
    /// Requests and connections refused by the server's limits.
    pub fn limit_refusals(&self) -> &LimitRefusals {
        &self.limit_refusals
    }

    pub fn cert_reloads(&self) -> &CertReloads {
        &self.cert_reloads
    }

    /// One push event handled; `keys` watched keys queued for a read.
    pub fn event(&self, outcome: EventOutcome, keys: usize) {
        self.events
            .get_or_create(&EventLabels {
                outcome: outcome.label(),
            })
            .inc();
        self.event_keys.inc_by(keys as u64);
    }

    /// How long after SQS received it an event was handled.
    pub fn event_delay(&self, delay: Duration) {
        self.event_delay.observe(delay.as_secs_f64());
    }

    pub fn encode(&self) -> String {
        encode_registry(&self.registry)
    }
}

/// The version reads count in `hub_api_calls`, the push queue's SQS calls in
/// `hub_queue_calls`.
impl CallObserver for HubMetrics {
    fn observe(&self, op: Operation, failure: Option<&Cause>) {
        let family = if op.is_queue() {
            &self.queue_calls
        } else {
            &self.calls
        };
        family
            .get_or_create(&CallLabels {
                operation: op.as_str(),
                outcome: failure.map_or("ok", Cause::label),
            })
            .inc();
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

    #[test]
    fn the_exposition_has_the_documented_series() {
        let m = HubMetrics::new();
        m.observe(Operation::DescribeParameters, None);
        m.observe(Operation::DescribeSecret, Some(&Cause::NotFound));
        m.answered(Reason::First);
        m.sizes(20, 1000);
        m.poll(true, true, 2);
        m.event(EventOutcome::Matched, 3);
        m.observe(Operation::ReceiveMessage, Some(&Cause::NotFound));
        m.token_reviewed(ReviewOutcome::Unauthenticated);
        let text = m.encode();
        for series in [
            "ssm_injector_hub_api_calls_total{operation=\"DescribeParameters\",outcome=\"ok\"} 1",
            "ssm_injector_hub_api_calls_total{operation=\"DescribeSecret\",outcome=\"not_found\"} 1",
            "ssm_injector_hub_answers_total{reason=\"first\"} 1",
            "ssm_injector_hub_answers_total{reason=\"timeout\"} 0",
            "ssm_injector_hub_watched_keys 20",
            "ssm_injector_hub_waiting_clients 1000",
            "ssm_injector_hub_polls_total{kind=\"interval\",outcome=\"ok\"} 1",
            "ssm_injector_hub_changes_total 2",
            "ssm_injector_hub_events_total{outcome=\"matched\"} 1",
            "ssm_injector_hub_events_total{outcome=\"malformed\"} 0",
            "ssm_injector_hub_event_keys_total 3",
            "ssm_injector_hub_queue_calls_total{operation=\"ReceiveMessage\",outcome=\"not_found\"} 1",
            "ssm_injector_hub_token_reviews_total{outcome=\"unauthenticated\"} 1",
            "ssm_injector_hub_token_reviews_total{outcome=\"authenticated\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
        assert!(
            !text.contains("ssm_injector_hub_api_calls_total{operation=\"ReceiveMessage\""),
            "SQS calls count apart:\n{text}"
        );
    }
}
