//! A small HTTPS/1.1 client on rustls (ring): one request per connection, a CA bundle of
//! our own, no proxy. The sidecar reaches the hub with it ([`crate::watch::hub_client`]); the
//! hub reaches the Kubernetes API with the kube client ([`crate::hub::token_reviewer`]), using
//! [`certificates`] for its `--kube-ca-file`.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::sync::Arc;
use tokio::net::TcpStream;

/// Why a CA bundle cannot be used; the caller names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error("not PEM certificates: {0}")]
    NotPem(String),
    #[error("not a usable CA certificate: {0}")]
    Unusable(String),
    #[error("no certificate in it")]
    Empty,
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// Why one exchange failed before an HTTP status arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Http(String),
}

/// `https://HOST[:PORT]` (default port 443), without path, query or user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses the URL; `None` unless it is exactly `https://HOST[:PORT][/]` with a host
    /// rustls can check a certificate against (a DNS name or an IP address, `[v6]`).
    pub fn parse(url: &str) -> Option<Endpoint> {
        let rest = url.trim().trim_end_matches('/').strip_prefix("https://")?;
        if rest.is_empty()
            || rest.contains(['/', '?', '#', '@'])
            || rest.contains(char::is_whitespace)
        {
            return None;
        }
        // `[v6]` has colons of its own: a port follows only after the `]`.
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !rest.ends_with(']') && (!h.contains('[') || h.ends_with(']')) => {
                (h, p.parse::<u16>().ok().filter(|p| *p > 0)?)
            }
            _ => (rest, 443),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() || ServerName::try_from(host.clone()).is_err() {
            return None;
        }
        Some(Endpoint { host, port })
    }

    /// `host:port`, for logs and the `Host` header.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The certificates of a PEM bundle, each checked to be usable as a trust anchor; at
/// least one.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| CaError::NotPem(e.to_string()))?;
        roots
            .add(cert.clone())
            .map_err(|e| CaError::Unusable(e.to_string()))?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(CaError::Empty);
    }
    Ok(certs)
}

/// A TLS client configuration that trusts exactly the certificates of `pem` (TLS 1.2 and
/// 1.3, ring, no client certificate).
pub fn trusting(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, CaError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(pem)? {
        roots
            .add(cert)
            .map_err(|e| CaError::Unusable(e.to_string()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// An answer: its status and at most the asked number of body bytes.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// `POST path` with a JSON body on a new connection (`Connection: close`). `headers` are
/// added as given (e.g. `Authorization`); a body longer than `max_answer` is an error.
pub async fn post_json(
    endpoint: &Endpoint,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
    max_answer: usize,
) -> Result<Answer, ClientError> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| ClientError::Connect(format!("{}: {e}", endpoint.address())))?;
    let _ = tcp.set_nodelay(true);
    let name =
        ServerName::try_from(endpoint.host.clone()).map_err(|e| ClientError::Tls(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = hyper::Request::post(path)
        .header(hyper::header::HOST, endpoint.address())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let result = async {
        let req = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), max_answer)
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(Answer { status, body })
    }
    .await;
    driver.abort();
    result
}

/// A bearer `Authorization` header, marked sensitive (hyper keeps it out of `Debug`).
pub fn bearer(token: &str) -> Option<(HeaderName, HeaderValue)> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some((hyper::header::AUTHORIZATION, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_host_and_port() {
        for (url, want) in [
            ("https://hub.ns.svc:8443", Some("hub.ns.svc:8443")),
            ("https://hub.ns.svc/", Some("hub.ns.svc:443")),
            ("https://10.96.0.1:443", Some("10.96.0.1:443")),
            ("https://[fd00::1]:6443", Some("[fd00::1]:6443")),
            ("https://[fd00::1]", Some("[fd00::1]:443")),
            ("http://hub:80", None),
            ("https://hub:0", None),
            ("https://hub:x", None),
            ("https://hub/path", None),
            ("https://user@hub", None),
            ("https://", None),
            ("hub:443", None),
        ] {
            assert_eq!(
                Endpoint::parse(url).map(|e| e.address()).as_deref(),
                want,
                "{url}"
            );
        }
    }

    #[test]
    fn a_ca_bundle_needs_a_certificate() {
        assert_eq!(trusting(b"").unwrap_err(), CaError::Empty);
        assert_eq!(
            trusting(b"just text").unwrap_err(),
            CaError::Empty,
            "no PEM block"
        );
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(trusting(bad), Err(CaError::Unusable(_))));
    }

    #[test]
    fn a_bearer_header_is_sensitive() {
        let (name, value) = bearer("abc").unwrap();
        assert_eq!(name, hyper::header::AUTHORIZATION);
        assert!(value.is_sensitive());
        assert!(bearer("bad\ntoken").is_none());
    }
}
