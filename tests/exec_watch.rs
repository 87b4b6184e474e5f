//! `ssm-injector exec --watch -- CMD` against moto: real commands (small shell scripts)
//! that write what they see to files, values rotated from outside, signals sent with
//! `kill` as a user or an orchestrator would.

use crate::support::sidecar::{Sidecar, SidecarCmd};
use crate::support::wait::{poll_until, within};
use crate::support::{Emulator, shared, unique_prefix};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(30);

/// The lines of `file` (none if it does not exist yet).
fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `sh -c SCRIPT NAME FILE`: a small command whose script gets `FILE` as `$1`.
fn sh(script: &str, name: &str, file: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        script.into(),
        name.into(),
        file.display().to_string(),
    ]
}

/// A command that appends `$KEY` to `out` at start, `usr1` on SIGUSR1, and exits 7 on
/// SIGTERM (after appending `term`). `sh` runs a trap once its `sleep` ends: 50 ms at most.
fn app(out: &Path) -> Vec<String> {
    sh(
        r#"echo "$KEY" >> "$1"; trap 'echo usr1 >> "$1"' USR1; trap 'echo term >> "$1"; exit 7' TERM; while :; do sleep 0.05; done"#,
        "app",
        out,
    )
}

/// A SecureString `PREFIX/key` holding `value` on the shared moto, and a temporary
/// directory with the path of the file the command writes (`seen`).
fn setup(value: &str) -> (&'static Emulator, String, tempfile::TempDir, PathBuf) {
    let emu = shared();
    let name = format!("{}/key", unique_prefix("xw"));
    emu.put_secure(&name, value);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seen");
    (emu, name, dir, out)
}

/// Waits until `file` has `n` lines (panics with the sidecar's stderr after `limit`).
#[track_caller]
fn wait_lines(sc: &mut Sidecar, file: &Path, n: usize, limit: Duration) -> Vec<String> {
    let got = within(limit, || {
        let l = lines(file);
        if l.len() >= n { Ok(l) } else { Err(l) }
    });
    match got {
        Ok(l) => l,
        Err(l) => panic!(
            "{} has {l:?}, wanted {n} lines, after {limit:?}; stderr:\n{}",
            file.display(),
            sc.stderr()
        ),
    }
}

#[test]
fn a_rotation_restarts_the_command_with_the_new_value_and_nothing_else_does() {
    let (emu, name, _dir, out) = setup("v-1");
    let (interval, grace) = (Duration::from_millis(300), Duration::from_secs(5));
    let mut sc = SidecarCmd::exec_watch(&emu.moto, app(&out))
        .args(["--param", &format!("KEY={name}")])
        .args([
            "--interval",
            "300ms",
            "--reload-debounce",
            "0s",
            "--restart-grace",
            "5s",
        ])
        .spawn();
    sc.wait_ready(READY);
    assert_eq!(wait_lines(&mut sc, &out, 1, READY), ["v-1"]);
    // Polls with nothing changed restart nothing.
    let polls = sc.wait_ok_polls(1.0, READY);
    sc.wait_ok_polls(polls + 3.0, READY);
    assert_eq!(lines(&out), ["v-1"], "restarted without a change");

    emu.put_secure(&name, "v-2");
    let rotated = Instant::now();
    // The issue's bound: the interval, the grace period and one second.
    let seen = wait_lines(&mut sc, &out, 3, interval + grace + Duration::from_secs(1));
    assert_eq!(seen, ["v-1", "term", "v-2"], "{}", sc.stderr());
    eprintln!("rotation -> new child in {:?}", rotated.elapsed());
    let polls = sc.wait_ok_polls(0.0, READY);
    sc.wait_ok_polls(polls + 3.0, READY);
    assert_eq!(lines(&out).len(), 3, "one rotation, one restart");
    assert_eq!(
        sc.metric(r#"ssm_injector_reload_actions_total{action="restart",outcome="ok"}"#),
        Some(1.0)
    );
    assert!(!sc.stderr().contains("v-2"), "a value in the log");
}

#[test]
fn signals_reach_the_command_and_its_exit_code_is_passed_on() {
    let (emu, name, _dir, out) = setup("s-1");
    let mut sc = SidecarCmd::exec_watch(&emu.moto, app(&out))
        .args(["--param", &format!("KEY={name}"), "--interval", "1h"])
        .spawn();
    wait_lines(&mut sc, &out, 1, READY);
    sc.signal("USR1");
    assert_eq!(wait_lines(&mut sc, &out, 2, READY), ["s-1", "usr1"]);
    sc.signal("TERM");
    let status = sc.wait_exit(READY);
    assert_eq!(status.code(), Some(7), "{}", sc.stderr());
    assert_eq!(lines(&out), ["s-1", "usr1", "term"]);
}

#[test]
fn a_command_that_ignores_the_restart_signal_is_killed_after_the_grace_period() {
    let (emu, name, _dir, out) = setup("g-1");
    let stubborn = sh(
        r#"trap '' TERM; echo "$KEY" >> "$1"; while :; do sleep 0.05; done"#,
        "stubborn",
        &out,
    );
    let mut sc = SidecarCmd::exec_watch(&emu.moto, stubborn)
        .args(["--param", &format!("KEY={name}")])
        .args([
            "--interval",
            "300ms",
            "--reload-debounce",
            "0s",
            "--restart-grace",
            "1s",
        ])
        .spawn();
    wait_lines(&mut sc, &out, 1, READY);
    emu.put_secure(&name, "g-2");
    assert_eq!(wait_lines(&mut sc, &out, 2, READY), ["g-1", "g-2"]);
    assert!(
        sc.stderr().contains("did not end within the grace period"),
        "{}",
        sc.stderr()
    );
}

#[test]
fn orphans_of_the_command_are_reaped() {
    let (emu, name, _dir, pids) = setup("o-1");
    // A grandchild left behind by a subshell that exits at once: once orphaned it writes
    // its pid and its parent's (ours: the supervisor is a subreaper), and ends a moment
    // later.
    let parent = sh(
        r#"(sh -c 'sleep 0.2; echo $$ $(awk "/^PPid/{print \$2}" /proc/$$/status) > "$1.tmp"; mv "$1.tmp" "$1"; sleep 0.3' orphan "$1" &); while :; do sleep 0.05; done"#,
        "parent",
        &pids,
    );
    let mut sc = SidecarCmd::exec_watch(&emu.moto, parent)
        .args(["--param", &format!("KEY={name}"), "--interval", "1h"])
        .spawn();
    let (pid, ppid) = poll_until(READY, "the orphan's pid", || {
        let text = std::fs::read_to_string(&pids).ok()?;
        let mut ids = text.split_whitespace().map(|t| t.parse::<u32>().ok());
        Some((ids.next()??, ids.next()??))
    });
    assert_eq!(ppid, sc.pid(), "the orphan's parent is the supervisor");
    // Reaped: gone from /proc (a zombie stays there, state Z, until its parent waits).
    let gone = within(Duration::from_secs(20), || {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => Ok(()),
            Ok(stat) => Err(stat),
        }
    });
    if let Err(stat) = gone {
        panic!(
            "the orphan {pid} was not reaped: {stat}; stderr:\n{}",
            sc.stderr()
        );
    }
    sc.assert_running();
}

#[test]
fn the_restart_limit_keeps_the_running_command_and_says_so() {
    let (emu, name, _dir, out) = setup("l-1");
    let mut sc = SidecarCmd::exec_watch(&emu.moto, app(&out))
        .args(["--param", &format!("KEY={name}")])
        .args(["--interval", "300ms", "--reload-debounce", "0s"])
        .args(["--max-restarts-per-hour", "1"])
        .spawn();
    wait_lines(&mut sc, &out, 1, READY);
    emu.put_secure(&name, "l-2");
    assert_eq!(wait_lines(&mut sc, &out, 3, READY), ["l-1", "term", "l-2"]);
    emu.put_secure(&name, "l-3");
    let refused = r#"ssm_injector_reload_actions_total{action="restart",outcome="error"}"#;
    poll_until(READY, "the refused restart counted", || {
        (sc.metric(refused) == Some(1.0)).then_some(())
    });
    assert_eq!(
        lines(&out),
        ["l-1", "term", "l-2"],
        "the old command keeps running"
    );
    assert!(sc.stderr().contains("restart limit"), "{}", sc.stderr());
    sc.assert_running();
}

#[test]
fn a_command_that_exits_ends_the_supervisor_with_its_code_or_starts_again() {
    let (emu, name, dir, out) = setup("e-1");
    let once = |out: &Path| sh(r#"echo "$KEY" >> "$1"; exit 3"#, "once", out);
    let mut sc = SidecarCmd::exec_watch(&emu.moto, once(&out))
        .args(["--param", &format!("KEY={name}"), "--interval", "1h"])
        .spawn();
    assert_eq!(sc.wait_exit(READY).code(), Some(3), "{}", sc.stderr());
    assert_eq!(lines(&out), ["e-1"]);

    let again = dir.path().join("again");
    let mut sc = SidecarCmd::exec_watch(&emu.moto, once(&again))
        .args(["--param", &format!("KEY={name}"), "--interval", "1h"])
        .args(["--restart-on-exit", "--max-restarts-per-hour", "2"])
        .spawn();
    // Started, then twice more; the third end is over the limit: its code.
    assert_eq!(sc.wait_exit(READY).code(), Some(3), "{}", sc.stderr());
    assert_eq!(lines(&again), ["e-1", "e-1", "e-1"]);
}

#[test]
fn a_failed_first_fetch_never_starts_the_command_and_exits_as_exec_does() {
    let emu = shared();
    let name = format!("{}/missing", unique_prefix("xw"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seen");
    let mut sc = SidecarCmd::exec_watch(&emu.moto, app(&out))
        .args(["--param", &format!("KEY={name}"), "--interval", "1h"])
        .spawn();
    assert_eq!(sc.wait_exit(READY).code(), Some(3), "{}", sc.stderr());
    assert!(!out.exists(), "the command ran");
    assert!(sc.stderr().contains(&name), "{}", sc.stderr());
}

#[test]
fn an_admin_port_in_use_ends_it_before_the_command_starts() {
    let (emu, name, _dir, out) = setup("p-1");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut sc = SidecarCmd::exec_watch(&emu.moto, app(&out))
        .args(["--param", &format!("KEY={name}"), "--interval", "1h"])
        .listen_at(&addr)
        .spawn();
    assert_eq!(sc.wait_exit(READY).code(), Some(2), "{}", sc.stderr());
    assert!(sc.stderr().contains(&addr), "{}", sc.stderr());
    assert!(!out.exists(), "the command ran");
}

#[test]
fn reload_flags_are_refused_with_exec_and_name_the_restart_flags() {
    let emu = shared();
    let mut sc = SidecarCmd::exec_watch(&emu.moto, ["true"])
        .args(["--param", "KEY=/x/y", "--reload-url", "http://127.0.0.1:1/"])
        .spawn();
    assert_eq!(sc.wait_exit(READY).code(), Some(2));
    let err = sc.stderr();
    assert!(
        err.contains("--reload-url") && err.contains("--restart-signal"),
        "{err}"
    );
}

#[test]
fn a_supervisor_killed_outright_takes_its_command_with_it() {
    let (emu, name, _dir, out) = setup("k-1");
    // The command writes its pid, then runs until killed (it ignores TERM).
    let command = sh(
        r#"trap '' TERM; echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; while :; do sleep 0.05; done"#,
        "victim",
        &out,
    );
    let mut sc = SidecarCmd::exec_watch(&emu.moto, command)
        .args(["--param", &format!("KEY={name}"), "--interval", "1h"])
        .spawn();
    let pid = poll_until(READY, "the command's pid", || {
        std::fs::read_to_string(&out)
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
    });
    sc.kill9();
    // Gone, or a zombie its new parent has not reaped yet: no longer running.
    let dead = within(Duration::from_secs(20), || {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => Ok(()),
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                Ok(())
            }
            Ok(stat) => Err(stat),
        }
    });
    if let Err(stat) = dead {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        panic!("the command {pid} outlived its supervisor: {stat}");
    }
}
