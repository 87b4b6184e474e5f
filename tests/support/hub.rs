//! A real `ssm-injector hub` process for tests: HTTPS with a test CA (rcgen), reading
//! versions from the emulator through its counting proxy.

use super::Emulator;
use super::run::clean_env;
use super::sidecar::{free_port, poll_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A test CA and a server certificate it signs for localhost and 127.0.0.1, as PEM:
/// `(ca, server certificate, server key)`.
pub fn test_pki() -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "hub test CA");
    let issuer = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().expect("key"))
        .expect("CA");
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("server params");
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert = server.signed_by(&key, &issuer).expect("signed");
    (issuer.pem(), cert.pem(), key.serialize_pem())
}

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
    endpoint: String,
}

impl HubProcess {
    /// Starts `ssm-injector hub --interval INTERVAL ARGS…` on a free loopback port and waits
    /// until the port accepts connections.
    pub fn start(emu: &Emulator, interval: &str, args: &[&str]) -> HubProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = test_pki();
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, &ca).expect("write ca");
        std::fs::write(dir.path().join("tls.crt"), cert).expect("write cert");
        std::fs::write(dir.path().join("tls.key"), key).expect("write key");
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
            endpoint: emu.proxy.clone(),
        };
        hub.restart();
        hub
    }

    /// The hub's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
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

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
