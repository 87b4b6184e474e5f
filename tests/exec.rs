//! `ssm-injector exec` against moto: a real child process sees the values in its
//! environment, byte for byte, and ssm-injector leaves no wrapper process behind.

use crate::support::wait::within;
use crate::support::{Emulator, shared, unique_prefix};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `ssm-injector exec ARGS…` with a clean environment pointed at moto (like
/// `support::Run`, but spawned here so the test can see the pid and raw stdout bytes).
fn exec_cmd<S: AsRef<str>>(emu: &Emulator, args: impl IntoIterator<Item = S>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssm-injector"));
    cmd.arg("exec")
        .args(args.into_iter().map(|a| a.as_ref().to_owned()))
        .env_clear()
        .envs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            ),
            ("AWS_MAX_ATTEMPTS", "2"),
            ("AWS_ENDPOINT_URL", emu.moto.as_str()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

struct Finished {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Waits for the child (killed and failed after 60 s).
fn finish(mut child: Child) -> Finished {
    let exited = within(Duration::from_secs(60), || {
        child.try_wait().expect("wait").ok_or(())
    });
    if exited.is_err() {
        let _ = child.kill();
        panic!("ssm-injector exec did not finish within 60 s");
    }
    let out = child.wait_with_output().expect("output");
    Finished {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(cmd: &mut Command) -> Finished {
    finish(cmd.spawn().expect("spawn ssm-injector"))
}

/// `env -0` output as a map of raw bytes.
fn parse_env0(out: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    out.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let eq = e.iter().position(|b| *b == b'=').expect("KEY=VALUE");
            (e[..eq].to_vec(), e[eq + 1..].to_vec())
        })
        .collect()
}

fn get<'a>(env: &'a BTreeMap<Vec<u8>, Vec<u8>>, key: &str) -> Option<&'a [u8]> {
    env.get(key.as_bytes()).map(Vec::as_slice)
}

#[test]
fn values_with_newlines_quotes_and_non_ascii_reach_a_real_child_byte_for_byte() {
    let emu = shared();
    let p = unique_prefix("exec-env");
    let tricky = "pa ss'w\"o$rd`x`\\\n#=ü\t\r\nend ✓";
    emu.put_secure(&format!("{p}/db/password"), tricky);
    emu.put_str(&format!("{p}/apiKey"), "=leading equals=");
    emu.put_str(&format!("{p}/one"), "v1");
    let secret = format!("{}-exec", &p[1..].replace('/', "-"));
    emu.create_secret(&secret, r#"{"key":"sk_\"live\"\n1"}"#);

    let out = run(exec_cmd(
        emu,
        [
            "--path",
            &format!("{p}/"),
            "--param",
            &format!("EXPLICIT_one={p}/one"),
            "--param",
            &format!("STRIPE_KEY=/aws/reference/secretsmanager/{secret}#key"),
            "--",
            "/usr/bin/env",
            "-0",
        ],
    )
    .env("KEEP_ME", "kept"));

    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let env = parse_env0(&out.stdout);
    assert_eq!(get(&env, "DB_PASSWORD"), Some(tricky.as_bytes()));
    assert_eq!(get(&env, "API_KEY"), Some(&b"=leading equals="[..]));
    assert_eq!(get(&env, "ONE"), Some(&b"v1"[..]));
    assert_eq!(get(&env, "EXPLICIT_one"), Some(&b"v1"[..]));
    assert_eq!(get(&env, "STRIPE_KEY"), Some("sk_\"live\"\n1".as_bytes()));
    assert_eq!(get(&env, "KEEP_ME"), Some(&b"kept"[..]));
    assert!(get(&env, "PATH").is_some());
    assert!(!out.stderr.contains("pa ss"), "stderr:\n{}", out.stderr);
}

#[test]
fn the_command_replaces_ssm_injector_and_its_exit_code_is_passed_through() {
    let emu = shared();
    let p = unique_prefix("exec-pid");
    emu.put_str(&format!("{p}/v"), "x");

    let child = exec_cmd(
        emu,
        [
            "--param",
            &format!("V={p}/v"),
            "--",
            "bash",
            "-c",
            "echo $$ \"$V\"; exit 7",
        ],
    )
    .spawn()
    .expect("spawn");
    let pid = child.id();
    let out = finish(child);

    assert_eq!(out.code, Some(7), "stderr:\n{}", out.stderr);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{pid} x\n"));
}

#[test]
fn an_existing_variable_is_kept_and_a_clash_is_an_error_naming_it_before_any_call() {
    let emu = shared();
    let p = unique_prefix("exec-clash");
    emu.put_secure(&format!("{p}/home"), "s3cret-home-value");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");

    let out = run(exec_cmd(
        emu,
        [
            "--param",
            &format!("MY_HOME={p}/home"),
            "--",
            "bash",
            "-c",
            "touch \"$1\"",
            "_",
            marker.to_str().unwrap(),
        ],
    )
    .env("MY_HOME", "/home/original"));

    assert_eq!(out.code, Some(6), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("\"MY_HOME\"") && out.stderr.contains("--override"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret-home-value"));
    assert!(out.stdout.is_empty());
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn a_path_key_that_clashes_is_reported_after_the_fetch_and_the_command_never_runs() {
    let emu = shared();
    let p = unique_prefix("exec-path-clash");
    emu.put_secure(&format!("{p}/lang"), "s3cret-lang-value");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");

    let out = run(exec_cmd(
        emu,
        [
            "--path",
            &format!("{p}/"),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    )
    .env("LANG", "C"));

    assert_eq!(out.code, Some(6), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("\"LANG\""), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret-lang-value"));
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn with_override_the_spec_replaces_an_existing_variable() {
    let emu = shared();
    let p = unique_prefix("exec-override");
    emu.put_str(&format!("{p}/home"), "/from/ssm");

    let out = run(exec_cmd(
        emu,
        [
            "--override",
            "--param",
            &format!("MY_HOME={p}/home"),
            "--",
            "bash",
            "-c",
            "printf '%s' \"$MY_HOME\"",
        ],
    )
    .env("MY_HOME", "/home/original"));
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout, b"/from/ssm");

    let out = run(exec_cmd(
        emu,
        [
            "--param",
            &format!("MY_HOME={p}/home"),
            "--",
            "bash",
            "-c",
            "printf '%s' \"$MY_HOME\"",
        ],
    )
    .env("MY_HOME", "/home/original")
    .env("SSM_INJECTOR_OVERRIDE", "true"));
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout, b"/from/ssm");
}

#[test]
fn a_missing_parameter_exits_3_the_command_never_runs_and_no_value_is_printed() {
    let emu = shared();
    let p = unique_prefix("exec-missing");
    emu.put_secure(&format!("{p}/present"), "s3cret-present-value");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");

    let out = run(&mut exec_cmd(
        emu,
        [
            "--param",
            &format!("PRESENT={p}/present"),
            "--param",
            &format!("MISSING={p}/missing"),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    ));

    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{p}/missing")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret-present-value"));
    assert!(out.stdout.is_empty());
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn an_invalid_variable_name_is_an_error_naming_it() {
    let emu = shared();
    let p = unique_prefix("exec-invalid");
    emu.put_str(&format!("{p}/x"), "v");
    let out = run(&mut exec_cmd(
        emu,
        ["--param", &format!("BAD-KEY={p}/x"), "--", "true"],
    ));
    assert_eq!(out.code, Some(6), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("\"BAD-KEY\""), "{}", out.stderr);
}

#[test]
fn a_command_that_does_not_exist_exits_127_naming_it() {
    let emu = shared();
    let p = unique_prefix("exec-notfound");
    emu.put_str(&format!("{p}/x"), "v");
    let out = run(&mut exec_cmd(
        emu,
        [
            "--param",
            &format!("X={p}/x"),
            "--",
            "no-such-command-ssm-injector",
        ],
    ));
    assert_eq!(out.code, Some(127), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("no-such-command-ssm-injector")
            && out.stderr.contains("command not found"),
        "{}",
        out.stderr
    );
}
