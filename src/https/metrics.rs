//! The certificate-reload counter, one definition for the webhook and the hub:
//! `ssm_injector_{server}_cert_reloads_total{outcome}` (`server` is `webhook` or `hub`;
//! `outcome` is `ok`, or `error`: the old certificate is kept). It counts new serving
//! certificates: changed files reloaded, or, with `--tls-secret`, issued in memory.
//!
//! And the one refusal counter of the server limits ([`super::Limits`]):
//! `ssm_injector_{server}_limit_refusals_total{limit}` (`limit` is `body_size`, `body_time`,
//! `body_broken` or `connections`).

use super::server::Refusal;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `ok` or `error`.
    outcome: &'static str,
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// New serving certificates by outcome. Clones count into the same series.
#[derive(Clone, Debug, Default)]
pub struct CertReloads(Family<OutcomeLabels, Counter>);

impl CertReloads {
    /// Registers `{server}_cert_reloads` in `registry` (whose prefix comes first), with
    /// both outcomes at 0 from the start.
    pub fn register(registry: &mut Registry, server: &str) -> CertReloads {
        let reloads = CertReloads::default();
        registry.register(
            format!("{server}_cert_reloads"),
            "New serving certificates: changed files reloaded, or (--tls-secret) issued in memory; by outcome (error keeps the old pair)",
            reloads.0.clone(),
        );
        for ok in [true, false] {
            drop(reloads.0.get_or_create(&OutcomeLabels {
                outcome: outcome(ok),
            }));
        }
        reloads
    }

    /// A new certificate was taken (`true`), or refused and the old one kept (`false`).
    pub fn record(&self, ok: bool) {
        self.0
            .get_or_create(&OutcomeLabels {
                outcome: outcome(ok),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    /// [`Refusal::label`].
    limit: &'static str,
}

/// Requests answered, or connections closed, by the server's limits ([`super::Limits`]),
/// by limit. Clones count into the same series; the default counts into no registry.
#[derive(Clone, Debug, Default)]
pub struct LimitRefusals(Family<LimitLabels, Counter>);

impl LimitRefusals {
    /// Registers `{server}_limit_refusals` in `registry`, every limit at 0 from the start.
    pub fn register(registry: &mut Registry, server: &str) -> LimitRefusals {
        let refusals = LimitRefusals::default();
        registry.register(
            format!("{server}_limit_refusals"),
            "Requests refused (413 body_size, 408 body_time, 400 body_broken) or connections closed (connections) by the server's limits",
            refusals.0.clone(),
        );
        for refusal in [
            Refusal::BodySize,
            Refusal::BodyTime,
            Refusal::BodyBroken,
            Refusal::Connections,
        ] {
            drop(refusals.0.get_or_create(&LimitLabels {
                limit: refusal.label(),
            }));
        }
        refusals
    }

    /// How many `refusal`s were counted.
    pub fn count(&self, refusal: Refusal) -> u64 {
        self.0
            .get_or_create(&LimitLabels {
                limit: refusal.label(),
            })
            .get()
    }

    pub fn record(&self, refusal: Refusal) {
        self.0
            .get_or_create(&LimitLabels {
                limit: refusal.label(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_count_by_outcome_under_the_server_s_name() {
        let mut registry = Registry::with_prefix("ssm_injector");
        let reloads = CertReloads::register(&mut registry, "hub");
        reloads.clone().record(false);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            r#"ssm_injector_hub_cert_reloads_total{outcome="ok"} 0"#,
            r#"ssm_injector_hub_cert_reloads_total{outcome="error"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
