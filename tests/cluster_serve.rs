//! `ssm-injector.io/serve` against a real kube-apiserver (v1.36, [`crate::support::cluster`]),
//! registered as the chart renders it: the pod is admitted by a PodSecurity `restricted`
//! namespace with the sidecar serving the Lambda extension's API and the app told its port
//! and token file. Then what a kubelet would run, run here: the stored sidecar's args as
//! its uid against moto (only its two ports swapped for free ones), and Lambda-style
//! Python as the app's uid with the app's stored environment: it reads the token from the
//! file the sidecar made and the value from the endpoint, and a name under the pod's
//! `serve-allow` prefix on demand. Needs root, like CI.

use crate::cluster_access::{as_user, identity, in_volume, kubelet_volume, spawn_as_container};
use crate::cluster_webhook::restricted_pod;
use crate::require_cluster;
use crate::support::chart::Installed;
use crate::support::emulator::venv;
use crate::support::sidecar::free_port;
use crate::support::wait::within;
use crate::support::{shared, unique_prefix};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Duration;

fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    let spec = pod.spec.as_ref().expect("spec");
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[tokio::test]
async fn a_serve_pods_app_reads_the_sidecars_values_with_the_token_it_made() {
    let cluster = require_cluster!();
    let emu = shared();
    let prefix = unique_prefix("kserve");
    let name = format!("{prefix}/db");
    emu.put_secure(&name, "served-secret");
    // Not in the spec: read on demand, under the pod's serve-allow prefix.
    let shared_name = format!("{prefix}/shared/flag");
    emu.put_str(&shared_name, "on");
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let annotations = json!({
        "ssm-injector.io/inject": "true",
        "ssm-injector.io/mode": "init+sidecar",
        "ssm-injector.io/serve": "true",
        "ssm-injector.io/param-DB": name,
        "ssm-injector.io/serve-allow": format!("{prefix}/shared/"),
    });
    pods.create(
        &PostParams::default(),
        &restricted_pod("serve", annotations),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "the restricted namespace refused the pod: {e}\n{}",
            chart.log()
        )
    });
    let stored = pods.get("serve").await.expect("get the pod");
    let sidecar = container(&stored, "ssm-injector");
    let app = container(&stored, "app");
    let env = |c: &Container, k: &str| -> Option<String> {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == k)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        env(app, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT").as_deref(),
        Some("2773")
    );
    assert_eq!(
        env(app, "SSM_INJECTOR_SERVE_TOKEN_FILE").as_deref(),
        Some("/ssm/serve-token")
    );

    let (root, volume) = kubelet_volume(&stored);
    let map = |a: &str| in_volume(&volume, "/ssm", a);
    // The stored sidecar, its ports swapped for free ones.
    let (serve_port, admin_port) = (free_port(), free_port());
    let mut args: Vec<String> = sidecar.args.iter().flatten().map(|a| map(a)).collect();
    for (flag, port) in [("--serve", serve_port), ("--listen", admin_port)] {
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} in {args:?}"));
        args[i + 1] = format!("127.0.0.1:{port}");
    }
    let log = root.path().join("sidecar.log");
    let mut child = spawn_as_container(
        &stored,
        sidecar,
        env!("CARGO_BIN_EXE_ssm-injector"),
        &args,
        &log,
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // The app: Lambda-style Python with its stored environment (the port mapped to the free
    // one, the token file to the volume). The venv's python is not the app's to run, so it
    // runs as root, and `cat` as the app's uid shows the app can read the token.
    let token_file = map(&env(app, "SSM_INJECTOR_SERVE_TOKEN_FILE").unwrap_or_default());
    let read = |name: &str| -> Value {
        let mut py = Command::new(venv().join("bin/python"));
        py.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/extension_client.py"))
            .arg(json!([["/systemsmanager/parameters/get", {"name": name, "withDecryption": "true"}, null]]).to_string())
            .env_clear()
            .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", serve_port.to_string())
            .env("SSM_INJECTOR_SERVE_TOKEN_FILE", &token_file)
            .stdin(Stdio::null());
        let out = py.output().expect("run the client");
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        serde_json::from_str(&line)
            .unwrap_or_else(|_| json!({"stderr": String::from_utf8_lossy(&out.stderr)}))
    };
    let got = within(Duration::from_secs(30), || {
        let got = read(&name);
        if got["status"] == 200 {
            Ok(got)
        } else {
            Err(got)
        }
    });
    let on_demand = read(&shared_name);
    let outside = read(&format!("{prefix}/other"));
    let _ = child.kill();
    let _ = child.wait();
    let got = got.unwrap_or_else(|g| {
        panic!(
            "the app never read the value: {g}\nsidecar log:\n{}",
            log_text()
        )
    });
    assert_eq!(got["body"]["Parameter"]["Value"], "served-secret", "{got}");
    assert_eq!(on_demand["body"]["Parameter"]["Value"], "on", "{on_demand}");
    assert_eq!(outside["status"], 403, "{outside}");
    let mut cat = Command::new("cat");
    cat.arg(&token_file).stdin(Stdio::null());
    as_user(&mut cat, &identity(&stored, app));
    let token = cat.output().expect("cat");
    assert!(
        token.status.success() && token.stdout.len() == 64,
        "the app cannot read the token: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    assert!(
        !log_text().contains("served-secret"),
        "the value is in the log"
    );
}
