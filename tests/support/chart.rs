//! The Helm chart as the cluster sees it: `helm template` (the pinned helm of
//! `scripts/setup-helm`, in `.tools/bin`) renders `charts/ssm-injector`, and
//! [`Installed`] puts the rendered MutatingWebhookConfiguration into the real API server
//! with only its `clientConfig` swapped (a loopback `url` and the test CA as `caBundle`,
//! since the API server cannot reach a Service here), and runs the real webhook binary with
//! the args of the rendered Deployment and the rendered ConfigMap as its config file.
//!
//! Each installation's namespaceSelector also matches a label only its own namespaces
//! carry (`webhook.namespaceSelector.matchLabels`, a chart value), so tests sharing one API
//! server never see each other's webhooks.
//!
//! [`Installed::install_self`] installs the self-managed TLS mode (`tls.mode: self`) as a
//! cluster would get it: the rendered ServiceAccount and RBAC are created, the
//! configuration is registered with only its `url` swapped (its `caBundle` stays as
//! rendered: empty), and the webhook runs with the Deployment's args as that
//! ServiceAccount (a kubeconfig with its token), so it must make its CA and patch the
//! `caBundle` itself, with no more permission than the chart grants.

use super::cluster::Cluster;
use super::pki::Ca;
use super::webhook::Webhook;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The label that ties a test's namespaces to its webhook.
pub const TEST_LABEL: &str = "ssm-injector-test";

/// The namespace every test release is rendered into.
pub const RELEASE_NAMESPACE: &str = "ssm-injector";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned helm, installed by `scripts/setup-helm` (which `scripts/test` runs first).
pub fn helm() -> PathBuf {
    let helm = repo().join(".tools/bin/helm");
    assert!(
        helm.is_file(),
        "{} is missing: run scripts/setup-helm (scripts/test does)",
        helm.display()
    );
    helm
}

/// `helm template RELEASE charts/ssm-injector -n NAMESPACE -f FILE...`: every rendered
/// object as JSON. Panics with helm's message when it fails.
pub fn template(release: &str, namespace: &str, value_files: &[&Path]) -> Vec<Value> {
    let mut cmd = Command::new(helm());
    cmd.arg("template")
        .arg(release)
        .arg(repo().join("charts/ssm-injector"))
        .args(["--namespace", namespace]);
    for f in value_files {
        cmd.arg("-f").arg(f);
    }
    let out = cmd.output().expect("run helm template");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_documents(&String::from_utf8_lossy(&out.stdout))
}

/// Every non-empty YAML document of a multi-document stream, as JSON.
pub fn parse_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The one rendered object of `kind` (and `name`, when given).
pub fn find<'a>(docs: &'a [Value], kind: &str, name: Option<&str>) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && name.is_none_or(|n| d["metadata"]["name"] == n))
        .unwrap_or_else(|| panic!("no {kind} {name:?} in the rendered chart"))
}

/// The chart installed for one test: its webhook configuration in the API server and,
/// unless stopped, the webhook process serving it.
pub struct Installed {
    /// The release name (also the full name and the MutatingWebhookConfiguration's name).
    pub release: String,
    /// The label value this installation's namespaces carry ([`TEST_LABEL`]).
    pub selector: String,
    /// Every object the chart rendered.
    #[allow(dead_code)] // harness API, not read by every test file
    pub docs: Vec<Value>,
    /// The registered configuration as the API server stored it.
    pub registered: MutatingWebhookConfiguration,
    /// The running webhook (`None` when installed without one or stopped).
    pub webhook: Option<Webhook>,
    /// With `tls.mode: self`: how to run more webhook processes.
    pub self_tls: Option<SelfTls>,
    dir: tempfile::TempDir,
}

/// What a self-managed webhook process needs ([`Installed::install_self`]).
#[derive(Clone)]
pub struct SelfTls {
    /// The Deployment's args, plus `--tls-extra-san` for the loopback address.
    pub args: Vec<String>,
    /// The rendered config.yaml.
    pub config: String,
    /// A kubeconfig for the chart's ServiceAccount.
    pub kubeconfig: PathBuf,
    /// The CA Secret (`--tls-secret`) in [`RELEASE_NAMESPACE`].
    pub secret: String,
}

impl Installed {
    /// Renders the chart with `values` (YAML; TLS from files, `tls.mode: secret`, unless
    /// they say otherwise), registers its webhook configuration and, when `run`, starts the
    /// webhook as the rendered Deployment would. Without `run` the
    /// configuration points at a loopback port nothing listens on: the webhook is down.
    pub async fn install(client: &kube::Client, values: &str, run: bool) -> Installed {
        static N: AtomicUsize = AtomicUsize::new(0);
        let release = format!(
            "inj{}-{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let selector = release.clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let user = dir.path().join("values.yaml");
        std::fs::write(&user, values).expect("write values");
        let own = dir.path().join("test-values.yaml");
        std::fs::write(
            &own,
            serde_json::to_string(&json!({
                "fullnameOverride": release,
                "webhook": {"namespaceSelector": {"matchLabels": {TEST_LABEL: selector}}},
            }))
            .expect("values JSON"),
        )
        .expect("write values");
        // Certificates from files (tls.mode secret) unless `values` says otherwise: the
        // test CA signs them and is the caBundle.
        let ca = Ca::new("webhook test CA");
        let files = dir.path().join("tls-values.yaml");
        std::fs::write(
            &files,
            serde_json::to_string(&json!({"tls": {"mode": "secret", "secret": {
                "name": format!("{release}-tls"),
                "caBundle": base64::Engine::encode(&base64::prelude::BASE64_STANDARD, ca.pem()),
            }}}))
            .expect("values JSON"),
        )
        .expect("write values");
        let docs = template(&release, RELEASE_NAMESPACE, &[&files, &user, &own]);

        let pair = ca.server_pair(&release);
        let (webhook, url) = if run {
            let config = find(&docs, "ConfigMap", Some(&release))["data"]["config.yaml"]
                .as_str()
                .expect("the rendered config.yaml")
                .to_owned();
            let args = deployment_args(&docs, &release);
            let w = Webhook::start_chart(&ca, &pair, &config, &args);
            let url = format!("https://{}/mutate", w.addr);
            (Some(w), url)
        } else {
            let port = super::sidecar::free_port();
            (None, format!("https://127.0.0.1:{port}/mutate"))
        };

        let mut mwc = find(&docs, "MutatingWebhookConfiguration", None).clone();
        swap_client_config(&mut mwc, &url, &ca.pem());
        let mwc: MutatingWebhookConfiguration =
            serde_json::from_value(mwc).expect("a MutatingWebhookConfiguration");
        let registered = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &mwc)
            .await
            .unwrap_or_else(|e| panic!("register the chart's webhook configuration: {e}"));
        Installed {
            release,
            selector,
            docs,
            registered,
            webhook,
            self_tls: None,
            dir,
        }
    }

    /// Renders the chart with `values` (YAML, on top of `tls.mode: self`), creates its
    /// ServiceAccount and RBAC, registers its webhook configuration with the `url` of a
    /// loopback port and the rendered (empty) `caBundle` and, when `run`, starts the webhook
    /// as that ServiceAccount with the Deployment's args. Returns once it serves HTTPS with a
    /// certificate from the CA Secret.
    pub async fn install_self(
        cluster: &Cluster,
        client: &kube::Client,
        values: &str,
        run: bool,
    ) -> Installed {
        static N: AtomicUsize = AtomicUsize::new(0);
        let release = format!(
            "self{}-{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let selector = release.clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let user = dir.path().join("values.yaml");
        std::fs::write(&user, values).expect("write values");
        let own = dir.path().join("test-values.yaml");
        std::fs::write(
            &own,
            serde_json::to_string(&json!({
                "fullnameOverride": release,
                "webhook": {"namespaceSelector": {"matchLabels": {TEST_LABEL: selector}}},
            }))
            .expect("values JSON"),
        )
        .expect("write values");
        let docs = template(&release, RELEASE_NAMESPACE, &[&own, &user]);
        release_namespace(client).await;
        create_rbac(client, &docs).await;
        let sa = find(&docs, "Deployment", Some(&release))["spec"]["template"]["spec"]
            ["serviceAccountName"]
            .as_str()
            .expect("serviceAccountName")
            .to_owned();
        let kubeconfig = dir.path().join("kubeconfig");
        service_account_kubeconfig(cluster, client, &sa, &kubeconfig).await;

        let config = find(&docs, "ConfigMap", Some(&release))["data"]["config.yaml"]
            .as_str()
            .expect("the rendered config.yaml")
            .to_owned();
        let mut args = deployment_args(&docs, &release);
        assert!(
            args.iter().any(|a| a.starts_with("--tls-secret=")),
            "not the self-managed mode: {args:?}"
        );
        // The API server calls https://127.0.0.1:PORT; the test client uses localhost.
        args.push("--tls-extra-san=127.0.0.1,localhost".to_owned());
        let secret = args
            .iter()
            .find_map(|a| a.strip_prefix("--tls-secret="))
            .expect("--tls-secret")
            .to_owned();
        let self_tls = SelfTls {
            args,
            config,
            kubeconfig,
            secret,
        };
        // Without `run` nothing listens behind the url, and nothing makes the CA yet.
        let mut webhook = run.then(|| self_tls.spawn());
        let url = match &webhook {
            Some(w) => format!("https://{}/mutate", w.addr),
            None => format!("https://127.0.0.1:{}/mutate", super::sidecar::free_port()),
        };

        let mut mwc = find(&docs, "MutatingWebhookConfiguration", None).clone();
        for hook in mwc["webhooks"].as_array_mut().expect("webhooks") {
            assert!(
                hook["clientConfig"].get("caBundle").is_none(),
                "tls.mode self renders no caBundle: {hook}"
            );
            hook["clientConfig"] = json!({"url": url});
        }
        let mwc: MutatingWebhookConfiguration =
            serde_json::from_value(mwc).expect("a MutatingWebhookConfiguration");
        let registered = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &mwc)
            .await
            .unwrap_or_else(|e| panic!("register the chart's webhook configuration: {e}"));
        if let Some(w) = &mut webhook {
            self_tls.wait_serving(client, w).await;
        }
        Installed {
            release,
            selector,
            docs,
            registered,
            webhook,
            self_tls: Some(self_tls),
            dir,
        }
    }

    /// Starts the webhook again on the port the configuration's `url` names.
    pub async fn restart(&mut self, client: &kube::Client) {
        let s = self.self_tls.as_ref().expect("installed with install_self");
        let url = self.registered.webhooks.as_ref().expect("webhooks")[0]
            .client_config
            .url
            .clone()
            .expect("url");
        let port = url
            .trim_start_matches("https://127.0.0.1:")
            .trim_end_matches("/mutate")
            .to_owned();
        let mut args = s.args.clone();
        for a in &mut args {
            if a.starts_with("--listen=") {
                *a = format!("--listen=127.0.0.1:{port}");
            }
        }
        let mut w = SelfTls { args, ..s.clone() }.spawn();
        s.wait_serving(client, &mut w).await;
        self.webhook = Some(w);
    }

    /// The CA Secret (`tls.mode: self`), if it exists.
    pub async fn ca_secret(&self, client: &kube::Client) -> Option<Secret> {
        let s = self.self_tls.as_ref().expect("installed with install_self");
        Api::<Secret>::namespaced(client.clone(), RELEASE_NAMESPACE)
            .get_opt(&s.secret)
            .await
            .expect("read the CA Secret")
    }

    /// A fresh namespace this installation's webhook sees; `restricted` adds
    /// `pod-security.kubernetes.io/enforce: restricted`.
    pub async fn namespace(
        &self,
        cluster: &Cluster,
        client: &kube::Client,
        restricted: bool,
    ) -> String {
        let mut labels = vec![(TEST_LABEL, self.selector.as_str())];
        if restricted {
            labels.push(("pod-security.kubernetes.io/enforce", "restricted"));
            labels.push(("pod-security.kubernetes.io/enforce-version", "latest"));
        }
        cluster.namespace(client, "ns", &labels).await
    }

    /// Labels an existing namespace so this installation's webhook sees it.
    pub async fn adopt(&self, client: &kube::Client, namespace: &str) {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Patch, PatchParams};
        Api::<Namespace>::all(client.clone())
            .patch(
                namespace,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {TEST_LABEL: self.selector}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("label namespace {namespace}: {e}"));
    }

    /// Stops the webhook process (the configuration stays registered).
    pub fn stop(&mut self) {
        self.webhook = None;
    }

    /// The webhook's log so far.
    pub fn log(&self) -> String {
        self.webhook.as_ref().map(Webhook::log).unwrap_or_default()
    }

    /// The webhook configuration as stored now.
    pub async fn configuration(&self, client: &kube::Client) -> MutatingWebhookConfiguration {
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get(&self.release)
            .await
            .expect("read the webhook configuration")
    }

    /// Removes the webhook configuration.
    pub async fn uninstall(self, client: &kube::Client) {
        let _ = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .delete(&self.release, &DeleteParams::default())
            .await;
        drop(self.dir);
    }
}

/// `clientConfig` of every webhook: the Service reference replaced by `url`, `caBundle`
/// by `ca_pem`. Nothing else changes.
pub fn swap_client_config(mwc: &mut Value, url: &str, ca_pem: &str) {
    use base64::Engine;
    let bundle = base64::prelude::BASE64_STANDARD.encode(ca_pem);
    for hook in mwc["webhooks"]
        .as_array_mut()
        .expect("webhooks in the configuration")
    {
        hook["clientConfig"] = json!({"url": url, "caBundle": bundle});
    }
}

/// The webhook container's args in the rendered Deployment.
pub fn deployment_args(docs: &[Value], release: &str) -> Vec<String> {
    let deployment = find(docs, "Deployment", Some(release));
    let container = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "webhook"))
        .expect("the webhook container");
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

/// The pinned kubectl (`scripts/setup-helm`), run against `cluster` with `args`:
/// `(exit code, stdout, stderr)`.
pub fn kubectl(
    cluster: &super::cluster::Cluster,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let kubectl = repo().join(".tools/bin/kubectl");
    assert!(
        kubectl.is_file(),
        "{} is missing: run scripts/setup-helm (scripts/test does)",
        kubectl.display()
    );
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write kubectl stdin");
    drop(input);
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl SelfTls {
    /// Starts a webhook process (on a free port unless `--listen` names a loopback one), not
    /// waiting for it.
    pub fn spawn(&self) -> Webhook {
        Webhook::spawn(
            super::pki::client_config(""),
            None,
            &self.config,
            &self.args,
            &[("KUBECONFIG", &self.kubeconfig)],
        )
    }

    /// Waits until the CA Secret exists, then until `w` serves HTTPS with a certificate
    /// from it.
    pub async fn wait_serving(&self, client: &kube::Client, w: &mut Webhook) {
        let secrets = Api::<Secret>::namespaced(client.clone(), RELEASE_NAMESPACE);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let bundle = loop {
            if let Ok(Some(s)) = secrets.get_opt(&self.secret).await
                && let Some(crt) = s.data.as_ref().and_then(|d| d.get("ca.crt"))
            {
                break String::from_utf8(crt.0.clone()).expect("PEM");
            }
            assert!(
                w.running(),
                "the webhook exited before the CA Secret existed:\n{}",
                w.log()
            );
            assert!(
                std::time::Instant::now() < deadline,
                "no CA Secret {} after 30 s:\n{}",
                self.secret,
                w.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        w.trust(&bundle);
        w.wait_healthy();
    }
}

/// The namespace the releases are rendered into (shared by the tests; made once).
pub async fn release_namespace(client: &kube::Client) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": RELEASE_NAMESPACE}})).expect("ns");
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("create namespace {RELEASE_NAMESPACE}: {e}"),
    }
}

/// Creates the rendered ServiceAccounts, Roles, RoleBindings, ClusterRoles and
/// ClusterRoleBindings as they are.
async fn create_rbac(client: &kube::Client, docs: &[Value]) {
    async fn create<K>(api: Api<K>, doc: &Value)
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let obj: K = serde_json::from_value(doc.clone()).expect("a rendered object");
        api.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    }
    for doc in docs {
        let ns = RELEASE_NAMESPACE;
        match doc["kind"].as_str() {
            Some("ServiceAccount") => {
                create(Api::<ServiceAccount>::namespaced(client.clone(), ns), doc).await
            }
            Some("Role") => create(Api::<Role>::namespaced(client.clone(), ns), doc).await,
            Some("RoleBinding") => {
                create(Api::<RoleBinding>::namespaced(client.clone(), ns), doc).await
            }
            Some("ClusterRole") => create(Api::<ClusterRole>::all(client.clone()), doc).await,
            Some("ClusterRoleBinding") => {
                create(Api::<ClusterRoleBinding>::all(client.clone()), doc).await
            }
            _ => {}
        }
    }
}

/// Writes a kubeconfig for ServiceAccount `sa` of [`RELEASE_NAMESPACE`], with a token from
/// the API server's TokenRequest (1 hour).
pub async fn service_account_kubeconfig(
    cluster: &Cluster,
    client: &kube::Client,
    sa: &str,
    out: &Path,
) {
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }))
    .expect("TokenRequest");
    let answer: TokenRequest = Api::<ServiceAccount>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .create_subresource("token", sa, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {RELEASE_NAMESPACE}/{sa}: {e}"));
    let token = answer.status.expect("token status").token;
    // A service account token of this API server (its payload names the issuer).
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["iss"], cluster.issuer.as_str(), "{claims}");
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "envtest", "cluster": {
            "server": cluster.server,
            "certificate-authority": cluster.ca_file,
        }}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "envtest", "user": sa, "namespace": RELEASE_NAMESPACE}}],
        "current-context": "sa",
    });
    std::fs::write(
        out,
        serde_json::to_string_pretty(&kubeconfig).expect("JSON"),
    )
    .expect("write the kubeconfig");
}
