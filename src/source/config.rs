//! The AWS configuration every client of a process shares (SSM, Secrets Manager, SQS): the
//! SDK's default chain, this program's HTTP client and timeouts, and a region, which is
//! required.
//!
//! The HTTP client ([`ByScheme`]) sends `http://` requests (an emulator, a local proxy)
//! without TLS and `https://` ones with rustls on ring. The trust roots (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR` or the system's bundle) are read and parsed at the first `https://`
//! request, not when a client is built: a render against an `http://` endpoint never
//! reads them, and an unreadable bundle fails the first HTTPS call, with its cause.

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig, timeout::TimeoutConfig};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::OnceLock;
use std::time::Duration;

/// Why the AWS configuration could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    #[error(
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile) or --region"
    )]
    NoRegion,
}

/// The SDK's default chain (see [`super::ssm::Source::from_env`]) with `region` if given,
/// through [`sdk_config`]: one configuration for every AWS client of a process.
pub async fn load_config(region: Option<String>) -> Result<SdkConfig, AwsConfigError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    sdk_config(loader).await
}

/// The SDK configuration every AWS client of this program uses: `loader` plus the HTTP
/// client ([`ByScheme`]) and the timeouts; a region is required.
pub async fn sdk_config(loader: aws_config::ConfigLoader) -> Result<SdkConfig, AwsConfigError> {
    let config = loader
        .http_client(ByScheme::new())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        // The attempt timeout above bounds every response, body included (answers are a
        // few KiB of JSON); the SDK's throughput monitor for long streams would only add
        // timers and wrappers to every call (CPU of every poll).
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .load()
        .await;
    if config.region().is_none() {
        return Err(AwsConfigError::NoRegion);
    }
    Ok(config)
}

/// The HTTP client of every AWS client: `http://` requests go through a plain connector,
/// every other one through rustls (on ring), whose connector (and with it the trust
/// roots) the SDK's client builds at its first use. Unlike the SDK's HTTPS client alone,
/// nothing is built when an AWS client is: the SDK's `validate_base_client_config` would
/// load and parse the CA bundle there, for every process, whatever its endpoint.
#[derive(Debug, Clone)]
struct ByScheme {
    http: SharedHttpClient,
    https: SharedHttpClient,
}

impl ByScheme {
    fn new() -> ByScheme {
        let builder = aws_smithy_http_client::Builder::new();
        ByScheme {
            http: builder.clone().build_http(),
            https: builder
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        }
    }
}

impl HttpClient for ByScheme {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SchemeConnector {
            client: self.clone(),
            settings: settings.clone(),
            components: components.clone(),
        })
    }
}

/// Picks the connector by the request's scheme. The SDK's clients keep one connector per
/// setting, so the rustls one (and the trust roots) is built once, at the first
/// `https://` request.
#[derive(Debug)]
struct SchemeConnector {
    client: ByScheme,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for SchemeConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match is_plain_http(request.uri()) {
            true => &self.client.http,
            false => match trust_roots() {
                Ok(()) => &self.client.https,
                Err(e) => {
                    return HttpConnectorFuture::ready(Err(ConnectorError::other(
                        e.clone().into(),
                        None,
                    )));
                }
            },
        };
        client
            .http_connector(&self.settings, &self.components)
            .call(request)
    }
}

/// Why HTTPS cannot verify any server, checked once, at the first `https://` request:
/// the trust roots (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else the system's bundle) do not
/// load, or none of them is a usable certificate. Without this check the SDK's client
/// would go on with no roots and fail every handshake as "unknown issuer".
fn trust_roots() -> Result<(), NoTrustRoots> {
    static CHECKED: OnceLock<Result<(), NoTrustRoots>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            // One usable root is enough to know the store is not empty (parsing them all
            // is the SDK's job, once).
            let usable = loaded
                .certs
                .into_iter()
                .any(|cert| rustls::RootCertStore::empty().add(cert).is_ok());
            match usable {
                true => Ok(()),
                false => Err(NoTrustRoots {
                    from: roots_source(),
                    errors: loaded.errors.iter().map(ToString::to_string).collect(),
                }),
            }
        })
        .clone()
}

/// Where the trust roots come from, for the error.
fn roots_source() -> String {
    let vars: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter_map(|v| Some(format!("{v}={}", std::env::var_os(v)?.to_string_lossy())))
        .collect();
    match vars.is_empty() {
        true => "the system's CA certificates".into(),
        false => vars.join(", "),
    }
}

/// No trust root for HTTPS (see [`trust_roots`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "no usable trusted root certificate for HTTPS in {from}{}",
    match errors.is_empty() {
        true => String::new(),
        false => format!(" ({})", errors.join("; ")),
    }
)]
struct NoTrustRoots {
    from: String,
    errors: Vec<String>,
}

/// Whether a request URI is `http://` (case-insensitive, as URI schemes are).
fn is_plain_http(uri: &str) -> bool {
    uri.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_uris_skip_tls() {
        assert!(is_plain_http("http://127.0.0.1:4566/"));
        assert!(is_plain_http("HTTP://localhost/"));
        assert!(!is_plain_http("https://ssm.us-east-1.amazonaws.com/"));
        assert!(!is_plain_http("http:/"));
        assert!(!is_plain_http(""));
        assert!(!is_plain_http("httpé://x"));
    }
}
