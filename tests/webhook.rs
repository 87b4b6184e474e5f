//! `ssm-injector webhook` end to end: the real binary over real HTTPS, with a CA and server
//! certificates made by rcgen, real `admission.k8s.io/v1` AdmissionReview JSON, the
//! returned JSONPatch applied to the original pod and the result read as a k8s-openapi Pod.

use crate::support::pki::Ca;
use crate::support::wait::poll_until;
use crate::support::webhook::{Webhook, write_pair};
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn der_of(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "apps", "annotations": annotations},
        "spec": {"containers": [
            {"name": "app", "image": "nginx"},
            {"name": "log", "image": "busybox"}
        ]}
    })
}

fn review(object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "",
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

fn unbase64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::prelude::BASE64_STANDARD
        .decode(s)
        .expect("the patch is valid base64")
}

/// The review's patch applied to `original` (unchanged when there is no patch).
fn apply(original: &Value, answer: &Value) -> Value {
    let response = &answer["response"];
    let mut result = original.clone();
    if let Some(patch) = response.get("patch") {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = unbase64(patch.as_str().expect("patch is a base64 string"));
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSONPatch");
        json_patch::patch(&mut result, &patch).expect("the patch applies to the original pod");
    }
    result
}

#[test]
fn webhook_injects_an_annotated_pod_over_https_and_a_second_pass_changes_nothing() {
    let ca = Ca::new("ssm-injector test CA");
    let w = Webhook::start(&ca, &ca.server_pair("webhook-1"));
    let original = pod(json!({
        "ssm-injector.io/inject": "true",
        "ssm-injector.io/path": "/app/prod/",
        "ssm-injector.io/containers": "app"
    }));
    let answer = w.review(&review(&original));
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"],
        "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4"
    );
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let mutated = apply(&original, &answer);
    let result: Pod = serde_json::from_value(mutated.clone()).expect("a k8s-openapi Pod");
    let spec = result.spec.expect("spec");

    let volumes = spec.volumes.unwrap_or_default();
    let volume = volumes
        .iter()
        .find(|v| {
            v.empty_dir
                .as_ref()
                .is_some_and(|e| e.medium.as_deref() == Some("Memory"))
        })
        .unwrap_or_else(|| panic!("a memory emptyDir in {volumes:?}"));
    let inits = spec.init_containers.unwrap_or_default();
    let first = inits.first().expect("an init container");
    assert_eq!(
        first.image.as_deref(),
        Some("ghcr.io/ssm-injector/ssm-injector:latest")
    );
    let mounted = |c: &k8s_openapi::api::core::v1::Container| {
        c.volume_mounts
            .as_ref()
            .and_then(|m| m.iter().find(|m| m.name == volume.name).cloned())
    };
    assert!(
        mounted(first).is_some(),
        "the init container writes the volume"
    );
    let app_mount = mounted(&spec.containers[0]).expect("app gets the mount");
    assert_eq!(app_mount.read_only, Some(true));
    assert!(mounted(&spec.containers[1]).is_none(), "log was not chosen");

    // The pod sets no securityContext: the files are 0444, and the client is told.
    let warnings = answer["response"]["warnings"].to_string();
    assert!(
        warnings.contains("mode 0444") && warnings.contains("fsGroup"),
        "{answer}"
    );

    let again = w.review(&review(&mutated));
    assert_eq!(again["response"]["allowed"], true);
    assert!(
        again["response"].get("patch").is_none(),
        "a second pass must change nothing: {again}"
    );
}

/// A review is pure CPU: the webhook answers them on one worker thread per core (a
/// current-thread runtime left every core but one idle while reviews queued).
#[test]
fn webhook_answers_reviews_on_a_worker_thread_per_core() {
    let ca = Ca::new("ssm-injector test CA");
    let w = Webhook::start(&ca, &ca.server_pair("webhook-1"));
    let injected = pod(json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/"}));
    let answer = w.review(&review(&injected));
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tasks = std::fs::read_dir(format!("/proc/{}/task", w.pid())).expect("/proc/PID/task");
    let names: Vec<String> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    let workers = names.iter().filter(|n| *n == "webhook-worker").count();
    assert!(
        workers >= cores,
        "{workers} webhook-worker threads for {cores} cores: {names:?}"
    );
}

#[test]
fn webhook_denies_a_bad_annotation_and_leaves_other_pods_alone() {
    let ca = Ca::new("ssm-injector test CA");
    let w = Webhook::start(&ca, &ca.server_pair("webhook-1"));
    let bad = pod(json!({
        "ssm-injector.io/inject": "true",
        "ssm-injector.io/path": "/app/prod/",
        "ssm-injector.io/mode": "sometimes"
    }));
    let answer = w.review(&review(&bad));
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"]
        .as_str()
        .expect("a message");
    assert!(message.contains("ssm-injector.io/mode"), "{message}");

    let plain = pod(json!({}));
    let answer = w.review(&review(&plain));
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none(), "{answer}");

    // Garbage gets a 400 and the server keeps serving.
    let (status, _) = w
        .connect()
        .and_then(|mut c| c.request("POST", "/mutate", "{not json"))
        .expect("an answer");
    assert_eq!(status, 400);
    let (status, metrics) = w
        .connect()
        .and_then(|mut c| c.request("GET", "/metrics", ""))
        .expect("an answer");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ssm_injector_webhook_reviews_total{decision=\"denied\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn webhook_denies_unsafe_annotations_with_a_bounded_message() {
    let ca = Ca::new("ssm-injector test CA");
    let w = Webhook::start(&ca, &ca.server_pair("webhook-1"));
    let huge = format!("/{}", "x".repeat(1 << 20));
    let cases = [
        (
            json!({"ssm-injector.io/mode": "sidecar",
                   "ssm-injector.io/reload-process": "nginx",
                   "ssm-injector.io/reload-signal": "KILL"}),
            "ssm-injector.io/reload-signal",
            "HUP, USR1, USR2, TERM, INT, QUIT or WINCH",
        ),
        (
            json!({"ssm-injector.io/mount-path": "/etc"}),
            "ssm-injector.io/mount-path",
            "system directory",
        ),
        (
            json!({"ssm-injector.io/memory-limit": "1Ki"}),
            "ssm-injector.io/memory-limit",
            "8Mi to 4Gi",
        ),
        (
            json!({"ssm-injector.io/file-mode": "0777"}),
            "ssm-injector.io/file-mode",
            "group or others write",
        ),
        (
            json!({"ssm-injector.io/mount-path": format!("{huge} y")}),
            "ssm-injector.io/mount-path",
            " bytes)",
        ),
    ];
    for (extra, annotation, says) in cases {
        let mut annotations = json!({
            "ssm-injector.io/inject": "true",
            "ssm-injector.io/path": "/app/prod/"
        });
        for (k, v) in extra.as_object().expect("an object") {
            annotations[k] = v.clone();
        }
        let answer = w.review(&review(&pod(annotations)));
        assert_eq!(answer["response"]["allowed"], false, "{annotation}");
        let message = answer["response"]["status"]["message"]
            .as_str()
            .expect("a message");
        assert!(
            message.contains(annotation) && message.contains(says),
            "{annotation}: {}",
            &message[..message.len().min(2048)]
        );
        assert!(
            message.len() <= 2048,
            "{annotation}: a message of {} bytes",
            message.len()
        );
    }
}

#[test]
fn webhook_speaks_only_tls() {
    let ca = Ca::new("ssm-injector test CA");
    let w = Webhook::start(&ca, &ca.server_pair("webhook-1"));
    let mut tcp = TcpStream::connect(&w.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {}",
        String::from_utf8_lossy(&raw)
    );
    // And it still serves TLS clients.
    assert!(
        w.connect()
            .and_then(|mut c| c.request("GET", "/healthz", ""))
            .is_some()
    );
}

#[test]
fn webhook_serves_a_rotated_certificate_to_new_connections_without_dropping_open_ones() {
    let ca = Ca::new("ssm-injector test CA");
    let first = ca.server_pair("webhook-1");
    let w = Webhook::start(&ca, &first);
    let mut open = w.connect().expect("a connection");
    assert_eq!(open.peer_certificate(), der_of(&first.cert));
    assert_eq!(open.request("GET", "/healthz", "").map(|a| a.0), Some(200));

    // A bad pair is refused and the old one kept.
    std::fs::write(&w.cert, "not a certificate").expect("write");
    poll_until(
        Duration::from_secs(20),
        "the bad pair is seen and refused",
        || {
            w.connect()
                .and_then(|mut c| c.request("GET", "/metrics", ""))
                .filter(|(_, text)| {
                    text.contains("ssm_injector_webhook_cert_reloads_total{outcome=\"error\"} 1\n")
                })
        },
    );
    let c = w.connect().expect("still serving");
    assert_eq!(c.peer_certificate(), der_of(&first.cert));

    let second = ca.server_pair("webhook-2");
    write_pair(&w.cert, &w.key, &second);
    let new = der_of(&second.cert);
    poll_until(
        Duration::from_secs(20),
        "new handshakes present the rotated certificate",
        || {
            w.connect()
                .filter(|c| c.peer_certificate() == new)
                .map(|_| ())
        },
    );
    // The connection opened before the rotation still answers.
    assert_eq!(open.request("GET", "/healthz", "").map(|a| a.0), Some(200));
    let answer = w.review(&review(&pod(json!({}))));
    assert_eq!(answer["response"]["allowed"], true);
    assert!(w.log().contains("certificate reloaded"), "{}", w.log());
}

/// A webhook config that points the sidecars at a hub whose CA is `ca_file`.
fn hub_config(ca_file: &Path, audience: &str) -> String {
    let quoted = |s: &str| serde_json::to_string(s).expect("a JSON string");
    format!(
        "hub-url: https://ssm-injector-hub.ssm-injector.svc:8443\nhub-ca-file: {}\nhub-audience: {}\n",
        quoted(&ca_file.display().to_string()),
        quoted(audience)
    )
}

#[test]
fn webhook_gives_the_sidecar_a_hub_token_of_the_configured_audience() {
    let ca = Ca::new("ssm-injector test CA");
    let hub_ca = tempfile::tempdir().expect("tempdir");
    let ca_file = hub_ca.path().join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).expect("write the hub CA");
    let config = hub_config(&ca_file, "https://hub.example.com/ssm");
    let w = Webhook::start_with(&ca, &ca.server_pair("webhook-1"), Some(&config));
    let original = pod(json!({
        "ssm-injector.io/inject": "true",
        "ssm-injector.io/path": "/app/prod/",
        "ssm-injector.io/mode": "init+sidecar"
    }));
    let answer = w.review(&review(&original));
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let result: Pod = serde_json::from_value(apply(&original, &answer)).expect("a Pod");
    let spec = result.spec.expect("spec");
    let volumes = spec.volumes.clone().unwrap_or_default();
    let token = volumes
        .iter()
        .find(|v| v.name == "ssm-injector-hub-token")
        .and_then(|v| v.projected.as_ref()?.sources.as_ref()?.first())
        .and_then(|s| s.service_account_token.as_ref())
        .unwrap_or_else(|| panic!("a projected hub token in {volumes:?}"));
    assert_eq!(
        token.audience.as_deref(),
        Some("https://hub.example.com/ssm")
    );
    let sidecar = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "ssm-injector")
        .expect("the native sidecar");
    let args = sidecar.args.clone().unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|a| a == ["--hub", "https://ssm-injector-hub.ssm-injector.svc:8443"]),
        "{args:?}"
    );
    assert!(
        sidecar.env.iter().flatten().any(|e| {
            e.name == "SSM_INJECTOR_HUB_CA_PEM" && e.value.as_deref() == Some(&ca.pem())
        }),
        "the hub CA in {:?}",
        sidecar.env
    );
}

/// The config's region, the derived file access (with its warning) and a free admin port,
/// through the real binary.
#[test]
fn webhook_gives_the_configured_region_a_free_port_and_warns_when_files_are_0444() {
    let ca = Ca::new("ssm-injector test CA");
    let w = Webhook::start_with(
        &ca,
        &ca.server_pair("webhook-1"),
        Some("region: eu-west-1\n"),
    );
    let mut original = pod(json!({
        "ssm-injector.io/inject": "true",
        "ssm-injector.io/path": "/app/prod/",
        "ssm-injector.io/mode": "init+sidecar"
    }));
    original["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8099}]);
    let answer = w.review(&review(&original));
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let warnings: Vec<&str> = answer["response"]["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("warnings in {answer}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings.len() == 1
            && warnings[0].contains("mode 0444")
            && warnings[0].contains("app (uid unknown), log (uid unknown)"),
        "{warnings:?}"
    );
    let result: Pod = serde_json::from_value(apply(&original, &answer)).expect("a k8s-openapi Pod");
    assert_eq!(
        result
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("ssm-injector.io/file-access"))
            .map(String::as_str)
            .unwrap_or_default()
            .split(':')
            .next(),
        Some("mode 0444")
    );
    let spec = result.spec.expect("spec");
    for c in spec.init_containers.iter().flatten() {
        let args = c.args.clone().unwrap_or_default();
        assert!(
            args.windows(2).any(|a| a == ["--region", "eu-west-1"]),
            "{}: {args:?}",
            c.name
        );
        if c.name == "ssm-injector" {
            assert!(
                args.windows(2).any(|a| a == ["--listen", "0.0.0.0:8100"]),
                "the app has 8099: {args:?}"
            );
        }
    }
}

#[test]
fn webhook_refuses_to_start_with_a_bad_hub_audience() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("ssm-injector test CA");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    write_pair(&cert, &key, &ca.server_pair("webhook-1"));
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).expect("write the hub CA");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, hub_config(&ca_file, "my hub")).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_ssm-injector"))
        .args(["webhook", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.yaml") && stderr.contains("hub-audience \"my hub\" has whitespace"),
        "{stderr}"
    );
}

#[test]
fn webhook_refuses_to_start_without_its_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.crt");
    let out = Command::new(env!("CARGO_BIN_EXE_ssm-injector"))
        .args(["webhook", "--cert"])
        .arg(&missing)
        .arg("--key")
        .arg(dir.path().join("missing.key"))
        .args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.crt"), "{stderr}");
}

#[test]
fn sighup_makes_the_webhook_serve_its_rotated_certificate_now_and_never_stops_it() {
    let ca = Ca::new("ssm-injector test CA");
    let first = ca.server_pair("webhook-1");
    // Files checked once an hour: only SIGHUP can bring the new pair in time.
    let args = [
        "webhook",
        "--cert=/tls/tls.crt",
        "--key=/tls/tls.key",
        "--listen=0.0.0.0:8443",
        "--cert-check-interval=1h",
    ]
    .map(str::to_owned);
    let mut w = Webhook::start_chart(&ca, &first, "", &args);
    let hups = |w: &Webhook| {
        w.log()
            .matches("SIGHUP: re-reading the certificate files now")
            .count()
    };

    // Nothing changed: logged, still serving the same pair.
    w.signal("HUP");
    poll_until(Duration::from_secs(10), "the SIGHUP is logged", || {
        (hups(&w) == 1).then_some(())
    });
    assert!(w.running(), "SIGHUP stopped the webhook:\n{}", w.log());
    assert_eq!(
        w.connect().expect("serving").peer_certificate(),
        der_of(&first.cert)
    );

    let second = ca.server_pair("webhook-2");
    write_pair(&w.cert, &w.key, &second);
    let new = der_of(&second.cert);
    let sent = std::time::Instant::now();
    w.signal("HUP");
    poll_until(
        Duration::from_secs(5),
        "new handshakes present the rotated certificate after SIGHUP",
        || {
            w.connect()
                .filter(|c| c.peer_certificate() == new)
                .map(|_| ())
        },
    );
    eprintln!(
        "rotated certificate served {:?} after SIGHUP",
        sent.elapsed()
    );
    assert!(w.running(), "{}", w.log());
    assert_eq!(hups(&w), 2, "{}", w.log());
    assert_eq!(
        w.review(&review(&pod(json!({}))))["response"]["allowed"],
        true
    );
}
