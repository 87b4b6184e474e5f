//! A stub of the Kubernetes API for the hub's `--auth kubernetes`: HTTPS on a free loopback
//! port (a test CA), `POST /apis/authentication.k8s.io/v1/tokenreviews` answered from a
//! table of token → user, every review recorded. The Kubernetes API is not AWS, so a stub
//! stands in for it; AWS stays moto.

use super::hub::test_pki;
use super::sidecar::free_port;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The audience the stub's tokens are for unless a test says otherwise.
pub const AUDIENCE: &str = "ssm-injector-hub";

/// One TokenReview the stub received.
#[derive(Debug, Clone)]
pub struct Review {
    /// The caller's own token (the hub's service account token).
    pub caller: String,
    /// spec.token
    pub token: String,
    /// spec.audiences
    pub audiences: Vec<String>,
}

/// Who a token is: a username and the audiences it was issued for.
#[derive(Debug, Clone)]
struct User {
    username: String,
    audiences: Vec<String>,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, User>,
    /// The caller token the stub accepts (others get 401).
    caller: String,
    /// Answer every review with this HTTP status instead (e.g. 500).
    fail: Option<u16>,
    reviews: Vec<Review>,
}

/// The running stub; stopped when dropped.
pub struct KubeApi {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub port: u16,
    /// The CA file that signed its certificate.
    pub ca_file: PathBuf,
    state: Arc<Mutex<State>>,
    server: Arc<rustls::ServerConfig>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    _dir: tempfile::TempDir,
}

impl KubeApi {
    /// Starts it, accepting `caller_token` as the hub's own token.
    pub fn start(caller_token: &str) -> KubeApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = test_pki();
        let ca_file = dir.path().join("kube-ca.crt");
        std::fs::write(&ca_file, &ca).expect("write CA");
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        let port = free_port();
        let mut api = KubeApi {
            url: format!("https://127.0.0.1:{port}"),
            port,
            ca_file,
            state: Arc::new(Mutex::new(State {
                caller: caller_token.to_owned(),
                ..State::default()
            })),
            server: Arc::new(server),
            running: None,
            _dir: dir,
        };
        api.resume();
        api
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `token` authenticates as `username`, for the audience [`AUDIENCE`].
    pub fn user(&self, token: &str, username: &str) {
        self.user_for(token, username, &[AUDIENCE]);
    }

    /// `token` authenticates as `username` for these audiences only.
    pub fn user_for(&self, token: &str, username: &str, audiences: &[&str]) {
        self.state().users.insert(
            token.to_owned(),
            User {
                username: username.to_owned(),
                audiences: audiences.iter().map(|a| a.to_string()).collect(),
            },
        );
    }

    /// The hub's own token the stub accepts from now on.
    pub fn accept_caller(&self, token: &str) {
        self.state().caller = token.to_owned();
    }

    /// Answer every review with `status` (`None`: answer normally again).
    pub fn fail_with(&self, status: Option<u16>) {
        self.state().fail = status;
    }

    /// Every review received so far.
    pub fn reviews(&self) -> Vec<Review> {
        self.state().reviews.clone()
    }

    /// Stops listening: connections are refused until [`KubeApi::resume`].
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            // Wake the blocking accept.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = thread.join();
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        self.stop();
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the stub's port");
        let stop = Arc::new(AtomicBool::new(false));
        let (state, server, flag) = (self.state.clone(), self.server.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                let (state, server) = (state.clone(), server.clone());
                std::thread::spawn(move || serve(tcp, server, state));
            }
        });
        self.running = Some((stop, thread));
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request on one connection, then close.
fn serve(tcp: TcpStream, server: Arc<rustls::ServerConfig>, state: Arc<Mutex<State>>) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(server) else {
        return;
    };
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut request_line = String::new();
    if tls.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if tls.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if tls.read_exact(&mut body).is_err() {
        return;
    }
    let (status, answer) = answer(&request_line, &headers, &body, &state);
    let text = answer.to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let mut tls = tls.into_inner();
    let _ = tls.write_all(response.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn status_body(code: u16, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code})
}

/// What the API server would say.
fn answer(
    request_line: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    state: &Mutex<State>,
) -> (u16, Value) {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if !request_line.starts_with("POST /apis/authentication.k8s.io/v1/tokenreviews ") {
        return (
            404,
            status_body(404, "the server could not find the requested resource"),
        );
    }
    let caller = headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let review: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let token = review["spec"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let audiences: Vec<String> = review["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    state.reviews.push(Review {
        caller: caller.clone(),
        token: token.clone(),
        audiences: audiences.clone(),
    });
    if let Some(code) = state.fail {
        return (code, status_body(code, "etcdserver: request timed out"));
    }
    if caller != state.caller {
        return (401, status_body(401, "Unauthorized"));
    }
    // As the API server does: the spec comes back, token included.
    let status = match state.users.get(&token) {
        Some(user) => {
            let shared: Vec<&String> = audiences
                .iter()
                .filter(|a| user.audiences.contains(a))
                .collect();
            if shared.is_empty() {
                json!({"authenticated": false, "error": "[invalid bearer token, token audiences is invalid]"})
            } else {
                json!({"authenticated": true, "audiences": shared,
                       "user": {"username": user.username, "uid": "1234", "groups": ["system:authenticated"]}})
            }
        }
        None => {
            json!({"authenticated": false, "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]"})
        }
    };
    (
        201,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "metadata": {"creationTimestamp": null}, "spec": review["spec"], "status": status}),
    )
}
