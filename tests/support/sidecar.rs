//! The binary in sidecar mode (`render --watch`): spawned with the same clean environment
//! as [`super::Run`], kept running, killed when dropped; plus a tiny HTTP/1.1 client for its
//! admin port.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wait::{poll_until, within};

/// A loopback port for a server the test starts: free now, and never handed out twice in
/// this process. It comes from below the kernel's ephemeral range, so no `bind(:0)` and no
/// outgoing connection of any process (moto, etcd, the apiserver, the binary under test) can
/// take it between this call and the server's own bind; asking the kernel for port 0 and
/// closing it did exactly that under a loaded CI run (`Address already in use`).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .clamp(12000, 65000);
    let (base, span) = (10000, low - 10000);
    // Different test binaries of one run start at different places in the range.
    let start = std::process::id() * 997 % span;
    for _ in 0..span {
        let port = base + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).expect("ports stay below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}")
}

/// One HTTP/1.1 exchange on loopback: `(status, body)`, or `None` if nothing answered
/// (connection refused, reset or timed out).
pub fn http(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    let sock = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of one series in an OpenMetrics text, e.g.
/// `ssm_injector_polls_total{outcome="ok"}`; `None` if the series is not there.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// How to start a sidecar.
pub struct SidecarCmd {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    listen: bool,
    /// `--listen` at this address instead of a free port.
    listen_at: Option<String>,
    /// `exec --watch`'s command, after `--`.
    command: Vec<String>,
}

impl SidecarCmd {
    /// `ssm-injector render --watch` against `endpoint` (moto or the proxy), with the
    /// clean environment of [`super::Run`] and an admin port on a free loopback port.
    pub fn new(endpoint: &str) -> SidecarCmd {
        let mut env = super::run::clean_env();
        env.insert("AWS_ENDPOINT_URL".into(), endpoint.to_owned());
        SidecarCmd {
            args: vec!["render".into(), "--watch".into()],
            env,
            listen: true,
            listen_at: None,
            command: Vec::new(),
        }
    }

    /// `ssm-injector exec --watch … -- COMMAND…` against `endpoint`, otherwise as
    /// [`SidecarCmd::new`].
    pub fn exec_watch<S: AsRef<str>>(
        endpoint: &str,
        command: impl IntoIterator<Item = S>,
    ) -> SidecarCmd {
        let mut cmd = SidecarCmd::new(endpoint);
        cmd.args = vec!["exec".into(), "--watch".into()];
        cmd.command = command.into_iter().map(|a| a.as_ref().to_owned()).collect();
        cmd
    }

    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> SidecarCmd {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable of the sidecar.
    pub fn env(mut self, key: &str, value: &str) -> SidecarCmd {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// `--listen off`: no admin port.
    pub fn no_listen(mut self) -> SidecarCmd {
        self.listen = false;
        self
    }

    /// `--listen ADDR`: the admin port at `addr` (one in use, for instance).
    pub fn listen_at(mut self, addr: &str) -> SidecarCmd {
        self.listen_at = Some(addr.to_owned());
        self
    }

    /// Starts it (stdout and stdin closed, stderr collected in the background).
    pub fn spawn(self) -> Sidecar {
        let addr = match self.listen_at {
            Some(at) => Some(at),
            None => self.listen.then(|| format!("127.0.0.1:{}", free_port())),
        };
        let mut args = self.args;
        args.push("--listen".into());
        args.push(addr.clone().unwrap_or_else(|| "off".into()));
        if !self.command.is_empty() {
            args.push("--".into());
            args.extend(self.command);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssm-injector"))
            .args(&args)
            .env_clear()
            .envs(&self.env)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssm-injector");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&text);
            }
        });
        Sidecar {
            child,
            addr,
            stderr,
            args,
            status: None,
        }
    }
}

/// A running sidecar; killed (SIGKILL) and reaped when dropped.
pub struct Sidecar {
    child: Child,
    /// The admin address (`127.0.0.1:PORT`), unless started with `--listen off`.
    pub addr: Option<String>,
    stderr: Arc<Mutex<String>>,
    args: Vec<String>,
    status: Option<ExitStatus>,
}

impl Sidecar {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Panics (with its stderr) if it has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(st) = self.exited() {
            panic!(
                "ssm-injector {:?} exited ({st}); stderr:\n{}",
                self.args,
                self.stderr()
            );
        }
    }

    fn admin(&self) -> &str {
        self.addr.as_deref().expect("started with --listen off")
    }

    /// `GET path` on the admin port; `None` if it does not answer (yet).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http(self.admin(), "GET", path)
    }

    /// The `/metrics` text, if the admin port answers 200.
    pub fn metrics(&self) -> Option<String> {
        match self.get("/metrics")? {
            (200, body) => Some(body),
            _ => None,
        }
    }

    /// One series of `/metrics` (`None` if unanswered or absent).
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics()?, series)
    }

    /// Waits until `/readyz` answers 200 (panics with stderr if it exits first).
    #[track_caller]
    pub fn wait_ready(&mut self, limit: Duration) {
        let ready = within(limit, || {
            self.assert_running();
            match self.get("/readyz") {
                Some((200, _)) => Ok(()),
                other => Err(other),
            }
        });
        if let Err(last) = ready {
            panic!(
                "not ready within {limit:?} (last answer {last:?}); stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Waits until `ssm_injector_polls_total{outcome="ok"}` reaches at least `n`.
    #[track_caller]
    pub fn wait_ok_polls(&mut self, n: f64, limit: Duration) -> f64 {
        let polls = within(limit, || {
            self.assert_running();
            let got = self
                .metric(r#"ssm_injector_polls_total{outcome="ok"}"#)
                .unwrap_or(0.0);
            if got >= n { Ok(got) } else { Err(got) }
        });
        match polls {
            Ok(got) => got,
            Err(got) => panic!(
                "only {got} good polls (wanted {n}) within {limit:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Sends `kill -SIG pid` (through the `kill` command, as a user would).
    pub fn signal(&self, sig: &str) {
        super::run::send_signal(self.pid(), sig);
    }

    /// Waits for the exit (panics with stderr after `limit`).
    #[track_caller]
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let what = format!("ssm-injector {:?} to exit", self.args);
        poll_until(limit, &what, || self.exited())
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Names in `dir` that look like a single-file writer's temp files for `name`
/// (`.NAME.tmp-*`).
pub fn temp_leftovers(dir: &Path, name: &str) -> Vec<String> {
    let prefix = format!(".{name}.tmp-");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}
