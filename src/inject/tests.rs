//! The injector, end to end: mutate, apply the JSONPatch to the pod's JSON, read the result
//! back as a `Pod` and check it.

use super::annotations as a;
use super::fixtures::{PodBuilder, bare, pod};
use super::patch::{INIT_CONTAINER, SIDECAR, VOLUME};
use super::{Decision, Denial, InjectConfig, mutate};
use k8s_openapi::api::core::v1::{Container, Pod};
use proptest::prelude::*;
use std::collections::BTreeMap;

const NS: &str = "default";

fn decide(pod: &Pod) -> Decision {
    mutate(pod, NS, &InjectConfig::default())
}

/// Applies a decision's patch to `pod`; panics (in tests) on anything else.
fn apply(pod: &Pod, decision: Decision) -> Pod {
    let Decision::Patch { patch, .. } = decision else {
        panic!("expected a patch, got {decision:?}");
    };
    let mut doc = serde_json::to_value(pod).unwrap();
    json_patch::patch(&mut doc, &patch.to_json_patch().unwrap()).unwrap();
    serde_json::from_value(doc).unwrap()
}

fn inject_with(b: PodBuilder, config: &InjectConfig) -> Pod {
    let p = b.build();
    let d = mutate(&p, NS, config);
    apply(&p, d)
}

fn inject(b: PodBuilder) -> Pod {
    inject_with(b, &InjectConfig::default())
}

fn denial(b: PodBuilder) -> Denial {
    match decide(&b.build()) {
        Decision::Deny(d) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn inits(p: &Pod) -> Vec<&Container> {
    p.spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .collect()
}

fn containers(p: &Pod) -> Vec<&Container> {
    p.spec.as_ref().unwrap().containers.iter().collect()
}

fn find<'a>(p: &'a Pod, name: &str) -> &'a Container {
    inits(p)
        .into_iter()
        .chain(containers(p))
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn args(c: &Container) -> Vec<&str> {
    c.args.iter().flatten().map(String::as_str).collect()
}

/// The value after `flag` in the container's args.
fn flag<'a>(c: &'a Container, flag: &str) -> Option<&'a str> {
    let a = args(c);
    a.iter()
        .position(|x| *x == flag)
        .and_then(|i| a.get(i + 1).copied())
}

/// The injector's volume in the pod.
fn ssm_volume(p: &Pod) -> &k8s_openapi::api::core::v1::Volume {
    p.spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == VOLUME)
        .unwrap_or_else(|| panic!("no volume {VOLUME}"))
}

fn ssm_mount(c: &Container) -> Option<(String, Option<bool>)> {
    c.volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == VOLUME)
        .map(|m| (m.mount_path.clone(), m.read_only))
}

// ---------------------------------------------------------------- should inject

#[test]
fn skip_and_inject_decisions_follow_the_opt_in_namespace_and_status() {
    let cases: Vec<(&str, Pod, &str, Option<&str>)> = vec![
        (
            "no inject annotation",
            pod().without_ann(a::INJECT).build(),
            NS,
            Some("not opted in"),
        ),
        (
            "inject false",
            pod().ann(a::INJECT, "false").build(),
            NS,
            Some("not opted in"),
        ),
        (
            "inject TRUE is not \"true\" (the matchCondition would not send it)",
            pod().ann(a::INJECT, "TRUE").build(),
            NS,
            Some("not opted in"),
        ),
        (
            "inject with spaces is not \"true\"",
            pod().ann(a::INJECT, " true").build(),
            NS,
            Some("not opted in"),
        ),
        (
            "kube-system is excluded",
            pod().build(),
            "kube-system",
            Some("namespace excluded"),
        ),
        (
            "already injected",
            pod().ann(a::STATUS, "injected").build(),
            NS,
            Some("already injected"),
        ),
        (
            "no annotations at all",
            bare().container("app").build(),
            NS,
            Some("not opted in"),
        ),
    ];
    for (name, p, ns, want) in cases {
        match (mutate(&p, ns, &InjectConfig::default()), want) {
            (Decision::Skip(why), Some(w)) => assert_eq!(why, w, "{name}"),
            (Decision::Patch { .. }, None) => {}
            (other, _) => panic!("{name}: got {other:?}"),
        }
    }
}

#[test]
fn a_second_review_of_the_mutated_pod_is_skipped() {
    let once = inject(pod().ann(a::MODE, "init+sidecar"));
    assert_eq!(decide(&once), Decision::Skip("already injected"));
}

#[test]
fn the_status_annotation_is_set() {
    let p = inject(pod());
    assert_eq!(
        p.metadata
            .annotations
            .unwrap()
            .get(a::STATUS)
            .map(String::as_str),
        Some("injected")
    );
}

// ---------------------------------------------------------------- patch shape

#[test]
fn adds_a_memory_volume_of_one_mebibyte() {
    let p = inject(pod());
    let vols = p.spec.unwrap().volumes.unwrap();
    let v = vols.iter().find(|v| v.name == VOLUME).unwrap();
    let e = v.empty_dir.as_ref().unwrap();
    assert_eq!(e.medium.as_deref(), Some("Memory"));
    assert_eq!(e.size_limit.as_ref().map(|q| q.0.as_str()), Some("1Mi"));
}

#[test]
fn the_init_container_comes_first_so_other_init_containers_can_read_the_values() {
    let p = inject(pod().init_container("migrate"));
    let names: Vec<&str> = inits(&p).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [INIT_CONTAINER, "migrate"]);
    assert_eq!(
        ssm_mount(find(&p, "migrate")),
        Some(("/ssm".to_owned(), Some(true)))
    );
}

#[test]
fn the_default_init_container_renders_shell_into_the_mount() {
    let p = inject(pod());
    let c = find(&p, INIT_CONTAINER);
    assert_eq!(
        c.image.as_deref(),
        Some(InjectConfig::default().image.as_str())
    );
    assert_eq!(
        args(c),
        [
            "render",
            "--path",
            "/app/prod/",
            "--format",
            "shell",
            "--output",
            "/ssm/app.env",
            "--file-mode",
            "0444"
        ]
    );
    assert_eq!(ssm_mount(c), Some(("/ssm".to_owned(), None)));
    assert!(containers(&p).iter().all(|c| c.name != SIDECAR));
}

#[test]
fn annotations_become_render_flags() {
    type Flags = &'static [(&'static str, &'static str)];
    let cases: Vec<(&str, PodBuilder, Flags)> = vec![
        (
            "params, in key order",
            bare()
                .container("app")
                .inject()
                .ann("ssm-injector.io/param-DB", "/app/prod/db:3")
                .ann(
                    "ssm-injector.io/param-API_KEY",
                    "/aws/reference/secretsmanager/app/key#token",
                ),
            &[("--format", "shell"), ("--output", "/ssm/app.env")],
        ),
        (
            "json to a chosen file and mount path",
            pod()
                .ann(a::FORMAT, "json")
                .ann(a::FILE, "config.json")
                .ann(a::MOUNT_PATH, "/run/secrets/app/"),
            &[
                ("--format", "json"),
                ("--output", "/run/secrets/app/config.json"),
            ],
        ),
        (
            "files writes a directory",
            pod().ann(a::FORMAT, "files"),
            &[("--output", "/ssm/files")],
        ),
        (
            "yaml and properties default names",
            pod().ann(a::FORMAT, "yaml"),
            &[("--output", "/ssm/app.yaml")],
        ),
        (
            "file mode is normalised",
            pod().ann(a::FILE_MODE, "440"),
            &[("--file-mode", "0440")],
        ),
        (
            "a template implies the template format",
            pod()
                .config_map_mount("app", "tmpl", "/etc/tmpl")
                .ann(a::TEMPLATE, "/etc/tmpl/app.conf.j2"),
            &[
                ("--format", "template"),
                ("--template", "/etc/tmpl/app.conf.j2"),
                ("--output", "/ssm/config"),
            ],
        ),
    ];
    for (name, b, want) in cases {
        let p = inject(b);
        let c = find(&p, INIT_CONTAINER);
        for (f, v) in want {
            assert_eq!(flag(c, f), Some(*v), "{name}: {f} in {:?}", args(c));
        }
    }
    let p = inject(
        bare()
            .container("app")
            .inject()
            .ann("ssm-injector.io/param-DB", "/app/prod/db:3")
            .ann(
                "ssm-injector.io/param-API_KEY",
                "/aws/reference/secretsmanager/app/key#token",
            ),
    );
    let a = args(find(&p, INIT_CONTAINER));
    assert!(
        a.windows(2).any(|w| w == ["--param", "DB=/app/prod/db:3"])
            && a.windows(2).any(|w| w
                == [
                    "--param",
                    "API_KEY=/aws/reference/secretsmanager/app/key#token"
                ]),
        "{a:?}"
    );
}

#[test]
fn the_template_volume_is_mounted_read_only_in_the_injected_containers() {
    let p = inject(
        pod()
            .config_map_mount("app", "tmpl", "/etc/tmpl")
            .ann(a::TEMPLATE, "/etc/tmpl/app.conf.j2"),
    );
    let m = find(&p, INIT_CONTAINER)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "tmpl")
        .unwrap();
    assert_eq!(
        (m.mount_path.as_str(), m.read_only),
        ("/etc/tmpl", Some(true))
    );
}

#[test]
fn app_containers_get_a_read_only_mount_and_containers_limits_which() {
    let p = inject(pod().container("worker"));
    for n in ["app", "worker"] {
        assert_eq!(
            ssm_mount(find(&p, n)),
            Some(("/ssm".to_owned(), Some(true))),
            "{n}"
        );
    }
    let p = inject(
        pod()
            .container("worker")
            .init_container("migrate")
            .ann(a::CONTAINERS, "worker"),
    );
    assert_eq!(ssm_mount(find(&p, "app")), None);
    assert_eq!(ssm_mount(find(&p, "migrate")), None);
    assert!(ssm_mount(find(&p, "worker")).is_some());
}

#[test]
fn native_and_classic_sidecars_are_placed_by_mode_and_config() {
    struct Case {
        name: &'static str,
        b: PodBuilder,
        native: bool,
        want_inits: &'static [&'static str],
        want_containers: &'static [&'static str],
    }
    let cases = vec![
        Case {
            name: "init only",
            b: pod(),
            native: true,
            want_inits: &[INIT_CONTAINER],
            want_containers: &["app"],
        },
        Case {
            name: "init+sidecar native: sidecar right after the init container",
            b: pod().init_container("migrate").ann(a::MODE, "init+sidecar"),
            native: true,
            want_inits: &[INIT_CONTAINER, SIDECAR, "migrate"],
            want_containers: &["app"],
        },
        Case {
            name: "sidecar only, native",
            b: pod().ann(a::MODE, "sidecar"),
            native: true,
            want_inits: &[SIDECAR],
            want_containers: &["app"],
        },
        Case {
            name: "init+sidecar classic: sidecar appended to containers",
            b: pod().ann(a::MODE, "init+sidecar"),
            native: false,
            want_inits: &[INIT_CONTAINER],
            want_containers: &["app", SIDECAR],
        },
        Case {
            name: "the pod annotation overrides the config",
            b: pod()
                .ann(a::MODE, "sidecar")
                .ann(a::NATIVE_SIDECAR, "false"),
            native: true,
            want_inits: &[],
            want_containers: &["app", SIDECAR],
        },
    ];
    for case in cases {
        let config = InjectConfig {
            native_sidecar: case.native,
            ..Default::default()
        };
        let p = inject_with(case.b, &config);
        let i: Vec<&str> = inits(&p).iter().map(|c| c.name.as_str()).collect();
        let c: Vec<&str> = containers(&p).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(i, case.want_inits, "{}", case.name);
        assert_eq!(c, case.want_containers, "{}", case.name);
    }
}

#[test]
fn the_native_sidecar_restarts_always_and_probes_readyz() {
    let p = inject(pod().ann(a::MODE, "init+sidecar").ann(a::INTERVAL, "5m"));
    let s = find(&p, SIDECAR);
    assert_eq!(s.restart_policy.as_deref(), Some("Always"));
    let probe = s.startup_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(probe.path.as_deref(), Some("/readyz"));
    assert_eq!(
        probe.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8099)
    );
    assert_eq!(&args(s)[..2], ["render", "--watch"]);
    assert_eq!(flag(s, "--interval"), Some("5m"));
    assert_eq!(flag(s, "--listen"), Some("0.0.0.0:8099"));
    assert_eq!(flag(s, "--path"), Some("/app/prod/"));
    assert_eq!(find(&p, INIT_CONTAINER).restart_policy, None);
}

#[test]
fn the_sidecar_uses_the_configured_default_interval() {
    let config = InjectConfig {
        default_interval: std::time::Duration::from_secs(90),
        ..Default::default()
    };
    let p = inject_with(pod().ann(a::MODE, "sidecar"), &config);
    assert_eq!(flag(find(&p, SIDECAR), "--interval"), Some("1m 30s"));
}

fn hub_config() -> InjectConfig {
    hub_config_with(super::DEFAULT_HUB_AUDIENCE)
}

fn hub_config_with(audience: &str) -> InjectConfig {
    InjectConfig {
        hub: Some(crate::inject::HubInjection {
            url: "https://ssm-injector-hub.ssm-injector.svc:8443".into(),
            ca_file: Some("/hub-ca/ca.crt".into()),
            ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            audience: audience.into(),
        }),
        ..Default::default()
    }
}

/// The audiences of the pod's projected service account tokens, by volume name.
fn token_audiences(p: &Pod) -> Vec<(String, Option<String>)> {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|v| {
            v.projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .filter_map(|s| s.service_account_token.as_ref())
                .map(|t| (v.name.clone(), t.audience.clone()))
        })
        .collect()
}

#[test]
fn with_a_hub_the_sidecar_follows_it_with_a_token_of_its_own_audience() {
    let p = inject_with(pod().ann(a::MODE, "init+sidecar"), &hub_config());
    let s = find(&p, SIDECAR);
    assert_eq!(
        flag(s, "--hub"),
        Some("https://ssm-injector-hub.ssm-injector.svc:8443")
    );
    assert_eq!(
        flag(s, "--hub-token-file"),
        Some("/var/run/secrets/ssm-injector/hub/token")
    );
    let env = s.env.as_ref().expect("env");
    assert!(env.iter().any(|e| {
        e.name == "SSM_INJECTOR_HUB_CA_PEM"
            && e.value
                .as_deref()
                .is_some_and(|v| v.contains("BEGIN CERTIFICATE"))
    }));
    let mount = s
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "ssm-injector-hub-token")
        .expect("token mount");
    assert_eq!(mount.read_only, Some(true));
    let volume = p
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v.iter().find(|v| v.name == "ssm-injector-hub-token"))
        .expect("token volume");
    let projection = volume.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
        .service_account_token
        .as_ref()
        .unwrap();
    assert_eq!(projection.audience.as_deref(), Some("ssm-injector-hub"));
    assert_eq!(projection.expiration_seconds, Some(3600));
    // The init container renders once from AWS: it neither follows the hub nor gets the token.
    let init = find(&p, INIT_CONTAINER);
    assert_eq!(flag(init, "--hub"), None);
    assert!(
        init.volume_mounts
            .iter()
            .flatten()
            .all(|m| m.name != "ssm-injector-hub-token")
    );
}

#[test]
fn the_hub_token_has_the_configured_audience() {
    struct Case {
        name: &'static str,
        b: PodBuilder,
        audience: &'static str,
        native: bool,
        /// The audience of the one projected token; `None`: no token at all.
        want: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "the default audience",
            b: pod().ann(a::MODE, "init+sidecar"),
            audience: "ssm-injector-hub",
            native: true,
            want: Some("ssm-injector-hub"),
        },
        Case {
            name: "a configured audience, native sidecar",
            b: pod().ann(a::MODE, "init+sidecar"),
            audience: "https://hub.example.com/ssm",
            native: true,
            want: Some("https://hub.example.com/ssm"),
        },
        Case {
            name: "a configured audience, classic sidecar",
            b: pod().ann(a::MODE, "sidecar"),
            audience: "team-hub",
            native: false,
            want: Some("team-hub"),
        },
        Case {
            name: "no sidecar: no token, whatever the audience",
            b: pod().ann(a::MODE, "init"),
            audience: "team-hub",
            native: true,
            want: None,
        },
    ];
    for case in cases {
        let config = InjectConfig {
            native_sidecar: case.native,
            ..hub_config_with(case.audience)
        };
        let p = inject_with(case.b, &config);
        let want: Vec<(String, Option<String>)> = case
            .want
            .map(|w| ("ssm-injector-hub-token".to_owned(), Some(w.to_owned())))
            .into_iter()
            .collect();
        assert_eq!(token_audiences(&p), want, "{}", case.name);
        if case.want.is_some() {
            // The sidecar reads the token the volume holds.
            let s = find(&p, SIDECAR);
            assert_eq!(
                flag(s, "--hub-token-file"),
                Some("/var/run/secrets/ssm-injector/hub/token"),
                "{}",
                case.name
            );
            assert!(
                s.volume_mounts.iter().flatten().any(|m| {
                    m.name == "ssm-injector-hub-token"
                        && m.mount_path == "/var/run/secrets/ssm-injector/hub"
                }),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn without_a_sidecar_no_hub_token_is_mounted() {
    let p = inject_with(pod().ann(a::MODE, "init"), &hub_config());
    let volumes = p.spec.as_ref().and_then(|s| s.volumes.as_ref()).unwrap();
    assert!(volumes.iter().all(|v| v.name != "ssm-injector-hub-token"));
}

#[test]
fn a_reload_process_shares_the_process_namespace() {
    let p = inject(
        pod()
            .ann(a::MODE, "sidecar")
            .ann(a::RELOAD_SIGNAL, "USR1")
            .ann(a::RELOAD_PROCESS, "nginx"),
    );
    let s = find(&p, SIDECAR);
    assert_eq!(flag(s, "--reload-signal"), Some("USR1"));
    assert_eq!(flag(s, "--reload-process"), Some("nginx"));
    assert_eq!(p.spec.unwrap().share_process_namespace, Some(true));
}

#[test]
fn injected_containers_are_locked_down() {
    let p = inject(pod().ann(a::MODE, "init+sidecar"));
    for name in [INIT_CONTAINER, SIDECAR] {
        let c = find(&p, name);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true), "{name}");
        assert_eq!(sc.run_as_user, Some(65532), "{name}");
        assert_eq!(sc.run_as_group, Some(65532), "{name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        let r = c.resources.as_ref().unwrap();
        let req = r.requests.as_ref().unwrap();
        assert_eq!(req.get("cpu").map(|q| q.0.as_str()), Some("5m"));
        assert_eq!(req.get("memory").map(|q| q.0.as_str()), Some("16Mi"));
        let lim = r.limits.as_ref().unwrap();
        assert_eq!(lim.get("memory").map(|q| q.0.as_str()), Some("32Mi"));
        assert_eq!(lim.get("cpu"), None);
    }
}

#[test]
fn resource_annotations_override_the_defaults() {
    let p = inject(
        pod()
            .ann(a::CPU_REQUEST, "10m")
            .ann(a::CPU_LIMIT, "100m")
            .ann(a::MEMORY_REQUEST, "64Mi"),
    );
    let r = find(&p, INIT_CONTAINER).resources.clone().unwrap();
    let get =
        |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    assert_eq!(get(&r.requests, "cpu").as_deref(), Some("10m"));
    assert_eq!(get(&r.limits, "cpu").as_deref(), Some("100m"));
    assert_eq!(get(&r.requests, "memory").as_deref(), Some("64Mi"));
    // The default limit is raised to a larger request.
    assert_eq!(get(&r.limits, "memory").as_deref(), Some("64Mi"));
}

#[test]
fn configured_default_resources_apply_and_a_conflicting_default_gives_way() {
    struct Case {
        name: &'static str,
        b: PodBuilder,
        /// (cpu request, cpu limit, memory request, memory limit)
        want: [Option<&'static str>; 4],
    }
    let config = InjectConfig {
        resources: super::AgentResources {
            cpu_request: Some("20m".to_owned()),
            memory_request: Some("24Mi".to_owned()),
            cpu_limit: Some("200m".to_owned()),
            memory_limit: Some("48Mi".to_owned()),
        },
        ..Default::default()
    };
    let cases = [
        Case {
            name: "no annotation: the config's defaults",
            b: pod(),
            want: [Some("20m"), Some("200m"), Some("24Mi"), Some("48Mi")],
        },
        Case {
            name: "annotations win over the config",
            b: pod().ann(a::CPU_REQUEST, "1m").ann(a::MEMORY_LIMIT, "40Mi"),
            want: [Some("1m"), Some("200m"), Some("24Mi"), Some("40Mi")],
        },
        Case {
            name: "a request above the default limit raises the limit",
            b: pod().ann(a::CPU_REQUEST, "500m"),
            want: [Some("500m"), Some("500m"), Some("24Mi"), Some("48Mi")],
        },
        Case {
            name: "a limit below the default request lowers the request",
            b: pod().ann(a::MEMORY_LIMIT, "8Mi"),
            want: [Some("20m"), Some("200m"), Some("8Mi"), Some("8Mi")],
        },
    ];
    for case in cases {
        let p = inject_with(case.b, &config);
        let r = find(&p, INIT_CONTAINER).resources.clone().unwrap();
        let get =
            |m: &Option<
                BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            >,
             k: &str| { m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone()) };
        let got = [
            get(&r.requests, "cpu"),
            get(&r.limits, "cpu"),
            get(&r.requests, "memory"),
            get(&r.limits, "memory"),
        ];
        let want = case.want.map(|w| w.map(str::to_owned));
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn a_pod_naming_nothing_gets_the_configured_default_paths_for_its_namespace() {
    struct Case {
        name: &'static str,
        b: PodBuilder,
        namespace: &'static str,
        config: InjectConfig,
        /// `Ok(paths)` for a patch, `Err(fragment)` for a denial.
        want: Result<&'static [&'static str], &'static str>,
    }
    let defaults = |paths: &[&str]| InjectConfig {
        default_paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        ..Default::default()
    };
    let with_policy = |paths: &[&str]| InjectConfig {
        namespace_prefixes: BTreeMap::from([(
            "team-a".to_owned(),
            vec!["/apps/team-a/".to_owned()],
        )]),
        ..defaults(paths)
    };
    let nothing = || pod().without_ann(a::PATH);
    let cases = [
        Case {
            name: "the namespace is filled in",
            b: nothing(),
            namespace: "team-a",
            config: defaults(&["/apps/{namespace}/", "/shared/"]),
            want: Ok(&["/apps/team-a/", "/shared/"]),
        },
        Case {
            name: "a pod naming a path does not get the defaults",
            b: pod(),
            namespace: "team-a",
            config: defaults(&["/apps/{namespace}/"]),
            want: Ok(&["/app/prod/"]),
        },
        Case {
            name: "a pod naming only a parameter does not get the defaults",
            b: nothing().ann("ssm-injector.io/param-DB", "/apps/team-a/db"),
            namespace: "team-a",
            config: defaults(&["/apps/{namespace}/"]),
            want: Ok(&[]),
        },
        Case {
            name: "no defaults: nothing to fetch",
            b: nothing(),
            namespace: "team-a",
            config: defaults(&[]),
            want: Err("nothing to fetch"),
        },
        Case {
            name: "the policy applies to default paths",
            b: nothing(),
            namespace: "team-a",
            config: with_policy(&["/apps/{namespace}/"]),
            want: Ok(&["/apps/team-a/"]),
        },
        Case {
            name: "a default path outside the policy is denied",
            b: nothing(),
            namespace: "team-a",
            config: with_policy(&["/shared/"]),
            want: Err("path /shared/ is outside the policy"),
        },
    ];
    for case in cases {
        let p = case.b.build();
        match (mutate(&p, case.namespace, &case.config), case.want) {
            (d @ Decision::Patch { .. }, Ok(want)) => {
                let p = apply(&p, d);
                let c = find(&p, INIT_CONTAINER);
                let a = args(c);
                let paths: Vec<&str> = a
                    .iter()
                    .zip(a.iter().skip(1))
                    .filter(|(f, _)| **f == "--path")
                    .map(|(_, v)| *v)
                    .collect();
                assert_eq!(paths, want, "{}", case.name);
            }
            (Decision::Deny(d), Err(fragment)) => {
                assert!(d.message.contains(fragment), "{}: {}", case.name, d.message);
            }
            (other, want) => panic!("{}: got {other:?}, want {want:?}", case.name),
        }
    }
}

// ---------------------------------------------------------------- file access

/// The decision's warnings, and the pod with its patch applied.
fn inject_warned(b: PodBuilder, config: &InjectConfig) -> (Pod, Vec<String>) {
    let p = b.build();
    let d = mutate(&p, NS, config);
    let warnings = match &d {
        Decision::Patch { warnings, .. } => warnings.clone(),
        other => panic!("expected a patch, got {other:?}"),
    };
    (apply(&p, d), warnings)
}

fn annotation<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(key))
        .map(String::as_str)
}

#[test]
fn file_owner_group_and_mode_serve_every_container_that_mounts_the_files() {
    struct Case {
        name: &'static str,
        b: PodBuilder,
        /// runAsUser, runAsGroup of both injected containers.
        run_as: (i64, i64),
        uid: Option<&'static str>,
        gid: Option<&'static str>,
        mode: &'static str,
        /// The start of the file-access annotation.
        access: &'static str,
        warns: bool,
    }
    let two = || pod().container("worker");
    let cases = vec![
        Case {
            name: "issue 14: the app container's runAsUser over the pod's",
            b: pod()
                .run_as(Some(1000), None, None)
                .container_run_as("app", Some(2000), None),
            run_as: (2000, 65532),
            uid: Some("2000"),
            gid: None,
            mode: "0400",
            access: "uid 2000 mode 0400",
            warns: false,
        },
        Case {
            name: "the app container's runAsGroup over the pod's",
            b: pod()
                .run_as(Some(1000), Some(3000), None)
                .container_run_as("app", None, Some(3100)),
            run_as: (1000, 3100),
            uid: Some("1000"),
            gid: Some("3100"),
            mode: "0400",
            access: "uid 1000 gid 3100 mode 0400",
            warns: false,
        },
        Case {
            name: "pod runAsUser and fsGroup: 0400 for the uid",
            b: pod().run_as(Some(1000), None, Some(2000)),
            run_as: (1000, 65532),
            uid: Some("1000"),
            gid: None,
            mode: "0400",
            access: "uid 1000 mode 0400",
            warns: false,
        },
        Case {
            name: "two uids and fsGroup: 0440 for fsGroup, owner the pod's uid",
            b: two().run_as(Some(1000), None, Some(4000)).container_run_as(
                "worker",
                Some(2000),
                None,
            ),
            run_as: (1000, 65532),
            uid: None,
            gid: Some("4000"),
            mode: "0440",
            access: "gid 4000 mode 0440",
            warns: false,
        },
        Case {
            name: "two uids, one container-level group: the injected containers run with it",
            b: two()
                .container_run_as("app", Some(1000), Some(3000))
                .container_run_as("worker", Some(2000), Some(3000)),
            run_as: (65532, 3000),
            uid: None,
            gid: Some("3000"),
            mode: "0440",
            access: "gid 3000 mode 0440",
            warns: false,
        },
        Case {
            name: "two uids and a supplemental group",
            b: two()
                .container_run_as("app", Some(1000), None)
                .container_run_as("worker", Some(2000), None)
                .supplemental_groups(&[5000, 6000]),
            run_as: (65532, 65532),
            uid: None,
            gid: Some("5000"),
            mode: "0440",
            access: "gid 5000 mode 0440",
            warns: false,
        },
        Case {
            name: "only fsGroup",
            b: pod().run_as(None, None, Some(2000)),
            run_as: (65532, 65532),
            uid: None,
            gid: Some("2000"),
            mode: "0440",
            access: "gid 2000 mode 0440",
            warns: false,
        },
        Case {
            name: "no security context: 0444, and a warning",
            b: pod(),
            run_as: (65532, 65532),
            uid: None,
            gid: None,
            mode: "0444",
            access: "mode 0444: container app (uid unknown): no runAsUser, runAsGroup or fsGroup set",
            warns: true,
        },
        Case {
            name: "two uids and no group: 0444 naming both",
            b: two()
                .container_run_as("app", Some(1000), None)
                .container_run_as("worker", Some(2000), None),
            run_as: (65532, 65532),
            uid: None,
            gid: None,
            mode: "0444",
            access: "mode 0444: containers app (uid 1000), worker (uid 2000): no common uid or group",
            warns: true,
        },
        Case {
            name: "a root app: the injected containers never run as root",
            b: pod().run_as(Some(0), None, None),
            run_as: (65532, 65532),
            uid: None,
            gid: None,
            mode: "0444",
            access: "mode 0444: container app (uid 0): run as root",
            warns: true,
        },
        Case {
            name: "the containers annotation narrows the readers",
            b: two()
                .container_run_as("app", Some(1000), None)
                .container_run_as("worker", Some(2000), None)
                .ann(a::CONTAINERS, "worker"),
            run_as: (2000, 65532),
            uid: Some("2000"),
            gid: None,
            mode: "0400",
            access: "uid 2000 mode 0400",
            warns: false,
        },
        Case {
            name: "an init container that mounts the files is a reader",
            b: pod()
                .init_container("migrate")
                .run_as(Some(1000), None, Some(4000))
                .container_run_as("migrate", Some(2000), None),
            run_as: (1000, 65532),
            uid: None,
            gid: Some("4000"),
            mode: "0440",
            access: "gid 4000 mode 0440",
            warns: false,
        },
        Case {
            name: "an explicit file-mode wins; a warning when it shuts a container out",
            b: two()
                .run_as(Some(1000), None, Some(4000))
                .container_run_as("worker", Some(2000), None)
                .ann(a::FILE_MODE, "0400"),
            run_as: (1000, 65532),
            uid: None,
            gid: Some("4000"),
            mode: "0400",
            access: "gid 4000 mode 0400 from ssm-injector.io/file-mode: container worker (uid 2000) may not read it",
            warns: true,
        },
        Case {
            name: "an explicit file-mode that serves every reader: no warning",
            b: pod()
                .run_as(Some(1000), None, None)
                .ann(a::FILE_MODE, "0440"),
            run_as: (1000, 65532),
            uid: Some("1000"),
            gid: None,
            mode: "0440",
            access: "uid 1000 mode 0440 from ssm-injector.io/file-mode",
            warns: false,
        },
    ];
    for case in cases {
        let name = case.name;
        let (p, warnings) = inject_warned(
            case.b.ann(a::MODE, "init+sidecar"),
            &InjectConfig::default(),
        );
        for injected in [INIT_CONTAINER, SIDECAR] {
            let c = find(&p, injected);
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(
                (sc.run_as_user, sc.run_as_group, sc.run_as_non_root),
                (Some(case.run_as.0), Some(case.run_as.1), Some(true)),
                "{name}: {injected}"
            );
            assert_eq!(flag(c, "--uid"), case.uid, "{name}: {injected}");
            assert_eq!(flag(c, "--gid"), case.gid, "{name}: {injected}");
            assert_eq!(
                flag(c, "--file-mode"),
                Some(case.mode),
                "{name}: {injected}"
            );
        }
        let access = annotation(&p, a::FILE_ACCESS).unwrap_or_default();
        assert!(access.starts_with(case.access), "{name}: {access:?}");
        assert_eq!(!warnings.is_empty(), case.warns, "{name}: {warnings:?}");
    }
}

#[test]
fn the_0444_warning_names_the_containers_and_what_to_set() {
    let (_, warnings) = inject_warned(
        pod()
            .container("worker")
            .container_run_as("app", Some(1000), None)
            .container_run_as("worker", Some(2000), None),
        &InjectConfig::default(),
    );
    let [w] = warnings.as_slice() else {
        panic!("one warning: {warnings:?}")
    };
    for part in [
        "mode 0444",
        "runAsUser",
        "fsGroup",
        "app (uid 1000)",
        "worker (uid 2000)",
    ] {
        assert!(w.contains(part), "{part} missing from {w}");
    }
}

#[test]
fn a_copied_pod_carrying_file_access_is_injected_and_the_annotation_rewritten() {
    let p = inject(
        pod()
            .ann(a::FILE_ACCESS, "uid 1 mode 0400")
            .run_as(Some(1000), None, None),
    );
    assert_eq!(annotation(&p, a::FILE_ACCESS), Some("uid 1000 mode 0400"));
    assert_eq!(annotation(&p, a::STATUS), Some("injected"));
}

// ---------------------------------------------------------------- admin port

#[test]
fn the_admin_port_never_collides_with_a_port_of_the_pod() {
    struct Case {
        name: &'static str,
        b: PodBuilder,
        native: bool,
        port: u16,
        port_name: &'static str,
    }
    let sidecar = || pod().ann(a::MODE, "init+sidecar");
    let cases = vec![
        Case {
            name: "nothing declared: 8099",
            b: sidecar(),
            native: true,
            port: 8099,
            port_name: "ssm-admin",
        },
        Case {
            name: "the app declares 8099: the next port",
            b: sidecar().port("app", 8099, Some("http")),
            native: true,
            port: 8100,
            port_name: "ssm-admin",
        },
        Case {
            name: "the app probes 8099 and declares 8100",
            b: sidecar().liveness_port("app", 8099).port("app", 8100, None),
            native: true,
            port: 8101,
            port_name: "ssm-admin",
        },
        Case {
            name: "a native sidecar of the app's declares 8099",
            b: sidecar().init_container("proxy").port("proxy", 8099, None),
            native: true,
            port: 8100,
            port_name: "ssm-admin",
        },
        Case {
            name: "a classic sidecar moves too",
            b: sidecar().port("app", 8099, None),
            native: false,
            port: 8100,
            port_name: "ssm-admin",
        },
        Case {
            name: "the annotation sets it",
            b: sidecar().port("app", 8099, None).ann(a::ADMIN_PORT, "9100"),
            native: true,
            port: 9100,
            port_name: "ssm-admin",
        },
        Case {
            name: "the port name is taken: another one",
            b: sidecar().port("app", 8080, Some("ssm-admin")),
            native: true,
            port: 8099,
            port_name: "ssm-admin-2",
        },
    ];
    for case in cases {
        let name = case.name;
        let config = InjectConfig {
            native_sidecar: case.native,
            ..Default::default()
        };
        let p = inject_with(case.b, &config);
        let s = find(&p, SIDECAR);
        assert_eq!(
            flag(s, "--listen"),
            Some(format!("0.0.0.0:{}", case.port).as_str()),
            "{name}"
        );
        let ports: Vec<(Option<&str>, i32)> = s
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            [(Some(case.port_name), i32::from(case.port))],
            "{name}"
        );
        let probe = s
            .startup_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .map(|h| h.port.clone());
        let want = case.native.then_some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(case.port)),
        );
        assert_eq!(probe, want, "{name}");
        // The init container renders once and listens nowhere.
        assert_eq!(flag(find(&p, INIT_CONTAINER), "--listen"), None, "{name}");
    }
}

#[test]
fn an_admin_port_a_container_uses_is_denied_naming_the_container() {
    let d = denial(
        pod()
            .ann(a::MODE, "sidecar")
            .init_container("proxy")
            .port("proxy", 9100, None)
            .ann(a::ADMIN_PORT, "9100"),
    );
    assert_eq!(d.annotation.as_deref(), Some(a::ADMIN_PORT));
    assert!(
        d.message.contains("container proxy") && d.message.contains("9100"),
        "{}",
        d.message
    );
}

// ---------------------------------------------------------------- region

#[test]
fn the_region_comes_from_the_annotation_else_the_config_else_the_sdk_chain() {
    let cases: Vec<(&str, PodBuilder, Option<&str>, Option<&str>)> = vec![
        ("neither: the SDK's chain", pod(), None, None),
        (
            "the annotation",
            pod().ann(a::REGION, "eu-central-1"),
            None,
            Some("eu-central-1"),
        ),
        ("the config", pod(), Some("us-east-2"), Some("us-east-2")),
        (
            "the annotation wins over the config",
            pod().ann(a::REGION, " ap-southeast-2 "),
            Some("us-east-2"),
            Some("ap-southeast-2"),
        ),
    ];
    for (name, b, configured, want) in cases {
        let config = InjectConfig {
            region: configured.map(str::to_owned),
            ..Default::default()
        };
        let p = inject_with(b.ann(a::MODE, "init+sidecar"), &config);
        for c in [INIT_CONTAINER, SIDECAR] {
            assert_eq!(flag(find(&p, c), "--region"), want, "{name}: {c}");
        }
    }
}

// ---------------------------------------------------------------- denials

#[test]
fn every_bad_annotation_is_denied_naming_it() {
    let cases: Vec<(&str, PodBuilder, &str)> = vec![
        (
            "unknown key",
            pod().ann("ssm-injector.io/paht", "/x"),
            "ssm-injector.io/paht",
        ),
        ("nothing to fetch", pod().without_ann(a::PATH), a::PATH),
        ("relative path", pod().ann(a::PATH, "app/prod"), a::PATH),
        (
            "empty path in the list",
            pod().ann(a::PATH, "/a/,,/b/"),
            a::PATH,
        ),
        (
            "variables in a path",
            pod().ann(a::PATH, "/app/${STAGE}/"),
            a::PATH,
        ),
        (
            "bad param key",
            pod().ann("ssm-injector.io/param-1DB", "/a/b"),
            "ssm-injector.io/param-1DB",
        ),
        (
            "empty param key",
            pod().ann("ssm-injector.io/param-", "/a/b"),
            "ssm-injector.io/param-",
        ),
        (
            "bad param name",
            pod().ann("ssm-injector.io/param-DB", "/a//b"),
            "ssm-injector.io/param-DB",
        ),
        (
            "variables in a param",
            pod().ann("ssm-injector.io/param-DB", "/app/${STAGE}/db"),
            "ssm-injector.io/param-DB",
        ),
        (
            "comma in a param",
            pod().ann("ssm-injector.io/param-DB", "/a,/b"),
            "ssm-injector.io/param-DB",
        ),
        ("unknown format", pod().ann(a::FORMAT, "toml"), a::FORMAT),
        (
            "file with a slash",
            pod().ann(a::FILE, "../etc/passwd"),
            a::FILE,
        ),
        (
            "file starting with a dot",
            pod().ann(a::FILE, ".env"),
            a::FILE,
        ),
        ("empty file", pod().ann(a::FILE, ""), a::FILE),
        (
            "relative mount path",
            pod().ann(a::MOUNT_PATH, "ssm"),
            a::MOUNT_PATH,
        ),
        (
            "mount path with ..",
            pod().ann(a::MOUNT_PATH, "/ssm/../etc"),
            a::MOUNT_PATH,
        ),
        ("mount path /", pod().ann(a::MOUNT_PATH, "/"), a::MOUNT_PATH),
        ("unknown mode", pod().ann(a::MODE, "daemon"), a::MODE),
        (
            "bad interval",
            pod().ann(a::MODE, "sidecar").ann(a::INTERVAL, "soon"),
            a::INTERVAL,
        ),
        (
            "interval under 1s",
            pod().ann(a::MODE, "sidecar").ann(a::INTERVAL, "500ms"),
            a::INTERVAL,
        ),
        (
            "missing container",
            pod().ann(a::CONTAINERS, "app,nope"),
            a::CONTAINERS,
        ),
        (
            "empty container name",
            pod().ann(a::CONTAINERS, "app,"),
            a::CONTAINERS,
        ),
        (
            "file mode not octal",
            pod().ann(a::FILE_MODE, "0999"),
            a::FILE_MODE,
        ),
        (
            "file mode owner cannot read",
            pod().ann(a::FILE_MODE, "0200"),
            a::FILE_MODE,
        ),
        (
            "bad signal",
            pod()
                .ann(a::MODE, "sidecar")
                .ann(a::RELOAD_SIGNAL, "HUPP")
                .ann(a::RELOAD_PROCESS, "nginx"),
            a::RELOAD_SIGNAL,
        ),
        (
            "signal without process",
            pod().ann(a::MODE, "sidecar").ann(a::RELOAD_SIGNAL, "HUP"),
            a::RELOAD_SIGNAL,
        ),
        (
            "reload in init mode",
            pod().ann(a::RELOAD_PROCESS, "nginx"),
            a::RELOAD_PROCESS,
        ),
        (
            "bad process name",
            pod()
                .ann(a::MODE, "sidecar")
                .ann(a::RELOAD_PROCESS, "ng inx"),
            a::RELOAD_PROCESS,
        ),
        (
            "relative template",
            pod().ann(a::TEMPLATE, "tmpl/app.j2"),
            a::TEMPLATE,
        ),
        (
            "template outside any volume",
            pod().ann(a::TEMPLATE, "/etc/tmpl/app.j2"),
            a::TEMPLATE,
        ),
        (
            "template format without template",
            pod().ann(a::FORMAT, "template"),
            a::TEMPLATE,
        ),
        (
            "template with another format",
            pod()
                .config_map_mount("app", "t", "/t")
                .ann(a::TEMPLATE, "/t/a.j2")
                .ann(a::FORMAT, "json"),
            a::TEMPLATE,
        ),
        (
            "native-sidecar not a bool",
            pod().ann(a::NATIVE_SIDECAR, "yes"),
            a::NATIVE_SIDECAR,
        ),
        (
            "empty cpu request",
            pod().ann(a::CPU_REQUEST, ""),
            a::CPU_REQUEST,
        ),
        (
            "bad memory limit",
            pod().ann(a::MEMORY_LIMIT, "lots"),
            a::MEMORY_LIMIT,
        ),
        (
            "request above limit",
            pod()
                .ann(a::MEMORY_REQUEST, "1Gi")
                .ann(a::MEMORY_LIMIT, "32Mi"),
            a::MEMORY_REQUEST,
        ),
        (
            "mount path taken",
            pod().config_map_mount("app", "other", "/ssm"),
            a::MOUNT_PATH,
        ),
        (
            "admin port below 1024",
            pod().ann(a::MODE, "sidecar").ann(a::ADMIN_PORT, "80"),
            a::ADMIN_PORT,
        ),
        (
            "admin port not a number",
            pod().ann(a::MODE, "sidecar").ann(a::ADMIN_PORT, "http"),
            a::ADMIN_PORT,
        ),
        (
            "admin port above 65535",
            pod().ann(a::MODE, "sidecar").ann(a::ADMIN_PORT, "70000"),
            a::ADMIN_PORT,
        ),
        (
            "admin port without a sidecar",
            pod().ann(a::ADMIN_PORT, "9100"),
            a::ADMIN_PORT,
        ),
        (
            "admin port used by a container",
            pod()
                .ann(a::MODE, "sidecar")
                .port("app", 9100, None)
                .ann(a::ADMIN_PORT, "9100"),
            a::ADMIN_PORT,
        ),
        (
            "region not a region",
            pod().ann(a::REGION, "Europe"),
            a::REGION,
        ),
        (
            "region with a zone",
            pod().ann(a::REGION, "eu-west-1a"),
            a::REGION,
        ),
        (
            "reload signal KILL",
            pod()
                .ann(a::MODE, "sidecar")
                .ann(a::RELOAD_PROCESS, "nginx")
                .ann(a::RELOAD_SIGNAL, "KILL"),
            a::RELOAD_SIGNAL,
        ),
        (
            "reload signal STOP by number",
            pod()
                .ann(a::MODE, "sidecar")
                .ann(a::RELOAD_PROCESS, "nginx")
                .ann(a::RELOAD_SIGNAL, "19"),
            a::RELOAD_SIGNAL,
        ),
        (
            "mount path /etc",
            pod().ann(a::MOUNT_PATH, "/etc"),
            a::MOUNT_PATH,
        ),
        (
            "mount path over the service account token",
            pod().ann(a::MOUNT_PATH, "/var/run/secrets/kubernetes.io"),
            a::MOUNT_PATH,
        ),
        (
            "mount path in /proc",
            pod().ann(a::MOUNT_PATH, "/proc/1"),
            a::MOUNT_PATH,
        ),
        (
            "memory limit 1Ki",
            pod().ann(a::MEMORY_LIMIT, "1Ki"),
            a::MEMORY_LIMIT,
        ),
        (
            "memory request 100Gi",
            pod().ann(a::MEMORY_REQUEST, "100Gi"),
            a::MEMORY_REQUEST,
        ),
        (
            "cpu limit 0.1m",
            pod().ann(a::CPU_LIMIT, "100u"),
            a::CPU_LIMIT,
        ),
        (
            "cpu request 64 cores",
            pod().ann(a::CPU_REQUEST, "64"),
            a::CPU_REQUEST,
        ),
        (
            "file mode 0777",
            pod().ann(a::FILE_MODE, "0777"),
            a::FILE_MODE,
        ),
        (
            "file mode 0460 (group write)",
            pod().ann(a::FILE_MODE, "0460"),
            a::FILE_MODE,
        ),
        (
            "file mode setuid",
            pod().ann(a::FILE_MODE, "04400"),
            a::FILE_MODE,
        ),
    ];
    for (name, b, key) in cases {
        assert_denied_naming(name, b, key, &[]);
    }
}

/// `b` is denied with `key` as the annotation at fault, and the message names `key` and
/// each of `also`.
fn assert_denied_naming(name: &str, b: PodBuilder, key: &str, also: &[&str]) {
    let d = denial(b);
    assert_eq!(d.annotation.as_deref(), Some(key), "{name}: {}", d.message);
    for n in std::iter::once(&key).chain(also) {
        assert!(
            d.message.contains(n),
            "{name}: message does not name {n}: {}",
            d.message
        );
    }
}

#[test]
fn a_huge_bad_annotation_is_not_echoed_whole() {
    let huge = format!("/{}", "x".repeat(1 << 20));
    for (key, value) in [
        (a::MOUNT_PATH, format!("{huge} y")),
        (a::PATH, format!("{huge} y")),
        (a::MEMORY_LIMIT, "9".repeat(1 << 20) + "Zi"),
        ("ssm-injector.io/param-DB", format!("{huge}${{X}}")),
    ] {
        let d = denial(pod().ann(key, &value));
        assert!(
            d.message.len() <= super::MAX_DENIAL_BYTES + 32,
            "{key}: {} bytes",
            d.message.len()
        );
        assert!(d.message.contains(key), "{key}: {}", d.message);
        assert!(d.message.contains(" bytes)"), "{key}: {}", d.message);
    }
    // Short messages stay whole.
    let d = denial(pod().ann(a::MOUNT_PATH, "/etc"));
    assert!(!d.message.contains('…'), "{}", d.message);
}

#[test]
fn bounded_text_cuts_on_character_boundaries() {
    let text = "é".repeat(2000);
    let cut = super::bound_text(&text);
    assert!(cut.len() <= super::MAX_DENIAL_BYTES + 32);
    assert!(cut.starts_with("éé") && cut.ends_with("éé"), "{cut}");
    assert_eq!(super::bound_text("short"), "short");
}

#[test]
fn an_unknown_key_lists_the_known_ones() {
    let d = denial(pod().ann("ssm-injector.io/formt", "json"));
    assert!(
        d.message.contains("format") && d.message.contains("mount-path"),
        "{}",
        d.message
    );
}

#[test]
fn variables_are_refused_with_the_reason() {
    let d = denial(pod().ann("ssm-injector.io/param-DB", "/app/${STAGE}/db"));
    assert!(
        d.message.contains("cannot see the pod's environment"),
        "{}",
        d.message
    );
}

#[test]
fn names_the_injector_needs_must_be_free() {
    let d = denial(pod().container(SIDECAR));
    assert!(d.message.contains(SIDECAR), "{}", d.message);
}

// ---------------------------------------------------------------- policy

fn team_policy() -> InjectConfig {
    InjectConfig {
        namespace_prefixes: BTreeMap::from([
            ("team-a".to_owned(), vec!["/team-a/".to_owned()]),
            (
                "team-b".to_owned(),
                vec!["/team-b".to_owned(), "/shared/".to_owned()],
            ),
        ]),
        ..Default::default()
    }
}

#[test]
fn the_namespace_policy_allows_only_its_prefixes() {
    let param = |v: &str| {
        bare()
            .container("app")
            .inject()
            .ann("ssm-injector.io/param-X", v)
    };
    let path = |v: &str| bare().container("app").inject().ann(a::PATH, v);
    let serve_allow = |v: &str| {
        path("/team-a/app/")
            .ann(a::MODE, "sidecar")
            .ann(a::SERVE, "true")
            .ann(a::SERVE_ALLOW, v)
    };
    // (name, namespace, pod, allowed, annotation named on denial)
    let cases: Vec<(&str, &str, PodBuilder, bool, Option<&str>)> = vec![
        ("own path", "team-a", path("/team-a/app/"), true, None),
        ("the prefix itself", "team-a", path("/team-a"), true, None),
        ("own param", "team-a", param("/team-a/db"), true, None),
        (
            "own param by version",
            "team-a",
            param("/team-a/db:2"),
            true,
            None,
        ),
        (
            "a sibling prefix is not inside",
            "team-a",
            path("/team-ab/x/"),
            false,
            Some(a::PATH),
        ),
        (
            "another team's param",
            "team-a",
            param("/team-b/db"),
            false,
            Some("ssm-injector.io/param-X"),
        ),
        ("root path", "team-a", path("/"), false, Some(a::PATH)),
        (
            "own secret",
            "team-a",
            param("/aws/reference/secretsmanager/team-a/db"),
            true,
            None,
        ),
        (
            "another team's secret",
            "team-a",
            param("/aws/reference/secretsmanager/team-b/db"),
            false,
            Some("ssm-injector.io/param-X"),
        ),
        ("second prefix", "team-b", path("/shared/x/"), true, None),
        (
            "prefix without trailing slash",
            "team-b",
            param("/team-b/db"),
            true,
            None,
        ),
        (
            "prefix without slash is still component-wise",
            "team-b",
            param("/team-bc/db"),
            false,
            Some("ssm-injector.io/param-X"),
        ),
        (
            "unlisted namespace",
            "team-c",
            path("/team-c/"),
            false,
            None,
        ),
        (
            "own prefix read on demand by the endpoint",
            "team-a",
            serve_allow("/team-a/shared/,/aws/reference/secretsmanager/team-a/"),
            true,
            None,
        ),
        (
            "another team's prefix read on demand by the endpoint",
            "team-a",
            serve_allow("/team-a/shared/,/team-b/"),
            false,
            Some(a::SERVE_ALLOW),
        ),
        (
            "every secret read on demand by the endpoint",
            "team-a",
            serve_allow("/aws/reference/secretsmanager/"),
            false,
            Some(a::SERVE_ALLOW),
        ),
    ];
    let config = team_policy();
    for (name, ns, b, allowed, key) in cases {
        match mutate(&b.build(), ns, &config) {
            Decision::Patch { .. } if allowed => {}
            Decision::Deny(d) if !allowed => {
                assert_eq!(d.annotation.as_deref(), key, "{name}: {}", d.message);
                assert!(
                    d.message.contains(&format!("namespace {ns}")),
                    "{name}: {}",
                    d.message
                );
            }
            other => panic!("{name}: got {other:?}"),
        }
    }
}

#[test]
fn a_policy_denial_names_the_rule() {
    let p = pod().ann(a::PATH, "/team-b/").build();
    let Decision::Deny(d) = mutate(&p, "team-a", &team_policy()) else {
        panic!("not denied")
    };
    assert!(
        d.message
            .contains("namespace team-a may only read /team-a/*"),
        "{}",
        d.message
    );
    let Decision::Deny(d) = mutate(&p, "team-c", &team_policy()) else {
        panic!("not denied")
    };
    assert!(
        d.message
            .contains("namespace team-c has no allowed parameter prefixes"),
        "{}",
        d.message
    );
}

// ---------------------------------------------------------------- Pod Security Standard

/// The container-level checks of the Kubernetes "restricted" Pod Security Standard
/// (plus the baseline ones it includes that a patch could break). Returns the violations.
fn pss_restricted(pod: &Pod) -> Vec<String> {
    let mut v = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return vec!["no spec".to_owned()];
    };
    if spec.host_network == Some(true) {
        v.push("hostNetwork".to_owned());
    }
    if spec.host_pid == Some(true) {
        v.push("hostPID".to_owned());
    }
    if spec.host_ipc == Some(true) {
        v.push("hostIPC".to_owned());
    }
    for vol in spec.volumes.iter().flatten() {
        let ok = vol.config_map.is_some()
            || vol.csi.is_some()
            || vol.downward_api.is_some()
            || vol.empty_dir.is_some()
            || vol.ephemeral.is_some()
            || vol.persistent_volume_claim.is_some()
            || vol.projected.is_some()
            || vol.secret.is_some();
        if !ok {
            v.push(format!("volume {}: type not allowed", vol.name));
        }
    }
    let psc = spec.security_context.as_ref();
    let pod_non_root = psc.and_then(|s| s.run_as_non_root);
    let pod_seccomp = psc
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|s| s.type_.clone());
    if psc.and_then(|s| s.run_as_user) == Some(0) {
        v.push("pod runAsUser 0".to_owned());
    }
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        let sc = c.security_context.as_ref();
        let n = &c.name;
        if sc.and_then(|s| s.privileged) == Some(true) {
            v.push(format!("{n}: privileged"));
        }
        if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            v.push(format!("{n}: allowPrivilegeEscalation != false"));
        }
        match sc.and_then(|s| s.run_as_non_root).or(pod_non_root) {
            Some(true) => {}
            _ => v.push(format!("{n}: runAsNonRoot != true")),
        }
        if sc.and_then(|s| s.run_as_user) == Some(0) {
            v.push(format!("{n}: runAsUser 0"));
        }
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        if !caps
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        {
            v.push(format!("{n}: capabilities do not drop ALL"));
        }
        if caps
            .and_then(|c| c.add.as_ref())
            .is_some_and(|a| a.iter().any(|x| x != "NET_BIND_SERVICE"))
        {
            v.push(format!(
                "{n}: adds capabilities other than NET_BIND_SERVICE"
            ));
        }
        let seccomp = sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|s| s.type_.clone())
            .or(pod_seccomp.clone());
        if !matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")) {
            v.push(format!(
                "{n}: seccompProfile not RuntimeDefault or Localhost"
            ));
        }
        if c.ports
            .iter()
            .flatten()
            .any(|p| p.host_port.is_some_and(|h| h != 0))
        {
            v.push(format!("{n}: hostPort"));
        }
    }
    v
}

#[test]
fn a_restricted_pod_stays_restricted_after_injection() {
    let app = bare()
        .container("app")
        .container("worker")
        .init_container("migrate")
        .restricted()
        .inject()
        .ann(a::PATH, "/app/prod/")
        .config_map_mount("app", "tmpl", "/etc/tmpl");
    assert_eq!(pss_restricted(&app.clone().build()), Vec::<String>::new());
    for mode in ["init", "sidecar", "init+sidecar"] {
        for native in ["true", "false"] {
            let p = inject(
                app.clone()
                    .ann(a::MODE, mode)
                    .ann(a::NATIVE_SIDECAR, native),
            );
            assert_eq!(
                pss_restricted(&p),
                Vec::<String>::new(),
                "{mode} native={native}"
            );
        }
    }
}

#[test]
fn the_checker_catches_an_unrestricted_pod() {
    assert!(!pss_restricted(&pod().build()).is_empty());
}

// ---------------------------------------------------------------- properties

fn annotation_key() -> impl Strategy<Value = String> {
    let known: Vec<String> = a::ALL
        .iter()
        .filter(|(k, _)| !k.contains('<'))
        .map(|(k, _)| (*k).to_owned())
        .collect();
    prop_oneof![
        4 => proptest::sample::select(known),
        2 => "[A-Za-z0-9_]{0,6}".prop_map(|k| format!("{}{k}", a::PARAM_PREFIX)),
        1 => "[a-z./-]{0,12}".prop_map(|k| format!("{}{k}", a::PREFIX)),
        1 => "[a-z./-]{1,12}",
    ]
}

fn annotation_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "true",
            "false",
            "/app/prod/",
            "/app/prod/db",
            "/a,/b/",
            "json",
            "files",
            "template",
            "init",
            "sidecar",
            "init+sidecar",
            "5m",
            "0s",
            "0440",
            "HUP",
            "nginx",
            "app",
            "16Mi",
            "/etc/tmpl/x.j2",
            "/ssm",
            "..",
            "",
            "${X}",
            "injected",
            "9100",
            "8099",
            "eu-west-1",
            "uid 1000 mode 0400",
        ])
        .prop_map(str::to_owned),
        ".{0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_annotations_never_panic_and_every_patch_applies(
        anns in proptest::collection::btree_map(annotation_key(), annotation_value(), 0..8),
        opt_in in any::<bool>(),
        native in any::<bool>(),
        uid in proptest::option::of(0i64..70000),
    ) {
        let mut b = bare().container("app").init_container("migrate").config_map_mount("app", "tmpl", "/etc/tmpl");
        b = b.run_as(uid, None, None);
        for (k, v) in &anns {
            b = b.ann(k, v);
        }
        if opt_in {
            b = b.inject();
        }
        let p = b.build();
        let config = InjectConfig { native_sidecar: native, ..Default::default() };
        match mutate(&p, NS, &config) {
            Decision::Patch { patch, .. } => {
                let mut doc = serde_json::to_value(&p).unwrap();
                prop_assert!(json_patch::patch(&mut doc, &patch.to_json_patch().unwrap()).is_ok());
                let out: Result<Pod, _> = serde_json::from_value(doc);
                prop_assert!(out.is_ok());
                let out = out.unwrap();
                prop_assert_eq!(mutate(&out, NS, &config), Decision::Skip("already injected"));
            }
            Decision::Deny(d) => prop_assert!(!d.message.is_empty()),
            Decision::Skip(_) => {}
        }
    }
}

/// Annotations that are each valid and compatible with each other.
fn valid_pair() -> impl Strategy<Value = (&'static str, &'static str)> {
    proptest::sample::select(vec![
        (a::FORMAT, "json"),
        (a::FORMAT, "files"),
        (a::FORMAT, "properties"),
        (a::FILE, "out.conf"),
        (a::MOUNT_PATH, "/run/ssm"),
        (a::MODE, "sidecar"),
        (a::MODE, "init+sidecar"),
        (a::MODE, "init"),
        (a::INTERVAL, "2m"),
        (a::CONTAINERS, "app"),
        (a::CONTAINERS, "migrate,app"),
        (a::FILE_MODE, "0440"),
        (a::NATIVE_SIDECAR, "false"),
        (a::NATIVE_SIDECAR, "true"),
        (a::CPU_REQUEST, "10m"),
        (a::MEMORY_REQUEST, "100Mi"),
        (a::CPU_LIMIT, "1"),
        (a::REGION, "eu-west-1"),
        (a::FILE_ACCESS, "uid 1 mode 0400"),
        ("ssm-injector.io/param-DB", "/app/prod/db:2"),
        (
            "ssm-injector.io/param-S",
            "/aws/reference/secretsmanager/app/s#k",
        ),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn valid_annotations_always_give_a_patch_that_applies(
        pairs in proptest::collection::vec(valid_pair(), 0..8),
        uid in proptest::option::of(1i64..70000),
    ) {
        let mut b = pod().init_container("migrate").restricted().run_as(uid, None, None);
        for (k, v) in pairs {
            b = b.ann(k, v);
        }
        let p = b.build();
        let d = mutate(&p, NS, &InjectConfig::default());
        prop_assert!(matches!(d, Decision::Patch { .. }), "{:?}", d);
        let out = apply(&p, d);
        prop_assert_eq!(pss_restricted(&out), Vec::<String>::new());
        prop_assert_eq!(decide(&out), Decision::Skip("already injected"));
    }
}

// ---------------------------------------------------------------- AWS identity

#[test]
fn injected_containers_inherit_the_apps_irsa_wiring_that_the_pod_identity_webhook_set_earlier() {
    // The pod as the pod identity webhook leaves it when it runs before the injector.
    let p: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "annotations": {
            "ssm-injector.io/inject": "true",
            "ssm-injector.io/path": "/app/prod/",
            "ssm-injector.io/mode": "init+sidecar"
        }},
        "spec": {
            "containers": [{"name": "app", "image": "app", "env": [
                {"name": "AWS_REGION", "value": "eu-west-1"},
                {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/app"},
                {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}
            ], "volumeMounts": [
                {"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}
            ]}],
            "volumes": [{"name": "aws-iam-token", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}
            ]}}]
        }
    }))
    .unwrap();
    let injected = apply(&p, decide(&p));
    for name in [INIT_CONTAINER, SIDECAR] {
        let c = find(&injected, name);
        let env: BTreeMap<&str, Option<&str>> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            env.get("AWS_ROLE_ARN"),
            Some(&Some("arn:aws:iam::111122223333:role/app")),
            "{name}"
        );
        assert!(env.contains_key("AWS_WEB_IDENTITY_TOKEN_FILE"), "{name}");
        assert_eq!(env.get("AWS_REGION"), Some(&Some("eu-west-1")), "{name}");
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == "aws-iam-token"
                    && m.mount_path == "/var/run/secrets/eks.amazonaws.com/serviceaccount"),
            "{name}: {:?}",
            c.volume_mounts
        );
    }
}

// ---------------------------------------------------------------- env files (fileKeyRef)

/// A pod opted in to env with two parameters: containers `app` and `worker`, init
/// container `migrate`.
fn env_pod() -> PodBuilder {
    bare()
        .init_container("migrate")
        .container("app")
        .container("worker")
        .inject()
        .ann(a::ENV, "true")
        .ann("ssm-injector.io/param-DB_PASSWORD", "/app/prod/db_password")
        .ann("ssm-injector.io/param-API_KEY", "/app/prod/api_key")
}

/// The container's env entries as (name, fileKeyRef volumeName, path, key, optional); a
/// plain value shows as ("NAME", "=", value, "", None).
fn env_refs(c: &Container) -> Vec<(String, String, String, String, Option<bool>)> {
    c.env
        .iter()
        .flatten()
        .map(
            |e| match e.value_from.as_ref().and_then(|v| v.file_key_ref.as_ref()) {
                Some(f) => (
                    e.name.clone(),
                    f.volume_name.clone(),
                    f.path.clone(),
                    f.key.clone(),
                    f.optional,
                ),
                None => (
                    e.name.clone(),
                    "=".to_owned(),
                    e.value.clone().unwrap_or_default(),
                    String::new(),
                    None,
                ),
            },
        )
        .collect()
}

fn file_ref(key: &str, path: &str) -> (String, String, String, String, Option<bool>) {
    (
        key.to_owned(),
        VOLUME.to_owned(),
        path.to_owned(),
        key.to_owned(),
        Some(false),
    )
}

#[test]
fn env_gives_each_chosen_container_one_file_key_ref_per_param_and_no_mount() {
    struct Case {
        name: &'static str,
        pod: PodBuilder,
        /// Containers (and init containers) that get the entries, with the file's path.
        with_env: &'static [&'static str],
        path: &'static str,
    }
    let cases = [
        Case {
            name: "every container by default",
            pod: env_pod(),
            with_env: &["migrate", "app", "worker"],
            path: "app.env",
        },
        Case {
            name: "containers selects",
            pod: env_pod().ann(a::CONTAINERS, "app"),
            with_env: &["app"],
            path: "app.env",
        },
        Case {
            name: "format k8s-env may be said",
            pod: env_pod().ann(a::FORMAT, "k8s-env"),
            with_env: &["migrate", "app", "worker"],
            path: "app.env",
        },
        Case {
            name: "file names the path within the volume",
            pod: env_pod().ann(a::FILE, "secrets.env"),
            with_env: &["migrate", "app", "worker"],
            path: "secrets.env",
        },
        Case {
            name: "an existing variable of another name is kept first",
            pod: env_pod()
                .env_var("app", "LOG_LEVEL", "debug")
                .env_var("worker", "DB_PASSWORD", "not ours")
                .ann(a::CONTAINERS, "app,migrate"),
            with_env: &["migrate", "app"],
            path: "app.env",
        },
    ];
    for case in cases {
        let p = inject(case.pod);
        let name = case.name;
        let ours = vec![
            file_ref("API_KEY", case.path),
            file_ref("DB_PASSWORD", case.path),
        ];
        for c in ["migrate", "app", "worker"] {
            let c = find(&p, c);
            assert_eq!(ssm_mount(c), None, "{name}: {} got a mount", c.name);
            let refs: Vec<_> = env_refs(c).into_iter().filter(|r| r.1 == VOLUME).collect();
            if case.with_env.contains(&c.name.as_str()) {
                assert_eq!(refs, ours, "{name}: {}", c.name);
            } else {
                assert!(refs.is_empty(), "{name}: {} got {refs:?}", c.name);
            }
        }
        if name.starts_with("an existing") {
            assert_eq!(env_refs(find(&p, "app"))[0].0, "LOG_LEVEL", "{name}");
            assert_eq!(
                env_refs(find(&p, "worker")),
                [(
                    "DB_PASSWORD".to_owned(),
                    "=".to_owned(),
                    "not ours".to_owned(),
                    String::new(),
                    None
                )],
                "{name}"
            );
        }
        // The init container writes the kubelet's format into the volume, readable by
        // its writer only (the kubelet reads it as root).
        let init = find(&p, INIT_CONTAINER);
        assert_eq!(flag(init, "--format"), Some("k8s-env"), "{name}");
        assert_eq!(
            flag(init, "--output"),
            Some(format!("/ssm/{}", case.path).as_str()),
            "{name}"
        );
        assert_eq!(flag(init, "--file-mode"), Some("0400"), "{name}");
        assert_eq!(ssm_mount(init), Some(("/ssm".to_owned(), None)), "{name}");
        assert_eq!(
            flag(init, "--param"),
            Some("API_KEY=/app/prod/api_key"),
            "{name}"
        );
        let volume = ssm_volume(&p);
        assert!(volume.empty_dir.is_some(), "{name}: {volume:?}");
    }
}

#[test]
fn env_with_init_and_sidecar_keeps_the_file_current_in_the_same_format() {
    let p = inject(env_pod().ann(a::MODE, "init+sidecar"));
    for name in [INIT_CONTAINER, SIDECAR] {
        let c = find(&p, name);
        assert_eq!(flag(c, "--format"), Some("k8s-env"), "{name}");
        assert_eq!(flag(c, "--output"), Some("/ssm/app.env"), "{name}");
    }
    assert_eq!(ssm_mount(find(&p, "app")), None);
    assert_eq!(env_refs(find(&p, "app")).len(), 2);
}

#[test]
fn env_false_is_the_mount_as_before() {
    let p = inject(pod().ann(a::ENV, "false"));
    assert_eq!(
        ssm_mount(find(&p, "app")),
        Some(("/ssm".to_owned(), Some(true)))
    );
    assert!(find(&p, "app").env.is_none());
    assert_eq!(flag(find(&p, INIT_CONTAINER), "--format"), Some("shell"));
}

#[test]
fn env_that_cannot_work_is_denied_naming_the_annotations() {
    // (case, pod, the annotation at fault, what else the message must name)
    let cases: Vec<(&str, PodBuilder, &str, &[&str])> = vec![
        (
            "with a path: its keys are unknown at admission",
            env_pod().ann(a::PATH, "/app/prod/"),
            a::ENV,
            &[a::PATH, a::PARAM_PREFIX],
        ),
        (
            "no parameter",
            bare().container("app").inject().ann(a::ENV, "true"),
            a::ENV,
            &[a::PARAM_PREFIX],
        ),
        ("not a boolean", env_pod().ann(a::ENV, "yes"), a::ENV, &[]),
        (
            "another format",
            env_pod().ann(a::FORMAT, "json"),
            a::FORMAT,
            &[a::ENV, "k8s-env"],
        ),
        (
            "a template",
            env_pod().ann(a::TEMPLATE, "/config/app.tmpl"),
            a::TEMPLATE,
            &[a::ENV],
        ),
        (
            "sidecar only: nothing written before the app starts",
            env_pod().ann(a::MODE, "sidecar"),
            a::MODE,
            &[a::ENV, "init+sidecar"],
        ),
        (
            "a reload process cannot change a running process's environment",
            env_pod()
                .ann(a::MODE, "init+sidecar")
                .ann(a::RELOAD_PROCESS, "app"),
            a::RELOAD_PROCESS,
            &[a::ENV],
        ),
        (
            "the container already sets the variable",
            env_pod().env_var("worker", "DB_PASSWORD", "x"),
            "ssm-injector.io/param-DB_PASSWORD",
            &["worker", "DB_PASSWORD", a::CONTAINERS],
        ),
        (
            "an init container already sets the variable",
            env_pod().env_var("migrate", "API_KEY", "x"),
            "ssm-injector.io/param-API_KEY",
            &["migrate", "API_KEY"],
        ),
    ];
    for (name, b, key, names) in cases {
        assert_denied_naming(name, b, key, names);
    }
}

#[test]
fn env_does_not_fall_back_to_the_configured_default_paths() {
    let config = InjectConfig {
        default_paths: vec!["/apps/{namespace}/".to_owned()],
        ..InjectConfig::default()
    };
    let p = bare().container("app").inject().ann(a::ENV, "true").build();
    match mutate(&p, NS, &config) {
        Decision::Deny(d) => assert_eq!(d.annotation.as_deref(), Some(a::ENV), "{}", d.message),
        other => panic!("expected a denial, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the direct patch vs clone + diff

/// How a list (env, volumeMounts, initContainers, volumes) starts out: absent, empty, or
/// with one entry of the pod's own.
#[derive(Debug, Clone, Copy)]
enum Start {
    Absent,
    Empty,
    One,
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![Just(Start::Absent), Just(Start::Empty), Just(Start::One)]
}

fn list<T>(s: Start, one: impl FnOnce() -> T) -> Option<Vec<T>> {
    match s {
        Start::Absent => None,
        Start::Empty => Some(Vec::new()),
        Start::One => Some(vec![one()]),
    }
}

/// A container of the pod: its env and mounts as `Start`s, a runAsUser or none.
fn own_container(name: String, (env, mounts, uid): (Start, Start, Option<i64>)) -> Container {
    use k8s_openapi::api::core::v1::{EnvVar, SecurityContext, VolumeMount};
    Container {
        image: Some("app:1".to_owned()),
        env: list(env, || EnvVar {
            name: format!("OWN_{}", name.to_uppercase()),
            value: Some("1".to_owned()),
            value_from: None,
        }),
        volume_mounts: list(mounts, || VolumeMount {
            name: "data".to_owned(),
            mount_path: format!("/data/{name}"),
            ..Default::default()
        }),
        security_context: uid.map(|u| SecurityContext {
            run_as_user: Some(u),
            ..Default::default()
        }),
        name,
        ..Default::default()
    }
}

fn container_shape() -> impl Strategy<Value = (Start, Start, Option<i64>)> {
    (start(), start(), proptest::option::of(1i64..70000))
}

prop_compose! {
    /// Pods with and without volumes, init containers, env, mounts and security contexts
    /// (some without a spec at all), and annotations that opt in every way the injector
    /// patches: mode, env, a container list, a reload process, the injector's own keys set
    /// before, other keys with `/` and `~`.
    fn generated_pod()(
        apps in proptest::collection::vec(container_shape(), 1..3),
        inits in proptest::option::of(proptest::collection::vec(container_shape(), 0..3)),
        volumes in start(),
        no_spec in proptest::bool::weighted(0.05),
        pod_uid in proptest::option::of(1i64..70000),
        mode in proptest::sample::select(vec!["init", "sidecar", "init+sidecar"]),
        env in any::<bool>(),
        only_first in any::<bool>(),
        native in proptest::option::of(any::<bool>()),
        reload in any::<bool>(),
        old_status in proptest::option::of(proptest::sample::select(vec!["pending", ""])),
        old_access in any::<bool>(),
        others in proptest::collection::btree_map("[a-z~/.]{1,6}/[a-z~/]{0,6}", "[a-z ]{0,4}", 0..3),
    ) -> Pod {
        use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, Volume};
        let mut anns: BTreeMap<String, String> = others
            .into_iter()
            .map(|(k, v)| (format!("example.com{k}"), v))
            .collect();
        anns.insert(a::INJECT.to_owned(), "true".to_owned());
        anns.insert(a::MODE.to_owned(), mode.to_owned());
        // What validation refuses is left out: env needs the init container, a reload
        // process a sidecar and files.
        let env = env && mode != "sidecar";
        let reload = reload && !env && mode != "init";
        if env {
            anns.insert(a::ENV.to_owned(), "true".to_owned());
            anns.insert("ssm-injector.io/param-DB".to_owned(), "/app/prod/db".to_owned());
        } else {
            anns.insert(a::PATH.to_owned(), "/app/prod/".to_owned());
        }
        if only_first {
            anns.insert(a::CONTAINERS.to_owned(), "c0".to_owned());
        }
        if let Some(n) = native {
            anns.insert(a::NATIVE_SIDECAR.to_owned(), n.to_string());
        }
        if reload {
            anns.insert(a::RELOAD_PROCESS.to_owned(), "nginx".to_owned());
        }
        if let Some(s) = old_status {
            anns.insert(a::STATUS.to_owned(), s.to_owned());
        }
        if old_access {
            anns.insert(a::FILE_ACCESS.to_owned(), "uid 1 mode 0400".to_owned());
        }
        let spec = PodSpec {
            containers: apps
                .into_iter()
                .enumerate()
                .map(|(i, s)| own_container(format!("c{i}"), s))
                .collect(),
            init_containers: inits.map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, s)| own_container(format!("i{i}"), s))
                    .collect()
            }),
            volumes: list(volumes, || Volume {
                name: "data".to_owned(),
                ..Default::default()
            }),
            security_context: pod_uid.map(|u| PodSecurityContext {
                run_as_user: Some(u),
                ..Default::default()
            }),
            ..Default::default()
        };
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".to_owned()),
                annotations: Some(anns),
                ..Default::default()
            },
            spec: (!no_spec).then_some(spec),
            status: None,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The patch built from the changes gives exactly the pod the old way gave: a clone of
    /// the pod with the changes applied, diffed by `json_patch::diff` and that diff applied.
    #[test]
    fn the_direct_patch_gives_the_same_pod_as_clone_and_diff(
        p in generated_pod(),
        hub in any::<bool>(),
    ) {
        let config = if hub { hub_config() } else { InjectConfig::default() };
        let annotations = p.metadata.annotations.clone().unwrap_or_default();
        let Ok(req) = super::validate::validate(&annotations, &[]) else {
            return Ok(());
        };
        let Ok(changes) = super::patch::plan(&p, &req, &config) else {
            return Ok(());
        };
        let before = serde_json::to_value(&p).unwrap();

        // The old way: mutate a clone, diff the two JSON trees.
        let mut mutated = p.clone();
        changes.clone().apply_to(&mut mutated);
        let diff = json_patch::diff(&before, &serde_json::to_value(&mutated).unwrap());
        let mut by_diff = before.clone();
        json_patch::patch(&mut by_diff, &diff).unwrap();
        let by_diff: Pod = serde_json::from_value(by_diff).unwrap();
        prop_assert_eq!(&by_diff, &mutated);

        // The new way, through its wire bytes.
        let direct = changes.into_patch(&p).to_json_patch().unwrap();
        let mut by_direct = before;
        let applied = json_patch::patch(&mut by_direct, &direct);
        prop_assert!(applied.is_ok(), "{:?}\n{:?}", applied, direct);
        let by_direct: Pod = serde_json::from_value(by_direct).unwrap();
        prop_assert_eq!(&by_direct, &by_diff);
        // And `mutate` answers with that patch.
        let Decision::Patch { patch, .. } = mutate(&p, NS, &config) else {
            panic!("plan gave changes, mutate no patch");
        };
        prop_assert_eq!(patch.to_json_patch().unwrap(), direct);
    }
}

// ---------------------------------------------------------------- exec

/// Containers `app` (`python app.py --port 8080`) and `worker` (`worker`), an init
/// container `migrate` (`migrate up`), opted in with exec, a path and one parameter.
fn exec_pod() -> PodBuilder {
    bare()
        .container("app")
        .container("worker")
        .init_container("migrate")
        .command("app", &["python", "app.py"], &["--port", "8080"])
        .command("worker", &["worker"], &[])
        .command("migrate", &["migrate"], &["up"])
        .inject()
        .ann(a::EXEC, "true")
        .ann(a::PATH, "/app/prod/")
        .ann("ssm-injector.io/param-DB_PASSWORD", "/app/db#password")
}

fn command(c: &Container) -> Vec<&str> {
    c.command.iter().flatten().map(String::as_str).collect()
}

/// The container's command as `ssm-injector` parses it: its `exec` arguments.
fn parsed_exec(c: &Container) -> crate::cli::ExecArgs {
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from(command(c))
        .unwrap_or_else(|e| panic!("{}: the CLI refuses {:?}: {e}", c.name, command(c)));
    match cli.command {
        crate::cli::Command::Exec(args) => args,
        other => panic!("{}: not exec: {other:?}", c.name),
    }
}

#[test]
fn exec_runs_each_app_container_under_exec_watch_from_the_installed_binary() {
    let p = inject(exec_pod());
    let names: Vec<&str> = inits(&p).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [INIT_CONTAINER, "migrate"],
        "the installer runs first"
    );
    let init = find(&p, INIT_CONTAINER);
    assert_eq!(args(init), ["install", "/ssm/bin"]);
    assert_eq!(
        ssm_mount(init),
        Some(("/ssm".to_owned(), None)),
        "read-write"
    );
    let sc = init.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));

    let app = find(&p, "app");
    assert_eq!(
        command(app),
        [
            "/ssm/bin/ssm-injector",
            "exec",
            "--watch",
            "--path",
            "/app/prod/",
            "--param",
            "DB_PASSWORD=/app/db#password",
            "--interval",
            "10m",
            "--listen",
            "0.0.0.0:8099",
            "--",
            "python",
            "app.py"
        ]
    );
    assert_eq!(
        args(app),
        ["--port", "8080"],
        "args are the container's own"
    );
    assert_eq!(ssm_mount(app), Some(("/ssm".to_owned(), Some(true))));
    // The real command line: every flag is one ssm-injector has, the command comes after.
    let parsed = parsed_exec(app);
    assert!(parsed.watch.watch);
    assert_eq!(parsed.command, ["python", "app.py"]);
    let worker = find(&p, "worker");
    assert_eq!(
        flag_in(&command(worker), "--listen"),
        Some("0.0.0.0:8100"),
        "its own port"
    );
    assert_eq!(parsed_exec(worker).command, ["worker"]);
    // An init container is chosen only by name.
    let migrate = find(&p, "migrate");
    assert_eq!(command(migrate), ["migrate"]);
    assert_eq!(ssm_mount(migrate), None);
    // No sidecar, no file: a disk emptyDir (no value is in it) that holds the binary.
    assert_eq!(containers(&p).len(), 2);
    let volume = ssm_volume(&p);
    let dir = volume.empty_dir.as_ref().unwrap();
    assert_eq!(dir.medium, None);
    assert_eq!(dir.size_limit.as_ref().map(|q| q.0.as_str()), Some("32Mi"));
    assert!(
        annotation(&p, a::FILE_ACCESS).is_some_and(|s| s.contains("app, worker")),
        "{:?}",
        annotation(&p, a::FILE_ACCESS)
    );
}

fn flag_in<'a>(list: &[&'a str], flag: &str) -> Option<&'a str> {
    list.iter()
        .position(|x| *x == flag)
        .and_then(|i| list.get(i + 1).copied())
}

#[test]
fn exec_takes_the_listed_containers_init_containers_included_and_the_pods_settings() {
    let p = inject(
        exec_pod()
            .ann(a::CONTAINERS, "migrate,worker")
            .ann(a::ADMIN_PORT, "9000")
            .ann(a::INTERVAL, "90s")
            .ann(a::REGION, "eu-west-1")
            .ann(a::MOUNT_PATH, "/opt/ssm")
            .port("worker", 9001, None),
    );
    assert_eq!(command(find(&p, "app")), ["python", "app.py"], "not listed");
    let migrate = command(find(&p, "migrate"));
    assert_eq!(migrate[0], "/opt/ssm/bin/ssm-injector");
    // App containers first: worker 9000; 9001 is its own port, so migrate gets 9002.
    assert_eq!(flag_in(&migrate, "--listen"), Some("0.0.0.0:9002"));
    assert_eq!(flag_in(&migrate, "--interval"), Some("1m 30s"));
    assert_eq!(flag_in(&migrate, "--region"), Some("eu-west-1"));
    assert_eq!(parsed_exec(find(&p, "migrate")).command, ["migrate"]);
    assert_eq!(
        flag_in(&command(find(&p, "worker")), "--listen"),
        Some("0.0.0.0:9000")
    );
    assert_eq!(args(find(&p, INIT_CONTAINER)), ["install", "/opt/ssm/bin"]);
    // The installer still runs before the listed init container.
    assert_eq!(inits(&p)[0].name, INIT_CONTAINER);
}

#[test]
fn exec_with_a_hub_follows_it_from_each_container() {
    let p = inject_with(exec_pod(), &hub_config());
    let app = find(&p, "app");
    let cmd = command(app);
    assert_eq!(
        flag_in(&cmd, "--hub"),
        Some("https://ssm-injector-hub.ssm-injector.svc:8443")
    );
    assert_eq!(
        flag_in(&cmd, "--hub-token-file"),
        Some("/var/run/secrets/ssm-injector/hub/token")
    );
    assert!(parsed_exec(app).watch.watch);
    assert!(
        app.env
            .iter()
            .flatten()
            .any(|e| e.name == "SSM_INJECTOR_HUB_CA_PEM"),
        "{:?}",
        app.env
    );
    assert!(
        app.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == super::patch::HUB_TOKEN_VOLUME)
    );
    assert_eq!(
        token_audiences(&p),
        [(
            super::patch::HUB_TOKEN_VOLUME.to_owned(),
            Some(super::DEFAULT_HUB_AUDIENCE.to_owned())
        )]
    );
}

#[test]
fn exec_that_cannot_work_is_denied_naming_the_annotations() {
    let mut cases: Vec<(&str, PodBuilder, &str, &[&str])> = vec![
        (
            "a chosen container without a command",
            exec_pod().container("sidecar-less"),
            a::EXEC,
            &["sidecar-less", "command", a::CONTAINERS],
        ),
        (
            "a listed init container without a command",
            exec_pod()
                .init_container("setup")
                .ann(a::CONTAINERS, "setup"),
            a::EXEC,
            &["setup", "command"],
        ),
        (
            "the container already sets the variable",
            exec_pod().env_var("app", "DB_PASSWORD", "x"),
            "ssm-injector.io/param-DB_PASSWORD",
            &["app", "DB_PASSWORD"],
        ),
        (
            "not a boolean",
            exec_pod().ann(a::EXEC, "yes"),
            a::EXEC,
            &[],
        ),
    ];
    for (key, value) in [
        (a::ENV, "true"),
        (a::FORMAT, "json"),
        (a::FILE, "app.json"),
        (a::TEMPLATE, "/config/app.tmpl"),
        (a::FILE_MODE, "0440"),
        (a::MODE, "init"),
        (a::RELOAD_SIGNAL, "HUP"),
        (a::RELOAD_PROCESS, "app"),
        (a::NATIVE_SIDECAR, "true"),
    ] {
        cases.push((
            "does not apply with exec",
            exec_pod().ann(key, value),
            key,
            &[a::EXEC],
        ));
    }
    for (name, b, key, names) in cases {
        assert_denied_naming(name, b, key, names);
    }
}

#[test]
fn exec_false_is_the_init_container_as_before() {
    let p = inject(exec_pod().ann(a::EXEC, "false"));
    assert_eq!(args(find(&p, INIT_CONTAINER))[0], "render");
    assert_eq!(command(find(&p, "app")), ["python", "app.py"]);
}

// ---------------------------------------------------------------- serve

fn serve_pod() -> PodBuilder {
    pod()
        .container("worker")
        .ann(a::MODE, "init+sidecar")
        .ann(a::SERVE, "true")
}

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

#[test]
fn serve_gives_the_sidecar_the_endpoint_and_the_containers_its_port_and_token() {
    let p = inject(serve_pod());
    let sidecar = find(&p, SIDECAR);
    assert_eq!(flag(sidecar, "--serve"), Some("127.0.0.1:2773"));
    assert_eq!(
        flag(sidecar, "--serve-token-file"),
        Some("/ssm/serve-token")
    );
    assert!(
        args(sidecar).contains(&"--serve-token-create"),
        "{:?}",
        args(sidecar)
    );
    for name in ["app", "worker"] {
        let c = find(&p, name);
        assert_eq!(
            env_value(c, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"),
            Some("2773")
        );
        assert_eq!(
            env_value(c, "SSM_INJECTOR_SERVE_TOKEN_FILE"),
            Some("/ssm/serve-token")
        );
        assert_eq!(ssm_mount(c), Some(("/ssm".to_owned(), Some(true))));
    }
    assert_eq!(flag(sidecar, "--serve-allow"), None);
    // The sidecar's flags are ones the binary has.
    use clap::Parser as _;
    let mut line = vec!["ssm-injector"];
    line.extend(args(sidecar));
    crate::cli::Cli::try_parse_from(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));

    // serve-allow: its prefixes, trimmed, as one --serve-allow the binary takes.
    let p = inject(serve_pod().ann(
        a::SERVE_ALLOW,
        " /app/shared/ , /aws/reference/secretsmanager/app/",
    ));
    let sidecar = find(&p, SIDECAR);
    assert_eq!(
        flag(sidecar, "--serve-allow"),
        Some("/app/shared/,/aws/reference/secretsmanager/app/")
    );
    let mut line = vec!["ssm-injector"];
    line.extend(args(sidecar));
    let cli = crate::cli::Cli::try_parse_from(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let crate::cli::Command::Render(render) = cli.command else {
        panic!("{line:?}")
    };
    assert_eq!(
        render.watch.serve.serve_allow,
        ["/app/shared/", "/aws/reference/secretsmanager/app/"]
    );
}

#[test]
fn serve_takes_the_port_the_containers_set_or_a_free_one() {
    let p = inject(
        serve_pod()
            .env_var("app", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "3000")
            .env_var("worker", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "3000"),
    );
    assert_eq!(flag(find(&p, SIDECAR), "--serve"), Some("127.0.0.1:3000"));
    let app = find(&p, "app");
    let ports: Vec<_> = app
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
        .collect();
    assert_eq!(
        ports.len(),
        1,
        "the container's own entry is kept alone: {ports:?}"
    );
    // 2773 declared by the app: the next one up.
    let p = inject(serve_pod().port("app", 2773, None));
    assert_eq!(flag(find(&p, SIDECAR), "--serve"), Some("127.0.0.1:2774"));
}

#[test]
fn serve_that_cannot_work_is_denied_naming_the_annotations() {
    let cases: Vec<(&str, PodBuilder, &str, &[&str])> = vec![
        (
            "no sidecar",
            serve_pod().ann(a::MODE, "init"),
            a::SERVE,
            &[a::MODE, "init+sidecar"],
        ),
        (
            "two ports",
            serve_pod()
                .env_var("app", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "3000")
                .env_var("worker", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "3001"),
            a::SERVE,
            &["app", "worker", "3000", "3001"],
        ),
        (
            "a port in use",
            serve_pod()
                .env_var("app", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "8080")
                .port("worker", 8080, None),
            a::SERVE,
            &["8080", "worker"],
        ),
        (
            "not a port",
            serve_pod().env_var("app", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "80"),
            a::SERVE,
            &["80"],
        ),
        (
            "with exec",
            bare()
                .container("app")
                .command("app", &["app"], &[])
                .inject()
                .ann(a::PATH, "/app/prod/")
                .ann(a::EXEC, "true")
                .ann(a::SERVE, "true"),
            a::SERVE,
            &[a::EXEC],
        ),
        (
            "serve-allow without serve",
            pod()
                .ann(a::MODE, "sidecar")
                .ann(a::SERVE_ALLOW, "/app/shared/"),
            a::SERVE_ALLOW,
            &[a::SERVE],
        ),
        (
            "serve-allow not a path",
            serve_pod().ann(a::SERVE_ALLOW, "/app/shared/,app/other"),
            a::SERVE_ALLOW,
            &["app/other", "must start with /"],
        ),
        (
            "serve-allow with an empty prefix",
            serve_pod().ann(a::SERVE_ALLOW, "/app/shared/,"),
            a::SERVE_ALLOW,
            &["is empty"],
        ),
    ];
    for (name, b, key, names) in cases {
        assert_denied_naming(name, b, key, names);
    }
}
