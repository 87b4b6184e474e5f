//! `--auth kubernetes`: each client's bearer token is checked with a Kubernetes
//! TokenReview, sent to the API server with the hub's own service account token, and the
//! webhook's namespace policy (`--config`) decides what the caller may watch.
//! [`super::review`] holds the decisions; this module does the I/O.

use super::auth::{AllowAll, AuthError, AuthFuture, Authorizer, Identity, NamespacePolicy, Policy};
use super::review::{self, CACHE_SIZE, TOKEN_REVIEW_PATH, TokenCache};
use crate::cli::{HubAuth, HubKubeArgs};
use crate::https_client::{self, Endpoint};
use crate::secret::Secret;
use crate::webhook::config::{self as webhook_config, ConfigError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// How long the hub's own token is used before the file is read again.
pub const OWN_TOKEN_MAX_AGE: Duration = Duration::from_secs(60);
/// Longest wait for the API server's answer to one TokenReview.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TokenReviews in flight at once; more wait for a slot.
pub const MAX_REVIEWS_IN_FLIGHT: usize = 16;
/// Largest TokenReview answer read.
const MAX_ANSWER: usize = 256 * 1024;

/// A flag of `--auth kubernetes` (or `--config`) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "--auth kubernetes needs the Kubernetes API: give --kube-api URL, or run in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are set there)"
    )]
    NoApi,
    #[error("--kube-api {0:?} is not a URL like https://kubernetes.default.svc:443")]
    ApiUrl(String),
    #[error("--kube-ca-file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error(
        "--kube-token-file {path}: {reason} (the hub's own service account token, for TokenReview)"
    )]
    Token { path: String, reason: String },
    #[error(
        "--audience must not be empty: it is the audience of the clients' projected tokens (the webhook's hub-audience, ssm-injector-hub by default)"
    )]
    Audience,
    #[error("--config: {0}")]
    Config(#[from] ConfigError),
}

/// Who may watch what: the authorizer and the policy the server consults.
pub type Gate = (Arc<dyn Authorizer>, Arc<dyn Policy>);

/// The authorizer and policy for `--auth`, from the flags. `env` looks up environment
/// variables (for the in-cluster API address).
pub fn setup(
    auth: HubAuth,
    args: HubKubeArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Gate, SetupError> {
    let HubKubeArgs {
        kube_api,
        kube_token_file,
        kube_ca_file,
        audience,
        config,
    } = args;
    let prefixes = match &config {
        Some(path) => load_prefixes(path)?,
        None => Default::default(),
    };
    match auth {
        HubAuth::None => {
            if !prefixes.is_empty() {
                tracing::warn!(
                    "--config: namespace-prefixes apply with --auth kubernetes only; with --auth none every client may watch everything"
                );
            }
            Ok((Arc::new(AllowAll), Arc::new(AllowAll)))
        }
        HubAuth::Kubernetes => {
            let endpoint = api_endpoint(kube_api, env)?;
            let audience = audience.trim().to_owned();
            if audience.is_empty() {
                return Err(SetupError::Audience);
            }
            let shown = kube_ca_file.display().to_string();
            let ca_err = |reason: String| SetupError::Ca {
                path: shown.clone(),
                reason,
            };
            let pem = std::fs::read(&kube_ca_file).map_err(|e| ca_err(e.to_string()))?;
            let tls = https_client::trusting(&pem).map_err(|e| ca_err(e.to_string()))?;
            let own = OwnToken::load(kube_token_file)?;
            tracing::info!(
                api = %endpoint.address(),
                audience = %audience,
                namespaces = prefixes.len(),
                "clients are authenticated by TokenReview"
            );
            let reviewer = TokenReviewer {
                endpoint,
                tls,
                audience,
                own,
                cache: Mutex::new(TokenCache::new(CACHE_SIZE)),
                slots: Semaphore::new(MAX_REVIEWS_IN_FLIGHT),
            };
            Ok((Arc::new(reviewer), Arc::new(NamespacePolicy::new(prefixes))))
        }
    }
}

/// `namespace-prefixes` of the webhook's config file; the file is checked as the
/// webhook checks it.
fn load_prefixes(path: &Path) -> Result<crate::inject::policy::Prefixes, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    Ok(webhook_config::build(Some((&shown, &text)), None)?.namespace_prefixes)
}

/// `--kube-api`, or the in-cluster address from `KUBERNETES_SERVICE_HOST` and
/// `KUBERNETES_SERVICE_PORT` (443 if unset).
pub fn api_endpoint(
    flag: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoint, SetupError> {
    let nonempty = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(url) = nonempty(flag) {
        return Endpoint::parse(&url).ok_or(SetupError::ApiUrl(url));
    }
    let host = nonempty(env("KUBERNETES_SERVICE_HOST")).ok_or(SetupError::NoApi)?;
    let port = nonempty(env("KUBERNETES_SERVICE_PORT")).unwrap_or_else(|| "443".to_owned());
    let url = if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    };
    Endpoint::parse(&url).ok_or(SetupError::ApiUrl(url))
}

/// The hub's own token file, re-read when the copy in memory is a minute old or the API
/// server refused it.
struct OwnToken {
    path: PathBuf,
    current: Mutex<(Secret, Instant)>,
}

impl OwnToken {
    fn load(path: PathBuf) -> Result<OwnToken, SetupError> {
        let token = read_token(&path).map_err(|reason| SetupError::Token {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(OwnToken {
            path,
            current: Mutex::new((token, Instant::now())),
        })
    }

    /// The token; read again if it is old or `fresh` is asked. A failed read keeps the
    /// old token (it stays valid for a while after the kubelet rotates it).
    fn get(&self, fresh: bool) -> Secret {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if fresh || current.1.elapsed() >= OWN_TOKEN_MAX_AGE {
            match read_token(&self.path) {
                Ok(token) => *current = (token, Instant::now()),
                Err(reason) => tracing::warn!(
                    path = %self.path.display(),
                    "cannot read the hub's service account token again ({reason}); using the one read before"
                ),
            }
        }
        current.0.clone()
    }
}

fn read_token(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("the file is empty".to_owned());
    }
    if https_client::bearer(token).is_none() {
        return Err("not a token (it has characters a header cannot carry)".to_owned());
    }
    Ok(Secret::new(token.to_owned()))
}

/// The `--auth kubernetes` [`Authorizer`]: a cache of successful reviews in front of
/// TokenReview calls to the API server.
pub struct TokenReviewer {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    audience: String,
    own: OwnToken,
    cache: Mutex<TokenCache>,
    slots: Semaphore,
}

impl Authorizer for TokenReviewer {
    fn authorize<'a>(&'a self, bearer: Option<&'a str>) -> AuthFuture<'a> {
        Box::pin(async move {
            let token = bearer
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| AuthError::Unauthenticated(review::NO_TOKEN.to_owned()))?;
            if token.len() > review::MAX_TOKEN {
                return Err(AuthError::Unauthenticated(format!(
                    "the bearer token is longer than {} bytes: not a service account token",
                    review::MAX_TOKEN
                )));
            }
            let key = review::cache_key(token);
            if let Some(identity) = self.cached(&key) {
                return Ok(identity);
            }
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| AuthError::Unavailable("the hub is shutting down".to_owned()))?;
            // Another request may have reviewed the same token while this one waited.
            if let Some(identity) = self.cached(&key) {
                return Ok(identity);
            }
            let result = tokio::time::timeout(REVIEW_TIMEOUT, self.review(token))
                .await
                .unwrap_or_else(|_| {
                    Err(AuthError::Unavailable(format!(
                        "the Kubernetes API at {} did not answer the TokenReview within {REVIEW_TIMEOUT:?}",
                        self.endpoint.address()
                    )))
                });
            match &result {
                Ok(identity) => {
                    let now_unix = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let now = Instant::now();
                    let until = now + review::lifetime(token, now_unix);
                    self.cache_lock().insert(key, identity.clone(), until, now);
                }
                Err(AuthError::Unavailable(message)) => {
                    tracing::warn!("cannot check a client's token: {message}");
                }
                Err(AuthError::Unauthenticated(message)) => {
                    tracing::debug!("token refused: {message}");
                }
            }
            result
        })
    }
}

impl TokenReviewer {
    fn cache_lock(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, key: &review::CacheKey) -> Option<Identity> {
        self.cache_lock().get(key, Instant::now())
    }

    /// One TokenReview; if the API server refuses the hub's own token (401), the token file
    /// is read again and the review sent once more.
    async fn review(&self, token: &str) -> Result<Identity, AuthError> {
        let body = review::request_body(token, &self.audience)
            .map_err(|e| AuthError::Unavailable(format!("cannot encode the TokenReview: {e}")))?;
        let mut own = self.own.get(false);
        let mut retried = false;
        loop {
            let headers = https_client::bearer(own.expose()).into_iter().collect();
            let answer = https_client::post_json(
                &self.endpoint,
                &self.tls,
                TOKEN_REVIEW_PATH,
                headers,
                body.clone(),
                MAX_ANSWER,
            )
            .await
            .map_err(|e| {
                AuthError::Unavailable(format!(
                    "cannot reach the Kubernetes API at {} to check the token: {e}",
                    self.endpoint.address()
                ))
            })?;
            if answer.status == 401 && !retried {
                let fresh = self.own.get(true);
                if fresh != own {
                    own = fresh;
                    retried = true;
                    continue;
                }
            }
            return review::interpret(answer.status, &answer.body, token, &self.audience);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_api_address_comes_from_the_flag_or_the_pod_environment() {
        let pod = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ];
        let addr = |flag: Option<&str>, vars: &[(&str, &str)]| {
            api_endpoint(flag.map(str::to_owned), &env(vars)).map(|e| e.address())
        };
        assert_eq!(addr(None, &pod).unwrap(), "10.96.0.1:443");
        assert_eq!(
            addr(Some("https://api.example:6443"), &pod).unwrap(),
            "api.example:6443"
        );
        assert_eq!(
            addr(None, &[("KUBERNETES_SERVICE_HOST", "fd00::1")]).unwrap(),
            "[fd00::1]:443"
        );
        assert!(matches!(addr(None, &[]), Err(SetupError::NoApi)));
        assert!(matches!(
            addr(Some(" "), &[("KUBERNETES_SERVICE_PORT", "443")]),
            Err(SetupError::NoApi)
        ));
        let e = addr(Some("http://api:80"), &pod).unwrap_err();
        assert!(
            e.to_string().contains("--kube-api \"http://api:80\""),
            "{e}"
        );
        assert!(matches!(
            addr(
                None,
                &[
                    ("KUBERNETES_SERVICE_HOST", "api"),
                    ("KUBERNETES_SERVICE_PORT", "x")
                ]
            ),
            Err(SetupError::ApiUrl(_))
        ));
    }

    #[test]
    fn setup_errors_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let args = |token: &Path, ca: &Path, audience: &str, config: Option<PathBuf>| HubKubeArgs {
            kube_api: Some("https://127.0.0.1:6443".into()),
            kube_token_file: token.to_owned(),
            kube_ca_file: ca.to_owned(),
            audience: audience.into(),
            config,
        };
        let none = |_: &str| None;
        let missing = dir.path().join("missing");
        let text = dir.path().join("text");
        std::fs::write(&text, "not a certificate").unwrap();
        let err = |a| match setup(HubAuth::Kubernetes, a, &none) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        let e = err(args(&text, &missing, "aud", None));
        assert!(e.starts_with("--kube-ca-file "), "{e}");
        let e = err(args(&text, &text, "aud", None));
        assert!(e.contains("no certificate in it"), "{e}");
        let e = err(args(&text, &text, " ", None));
        assert!(e.starts_with("--audience"), "{e}");
        let bad_config = dir.path().join("config.yaml");
        std::fs::write(&bad_config, "namespace-prefixes: [oops]\n").unwrap();
        let e = err(args(&text, &text, "aud", Some(bad_config.clone())));
        assert!(e.starts_with("--config: webhook config"), "{e}");
        let ca = dir.path().join("ca.crt");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["kubernetes".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        let e = err(args(&missing, &ca, "aud", None));
        assert!(e.starts_with("--kube-token-file "), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = err(args(&empty, &ca, "aud", None));
        assert!(e.contains("the file is empty"), "{e}");
        let token = dir.path().join("token");
        std::fs::write(&token, "abc\n").unwrap();
        assert!(setup(HubAuth::Kubernetes, args(&token, &ca, "aud", None), &none).is_ok());
        // The config is checked with --auth none too.
        assert!(
            setup(
                HubAuth::None,
                args(&missing, &missing, "aud", Some(bad_config)),
                &none
            )
            .is_err()
        );
        assert!(setup(HubAuth::None, args(&missing, &missing, "aud", None), &none).is_ok());
    }
}
