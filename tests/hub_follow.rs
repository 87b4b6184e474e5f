//! Sidecars following the version hub (`render --watch --hub URL`) against moto: no AWS
//! calls of their own while the hub tracks everything, a fetch with their own credentials
//! when something changes, and their own polling whenever the hub is away or untrusted.

use crate::support::emulator::Request;
use crate::support::hub::HubProcess;
use crate::support::pki::Ca;
use crate::support::sidecar::{Sidecar, SidecarCmd};
use crate::support::wait::poll_until;
use crate::support::{Emulator, shared, unique_prefix};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const COVERING: &str = "ssm_injector_hub_covering";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Requests after `since` that mention `needle`.
fn requests_since(emu: &Emulator, since: f64, needle: &str) -> Vec<Request> {
    emu.requests()
        .into_iter()
        .filter(|r| r.t >= since && r.body.contains(needle))
        .collect()
}

/// The sidecar's own value fetches: GetParameters with decryption (the hub never decrypts).
fn sidecar_fetches(emu: &Emulator, since: f64, needle: &str) -> usize {
    requests_since(emu, since, needle)
        .iter()
        .filter(|r| r.op == "GetParameters" && r.body.contains("\"WithDecryption\":true"))
        .count()
}

/// The hub's version reads: anything without decryption.
fn hub_reads(emu: &Emulator, since: f64, needle: &str) -> usize {
    requests_since(emu, since, needle)
        .iter()
        .filter(|r| !r.body.contains("\"WithDecryption\":true"))
        .count()
}

/// The value of `key` in a dotenv file written by the sidecar.
pub(crate) fn dotenv_value(file: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}='"))
            .and_then(|v| v.strip_suffix('\''))
            .map(str::to_owned)
    })
}

fn follower(emu: &Emulator, prefix: &str, out: &Path, hub: &str, ca: &Path) -> Sidecar {
    let mut sc = SidecarCmd::new(&emu.proxy)
        .args([
            format!("--param=A={prefix}/a"),
            format!("--param=B={prefix}/b"),
            format!("--param=C={prefix}/c"),
            format!("--output={}", out.display()),
            "--interval=1s".to_owned(),
            format!("--hub={hub}"),
            format!("--hub-ca={}", ca.display()),
        ])
        .spawn();
    sc.wait_ready(Duration::from_secs(20));
    sc
}

fn seed(emu: &Emulator, prefix: &str) {
    emu.put_str(&format!("{prefix}/a"), "a1");
    emu.put_secure(&format!("{prefix}/b"), "b1");
    emu.put_str(&format!("{prefix}/c"), "c1");
}

#[test]
fn a_sidecar_following_the_hub_fetches_from_aws_only_when_something_changed() {
    let emu = shared();
    let prefix = unique_prefix("follow");
    seed(emu, &prefix);
    let hub = HubProcess::start(emu, "300ms", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let mut sc = follower(emu, &prefix, &out, &hub.url, &hub.ca_file);
    poll_until(Duration::from_secs(20), "the hub covering", || {
        sc.assert_running();
        (sc.metric(COVERING) == Some(1.0)).then_some(())
    });

    // While the hub polls AWS many times, the sidecar (interval 1 s) makes no call.
    let since = unix_now();
    poll_until(Duration::from_secs(30), "8 hub polls", || {
        (hub_reads(emu, since, &prefix) >= 8).then_some(())
    });
    assert_eq!(
        sidecar_fetches(emu, since, &prefix),
        0,
        "the sidecar polled AWS although the hub covers every key"
    );

    // A rotation reaches the file through one fetch of the sidecar's own.
    emu.put_secure(&format!("{prefix}/b"), "b2");
    poll_until(
        Duration::from_secs(20),
        "the rotated value in the file",
        || (dotenv_value(&out, "B").as_deref() == Some("b2")).then_some(()),
    );
    assert_eq!(dotenv_value(&out, "A").as_deref(), Some("a1"));
    assert_eq!(
        sidecar_fetches(emu, since, &prefix),
        1,
        "one GetParameters for the 3 names"
    );
    assert!(sc.stderr().contains("hub: watched parameters changed"));
}

#[test]
fn when_the_hub_is_away_the_sidecar_polls_aws_itself_and_follows_the_hub_again_when_it_is_back() {
    let emu = shared();
    let prefix = unique_prefix("hub-away");
    seed(emu, &prefix);
    let mut hub = HubProcess::start(emu, "300ms", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let mut sc = follower(emu, &prefix, &out, &hub.url, &hub.ca_file);
    poll_until(Duration::from_secs(20), "the hub covering", || {
        (sc.metric(COVERING) == Some(1.0)).then_some(())
    });

    hub.kill();
    poll_until(Duration::from_secs(20), "the sidecar noticing", || {
        sc.assert_running();
        (sc.metric(COVERING) == Some(0.0)).then_some(())
    });
    let since = unix_now();
    emu.put_str(&format!("{prefix}/a"), "a2");
    poll_until(
        Duration::from_secs(20),
        "the rotation without the hub",
        || (dotenv_value(&out, "A").as_deref() == Some("a2")).then_some(()),
    );
    assert!(sidecar_fetches(emu, since, &prefix) >= 1);
    assert!(
        sc.stderr()
            .contains("polling AWS myself until the hub answers")
    );

    hub.restart();
    poll_until(Duration::from_secs(60), "following the hub again", || {
        sc.assert_running();
        (sc.metric(COVERING) == Some(1.0)).then_some(())
    });
    // One interval for a poll that was already under way, then silence again.
    let back = unix_now() + 1.5;
    poll_until(
        Duration::from_secs(30),
        "8 hub polls after the restart",
        || (hub_reads(emu, back, &prefix) >= 8).then_some(()),
    );
    assert_eq!(sidecar_fetches(emu, back, &prefix), 0, "{}", sc.stderr());
    assert!(sc.stderr().contains("hub answers again"));
}

#[test]
fn a_hub_whose_certificate_is_not_trusted_is_not_followed() {
    let emu = shared();
    let prefix = unique_prefix("hub-untrusted");
    seed(emu, &prefix);
    let hub = HubProcess::start(emu, "300ms", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let other_ca = dir.path().join("other-ca.crt");
    std::fs::write(&other_ca, Ca::new("another CA").pem()).expect("write");
    let out = dir.path().join("app.env");
    let mut sc = follower(emu, &prefix, &out, &hub.url, &other_ca);
    poll_until(Duration::from_secs(20), "a failed TLS handshake", || {
        sc.assert_running();
        sc.stderr()
            .contains("TLS with the hub failed")
            .then_some(())
    });
    assert_eq!(sc.metric(COVERING), Some(0.0));
    // Rotations still arrive, by the sidecar's own polling.
    emu.put_str(&format!("{prefix}/c"), "c2");
    poll_until(
        Duration::from_secs(20),
        "the rotation by own polling",
        || (dotenv_value(&out, "C").as_deref() == Some("c2")).then_some(()),
    );
}

#[test]
fn a_hub_url_without_a_ca_is_refused_at_start() {
    let emu = shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sc = SidecarCmd::new(&emu.proxy)
        .args([
            "--param=A=/x".to_owned(),
            format!("--output={}", dir.path().join("a.env").display()),
            "--hub=https://localhost:1".to_owned(),
        ])
        .no_listen()
        .spawn();
    let status = sc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2));
    assert!(
        sc.stderr().contains("--hub needs the CA"),
        "{}",
        sc.stderr()
    );
}
