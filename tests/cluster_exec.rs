//! `ssm-injector.io/exec` against a real kube-apiserver (v1.36, [`crate::support::cluster`]),
//! registered as the chart renders it: the mutated pod is admitted by a PodSecurity
//! `restricted` namespace and stored with the installer first and the app's command
//! wrapped. Then what a kubelet would run, run here: the stored init container's args as
//! its uid (the binary lands in a directory made like the emptyDir), and the app's stored
//! command as the app's uid, with the installed binary, against moto. The app sees the
//! value, is restarted with the rotated one, and passes SIGTERM's exit code on. Denials come
//! back through the API server. Needs root (to switch ids), like CI.

use crate::cluster_access::{as_user, identity, in_volume, kubelet_volume, spawn_as_container};
use crate::cluster_webhook::{denial_of, restricted_pod};
use crate::require_cluster;
use crate::support::chart::Installed;
use crate::support::run::clean_env;
use crate::support::sidecar::free_port;
use crate::support::wait::within;
use crate::support::{shared, unique_prefix};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `restricted_pod` whose `app` container runs `command`.
fn exec_pod(name: &str, annotations: serde_json::Value, command: &[String]) -> Pod {
    let mut pod = serde_json::to_value(restricted_pod(name, annotations)).expect("JSON");
    pod["spec"]["containers"][0]["command"] = json!(command);
    serde_json::from_value(pod).expect("a Pod")
}

fn container<'a>(pod: &'a Pod, name: &str, init: bool) -> &'a Container {
    let spec = pod.spec.as_ref().expect("spec");
    let list = if init {
        spec.init_containers.as_deref().unwrap_or_default()
    } else {
        &spec.containers
    };
    list.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The lines of `file` (none if it does not exist yet).
fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn exec_pods_run_the_stored_command_under_exec_watch_and_restart_it_on_rotation() {
    let cluster = require_cluster!();
    let emu = shared();
    let name = format!("{}/db", unique_prefix("kexec"));
    emu.put_secure(&name, "first-password");
    // What the app sees: its variable, one line per start, into a file of its own.
    let out = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let seen = out.path().join("seen");
    let app_command: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        r#"echo "$DB_PASSWORD" >> "$1"; trap 'exit 0' TERM; while :; do sleep 0.05; done"#.into(),
        "app".into(),
        seen.display().to_string(),
    ];
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let annotations = json!({
        "ssm-injector.io/inject": "true",
        "ssm-injector.io/exec": "true",
        "ssm-injector.io/param-DB_PASSWORD": name,
        "ssm-injector.io/interval": "1s",
    });
    pods.create(
        &PostParams::default(),
        &exec_pod("exec", annotations, &app_command),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "the restricted namespace refused the exec pod: {e}\nwebhook log:\n{}",
            chart.log()
        )
    });

    // The pod as the API server stored it.
    let stored = pods.get("exec").await.expect("get the pod");
    let spec = stored.spec.as_ref().expect("spec");
    assert_eq!(
        spec.init_containers
            .iter()
            .flatten()
            .next()
            .map(|c| c.name.as_str()),
        Some("ssm-injector-init"),
        "the installer runs first"
    );
    let init = container(&stored, "ssm-injector-init", true);
    let init_args: Vec<&str> = init.args.iter().flatten().map(String::as_str).collect();
    assert_eq!(init_args, ["install", "/ssm/bin"]);
    let app = container(&stored, "app", false);
    let command: Vec<String> = app.command.clone().expect("a command");
    assert_eq!(
        command[..3],
        ["/ssm/bin/ssm-injector", "exec", "--watch"],
        "{command:?}"
    );
    let split = command.iter().position(|a| a == "--").expect("--");
    assert_eq!(
        command[split + 1..],
        app_command[..],
        "the app's command, after --"
    );
    assert!(
        app.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "ssm-injector"
                && m.mount_path == "/ssm"
                && m.read_only == Some(true)),
        "{:?}",
        app.volume_mounts
    );

    // The init container, as the kubelet starts it: the binary lands in the volume.
    let (_root, volume) = kubelet_volume(&stored);
    let map = |a: &str| in_volume(&volume, "/ssm", a);
    let mut install = Command::new(env!("CARGO_BIN_EXE_ssm-injector"));
    install
        .args(init_args.iter().map(|a| map(a)))
        .env_clear()
        .envs(clean_env())
        .stdin(Stdio::null());
    as_user(&mut install, &identity(&stored, init));
    let done = install.output().expect("run the init container");
    assert!(
        done.status.success(),
        "install failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let installed = volume.join("bin/ssm-injector");
    let mode = std::fs::metadata(&installed)
        .expect("installed")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o555);

    // The app container's stored command as the app's uid, the binary from the volume.
    // Only its --listen is changed: a free port here, not the pod's 8099.
    let mut args: Vec<String> = command[1..].iter().map(|a| map(a)).collect();
    let listen = args.iter().position(|a| a == "--listen").expect("--listen");
    args[listen + 1] = format!("127.0.0.1:{}", free_port());
    let log = out.path().join("exec.log");
    let mut child = spawn_as_container(&stored, app, map(&command[0]), &args, &log);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = within(Duration::from_secs(30), || {
        let l = lines(&seen);
        if l.is_empty() { Err(l) } else { Ok(l) }
    });
    assert_eq!(
        started.as_deref().map(|l| l.to_vec()).unwrap_or_default(),
        ["first-password"],
        "the app's first start; log:\n{}",
        log_text()
    );

    // Rotated from outside: the app starts again with the new value.
    emu.put_secure(&name, "second-password");
    let restarted = within(Duration::from_secs(30), || {
        let l = lines(&seen);
        if l.len() >= 2 { Ok(l) } else { Err(l) }
    });
    assert_eq!(
        restarted.unwrap_or_else(|l| l),
        ["first-password", "second-password"],
        "log:\n{}",
        log_text()
    );

    // The kubelet's SIGTERM reaches the app; its exit code (0) is the container's.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = within(Duration::from_secs(30), || match child.try_wait() {
        Ok(Some(s)) => Ok(s),
        _ => Err(()),
    });
    let status = status.unwrap_or_else(|()| {
        let _ = child.kill();
        panic!("exec --watch did not end on SIGTERM; log:\n{}", log_text())
    });
    assert_eq!(status.code(), Some(0), "log:\n{}", log_text());
    let text = log_text();
    assert!(
        !text.contains("first-password") && !text.contains("second-password"),
        "a value is in the log:\n{text}"
    );
}

#[tokio::test]
async fn an_exec_container_without_a_command_is_denied_through_the_api_server() {
    let cluster = require_cluster!();
    let message = denial_of(
        cluster,
        &restricted_pod(
            "exec-no-command",
            json!({
                "ssm-injector.io/inject": "true",
                "ssm-injector.io/exec": "true",
                "ssm-injector.io/path": "/app/prod/",
            }),
        ),
    )
    .await;
    for part in [
        "ssm-injector.io/exec",
        "app",
        "command",
        "ssm-injector.io/containers",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
}
