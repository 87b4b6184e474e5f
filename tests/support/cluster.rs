//! A real Kubernetes API server for tests: etcd and kube-apiserver (v1.36) from
//! `KUBEBUILDER_ASSETS` (the envtest convention: `kube-apiserver` and `etcd` in one
//! directory; `../shared/envtest/setup` makes one), on free loopback ports, with a fresh
//! PKI, an admin bearer token and the admission chain of a real cluster (ServiceAccount,
//! PodSecurity, mutating and validating webhooks). No controller-manager, scheduler or
//! kubelet: pods stay Pending, namespaces never finish deleting, and no `default`
//! ServiceAccount appears by itself ([`Cluster::namespace`] creates one).
//!
//! One server is shared by every test of the binary and lives until the test process
//! exits (its processes get `PR_SET_PDEATHSIG`). Tests keep apart by namespaces.
//!
//! Without `KUBEBUILDER_ASSETS` the tier is skipped with a note on stderr, unless
//! `SSM_INJECTOR_REQUIRE_ENVTEST=1` (set by `.ci/run`), which turns a missing server into a
//! failure.

use super::pki::Ca;
use super::sidecar::free_port;
use super::wait::poll_until;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What the skip note and the failure say.
pub const HOW_TO: &str = "the real-apiserver tier (tests/cluster_*.rs: injection through the \
chart's MutatingWebhookConfiguration, PodSecurity restricted, webhook outages, self-managed \
certificates, server-side dry-run of deploy/ and the chart, the hub's TokenReview) needs \
KUBEBUILDER_ASSETS=DIR, a directory holding kube-apiserver (v1.30+) and etcd: run \
`../shared/envtest/setup .tools/envtest` (or `setup-envtest use 1.36 -p path`) and export \
the KUBEBUILDER_ASSETS=... line it prints";

/// The running server.
pub struct Cluster {
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// The CA of the API server's serving certificate (PEM) and its file.
    pub ca_pem: String,
    pub ca_file: PathBuf,
    /// A kubeconfig for the admin user (`system:masters`), for kube clients and kubectl.
    pub kubeconfig: PathBuf,
    /// The admin's bearer token.
    pub admin_token: String,
    /// The service account issuer tokens carry.
    pub issuer: String,
    dir: PathBuf,
    _children: Mutex<Vec<Child>>,
}

/// The shared server, started on first use; `None` (after a note on stderr) when the
/// assets are missing and not required.
pub fn shared() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    SHARED
        .get_or_init(|| match assets() {
            Ok(dir) => Some(Cluster::start(&dir)),
            Err(why) => {
                if std::env::var("SSM_INJECTOR_REQUIRE_ENVTEST").as_deref() == Ok("1") {
                    panic!("SSM_INJECTOR_REQUIRE_ENVTEST=1 but {why}: {HOW_TO}");
                }
                eprintln!("note: skipping the real-apiserver tests: {why}; {HOW_TO}");
                None
            }
        })
        .as_ref()
}

/// A server of the calling test's own, for tests that change cluster-wide state other
/// tests must not see (CRDs); `None` as [`shared`]. Stopped when dropped.
pub fn private() -> Option<Cluster> {
    shared()?;
    assets().ok().map(|dir| Cluster::start(&dir))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self
            ._children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Returns the shared cluster, or returns from the calling test (skipped) without one.
#[macro_export]
macro_rules! require_cluster {
    () => {
        match $crate::support::cluster::shared() {
            Some(c) => c,
            None => return,
        }
    };
}

fn assets() -> Result<PathBuf, String> {
    let dir = std::env::var_os("KUBEBUILDER_ASSETS")
        .filter(|d| !d.is_empty())
        .ok_or("KUBEBUILDER_ASSETS is not set")?;
    let dir = PathBuf::from(dir);
    for bin in ["kube-apiserver", "etcd"] {
        if !dir.join(bin).is_file() {
            return Err(format!("KUBEBUILDER_ASSETS={} has no {bin}", dir.display()));
        }
    }
    Ok(dir)
}

/// Spawns `cmd` from one thread that lives as long as the test process, with
/// `PR_SET_PDEATHSIG(SIGKILL)`: the child dies with the tests, even when they are killed.
/// (The death signal follows the spawning *thread*, and test threads end early.)
pub fn spawn_kept(cmd: Command) -> Child {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("process-keeper".into())
            .spawn(move || {
                for (mut cmd, answer) in rx {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
                    // and exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = answer.send(cmd.spawn());
                }
                // The sender lives in a static: this thread never ends.
            })
            .expect("start the process keeper thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    let program = cmd.get_program().to_string_lossy().into_owned();
    keeper
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .expect("process keeper alive");
    rx.recv()
        .expect("process keeper answers")
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

impl Cluster {
    fn start(assets: &Path) -> Cluster {
        let dir = state_dir();
        let ca = Ca::new("envtest CA");
        let serving = ca.pair_for(
            "kube-apiserver",
            &[
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ],
        );
        let sa_key = rcgen::KeyPair::generate().expect("service account key");
        let admin_token = format!("{:032x}", fastrand::u128(..));
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
            p
        };
        let ca_file = write("ca.crt", &ca.pem());
        let cert = write("apiserver.crt", &serving.cert);
        let key = write("apiserver.key", &serving.key);
        let sa_private = write("sa.key", &sa_key.serialize_pem());
        let sa_public = write("sa.pub", &sa_key.public_key_pem());
        let tokens = write(
            "tokens.csv",
            &format!("{admin_token},envtest-admin,envtest-admin-uid,\"system:masters\"\n"),
        );

        let (etcd_port, peer_port, api_port) = distinct_ports();
        let etcd_log = std::fs::File::create(dir.join("etcd.log")).expect("etcd log");
        let mut etcd = Command::new(assets.join("etcd"));
        etcd.args([
            "--name=envtest",
            &format!("--data-dir={}", dir.join("etcd").display()),
            &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            &format!("--initial-cluster=envtest=http://127.0.0.1:{peer_port}"),
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",
            "--logger=zap",
            "--log-level=warn",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(etcd_log);
        let etcd = spawn_kept(etcd);

        let issuer = "https://kubernetes.default.svc.cluster.local".to_owned();
        let api_log = std::fs::File::create(dir.join("kube-apiserver.log")).expect("log");
        let mut api = Command::new(assets.join("kube-apiserver"));
        api.args([
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={api_port}"),
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--tls-cert-file={}", cert.display()),
            format!("--tls-private-key-file={}", key.display()),
            format!("--client-ca-file={}", ca_file.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--anonymous-auth=false".to_owned(),
            "--authorization-mode=RBAC".to_owned(),
            format!("--service-account-issuer={issuer}"),
            format!("--service-account-key-file={}", sa_public.display()),
            format!("--service-account-signing-key-file={}", sa_private.display()),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--endpoint-reconciler-type=none".to_owned(),
            "--profiling=false".to_owned(),
            "--v=1".to_owned(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(api_log);
        // etcd must answer before the API server's first connection attempt gives up.
        poll_until(Duration::from_secs(30), "etcd answers /health", || {
            super::sidecar::http(&format!("127.0.0.1:{etcd_port}"), "GET", "/health")
                .filter(|(status, body)| *status == 200 && body.contains("true"))
        });
        let api = spawn_kept(api);

        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = write(
            "kubeconfig",
            &serde_json::to_string_pretty(&json!({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "envtest", "cluster": {
                    "server": server,
                    "certificate-authority": ca_file,
                }}],
                "users": [{"name": "envtest-admin", "user": {"token": admin_token}}],
                "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "envtest-admin"}}],
                "current-context": "envtest",
            }))
            .expect("kubeconfig JSON"),
        );
        let cluster = Cluster {
            server,
            ca_pem: ca.pem(),
            ca_file,
            kubeconfig,
            admin_token,
            issuer,
            dir,
            _children: Mutex::new(vec![etcd, api]),
        };
        cluster.wait_ready();
        cluster
    }

    /// Waits (up to 3 minutes: a loaded CI machine) for `/readyz` to say ok.
    fn wait_ready(&self) {
        let tls = super::pki::client_config(&self.ca_pem);
        let addr = self.server.trim_start_matches("https://").to_owned();
        poll_until(Duration::from_secs(180), "kube-apiserver /readyz", || {
            for child in self
                ._children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter_mut()
            {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "etcd or kube-apiserver exited with {status}; logs in {}:\n{}",
                        self.dir.display(),
                        self.log_tail()
                    );
                }
            }
            let (status, body) =
                super::webhook::https_get(&tls, &addr, "/readyz", Some(&self.admin_token))?;
            (status == 200 && body.trim() == "ok").then_some(())
        });
    }

    /// The last lines of the API server's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("kube-apiserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A kube client as the admin. Create it inside the test's own tokio runtime.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig");
        kube::Client::try_from(config).expect("kube client")
    }

    /// Creates a fresh namespace `PREFIX-N` with `labels` and its `default` ServiceAccount
    /// (no controller-manager makes one here); returns its name.
    pub async fn namespace(
        &self,
        client: &kube::Client,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{}-{}-{}",
            prefix,
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("sa");
        Api::<ServiceAccount>::namespaced(client.clone(), &name)
            .create(&PostParams::default(), &sa)
            .await
            .unwrap_or_else(|e| panic!("create the default ServiceAccount in {name}: {e}"));
        name
    }
}

/// `CARGO_TARGET_TMPDIR/apiserver-PID-N`: the server's files (PKI, etcd data, logs) live as
/// long as the test process, and outlive it for a look at the logs; the directories of
/// test processes that are gone are removed here, so they never pile up.
fn state_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("apiserver-")
                .map(|rest| rest.split('-').next().unwrap_or(rest));
            if let Some(pid) = pid
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = root.join(format!(
        "apiserver-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the API server's state dir");
    dir
}

/// Three different free loopback ports.
fn distinct_ports() -> (u16, u16, u16) {
    let a = free_port();
    let mut b = free_port();
    while b == a {
        b = free_port();
    }
    let mut c = free_port();
    while c == a || c == b {
        c = free_port();
    }
    (a, b, c)
}
