//! A checked [`Request`] + the pod → what the injection adds ([`Changes`]) → the JSONPatch.

use super::access::{self, FileAccess};
use super::annotations as a;
use super::identity;
use super::jsonpatch::{Item, Patch, pointer_token};
use super::port;
use super::validate::Request;
use super::{Denial, InjectConfig};
use crate::format::Format;
use crate::spec::names::is_under;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    FileKeySelector, HTTPGetAction, Pod, PodSpec, Probe, ProjectedVolumeSource,
    ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Name of the shared memory volume.
pub const VOLUME: &str = "ssm-injector";
/// Name of the init container.
pub const INIT_CONTAINER: &str = "ssm-injector-init";
/// Name of the sidecar (native or regular).
pub const SIDECAR: &str = "ssm-injector";
/// Volume of the projected token the sidecar presents to the hub.
pub const HUB_TOKEN_VOLUME: &str = "ssm-injector-hub-token";
/// Where the sidecar finds that token.
pub const HUB_TOKEN_DIR: &str = "/var/run/secrets/ssm-injector/hub";

fn deny(annotation: Option<&str>, message: String) -> Denial {
    Denial {
        annotation: annotation.map(str::to_owned),
        message,
    }
}

/// What the injection adds to a pod, decided by [`plan`]; [`Changes::into_patch`] turns it
/// into the JSONPatch against that pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    /// The admission warnings.
    pub warnings: Vec<String>,
    /// `spec.shareProcessNamespace` becomes `true` (a reload process).
    share_process_namespace: bool,
    /// What every chosen app and init container gets.
    addition: Addition,
    /// Indices of the chosen containers in `spec.containers`.
    chosen_containers: Vec<usize>,
    /// Indices of the chosen init containers in `spec.initContainers`.
    chosen_inits: Vec<usize>,
    /// With [`a::EXEC`]: the new `command` of each chosen container (`true`: an init
    /// container), by index.
    commands: Vec<(bool, usize, Vec<String>)>,
    /// With [`a::SERVE`]: the variables appended to each chosen container's `env` (those
    /// it does not set itself), by index.
    serve_env: Vec<(bool, usize, Vec<EnvVar>)>,
    /// Placed before the pod's own init containers, in this order.
    injected_init: Vec<Container>,
    /// Appended to `spec.containers` (the classic sidecar).
    sidecar: Option<Container>,
    /// Appended to `spec.volumes`.
    volumes: Vec<Volume>,
    /// Set in `metadata.annotations`.
    annotations: [(&'static str, String); 2],
}

/// What a chosen container of the pod gets.
#[derive(Debug, Clone, PartialEq)]
enum Addition {
    /// `fileKeyRef` entries appended to its `env` ([`a::ENV`]).
    Env(Vec<EnvVar>),
    /// The read-only mount of the injector's volume, appended to its `volumeMounts`.
    Mount(VolumeMount),
    /// With [`a::EXEC`]: mounts (the binary's volume, the hub token) appended to its
    /// `volumeMounts` and variables (the hub's CA) to its `env`; its `command` replaced.
    Exec {
        mounts: Vec<VolumeMount>,
        env: Vec<EnvVar>,
    },
}

/// Decides what the injection adds to `pod`, with the admission warnings. Fails (without a
/// useful partial result) when the pod cannot take the injection: names already used, a
/// container listed that does not exist, a mount path already taken, a template outside
/// every mounted volume, an admin port a container uses.
pub fn plan(pod: &Pod, req: &Request, config: &InjectConfig) -> Result<Changes, Denial> {
    let no_spec;
    let spec = match &pod.spec {
        Some(spec) => spec,
        None => {
            no_spec = PodSpec::default();
            &no_spec
        }
    };

    // Names the injector is about to add must be free.
    if let Some(taken) = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == VOLUME || (config.hub.is_some() && v.name == HUB_TOKEN_VOLUME))
    {
        let taken = taken.name.clone();
        return Err(deny(
            None,
            format!(
                "the pod already has a volume named {taken}; rename it, the injector needs that name"
            ),
        ));
    }
    let all_names: Vec<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    for own in [INIT_CONTAINER, SIDECAR] {
        if all_names.contains(&own) {
            return Err(deny(
                None,
                format!(
                    "the pod already has a container named {own}; rename it, the injector needs that name"
                ),
            ));
        }
    }
    if let Some(listed) = &req.containers {
        for name in listed {
            if !all_names.contains(&name.as_str()) {
                return Err(deny(
                    Some(a::CONTAINERS),
                    format!(
                        "{}: the pod has no container named {name:?}; choose from: {}",
                        a::CONTAINERS,
                        all_names.join(", ")
                    ),
                ));
            }
        }
    }
    // With exec, no list means the app containers: an init container runs to its end
    // before the app starts, and is chosen only by name.
    let app_names: Vec<String>;
    let list = match (&req.containers, req.exec) {
        (Some(list), _) => Some(list),
        (None, true) => {
            app_names = spec.containers.iter().map(|c| c.name.clone()).collect();
            Some(&app_names)
        }
        (None, false) => None,
    };
    let chosen = |c: &Container| list.is_none_or(|l| l.contains(&c.name));
    // The containers that get the mount: with env, none (the kubelet reads the file).
    let mounted = |c: &Container| !req.env && chosen(c);

    // With env (or exec), every variable the injector adds must be free in every chosen
    // container: a second entry of the same name would silently win or lose (exec refuses
    // to start on such a clash).
    if req.env || req.exec {
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .filter(|c| chosen(c))
        {
            if let Some(p) = req
                .params
                .iter()
                .find(|p| c.env.iter().flatten().any(|e| e.name == p.key))
            {
                return Err(deny(
                    Some(&p.annotation),
                    format!(
                        "{}: container {} already sets the environment variable {}; remove it from the container, rename the key, or leave the container out with {}",
                        p.annotation,
                        c.name,
                        p.key,
                        a::CONTAINERS
                    ),
                ));
            }
        }
    }

    // The mount path must be free in every container that gets it.
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| mounted(c))
    {
        if c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == req.mount_path)
        {
            return Err(deny(
                Some(a::MOUNT_PATH),
                format!(
                    "{}: container {} already mounts a volume at {}; choose another path",
                    a::MOUNT_PATH,
                    c.name,
                    req.mount_path
                ),
            ));
        }
    }

    if req.exec {
        return plan_exec(spec, req, config, &chosen);
    }

    // The template must be in a volume some container mounts; the injected containers get
    // the same mount, read-only.
    let template_mount = match &req.template {
        None => None,
        Some(t) => Some(find_template_mount(spec, t)?),
    };

    // Who reads the files decides who writes them and their mode.
    let (pod_ids, readers) = access::readers(spec, mounted);
    let ids = access::derive(&pod_ids, &readers, req.file_mode);
    let admin = if req.mode.has_sidecar() {
        Some((
            port::admin_port(spec, req.admin_port)?,
            port::port_name(spec),
        ))
    } else {
        None
    };
    // The local endpoint: its port, and what each chosen container is told.
    let serve = match (req.serve, admin.as_ref()) {
        (true, Some((admin_port, _))) => {
            let port = port::serve_port(spec, &mounted, *admin_port)?;
            let token = format!("{}/{SERVE_TOKEN}", req.mount_path);
            Some((port, token))
        }
        _ => None,
    };
    let serve_env = match &serve {
        Some((port, token)) => {
            let wanted = [
                (port::SERVE_PORT_VARIABLE, port.to_string()),
                (SERVE_TOKEN_VARIABLE, token.clone()),
            ];
            indexed(spec)
                .filter(|(_, _, c)| mounted(c))
                .map(|(init, i, c)| {
                    let missing = wanted
                        .iter()
                        .filter(|(name, _)| !c.env.iter().flatten().any(|e| e.name == *name))
                        .map(|(name, value)| EnvVar {
                            name: (*name).to_owned(),
                            value: Some(value.clone()),
                            value_from: None,
                        })
                        .collect();
                    (init, i, missing)
                })
                .collect()
        }
        None => Vec::new(),
    };
    let region = req.region.as_ref().or(config.region.as_ref());
    let native = req.native_sidecar.unwrap_or(config.native_sidecar);
    let interval = req.interval.unwrap_or(config.default_interval);

    let mut mounts = vec![VolumeMount {
        name: VOLUME.to_owned(),
        mount_path: req.mount_path.clone(),
        ..Default::default()
    }];
    mounts.extend(template_mount);

    // The app's AWS credentials wiring (IRSA, Pod Identity), which the pod identity
    // webhook gave only to the containers that existed when it ran.
    let inherited = identity::inherited(spec, chosen);

    let mut base_args = render_args(req, &ids, region);
    // Room for the sidecar's own flags, so the args are allocated once.
    let capacity = base_args.len() + 14;
    let mut injected_init = Vec::new();
    if req.mode.has_init() {
        let mut args = Vec::with_capacity(capacity);
        args.push("render".to_owned());
        // The last container to use the flags takes them; only a sidecar after this copies.
        if admin.is_some() {
            args.extend(base_args.iter().cloned());
        } else {
            args.append(&mut base_args);
        }
        injected_init.push(container(INIT_CONTAINER, args, &mounts, req, config, &ids));
    }
    let mut sidecar = None;
    if let Some((admin_port, port_name)) = admin {
        let mut args = Vec::with_capacity(capacity);
        args.extend(["render".to_owned(), "--watch".to_owned()]);
        args.extend(base_args);
        args.extend([
            "--interval".to_owned(),
            humantime::format_duration(interval).to_string(),
            "--listen".to_owned(),
            format!("0.0.0.0:{admin_port}"),
        ]);
        if let Some(p) = &req.reload_process {
            if let Some(s) = &req.reload_signal {
                args.extend(["--reload-signal".to_owned(), s.clone()]);
            }
            args.extend(["--reload-process".to_owned(), p.clone()]);
        }
        let hub = config.hub.as_ref().map(HubWiring::of);
        if let Some(h) = &hub {
            args.extend(h.args.iter().cloned());
        }
        if let Some((port, token)) = &serve {
            args.extend([
                "--serve".to_owned(),
                format!("127.0.0.1:{port}"),
                "--serve-token-file".to_owned(),
                token.clone(),
                "--serve-token-create".to_owned(),
            ]);
            if !req.serve_allow.is_empty() {
                args.extend(["--serve-allow".to_owned(), req.serve_allow.join(",")]);
            }
        }
        let mut c = container(SIDECAR, args, &mounts, req, config, &ids);
        c.ports = Some(vec![ContainerPort {
            name: Some(port_name),
            container_port: i32::from(admin_port),
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]);
        if let Some(h) = hub {
            c.env.get_or_insert_with(Vec::new).push(h.ca);
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(h.token_mount);
        }
        if native {
            c.restart_policy = Some("Always".to_owned());
            c.startup_probe = Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/readyz".to_owned()),
                    port: IntOrString::Int(i32::from(admin_port)),
                    ..Default::default()
                }),
                period_seconds: Some(1),
                timeout_seconds: Some(1),
                failure_threshold: Some(300),
                ..Default::default()
            });
            injected_init.push(c);
        } else {
            sidecar = Some(c);
        }
    }

    // Read-only mounts (or, with env, the env entries) in the chosen app and init
    // containers (before ours are added).
    let addition = if req.env {
        Addition::Env(env_entries(req))
    } else {
        Addition::Mount(VolumeMount {
            name: VOLUME.to_owned(),
            mount_path: req.mount_path.clone(),
            read_only: Some(true),
            ..Default::default()
        })
    };
    let indices = |list: &[Container]| -> Vec<usize> {
        (list.iter().enumerate())
            .filter(|(_, c)| chosen(c))
            .map(|(i, _)| i)
            .collect()
    };
    let chosen_containers = indices(&spec.containers);
    let chosen_inits = indices(spec.init_containers.as_deref().unwrap_or_default());

    for c in injected_init.iter_mut().chain(sidecar.iter_mut()) {
        identity::give(c, &inherited);
    }
    let mut volumes = vec![Volume {
        name: VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            size_limit: Some(Quantity("1Mi".to_owned())),
        }),
        ..Default::default()
    }];
    if let Some(hub) = config.hub.as_ref().filter(|_| req.mode.has_sidecar()) {
        volumes.push(hub_token_volume(hub));
    }
    Ok(Changes {
        warnings: ids.warnings,
        share_process_namespace: req.mode.has_sidecar() && req.reload_process.is_some(),
        addition,
        chosen_containers,
        chosen_inits,
        commands: Vec::new(),
        serve_env,
        injected_init,
        sidecar,
        volumes,
        annotations: [
            (a::STATUS, a::STATUS_INJECTED.to_owned()),
            (a::FILE_ACCESS, ids.summary),
        ],
    })
}

/// Every app container (`false`) and init container (`true`) of the pod with its index in
/// its list: how the additions that differ per container are addressed.
fn indexed(spec: &PodSpec) -> impl Iterator<Item = (bool, usize, &Container)> {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    (spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (false, i, c)))
    .chain(inits.iter().enumerate().map(|(i, c)| (true, i, c)))
}

/// The JSON pointer segment of the list [`indexed`]'s flag names.
fn group(init: bool) -> &'static str {
    if init { "initContainers" } else { "containers" }
}

/// The token file the sidecar makes for the local endpoint, under the mount path.
pub const SERVE_TOKEN: &str = "serve-token";

/// The variable that tells the app containers where the local endpoint's token is.
pub const SERVE_TOKEN_VARIABLE: &str = "SSM_INJECTOR_SERVE_TOKEN_FILE";

/// Where the init container installs the binary, under the mount path.
pub const EXEC_BIN_DIR: &str = "bin";

/// The file name `install` gives the binary in its directory.
pub const INSTALLED_NAME: &str = "ssm-injector";

/// The mode `install` gives the binary: anyone may run it (the app usually runs as another
/// user than the installer), nobody may change it.
pub const INSTALLED_MODE: u32 = 0o555;

/// Size limit of the binary's volume: the binary (at most 12 MiB) and its temp copy.
const EXEC_VOLUME_LIMIT: &str = "32Mi";

/// [`plan`] with [`a::EXEC`]: the init container installs the binary into the injector's
/// volume (a disk emptyDir: it holds no value), and each chosen container, which mounts it
/// read-only, runs `BINARY exec --watch FLAGS -- ITS COMMAND`.
fn plan_exec(
    spec: &PodSpec,
    req: &Request,
    config: &InjectConfig,
    chosen: &dyn Fn(&Container) -> bool,
) -> Result<Changes, Denial> {
    let picked: Vec<(bool, usize, &Container)> =
        indexed(spec).filter(|(_, _, c)| chosen(c)).collect();
    if let Some((_, _, c)) = picked
        .iter()
        .find(|(_, _, c)| c.command.as_ref().is_none_or(Vec::is_empty))
    {
        return Err(deny(
            Some(a::EXEC),
            format!(
                "{}: container {} has no command; the injector cannot see its image's entrypoint, so set the container's command to what the image runs (e.g. [\"python\", \"app.py\"], from `docker inspect`), or leave the container out with {}",
                a::EXEC,
                c.name,
                a::CONTAINERS
            ),
        ));
    }
    let ports = port::admin_ports(spec, req.admin_port, picked.len())?;
    let region = req.region.as_ref().or(config.region.as_ref());
    let interval = req.interval.unwrap_or(config.default_interval);
    let binary = format!("{}/{EXEC_BIN_DIR}/{}", req.mount_path, INSTALLED_NAME);

    let mut flags = spec_args(req, 10);
    flags.extend([
        "--interval".to_owned(),
        humantime::format_duration(interval).to_string(),
    ]);
    if let Some(r) = region {
        flags.extend(["--region".to_owned(), r.clone()]);
    }
    let mut mounts = vec![VolumeMount {
        name: VOLUME.to_owned(),
        mount_path: req.mount_path.clone(),
        read_only: Some(true),
        ..Default::default()
    }];
    let mut env = Vec::new();
    if let Some(h) = config.hub.as_ref().map(HubWiring::of) {
        flags.extend(h.args);
        env.push(h.ca);
        mounts.push(h.token_mount);
    }
    let commands = picked
        .iter()
        .zip(&ports)
        .map(|((init, i, c), port)| {
            let mut command =
                Vec::with_capacity(flags.len() + 6 + c.command.as_ref().map_or(0, Vec::len));
            command.extend([binary.clone(), "exec".to_owned(), "--watch".to_owned()]);
            command.extend(flags.iter().cloned());
            command.extend([
                "--listen".to_owned(),
                format!("0.0.0.0:{port}"),
                "--".to_owned(),
            ]);
            command.extend(c.command.iter().flatten().cloned());
            (*init, *i, command)
        })
        .collect();

    // The writer of the binary runs as the pod's user (its files are not secret).
    let (pod_ids, _) = access::readers(spec, |_| false);
    let names: Vec<&str> = picked.iter().map(|(_, _, c)| c.name.as_str()).collect();
    let ids = FileAccess {
        run_as_user: pod_ids
            .run_as_user
            .filter(|u| *u > 0)
            .unwrap_or(access::NONROOT_ID),
        run_as_group: pod_ids.run_as_group.unwrap_or(access::NONROOT_ID),
        uid: None,
        gid: None,
        mode: INSTALLED_MODE,
        summary: format!(
            "exec: {binary} mode {:04o}; the values only in the environment of {}",
            INSTALLED_MODE,
            names.join(", ")
        ),
        warnings: Vec::new(),
    };
    let install = container(
        INIT_CONTAINER,
        vec![
            "install".to_owned(),
            format!("{}/{EXEC_BIN_DIR}", req.mount_path),
        ],
        &[VolumeMount {
            name: VOLUME.to_owned(),
            mount_path: req.mount_path.clone(),
            ..Default::default()
        }],
        req,
        config,
        &ids,
    );
    let mut volumes = vec![Volume {
        name: VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: None,
            size_limit: Some(Quantity(EXEC_VOLUME_LIMIT.to_owned())),
        }),
        ..Default::default()
    }];
    if let Some(hub) = &config.hub {
        volumes.push(hub_token_volume(hub));
    }
    let index =
        |init: bool| -> Vec<usize> { picked.iter().filter(|p| p.0 == init).map(|p| p.1).collect() };
    Ok(Changes {
        warnings: Vec::new(),
        share_process_namespace: false,
        addition: Addition::Exec { mounts, env },
        chosen_containers: index(false),
        chosen_inits: index(true),
        commands,
        serve_env: Vec::new(),
        injected_init: vec![install],
        sidecar: None,
        volumes,
        annotations: [
            (a::STATUS, a::STATUS_INJECTED.to_owned()),
            (a::FILE_ACCESS, ids.summary),
        ],
    })
}

/// What a container that follows the hub gets: its flags, the hub's CA (public) in
/// `SSM_INJECTOR_HUB_CA_PEM`, and the token's read-only mount.
struct HubWiring {
    args: [String; 4],
    ca: EnvVar,
    token_mount: VolumeMount,
}

impl HubWiring {
    fn of(hub: &super::HubInjection) -> HubWiring {
        HubWiring {
            args: [
                "--hub".to_owned(),
                hub.url.clone(),
                "--hub-token-file".to_owned(),
                format!("{HUB_TOKEN_DIR}/token"),
            ],
            ca: EnvVar {
                name: "SSM_INJECTOR_HUB_CA_PEM".to_owned(),
                value: Some(hub.ca_pem.clone()),
                value_from: None,
            },
            token_mount: VolumeMount {
                name: HUB_TOKEN_VOLUME.to_owned(),
                mount_path: HUB_TOKEN_DIR.to_owned(),
                read_only: Some(true),
                ..Default::default()
            },
        }
    }
}

/// The projected volume of a short-lived token for the hub only (its own audience),
/// rotated by the kubelet.
fn hub_token_volume(hub: &super::HubInjection) -> Volume {
    Volume {
        name: HUB_TOKEN_VOLUME.to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(hub.audience.clone()),
                    expiration_seconds: Some(3600),
                    path: "token".to_owned(),
                }),
                ..Default::default()
            }]),
            default_mode: Some(0o444),
        }),
        ..Default::default()
    }
}

impl Changes {
    /// The JSONPatch that makes `pod` (the pod [`plan`] saw) the injected pod, built from the
    /// changes: appends with `-`, a missing (or empty) array or map added whole, the injected
    /// init containers inserted at the front after the pod's own were given their mounts (so
    /// their indices hold), annotation keys escaped as JSON pointer tokens.
    pub fn into_patch(self, pod: &Pod) -> Patch {
        let mut patch = Patch::default();
        let no_spec = PodSpec::default();
        let spec = match &pod.spec {
            Some(spec) => spec,
            None => {
                patch.add("/spec", Item::Spec(Box::default()));
                &no_spec
            }
        };
        if self.share_process_namespace {
            patch.add("/spec/shareProcessNamespace", Item::Bool(true));
        }
        let groups = [
            (
                "containers",
                spec.containers.as_slice(),
                &self.chosen_containers,
            ),
            (
                "initContainers",
                spec.init_containers.as_deref().unwrap_or_default(),
                &self.chosen_inits,
            ),
        ];
        for (group, list, chosen) in groups {
            for &i in chosen {
                let Some(c) = list.get(i) else { continue };
                match &self.addition {
                    Addition::Env(entries) => append(
                        &mut patch,
                        format!("/spec/{group}/{i}/env"),
                        c.env.as_ref(),
                        entries.iter().cloned(),
                        Item::Env,
                        |e| Item::EnvVar(Box::new(e)),
                    ),
                    Addition::Mount(m) => append(
                        &mut patch,
                        format!("/spec/{group}/{i}/volumeMounts"),
                        c.volume_mounts.as_ref(),
                        [m.clone()],
                        Item::Mounts,
                        Item::Mount,
                    ),
                    Addition::Exec { mounts, env } => {
                        append(
                            &mut patch,
                            format!("/spec/{group}/{i}/volumeMounts"),
                            c.volume_mounts.as_ref(),
                            mounts.iter().cloned(),
                            Item::Mounts,
                            Item::Mount,
                        );
                        if !env.is_empty() {
                            append(
                                &mut patch,
                                format!("/spec/{group}/{i}/env"),
                                c.env.as_ref(),
                                env.iter().cloned(),
                                Item::Env,
                                |e| Item::EnvVar(Box::new(e)),
                            );
                        }
                    }
                }
            }
        }
        // Before the injected init containers shift the indices of the pod's own.
        for (init, i, command) in self.commands {
            let group = group(init);
            patch.replace(format!("/spec/{group}/{i}/command"), Item::Strings(command));
        }
        for (init, i, env) in self.serve_env {
            let group = group(init);
            let Some((_, _, c)) = indexed(spec).find(|&(g, j, _)| g == init && j == i) else {
                continue;
            };
            if !env.is_empty() {
                append(
                    &mut patch,
                    format!("/spec/{group}/{i}/env"),
                    c.env.as_ref(),
                    env,
                    Item::Env,
                    |e| Item::EnvVar(Box::new(e)),
                );
            }
        }
        let own_inits = spec.init_containers.as_deref().unwrap_or_default();
        if !own_inits.is_empty() {
            for (j, c) in self.injected_init.into_iter().enumerate() {
                patch.add(
                    format!("/spec/initContainers/{j}"),
                    Item::Container(Box::new(c)),
                );
            }
        } else if !self.injected_init.is_empty() {
            patch.add("/spec/initContainers", Item::Containers(self.injected_init));
        } else if spec.init_containers.is_some() {
            // An empty list the pod had: the injected pod has none (as it is written).
            patch.remove("/spec/initContainers");
        }
        if let Some(c) = self.sidecar {
            patch.add("/spec/containers/-", Item::Container(Box::new(c)));
        }
        append(
            &mut patch,
            "/spec/volumes".to_owned(),
            spec.volumes.as_ref(),
            self.volumes,
            Item::Volumes,
            |v| Item::Volume(Box::new(v)),
        );
        match pod.metadata.annotations.as_ref().filter(|m| !m.is_empty()) {
            None => patch.add(
                "/metadata/annotations",
                Item::Annotations(
                    (self.annotations.into_iter())
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                ),
            ),
            Some(have) => {
                for (key, value) in self.annotations {
                    let path = format!("/metadata/annotations/{}", pointer_token(key));
                    match have.get(key) {
                        Some(old) if *old == value => {}
                        Some(_) => patch.replace(path, Item::Text(value)),
                        None => patch.add(path, Item::Text(value)),
                    }
                }
            }
        }
        patch
    }

    /// The injected pod as a typed value: what [`Changes::into_patch`] must produce when
    /// applied to `pod` (the property tests' oracle, diffed by `json_patch::diff`).
    #[cfg(test)]
    pub fn apply_to(self, pod: &mut Pod) {
        let spec = pod.spec.get_or_insert_with(PodSpec::default);
        if self.share_process_namespace {
            spec.share_process_namespace = Some(true);
        }
        for (list, chosen) in [
            (&mut spec.containers, &self.chosen_containers),
            (
                spec.init_containers.get_or_insert_with(Vec::new),
                &self.chosen_inits,
            ),
        ] {
            for &i in chosen {
                let Some(c) = list.get_mut(i) else { continue };
                match &self.addition {
                    Addition::Env(entries) => c
                        .env
                        .get_or_insert_with(Vec::new)
                        .extend(entries.iter().cloned()),
                    Addition::Mount(m) => {
                        c.volume_mounts.get_or_insert_with(Vec::new).push(m.clone())
                    }
                    Addition::Exec { mounts, env } => {
                        c.volume_mounts
                            .get_or_insert_with(Vec::new)
                            .extend(mounts.iter().cloned());
                        if !env.is_empty() {
                            c.env
                                .get_or_insert_with(Vec::new)
                                .extend(env.iter().cloned());
                        }
                    }
                }
            }
        }
        for (init, i, command) in self.commands {
            let list = if init {
                spec.init_containers.get_or_insert_with(Vec::new)
            } else {
                &mut spec.containers
            };
            if let Some(c) = list.get_mut(i) {
                c.command = Some(command);
            }
        }
        for (init, i, env) in self.serve_env {
            let list = if init {
                spec.init_containers.get_or_insert_with(Vec::new)
            } else {
                &mut spec.containers
            };
            if let Some(c) = list.get_mut(i).filter(|_| !env.is_empty()) {
                c.env.get_or_insert_with(Vec::new).extend(env);
            }
        }
        let inits = spec.init_containers.get_or_insert_with(Vec::new);
        inits.splice(0..0, self.injected_init);
        if inits.is_empty() {
            spec.init_containers = None;
        }
        spec.containers.extend(self.sidecar);
        spec.volumes
            .get_or_insert_with(Vec::new)
            .extend(self.volumes);
        let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (key, value) in self.annotations {
            annotations.insert(key.to_owned(), value);
        }
    }
}

/// Adds `items` to the array at `path`: one `add` of the whole array when the pod has none
/// (or an empty one: the API server leaves empty lists out of the object it patches, and
/// `add` of a member replaces it), else one `add` at `path/-` per item.
fn append<T>(
    patch: &mut Patch,
    path: String,
    have: Option<&Vec<impl Sized>>,
    items: impl IntoIterator<Item = T>,
    whole: impl FnOnce(Vec<T>) -> Item,
    one: impl Fn(T) -> Item,
) {
    if have.is_none_or(|v| v.is_empty()) {
        patch.add(path, whole(items.into_iter().collect()));
    } else {
        for item in items {
            patch.add(format!("{path}/-"), one(item));
        }
    }
}

/// With [`a::ENV`], one `env` entry per `param-<KEY>`: the kubelet reads KEY from the
/// file the init container writes into the injector's volume (`fileKeyRef`, not
/// optional: a missing file or key keeps the container from starting).
fn env_entries(req: &Request) -> Vec<EnvVar> {
    req.params
        .iter()
        .map(|p| EnvVar {
            name: p.key.clone(),
            value: None,
            value_from: Some(EnvVarSource {
                file_key_ref: Some(FileKeySelector {
                    volume_name: VOLUME.to_owned(),
                    path: req.file.clone(),
                    key: p.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        })
        .collect()
}

/// `--path` and `--param` for the request's paths and parameters, with room for `more`.
fn spec_args(req: &Request, more: usize) -> Vec<String> {
    let mut args = Vec::with_capacity(2 * (req.paths.len() + req.params.len()) + more);
    for p in &req.paths {
        args.extend(["--path".to_owned(), p.clone()]);
    }
    for p in &req.params {
        args.extend(["--param".to_owned(), format!("{}={}", p.key, p.raw)]);
    }
    args
}

/// The flags shared by the init container and the sidecar (after `render [--watch]`).
fn render_args(req: &Request, ids: &FileAccess, region: Option<&String>) -> Vec<String> {
    let mut args = spec_args(req, 14);
    args.extend([
        "--format".to_owned(),
        req.format.as_str().to_owned(),
        "--output".to_owned(),
        format!("{}/{}", req.mount_path, req.file),
    ]);
    if let (Format::Template, Some(t)) = (req.format, &req.template) {
        args.extend(["--template".to_owned(), t.clone()]);
    }
    args.extend(["--file-mode".to_owned(), format!("{:04o}", ids.mode)]);
    if let Some(u) = ids.uid {
        args.extend(["--uid".to_owned(), u.to_string()]);
    }
    if let Some(g) = ids.gid {
        args.extend(["--gid".to_owned(), g.to_string()]);
    }
    if let Some(r) = region {
        args.extend(["--region".to_owned(), r.clone()]);
    }
    args
}

fn container(
    name: &str,
    args: Vec<String>,
    mounts: &[VolumeMount],
    req: &Request,
    config: &InjectConfig,
    ids: &FileAccess,
) -> Container {
    let defaults = &config.resources;
    let (cpu_request, cpu_limit) = resource_pair(
        &req.cpu_request,
        &req.cpu_limit,
        &defaults.cpu_request,
        &defaults.cpu_limit,
    );
    let (memory_request, memory_limit) = resource_pair(
        &req.memory_request,
        &req.memory_limit,
        &defaults.memory_request,
        &defaults.memory_limit,
    );
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for (is_limit, key, v) in [
        (false, "cpu", cpu_request),
        (false, "memory", memory_request),
        (true, "cpu", cpu_limit),
        (true, "memory", memory_limit),
    ] {
        if let Some(v) = v {
            let map = if is_limit { &mut limits } else { &mut requests };
            map.insert(key.to_owned(), Quantity(v));
        }
    }
    Container {
        name: name.to_owned(),
        image: Some(config.image.clone()),
        args: Some(args),
        volume_mounts: Some(mounts.to_vec()),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(ids.run_as_user),
            run_as_group: Some(ids.run_as_group),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A request and a limit from the pod's annotations, else the config's defaults. When one
/// side is a default that conflicts with the other (request above limit, which the API
/// server rejects), the default gives way: a default limit is raised to the request, a
/// default request lowered to the limit. Both given by the pod were checked in `validate`.
fn resource_pair(
    request: &Option<String>,
    limit: &Option<String>,
    default_request: &Option<String>,
    default_limit: &Option<String>,
) -> (Option<String>, Option<String>) {
    let above =
        |r: &str, l: &str| super::validate::parse_quantity(r) > super::validate::parse_quantity(l);
    match (request, limit) {
        (Some(r), None) => match default_limit {
            Some(l) if above(r, l) => (Some(r.clone()), Some(r.clone())),
            l => (Some(r.clone()), l.clone()),
        },
        (None, Some(l)) => match default_request {
            Some(r) if above(r, l) => (Some(l.clone()), Some(l.clone())),
            r => (r.clone(), Some(l.clone())),
        },
        (r, l) => (
            r.clone().or_else(|| default_request.clone()),
            l.clone().or_else(|| default_limit.clone()),
        ),
    }
}

/// The deepest mount (in any container) holding `template`, made read-only.
fn find_template_mount(spec: &PodSpec, template: &str) -> Result<VolumeMount, Denial> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .filter(|m| m.name != VOLUME && is_under(template, &m.mount_path) && template != m.mount_path.trim_end_matches('/'))
        .max_by_key(|m| m.mount_path.len())
        .map(|m| VolumeMount {
            read_only: Some(true),
            ..m.clone()
        })
        .ok_or_else(|| {
            deny(
                Some(a::TEMPLATE),
                format!(
                    "{}: {template} is not inside any volume mounted in the pod; mount the ConfigMap holding the template in a container (e.g. at {}) and point {} at the file",
                    a::TEMPLATE,
                    template.rsplit_once('/').map(|(d, _)| d).filter(|d| !d.is_empty()).unwrap_or("/config"),
                    a::TEMPLATE
                ),
            )
        })
}
