//! `--auth kubernetes`: each client's bearer token is checked with a Kubernetes
//! TokenReview, sent with the `kube` crate's client as the hub's own identity, and the
//! webhook's namespace policy (`--config`) decides what the caller may watch.
//! [`super::token_review`] holds the decisions; this module does the I/O.
//!
//! Where the client's configuration comes from ([`api_source`]):
//! 1. `--kube-api URL`: that server, trusting `--kube-ca-file` and authenticating with
//!    `--kube-token-file` (both default to the pod's service account files).
//! 2. Otherwise `crate::kubeconfig::infer()` (the lookup of `kube::Config::infer`): the
//!    kubeconfig of `KUBECONFIG`, else
//!    `~/.kube/config` (its current context), else the pod's service account
//!    (`KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`, with the token and CA under
//!    `/var/run/secrets/kubernetes.io/serviceaccount/`).
//!
//! The kube client re-reads a token file (and the CA file) about once a minute; when the
//! API server refuses the hub's own token (401), the client is built again at once, which
//! reads the files again, and the review is sent once more.

use super::auth::{AllowAll, AuthError, AuthFuture, Authorizer, Identity, NamespacePolicy, Policy};
use super::metrics::{HubMetrics, ReviewOutcome};
use super::token_review::{self, Answer, CACHE_SIZE, TokenCache};
use crate::cli::{HubAuth, HubKubeArgs};
use crate::inject::config::{self as inject_config, ConfigError};
use hyper::Uri;
use k8s_openapi::api::authentication::v1::TokenReview;
use kube::api::PostParams;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// Longest wait for the API server's answer to one TokenReview (with the kube client's
/// own retries of 429 and 503 inside it).
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TokenReviews in flight at once; more wait for a slot.
pub const MAX_REVIEWS_IN_FLIGHT: usize = 16;
/// Shortest time between two rebuilds of the client after the API server refused the
/// hub's own token.
pub const MIN_REBUILD_GAP: Duration = Duration::from_secs(1);
/// The pod's service account token: `--kube-token-file`'s default with `--kube-api`.
pub const POD_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The pod's cluster CA: `--kube-ca-file`'s default with `--kube-api`.
pub const POD_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// A flag of `--auth kubernetes` (or `--config`) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "--auth kubernetes needs the Kubernetes API: give --kube-api URL, point KUBECONFIG at a kubeconfig, or run in a pod with its service account token ({0})"
    )]
    NoApi(String),
    #[error(
        "--kube-api {0:?} is not a URL like https://kubernetes.default.svc:443 (https, a host, no user or query)"
    )]
    ApiUrl(String),
    #[error(
        "{flag} applies with --kube-api only; without --kube-api the hub takes the server, CA and token from KUBECONFIG, ~/.kube/config or the pod's service account"
    )]
    WithoutApi { flag: &'static str },
    #[error("--kube-ca-file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error(
        "--kube-token-file {path}: {reason} (the hub's own service account token, for TokenReview)"
    )]
    Token { path: String, reason: String },
    #[error("cannot set up the Kubernetes client for {server}: {reason}")]
    Client { server: String, reason: String },
    #[error(
        "--audience must not be empty: it is the audience of the clients' projected tokens (the webhook's hub-audience, ssm-injector-hub by default)"
    )]
    Audience,
    #[error("--config: {0}")]
    Config(#[from] ConfigError),
}

/// Who may watch what: the authorizer and the policy the server consults.
pub type Gate = (Arc<dyn Authorizer>, Arc<dyn Policy>);

/// Where the kube client's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSource {
    /// `--kube-api`, with the CA and token files (the pod's unless given).
    Flags {
        url: Uri,
        ca_file: PathBuf,
        token_file: PathBuf,
    },
    /// `crate::kubeconfig::infer()`: KUBECONFIG, ~/.kube/config, then the pod's service account.
    Infer,
}

/// The configuration source the flags ask for. An empty `--kube-api` counts as not given.
pub fn api_source(
    kube_api: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
) -> Result<ApiSource, SetupError> {
    let Some(url) = kube_api
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        if token_file.is_some() {
            return Err(SetupError::WithoutApi {
                flag: "--kube-token-file",
            });
        }
        if ca_file.is_some() {
            return Err(SetupError::WithoutApi {
                flag: "--kube-ca-file",
            });
        }
        return Ok(ApiSource::Infer);
    };
    let parsed: Uri = url.parse().map_err(|_| SetupError::ApiUrl(url.clone()))?;
    let usable = parsed.scheme_str() == Some("https")
        && parsed
            .authority()
            .is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
        && parsed.query().is_none();
    if !usable {
        return Err(SetupError::ApiUrl(url));
    }
    Ok(ApiSource::Flags {
        url: parsed,
        ca_file: ca_file.unwrap_or_else(|| PathBuf::from(POD_CA_FILE)),
        token_file: token_file.unwrap_or_else(|| PathBuf::from(POD_TOKEN_FILE)),
    })
}

/// The authorizer and policy for `--auth`, from the flags. `metrics` counts the reviews.
pub async fn setup(
    auth: HubAuth,
    args: HubKubeArgs,
    metrics: Arc<HubMetrics>,
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
            let audience = audience.trim().to_owned();
            if audience.is_empty() {
                return Err(SetupError::Audience);
            }
            let source = api_source(kube_api, kube_token_file, kube_ca_file)?;
            let from = match &source {
                ApiSource::Flags { .. } => "--kube-api",
                ApiSource::Infer => "KUBECONFIG, ~/.kube/config or the pod's service account",
            };
            let config = match source {
                ApiSource::Flags {
                    url,
                    ca_file,
                    token_file,
                } => flag_config(url, &ca_file, &token_file)?,
                ApiSource::Infer => crate::kubeconfig::infer()
                    .await
                    .map_err(|e| SetupError::NoApi(e.to_string()))?,
            };
            let reviewer = TokenReviewer::new(config, audience, metrics)?;
            tracing::info!(
                api = %reviewer.server,
                from,
                audience = %reviewer.audience,
                namespaces = prefixes.len(),
                "clients are authenticated by TokenReview"
            );
            Ok((Arc::new(reviewer), Arc::new(NamespacePolicy::new(prefixes))))
        }
    }
}

/// `namespace-prefixes` of the webhook's config file; the file is checked as the
/// webhook checks it.
fn load_prefixes(path: &Path) -> Result<crate::policy::Prefixes, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    Ok(inject_config::build(Some((&shown, &text)), None)?.namespace_prefixes)
}

/// The kube client's configuration for `--kube-api`: the CA file as the only roots (and
/// re-read by the client), the token file as the bearer token (re-read by the client).
/// Both files are checked now, so a wrong path stops the hub at start.
fn flag_config(url: Uri, ca_file: &Path, token_file: &Path) -> Result<kube::Config, SetupError> {
    let ca_err = |reason: String| SetupError::Ca {
        path: ca_file.display().to_string(),
        reason,
    };
    let pem = std::fs::read(ca_file).map_err(|e| ca_err(e.to_string()))?;
    let roots = crate::https::client::certificates(&pem).map_err(|e| ca_err(e.to_string()))?;
    let token_err = |reason: String| SetupError::Token {
        path: token_file.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(token_file).map_err(|e| token_err(e.to_string()))?;
    token_review::check_own_token(&text).map_err(|why| token_err(why.to_owned()))?;
    let token_path = token_file
        .to_str()
        .ok_or_else(|| token_err("the path is not UTF-8".to_owned()))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(roots.into_iter().map(|c| c.to_vec()).collect());
    config.root_cert_file = Some(ca_file.to_owned());
    config.auth_info.token_file = Some(token_path.to_owned());
    Ok(config)
}

/// The kube client in use, and when it was built (or a rebuild last tried).
struct Current {
    client: kube::Client,
    generation: u64,
    attempted: Instant,
}

/// The `--auth kubernetes` [`Authorizer`]: a cache of successful reviews in front of
/// TokenReview calls to the API server.
pub struct TokenReviewer {
    /// To build the client again when the API server refuses the hub's own token.
    config: kube::Config,
    /// The API server's URL, for messages.
    server: String,
    current: Mutex<Current>,
    /// Held while a new client is built, so that one 401 burst builds one.
    rebuilding: tokio::sync::Mutex<()>,
    audience: String,
    cache: Mutex<TokenCache>,
    slots: Semaphore,
    metrics: Arc<HubMetrics>,
}

impl Authorizer for TokenReviewer {
    fn authorize<'a>(&'a self, bearer: Option<&'a str>) -> AuthFuture<'a> {
        Box::pin(async move {
            let token = bearer
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| AuthError::Unauthenticated(token_review::NO_TOKEN.to_owned()))?;
            if token.len() > token_review::MAX_TOKEN {
                return Err(AuthError::Unauthenticated(format!(
                    "the bearer token is longer than {} bytes: not a service account token",
                    token_review::MAX_TOKEN
                )));
            }
            let key = token_review::cache_key(token);
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
                        self.server
                    )))
                });
            match &result {
                Ok(identity) => {
                    self.metrics.token_reviewed(ReviewOutcome::Authenticated);
                    let now_unix = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let now = Instant::now();
                    let until = now + token_review::lifetime(token, now_unix);
                    self.cache_lock().insert(key, identity.clone(), until, now);
                }
                Err(AuthError::Unavailable(message)) => {
                    self.metrics.token_reviewed(ReviewOutcome::Unavailable);
                    tracing::warn!("cannot check a client's token: {message}");
                }
                Err(AuthError::Unauthenticated(message)) => {
                    self.metrics.token_reviewed(ReviewOutcome::Unauthenticated);
                    tracing::debug!("token refused: {message}");
                }
            }
            result
        })
    }
}

impl TokenReviewer {
    fn new(
        config: kube::Config,
        audience: String,
        metrics: Arc<HubMetrics>,
    ) -> Result<TokenReviewer, SetupError> {
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config.clone()).map_err(|e| SetupError::Client {
            server: server.clone(),
            reason: chain(&e),
        })?;
        Ok(TokenReviewer {
            config,
            server,
            current: Mutex::new(Current {
                client,
                generation: 0,
                attempted: Instant::now(),
            }),
            rebuilding: tokio::sync::Mutex::new(()),
            audience,
            cache: Mutex::new(TokenCache::new(CACHE_SIZE)),
            slots: Semaphore::new(MAX_REVIEWS_IN_FLIGHT),
            metrics,
        })
    }

    fn cache_lock(&self) -> MutexGuard<'_, TokenCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current_lock(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, key: &token_review::CacheKey) -> Option<Identity> {
        self.cache_lock().get(key, Instant::now())
    }

    /// One TokenReview; if the API server refuses the hub's own token (401), the client
    /// is built again (which reads the token file again) and the review sent once more.
    async fn review(&self, token: &str) -> Result<Identity, AuthError> {
        let body = token_review::request_body(token, &self.audience)
            .map_err(|e| AuthError::Unavailable(format!("cannot encode the TokenReview: {e}")))?;
        let (client, generation) = {
            let current = self.current_lock();
            (current.client.clone(), current.generation)
        };
        let mut result = send(&client, body.clone()).await;
        if own_token_refused(&result)
            && let Some(fresh) = self.rebuild(generation).await
        {
            result = send(&fresh, body).await;
        }
        token_review::interpret(self.answer(result), token, &self.audience)
    }

    /// A client built after the one of `generation` got a 401: the one another review
    /// already built, or a new one (at most one attempt per [`MIN_REBUILD_GAP`]). `None`
    /// when it is too soon or the configuration no longer builds (the old client stays).
    /// The build runs on a blocking thread: with a kubeconfig it may run an exec plugin.
    async fn rebuild(&self, generation: u64) -> Option<kube::Client> {
        let _one_at_a_time = self.rebuilding.lock().await;
        {
            let mut current = self.current_lock();
            if current.generation != generation {
                return Some(current.client.clone());
            }
            if current.attempted.elapsed() < MIN_REBUILD_GAP {
                return None;
            }
            current.attempted = Instant::now();
        }
        let config = self.config.clone();
        let built = tokio::task::spawn_blocking(move || kube::Client::try_from(config))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| chain(&e)));
        match built {
            Ok(client) => {
                tracing::info!(
                    api = %self.server,
                    "the Kubernetes API refused the hub's own token (HTTP 401); read the credentials again"
                );
                *self.current_lock() = Current {
                    client: client.clone(),
                    generation: generation + 1,
                    attempted: Instant::now(),
                };
                Some(client)
            }
            Err(e) => {
                tracing::warn!(
                    api = %self.server,
                    "the Kubernetes API refused the hub's own token (HTTP 401), and the credentials cannot be read again: {e}"
                );
                None
            }
        }
    }

    /// What the kube client's result means for [`token_review::interpret`].
    fn answer(&self, result: Result<String, kube::Error>) -> Answer {
        match result {
            Ok(body) => Answer::Body(body),
            Err(kube::Error::Api(status)) => Answer::Status {
                code: status.code,
                message: status.message,
            },
            Err(e @ kube::Error::Auth(_)) => Answer::Credentials(chain(&e)),
            Err(e) => Answer::NoAnswer {
                server: self.server.clone(),
                error: chain(&e),
            },
        }
    }
}

/// `POST` the TokenReview. The answer is read as text, not with `Api::create`: on an answer
/// it cannot parse, the kube client logs the whole text, which repeats `spec.token`.
async fn send(client: &kube::Client, body: Vec<u8>) -> Result<String, kube::Error> {
    let url = <TokenReview as kube::Resource>::url_path(&(), None);
    let request = kube::core::Request::new(url)
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await
}

/// Whether the API server refused the hub's own credentials.
fn own_token_refused(result: &Result<String, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 401)
}

/// An error and its causes, `a: b: c`, without repeats (wrappers often print their cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(
        api: Option<&str>,
        token: Option<&str>,
        ca: Option<&str>,
    ) -> Result<ApiSource, SetupError> {
        api_source(
            api.map(str::to_owned),
            token.map(PathBuf::from),
            ca.map(PathBuf::from),
        )
    }

    #[test]
    fn the_api_comes_from_the_flags_or_the_kube_clients_inference() {
        assert_eq!(source(None, None, None).unwrap(), ApiSource::Infer);
        assert_eq!(
            source(Some(" "), None, None).unwrap(),
            ApiSource::Infer,
            "an empty SSM_INJECTOR_HUB_KUBE_API"
        );
        assert_eq!(
            source(Some("https://api.example:6443"), None, None).unwrap(),
            ApiSource::Flags {
                url: "https://api.example:6443".parse().unwrap(),
                ca_file: POD_CA_FILE.into(),
                token_file: POD_TOKEN_FILE.into(),
            }
        );
        assert_eq!(
            source(
                Some("https://[fd00::1]/k8s/clusters/c-1"),
                Some("/t"),
                Some("/c")
            )
            .unwrap(),
            ApiSource::Flags {
                url: "https://[fd00::1]/k8s/clusters/c-1".parse().unwrap(),
                ca_file: "/c".into(),
                token_file: "/t".into(),
            }
        );
        for bad in [
            "http://api:80",
            "api:443",
            "https://",
            "https://user@api",
            "https://api/?x=1",
            "not a url",
        ] {
            let e = source(Some(bad), None, None).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("--kube-api {bad:?}")),
                "{bad}: {e}"
            );
        }
        for (token, ca, flag) in [
            (Some("/t"), None, "--kube-token-file"),
            (None, Some("/c"), "--kube-ca-file"),
        ] {
            let e = source(None, token, ca).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{flag} applies with --kube-api only")),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn setup_errors_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let args = |token: &Path, ca: &Path, audience: &str, config: Option<PathBuf>| HubKubeArgs {
            kube_api: Some("https://127.0.0.1:6443".into()),
            kube_token_file: Some(token.to_owned()),
            kube_ca_file: Some(ca.to_owned()),
            audience: audience.into(),
            config,
        };
        let metrics = || Arc::new(HubMetrics::new());
        let missing = dir.path().join("missing");
        let text = dir.path().join("text");
        std::fs::write(&text, "not a certificate").unwrap();
        let err = async |a| match setup(HubAuth::Kubernetes, a, metrics()).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        let e = err(args(&text, &missing, "aud", None)).await;
        assert!(e.starts_with("--kube-ca-file "), "{e}");
        let e = err(args(&text, &text, "aud", None)).await;
        assert!(e.contains("no certificate in it"), "{e}");
        let e = err(args(&text, &text, " ", None)).await;
        assert!(e.starts_with("--audience"), "{e}");
        let bad_config = dir.path().join("config.yaml");
        std::fs::write(&bad_config, "namespace-prefixes: [oops]\n").unwrap();
        let e = err(args(&text, &text, "aud", Some(bad_config.clone()))).await;
        assert!(e.starts_with("--config: webhook config"), "{e}");
        let ca = dir.path().join("ca.crt");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["kubernetes".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        let e = err(args(&missing, &ca, "aud", None)).await;
        assert!(e.starts_with("--kube-token-file "), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = err(args(&empty, &ca, "aud", None)).await;
        assert!(e.contains("the file is empty"), "{e}");
        let token = dir.path().join("token");
        std::fs::write(&token, "abc\n").unwrap();
        let e = err(args(&token, &ca, "aud", None)).await;
        assert!(e.contains("newline"), "{e}");
        std::fs::write(&token, "abc").unwrap();
        assert!(
            setup(
                HubAuth::Kubernetes,
                args(&token, &ca, "aud", None),
                metrics()
            )
            .await
            .is_ok()
        );
        // The config is checked with --auth none too.
        assert!(
            setup(
                HubAuth::None,
                args(&missing, &missing, "aud", Some(bad_config)),
                metrics()
            )
            .await
            .is_err()
        );
        assert!(
            setup(
                HubAuth::None,
                args(&missing, &missing, "aud", None),
                metrics()
            )
            .await
            .is_ok()
        );
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper: {0}")]
        struct Wrapper(#[source] std::io::Error);
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(chain(&Outer(refused())), "outer: refused");
        assert_eq!(chain(&Wrapper(refused())), "wrapper: refused");
    }
}
