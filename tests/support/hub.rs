//! A real `ssm-injector hub` process for tests: HTTPS with a certificate of the test CA
//! ([`super::pki`]), reading versions from the emulator through its counting proxy, and an
//! HTTPS client for it (watch requests with or without a bearer token, `/metrics`).

use super::Emulator;
use super::pki::Ca;
use super::run::clean_env;
use super::sidecar::{free_port, metric_value};
use super::wait::{eventually, poll_until};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// The `/metrics` gauge of the watch requests the hub holds now.
pub const WAITING: &str = "ssm_injector_hub_waiting_clients";

/// A running hub; killed when dropped.
pub struct HubProcess {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `https://localhost:PORT`.
    pub url: String,
    /// The file holding the CA that signed its certificate (PEM).
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    endpoint: String,
    tls: TlsConnector,
    ca: Ca,
}

impl HubProcess {
    /// Starts `ssm-injector hub --interval INTERVAL ARGS…` on a free loopback port and waits
    /// until the port accepts connections.
    pub fn start(emu: &Emulator, interval: &str, args: &[&str]) -> HubProcess {
        HubProcess::start_with_env(emu, interval, args, &[])
    }

    /// Like [`HubProcess::start`], with these environment variables added.
    pub fn start_with_env(
        emu: &Emulator,
        interval: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> HubProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("hub test CA");
        let pair = ca.server_pair("hub");
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).expect("write ca");
        std::fs::write(dir.path().join("tls.crt"), pair.cert).expect("write cert");
        std::fs::write(dir.path().join("tls.key"), pair.key).expect("write key");
        let port = free_port();
        let mut all: Vec<String> = ["hub", "--interval", interval]
            .iter()
            .map(|s| s.to_string())
            .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        let mut hub = HubProcess {
            child: None,
            addr: format!("127.0.0.1:{port}"),
            url: format!("https://localhost:{port}"),
            ca_file,
            dir,
            args: all,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            endpoint: emu.proxy.clone(),
            tls: TlsConnector::from(ca.client_config()),
            ca,
        };
        hub.restart();
        hub
    }

    /// The hub's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The process id (for its `/proc/PID/status`), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the hub (SIGKILL); the port then refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `kill -SIG pid` (through the `kill` command, as a user would).
    pub fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("the hub runs");
        super::run::send_signal(child.id(), sig);
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Writes a new pair of the same CA into its certificate files; returns the new
    /// certificate.
    pub fn rotate_certificate(&self, cn: &str) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        let pair = self.ca.server_pair(cn);
        std::fs::write(self.dir().join("tls.crt"), &pair.cert).expect("write cert");
        std::fs::write(self.dir().join("tls.key"), &pair.key).expect("write key");
        CertificateDer::from_pem_slice(pair.cert.as_bytes()).expect("PEM certificate")
    }

    /// The certificate a new TLS handshake gets, `None` if nothing answers.
    pub async fn served_certificate(&self) -> Option<CertificateDer<'static>> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.ok()?;
        let name = ServerName::try_from("localhost").ok()?;
        let tls = self.tls.connect(name, tcp).await.ok()?;
        Some(
            tls.get_ref()
                .1
                .peer_certificates()?
                .first()?
                .clone()
                .into_owned(),
        )
    }

    /// Starts it again on the same port, certificate and arguments.
    pub fn restart(&mut self) {
        self.kill();
        let d = self.dir().to_path_buf();
        let child = Command::new(env!("CARGO_BIN_EXE_ssm-injector"))
            .args(&self.args)
            .arg("--listen")
            .arg(&self.addr)
            .arg("--cert")
            .arg(d.join("tls.crt"))
            .arg("--key")
            .arg(d.join("tls.key"))
            .env_clear()
            .envs(clean_env())
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("RUST_LOG", "ssm_injector=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr.log")).expect("stderr file"))
            .spawn()
            .expect("spawn ssm-injector hub");
        self.child = Some(child);
        let addr = self.addr.clone();
        poll_until(Duration::from_secs(30), "the hub's port", || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("hub exited with {status}:\n{}", self.log());
            }
            std::net::TcpStream::connect(&addr).ok().map(|_| ())
        });
    }
}

/// The client side: one request per TLS connection, as the sidecar makes them.
impl HubProcess {
    /// One request: `(status, body)`, `None` on transport errors.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        bearer: Option<&str>,
    ) -> Option<(u16, String)> {
        self.send_from(None, method, path, body, bearer).await
    }

    /// [`HubProcess::send`] from the loopback address `from` (e.g. 127.0.0.2: another
    /// client address for the hub), or the default one.
    pub async fn send_from(
        &self,
        from: Option<std::net::IpAddr>,
        method: &str,
        path: &str,
        body: Vec<u8>,
        bearer: Option<&str>,
    ) -> Option<(u16, String)> {
        let tcp = match from {
            None => tokio::net::TcpStream::connect(&self.addr).await.ok()?,
            Some(ip) => {
                let socket = tokio::net::TcpSocket::new_v4().ok()?;
                socket.bind((ip, 0).into()).ok()?;
                socket.connect(self.addr.parse().ok()?).await.ok()?
            }
        };
        let name = ServerName::try_from("localhost").ok()?;
        let tls = self.tls.connect(name, tcp).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .ok()?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Full::new(Bytes::from(body))).ok()?;
        let resp = sender.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A TLS connection to the hub, for a test that writes its own bytes.
    pub async fn connect(&self) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.ok()?;
        let name = ServerName::try_from("localhost").ok()?;
        self.tls.connect(name, tcp).await.ok()
    }

    /// POSTs a watch request whose headers declare `declared` body bytes but sends only
    /// `prefix` of it, then reads the answer: what a server that refuses by the declared
    /// size answers, with no race against the client's own writes (a client still sending a
    /// large body may see the connection close before it reads the answer).
    pub async fn send_declared(&self, declared: usize, prefix: &[u8]) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.ok()?;
        let name = ServerName::try_from("localhost").ok()?;
        let mut tls = self.tls.connect(name, tcp).await.ok()?;
        let head = format!(
            "POST /v1/watch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {declared}\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await.ok()?;
        tls.write_all(prefix).await.ok()?;
        tls.flush().await.ok()?;
        let mut raw = Vec::new();
        // The server closes after its answer; an unclean close still leaves the answer read.
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        // The body may be chunked; the JSON object is the part between the first { and last }.
        let json = body
            .find('{')
            .and_then(|a| body.rfind('}').map(|b| body[a..=b].to_owned()))
            .unwrap_or_default();
        Some((status, json))
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        self.send("GET", path, Vec::new(), None).await
    }

    /// POSTs a watch request without a token; `(status, JSON body)`.
    pub async fn watch(&self, body: &Value) -> (u16, Value) {
        self.watch_as(None, body).await
    }

    /// POSTs a watch request with `Authorization: Bearer TOKEN`; `(status, JSON body)`.
    pub async fn watch_as(&self, bearer: Option<&str>, body: &Value) -> (u16, Value) {
        self.watch_raw(bearer, body.to_string().into_bytes()).await
    }

    pub async fn watch_raw(&self, bearer: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let (status, text) = self
            .send("POST", "/v1/watch", body, bearer)
            .await
            .unwrap_or_else(|| panic!("no answer from the hub:\n{}", self.log()));
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        (status, v)
    }

    /// One series of `/metrics` (`None` if unanswered or absent).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await?;
        metric_value(&text, series)
    }

    /// Waits until the hub holds at least `n` watch requests ([`WAITING`]): what a test
    /// waits for before it makes the change that must wake them.
    pub async fn wait_holding(&self, n: f64, limit: Duration) {
        let what = format!("the hub holding {n} watch requests");
        eventually(limit, &what, || async {
            (self.metric(WAITING).await? >= n).then_some(())
        })
        .await;
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
