//! The injector's configuration file (YAML) and `--image` → [`InjectConfig`], in one pure
//! step ([`build`]); the webhook reads the files (`crate::webhook::config::load`), the hub
//! reads the namespace policy from the same file.
//!
//! ```yaml
//! image: ghcr.io/ssm-injector/ssm-injector:0.1.0
//! native-sidecar: true            # cluster is Kubernetes 1.29+
//! excluded-namespaces: [kube-system, kube-public, kube-node-lease]
//! namespace-prefixes:             # policy: namespace -> allowed parameter path prefixes
//!   team-a: [/team-a/]
//! default-interval: 10m           # sidecar poll interval when the pod gives none
//! default-paths: ["/apps/{namespace}/"]  # pods that opt in naming no path or param (quoted: YAML)
//! hub-url: https://ssm-injector-hub.ssm-injector.svc:8443  # sidecars follow the hub
//! hub-ca-file: /hub-ca/ca.crt     # the CA of the hub's certificate (with hub-url)
//! hub-audience: ssm-injector-hub  # the sidecars' hub token audience = the hub's --audience
//! default-resources:              # of the injected containers, when the pod gives none
//!   cpu-request: 5m
//!   memory-request: 16Mi
//!   memory-limit: 32Mi            # cpu-limit: unset unless given; "" unsets a default
//! region: eu-west-1               # --region of the injected containers; "" or absent: the
//!                                 # AWS SDK's chain in them (AWS_REGION, ...)
//! ```
//! Every key is optional (defaults: [`InjectConfig::default`]); unknown keys are errors.

use super::validate::{is_region, parse_quantity};
use super::{
    AgentResources, DEFAULT_HUB_AUDIENCE, HubInjection, InjectConfig, NAMESPACE_PLACEHOLDER,
};
use crate::spec::names::check_path;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A config file or flag that cannot be used. Messages name the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("webhook config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("webhook config {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("webhook config {path}: default-interval {value:?}: {reason} (for example 60s or 5m)")]
    BadInterval {
        path: String,
        value: String,
        reason: String,
    },
    #[error(
        "webhook config {path}: hub-url needs hub-ca-file, the CA that signed the hub's certificate (the sidecars check it), unless the webhook runs with --tls-secret: its CA bundle then goes to the sidecars"
    )]
    HubHalf { path: String },
    #[error("webhook config {path}: hub-ca-file is set without hub-url; set both, or neither")]
    HubCaWithoutUrl { path: String },
    #[error(
        "webhook config {path}: hub-url {value:?} is not an https:// URL like https://ssm-injector-hub.ssm-injector.svc:8443"
    )]
    HubUrl { path: String, value: String },
    #[error(
        "webhook config {path}: hub-audience {value:?} {reason}; it is the audience of the token each sidecar presents to the hub and must equal the hub's --audience (default ssm-injector-hub)"
    )]
    HubAudience {
        path: String,
        value: String,
        reason: String,
    },
    #[error("webhook config {path}: hub-ca-file {file}: {reason}")]
    HubCa {
        path: String,
        file: String,
        reason: String,
    },
    #[error("{at}: the image must not be empty")]
    EmptyImage { at: String },
    #[error(
        "webhook config {path}: default-paths: {value:?} {reason}; give absolute paths like /apps/{{namespace}}/"
    )]
    BadDefaultPath {
        path: String,
        value: String,
        reason: String,
    },
    #[error(
        "webhook config {path}: default-resources.{key}: {value:?} is not a Kubernetes quantity; write e.g. 5m or 0.1 for CPU, 32Mi for memory"
    )]
    BadQuantity {
        path: String,
        key: &'static str,
        value: String,
    },
    #[error(
        "webhook config {path}: region {value:?} is not an AWS region; write e.g. eu-west-1, or leave it out to use the AWS SDK's chain (AWS_REGION) in the injected containers"
    )]
    BadRegion { path: String, value: String },
    #[error(
        "webhook config {path}: default-resources: {request_key} {request} is above {limit_key} {limit}; raise the limit or lower the request"
    )]
    RequestAboveLimit {
        path: String,
        request_key: &'static str,
        request: String,
        limit_key: &'static str,
        limit: String,
    },
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawConfig {
    image: Option<String>,
    native_sidecar: Option<bool>,
    excluded_namespaces: Option<Vec<String>>,
    namespace_prefixes: Option<BTreeMap<String, Vec<String>>>,
    default_interval: Option<String>,
    hub_url: Option<String>,
    hub_ca_file: Option<String>,
    hub_audience: Option<String>,
    default_paths: Option<Vec<String>>,
    default_resources: Option<RawResources>,
    region: Option<String>,
}

/// `default-resources:` as written; a key left out keeps the built-in default.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawResources {
    cpu_request: Option<String>,
    memory_request: Option<String>,
    cpu_limit: Option<String>,
    memory_limit: Option<String>,
}

/// Builds the config from the file's `(name, text)` and `--image`. Pure.
pub fn build(
    file: Option<(&str, &str)>,
    image: Option<String>,
) -> Result<InjectConfig, ConfigError> {
    let mut config = InjectConfig::default();
    let path = file.map_or("", |(p, _)| p).to_owned();
    let raw = match file {
        None => RawConfig::default(),
        // An empty file is an empty config.
        Some((_, text)) if text.trim().is_empty() => RawConfig::default(),
        Some((_, text)) => {
            serde_yaml_ng::from_str::<RawConfig>(text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                reason: e.to_string(),
            })?
        }
    };
    let RawConfig {
        image: file_image,
        native_sidecar,
        excluded_namespaces,
        namespace_prefixes,
        default_interval,
        hub_url,
        hub_ca_file,
        hub_audience,
        default_paths,
        default_resources,
        region,
    } = raw;
    if let Some(i) = file_image {
        if i.trim().is_empty() {
            return Err(ConfigError::EmptyImage {
                at: format!("webhook config {path}: image"),
            });
        }
        config.image = i.trim().to_owned();
    }
    if let Some(i) = image {
        if i.trim().is_empty() {
            return Err(ConfigError::EmptyImage {
                at: "--image".to_owned(),
            });
        }
        config.image = i.trim().to_owned();
    }
    if let Some(n) = native_sidecar {
        config.native_sidecar = n;
    }
    if let Some(n) = excluded_namespaces {
        config.excluded_namespaces = n;
    }
    if let Some(p) = namespace_prefixes {
        config.namespace_prefixes = p;
    }
    if let Some(v) = default_interval {
        config.default_interval =
            humantime::parse_duration(v.trim()).map_err(|e| ConfigError::BadInterval {
                path: path.clone(),
                value: v.clone(),
                reason: e.to_string(),
            })?;
    }
    let audience = hub_audience
        .map(|a| check_hub_audience(&path, a))
        .transpose()?;
    config.hub = match (hub_url, hub_ca_file) {
        (None, None) => match audience {
            None => None,
            Some(value) => {
                return Err(ConfigError::HubAudience {
                    path,
                    value,
                    reason: "is set without hub-url".to_owned(),
                });
            }
        },
        (Some(url), ca_file) => {
            let url = url.trim().trim_end_matches('/').to_owned();
            let host = url.strip_prefix("https://").unwrap_or_default();
            if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
                return Err(ConfigError::HubUrl { path, value: url });
            }
            Some(HubInjection {
                url,
                ca_file: ca_file.map(|f| f.trim().to_owned()),
                ca_pem: String::new(),
                audience: audience.unwrap_or_else(|| DEFAULT_HUB_AUDIENCE.to_owned()),
            })
        }
        (None, Some(_)) => return Err(ConfigError::HubCaWithoutUrl { path }),
    };
    if let Some(paths) = default_paths {
        config.default_paths = check_default_paths(&path, paths)?;
    }
    if let Some(r) = default_resources {
        config.resources = check_resources(&path, r)?;
    }
    config.region = match region.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) if is_region(r) => Some(r.to_owned()),
        Some(r) => {
            return Err(ConfigError::BadRegion {
                path,
                value: r.to_owned(),
            });
        }
    };
    Ok(config)
}

/// Longest `hub-audience` taken. Kubernetes sets no limit; audiences are names or URLs.
pub const MAX_HUB_AUDIENCE_LEN: usize = 256;

/// `hub-audience`, trimmed (as the hub trims `--audience`): not empty, no whitespace or
/// control character inside (a typo, or a value pasted with its line break), at most
/// [`MAX_HUB_AUDIENCE_LEN`] characters.
fn check_hub_audience(path: &str, value: String) -> Result<String, ConfigError> {
    let value = value.trim().to_owned();
    let reason = if value.is_empty() {
        "is empty".to_owned()
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "has whitespace or a control character in it".to_owned()
    } else if value.chars().count() > MAX_HUB_AUDIENCE_LEN {
        format!("is longer than {MAX_HUB_AUDIENCE_LEN} characters")
    } else {
        return Ok(value);
    };
    Err(ConfigError::HubAudience {
        path: path.to_owned(),
        value,
        reason,
    })
}

/// Each default path must be a valid parameter path once `{namespace}` is filled in.
fn check_default_paths(path: &str, paths: Vec<String>) -> Result<Vec<String>, ConfigError> {
    paths
        .into_iter()
        .map(|p| {
            let p = p.trim().to_owned();
            // A namespace is a DNS label, which is a valid path component.
            check_path(&p.replace(NAMESPACE_PLACEHOLDER, "ns")).map_err(|e| {
                ConfigError::BadDefaultPath {
                    path: path.to_owned(),
                    value: p.clone(),
                    reason: e.to_string(),
                }
            })?;
            Ok(p)
        })
        .collect()
}

fn check_resources(path: &str, raw: RawResources) -> Result<AgentResources, ConfigError> {
    let RawResources {
        cpu_request,
        memory_request,
        cpu_limit,
        memory_limit,
    } = raw;
    let mut r = AgentResources::default();
    for (key, value, slot) in [
        ("cpu-request", cpu_request, &mut r.cpu_request),
        ("memory-request", memory_request, &mut r.memory_request),
        ("cpu-limit", cpu_limit, &mut r.cpu_limit),
        ("memory-limit", memory_limit, &mut r.memory_limit),
    ] {
        if let Some(v) = value {
            let v = v.trim().to_owned();
            // An empty value unsets the built-in default (e.g. no memory limit).
            if v.is_empty() {
                *slot = None;
                continue;
            }
            if parse_quantity(&v).is_none() {
                return Err(ConfigError::BadQuantity {
                    path: path.to_owned(),
                    key,
                    value: v,
                });
            }
            *slot = Some(v);
        }
    }
    for (request_key, request, limit_key, limit) in [
        ("cpu-request", &r.cpu_request, "cpu-limit", &r.cpu_limit),
        (
            "memory-request",
            &r.memory_request,
            "memory-limit",
            &r.memory_limit,
        ),
    ] {
        if let (Some(q), Some(l)) = (request, limit)
            && parse_quantity(q) > parse_quantity(l)
        {
            return Err(ConfigError::RequestAboveLimit {
                path: path.to_owned(),
                request_key,
                request: q.clone(),
                limit_key,
                limit: l.clone(),
            });
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn no_file_and_no_flag_gives_the_defaults() {
        assert_eq!(
            build(None, None).expect("defaults"),
            InjectConfig::default()
        );
    }

    #[test]
    fn every_key_of_the_file_is_read_and_the_image_flag_wins() {
        let text = "image: a/b:1\nnative-sidecar: false\nexcluded-namespaces: [x]\n\
                    namespace-prefixes:\n  team-a: [/team-a/]\ndefault-interval: 5m\n";
        let c = build(Some(("w.yaml", text)), Some("c/d:2".into())).expect("valid");
        assert_eq!(c.image, "c/d:2");
        assert!(!c.native_sidecar);
        assert_eq!(c.excluded_namespaces, vec!["x".to_owned()]);
        assert_eq!(
            c.namespace_prefixes.get("team-a"),
            Some(&vec!["/team-a/".to_owned()])
        );
        assert_eq!(c.default_interval, Duration::from_secs(300));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_file_and_key() {
        let e = build(Some(("w.yaml", "imgae: x\n")), None).expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("w.yaml") && msg.contains("imgae"), "{msg}");
    }

    #[test]
    fn a_bad_interval_names_the_key_and_an_example() {
        let e = build(Some(("w.yaml", "default-interval: soon\n")), None).expect_err("bad");
        let msg = e.to_string();
        assert!(
            msg.contains("default-interval") && msg.contains("60s"),
            "{msg}"
        );
    }

    #[test]
    fn default_paths_and_resources_are_read() {
        let text = "default-paths: [\"/apps/{namespace}/\", /shared/]\n\
                    default-resources: {cpu-request: 10m, cpu-limit: 100m, memory-limit: 64Mi}\n";
        let c = build(Some(("w.yaml", text)), None).expect("valid");
        assert_eq!(c.default_paths, ["/apps/{namespace}/", "/shared/"]);
        assert_eq!(c.resources.cpu_request.as_deref(), Some("10m"));
        assert_eq!(c.resources.cpu_limit.as_deref(), Some("100m"));
        // Left out: the built-in default.
        assert_eq!(c.resources.memory_request.as_deref(), Some("16Mi"));
        assert_eq!(c.resources.memory_limit.as_deref(), Some("64Mi"));
        let c = build(
            Some(("w.yaml", "default-resources: {memory-limit: \"\"}\n")),
            None,
        )
        .expect("valid");
        assert_eq!(c.resources.memory_limit, None, "an empty value unsets");
    }

    #[test]
    fn bad_defaults_are_errors_naming_the_key() {
        let cases = [
            ("default-paths: [apps/]\n", "default-paths"),
            ("default-paths: [\"/a b/\"]\n", "default-paths"),
            (
                "default-resources: {cpu-request: lots}\n",
                "default-resources.cpu-request",
            ),
            (
                "default-resources: {memory-request: 64Mi}\n",
                "memory-request 64Mi is above memory-limit 32Mi",
            ),
            ("default-resources: {cpu: 5m}\n", "cpu"),
        ];
        for (text, want) in cases {
            let e = build(Some(("w.yaml", text)), None).expect_err(text);
            let msg = e.to_string();
            assert!(
                msg.contains("w.yaml") && msg.contains(want),
                "{text}: {msg}"
            );
        }
    }

    #[test]
    fn the_region_is_checked_and_empty_means_the_sdks_chain() {
        // (the file, Ok(the region) or Err(a fragment of the message))
        let cases: Vec<(&str, Result<Option<&str>, &str>)> = vec![
            ("region: eu-west-1\n", Ok(Some("eu-west-1"))),
            ("region: \" us-gov-west-1 \"\n", Ok(Some("us-gov-west-1"))),
            ("region: \"\"\n", Ok(None)),
            ("region:\n", Ok(None)),
            ("image: x\n", Ok(None)),
            (
                "region: Europe\n",
                Err("region \"Europe\" is not an AWS region"),
            ),
            ("region: eu-west-1a\n", Err("e.g. eu-west-1")),
            ("region: [eu-west-1]\n", Err("region")),
        ];
        for (text, want) in cases {
            match (build(Some(("w.yaml", text)), None), want) {
                (Ok(c), Ok(want)) => assert_eq!(c.region.as_deref(), want, "{text}"),
                (Err(e), Err(want)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("w.yaml") && msg.contains(want),
                        "{text}: {msg}"
                    );
                }
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_empty_image_flag_is_refused() {
        let e = build(None, Some(" ".into())).expect_err("empty");
        assert!(e.to_string().contains("--image"), "{e}");
    }

    #[test]
    fn hub_audience_is_checked_and_defaults_to_the_hubs_default() {
        const HUB: &str = "hub-url: https://hub.ssm.svc:8443\nhub-ca-file: /hub-ca/ca.crt\n";
        let longest = "a".repeat(MAX_HUB_AUDIENCE_LEN);
        let too_long = format!("{longest}b");
        // (what, the file, Ok(the audience) or Err(a fragment of the message))
        let cases: Vec<(&str, String, Result<&str, &str>)> = vec![
            ("left out: the default", HUB.into(), Ok("ssm-injector-hub")),
            (
                "a name",
                format!("{HUB}hub-audience: hub.example.com\n"),
                Ok("hub.example.com"),
            ),
            (
                "a URL",
                format!("{HUB}hub-audience: https://hub.example.com/ssm?x=1\n"),
                Ok("https://hub.example.com/ssm?x=1"),
            ),
            (
                "trimmed, as the hub trims --audience",
                format!("{HUB}hub-audience: \"  my-hub  \"\n"),
                Ok("my-hub"),
            ),
            (
                "the longest",
                format!("{HUB}hub-audience: {longest}\n"),
                Ok(&longest),
            ),
            (
                "one longer",
                format!("{HUB}hub-audience: {too_long}\n"),
                Err("is longer than 256 characters"),
            ),
            (
                "empty",
                format!("{HUB}hub-audience: \"\"\n"),
                Err("\"\" is empty"),
            ),
            (
                "blank",
                format!("{HUB}hub-audience: \"   \"\n"),
                Err("\"\" is empty"),
            ),
            (
                "null",
                format!("{HUB}hub-audience:\n"),
                Ok("ssm-injector-hub"),
            ),
            (
                "a space",
                format!("{HUB}hub-audience: \"my hub\"\n"),
                Err("has whitespace or a control character"),
            ),
            (
                "a tab",
                format!("{HUB}hub-audience: \"my\\thub\"\n"),
                Err("has whitespace or a control character"),
            ),
            (
                "a line break",
                format!("{HUB}hub-audience: \"my\\nhub\"\n"),
                Err("has whitespace or a control character"),
            ),
            (
                "a no-break space",
                format!("{HUB}hub-audience: \"my\\u00a0hub\"\n"),
                Err("has whitespace or a control character"),
            ),
            (
                "a control character",
                format!("{HUB}hub-audience: \"my\\u0007hub\"\n"),
                Err("has whitespace or a control character"),
            ),
            (
                "not a string",
                format!("{HUB}hub-audience: [a, b]\n"),
                Err("hub-audience"),
            ),
            (
                "without the hub",
                "hub-audience: my-hub\n".into(),
                Err("is set without hub-url"),
            ),
        ];
        for (what, text, want) in cases {
            match (build(Some(("w.yaml", &text)), None), want) {
                (Ok(c), Ok(want)) => {
                    assert_eq!(c.hub.expect("hub").audience, want, "{what}");
                }
                (Err(e), Err(want)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("w.yaml")
                            && msg.contains("hub-audience")
                            && msg.contains(want),
                        "{what}: {msg}"
                    );
                }
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }
}
