//! Every container that mounts the values can read them, and nobody else can: pods created
//! through the real API server, then the injected init container's stored args run as its
//! stored uid, gid and the pod's groups (as the kubelet would start it) against moto, into
//! a directory made like the kubelet's emptyDir, and the file read as each app container's
//! uid, gid and groups, and as a stranger. Needs root (to switch ids), like CI.

use crate::require_cluster;
use crate::support::chart::{Installed, kubectl};
use crate::support::run::clean_env;
use crate::support::{shared, unique_prefix};
use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Who a process runs as.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Id {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

/// `cmd` run as `id` (setgroups, setgid, setuid in the child before exec).
fn run_as(mut cmd: Command, id: &Id) -> Output {
    as_user(&mut cmd, id);
    cmd.stdin(Stdio::null())
        .output()
        .expect("run a command as another user")
}

/// Makes `cmd` start as `id` (setgroups, setgid, setuid in the child before exec).
pub(crate) fn as_user(cmd: &mut Command, id: &Id) {
    let id = id.clone();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let groups: Vec<libc::gid_t> = id.groups.clone();
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(id.gid) != 0
                || libc::setuid(id.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn pod_groups(sc: Option<&PodSecurityContext>) -> Vec<u32> {
    let mut groups: Vec<u32> = Vec::new();
    if let Some(sc) = sc {
        groups.extend(sc.fs_group.map(|g| g as u32));
        groups.extend(sc.supplemental_groups.iter().flatten().map(|g| *g as u32));
    }
    groups
}

/// The identity the kubelet gives `c`: container runAsUser/runAsGroup over the pod's, the
/// pod's fsGroup and supplementalGroups as supplementary groups. (The image's user and
/// group, where neither level sets one, are taken as 0 here: images of this test have none.)
pub(crate) fn identity(pod: &Pod, c: &Container) -> Id {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|s| s.run_as_user))
        .unwrap_or(0);
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or(psc.and_then(|s| s.run_as_group))
        .unwrap_or(0);
    Id {
        uid: uid as u32,
        gid: gid as u32,
        groups: pod_groups(psc),
    }
}

/// A directory as the kubelet makes an emptyDir: 0777, or with fsGroup owned by that
/// group with the setgid bit (files created in it inherit the group).
pub(crate) fn empty_dir(root: &Path, pod: &Pod) -> std::path::PathBuf {
    let dir = root.join("volume");
    std::fs::create_dir(&dir).expect("mkdir");
    let fs_group = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group);
    match fs_group {
        Some(g) => {
            std::os::unix::fs::chown(&dir, Some(0), Some(g as u32)).expect("chown");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2777)).expect("chmod");
        }
        None => {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod")
        }
    }
    dir
}

/// The pod's volume as a directory made like the kubelet's emptyDir ([`empty_dir`]) in a
/// temporary directory (the guard keeps it); running the pod's containers switches user
/// ids, so the test must run as root (CI does).
pub(crate) fn kubelet_volume(pod: &Pod) -> (tempfile::TempDir, std::path::PathBuf) {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "running the pod's containers switches user ids: run this test as root (CI does)"
    );
    let root = tempfile::tempdir().expect("tempdir");
    let volume = empty_dir(root.path(), pod);
    (root, volume)
}

/// `arg` with a path under `mount` moved under `volume` (a container's argument as this
/// machine runs it).
pub(crate) fn in_volume(volume: &Path, mount: &str, arg: &str) -> String {
    match arg.strip_prefix(&format!("{mount}/")) {
        Some(rest) => volume.join(rest).display().to_string(),
        None => arg.to_owned(),
    }
}

/// Starts `program args` as container `c` of `pod` would run (its uid, gid and groups),
/// against moto, in the clean environment, its stderr into `log`.
pub(crate) fn spawn_as_container(
    pod: &Pod,
    c: &Container,
    program: impl AsRef<std::ffi::OsStr>,
    args: &[String],
    log: &Path,
) -> std::process::Child {
    let mut run = Command::new(program);
    run.args(args)
        .env_clear()
        .envs(clean_env())
        .env("AWS_ENDPOINT_URL", &shared().moto)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    as_user(&mut run, &identity(pod, c));
    run.spawn()
        .unwrap_or_else(|e| panic!("start container {}'s command: {e}", c.name))
}

/// Runs the stored init container as the kubelet would and returns the output file.
pub(crate) fn render_as_the_init_container(pod: &Pod, volume: &Path) -> std::path::PathBuf {
    let (out, output) = run_the_init_container(pod, volume);
    assert!(
        out.status.success(),
        "the init container failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    output
}

/// Runs the stored init container's args against moto, its mount path mapped to `volume`,
/// as its uid, gid and the pod's groups (the test must run as root, as CI does); returns
/// how it ended and its `--output` file.
pub(crate) fn run_the_init_container(pod: &Pod, volume: &Path) -> (Output, std::path::PathBuf) {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "running the init container switches user ids: run this test as root (CI does)"
    );
    let spec = pod.spec.as_ref().expect("spec");
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "ssm-injector-init")
        .expect("the injected init container");
    let mount = init
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "ssm-injector")
        .expect("its mount")
        .mount_path
        .clone();
    let map = |a: &str| -> String {
        match a.strip_prefix(&format!("{mount}/")) {
            Some(rest) => volume.join(rest).display().to_string(),
            None => a.to_owned(),
        }
    };
    let args: Vec<String> = init.args.iter().flatten().map(|a| map(a)).collect();
    let output = args
        .iter()
        .position(|a| a == "--output")
        .map(|i| std::path::PathBuf::from(&args[i + 1]))
        .expect("--output in the args");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssm-injector"));
    cmd.args(&args)
        .env_clear()
        .envs(clean_env())
        .env("AWS_ENDPOINT_URL", &shared().moto);
    (run_as(cmd, &identity(pod, init)), output)
}

fn can_read(file: &Path, id: &Id) -> bool {
    let mut cat = Command::new("cat");
    cat.arg(file);
    run_as(cat, id).status.success()
}

/// A restricted pod with containers `(name, runAsUser, runAsGroup)` and pod-level settings.
fn pod_with(
    name: &str,
    annotations: Value,
    pod_sc: Value,
    containers: &[(&str, Option<i64>, Option<i64>)],
) -> Pod {
    let mut psc = json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    for (k, v) in pod_sc.as_object().expect("object") {
        psc[k] = v.clone();
    }
    let containers: Vec<Value> = containers
        .iter()
        .map(|(n, uid, gid)| {
            let mut sc =
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
            if let Some(u) = uid {
                sc["runAsUser"] = json!(u);
            }
            if let Some(g) = gid {
                sc["runAsGroup"] = json!(g);
            }
            json!({"name": n, "image": "registry.example/app:1", "securityContext": sc})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"securityContext": psc, "containers": containers}
    }))
    .expect("a Pod")
}

#[tokio::test]
async fn every_container_that_mounts_the_values_can_read_them_and_a_stranger_cannot() {
    let cluster = require_cluster!();
    let emu = shared();
    let prefix = unique_prefix("access");
    emu.put_secure(&format!("{prefix}/db"), "s3cret");
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let stranger = Id {
        uid: 4242,
        gid: 4242,
        groups: vec![],
    };

    // (name, pod securityContext, containers (name, uid, gid), containers annotation,
    //  the mode the file must have, whether a stranger may read it)
    type Case<'a> = (
        &'a str,
        Value,
        Vec<(&'a str, Option<i64>, Option<i64>)>,
        Option<&'a str>,
        u32,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "container-uid-over-pod-uid",
            json!({"runAsUser": 1000}),
            vec![("app", Some(2000), None)],
            None,
            0o400,
            false,
        ),
        (
            "two-uids-share-fsgroup",
            json!({"fsGroup": 3000}),
            vec![("app", Some(1000), None), ("worker", Some(2000), None)],
            None,
            0o440,
            false,
        ),
        (
            "two-uids-share-a-container-group",
            json!({}),
            vec![
                ("app", Some(1000), Some(5000)),
                ("worker", Some(2000), Some(5000)),
            ],
            None,
            0o440,
            false,
        ),
        (
            "two-uids-share-a-supplemental-group",
            json!({"supplementalGroups": [6000]}),
            vec![("app", Some(1000), None), ("worker", Some(2000), None)],
            None,
            0o440,
            false,
        ),
        (
            "only-the-chosen-container-counts",
            json!({}),
            vec![("app", Some(1000), None), ("worker", Some(2000), None)],
            Some("app"),
            0o400,
            false,
        ),
        (
            "no-common-owner-or-group",
            json!({}),
            vec![("app", Some(1000), None), ("worker", Some(2000), None)],
            None,
            0o444,
            true,
        ),
    ];
    for (name, pod_sc, containers, chosen, mode, stranger_reads) in cases {
        let mut annotations =
            json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": format!("{prefix}/")});
        if let Some(c) = chosen {
            annotations["ssm-injector.io/containers"] = json!(c);
        }
        let stored = pods
            .create(
                &PostParams::default(),
                &pod_with(name, annotations, pod_sc, &containers),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", chart.log()));
        let root = tempfile::tempdir().expect("tempdir");
        let volume = empty_dir(root.path(), &stored);
        let file = render_as_the_init_container(&stored, &volume);
        let meta = std::fs::metadata(&file).expect("the rendered file");
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{name}: mode");
        let spec = stored.spec.as_ref().expect("spec");
        for c in spec
            .containers
            .iter()
            .filter(|c| chosen.is_none_or(|n| c.name == n))
        {
            let id = identity(&stored, c);
            assert!(
                can_read(&file, &id),
                "{name}: container {} ({id:?}) cannot read {file:?} ({meta:?})",
                c.name
            );
        }
        assert_eq!(
            can_read(&file, &stranger),
            stranger_reads,
            "{name}: a stranger"
        );
    }
}

#[tokio::test]
async fn a_pod_whose_readers_share_no_owner_or_group_gets_a_warning_naming_them() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let mut pod = serde_json::to_value(pod_with(
        "warned",
        json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/"}),
        json!({}),
        &[("app", Some(1000), None), ("worker", Some(2000), None)],
    ))
    .expect("JSON");
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["namespace"] = json!(ns);
    let (code, _, stderr) = kubectl(cluster, &["create", "-f", "-"], Some(&pod.to_string()));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("Warning:")
            && stderr.contains("0444")
            && stderr.contains("app")
            && stderr.contains("worker"),
        "{stderr}"
    );
    let stored = Api::<Pod>::namespaced(client.clone(), &ns)
        .get("warned")
        .await
        .expect("get");
    let access = stored
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("ssm-injector.io/file-access"))
        .cloned()
        .unwrap_or_default();
    assert!(access.contains("0444"), "{access:?}");
}
