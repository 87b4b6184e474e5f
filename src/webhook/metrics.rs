//! The webhook's metrics (prometheus-client), all prefixed `ssm_injector_`.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `ssm_injector_webhook_reviews_total` | counter | `decision` (`injected`, `skipped`, `denied`, `error`) |
//! | `ssm_injector_webhook_review_duration_seconds` | histogram | |
//! | `ssm_injector_webhook_cert_reloads_total` | counter | `outcome` (`ok`, `error`: the old certificate is kept); with `--tls-secret`, serving certificates issued in memory ([`CertReloads`]) |
//! | `ssm_injector_webhook_ca_bundle_patches_total` | counter | (`--tls-secret`: the configuration's caBundle was set) |
//! | `ssm_injector_webhook_limit_refusals_total` | counter | `limit` (`body_size`, `body_time`, `body_broken`, `connections`): refused by the server's limits ([`LimitRefusals`]) |
//!
//! Labels are fixed words: never a namespace, pod or parameter name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::https::{CertReloads, LimitRefusals};
use std::time::Duration;

/// Upper bounds (seconds) of the review duration buckets: 100 µs up to 1 s.
const REVIEW_BUCKETS: [f64; 11] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
];

/// What happened to one review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed with a patch.
    Injected,
    /// Allowed unchanged (not opted in, excluded, already injected, not a pod CREATE).
    Skipped,
    /// Refused by the injector (bad annotations, policy).
    Denied,
    /// The review itself could not be read.
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Injected => "injected",
            Outcome::Skipped => "skipped",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

/// `Send + Sync`; share it as `Arc<WebhookMetrics>`.
#[derive(Debug)]
pub struct WebhookMetrics {
    registry: Registry,
    reviews: Family<DecisionLabels, Counter>,
    duration: Histogram,
    cert_reloads: CertReloads,
    ca_bundle_patches: Counter,
    limit_refusals: LimitRefusals,
}

impl WebhookMetrics {
    pub fn new() -> WebhookMetrics {
        let mut m = WebhookMetrics {
            registry: Registry::with_prefix(crate::metrics::PREFIX),
            reviews: Family::default(),
            duration: Histogram::new(REVIEW_BUCKETS),
            cert_reloads: CertReloads::default(),
            ca_bundle_patches: Counter::default(),
            limit_refusals: LimitRefusals::default(),
        };
        let r = &mut m.registry;
        r.register(
            "webhook_reviews",
            "Admission reviews answered, by decision (injected, skipped, denied, error)",
            m.reviews.clone(),
        );
        r.register(
            "webhook_review_duration_seconds",
            "Time to decode, decide and encode one admission review",
            m.duration.clone(),
        );
        m.cert_reloads = CertReloads::register(r, "webhook");
        m.limit_refusals = LimitRefusals::register(r, "webhook");
        r.register(
            "webhook_ca_bundle_patches",
            "Times the MutatingWebhookConfiguration's caBundle was set to the CA bundle (--tls-secret)",
            m.ca_bundle_patches.clone(),
        );
        for o in [
            Outcome::Injected,
            Outcome::Skipped,
            Outcome::Denied,
            Outcome::Error,
        ] {
            drop(m.reviews.get_or_create(&DecisionLabels {
                decision: o.label(),
            }));
        }
        m
    }

    /// Records one answered review.
    pub fn review(&self, outcome: Outcome, took: Duration) {
        self.reviews
            .get_or_create(&DecisionLabels {
                decision: outcome.label(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// New serving certificates (reloaded files, or issued in memory).
    pub fn cert_reloads(&self) -> &CertReloads {
        &self.cert_reloads
    }

    /// Requests and connections refused by the server's limits.
    pub fn limit_refusals(&self) -> &LimitRefusals {
        &self.limit_refusals
    }

    /// Records a patch of the configuration's caBundle.
    pub fn ca_bundle_patched(&self) {
        self.ca_bundle_patches.inc();
    }

    /// The OpenMetrics text, ending with `# EOF\n`.
    pub fn encode(&self) -> String {
        crate::metrics::encode_registry(&self.registry)
    }
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        WebhookMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_are_counted_by_decision_and_timed() {
        let m = WebhookMetrics::new();
        m.review(Outcome::Injected, Duration::from_micros(300));
        m.review(Outcome::Error, Duration::from_micros(50));
        m.cert_reloads().record(false);
        m.ca_bundle_patched();
        let text = m.encode();
        for line in [
            r#"ssm_injector_webhook_reviews_total{decision="injected"} 1"#,
            r#"ssm_injector_webhook_reviews_total{decision="skipped"} 0"#,
            r#"ssm_injector_webhook_reviews_total{decision="error"} 1"#,
            "ssm_injector_webhook_review_duration_seconds_count 2",
            r#"ssm_injector_webhook_cert_reloads_total{outcome="error"} 1"#,
            "ssm_injector_webhook_ca_bundle_patches_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
