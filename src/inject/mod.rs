//! The injector's decision, as a pure function: Pod + annotations + config → JSONPatch, skip
//! or denial. The webhook only decodes the review, calls [`mutate`] and encodes the answer.
//!
//! Steps, as in vault-k8s: should we inject ([`Decision::Skip`] otherwise), validate the
//! annotations ([`validate`]), check the namespace policy ([`policy`]), then patch
//! ([`patch`]): what the injection adds, as a JSONPatch built from those additions
//! ([`jsonpatch`]), without a copy of the pod or a diff of two JSON trees.

pub mod access;
pub mod annotations;
pub mod config;
pub mod identity;
pub mod jsonpatch;
pub mod patch;
pub mod policy;
pub mod port;
pub mod validate;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use jsonpatch::Patch;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::time::Duration;

/// The webhook's own configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    /// The ssm-injector image the injected containers run.
    pub image: String,
    /// The cluster supports native sidecars (Kubernetes 1.29+); a pod can override it.
    pub native_sidecar: bool,
    /// Namespaces never injected.
    pub excluded_namespaces: Vec<String>,
    /// Policy: namespace → allowed parameter path prefixes. Empty: no policy. Non-empty:
    /// namespaces without an entry may read nothing.
    pub namespace_prefixes: BTreeMap<String, Vec<String>>,
    /// Sidecar poll interval when the pod gives none.
    pub default_interval: Duration,
    /// The version hub injected sidecars follow (`--hub`), if any.
    pub hub: Option<HubInjection>,
    /// Paths a pod gets when it opts in without naming any path or parameter; `{namespace}`
    /// stands for the pod's namespace. Empty: such a pod is denied ("nothing to fetch").
    pub default_paths: Vec<String>,
    /// Resources of the injected containers when the pod's annotations give none.
    pub resources: AgentResources,
    /// `--region` of the injected containers when the pod gives no `ssm-injector.io/region`.
    /// `None`: the AWS SDK's chain inside the containers (AWS_REGION, AWS_DEFAULT_REGION,
    /// profile, IMDS).
    pub region: Option<String>,
}

/// Requests and limits of the injected containers (Kubernetes quantities; `None`: unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentResources {
    pub cpu_request: Option<String>,
    pub memory_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_limit: Option<String>,
}

impl Default for AgentResources {
    fn default() -> Self {
        AgentResources {
            cpu_request: Some("5m".to_owned()),
            memory_request: Some("16Mi".to_owned()),
            cpu_limit: None,
            memory_limit: Some("32Mi".to_owned()),
        }
    }
}

/// How injected sidecars reach the version hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubInjection {
    /// `https://HOST:PORT` of the hub's Service.
    pub url: String,
    /// The file the CA was read from (webhook config `hub-ca-file`); `None`: the CA bundle
    /// of the webhook's own CA Secret (`--tls-secret`), which also signs the hub's.
    pub ca_file: Option<String>,
    /// The CA that signed the hub's certificate (PEM), given to the sidecar in
    /// `SSM_INJECTOR_HUB_CA_PEM`. CA certificates are public.
    pub ca_pem: String,
    /// Audience of the projected service account token the sidecar presents to the hub
    /// (webhook config `hub-audience`); must be the hub's `--audience`.
    pub audience: String,
}

/// The hub's `--audience` default, and so the default of the webhook config's
/// `hub-audience` (defined with the hub's protocol).
pub use crate::hub_protocol::DEFAULT_AUDIENCE as DEFAULT_HUB_AUDIENCE;

/// What stands for the pod's namespace in [`InjectConfig::default_paths`].
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            image: "ghcr.io/ssm-injector/ssm-injector:latest".to_owned(),
            native_sidecar: true,
            excluded_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(str::to_owned)
                .to_vec(),
            namespace_prefixes: BTreeMap::new(),
            default_interval: Duration::from_secs(600),
            hub: None,
            default_paths: Vec::new(),
            resources: AgentResources::default(),
            region: None,
        }
    }
}

/// What to do with the pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admit unchanged; the reason is for logs and metrics.
    Skip(&'static str),
    /// Admit with this JSONPatch; the warnings go back to the client (`kubectl` prints
    /// them as `Warning: ...`).
    Patch { patch: Patch, warnings: Vec<String> },
    /// Refuse the pod.
    Deny(Denial),
}

/// Why a pod is refused: the annotation at fault (none for a policy or pod-level problem)
/// and a message for the user that says the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub annotation: Option<String>,
    pub message: String,
}

/// Longest denial message, in bytes: a 1 MiB annotation is not echoed back whole (the API
/// server shows the message to the user and the webhook logs it).
pub const MAX_DENIAL_BYTES: usize = 1024;
/// Of a longer message, this many bytes of its start (the annotation and the value's
/// start) and of its end (the fix) are kept.
const DENIAL_HEAD: usize = 512;
const DENIAL_TAIL: usize = 256;

impl Denial {
    /// The denial with its message cut to at most [`MAX_DENIAL_BYTES`] plus the marker
    /// `…(N bytes)` that says how much was left out of the middle.
    pub fn bounded(mut self) -> Denial {
        self.message = bound_text(&self.message);
        self
    }
}

/// `text` whole when it fits in [`MAX_DENIAL_BYTES`]; otherwise its first
/// [`DENIAL_HEAD`] and last [`DENIAL_TAIL`] bytes (on character boundaries) around
/// `…(N bytes)`, N being what was cut.
pub fn bound_text(text: &str) -> String {
    if text.len() <= MAX_DENIAL_BYTES {
        return text.to_owned();
    }
    let mut head = DENIAL_HEAD;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - DENIAL_TAIL;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…({} bytes){}", &text[..head], tail - head, &text[tail..])
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Decides what to do with `pod`, created in `namespace`. Pure: no I/O, never panics. A
/// denial's message is bounded ([`Denial::bounded`]).
pub fn mutate(pod: &Pod, namespace: &str, config: &InjectConfig) -> Decision {
    match decide(pod, namespace, config) {
        Decision::Deny(d) => Decision::Deny(d.bounded()),
        other => other,
    }
}

fn decide(pod: &Pod, namespace: &str, config: &InjectConfig) -> Decision {
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    if let Some(why) = should_skip(annotations, namespace, config) {
        return Decision::Skip(why);
    }
    let defaults: Vec<String> = config
        .default_paths
        .iter()
        .map(|p| p.replace(NAMESPACE_PLACEHOLDER, namespace))
        .collect();
    let req = match validate::validate(annotations, &defaults) {
        Ok(r) => r,
        Err(d) => return Decision::Deny(d),
    };
    if let Err(d) = policy::check(&req, namespace, &config.namespace_prefixes) {
        return Decision::Deny(d);
    }
    match patch::plan(pod, &req, config) {
        Ok(mut changes) => Decision::Patch {
            warnings: std::mem::take(&mut changes.warnings),
            patch: changes.into_patch(pod),
        },
        Err(d) => Decision::Deny(d),
    }
}

/// The should-inject step: `Some(reason)` when the pod is left alone.
fn should_skip(
    annotations: &BTreeMap<String, String>,
    namespace: &str,
    config: &InjectConfig,
) -> Option<&'static str> {
    // Exactly "true", as the MutatingWebhookConfiguration's matchCondition compares it:
    // a pod the API server would not send while the webhook is down is never injected
    // while it is up.
    let opted_in = annotations
        .get(annotations::INJECT)
        .is_some_and(|v| v == "true");
    if !opted_in {
        return Some("not opted in");
    }
    if config.excluded_namespaces.iter().any(|n| n == namespace) {
        return Some("namespace excluded");
    }
    if annotations
        .get(annotations::STATUS)
        .is_some_and(|v| v.trim() == annotations::STATUS_INJECTED)
    {
        return Some("already injected");
    }
    None
}
