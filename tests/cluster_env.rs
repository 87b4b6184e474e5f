//! `ssm-injector.io/env` against a real kube-apiserver (v1.36, [`crate::support::cluster`]),
//! registered as the chart renders it: the mutated pod is stored in a PodSecurity
//! `restricted` namespace with one `env[].valueFrom.fileKeyRef` per `param-<KEY>`; then the
//! stored init container's args run against moto (as `cluster_access` runs them) and every
//! key is read back from the file it wrote with the port of the kubelet's parser (`kubelet`
//! in tests/readers, beside its source reference); a value it cannot carry (`'`) stops the
//! init container with exit 6 naming the key. Denials come back through the API server.

use crate::cluster_access::{empty_dir, render_as_the_init_container, run_the_init_container};
use crate::cluster_webhook::{denial_of, restricted_pod};
use crate::env_readers::read_with;
use crate::require_cluster;
use crate::support::chart::Installed;
use crate::support::{shared, unique_prefix};
use k8s_openapi::api::core::v1::{Container, FileKeySelector, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

/// The injector's volume and the file it writes by default.
const VOLUME: &str = "ssm-injector";
const FILE: &str = "app.env";

/// `restricted_pod` with a second container `worker` and an `env` entry on `app`.
fn env_pod(name: &str, annotations: serde_json::Value) -> Pod {
    let mut pod = serde_json::to_value(restricted_pod(name, annotations)).expect("JSON");
    let app = pod["spec"]["containers"][0].clone();
    pod["spec"]["containers"][0]["env"] = json!([{"name": "LOG_LEVEL", "value": "debug"}]);
    let mut worker = app;
    worker["name"] = json!("worker");
    pod["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(worker);
    serde_json::from_value(pod).expect("a Pod")
}

fn file_key_refs(c: &Container) -> Vec<(String, FileKeySelector)> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| {
            let r = e.value_from.as_ref()?.file_key_ref.as_ref()?;
            Some((e.name.clone(), r.clone()))
        })
        .collect()
}

#[tokio::test]
async fn env_pods_are_stored_with_file_key_refs_that_the_kubelets_parser_reads_back_exactly() {
    let cluster = require_cluster!();
    let emu = shared();
    let prefix = unique_prefix("env");
    // Values a k8s-env file carries (no `'`, not empty), hostile for other readers: one
    // that would start a new variable in a line-based reader must stay one value.
    let values = [
        ("DB_PASSWORD", "s3cr3t"),
        ("SPACES", "  a value with spaces, # and = "),
        ("SHELL_CHARS", "$HOME ${PATH} `id` \\ \"dq\" \\n"),
        (
            "MULTI",
            "line one\nNODE_OPTIONS=--require=/tmp/evil.js\n# not a comment",
        ),
        ("UNICODE", "pässwörd \u{2028} ✓"),
    ];
    let mut annotations = json!({
        "ssm-injector.io/inject": "true",
        "ssm-injector.io/env": "true",
        "ssm-injector.io/containers": "app",
    });
    for (key, value) in values {
        let name = format!("{prefix}/{}", key.to_ascii_lowercase());
        emu.put_secure(&name, value);
        annotations[format!("ssm-injector.io/param-{key}")] = json!(name);
    }
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &env_pod("env", annotations))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the restricted namespace refused the env pod: {e}\nwebhook log:\n{}",
                chart.log()
            )
        });

    // What a kubelet would run: the pod as the API server stored it.
    let stored = pods.get("env").await.expect("get the pod");
    let spec = stored.spec.as_ref().expect("spec");
    let app = spec
        .containers
        .iter()
        .find(|c| c.name == "app")
        .expect("app");
    let worker = spec
        .containers
        .iter()
        .find(|c| c.name == "worker")
        .expect("worker");
    let mut want: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
    want.sort_unstable();
    let refs = file_key_refs(app);
    assert_eq!(
        refs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        want,
        "app's fileKeyRef entries: {:?}",
        app.env
    );
    for (name, r) in &refs {
        assert_eq!(
            (r.volume_name.as_str(), r.path.as_str(), r.key.as_str()),
            (VOLUME, FILE, name.as_str()),
            "{name}"
        );
        assert_ne!(r.optional, Some(true), "{name}");
    }
    assert_eq!(
        app.env
            .as_ref()
            .and_then(|e| e.first())
            .map(|e| e.name.as_str()),
        Some("LOG_LEVEL"),
        "the app's own entry is kept first"
    );
    assert!(
        app.volume_mounts.iter().flatten().all(|m| m.name != VOLUME),
        "the app needs no mount: {:?}",
        app.volume_mounts
    );
    assert!(file_key_refs(worker).is_empty(), "worker was not chosen");
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name == VOLUME && v.empty_dir.is_some()),
        "the fileKeyRef volume is an emptyDir: {:?}",
        spec.volumes
    );

    // The stored init container writes the file; the kubelet's parser (the port in
    // tests/readers, `read_with(["kubelet"])`) reads each key.
    let root = tempfile::tempdir().expect("tempdir");
    let volume = empty_dir(root.path(), &stored);
    let file = render_as_the_init_container(&stored, &volume);
    assert_eq!(file, volume.join(FILE));
    let read = read_with(&["kubelet"], &file)
        .remove("kubelet")
        .expect("the kubelet reader ran")
        .unwrap_or_else(|e| panic!("the kubelet would fail: {e}"));
    for (name, r) in &refs {
        let (_, value) = values
            .iter()
            .find(|(k, _)| k == name)
            .expect("a value per key");
        assert_eq!(read.get(&r.key).map(String::as_str), Some(*value), "{name}");
    }
    assert_eq!(
        read.keys().map(String::as_str).collect::<Vec<_>>(),
        want,
        "every variable the kubelet finds in the file: a value created another"
    );

    // A value the kubelet cannot read back exactly (a `'`) stops the init container with
    // exit 6 naming the key, never a different value: the pod does not start.
    let quoted = format!("{prefix}/quoted");
    let secret = "it's-a-s3cret";
    emu.put_secure(&quoted, secret);
    pods.create(
        &PostParams::default(),
        &env_pod(
            "env-quote",
            json!({
                "ssm-injector.io/inject": "true",
                "ssm-injector.io/env": "true",
                "ssm-injector.io/param-QUOTED": quoted,
            }),
        ),
    )
    .await
    .expect("create the pod");
    let stored = pods.get("env-quote").await.expect("get the pod");
    let root = tempfile::tempdir().expect("tempdir");
    let volume = empty_dir(root.path(), &stored);
    let (out, file) = run_the_init_container(&stored, &volume);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("QUOTED") && stderr.contains("k8s-env"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "the value was printed: {stderr}");
    assert!(!file.exists(), "a file was written");
}

#[tokio::test]
async fn env_with_a_path_is_denied_through_the_api_server_naming_both_annotations() {
    let cluster = require_cluster!();
    let message = denial_of(
        cluster,
        &env_pod(
            "env-path",
            json!({
                "ssm-injector.io/inject": "true",
                "ssm-injector.io/env": "true",
                "ssm-injector.io/path": "/app/prod/",
            }),
        ),
    )
    .await;
    for name in ["ssm-injector.io/env", "ssm-injector.io/path"] {
        assert!(message.contains(name), "{message}");
    }
}
