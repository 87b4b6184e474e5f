//! Runs the real `ssm-injector` binary with a clean environment pointed at the emulator.

use super::Emulator;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A finished run.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with the output unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code; stderr:\n{}",
            self.stderr
        );
        self
    }

    /// Panics unless stderr contains every one of `parts`.
    pub fn assert_stderr_has(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr lacks {p:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// The whole environment a test run of the binary gets: dummy credentials, region
/// us-east-1, no profile, no IMDS, two attempts per call, and PATH.
pub fn clean_env() -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_MAX_ATTEMPTS", "2"),
        ("AWS_RETRY_MODE", "standard"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(path) = std::env::var_os("PATH") {
        env.insert("PATH".into(), path.to_string_lossy().into_owned());
    }
    env
}

/// A command line for the binary. The environment is cleared: only what the test sets
/// (plus PATH) reaches it, so nothing on the machine (AWS profiles, IMDS) interferes.
pub struct Run {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    timeout: Duration,
}

impl Run {
    /// `ssm-injector ARGS…` with dummy credentials and no endpoint yet.
    pub fn new<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> Run {
        let env = clean_env();
        Run {
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env,
            timeout: Duration::from_secs(60),
        }
    }

    /// `ssm-injector render ARGS…` against the emulator's moto.
    pub fn render<S: AsRef<str>>(emu: &Emulator, args: impl IntoIterator<Item = S>) -> Run {
        let mut all = vec!["render".to_owned()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        Run::new(all).endpoint(&emu.moto)
    }

    pub fn endpoint(self, url: &str) -> Run {
        self.env("AWS_ENDPOINT_URL", url)
    }

    /// Through the fault proxy instead of straight to moto.
    pub fn via_proxy(self, emu: &Emulator) -> Run {
        self.endpoint(&emu.proxy)
    }

    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn env_remove(mut self, key: &str) -> Run {
        self.env.remove(key);
        self
    }

    pub fn arg(mut self, a: impl AsRef<str>) -> Run {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// Runs to completion (killed after the timeout, which fails the test).
    pub fn run(&self) -> Output {
        self.run_in(Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    pub fn run_in(&self, dir: &Path) -> Output {
        let child = Command::new(env!("CARGO_BIN_EXE_ssm-injector"))
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssm-injector");
        let pid = child.id();
        // Both pipes are drained while the child runs (wait_with_output), so a chatty
        // child never blocks on a full pipe; the deadline is kept from here.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(self.timeout) {
            Ok(out) => out.expect("collect ssm-injector output"),
            Err(_) => {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!(
                    "ssm-injector {:?} did not finish within {:?}",
                    self.args, self.timeout
                );
            }
        };
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `kill -SIG pid` (through the `kill` command, as a user would); panics if it fails.
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}
