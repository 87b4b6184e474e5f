//! The sidecar's admin port (`/healthz`, `/readyz`, `/metrics`): one no container of the
//! pod declares, so the sidecar never fights the app for it. Pure.

use super::Denial;
use super::annotations as a;
use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The admin port when the pod declares none of its own there.
pub const DEFAULT_ADMIN_PORT: u16 = 8099;
/// Lowest port `ssm-injector.io/admin-port` accepts (the injected containers run non-root
/// without capabilities, so they cannot bind below 1024).
pub const MIN_ADMIN_PORT: u16 = 1024;
/// Name of the sidecar's declared port; `ssm-admin-2`, `-3`, ... when the pod has it.
pub const PORT_NAME: &str = "ssm-admin";

/// Every port a container of the pod uses, with the container: `ports[].containerPort` and
/// the numeric ports of its probes and lifecycle hooks (httpGet, tcpSocket, grpc). Named
/// probe ports refer to declared ports, which are listed already.
pub fn used_ports(spec: &PodSpec) -> Vec<(i32, &str)> {
    let mut used = Vec::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let name = c.name.as_str();
        for p in c.ports.iter().flatten() {
            used.push((p.container_port, name));
        }
        for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
            .into_iter()
            .flatten()
        {
            used.extend(probe_ports(probe).map(|p| (p, name)));
        }
        for handler in c
            .lifecycle
            .iter()
            .flat_map(|l| [&l.post_start, &l.pre_stop])
            .flatten()
        {
            let http = handler.http_get.as_ref().map(|h| &h.port);
            let tcp = handler.tcp_socket.as_ref().map(|t| &t.port);
            used.extend(
                [http, tcp]
                    .into_iter()
                    .flatten()
                    .filter_map(int_port)
                    .map(|p| (p, name)),
            );
        }
    }
    used
}

/// Each port a container uses, with the first container using it.
fn first_users(spec: &PodSpec) -> std::collections::BTreeMap<i32, &str> {
    let mut used = std::collections::BTreeMap::new();
    for (port, container) in used_ports(spec) {
        used.entry(port).or_insert(container);
    }
    used
}

fn int_port(p: &IntOrString) -> Option<i32> {
    match p {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(_) => None,
    }
}

fn probe_ports(probe: &Probe) -> impl Iterator<Item = i32> + '_ {
    let http = probe.http_get.as_ref().and_then(|h| int_port(&h.port));
    let tcp = probe.tcp_socket.as_ref().and_then(|t| int_port(&t.port));
    let grpc = probe.grpc.as_ref().map(|g| g.port);
    [http, tcp, grpc].into_iter().flatten()
}

/// The admin port: `requested` (the annotation, already in range) unless a container uses
/// it, which is a denial naming the container; else [`DEFAULT_ADMIN_PORT`] or the next
/// port up that no container uses.
pub fn admin_port(spec: &PodSpec, requested: Option<u16>) -> Result<u16, Denial> {
    let used = first_users(spec);
    let user = |port: u16| used.get(&i32::from(port)).copied();
    if let Some(port) = requested {
        return match user(port) {
            None => Ok(port),
            Some(container) => Err(Denial {
                annotation: Some(a::ADMIN_PORT.to_owned()),
                message: format!(
                    "{}: port {port} is used by container {container}; choose a port no container declares or probes, or remove the annotation to get a free one",
                    a::ADMIN_PORT
                ),
            }),
        };
    }
    (DEFAULT_ADMIN_PORT..=u16::MAX)
        .chain(MIN_ADMIN_PORT..DEFAULT_ADMIN_PORT)
        .find(|p| user(*p).is_none())
        .ok_or_else(|| Denial {
            annotation: Some(a::ADMIN_PORT.to_owned()),
            message: format!(
                "every port from {MIN_ADMIN_PORT} to 65535 is used by a container of the pod; free one and set {}",
                a::ADMIN_PORT
            ),
        })
}

/// `n` admin ports, one per `exec --watch` container of the pod (they share its network):
/// the first as [`admin_port`], each next one the next port up that no container uses.
pub fn admin_ports(spec: &PodSpec, requested: Option<u16>, n: usize) -> Result<Vec<u16>, Denial> {
    let first = admin_port(spec, requested)?;
    let used = first_users(spec);
    let mut ports = vec![first];
    let mut next = first;
    while ports.len() < n {
        next = match next.checked_add(1) {
            Some(p) => p,
            None => MIN_ADMIN_PORT,
        };
        if next == first {
            return Err(Denial {
                annotation: Some(a::ADMIN_PORT.to_owned()),
                message: format!(
                    "not enough free ports from {MIN_ADMIN_PORT} to 65535 for {n} containers; free some or choose fewer with {}",
                    a::CONTAINERS
                ),
            });
        }
        if !used.contains_key(&i32::from(next)) {
            ports.push(next);
        }
    }
    Ok(ports)
}

/// The variable the Lambda extension (and code written for it) reads its port from.
pub const SERVE_PORT_VARIABLE: &str = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";

/// The extension's port.
pub const DEFAULT_SERVE_PORT: u16 = 2773;

/// The local endpoint's port: the one the `chosen` containers set in
/// [`SERVE_PORT_VARIABLE`] (one value for all), or [`DEFAULT_SERVE_PORT`] or the next port
/// up that no container uses and that is not `admin`'s.
pub fn serve_port(
    spec: &PodSpec,
    chosen: &dyn Fn(&Container) -> bool,
    admin: u16,
) -> Result<u16, Denial> {
    let deny = |message: String| Denial {
        annotation: Some(a::SERVE.to_owned()),
        message,
    };
    let used = first_users(spec);
    // Each value set, with the first container that sets it.
    let mut by_value = std::collections::BTreeMap::new();
    for (container, value) in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| chosen(c))
        .flat_map(|c| {
            c.env
                .iter()
                .flatten()
                .filter(|e| e.name == SERVE_PORT_VARIABLE)
                .map(move |e| (c.name.as_str(), e.value.as_deref().unwrap_or_default()))
        })
    {
        by_value.entry(value).or_insert(container);
    }
    let set: Vec<(&str, &str)> = by_value.into_iter().map(|(v, c)| (c, v)).collect();
    match set.as_slice() {
        [] => (DEFAULT_SERVE_PORT..=u16::MAX)
            .chain(MIN_ADMIN_PORT..DEFAULT_SERVE_PORT)
            .find(|p| *p != admin && !used.contains_key(&i32::from(*p)))
            .ok_or_else(|| {
                deny(format!(
                    "no free port from {MIN_ADMIN_PORT} to 65535 for the local endpoint"
                ))
            }),
        [(container, value)] => {
            let port = value
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p >= MIN_ADMIN_PORT)
                .ok_or_else(|| {
                    deny(format!(
                        "{}: container {container} sets {SERVE_PORT_VARIABLE}={value:?}, not a port from {MIN_ADMIN_PORT} to 65535",
                        a::SERVE
                    ))
                })?;
            match used.get(&i32::from(port)) {
                Some(user) => Err(deny(format!(
                    "{}: port {port} ({SERVE_PORT_VARIABLE} of container {container}) is used by container {user}; choose another",
                    a::SERVE
                ))),
                None if port == admin => Err(deny(format!(
                    "{}: port {port} ({SERVE_PORT_VARIABLE} of container {container}) is the sidecar's admin port; set {} to another",
                    a::SERVE,
                    a::ADMIN_PORT
                ))),
                None => Ok(port),
            }
        }
        [(c1, v1), (c2, v2), ..] => Err(deny(format!(
            "{}: containers {c1} and {c2} set {SERVE_PORT_VARIABLE} to {v1:?} and {v2:?}; the sidecar serves one port",
            a::SERVE
        ))),
    }
}

/// [`PORT_NAME`], or `ssm-admin-N` with the smallest N ≥ 2 that no container port is named.
pub fn port_name(spec: &PodSpec) -> String {
    let taken: Vec<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c: &Container| c.ports.iter().flatten())
        .filter_map(|p| p.name.as_deref())
        .collect();
    std::iter::once(PORT_NAME.to_owned())
        .chain((2..).map(|n| format!("{PORT_NAME}-{n}")))
        .find(|n| !taken.contains(&n.as_str()))
        .unwrap_or_else(|| PORT_NAME.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, GRPCAction, HTTPGetAction, Lifecycle, LifecycleHandler, TCPSocketAction,
    };

    fn with_ports(name: &str, ports: &[(i32, Option<&str>)]) -> Container {
        Container {
            name: name.to_owned(),
            ports: Some(
                ports
                    .iter()
                    .map(|(p, n)| ContainerPort {
                        container_port: *p,
                        name: n.map(str::to_owned),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn http_probe(port: IntOrString) -> Option<Probe> {
        Some(Probe {
            http_get: Some(HTTPGetAction {
                port,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn spec(containers: Vec<Container>, inits: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            init_containers: Some(inits),
            ..Default::default()
        }
    }

    #[test]
    fn every_declared_and_probed_port_counts() {
        let mut app = with_ports("app", &[(8080, Some("http"))]);
        app.liveness_probe = http_probe(IntOrString::Int(8099));
        app.readiness_probe = http_probe(IntOrString::String("http".into()));
        app.startup_probe = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(8100),
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut native = with_ports("proxy", &[(15000, None)]);
        native.restart_policy = Some("Always".into());
        native.liveness_probe = Some(Probe {
            grpc: Some(GRPCAction {
                port: 8101,
                service: None,
            }),
            ..Default::default()
        });
        native.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                http_get: Some(HTTPGetAction {
                    port: IntOrString::Int(8102),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let s = spec(vec![app], vec![native]);
        let mut used = used_ports(&s);
        used.sort();
        assert_eq!(
            used,
            [
                (8080, "app"),
                (8099, "app"),
                (8100, "app"),
                (8101, "proxy"),
                (8102, "proxy"),
                (15000, "proxy")
            ]
        );
        assert_eq!(admin_port(&s, None), Ok(8103));
    }

    #[test]
    fn the_admin_port_avoids_every_used_port() {
        // (what, containers, init containers, annotation, Ok(port) or Err(container named))
        type Case = (
            &'static str,
            Vec<Container>,
            Vec<Container>,
            Option<u16>,
            Result<u16, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing declared: 8099",
                vec![with_ports("app", &[])],
                vec![],
                None,
                Ok(8099),
            ),
            (
                "the app has 8099: the next one up",
                vec![with_ports("app", &[(8099, None)])],
                vec![],
                None,
                Ok(8100),
            ),
            (
                "a run of used ports, across containers and init containers",
                vec![with_ports("app", &[(8099, None), (8101, None)])],
                vec![with_ports("migrate", &[(8100, None)])],
                None,
                Ok(8102),
            ),
            (
                "the annotation, free",
                vec![with_ports("app", &[(8099, None)])],
                vec![],
                Some(9100),
                Ok(9100),
            ),
            (
                "the annotation, taken by an init container",
                vec![with_ports("app", &[])],
                vec![with_ports("proxy", &[(9100, None)])],
                Some(9100),
                Err("proxy"),
            ),
            (
                "the annotation may be 8099 when nothing uses it",
                vec![with_ports("app", &[])],
                vec![],
                Some(8099),
                Ok(8099),
            ),
        ];
        for (what, containers, inits, requested, want) in cases {
            let got = admin_port(&spec(containers, inits), requested);
            match (got, want) {
                (Ok(p), Ok(w)) => assert_eq!(p, w, "{what}"),
                (Err(d), Err(container)) => {
                    assert_eq!(d.annotation.as_deref(), Some(a::ADMIN_PORT), "{what}");
                    assert!(
                        d.message.contains(a::ADMIN_PORT)
                            && d.message.contains(&format!("container {container}")),
                        "{what}: {}",
                        d.message
                    );
                }
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_search_wraps_below_8099_when_everything_above_is_used() {
        let all: Vec<(i32, Option<&str>)> = (8099..=65535).map(|p| (p, None)).collect();
        let s = spec(vec![with_ports("app", &all)], vec![]);
        assert_eq!(admin_port(&s, None), Ok(MIN_ADMIN_PORT));
    }

    #[test]
    fn the_port_name_avoids_names_the_pod_uses() {
        let s = spec(vec![with_ports("app", &[(80, Some("http"))])], vec![]);
        assert_eq!(port_name(&s), "ssm-admin");
        let s = spec(
            vec![with_ports("app", &[(80, Some("ssm-admin"))])],
            vec![with_ports("proxy", &[(81, Some("ssm-admin-2"))])],
        );
        assert_eq!(port_name(&s), "ssm-admin-3");
    }
}
