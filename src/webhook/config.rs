//! Reads the webhook's configuration file and the hub CA file it names, then builds the
//! [`InjectConfig`] with the pure [`crate::inject::config::build`].

use crate::inject::InjectConfig;
pub use crate::inject::config::ConfigError;
use crate::inject::config::build;
use std::path::Path;

/// Reads the config file (if any) and applies `--image` over it. `hub-ca-file` may be left
/// out only when `ca_from_secret` (`--tls-secret`): the sidecars then get its CA bundle.
pub fn load(
    path: Option<&Path>,
    image: Option<String>,
    ca_from_secret: bool,
) -> Result<InjectConfig, ConfigError> {
    let text = match path {
        None => None,
        Some(p) => {
            let shown = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: shown.clone(),
                source,
            })?;
            Some((shown, text))
        }
    };
    let mut config = build(text.as_ref().map(|(p, t)| (p.as_str(), t.as_str())), image)?;
    let shown = text.as_ref().map_or(String::new(), |(p, _)| p.clone());
    if let Some(hub) = &mut config.hub {
        let Some(file) = hub.ca_file.clone() else {
            return match ca_from_secret {
                true => Ok(config),
                false => Err(ConfigError::HubHalf { path: shown }),
            };
        };
        let fail = |reason: String| ConfigError::HubCa {
            path: shown.clone(),
            file: file.clone(),
            reason,
        };
        let pem = std::fs::read_to_string(&file).map_err(|e| fail(e.to_string()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(fail("no PEM certificate in it".into()));
        }
        hub.ca_pem = pem;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_url_needs_a_ca_file_unless_the_ca_comes_from_the_tls_secret() {
        let c = build(
            Some((
                "w.yaml",
                "hub-url: https://hub.ssm.svc:8443/\nhub-ca-file: /hub-ca/ca.crt\n",
            )),
            None,
        )
        .expect("valid");
        let hub = c.hub.expect("hub");
        assert_eq!(hub.url, "https://hub.ssm.svc:8443");
        assert_eq!(hub.ca_file.as_deref(), Some("/hub-ca/ca.crt"));
        let e = build(Some(("w.yaml", "hub-ca-file: /x\n")), None).expect_err("no url");
        assert!(e.to_string().contains("without hub-url"), "{e}");
        let e = build(
            Some(("w.yaml", "hub-url: http://hub:8443\nhub-ca-file: /x\n")),
            None,
        )
        .expect_err("http");
        assert!(e.to_string().contains("is not an https:// URL"), "{e}");

        // Without hub-ca-file: only with --tls-secret, whose bundle the sidecars get.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("w.yaml");
        std::fs::write(&file, "hub-url: https://hub:8443\n").expect("write");
        let e = load(Some(&file), None, false).expect_err("no CA");
        assert!(e.to_string().contains("--tls-secret"), "{e}");
        let c = load(Some(&file), None, true).expect("the CA comes from the Secret");
        let hub = c.hub.expect("hub");
        assert_eq!(hub.ca_file, None);
        assert_eq!(hub.ca_pem, "", "filled in from the Secret at start");
    }
}
