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

use super::cluster::Cluster;
use super::pki::Ca;
use super::webhook::Webhook;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The label that ties a test's namespaces to its webhook.
pub const TEST_LABEL: &str = "ssm-injector-test";

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
    dir: tempfile::TempDir,
}

impl Installed {
    /// Renders the chart with `values` (YAML), registers its webhook configuration and,
    /// when `run`, starts the webhook as the rendered Deployment would. Without `run` the
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
        let docs = template(&release, "ssm-injector", &[&user, &own]);

        let ca = Ca::new("webhook test CA");
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
            dir,
        }
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
