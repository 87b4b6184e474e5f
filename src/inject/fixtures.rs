//! Chained pod builders for the injector's tests.

use super::annotations as a;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PodSecurityContext, PodSpec,
    Probe, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct PodBuilder {
    pod: Pod,
}

/// A pod with one container `app`, opted in, fetching `/app/prod/`.
pub fn pod() -> PodBuilder {
    bare().container("app").inject().ann(a::PATH, "/app/prod/")
}

/// A pod with no containers and no annotations.
pub fn bare() -> PodBuilder {
    PodBuilder {
        pod: Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".to_owned()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: None,
        },
    }
}

fn restricted_sc() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.pod.spec.get_or_insert_with(PodSpec::default)
    }

    pub fn ann(mut self, k: &str, v: &str) -> Self {
        self.pod
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn without_ann(mut self, k: &str) -> Self {
        if let Some(m) = self.pod.metadata.annotations.as_mut() {
            m.remove(k);
        }
        self
    }

    pub fn inject(self) -> Self {
        self.ann(a::INJECT, "true")
    }

    pub fn container(mut self, name: &str) -> Self {
        self.spec().containers.push(Container {
            name: name.to_owned(),
            image: Some("app:1".to_owned()),
            ..Default::default()
        });
        self
    }

    pub fn init_container(mut self, name: &str) -> Self {
        self.spec()
            .init_containers
            .get_or_insert_with(Vec::new)
            .push(Container {
                name: name.to_owned(),
                image: Some("init:1".to_owned()),
                ..Default::default()
            });
        self
    }

    /// Gives every container so far a restricted-compliant security context.
    pub fn restricted(mut self) -> Self {
        let spec = self.spec();
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.security_context = Some(restricted_sc());
        }
        self
    }

    pub fn run_as(mut self, uid: Option<i64>, gid: Option<i64>, fs_group: Option<i64>) -> Self {
        let sc = self
            .spec()
            .security_context
            .get_or_insert_with(PodSecurityContext::default);
        sc.run_as_user = uid;
        sc.run_as_group = gid;
        sc.fs_group = fs_group;
        self
    }

    /// runAsUser / runAsGroup of the container or init container `name` (its own
    /// securityContext, over the pod's).
    pub fn container_run_as(mut self, name: &str, uid: Option<i64>, gid: Option<i64>) -> Self {
        if let Some(c) = self.find(name) {
            let sc = c
                .security_context
                .get_or_insert_with(SecurityContext::default);
            sc.run_as_user = uid;
            sc.run_as_group = gid;
        }
        self
    }

    /// The pod's supplementalGroups.
    pub fn supplemental_groups(mut self, groups: &[i64]) -> Self {
        self.spec()
            .security_context
            .get_or_insert_with(PodSecurityContext::default)
            .supplemental_groups = Some(groups.to_vec());
        self
    }

    /// Declares `port` (named `name`, if given) on the container or init container
    /// `container`.
    pub fn port(mut self, container: &str, port: i32, name: Option<&str>) -> Self {
        if let Some(c) = self.find(container) {
            c.ports.get_or_insert_with(Vec::new).push(ContainerPort {
                container_port: port,
                name: name.map(str::to_owned),
                ..Default::default()
            });
        }
        self
    }

    /// An httpGet liveness probe on `port` in `container`.
    pub fn liveness_port(mut self, container: &str, port: i32) -> Self {
        if let Some(c) = self.find(container) {
            c.liveness_probe = Some(Probe {
                http_get: Some(HTTPGetAction {
                    port: IntOrString::Int(port),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        self
    }

    fn find(&mut self, name: &str) -> Option<&mut Container> {
        let spec = self.spec();
        spec.containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
            .find(|c| c.name == name)
    }

    /// An `env` entry `name=value` in the container or init container `container`.
    pub fn env_var(mut self, container: &str, name: &str, value: &str) -> Self {
        if let Some(c) = self.find(container) {
            c.env.get_or_insert_with(Vec::new).push(EnvVar {
                name: name.to_owned(),
                value: Some(value.to_owned()),
                value_from: None,
            });
        }
        self
    }

    /// The `command` (and `args`) of the container or init container `container`.
    pub fn command(mut self, container: &str, command: &[&str], args: &[&str]) -> Self {
        if let Some(c) = self.find(container) {
            c.command = Some(command.iter().map(|s| (*s).to_owned()).collect());
            c.args = (!args.is_empty()).then(|| args.iter().map(|s| (*s).to_owned()).collect());
        }
        self
    }

    /// A ConfigMap volume `name` mounted in container `container` at `path`.
    pub fn config_map_mount(mut self, container: &str, name: &str, path: &str) -> Self {
        let spec = self.spec();
        spec.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: name.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        });
        if let Some(c) = spec.containers.iter_mut().find(|c| c.name == container) {
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name: name.to_owned(),
                    mount_path: path.to_owned(),
                    ..Default::default()
                });
        }
        self
    }

    pub fn build(self) -> Pod {
        self.pod
    }
}
