//! The sidecar's delta polls (`render --watch`) against moto, counted at the emulator's
//! proxy (what AWS and KMS see): a poll where nothing changed decrypts nothing, a rotation
//! of one of N SecureStrings decrypts one value, and what worked with whole re-fetches
//! still works: labels moving, paths gaining and losing names, deleted parameters, Secrets
//! Manager references (DescribeSecret, and the fallback when it is refused), the hub.

use crate::support::hub::HubProcess;
use crate::support::sidecar::{Sidecar, SidecarCmd};
use crate::support::wait::poll_until;
use crate::support::{Emulator, shared, unique_prefix};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const READY: Duration = Duration::from_secs(20);
const LIMIT: Duration = Duration::from_secs(20);
const POLLS_OK: &str = r#"ssm_injector_polls_total{outcome="ok"}"#;
const POLLS_ERROR: &str = r#"ssm_injector_polls_total{outcome="error"}"#;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Decrypting calls and values decrypted since `since` by requests that mention `needle`.
fn decrypts(emu: &Emulator, since: f64, needle: &str) -> (usize, u64) {
    let found: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.t >= since && r.decrypt && r.body.contains(needle))
        .collect();
    (found.len(), found.iter().map(|r| r.decrypted).sum())
}

/// Calls of `op` since `since` that mention `needle`.
fn calls(emu: &Emulator, since: f64, op: &str, needle: &str) -> usize {
    emu.requests()
        .into_iter()
        .filter(|r| r.t >= since && r.op == op && r.body.contains(needle))
        .count()
}

/// The value of `key` in the sidecar's dotenv file.
fn value(file: &Path, key: &str) -> Option<String> {
    crate::hub_follow::dotenv_value(file, key)
}

#[track_caller]
fn wait_value(sc: &mut Sidecar, file: &Path, key: &str, want: Option<&str>) {
    poll_until(LIMIT, &format!("{key} = {want:?} in the file"), || {
        sc.assert_running();
        let text = std::fs::read_to_string(file).ok()?;
        let found = value(file, key);
        (found.as_deref() == want && !text.is_empty()).then_some(())
    });
}

/// Waits for `n` more good polls than now.
#[track_caller]
fn more_polls(sc: &mut Sidecar, n: f64) {
    let now = sc.metric(POLLS_OK).unwrap_or(0.0);
    sc.wait_ok_polls(now + n, LIMIT);
}

fn sidecar(emu: &Emulator, out: &Path, spec: &[String]) -> Sidecar {
    let mut sc = SidecarCmd::new(&emu.proxy)
        .args(spec)
        .args([
            format!("--output={}", out.display()),
            "--interval=300ms".to_owned(),
        ])
        .spawn();
    sc.wait_ready(READY);
    sc
}

#[test]
fn idle_polls_decrypt_nothing_and_a_rotation_of_one_of_five_decrypts_one_value() {
    let emu = shared();
    let p = unique_prefix("delta-name");
    let spec: Vec<String> = (0..5)
        .map(|i| {
            emu.put_secure(&format!("{p}/s{i}"), &format!("v{i}-1"));
            format!("--param=S{i}={p}/s{i}")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut sc = sidecar(emu, &out, &spec);
    more_polls(&mut sc, 1.0);

    let since = unix_now();
    more_polls(&mut sc, 3.0);
    assert_eq!(
        decrypts(emu, since, &p),
        (0, 0),
        "idle polls made decrypting calls"
    );
    assert!(
        calls(emu, since, "GetParameters", &p) >= 3,
        "no version reads"
    );

    let since = unix_now();
    emu.put_secure(&format!("{p}/s3"), "v3-2");
    wait_value(&mut sc, &out, "S3", Some("v3-2"));
    more_polls(&mut sc, 2.0);
    assert_eq!(
        decrypts(emu, since, &p),
        (1, 1),
        "a rotation of 1 of 5 SecureStrings"
    );
    assert_eq!(value(&out, "S0").as_deref(), Some("v0-1"));
    assert_eq!(value(&out, "S4").as_deref(), Some("v4-1"));

    // The held values are in locked memory where the limit allows it (the sidecar inherits
    // this process's RLIMIT_MEMLOCK).
    let locked = sc.metric("ssm_injector_held_values_locked");
    if memlock_limit_kib().is_some_and(|kib| kib >= 64) {
        assert_eq!(locked, Some(1.0));
        let status = std::fs::read_to_string(format!("/proc/{}/status", sc.pid())).unwrap();
        let vmlck = status
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        assert!(vmlck.is_some_and(|k| k > 0), "VmLck: {vmlck:?}");
    } else {
        assert!(locked.is_some(), "the metric is there");
    }
}

/// This process's soft RLIMIT_MEMLOCK in KiB (`None`: unknown; unlimited is large).
fn memlock_limit_kib() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse::<u64>().ok().map(|b| b / 1024)
}

#[test]
fn a_moved_label_brings_its_new_value_with_one_decrypt() {
    let emu = shared();
    let p = unique_prefix("delta-label");
    let name = format!("{p}/db");
    let v1 = emu.put_secure(&name, "one");
    emu.aws(
        "ssm",
        "label_parameter_version",
        json!({"Name": name, "ParameterVersion": v1, "Labels": ["live"]}),
    );
    let v2 = emu.put_secure(&name, "two");
    emu.put_secure(&format!("{p}/other"), "o");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut sc = sidecar(
        emu,
        &out,
        &[
            format!("--param=DB={name}:live"),
            format!("--param=PINNED={name}:{v1}"),
            format!("--param=OTHER={p}/other"),
        ],
    );
    assert_eq!(value(&out, "DB").as_deref(), Some("one"));
    more_polls(&mut sc, 1.0);

    let since = unix_now();
    emu.aws(
        "ssm",
        "label_parameter_version",
        json!({"Name": name, "ParameterVersion": v2, "Labels": ["live"]}),
    );
    wait_value(&mut sc, &out, "DB", Some("two"));
    more_polls(&mut sc, 2.0);
    assert_eq!(value(&out, "PINNED").as_deref(), Some("one"));
    assert_eq!(decrypts(emu, since, &p), (1, 1), "only the moved label");
}

#[test]
fn a_path_gaining_and_losing_names_decrypts_only_the_new_ones() {
    let emu = shared();
    let p = unique_prefix("delta-path");
    for i in 0..4 {
        emu.put_secure(&format!("{p}/app/k{i}"), &format!("v{i}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut sc = sidecar(emu, &out, &[format!("--path={p}/app/")]);
    more_polls(&mut sc, 1.0);

    let since = unix_now();
    more_polls(&mut sc, 3.0);
    assert_eq!(decrypts(emu, since, &p), (0, 0), "idle polls by path");

    let since = unix_now();
    emu.put_secure(&format!("{p}/app/k9"), "new");
    wait_value(&mut sc, &out, "K9", Some("new"));
    more_polls(&mut sc, 2.0);
    assert_eq!(decrypts(emu, since, &p), (1, 1), "only the new name");
    assert_eq!(value(&out, "K0").as_deref(), Some("v0"));

    let since = unix_now();
    emu.aws(
        "ssm",
        "delete_parameter",
        json!({"Name": format!("{p}/app/k1")}),
    );
    wait_value(&mut sc, &out, "K1", None);
    more_polls(&mut sc, 2.0);
    assert_eq!(
        decrypts(emu, since, &p),
        (0, 0),
        "a name gone costs no decrypt"
    );
    assert_eq!(value(&out, "K2").as_deref(), Some("v2"));
}

#[test]
fn a_deleted_required_parameter_fails_the_poll_and_keeps_the_file_as_before() {
    let emu = shared();
    let p = unique_prefix("delta-deleted");
    emu.put_secure(&format!("{p}/keep"), "k");
    emu.put_secure(&format!("{p}/gone"), "g");
    emu.put_secure(&format!("{p}/maybe"), "m");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut sc = sidecar(
        emu,
        &out,
        &[
            format!("--param=KEEP={p}/keep"),
            format!("--optional-param=MAYBE={p}/maybe"),
        ],
    );
    more_polls(&mut sc, 1.0);
    // An optional parameter deleted: gone from the file, no decrypt.
    let since = unix_now();
    emu.aws(
        "ssm",
        "delete_parameter",
        json!({"Name": format!("{p}/maybe")}),
    );
    wait_value(&mut sc, &out, "MAYBE", None);
    assert_eq!(value(&out, "KEEP").as_deref(), Some("k"));
    assert_eq!(decrypts(emu, since, &p), (0, 0));
    drop(sc);

    let mut sc = sidecar(
        emu,
        &out,
        &[
            format!("--param=KEEP={p}/keep"),
            format!("--param=GONE={p}/gone"),
        ],
    );
    more_polls(&mut sc, 1.0);
    let before = std::fs::read_to_string(&out).unwrap();
    let errors = sc.metric(POLLS_ERROR).unwrap_or(0.0);
    let since = unix_now();
    emu.aws(
        "ssm",
        "delete_parameter",
        json!({"Name": format!("{p}/gone")}),
    );
    poll_until(LIMIT, "a failed poll", || {
        sc.assert_running();
        (sc.metric(POLLS_ERROR).unwrap_or(0.0) > errors).then_some(())
    });
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before, "file kept");
    let log = sc.stderr();
    assert!(
        log.contains(&format!("{p}/gone")) && log.contains("not found"),
        "{log}"
    );
    assert_eq!(decrypts(emu, since, &p), (0, 0));
}

#[test]
fn a_rotated_secrets_manager_reference_is_seen_through_describe_secret_with_one_decrypt() {
    let emu = shared();
    let p = unique_prefix("delta-sm");
    let secret = format!("{}/db", p.trim_start_matches('/'));
    emu.create_secret(&secret, r#"{"user":"app","password":"pw1"}"#);
    let reference = format!("/aws/reference/secretsmanager/{secret}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut sc = sidecar(
        emu,
        &out,
        &[
            format!("--param=USER={reference}#user"),
            format!("--param=PASSWORD={reference}#password"),
        ],
    );
    assert_eq!(value(&out, "PASSWORD").as_deref(), Some("pw1"));
    more_polls(&mut sc, 1.0);

    let since = unix_now();
    more_polls(&mut sc, 3.0);
    assert_eq!(decrypts(emu, since, &secret), (0, 0), "idle polls");
    assert!(calls(emu, since, "DescribeSecret", &secret) >= 3);

    let since = unix_now();
    emu.aws(
        "secretsmanager",
        "put_secret_value",
        json!({"SecretId": secret, "SecretString": r#"{"user":"app","password":"pw2"}"#}),
    );
    wait_value(&mut sc, &out, "PASSWORD", Some("pw2"));
    more_polls(&mut sc, 2.0);
    assert_eq!(value(&out, "USER").as_deref(), Some("app"));
    assert_eq!(
        decrypts(emu, since, &secret),
        (1, 1),
        "two fields of one secret: one fetch"
    );
}

#[test]
fn a_refused_describe_secret_falls_back_to_fetching_and_warns_once() {
    let emu = Emulator::start();
    let p = unique_prefix("delta-sm-denied");
    let secret = format!("{}/db", p.trim_start_matches('/'));
    emu.create_secret(&secret, "s1");
    emu.faults(json!([{
        "op": "DescribeSecret",
        "status": 400,
        "code": "AccessDeniedException",
        "message": "not authorized to perform: secretsmanager:DescribeSecret"
    }]));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut sc = sidecar(
        &emu,
        &out,
        &[format!("--param=S=/aws/reference/secretsmanager/{secret}")],
    );
    more_polls(&mut sc, 3.0);
    emu.aws(
        "secretsmanager",
        "put_secret_value",
        json!({"SecretId": secret, "SecretString": "s2"}),
    );
    wait_value(&mut sc, &out, "S", Some("s2"));
    let log = sc.stderr();
    assert_eq!(
        log.matches("DescribeSecret refused").count(),
        1,
        "one warning: {log}"
    );
    assert!(log.contains("secretsmanager:DescribeSecret"), "{log}");
    assert_eq!(
        emu.calls_of("DescribeSecret"),
        1,
        "asked once, then not again"
    );
}

/// The sidecar's reads without decryption since `since` (the hub reads with
/// DescribeParameters, so GetParameters* without decryption are the sidecar's).
fn version_reads(emu: &Emulator, since: f64, needle: &str) -> usize {
    emu.requests()
        .into_iter()
        .filter(|r| {
            r.t >= since
                && !r.decrypt
                && r.op.starts_with("GetParameters")
                && r.body.contains(needle)
        })
        .count()
}

#[test]
fn a_hub_change_decrypts_only_the_changed_value() {
    let emu = shared();
    let p = unique_prefix("delta-hub");
    for k in ["a", "b", "c", "dir/x", "dir/y"] {
        emu.put_secure(&format!("{p}/{k}"), &format!("{k}1"));
    }
    let hub = HubProcess::start(emu, "300ms", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut sc = SidecarCmd::new(&emu.proxy)
        .args([
            format!("--param=A={p}/a"),
            format!("--param=B={p}/b"),
            format!("--param=C={p}/c"),
            format!("--path={p}/dir/"),
            format!("--output={}", out.display()),
            "--interval=1h".to_owned(),
            format!("--hub={}", hub.url),
            format!("--hub-ca={}", hub.ca_file.display()),
        ])
        .spawn();
    sc.wait_ready(READY);
    poll_until(LIMIT, "the hub covering", || {
        sc.assert_running();
        (sc.metric("ssm_injector_hub_covering") == Some(1.0)).then_some(())
    });

    // A changed name: that name fetched, nothing else read.
    let polls = sc.metric(POLLS_OK).unwrap_or(0.0);
    let since = unix_now();
    emu.put_secure(&format!("{p}/b"), "b2");
    wait_value(&mut sc, &out, "B", Some("b2"));
    poll_until(LIMIT, "the poll counted", || {
        (sc.metric(POLLS_OK).unwrap_or(0.0) > polls).then_some(())
    });
    assert_eq!(value(&out, "A").as_deref(), Some("a1"));
    assert_eq!(decrypts(emu, since, &p), (1, 1), "only B decrypted");
    assert_eq!(
        version_reads(emu, since, &p),
        0,
        "no version reads of the rest"
    );

    // A changed path: listed without decryption, then its changed name fetched.
    let polls = sc.metric(POLLS_OK).unwrap_or(0.0);
    let since = unix_now();
    emu.put_secure(&format!("{p}/dir/y"), "y2");
    wait_value(&mut sc, &out, "Y", Some("y2"));
    poll_until(LIMIT, "the poll counted", || {
        (sc.metric(POLLS_OK).unwrap_or(0.0) > polls).then_some(())
    });
    assert_eq!(value(&out, "X").as_deref(), Some("dir/x1"));
    assert_eq!(decrypts(emu, since, &p), (1, 1), "only dir/y decrypted");
    assert_eq!(version_reads(emu, since, &p), 1, "one listing of the path");
}
