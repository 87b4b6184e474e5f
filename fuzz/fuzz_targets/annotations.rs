//! Pod annotations → `inject::mutate`: a pod built from arbitrary annotations, containers,
//! mounts, volumes and security context never makes `mutate` panic. When it answers with a
//! patch, the patch applies to the pod's JSON, the result is still a Pod, and `mutate` on
//! that Pod is a Skip (injection is idempotent), and every container it added is hardened
//! (non-root, read-only root, no capabilities, no privilege escalation, seccomp
//! RuntimeDefault) and declares no port the pod's containers declare. A denial always has
//! a message.
#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, Pod, PodSecurityContext, PodSpec,
    SecurityContext, Volume, VolumeMount,
};
use libfuzzer_sys::fuzz_target;
use ssm_injector::inject::{Decision, InjectConfig, annotations, mutate};

/// Values that get past the checks, so the fuzzer reaches the later steps quickly.
const VALUES: &[&str] = &[
    "true",
    "false",
    "TRUE",
    "",
    " ",
    "/app/prod/",
    "/a/,/b/",
    "/",
    "/app/prod/db",
    "/app/db:3",
    "/app/db:stable",
    "/aws/reference/secretsmanager/x#k",
    "arn:aws:ssm:eu-west-1:111122223333:parameter/shared/db",
    "dotenv",
    "json",
    "yaml",
    "properties",
    "files",
    "template",
    "app.env",
    "x",
    "/ssm",
    "/ssm/",
    "/config",
    "/config/app.tmpl",
    "/data/t",
    "init",
    "sidecar",
    "init+sidecar",
    "1s",
    "60s",
    "5m",
    "0s",
    "app",
    "side",
    "app,side",
    "app,",
    "0400",
    "0440",
    "0444",
    "0777",
    "0o400",
    "HUP",
    "USR1",
    "SIGTERM",
    "nginx",
    "5m",
    "0.1",
    "16Mi",
    "32Mi",
    "1e3",
    "1E-3",
    "+1",
    "injected",
    "9100",
    "8099",
    "80",
    "eu-west-1",
    "eu-west-1a",
    "uid 1000 mode 0400",
];
const NAMES: &[&str] = &["app", "side", "ssm-injector", "ssm-injector-init", "config"];
const PATHS: &[&str] = &["/ssm", "/ssm/", "/config", "/config/", "/data", "/"];
const NAMESPACES: &[&str] = &["apps", "team-a", "kube-system", ""];
const PORT_NAMES: &[&str] = &["http", "ssm-admin", "ssm-admin-2"];

#[derive(Debug, Arbitrary)]
enum Key {
    /// One of `annotations::ALL` (by index).
    Known(u8),
    /// `ssm-injector.io/param-<KEY>`.
    Param(String),
    /// Anything, prefixed or not.
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Text {
    Known(u8),
    Raw(String),
}

impl Text {
    fn get(&self, pool: &[&str]) -> String {
        match self {
            Text::Known(i) => pool[usize::from(*i) % pool.len()].to_owned(),
            Text::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct ContainerIn {
    name: Text,
    init: bool,
    /// (volume name, mount path)
    mounts: Vec<(Text, Text)>,
    /// The container's own runAsUser and runAsGroup.
    run_as: Option<(Option<i64>, Option<i64>)>,
    /// Declared container ports (and port names), near the sidecar's default.
    ports: Vec<(u8, Option<Text>)>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    opt_in: bool,
    annotations: Vec<(Key, Text)>,
    containers: Vec<ContainerIn>,
    /// Volume names (ConfigMap volumes).
    volumes: Vec<Text>,
    run_as: Option<(Option<i64>, Option<i64>, Option<i64>)>,
    supplemental_groups: Option<Vec<i64>>,
    namespace: Text,
    native_sidecar: bool,
    policy: bool,
}

fn pod(input: &Input) -> Pod {
    let mut ann = BTreeMap::new();
    for (k, v) in &input.annotations {
        let key = match k {
            Key::Known(i) => annotations::ALL[usize::from(*i) % annotations::ALL.len()]
                .0
                .to_owned(),
            Key::Param(p) => format!("{}{p}", annotations::PARAM_PREFIX),
            Key::Raw(r) => r.clone(),
        };
        ann.insert(key, v.get(VALUES));
    }
    if input.opt_in {
        ann.insert(annotations::INJECT.to_owned(), "true".to_owned());
    }
    let mut spec = PodSpec::default();
    for c in &input.containers {
        let container = Container {
            name: c.name.get(NAMES),
            image: Some("nginx".to_owned()),
            volume_mounts: (!c.mounts.is_empty()).then(|| {
                c.mounts
                    .iter()
                    .map(|(name, path)| VolumeMount {
                        name: name.get(NAMES),
                        mount_path: path.get(PATHS),
                        ..Default::default()
                    })
                    .collect()
            }),
            security_context: c.run_as.map(|(uid, gid)| SecurityContext {
                run_as_user: uid,
                run_as_group: gid,
                ..Default::default()
            }),
            ports: (!c.ports.is_empty()).then(|| {
                c.ports
                    .iter()
                    .map(|(offset, name)| ContainerPort {
                        container_port: 8099 + i32::from(*offset % 8),
                        name: name.as_ref().map(|n| n.get(PORT_NAMES)),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        };
        if c.init {
            spec.init_containers
                .get_or_insert_with(Vec::new)
                .push(container);
        } else {
            spec.containers.push(container);
        }
    }
    if !input.volumes.is_empty() {
        spec.volumes = Some(
            input
                .volumes
                .iter()
                .map(|v| Volume {
                    name: v.get(NAMES),
                    config_map: Some(ConfigMapVolumeSource {
                        name: v.get(NAMES),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        );
    }
    if let Some((uid, gid, fs_group)) = input.run_as {
        spec.security_context = Some(PodSecurityContext {
            run_as_user: uid,
            run_as_group: gid,
            fs_group,
            supplemental_groups: input.supplemental_groups.clone(),
            ..Default::default()
        });
    }
    let mut pod = Pod::default();
    pod.metadata.generate_name = Some("web-".to_owned());
    pod.metadata.annotations = Some(ann);
    pod.spec = Some(spec);
    pod
}

/// Every container of the pod, init containers first.
fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}

/// Every injected container runs non-root, read-only, without capabilities or privilege
/// escalation, under the runtime's default seccomp profile, whatever the pod said.
fn assert_hardened(c: &Container) {
    let sc = c
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("{} has no securityContext", c.name));
    assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
    assert_ne!(sc.privileged, Some(true), "{}", c.name);
    assert_ne!(sc.run_as_user, Some(0), "{}", c.name);
    let caps = sc.capabilities.as_ref().expect("capabilities set");
    assert_eq!(
        caps.drop.as_deref(),
        Some(&["ALL".to_owned()][..]),
        "{}",
        c.name
    );
    assert!(caps.add.as_ref().is_none_or(Vec::is_empty), "{}", c.name);
    let seccomp = sc.seccomp_profile.as_ref().expect("seccomp profile set");
    assert_eq!(seccomp.type_, "RuntimeDefault", "{}", c.name);
}

fuzz_target!(|input: Input| {
    let pod = pod(&input);
    let namespace = input.namespace.get(NAMESPACES);
    let mut config = InjectConfig {
        native_sidecar: input.native_sidecar,
        default_interval: Duration::from_secs(60),
        ..InjectConfig::default()
    };
    if input.policy {
        config
            .namespace_prefixes
            .insert("apps".to_owned(), vec!["/app/".to_owned()]);
    }
    match mutate(&pod, &namespace, &config) {
        Decision::Skip(reason) => assert!(!reason.is_empty()),
        Decision::Deny(denial) => assert!(!denial.message.is_empty(), "a denial without message"),
        Decision::Patch { patch, .. } => {
            let mut value = serde_json::to_value(&pod).expect("a Pod serializes");
            let patch = patch.to_json_patch().expect("the patch serializes");
            json_patch::patch(&mut value, &patch)
                .unwrap_or_else(|e| panic!("the patch does not apply: {e}\n{patch:?}"));
            let injected: Pod = serde_json::from_value(value)
                .unwrap_or_else(|e| panic!("the patched pod is not a Pod: {e}"));
            let taken: Vec<i32> = containers(&pod)
                .flat_map(|c| c.ports.iter().flatten())
                .map(|p| p.container_port)
                .collect();
            for added in
                containers(&injected).filter(|c| !containers(&pod).any(|o| o.name == c.name))
            {
                assert_hardened(added);
                for p in added.ports.iter().flatten() {
                    assert!(
                        !taken.contains(&p.container_port),
                        "the admin port {} is a port of the pod",
                        p.container_port
                    );
                }
            }
            match mutate(&injected, &namespace, &config) {
                Decision::Skip(_) => {}
                other => panic!("injecting twice is not a skip: {other:?}"),
            }
        }
    }
});
