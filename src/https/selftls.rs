//! `--tls-secret`: the webhook (and the hub) run their own PKI with the Kubernetes API, so
//! no cert-manager is needed.
//!
//! - The CA lives in a Secret ([`super::ca`] says what it holds). The first replica to find
//!   it missing makes it; one that loses that race (409 AlreadyExists) reads the winner's.
//! - Each replica issues its own serving certificate in memory from the CA, so a restart
//!   writes nothing; it is reissued after two thirds of its life, and swapped into the
//!   [`CertResolver`] without touching open connections.
//! - Another object may have to carry the CA bundle: the webhook keeps the `caBundle` of its
//!   MutatingWebhookConfiguration ([`BundleTarget`], `crate::webhook::ca_bundle`). The
//!   manager syncs it at start and after every round, and at once when the object changes.
//! - The webhook also rotates the CA ([`super::ca::CaSet::change`]) with an optimistic-concurrency
//!   update (the Secret's resourceVersion); a replica that loses re-reads. The hub only reads.
//!
//! A Secret whose content is not such a CA is an error naming the Secret and the key; it is
//! never overwritten. Private keys are never logged.

use super::ca::{Ca, CaError, CaSet, ContentError, Leaf, Lifetimes};
use super::metrics::CertReloads;
use super::tls::CertResolver;
use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ssm-injector";
/// Where a pod's namespace is, when neither --namespace nor POD_NAMESPACE say.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// How long start-up waits for an unreachable API server (or, for the hub, the Secret).
const STARTUP_PATIENCE: Duration = Duration::from_secs(30);
/// Writes that lose to another writer before giving up for this round.
pub const MAX_CONFLICTS: usize = 5;

/// What the self-managed certificate is for. Built by [`Settings::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub namespace: String,
    /// The CA Secret.
    pub secret: String,
    /// Names of the serving certificate; the first is its common name.
    pub names: Vec<String>,
    pub lifetimes: Lifetimes,
    pub check_interval: Duration,
    /// Make and rotate the CA (the webhook); without it, only read it (the hub).
    pub manage_ca: bool,
}

/// The flags, as given.
#[derive(Debug, Clone, Default)]
pub struct RawSettings {
    pub secret: String,
    pub service: String,
    pub namespace: Option<String>,
    pub extra_names: Vec<String>,
    pub lifetimes: Lifetimes,
    pub check_interval: Duration,
    pub manage_ca: bool,
}

/// Everything that stops the self-managed certificate. Messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SelfTlsError {
    #[error(
        "{flag} {value:?} is not a Kubernetes object name (lower-case letters, digits, '-' and '.')"
    )]
    BadName { flag: &'static str, value: String },
    #[error("--tls-extra-san {value:?} is neither an IP address nor a DNS name")]
    BadExtraName { value: String },
    #[error(
        "no namespace for the CA Secret: give --namespace, or set POD_NAMESPACE (fieldRef metadata.namespace), or mount the service account token"
    )]
    NoNamespace,
    #[error("{0}")]
    Lifetimes(#[from] super::ca::LifetimeError),
    #[error("no Kubernetes API credentials: {0}")]
    Credentials(#[source] crate::kubeconfig::KubeConfigError),
    #[error("cannot set up the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot reach the Kubernetes API to {step}: {source}")]
    Unreachable {
        step: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the Kubernetes API does not let this service account {step} ({message}); grant it: {rule}"
    )]
    Forbidden {
        step: String,
        rule: String,
        message: String,
    },
    #[error(
        "Secret {namespace}/{name}: {source}. It should hold the CA of --tls-secret and is left as it is: fix that key, or delete the Secret to have a new CA made"
    )]
    BadSecret {
        namespace: String,
        name: String,
        #[source]
        source: ContentError,
    },
    #[error(
        "Secret {namespace}/{name} does not exist: the webhook (--tls-secret) makes it; start the webhook in self-managed TLS mode, or check --tls-secret and --namespace"
    )]
    NoSecret { namespace: String, name: String },
    #[error("the Kubernetes API refused to {step}: {message}")]
    Refused { step: String, message: String },
    #[error("{step}: another writer changed it {MAX_CONFLICTS} times in a row; trying again later")]
    Conflicts { step: String },
    #[error("{0}")]
    Ca(#[from] CaError),
}

impl SelfTlsError {
    /// Worth another try: the API server or the Secret may be there in a moment.
    pub fn transient(&self) -> bool {
        matches!(
            self,
            SelfTlsError::Unreachable { .. }
                | SelfTlsError::NoSecret { .. }
                | SelfTlsError::Conflicts { .. }
        )
    }

    /// The process exit code ([`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            SelfTlsError::Forbidden { .. } => exit::DENIED,
            SelfTlsError::Unreachable { .. } | SelfTlsError::NoSecret { .. } => exit::UNAVAILABLE,
            SelfTlsError::Refused { .. }
            | SelfTlsError::Conflicts { .. }
            | SelfTlsError::Ca(_)
            | SelfTlsError::Client(_) => exit::OTHER,
            SelfTlsError::BadName { .. }
            | SelfTlsError::BadExtraName { .. }
            | SelfTlsError::NoNamespace
            | SelfTlsError::Lifetimes(_)
            | SelfTlsError::Credentials(_)
            | SelfTlsError::BadSecret { .. } => exit::USAGE,
        }
    }
}

/// `value` of `flag` must be a Kubernetes object name (lower-case letters, digits, '-' and
/// '.'). Pure.
pub fn check_name(flag: &'static str, value: &str) -> Result<(), SelfTlsError> {
    if is_object_name(value) {
        Ok(())
    } else {
        Err(SelfTlsError::BadName {
            flag,
            value: value.to_owned(),
        })
    }
}

fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-'))
        })
}

impl Settings {
    /// Checks the flags. The namespace is --namespace, else `pod_namespace` (POD_NAMESPACE),
    /// else `namespace_file` (the service account's namespace file). Pure.
    pub fn build(
        raw: RawSettings,
        pod_namespace: Option<String>,
        namespace_file: Option<String>,
    ) -> Result<Settings, SelfTlsError> {
        let RawSettings {
            secret,
            service,
            namespace,
            extra_names,
            lifetimes,
            check_interval,
            manage_ca,
        } = raw;
        let namespace = [namespace, pod_namespace, namespace_file]
            .into_iter()
            .flatten()
            .map(|n| n.trim().to_owned())
            .find(|n| !n.is_empty())
            .ok_or(SelfTlsError::NoNamespace)?;
        for (flag, value) in [
            ("--namespace", &namespace),
            ("--tls-secret", &secret),
            ("--service-name", &service),
        ] {
            check_name(flag, value)?;
        }
        let mut extra = Vec::new();
        for name in extra_names {
            let name = name.trim().to_owned();
            if name.is_empty() {
                continue;
            }
            if name.parse::<IpAddr>().is_err() && !is_dns_name(&name) {
                return Err(SelfTlsError::BadExtraName { value: name });
            }
            extra.push(name);
        }
        Ok(Settings {
            names: super::ca::service_names(&service, &namespace, &extra),
            namespace,
            secret,
            lifetimes: lifetimes.check()?,
            check_interval: check_interval.max(Duration::from_millis(100)),
            manage_ca,
        })
    }
}

/// What the manager reports as things happen: to metrics, and to the webhook's injected
/// hub CA.
pub struct Hooks {
    /// Serving certificates issued (`ok`) or that could not be (`error`).
    pub reloads: CertReloads,
    /// The CA bundle (PEM) at start and whenever it changes.
    pub bundle: Box<dyn Fn(&str) + Send + Sync>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            reloads: CertReloads::default(),
            bundle: Box::new(|_| {}),
        }
    }
}

/// Another object that must carry the CA bundle: the webhook's MutatingWebhookConfiguration
/// (its `caBundle`s). The [`Manager`] owns it.
pub trait BundleTarget: Send + Sync {
    /// Makes the object carry `bundle` (PEM), writing only when it differs: at start and
    /// after every round. Errors that are [`SelfTlsError::transient`] are retried later.
    fn sync<'a>(
        &'a mut self,
        client: &'a kube::Client,
        bundle: &'a str,
    ) -> BoxFuture<'a, Result<(), SelfTlsError>>;

    /// Runs until dropped, waking `changed` whenever the object changes, so a bundle wiped
    /// by someone else is put back at once; `slowest` caps the wait between its retries.
    fn watch(
        &self,
        client: kube::Client,
        changed: Arc<tokio::sync::Notify>,
        slowest: Duration,
    ) -> BoxFuture<'static, ()>;
}

/// One API call, for messages and the RBAC rule it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// What it does, e.g. `get Secret ns/name`.
    pub step: String,
    /// The RBAC rule that allows it.
    pub rule: String,
}

impl ApiCall {
    /// `verb` on the Secret `namespace/name`. `create` cannot be limited to a name.
    pub fn secret(verb: &str, namespace: &str, name: &str) -> ApiCall {
        let rule = match verb {
            "create" => format!(
                "a Role in namespace {namespace} with {{apiGroups: [\"\"], resources: [secrets], verbs: [create]}}, bound to it"
            ),
            _ => format!(
                "a Role in namespace {namespace} with {{apiGroups: [\"\"], resources: [secrets], resourceNames: [{name}], verbs: [{verb}]}}, bound to it"
            ),
        };
        ApiCall {
            step: format!("{verb} Secret {namespace}/{name}"),
            rule,
        }
    }

    /// What a failure of this call means: a 403 names the rule to grant; a 5xx, 429 or no
    /// answer is [`SelfTlsError::Unreachable`] (worth another try); other answers are
    /// refusals.
    pub fn error(&self, e: kube::Error) -> SelfTlsError {
        match e {
            kube::Error::Api(status) if status.is_forbidden() => SelfTlsError::Forbidden {
                step: self.step.clone(),
                rule: self.rule.clone(),
                message: status.message,
            },
            kube::Error::Api(status)
                if status.code >= 500 || status.code == 429 || status.code == 0 =>
            {
                SelfTlsError::Unreachable {
                    step: self.step.clone(),
                    source: kube::Error::Api(status),
                }
            }
            kube::Error::Api(status) => SelfTlsError::Refused {
                step: self.step.clone(),
                message: status.message,
            },
            other => SelfTlsError::Unreachable {
                step: self.step.clone(),
                source: other,
            },
        }
    }
}

/// The API server's answer in `e`, if it is one.
pub fn api_status(e: &kube::Error) -> Option<&kube::core::Status> {
    match e {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

/// The serving certificate in use (its key is in the resolver only).
#[derive(Debug, Clone)]
struct LeafInfo {
    issuer: Vec<u8>,
    renew_at: SystemTime,
}

/// Keeps the Secret, the serving certificate and the [`BundleTarget`] right.
pub struct Manager {
    client: kube::Client,
    settings: Settings,
    hooks: Hooks,
    target: Option<Box<dyn BundleTarget>>,
    resolver: Arc<CertResolver>,
    set: CaSet,
    bundle: String,
    leaf: LeafInfo,
    /// The last error logged, to log each distinct one once.
    last_error: Option<String>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// [`Settings::build`] with the pod's namespace from POD_NAMESPACE or the service
/// account's namespace file.
pub fn settings(raw: RawSettings) -> Result<Settings, SelfTlsError> {
    let pod_namespace = std::env::var("POD_NAMESPACE").ok();
    let file = match (&raw.namespace, &pod_namespace) {
        (None, None) => std::fs::read_to_string(NAMESPACE_FILE).ok(),
        _ => None,
    };
    Settings::build(raw, pod_namespace, file)
}

/// Connects with the in-cluster config (or KUBECONFIG: [`crate::kubeconfig`]), reads or
/// makes the CA, issues the first serving certificate and syncs the `target` (the
/// webhook's configuration), if any.
/// Returns once a certificate is in hand: serve HTTPS with the resolver, then
/// [`Manager::run`].
pub async fn start(
    settings: Settings,
    hooks: Hooks,
    target: Option<Box<dyn BundleTarget>>,
) -> Result<(Arc<CertResolver>, Manager), SelfTlsError> {
    let config = crate::kubeconfig::infer()
        .await
        .map_err(SelfTlsError::Credentials)?;
    let client = kube::Client::try_from(config).map_err(SelfTlsError::Client)?;
    start_with(client, settings, hooks, target).await
}

/// [`start`] with a given client.
pub async fn start_with(
    client: kube::Client,
    settings: Settings,
    hooks: Hooks,
    target: Option<Box<dyn BundleTarget>>,
) -> Result<(Arc<CertResolver>, Manager), SelfTlsError> {
    let patience = Instant::now() + STARTUP_PATIENCE;
    let mut wait = Duration::from_millis(250);
    let set = loop {
        match sync_secret(&client, &settings, SystemTime::now()).await {
            Ok(set) => break set,
            Err(e) if e.transient() && Instant::now() + wait < patience => {
                tracing::warn!("{e}; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    };
    let now = SystemTime::now();
    let signer = set
        .signer(now, settings.lifetimes.ca_propagation)
        .ok_or(CaError::NoSigner)?;
    let leaf = super::ca::issue(signer, &settings.names, now, settings.lifetimes.leaf)?;
    let Leaf {
        certified,
        issuer,
        not_after,
        ..
    } = &leaf;
    let info = LeafInfo {
        issuer: issuer.clone(),
        renew_at: leaf.renew_at(),
    };
    tracing::info!(
        names = ?settings.names,
        not_after = %humantime::format_rfc3339_seconds(*not_after),
        secret = %format!("{}/{}", settings.namespace, settings.secret),
        "serving certificate issued in memory from the CA Secret"
    );
    let resolver = Arc::new(CertResolver::new(certified.clone()));
    let bundle = set.bundle_pem();
    (hooks.bundle)(&bundle);
    hooks.reloads.record(true);
    let mut manager = Manager {
        client,
        settings,
        hooks,
        target,
        resolver: resolver.clone(),
        set,
        bundle,
        leaf: info,
        last_error: None,
    };
    match manager.sync_target().await {
        Ok(_) => {}
        Err(e) if e.transient() => tracing::warn!("{e}; trying again later"),
        Err(e) => return Err(e),
    }
    Ok((resolver, manager))
}

/// Reads the CA Secret; with `manage_ca`, makes it when missing and rotates it when due.
async fn sync_secret(
    client: &kube::Client,
    settings: &Settings,
    now: SystemTime,
) -> Result<CaSet, SelfTlsError> {
    let (namespace, name) = (settings.namespace.as_str(), settings.secret.as_str());
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let call = |verb| ApiCall::secret(verb, namespace, name);
    let bad = |source| SelfTlsError::BadSecret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let ca_name = || {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        format!("ssm-injector CA {namespace}/{name} {secs}")
    };
    let post = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    for _ in 0..MAX_CONFLICTS {
        let found = api.get_opt(name).await.map_err(|e| call("get").error(e))?;
        let Some(mut secret) = found else {
            if !settings.manage_ca {
                return Err(SelfTlsError::NoSecret {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                });
            }
            let set = CaSet::new(Ca::generate(&ca_name(), now, settings.lifetimes.ca)?);
            match api.create(&post, &secret_object(settings, &set)).await {
                Ok(_) => {
                    tracing::info!(secret = %format!("{namespace}/{name}"), "made a new CA");
                    return Ok(set);
                }
                // Another replica made it first: use theirs.
                Err(e) if api_status(&e).is_some_and(|s| s.is_already_exists()) => continue,
                Err(e) => return Err(call("create").error(e)),
            }
        };
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let parsed = CaSet::parse(&data);
        data.values_mut().for_each(zeroize::Zeroize::zeroize);
        let set = parsed.map_err(bad)?;
        if !settings.manage_ca {
            return Ok(set);
        }
        let change = set.change(now, &settings.lifetimes);
        if !change.rotate && change.expired == 0 {
            return Ok(set);
        }
        let new = match change.rotate {
            true => Some(Ca::generate(&ca_name(), now, settings.lifetimes.ca)?),
            false => None,
        };
        let next = set.apply(now, new);
        secret.data = Some(bytes(next.to_data()));
        // The resourceVersion read above stays: someone else's write makes this a 409.
        secret.metadata.managed_fields = None;
        match api.replace(name, &post, &secret).await {
            Ok(_) => {
                tracing::info!(
                    secret = %format!("{namespace}/{name}"),
                    new_ca = change.rotate,
                    expired_cas_dropped = change.expired,
                    cas = next.cas().len(),
                    "CA bundle updated"
                );
                return Ok(next);
            }
            Err(e) if api_status(&e).is_some_and(|s| s.is_conflict()) => continue,
            Err(e) => return Err(call("update").error(e)),
        }
    }
    Err(SelfTlsError::Conflicts {
        step: call("update").step,
    })
}

fn bytes(data: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, ByteString> {
    data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()
}

/// A new CA Secret.
fn secret_object(settings: &Settings, set: &CaSet) -> Secret {
    let labels = [
        ("app.kubernetes.io/name", "ssm-injector"),
        ("app.kubernetes.io/component", "ca"),
        ("app.kubernetes.io/managed-by", FIELD_MANAGER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(bytes(set.to_data())),
        ..Default::default()
    }
}

impl Manager {
    /// The CA bundle (PEM) in use.
    pub fn bundle(&self) -> &str {
        &self.bundle
    }

    /// Makes the [`BundleTarget`], if any, carry the CA bundle.
    async fn sync_target(&mut self) -> Result<(), SelfTlsError> {
        match &mut self.target {
            Some(target) => target.sync(&self.client, &self.bundle).await,
            None => Ok(()),
        }
    }

    /// Issues a new serving certificate when the current one is past two thirds of its life
    /// or another CA should sign it now.
    fn renew_leaf(&mut self, now: SystemTime) -> Result<(), CaError> {
        let signer = self
            .set
            .signer(now, self.settings.lifetimes.ca_propagation)
            .ok_or(CaError::NoSigner)?;
        let new_signer = signer.der() != self.leaf.issuer.as_slice();
        if !new_signer && now < self.leaf.renew_at {
            return Ok(());
        }
        let leaf = super::ca::issue(
            signer,
            &self.settings.names,
            now,
            self.settings.lifetimes.leaf,
        )
        .inspect_err(|_| self.hooks.reloads.record(false))?;
        self.leaf = LeafInfo {
            issuer: leaf.issuer.clone(),
            renew_at: leaf.renew_at(),
        };
        tracing::info!(
            new_ca = new_signer,
            not_after = %humantime::format_rfc3339_seconds(leaf.not_after),
            "serving certificate reissued in memory: new connections use it"
        );
        self.resolver.set(leaf.certified);
        self.hooks.reloads.record(true);
        Ok(())
    }

    /// Takes a CA set read from the Secret.
    fn take(&mut self, set: CaSet) {
        let bundle = set.bundle_pem();
        if bundle != self.bundle {
            tracing::info!(cas = set.cas().len(), "the CA bundle changed");
            (self.hooks.bundle)(&bundle);
            self.bundle = bundle;
        }
        self.set = set;
    }

    /// One round: the Secret, the serving certificate, the target. Without the
    /// API, the serving certificate is still renewed from the CA read last.
    async fn round(&mut self, now: SystemTime) -> Result<(), SelfTlsError> {
        let read = sync_secret(&self.client, &self.settings, now).await;
        if let Ok(set) = &read {
            self.take(set.clone());
        }
        self.renew_leaf(now)?;
        read?;
        self.sync_target().await?;
        Ok(())
    }

    /// How long until the next round: the check interval, or sooner for a renewal or a CA
    /// event.
    fn next_wait(&self, now: SystemTime, failures: u32) -> Duration {
        let mut wait = self.settings.check_interval;
        if failures > 0 {
            let backoff = Duration::from_secs(1) * 2u32.saturating_pow(failures.min(5) - 1);
            wait = wait.min(backoff);
        }
        let events = [
            Some(self.leaf.renew_at),
            self.set.next_event(now, &self.settings.lifetimes),
        ];
        for t in events.into_iter().flatten() {
            if let Ok(d) = t.duration_since(now) {
                wait = wait.min(d + Duration::from_millis(10));
            }
        }
        wait.max(Duration::from_millis(10))
    }

    /// Runs the rounds until aborted.
    pub async fn run(mut self) {
        let changed = Arc::new(tokio::sync::Notify::new());
        // Stops with the rounds (when this future is dropped or aborted).
        let _watcher = self.target.as_ref().map(|target| {
            AbortOnDrop(tokio::spawn(target.watch(
                self.client.clone(),
                changed.clone(),
                self.settings.check_interval,
            )))
        });
        let mut failures = 0u32;
        let resolver = self.resolver.clone();
        loop {
            let wait = self.next_wait(SystemTime::now(), failures);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = changed.notified() => {}
                // SIGHUP: re-read the Secret now.
                () = resolver.check_requested() => {}
            }
            match self.round(SystemTime::now()).await {
                Ok(()) => {
                    failures = 0;
                    self.last_error = None;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let msg = e.to_string();
                    if self.last_error.as_deref() != Some(&msg) {
                        tracing::error!("{msg}; the current certificate stays in use");
                        self.last_error = Some(msg);
                    }
                }
            }
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings {
            secret: "hook-ca".into(),
            service: "hook".into(),
            namespace: None,
            extra_names: vec!["127.0.0.1".into(), "hook.example.com".into()],
            lifetimes: Lifetimes::default(),
            check_interval: Duration::from_secs(60),
            manage_ca: true,
        }
    }

    #[test]
    fn the_namespace_comes_from_the_flag_then_pod_namespace_then_the_token_mount() {
        let s = Settings::build(raw(), Some("env".into()), Some("file\n".into())).expect("ok");
        assert_eq!(s.namespace, "env");
        assert_eq!(s.names[0], "hook.env.svc");
        assert_eq!(s.names.last().map(String::as_str), Some("hook.example.com"));
        let s = Settings::build(raw(), None, Some("file\n".into())).expect("ok");
        assert_eq!(s.namespace, "file");
        let flag = RawSettings {
            namespace: Some("flag".into()),
            ..raw()
        };
        assert_eq!(
            Settings::build(flag, Some("env".into()), None)
                .expect("ok")
                .namespace,
            "flag"
        );
        let e = Settings::build(raw(), Some(" ".into()), None).expect_err("none");
        assert!(e.to_string().contains("--namespace"), "{e}");
    }

    #[test]
    fn bad_names_are_refused_naming_the_flag() {
        let cases: Vec<(RawSettings, &str)> = vec![
            (
                RawSettings {
                    secret: "Hook_CA".into(),
                    ..raw()
                },
                "--tls-secret",
            ),
            (
                RawSettings {
                    service: "".into(),
                    ..raw()
                },
                "--service-name",
            ),
            (
                RawSettings {
                    extra_names: vec!["not a name".into()],
                    ..raw()
                },
                "--tls-extra-san",
            ),
        ];
        for (r, flag) in cases {
            let e = Settings::build(r, Some("ns".into()), None).expect_err(flag);
            assert!(e.to_string().contains(flag), "{flag}: {e}");
            assert_eq!(e.exit_code(), crate::exit::USAGE);
        }
        let e = check_name("--webhook-configuration", "-x").expect_err("a leading dash");
        assert!(e.to_string().contains("--webhook-configuration"), "{e}");
        assert_eq!(e.exit_code(), crate::exit::USAGE);
    }

    #[test]
    fn each_secret_call_names_the_rbac_rule_it_needs() {
        let get = ApiCall::secret("get", "ops", "hook-ca");
        assert!(get.rule.contains("resourceNames: [hook-ca], verbs: [get]"));
        let create = ApiCall::secret("create", "ops", "hook-ca");
        assert!(!create.rule.contains("resourceNames"), "{}", create.rule);
        let forbidden = get.error(kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "no".into(),
            ..Default::default()
        })));
        assert!(matches!(forbidden, SelfTlsError::Forbidden { .. }));
        assert!(
            forbidden.to_string().contains("get Secret ops/hook-ca"),
            "{forbidden}"
        );
        assert_eq!(forbidden.exit_code(), crate::exit::DENIED);
        let down = get.error(kube::Error::Api(Box::new(kube::core::Status {
            code: 503,
            ..Default::default()
        })));
        assert!(down.transient());
    }
}
