//! `--tls-secret`: the webhook keeps the `caBundle` of every webhook in its
//! MutatingWebhookConfiguration equal to the CA bundle, patching only when it differs. The
//! self-managed CA's manager ([`crate::https::selftls`]) syncs it at start and after every
//! round (every `--tls-check-interval`), and at once when the configuration changes (a
//! watch), so an upgrade or someone else's edit is repaired.

use crate::https::selftls::{
    ApiCall, BundleTarget, FIELD_MANAGER, MAX_CONFLICTS, SelfTlsError, api_status,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The names of the webhooks whose `caBundle` is not `bundle`. Pure.
pub fn stale_webhooks(mwc: &MutatingWebhookConfiguration, bundle: &[u8]) -> Vec<String> {
    mwc.webhooks
        .iter()
        .flatten()
        .filter(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle))
        .map(|w| w.name.clone())
        .collect()
}

/// A strategic merge patch setting `caBundle` of the named webhooks (the list merges by
/// name), only if the object is still at `resource_version`. Pure.
pub fn ca_bundle_patch(resource_version: &str, webhooks: &[String], bundle: &[u8]) -> Value {
    use base64::Engine;
    let b64 = base64::prelude::BASE64_STANDARD.encode(bundle);
    json!({
        "metadata": {"resourceVersion": resource_version},
        "webhooks": webhooks
            .iter()
            .map(|name| json!({"name": name, "clientConfig": {"caBundle": b64}}))
            .collect::<Vec<_>>(),
    })
}

/// What [`Configuration::sync_now`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleSync {
    Unchanged,
    Patched(usize),
    /// No such configuration (yet): nothing to patch.
    Missing,
}

/// `verb` on the MutatingWebhookConfiguration `name`, and the rule that allows it.
fn call(verb: &str, name: &str) -> ApiCall {
    ApiCall {
        step: format!("{verb} MutatingWebhookConfiguration {name}"),
        rule: format!(
            "a ClusterRole with {{apiGroups: [admissionregistration.k8s.io], resources: [mutatingwebhookconfigurations], resourceNames: [{name}], verbs: [{verb}]}}, bound to it"
        ),
    }
}

/// The MutatingWebhookConfiguration whose `caBundle`s carry the CA bundle.
pub struct Configuration {
    name: String,
    /// Called after each patch (the `ca_bundle_patches` metric).
    patched: Box<dyn Fn() + Send + Sync>,
    missing_logged: bool,
}

impl Configuration {
    /// The configuration `name` (`--webhook-configuration`, checked with
    /// [`crate::https::selftls::check_name`]); `patched` is called after each patch.
    pub fn new(name: String, patched: impl Fn() + Send + Sync + 'static) -> Configuration {
        Configuration {
            name,
            patched: Box::new(patched),
            missing_logged: false,
        }
    }

    /// Makes the configuration's `caBundle`s `bundle`.
    pub async fn sync_now(
        &mut self,
        client: &kube::Client,
        bundle: &str,
    ) -> Result<BundleSync, SelfTlsError> {
        let name = self.name.clone();
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        for _ in 0..MAX_CONFLICTS {
            let Some(mwc) = api
                .get_opt(&name)
                .await
                .map_err(|e| call("get", &name).error(e))?
            else {
                if !self.missing_logged {
                    tracing::warn!(
                        "MutatingWebhookConfiguration {name} does not exist (yet): its caBundle is set once it does"
                    );
                    self.missing_logged = true;
                }
                return Ok(BundleSync::Missing);
            };
            self.missing_logged = false;
            let stale = stale_webhooks(&mwc, bundle.as_bytes());
            if stale.is_empty() {
                return Ok(BundleSync::Unchanged);
            }
            let version = mwc.metadata.resource_version.unwrap_or_default();
            let patch = ca_bundle_patch(&version, &stale, bundle.as_bytes());
            match api.patch(&name, &params, &Patch::Strategic(&patch)).await {
                Ok(_) => {
                    tracing::info!(
                        configuration = %name,
                        webhooks = ?stale,
                        "caBundle set to the CA bundle"
                    );
                    (self.patched)();
                    return Ok(BundleSync::Patched(stale.len()));
                }
                Err(e) if api_status(&e).is_some_and(|s| s.is_conflict()) => continue,
                Err(e) => return Err(call("patch", &name).error(e)),
            }
        }
        Err(SelfTlsError::Conflicts {
            step: call("patch", &name).step,
        })
    }
}

impl BundleTarget for Configuration {
    fn sync<'a>(
        &'a mut self,
        client: &'a kube::Client,
        bundle: &'a str,
    ) -> BoxFuture<'a, Result<(), SelfTlsError>> {
        Box::pin(async move { self.sync_now(client, bundle).await.map(|_| ()) })
    }

    fn watch(
        &self,
        client: kube::Client,
        changed: Arc<tokio::sync::Notify>,
        slowest: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(watch_configuration(
            client,
            self.name.clone(),
            changed,
            slowest,
        ))
    }
}

/// Watches the configuration and wakes the manager when it changes, so a `caBundle` wiped
/// by someone else is repaired at once. Without the watch permission it logs once and the
/// periodic check does the repair.
async fn watch_configuration(
    client: kube::Client,
    name: String,
    changed: Arc<tokio::sync::Notify>,
    slowest: Duration,
) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    // No bookmarks: with resourceVersion 0 they make a v1.36 API server on an etcd without
    // progress notifications (3.4) refuse the watch.
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290)
        .disable_bookmarks();
    let mut version = "0".to_owned();
    let mut failures = 0u32;
    let watching = call("watch", &name);
    let mut last_warning = String::new();
    let mut warn = |msg: String| {
        if msg != last_warning {
            tracing::warn!("{msg}; its caBundle is checked every interval instead");
            last_warning = msg;
        }
    };
    loop {
        match api.watch(&params, &version).await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                            version = o.metadata.resource_version.unwrap_or(version);
                            failures = 0;
                            changed.notify_one();
                        }
                        Ok(WatchEvent::Deleted(o)) => {
                            version = o.metadata.resource_version.unwrap_or(version);
                        }
                        Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                        // 410 Gone: the version is too old; start over from the current state.
                        Ok(WatchEvent::Error(status)) if status.code == 410 => {
                            version = "0".to_owned();
                            break;
                        }
                        Ok(WatchEvent::Error(status)) => {
                            warn(watching.error(kube::Error::Api(status)).to_string());
                            version = "0".to_owned();
                            failures += 1;
                            break;
                        }
                        Err(e) => {
                            warn(watching.error(e).to_string());
                            version = "0".to_owned();
                            failures += 1;
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                failures += 1;
                warn(watching.error(e).to_string());
            }
        }
        let backoff = Duration::from_secs(1) * 2u32.saturating_pow(failures.min(6));
        tokio::time::sleep(backoff.min(slowest.max(Duration::from_secs(1)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mwc(bundles: &[(&str, Option<&[u8]>)]) -> MutatingWebhookConfiguration {
        use base64::Engine;
        let hooks: Vec<Value> = bundles
            .iter()
            .map(|(name, b)| {
                let mut cc = json!({"service": {"name": "s", "namespace": "n"}});
                if let Some(b) = b {
                    cc["caBundle"] = json!(base64::prelude::BASE64_STANDARD.encode(b));
                }
                json!({"name": name, "clientConfig": cc, "sideEffects": "None",
                       "admissionReviewVersions": ["v1"]})
            })
            .collect();
        serde_json::from_value(
            json!({"metadata": {"name": "m", "resourceVersion": "7"}, "webhooks": hooks}),
        )
        .expect("a configuration")
    }

    #[test]
    fn only_webhooks_whose_ca_bundle_differs_are_patched_and_only_at_the_version_read() {
        let m = mwc(&[("a.x", Some(b"PEM")), ("b.x", None), ("c.x", Some(b"OLD"))]);
        let stale = stale_webhooks(&m, b"PEM");
        assert_eq!(stale, ["b.x", "c.x"]);
        assert!(stale_webhooks(&mwc(&[("a.x", Some(b"PEM"))]), b"PEM").is_empty());
        let patch = ca_bundle_patch("7", &stale, b"PEM");
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "7"},
                "webhooks": [
                    {"name": "b.x", "clientConfig": {"caBundle": "UEVN"}},
                    {"name": "c.x", "clientConfig": {"caBundle": "UEVN"}},
                ]
            })
        );
    }

    #[test]
    fn each_configuration_call_names_the_rbac_rule_it_needs() {
        let patch = call("patch", "hook");
        assert!(patch.rule.contains("mutatingwebhookconfigurations"));
        assert!(patch.rule.contains("resourceNames: [hook], verbs: [patch]"));
        let forbidden = patch.error(kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "no".into(),
            ..Default::default()
        })));
        assert!(matches!(forbidden, SelfTlsError::Forbidden { .. }));
        assert!(
            forbidden
                .to_string()
                .contains("patch MutatingWebhookConfiguration hook"),
            "{forbidden}"
        );
        assert_eq!(forbidden.exit_code(), crate::exit::DENIED);
    }
}
