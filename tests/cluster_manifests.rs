//! Every Kubernetes object we ship, checked by a real kube-apiserver: server-side dry-run
//! (`kubectl apply --server-side --dry-run=server`, which runs decoding, defaulting,
//! validation and admission but stores nothing) of each object in `deploy/kubernetes/*.yaml` and of the chart rendered
//! with every value set in `charts/ssm-injector/ci/`, plus the pods of every Deployment and
//! StatefulSet created (dry-run) in a namespace that enforces PodSecurity `restricted`.
//!
//! cert-manager's CRDs are not available from any registry this project installs from, so
//! a private API server (not the shared one: other tests prove what happens *without*
//! cert-manager) gets stand-ins for `Certificate`, `Issuer` and `ClusterIssuer` that accept
//! any spec: their objects are checked for kind, metadata and placement only (the chart's
//! schema and `scripts/check-packaging` check their fields).

use crate::support::chart::{kubectl, repo};
use crate::support::cluster::{Cluster, private};
use crate::support::wait::eventually_ok;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Stand-in CRDs for cert-manager's kinds (see the module comment), created once.
async fn cert_manager_stand_ins(client: &kube::Client) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for (kind, plural, scope) in [
        ("Certificate", "certificates", "Namespaced"),
        ("Issuer", "issuers", "Namespaced"),
        ("ClusterIssuer", "clusterissuers", "Cluster"),
    ] {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": format!("{plural}.cert-manager.io")},
            "spec": {
                "group": "cert-manager.io",
                "names": {"kind": kind, "plural": plural},
                "scope": scope,
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true
                    }}
                }]
            }
        }))
        .expect("CRD");
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create the {kind} stand-in CRD: {e}"),
        }
    }
    // Served once Established.
    let what = "the stand-in CRDs established";
    eventually_ok(Duration::from_secs(60), what, || async {
        for plural in ["certificates", "issuers", "clusterissuers"] {
            let crd = crds
                .get(&format!("{plural}.cert-manager.io"))
                .await
                .expect("get CRD");
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if !established {
                return Err(format!("{plural} not established"));
            }
        }
        Ok(())
    })
    .await;
}

/// `kubectl apply --server-side --dry-run=server` of `manifests` (what a user runs), with
/// `namespace` for objects that name none: the objects as the API server read them, or one
/// line per refusal. kubectl decodes the YAML as Kubernetes does (YAML 1.1: `0440` is an
/// octal number), which a YAML 1.2 reader would not.
fn dry_run(
    cluster: &Cluster,
    manifests: &str,
    namespace: &str,
    what: &str,
) -> Result<Vec<Value>, String> {
    let (code, stdout, stderr) = kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--field-manager=ssm-injector-dry-run",
            "--dry-run=server",
            "--namespace",
            namespace,
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(manifests),
    );
    if code != 0 {
        return Err(format!(
            "{what}: kubectl apply --dry-run=server failed:\n{stderr}"
        ));
    }
    let out: Value = serde_json::from_str(&stdout)
        .map_err(|e| format!("{what}: kubectl printed no JSON ({e}):\n{stdout}"))?;
    Ok(match out["kind"].as_str() {
        Some("List") => out["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![out],
    })
}

/// Creates (dry-run) the pod of every Deployment and StatefulSet in `restricted`, a
/// namespace enforcing PodSecurity `restricted`; returns one line per refusal.
async fn restricted_pods(
    client: &kube::Client,
    docs: &[Value],
    restricted: &str,
    what: &str,
) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(client.clone(), restricted);
    let mut failures = Vec::new();
    for doc in docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
    {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let mut spec = doc["spec"]["template"]["spec"].clone();
        // The namespace has only its `default` ServiceAccount; PodSecurity ignores the name.
        spec["serviceAccountName"] = json!("default");
        let pod: Pod = match serde_json::from_value(json!({
            "metadata": {"name": name, "labels": doc["spec"]["template"]["metadata"]["labels"]},
            "spec": spec
        })) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{what}: {name}: pod template does not parse: {e}"));
                continue;
            }
        };
        let params = PostParams {
            dry_run: true,
            ..Default::default()
        };
        if let Err(e) = pods.create(&params, &pod).await {
            failures.push(format!(
                "{what}: the pod of {name} in a restricted namespace: {e}"
            ));
        }
    }
    failures
}

/// `helm template dry-run charts/ssm-injector -n NAMESPACE -f SET`, as text.
fn helm_template(namespace: &str, set: &std::path::Path) -> String {
    let out = std::process::Command::new(crate::support::chart::helm())
        .args(["template", "dry-run"])
        .arg(repo().join("charts/ssm-injector"))
        .args(["--namespace", namespace, "-f"])
        .arg(set)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

async fn ensure_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

async fn setup(cluster: &Cluster) -> (kube::Client, String) {
    let client = cluster.client().await;
    cert_manager_stand_ins(&client).await;
    let restricted = cluster
        .namespace(
            &client,
            "restricted",
            &[("pod-security.kubernetes.io/enforce", "restricted")],
        )
        .await;
    (client, restricted)
}

/// The `*.yaml` files of `dir` (relative to the repository), sorted.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Dry-runs each `(name, manifests)` in `namespace` and creates their pods (dry-run) in
/// `restricted`; panics listing every refusal.
async fn check_all(
    cluster: &Cluster,
    client: &kube::Client,
    restricted: &str,
    namespace: &str,
    sets: Vec<(String, String)>,
) {
    let mut failures = Vec::new();
    for (what, manifests) in sets {
        match dry_run(cluster, &manifests, namespace, &what) {
            Ok(docs) => {
                assert!(docs.len() >= 5, "{what}: only {} objects", docs.len());
                failures.extend(restricted_pods(client, &docs, restricted, &what).await);
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_object_in_deploy_kubernetes_passes_a_server_side_dry_run() {
    let Some(own) = private() else { return };
    let cluster = &own;
    let (client, restricted) = setup(cluster).await;
    // The raw manifests live in namespace ssm-injector (created first, as deploy/README says).
    ensure_namespace(&client, "ssm-injector").await;
    let files = yaml_files("deploy/kubernetes");
    assert!(files.len() >= 2, "{files:?}");
    let sets = files
        .iter()
        .map(|f| (file_name(f), std::fs::read_to_string(f).expect("read")))
        .collect();
    check_all(cluster, &client, &restricted, "ssm-injector", sets).await;
}

#[tokio::test]
async fn the_chart_with_every_value_set_passes_a_server_side_dry_run() {
    let Some(own) = private() else { return };
    let cluster = &own;
    let (client, restricted) = setup(cluster).await;
    let release_ns = cluster.namespace(&client, "release", &[]).await;
    let files = yaml_files("charts/ssm-injector/ci");
    assert!(files.len() >= 5, "{files:?}");
    let sets = files
        .iter()
        .map(|f| (file_name(f), helm_template(&release_ns, f)))
        .collect();
    check_all(cluster, &client, &restricted, &release_ns, sets).await;
}
