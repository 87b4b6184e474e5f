//! TLS for the webhook and the hub: rustls on ring, TLS 1.2 and 1.3, the certificate and key from PEM
//! files, swapped in when the files change (cert-manager rotates them), or made in memory
//! ([`super::selftls`]) and swapped in the same way.
//!
//! [`CertResolver`] hands every new handshake the current pair; [`watch`] ([`from_files`])
//! re-reads the files
//! every few seconds and, when their content changed and the new pair is valid (parses, and
//! the key matches the certificate), replaces it. A bad new pair is logged and the old one
//! kept; the same bad content is not retried (nor logged) again until it changes. Open
//! connections keep the session they negotiated: a reload never drops one.
//!
//! [`CertResolver::check_now`] (the server calls it on SIGHUP) makes the keeper of the
//! pair, [`watch`] or [`super::selftls::Manager::run`], check at once instead of at its
//! next tick.

use super::metrics::CertReloads;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// A certificate or key that cannot be used. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {path}: {source}")]
    ReadCert {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path}: {source}")]
    ReadKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate file {path}: not a PEM certificate chain ({reason})")]
    BadCert { path: String, reason: String },
    #[error("certificate file {path}: no CERTIFICATE block found")]
    NoCert { path: String },
    #[error("key file {path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found ({reason})")]
    BadKey { path: String, reason: String },
    #[error(
        "key file {key} does not fit certificate file {cert}: {reason} (are they from the same secret?)"
    )]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// The crypto provider of every server and client: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM chain and key (`cert_name`, `key_name` name the files in errors) and checks
/// that the key belongs to the first certificate.
pub fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<CertifiedKey, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCert {
            path: cert_name.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: cert_name.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
        path: key_name.to_owned(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert_name.to_owned(),
        key: key_name.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads both files.
fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let c = std::fs::read(cert).map_err(|source| TlsError::ReadCert {
        path: cert.display().to_string(),
        source,
    })?;
    let k = std::fs::read(key).map_err(|source| TlsError::ReadKey {
        path: key.display().to_string(),
        source,
    })?;
    Ok((c, k))
}

/// Hands out the current certificate; [`CertResolver::set`] swaps it atomically.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents the current pair was loaded from (or last tried).
    seen: RwLock<(Vec<u8>, Vec<u8>)>,
    /// Where the pair comes from, for the log line of a check asked for.
    origin: Origin,
    /// A check asked for ([`CertResolver::check_now`]), for the keeper.
    check: tokio::sync::Notify,
}

/// Where a [`CertResolver`]'s pair comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// PEM files (`--cert`, `--key`), re-read by [`watch`].
    Files { cert: PathBuf, key: PathBuf },
    /// Made in memory from the CA Secret (`--tls-secret`, [`super::selftls`]).
    Secret,
}

impl CertResolver {
    /// Starts with a pair made in memory (`--tls-secret`); [`CertResolver::set`] replaces it.
    pub fn new(pair: CertifiedKey) -> CertResolver {
        CertResolver {
            current: RwLock::new(Arc::new(pair)),
            seen: RwLock::new((Vec::new(), Vec::new())),
            origin: Origin::Secret,
            check: tokio::sync::Notify::new(),
        }
    }

    /// Loads the pair from the files; an error names the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<CertResolver, TlsError> {
        let (c, k) = read_pair(cert, key)?;
        let pair = parse_pair(
            &c,
            &k,
            &cert.display().to_string(),
            &key.display().to_string(),
        )?;
        Ok(CertResolver {
            current: RwLock::new(Arc::new(pair)),
            seen: RwLock::new((c, k)),
            origin: Origin::Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            check: tokio::sync::Notify::new(),
        })
    }

    /// Where the pair comes from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Asks the keeper to check the files (or the Secret) now. Requests made while a check
    /// runs are one more check after it.
    pub fn check_now(&self) {
        self.check.notify_one();
    }

    /// Completes when a check is asked for ([`CertResolver::check_now`]).
    pub async fn check_requested(&self) {
        self.check.notified().await;
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the pair for new handshakes.
    pub fn set(&self, pair: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
    }

    /// Re-reads the files. `None` when their content is what was last seen; else whether the
    /// new pair was taken (`Some(Ok)`) or refused and the old one kept (`Some(Err)`).
    pub fn reload_if_changed(&self, cert: &Path, key: &Path) -> Option<Result<(), TlsError>> {
        let (c, k) = match read_pair(cert, key) {
            Ok(pair) => pair,
            // A file briefly missing during a rotation: try again on the next check.
            Err(e) => return Some(Err(e)),
        };
        {
            let seen = self.seen.read().unwrap_or_else(PoisonError::into_inner);
            if seen.0 == c && seen.1 == k {
                return None;
            }
        }
        let parsed = parse_pair(
            &c,
            &k,
            &cert.display().to_string(),
            &key.display().to_string(),
        );
        *self.seen.write().unwrap_or_else(PoisonError::into_inner) = (c, k);
        Some(parsed.map(|pair| self.set(pair)))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration: TLS 1.2+, no client certificates, HTTP/1.1 by ALPN,
/// certificates from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Loads the pair from the files (an error names the file at fault), then checks them every
/// `every` in a task ([`watch`]) that runs until aborted; `reloads` counts new pairs.
pub fn from_files(
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
    reloads: CertReloads,
) -> Result<(Arc<CertResolver>, tokio::task::JoinHandle<()>), TlsError> {
    let resolver = Arc::new(CertResolver::load(&cert, &key)?);
    let task = tokio::spawn(watch(resolver.clone(), cert, key, every, move |ok| {
        reloads.record(ok)
    }));
    Ok((resolver, task))
}

/// Checks the files every `every`, and at once when asked ([`CertResolver::check_now`]),
/// and reloads them when they change; `on_reload(ok)` is called after each reload attempt.
/// Runs until aborted.
pub async fn watch(
    resolver: Arc<CertResolver>,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
    on_reload: impl Fn(bool) + Send + 'static,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = resolver.check_requested() => tick.reset(),
        }
        let r = resolver.clone();
        let (c, k) = (cert.clone(), key.clone());
        let outcome = match tokio::task::spawn_blocking(move || r.reload_if_changed(&c, &k)).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("certificate check failed: {e}");
                continue;
            }
        };
        match outcome {
            None => {}
            Some(Ok(())) => {
                last_error = None;
                on_reload(true);
                tracing::info!(
                    cert = %cert.display(),
                    key = %key.display(),
                    "certificate reloaded: new connections use the new pair"
                );
            }
            Some(Err(e)) => {
                let msg = e.to_string();
                // A missing file is retried every check: log it once until it changes.
                if last_error.as_deref() != Some(&msg) {
                    on_reload(false);
                    tracing::warn!("{msg}; keeping the previous certificate");
                    last_error = Some(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("self-signed");
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, (c, k): &(String, String)) -> (PathBuf, PathBuf) {
        let (cp, kp) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cp, c).expect("write cert");
        std::fs::write(&kp, k).expect("write key");
        (cp, kp)
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = CertResolver::load(&dir.path().join("nope.crt"), &dir.path().join("nope.key"))
            .expect_err("missing");
        assert!(e.to_string().contains("nope.crt"), "{e}");
    }

    #[test]
    fn garbage_and_mismatched_pairs_are_refused_naming_the_file() {
        let (c1, k1) = pair("one");
        let (_, k2) = pair("two");
        let e = parse_pair(b"junk", k1.as_bytes(), "c.pem", "k.pem").expect_err("no cert");
        assert!(e.to_string().contains("c.pem"), "{e}");
        let e = parse_pair(c1.as_bytes(), b"junk", "c.pem", "k.pem").expect_err("no key");
        assert!(e.to_string().contains("k.pem"), "{e}");
        let e = parse_pair(c1.as_bytes(), k2.as_bytes(), "c.pem", "k.pem").expect_err("mismatch");
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
    }

    #[test]
    fn a_changed_pair_is_taken_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = pair("one");
        let (cp, kp) = write(dir.path(), &first);
        let r = CertResolver::load(&cp, &kp).expect("valid pair");
        let original = r.current().cert[0].clone();
        assert!(r.reload_if_changed(&cp, &kp).is_none(), "unchanged files");

        // A new certificate with the old key: refused, old pair kept, not retried.
        let second = pair("two");
        std::fs::write(&cp, &second.0).expect("write");
        assert!(matches!(r.reload_if_changed(&cp, &kp), Some(Err(_))));
        assert_eq!(r.current().cert[0], original);
        assert!(r.reload_if_changed(&cp, &kp).is_none());

        // Its key lands: taken.
        std::fs::write(&kp, &second.1).expect("write");
        assert!(matches!(r.reload_if_changed(&cp, &kp), Some(Ok(()))));
        assert_ne!(r.current().cert[0], original);
    }
}
