//! Drives `tests/support/emulator.py`: moto's server and a fault-injecting, call-counting
//! proxy on free loopback ports, plus boto3 calls "from outside", over a JSON line protocol.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// One emulator process. It exits when this is dropped (its stdin closes).
pub struct Emulator {
    /// moto's own URL.
    pub moto: String,
    /// The proxy's URL (faults, call counts).
    pub proxy: String,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    child: Mutex<Child>,
}

/// The venv the repo's `scripts/setup-venv` creates.
pub fn venv() -> PathBuf {
    std::env::var_os("SSM_INJECTOR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

/// One emulator shared by the tests that neither inject faults nor count calls; they
/// keep apart by using [`super::unique_prefix`] names.
pub fn shared() -> &'static Emulator {
    static SHARED: OnceLock<Emulator> = OnceLock::new();
    SHARED.get_or_init(Emulator::start)
}

impl Emulator {
    /// Starts a private emulator (for tests that inject faults, count calls or stop it).
    pub fn start() -> Emulator {
        let python = venv().join("bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup-venv first (scripts/test does)",
            python.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/emulator.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("emulator's first line");
        let hello: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("emulator said {line:?}: {e}"));
        Emulator {
            moto: hello["moto"].as_str().expect("moto url").to_owned(),
            proxy: hello["proxy"].as_str().expect("proxy url").to_owned(),
            io: Mutex::new((stdin, stdout)),
            child: Mutex::new(child),
        }
    }

    /// Sends one command; returns its result or the emulator's error text.
    pub fn command(&self, cmd: Value) -> Result<Value, String> {
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        let (stdin, stdout) = &mut *io;
        writeln!(stdin, "{cmd}").expect("write to emulator");
        stdin.flush().expect("flush emulator stdin");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read from emulator");
        let answer: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("emulator said {line:?}: {e}"));
        if answer["ok"] == json!(true) {
            Ok(answer["result"].clone())
        } else {
            Err(answer["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned())
        }
    }

    /// A boto3 call against moto, as a user would make it; panics on error.
    pub fn aws(&self, service: &str, op: &str, args: Value) -> Value {
        self.try_aws(service, op, args.clone())
            .unwrap_or_else(|e| panic!("boto3 {service}.{op}({args}) failed: {e}"))
    }

    /// A boto3 call that may fail.
    pub fn try_aws(&self, service: &str, op: &str, args: Value) -> Result<Value, String> {
        self.command(json!({"cmd": "aws", "service": service, "op": op, "args": args}))
    }

    /// Puts a parameter (overwriting); returns its new version.
    pub fn put(&self, name: &str, value: &str, kind: &str) -> i64 {
        let r = self.aws(
            "ssm",
            "put_parameter",
            json!({"Name": name, "Value": value, "Type": kind, "Overwrite": true}),
        );
        r["Version"].as_i64().expect("Version")
    }

    /// Puts a String parameter.
    pub fn put_str(&self, name: &str, value: &str) -> i64 {
        self.put(name, value, "String")
    }

    /// Puts a SecureString parameter.
    pub fn put_secure(&self, name: &str, value: &str) -> i64 {
        self.put(name, value, "SecureString")
    }

    /// Creates a Secrets Manager secret.
    pub fn create_secret(&self, name: &str, value: &str) {
        self.aws(
            "secretsmanager",
            "create_secret",
            json!({"Name": name, "SecretString": value}),
        );
    }

    /// Replaces the proxy's fault rules (see emulator.py).
    pub fn faults(&self, rules: Value) {
        self.command(json!({"cmd": "faults", "rules": rules}))
            .expect("set faults");
    }

    /// Calls seen by the proxy, by operation.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let v = self.command(json!({"cmd": "calls"})).expect("calls");
        serde_json::from_value(v).expect("call counts")
    }

    /// Calls of one operation seen by the proxy.
    pub fn calls_of(&self, op: &str) -> u64 {
        self.calls().get(op).copied().unwrap_or(0)
    }

    /// Every request seen by the proxy, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        let v = self.command(json!({"cmd": "requests"})).expect("requests");
        serde_json::from_value(v).expect("requests")
    }

    pub fn reset_calls(&self) {
        self.command(json!({"cmd": "reset_calls"}))
            .expect("reset calls");
    }

    /// Stops moto (connections are refused until [`Emulator::start_moto`]).
    pub fn stop_moto(&self) {
        self.command(json!({"cmd": "stop"})).expect("stop moto");
    }

    pub fn start_moto(&self) {
        self.command(json!({"cmd": "start"})).expect("start moto");
    }
}

/// One request seen by the proxy.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Request {
    /// The operation (GetParameters, ...).
    pub op: String,
    /// Arrival time, Unix seconds.
    pub t: f64,
    /// The request body (first 4 KiB).
    pub body: String,
    /// Whether it asked for decrypted values (WithDecryption=true, GetSecretValue).
    #[serde(default)]
    pub decrypt: bool,
    /// Values it decrypted (SecureStrings answered).
    #[serde(default)]
    pub decrypted: u64,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}
