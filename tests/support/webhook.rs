//! A real `ssm-injector webhook` process for tests: HTTPS on a free loopback port with a
//! certificate from the test CA ([`super::pki`]), a blocking HTTP/1.1-over-TLS client for
//! it, and [`https_get`] for any loopback HTTPS server (the API server's `/readyz`).

use super::pki::{Ca, Pair};
use super::sidecar::free_port;
use super::wait::poll_until;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The running binary; killed when dropped.
pub struct Webhook {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its command line.
    pub args: Vec<String>,
    stderr: PathBuf,
    /// The certificate and key files it serves (rewrite them to rotate).
    pub cert: PathBuf,
    pub key: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    _dir: tempfile::TempDir,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a pair into the certificate and key files.
pub fn write_pair(cert: &Path, key: &Path, pair: &Pair) {
    std::fs::write(cert, &pair.cert).expect("write cert");
    std::fs::write(key, &pair.key).expect("write key");
}

impl Webhook {
    /// Starts `ssm-injector webhook` with a fresh pair from `ca` and waits until it answers.
    pub fn start(ca: &Ca, pair: &Pair) -> Webhook {
        Webhook::start_with(ca, pair, None)
    }

    /// As [`Webhook::start`], with `config` as its `--config` file when given.
    pub fn start_with(ca: &Ca, pair: &Pair, config: Option<&str>) -> Webhook {
        let mut args: Vec<String> = [
            "webhook",
            "--cert=/tls/tls.crt",
            "--key=/tls/tls.key",
            "--listen=0.0.0.0:8443",
            "--cert-check-interval=100ms",
        ]
        .map(str::to_owned)
        .to_vec();
        if config.is_some() {
            args.push("--config=/config/config.yaml".to_owned());
        }
        Webhook::start_chart(ca, pair, config.unwrap_or(""), &args)
    }

    /// Starts the webhook with `args` as a pod would run it (the chart's Deployment): files
    /// under `/tls/` (the pair) and `/config/` (`config` as `config.yaml`) live in a temp
    /// dir, and `--listen` becomes a free loopback port.
    pub fn start_chart(ca: &Ca, pair: &Pair, config: &str, args: &[String]) -> Webhook {
        let mut w = Webhook::spawn(ca.client_config(), Some(pair), config, args, &[]);
        w.wait_healthy();
        w
    }

    /// Starts the process as [`Webhook::start_chart`] does (the pair only when given, `env`
    /// added to an empty environment; a `--listen=127.0.0.1:PORT` is kept) without waiting
    /// for it; `tls` is what the client trusts ([`Webhook::trust`] changes it).
    pub fn spawn(
        tls: Arc<rustls::ClientConfig>,
        pair: Option<&Pair>,
        config: &str,
        args: &[String],
        env: &[(&str, &Path)],
    ) -> Webhook {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("tls")).expect("mkdir");
        std::fs::create_dir_all(root.join("config")).expect("mkdir");
        let (cert, key) = (root.join("tls/tls.crt"), root.join("tls/tls.key"));
        if let Some(pair) = pair {
            write_pair(&cert, &key, pair);
        }
        std::fs::write(root.join("config/config.yaml"), config).expect("write config");
        let addr = args
            .iter()
            .find_map(|a| a.strip_prefix("--listen=127.0.0.1:"))
            .map_or_else(
                || format!("127.0.0.1:{}", free_port()),
                |p| format!("127.0.0.1:{p}"),
            );
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.split_once('=') {
                Some(("--listen", _)) => format!("--listen={addr}"),
                Some((flag, path)) if path.starts_with("/tls/") || path.starts_with("/config/") => {
                    format!("{flag}={}", root.join(&path[1..]).display())
                }
                _ => a.clone(),
            })
            .collect();
        let stderr = root.join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssm-injector"));
        cmd.args(&args)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = super::cluster::spawn_kept(cmd);
        Webhook {
            child,
            addr,
            args,
            stderr,
            cert,
            key,
            tls,
            _dir: dir,
        }
    }

    /// Waits until `/healthz` answers over TLS (the client's trust), failing the test if
    /// the process exits first.
    pub fn wait_healthy(&mut self) {
        poll_until(
            Duration::from_secs(30),
            "the webhook answers /healthz",
            || {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!(
                        "webhook {:?} exited with {status}:\n{}",
                        self.args,
                        self.log()
                    );
                }
                self.connect()
                    .and_then(|mut c| c.request("GET", "/healthz", ""))
                    .filter(|(status, _)| *status == 200)
            },
        );
    }

    /// From now on the client trusts only the CAs of `ca_pem`.
    pub fn trust(&mut self, ca_pem: &str) {
        self.tls = super::pki::client_config(ca_pem);
    }

    /// Waits (at most `limit`) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        poll_until(limit, "the webhook exits", || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `kill -SIG pid` (through the `kill` command, as a user would).
    pub fn signal(&self, sig: &str) {
        super::run::send_signal(self.child.id(), sig);
    }

    /// The process id (for its `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A fresh TLS connection (handshake done), or `None` if nothing answers.
    pub fn connect(&self) -> Option<Conn> {
        let tcp = TcpStream::connect(&self.addr).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        tcp.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
        let name = ServerName::try_from("localhost").ok()?;
        let client = rustls::ClientConnection::new(self.tls.clone(), name).ok()?;
        let mut stream = rustls::StreamOwned::new(client, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).ok()?;
        }
        Some(Conn {
            stream: BufReader::new(stream),
        })
    }

    /// POSTs a review on a new connection; the answer's JSON.
    pub fn review(&self, review: &Value) -> Value {
        let (status, body) = self
            .connect()
            .and_then(|mut c| c.request("POST", "/mutate", &review.to_string()))
            .unwrap_or_else(|| panic!("no answer from the webhook:\n{}", self.log()));
        assert_eq!(status, 200, "{body}\n{}", self.log());
        serde_json::from_str(&body).expect("a JSON review")
    }
}

/// One keep-alive HTTP/1.1 connection over TLS.
pub struct Conn {
    stream: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl Conn {
    /// `(status, body)`, or `None` on any transport error.
    pub fn request(&mut self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        self.send(method, path, body.len(), body)
    }

    /// Sends headers declaring `declared` body bytes and no body; then reads the answer.
    pub fn declare(&mut self, method: &str, path: &str, declared: usize) -> Option<(u16, String)> {
        self.send(method, path, declared, "")
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        declared: usize,
        body: &str,
    ) -> Option<(u16, String)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {declared}\r\n\r\n"
        );
        let out = self.stream.get_mut();
        out.write_all(head.as_bytes()).ok()?;
        out.write_all(body.as_bytes()).ok()?;
        out.flush().ok()?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).ok()?;
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok()?;
            }
        }
        let mut buf = vec![0; length];
        self.stream.read_exact(&mut buf).ok()?;
        Some((status, String::from_utf8(buf).ok()?))
    }

    pub fn peer_certificate(&self) -> CertificateDer<'static> {
        self.stream
            .get_ref()
            .conn
            .peer_certificates()
            .expect("peer certificates")[0]
            .clone()
            .into_owned()
    }
}

/// One blocking HTTPS GET on a fresh connection to `addr` (`HOST:PORT`, certificate checked
/// for `localhost`/IP as given), with an optional bearer token: `(status, body)` or `None`.
pub fn https_get(
    tls: &Arc<rustls::ClientConfig>,
    addr: &str,
    path: &str,
    bearer: Option<&str>,
) -> Option<(u16, String)> {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    let tcp = TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    tcp.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    let name = ServerName::try_from(host.to_owned()).ok()?;
    let client = rustls::ClientConnection::new(tls.clone(), name).ok()?;
    let mut stream = rustls::StreamOwned::new(client, tcp);
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    // A close_notify-less end is fine for a Connection: close answer.
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}
