//! The Kubernetes client configuration, found as `kube::Config::infer` finds it: the files
//! of KUBECONFIG merged (the first to set a value wins), else `~/.kube/config`, else the
//! pod's service account (in-cluster). The difference: kubeconfig YAML is read with
//! serde_yaml_ng, which the binary has anyway, not with kube's serde-saphyr, which would add
//! about 0.6 MB to it (the stripped binary has a 12 MiB budget).

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};

/// No usable configuration. Messages name the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    #[error("kubeconfig {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kubeconfig {path}: not a kubeconfig ({reason})")]
    Parse { path: String, reason: String },
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error(
        "not in a pod with a service account token ({0}), and no kubeconfig (KUBECONFIG or ~/.kube/config): mount the token (automountServiceAccountToken: true) or set KUBECONFIG"
    )]
    InCluster(#[source] kube::config::InClusterError),
}

/// Reads one kubeconfig file's text (every YAML document, merged); relative file paths in
/// it become relative to `dir`, as kubectl reads them. Pure.
pub fn parse(text: &str, dir: &Path, shown: &str) -> Result<Kubeconfig, KubeConfigError> {
    use serde::Deserialize;
    let mut merged = Kubeconfig::default();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let mut config = match Kubeconfig::deserialize(doc) {
            Ok(c) => c,
            // An empty file is an empty kubeconfig.
            Err(_) if text.trim().is_empty() => continue,
            Err(e) => {
                return Err(KubeConfigError::Parse {
                    path: shown.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        absolute_paths(&mut config, dir);
        merged = merged.merge(config).map_err(KubeConfigError::Kubeconfig)?;
    }
    Ok(merged)
}

fn absolute(dir: &Path, file: &mut Option<String>) {
    if let Some(f) = file
        && Path::new(f.as_str()).is_relative()
        && let Some(abs) = dir.join(f.as_str()).to_str()
    {
        *f = abs.to_owned();
    }
}

/// Certificate, key and token files relative to the kubeconfig's directory, and exec
/// commands that name a path (`./plugin`, not `aws`), as client-go resolves them.
fn absolute_paths(config: &mut Kubeconfig, dir: &Path) {
    for cluster in config
        .clusters
        .iter_mut()
        .filter_map(|c| c.cluster.as_mut())
    {
        absolute(dir, &mut cluster.certificate_authority);
    }
    for auth in config
        .auth_infos
        .iter_mut()
        .filter_map(|a| a.auth_info.as_mut())
    {
        absolute(dir, &mut auth.client_certificate);
        absolute(dir, &mut auth.client_key);
        absolute(dir, &mut auth.token_file);
        if let Some(exec) = &mut auth.exec
            && exec
                .command
                .as_deref()
                .is_some_and(|c| c.contains(std::path::MAIN_SEPARATOR))
        {
            absolute(dir, &mut exec.command);
        }
    }
}

/// The kubeconfig files to read: KUBECONFIG's (empty entries skipped), else
/// `~/.kube/config` when it exists. Empty: in-cluster.
fn kubeconfig_files() -> Vec<PathBuf> {
    if let Some(value) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    std::env::home_dir()
        .map(|h| h.join(".kube").join("config"))
        .filter(|p| p.is_file())
        .into_iter()
        .collect()
}

/// The client configuration (see the module documentation).
pub async fn infer() -> Result<kube::Config, KubeConfigError> {
    let files = kubeconfig_files();
    let mut config = if files.is_empty() {
        kube::Config::incluster().map_err(KubeConfigError::InCluster)?
    } else {
        let mut merged = Kubeconfig::default();
        for path in files {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| KubeConfigError::Read {
                path: shown.clone(),
                source,
            })?;
            let dir = path.parent().unwrap_or(Path::new("."));
            let one = parse(&text, dir, &shown)?;
            merged = merged.merge(one).map_err(KubeConfigError::Kubeconfig)?;
        }
        kube::Config::from_custom_kubeconfig(merged, &KubeConfigOptions::default())
            .await
            .map_err(KubeConfigError::Kubeconfig)?
    };
    config.apply_debug_overrides();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
  - name: a
    cluster: {server: "https://127.0.0.1:6443", certificate-authority: ca.crt}
  - name: b
    cluster: {server: "https://b", certificate-authority: /etc/b/ca.crt}
users:
  - name: u
    user: {tokenFile: token, client-certificate: tls/c.crt, client-key: tls/c.key,
           exec: {apiVersion: client.authentication.k8s.io/v1, command: ./bin/plugin}}
  - name: v
    user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}}
contexts:
  - name: ctx
    context: {cluster: a, user: u, namespace: ops}
current-context: ctx
"#;

    #[test]
    fn relative_files_are_read_from_the_kubeconfigs_directory() {
        let c = parse(KUBECONFIG, Path::new("/home/me/.kube"), "config").expect("valid");
        assert_eq!(c.current_context.as_deref(), Some("ctx"));
        let ca = |i: usize| {
            c.clusters[i]
                .cluster
                .as_ref()
                .and_then(|c| c.certificate_authority.clone())
        };
        assert_eq!(ca(0).as_deref(), Some("/home/me/.kube/ca.crt"));
        assert_eq!(ca(1).as_deref(), Some("/etc/b/ca.crt"));
        let u = c.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(u.token_file.as_deref(), Some("/home/me/.kube/token"));
        assert_eq!(u.client_key.as_deref(), Some("/home/me/.kube/tls/c.key"));
        let command = |i: usize| {
            c.auth_infos[i]
                .auth_info
                .as_ref()
                .and_then(|a| a.exec.as_ref())
                .and_then(|e| e.command.clone())
        };
        assert_eq!(command(0).as_deref(), Some("/home/me/.kube/./bin/plugin"));
        assert_eq!(command(1).as_deref(), Some("aws"), "a PATH lookup stays");
    }

    #[test]
    fn documents_merge_and_garbage_names_the_file() {
        let two = "current-context: first\n---\ncurrent-context: second\nclusters: []\n";
        let c = parse(two, Path::new("/"), "k").expect("two documents");
        assert_eq!(
            c.current_context.as_deref(),
            Some("first"),
            "the first wins"
        );
        assert!(parse("", Path::new("/"), "k").is_ok(), "empty is empty");
        let e = parse("clusters: 3\n", Path::new("/"), "/x/kubeconfig").expect_err("bad");
        assert!(e.to_string().contains("/x/kubeconfig"), "{e}");
    }
}
