//! `render --watch --serve`: the local endpoint compatible with the AWS Parameters and
//! Secrets Lambda Extension, read by Lambda-style Python code (`tests/clients/
//! extension_client.py`: urllib, the token from AWS_SESSION_TOKEN, the port from
//! PARAMETERS_SECRETS_EXTENSION_HTTP_PORT) against a sidecar on moto, values rotated from
//! outside with boto3.

use crate::support::emulator::venv;
use crate::support::sidecar::{Sidecar, SidecarCmd, free_port};
use crate::support::wait::within;
use crate::support::{Emulator, shared, unique_prefix};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const READY: Duration = Duration::from_secs(30);
const TOKEN: &str = "t0ken-from-the-task";
const PARAM: &str = "/systemsmanager/parameters/get";
const SECRET: &str = "/secretsmanager/get";

/// Runs the Python client with `reads` ([path, {query}, token or null]); one answer each.
fn read(port: u16, reads: Value) -> Vec<Value> {
    let out = Command::new(venv().join("bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/extension_client.py"
        ))
        .arg(reads.to_string())
        .env_clear()
        .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string())
        .env("AWS_SESSION_TOKEN", TOKEN)
        .output()
        .expect("run the python client");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// One read.
fn read_one(port: u16, path: &str, query: Value) -> Value {
    read(port, json!([[path, query, null]])).remove(0)
}

struct Setup {
    emu: &'static Emulator,
    prefix: String,
    secret: String,
    port: u16,
    sc: Sidecar,
    _dir: tempfile::TempDir,
}

/// A sidecar with `/P/app/db` (SecureString) named, `/P/app/` as a path, a secret
/// referenced, `/P/shared/` allowed on demand, serving on a free port; ready.
fn setup(extra: &[&str], env: &[(&str, &str)]) -> Setup {
    let emu = shared();
    let prefix = unique_prefix("serve");
    emu.put_secure(&format!("{prefix}/app/db"), "db-1");
    emu.put_str(&format!("{prefix}/app/plain"), "plain-1");
    emu.put_str(&format!("{prefix}/shared/flag"), "on");
    emu.put_str(&format!("{prefix}/other/x"), "nope");
    let secret = format!("{}-api", prefix.trim_start_matches('/').replace('/', "-"));
    emu.create_secret(&secret, r#"{"key":"k-1"}"#);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = SidecarCmd::new(&emu.moto)
        .args([
            "--output",
            &dir.path().join("app.env").display().to_string(),
            "--param",
            &format!("DB={prefix}/app/db"),
            "--param",
            &format!("API=/aws/reference/secretsmanager/{secret}"),
            "--path",
            &format!("{prefix}/app/"),
            "--serve",
            &format!("127.0.0.1:{port}"),
            "--serve-allow",
            &format!("{prefix}/shared/"),
        ])
        .args(extra)
        .env("AWS_SESSION_TOKEN", TOKEN);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let mut sc = cmd.spawn();
    sc.wait_ready(READY);
    Setup {
        emu,
        prefix,
        secret,
        port,
        sc,
        _dir: dir,
    }
}

#[test]
fn lambda_style_code_reads_watched_values_with_no_aws_call_and_sees_rotations_at_the_next_poll() {
    let s = setup(&["--interval", "1s", "--jitter", "0"], &[]);
    let p = &s.prefix;
    let got = read_one(
        s.port,
        PARAM,
        json!({"name": format!("{p}/app/db"), "withDecryption": "true"}),
    );
    assert_eq!(got["status"], 200, "{got}");
    let param = &got["body"]["Parameter"];
    assert_eq!(param["Value"], "db-1");
    assert_eq!(param["Name"], format!("{p}/app/db"));
    assert_eq!(param["Type"], "SecureString");
    assert_eq!(param["Version"], 1);
    assert!(
        param["ARN"]
            .as_str()
            .is_some_and(|a| a.ends_with(&format!("parameter{p}/app/db"))),
        "{param}"
    );
    assert!(
        param["LastModifiedDate"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z')),
        "{param}"
    );
    assert_eq!(got["body"]["ResultMetadata"], json!({}));
    // Under the spec's path, a String, without decryption.
    let got = read_one(s.port, PARAM, json!({"name": format!("{p}/app/plain")}));
    assert_eq!(got["body"]["Parameter"]["Value"], "plain-1", "{got}");
    // The secret the spec references.
    let got = read_one(s.port, SECRET, json!({"secretId": s.secret}));
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["body"]["SecretString"], r#"{"key":"k-1"}"#);
    assert_eq!(got["body"]["Name"], s.secret);
    assert_eq!(got["body"]["VersionStages"], json!(["AWSCURRENT"]));

    // Rotated from outside: the next poll's value, well within the extension's 300 s TTL.
    s.emu.put_secure(&format!("{p}/app/db"), "db-2");
    let rotated = within(Duration::from_secs(20), || {
        let got = read_one(
            s.port,
            PARAM,
            json!({"name": format!("{p}/app/db"), "withDecryption": "true"}),
        );
        if got["body"]["Parameter"]["Value"] == "db-2" {
            Ok(got)
        } else {
            Err(got)
        }
    });
    let got = rotated.unwrap_or_else(|g| panic!("still {g} after 20 s; {}", s.sc.stderr()));
    assert_eq!(got["body"]["Parameter"]["Version"], 2);
    assert!(
        !s.sc.stderr().contains("db-1") && !s.sc.stderr().contains("db-2"),
        "a value in the log"
    );
}

#[test]
fn a_watched_read_makes_no_aws_call() {
    let mut s = setup(&["--interval", "1h"], &[]);
    s.sc.wait_ok_polls(1.0, READY);
    let calls = |sc: &Sidecar| -> f64 {
        let text = sc.metrics().unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("ssm_injector_api_calls_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let before = calls(&s.sc);
    let name = format!("{}/app/db", s.prefix);
    let reads: Vec<Value> = (0..50)
        .map(|_| json!([PARAM, {"name": name, "withDecryption": "true"}, null]))
        .collect();
    let answers = read(s.port, json!(reads));
    assert!(answers.iter().all(|a| a["status"] == 200), "{answers:?}");
    assert_eq!(calls(&s.sc), before, "AWS was called for watched reads");
}

#[test]
fn the_token_the_spec_and_the_request_are_checked_as_the_extension_and_agent_do() {
    let s = setup(&["--interval", "1h"], &[]);
    let p = &s.prefix;
    let db = json!({"name": format!("{p}/app/db"), "withDecryption": "true"});
    let answers = read(
        s.port,
        json!([
            [PARAM, db, ""],
            [PARAM, db, "wrong"],
            [PARAM, {"name": format!("{p}/other/x")}, null],
            [SECRET, {"secretId": "someone-elses"}, null],
            [PARAM, {"name": format!("{p}/app/db")}, null],
            [PARAM, {"name": format!("{p}/app/missing")}, null],
            [PARAM, {}, null],
            [PARAM, {"name": format!("{p}/app/db"), "withdecryption": "true"}, null],
            ["/v1/x", {}, null],
        ]),
    );
    let status: Vec<i64> = answers
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(
        status,
        [401, 401, 403, 403, 400, 400, 400, 400, 404],
        "{answers:#?}"
    );
    let text = |i: usize| answers[i]["body"].to_string();
    assert!(text(0).contains("bad session token"), "{}", text(0));
    assert!(text(2).contains("--serve-allow"), "{}", text(2));
    assert!(text(4).contains("withDecryption=true"), "{}", text(4));
    assert_eq!(
        answers[5]["body"]["__type"],
        "ParameterNotFound",
        "{}",
        text(5)
    );
    assert!(text(7).contains("unknown parameter"), "{}", text(7));
    assert!(
        answers
            .iter()
            .all(|a| !a["body"].to_string().contains("db-1")),
        "a value in a refusal"
    );
}

#[test]
fn names_under_an_allowed_prefix_are_read_on_demand_and_kept_for_the_ttl() {
    let s = setup(&["--interval", "1h"], &[("SSM_PARAMETER_STORE_TTL", "300")]);
    let flag = format!("{}/shared/flag", s.prefix);
    let got = read_one(s.port, PARAM, json!({"name": flag}));
    assert_eq!(got["body"]["Parameter"]["Value"], "on", "{got}");
    // Within the TTL the cached answer stands, as with the extension.
    s.emu.put_str(&flag, "off");
    let got = read_one(s.port, PARAM, json!({"name": flag}));
    assert_eq!(got["body"]["Parameter"]["Value"], "on", "{got}");
    // A version of a watched name is read on demand too.
    let got = read_one(
        s.port,
        PARAM,
        json!({"name": format!("{}/app/db", s.prefix), "version": "1", "withDecryption": "true"}),
    );
    assert_eq!(got["body"]["Parameter"]["Value"], "db-1", "{got}");
    assert_eq!(got["body"]["Parameter"]["Selector"], ":1", "{got}");

    // With a TTL of 0 every read goes to AWS.
    let s0 = setup(&["--interval", "1h"], &[("SSM_PARAMETER_STORE_TTL", "0")]);
    let flag = format!("{}/shared/flag", s0.prefix);
    assert_eq!(
        read_one(s0.port, PARAM, json!({"name": flag}))["body"]["Parameter"]["Value"],
        "on"
    );
    s0.emu.put_str(&flag, "off");
    assert_eq!(
        read_one(s0.port, PARAM, json!({"name": flag}))["body"]["Parameter"]["Value"],
        "off"
    );
}

#[test]
fn a_token_file_replaces_the_session_token_and_a_missing_token_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "from-the-file\n").unwrap();
    let s = setup(
        &[
            "--interval",
            "1h",
            "--serve-token-file",
            &file.display().to_string(),
        ],
        &[],
    );
    let db = json!({"name": format!("{}/app/db", s.prefix), "withDecryption": "true"});
    let answers = read(
        s.port,
        json!([[PARAM, db, null], [PARAM, db, "from-the-file"]]),
    );
    assert_eq!(
        answers[0]["status"], 401,
        "the session token no longer opens it"
    );
    assert_eq!(answers[1]["status"], 200, "{:?}", answers[1]);

    // Usage errors (exit 2) before any AWS call: the stderr of a start with `serve` flags.
    let emu = shared();
    let output = dir.path().join("x.env").display().to_string();
    let refused = |serve: &[&str], token: Option<&str>| -> String {
        let mut cmd = SidecarCmd::new(&emu.moto)
            .args(["--output", &output, "--param", "X=/x/y"])
            .args(serve);
        if let Some(t) = token {
            cmd = cmd.env("AWS_SESSION_TOKEN", t);
        }
        let mut sc = cmd.spawn();
        assert_eq!(sc.wait_exit(READY).code(), Some(2), "{}", sc.stderr());
        sc.stderr()
    };
    let free = format!("127.0.0.1:{}", free_port());
    let stderr = refused(&["--serve", &free], None);
    assert!(stderr.contains("AWS_SESSION_TOKEN"), "{stderr}");
    let stderr = refused(&["--serve", "0.0.0.0:2773"], Some(TOKEN));
    assert!(stderr.contains("loopback"), "{stderr}");
    // An allow prefix that is not an absolute path.
    let stderr = refused(
        &["--serve", &free, "--serve-allow", "/ok/,my-app/"],
        Some(TOKEN),
    );
    assert!(
        stderr.contains("--serve-allow \"my-app/\" must start with /"),
        "{stderr}"
    );
}

#[test]
fn slow_and_garbage_clients_do_not_keep_the_app_from_reading() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let s = setup(&["--interval", "1h"], &[]);
    let addr = format!("127.0.0.1:{}", s.port);
    // 100 clients that send half a request head and wait, a body nobody asked for, and
    // garbage.
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).expect("connect");
            c.write_all(b"GET /systemsmanager/parameters/get?name=/a HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            c
        })
        .collect();
    let answer = |request: &[u8]| -> String {
        let mut c = TcpStream::connect(&addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        c.write_all(request).expect("write");
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    };
    let garbage = answer(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n");
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage:?}"
    );
    let body = answer(
        b"POST /systemsmanager/parameters/get?name=/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
    );
    assert!(body.starts_with("HTTP/1.1 413"), "{body:?}");
    // The app's own read is answered while they wait.
    let got = read_one(
        s.port,
        PARAM,
        json!({"name": format!("{}/app/db", s.prefix), "withDecryption": "true"}),
    );
    assert_eq!(got["body"]["Parameter"]["Value"], "db-1", "{got}");
    // The slow ones are cut off at the header deadline (10 s), not held forever.
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    let mut buf = [0u8; 64];
    let closed = slow.iter_mut().all(|c| c.read(&mut buf).is_ok());
    assert!(
        closed,
        "a slow client was not answered or closed within 30 s"
    );
}

/// The AWS Secrets Manager Agent (scripts/setup-sm-agent), if built; CI builds it.
fn agent_binary() -> Option<std::path::PathBuf> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/sm-agent/bin/aws_secretsmanager_agent");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("SSM_INJECTOR_REQUIRE_SM_AGENT").is_none(),
        "SSM_INJECTOR_REQUIRE_SM_AGENT is set but {} is missing: run scripts/setup-sm-agent",
        bin.display()
    );
    eprintln!("skipped: the AWS Secrets Manager Agent is not built (scripts/setup-sm-agent)");
    None
}

#[test]
fn the_secrets_route_answers_what_the_aws_secrets_manager_agent_answers() {
    let Some(agent) = agent_binary() else { return };
    // Every secret may be read on demand here, as from the agent.
    let s = setup(
        &[
            "--interval",
            "1h",
            "--serve-allow",
            "/aws/reference/secretsmanager/",
        ],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "http_port = \"{port}\"\nlog_level = \"WARN\"\nlog_to_file = false\nvalidate_credentials = false\nregion = \"us-east-1\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(agent)
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .env_clear()
        .envs(crate::support::run::clean_env())
        .env("AWS_ENDPOINT_URL", &s.emu.moto)
        .env("AWS_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the agent");
    // A binary secret (a keystore, say): read on demand, answered as SecretBinary.
    let binary = format!("{}-bin", s.secret);
    s.emu.aws(
        "secretsmanager",
        "create_secret",
        json!({"Name": binary, "SecretBinary": "k3ystore-bytes"}),
    );
    let reads = json!([
        [SECRET, {"secretId": s.secret}, null],
        [SECRET, {"secretId": "no-such-secret"}, null],
        [SECRET, {"secretId": s.secret}, "wrong"],
        [SECRET, {"secretId": binary}, null],
    ]);
    let theirs = within(Duration::from_secs(30), || {
        let got = read(port, reads.clone());
        if got[0]["status"] == 200 {
            Ok(got)
        } else {
            Err(got)
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let theirs = theirs.unwrap_or_else(|g| panic!("the agent never answered 200: {g:?}"));
    let ours = read(s.port, reads);
    // The members the agent answers, with the same values (CreatedDate aside: the agent
    // writes seconds as a string, the extension and ssm-injector RFC 3339).
    let (a, o) = (&theirs[0]["body"], &ours[0]["body"]);
    for member in ["ARN", "Name", "VersionId", "SecretString", "VersionStages"] {
        assert_eq!(
            a[member], o[member],
            "{member}: agent {a}, ssm-injector {o}"
        );
    }
    // The binary secret: base64 of its bytes in SecretBinary from both, no SecretString.
    let (a, o) = (&theirs[3]["body"], &ours[3]["body"]);
    assert_eq!(o["SecretBinary"], "azN5c3RvcmUtYnl0ZXM=", "{o}");
    assert_eq!(
        a["SecretBinary"], o["SecretBinary"],
        "agent {a}, ssm-injector {o}"
    );
    assert_eq!(o["SecretString"], Value::Null, "{o}");
    assert!(a["SecretString"].is_null(), "{a}");
    let (a, o) = (&theirs[0]["body"], &ours[0]["body"]);
    let members = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    for m in members(a) {
        assert!(
            o.get(&m).is_some(),
            "ssm-injector lacks the agent's member {m}: {o}"
        );
    }
    // Not found: both answer AWS's error type. The agent passes AWS's status on (moto
    // answers 404 where AWS answers 400); ssm-injector answers AWS's 400.
    assert!(
        matches!(theirs[1]["status"].as_i64(), Some(400 | 404)),
        "{:?}",
        theirs[1]
    );
    assert_eq!(ours[1]["status"], 400, "{:?}", ours[1]);
    assert_eq!(
        theirs[1]["body"]["__type"], "ResourceNotFoundException",
        "{:?}",
        theirs[1]
    );
    assert_eq!(
        ours[1]["body"]["__type"], "ResourceNotFoundException",
        "{:?}",
        ours[1]
    );
    // A wrong token: the agent 403, the extension (and ssm-injector) 401.
    assert_eq!(theirs[2]["status"], 403, "{:?}", theirs[2]);
    assert_eq!(ours[2]["status"], 401, "{:?}", ours[2]);
}

#[test]
fn a_command_under_exec_watch_reads_the_first_fetch_at_once_and_the_rotated_value_after_its_restart()
 {
    let emu = shared();
    let name = format!("{}/key", unique_prefix("serve-exec"));
    emu.put_secure(&name, "x-1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seen");
    let port = free_port();
    let reads = json!([[PARAM, {"name": name, "withDecryption": "true"}, null]]).to_string();
    // At its start the command reads the value through the endpoint, as Lambda code does,
    // and appends the answer to its file.
    let script = r#"python "$2" "$3" >> "$1"; while :; do sleep 0.05; done"#;
    let client = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/extension_client.py"
    );
    let python = venv().join("bin/python");
    let command = [
        "sh",
        "-c",
        &script.replace("python", &python.display().to_string()),
        "app",
        &out.display().to_string(),
        client,
        &reads,
    ];
    let sc = SidecarCmd::exec_watch(&emu.moto, command)
        .args(["--param", &format!("KEY={name}")])
        .args(["--serve", &format!("127.0.0.1:{port}")])
        // The first poll of the loop comes 2 s after the start: the first answer comes
        // from the fetch made before the command started (before, it was a 503).
        .args([
            "--interval",
            "2s",
            "--jitter",
            "0",
            "--reload-debounce",
            "0s",
        ])
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port.to_string())
        .spawn();
    let answers = |n: usize| {
        let got = within(READY, || {
            let lines: Vec<Value> = std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if lines.len() >= n {
                Ok(lines)
            } else {
                Err(lines)
            }
        });
        got.unwrap_or_else(|l| panic!("{l:?} after {READY:?}; stderr:\n{}", sc.stderr()))
    };
    let first = answers(1);
    assert_eq!(first[0]["status"], 200, "{first:?}");
    assert_eq!(first[0]["body"]["Parameter"]["Value"], "x-1");

    // Rotated: at the next poll the value changed, so the command is restarted, and its
    // read answers the new value.
    emu.put_secure(&name, "x-2");
    let second = answers(2);
    assert_eq!(second[1]["status"], 200, "{second:?}");
    assert_eq!(second[1]["body"]["Parameter"]["Value"], "x-2");
    assert!(
        !sc.stderr().contains("x-1") && !sc.stderr().contains("x-2"),
        "a value in the log"
    );
}
