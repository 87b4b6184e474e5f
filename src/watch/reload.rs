//! Reload actions: what to do after the files changed so the application picks them up.
//!
//! Parsing is pure and runs once, from the flags ([`crate::reload_action`]); [`run`] does the
//! I/O. A failed action is an error for the caller to log and count: nothing here is fatal.
//! Errors name the action and the cause, never the contents of a file or the output of a
//! command.

use crate::reload_action::{Action, ActionError, SignalTarget};
use http_body_util::Empty;
use hyper::body::Bytes;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a command's stdout and stderr is kept (and logged at debug).
const OUTPUT_LIMIT: usize = 2048;

/// A reload action that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Only for an action built by hand: [`crate::reload_action`] checks the flags.
    #[error(transparent)]
    Invalid(#[from] ActionError),
    #[error("signal {signal}: could not read pid file {}: {source}", .path.display())]
    PidFileRead {
        signal: Signal,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("signal {signal}: pid file {} does not hold a positive process id", .path.display())]
    PidFileContent { signal: Signal, path: PathBuf },
    #[error("signal {signal}: could not list processes in /proc: {source}")]
    ProcScan {
        signal: Signal,
        #[source]
        source: io::Error,
    },
    #[error(
        "signal {signal}: no process named {name}: does the pod share its process namespace \
         (shareProcessNamespace: true)?"
    )]
    NoProcess { signal: Signal, name: String },
    #[error("signal {signal}: could not signal process {pid}: {source}")]
    Kill {
        signal: Signal,
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("command {program}: could not start: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("command {program}: could not wait for it: {source}")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("command {program}: still running after {}, killed", humantime::format_duration(*.timeout))]
    CommandTimeout { program: String, timeout: Duration },
    #[error("command {program}: exited with code {code}")]
    CommandExit { program: String, code: i32 },
    #[error("command {program}: killed by signal {signal}")]
    CommandKilled { program: String, signal: i32 },
    #[error("http POST {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("http POST {url}: could not build the request: {source}")]
    HttpRequest {
        url: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("http POST {url}: no answer after {}", humantime::format_duration(*.timeout))]
    HttpTimeout { url: String, timeout: Duration },
    #[error("http POST {url}: answered {status}, expected 2xx")]
    HttpStatus {
        url: String,
        status: hyper::StatusCode,
    },
}

/// Runs one action; the whole action is bounded by `timeout` (signals are immediate).
/// Dropping the future cancels it: a URL's request is abandoned, a command's whole process
/// group is killed.
pub async fn run(action: &Action, timeout: Duration) -> Result<(), ReloadError> {
    match action {
        Action::Signal { signal, target } => send_signal(*signal, target).await,
        Action::Command(argv) => run_command(argv, timeout).await,
        Action::Http(uri) => post(uri, timeout).await,
    }
}

async fn send_signal(signal: Signal, target: &SignalTarget) -> Result<(), ReloadError> {
    let pids = match target {
        SignalTarget::PidFile(path) => {
            let text = tokio::fs::read_to_string(path).await.map_err(|source| {
                ReloadError::PidFileRead {
                    signal,
                    path: path.clone(),
                    source,
                }
            })?;
            let pid = parse_pid(&text).ok_or_else(|| ReloadError::PidFileContent {
                signal,
                path: path.clone(),
            })?;
            vec![pid]
        }
        SignalTarget::ProcessName(name) => {
            let own = std::process::id() as i32;
            let n = name.clone();
            let pids =
                tokio::task::spawn_blocking(move || find_processes(Path::new("/proc"), &n, own))
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(|source| ReloadError::ProcScan { signal, source })?;
            if pids.is_empty() {
                return Err(ReloadError::NoProcess {
                    signal,
                    name: name.clone(),
                });
            }
            pids
        }
    };
    // Signal every match; report the first failure. A process that exited meanwhile is fine
    // when others got the signal.
    let mut first_err = None;
    let mut delivered = 0usize;
    for &pid in &pids {
        match signal::kill(Pid::from_raw(pid), signal) {
            Ok(()) => {
                delivered += 1;
                tracing::debug!(pid, %signal, "reload signal sent");
            }
            Err(nix::errno::Errno::ESRCH) if pids.len() > 1 => {}
            Err(source) => {
                first_err.get_or_insert(ReloadError::Kill {
                    signal,
                    pid,
                    source,
                });
            }
        }
    }
    match (first_err, delivered, target) {
        (Some(e), _, _) => Err(e),
        (None, 0, SignalTarget::ProcessName(name)) => Err(ReloadError::NoProcess {
            signal,
            name: name.clone(),
        }),
        (None, _, _) => Ok(()),
    }
}

/// A positive pid from the text of a pid file (surrounding white space allowed).
fn parse_pid(text: &str) -> Option<i32> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i32>().ok().filter(|&p| p > 0)
}

/// Processes under `proc_root` whose `comm` is `name`, or whose `argv[0]` has the base name
/// `name`; `own` (our pid) is left out. Processes that vanish during the scan are skipped.
fn find_processes(proc_root: &Path, name: &str, own: i32) -> io::Result<Vec<i32>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(parse_pid) else {
            continue;
        };
        if pid == own {
            continue;
        }
        let dir = entry.path();
        let by_comm = std::fs::read(dir.join("comm"))
            .is_ok_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == name.as_bytes());
        let matches = by_comm
            || std::fs::read(dir.join("cmdline")).is_ok_and(|c| {
                let argv0 = c.split(|&b| b == 0).next().unwrap_or_default();
                argv0_basename(argv0) == name.as_bytes()
            });
        if matches {
            found.push(pid);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn argv0_basename(argv0: &[u8]) -> &[u8] {
    argv0.rsplit(|&b| b == b'/').next().unwrap_or(argv0)
}

async fn run_command(argv: &[String], timeout: Duration) -> Result<(), ReloadError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ActionError::EmptyCommand.into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills whatever the command started too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ReloadError::Spawn {
        program: program.clone(),
        source,
    })?;
    // Declared after `child`, so dropped before it: the group is killed while its leader
    // is not yet reaped (its id still names the group).
    let mut group = GroupKill(child.id());
    let stdout = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));

    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let status = match waited {
        Ok(r) => {
            // It ended by itself: what it left running in the background stays.
            group.0 = None;
            r.map_err(|source| ReloadError::Wait {
                program: program.clone(),
                source,
            })?
        }
        Err(_) => {
            group.kill();
            let _ = child.start_kill();
            let _ = child.wait().await;
            for task in [stdout, stderr].into_iter().flatten() {
                task.abort();
            }
            return Err(ReloadError::CommandTimeout {
                program: program.clone(),
                timeout,
            });
        }
    };
    let out = collect(stdout).await;
    let err = collect(stderr).await;
    tracing::debug!(
        program = %program,
        stdout = %String::from_utf8_lossy(&out),
        stderr = %String::from_utf8_lossy(&err),
        "reload command finished: {status}"
    );
    if status.success() {
        return Ok(());
    }
    match status.code() {
        Some(code) => Err(ReloadError::CommandExit {
            program: program.clone(),
            code,
        }),
        None => Err(ReloadError::CommandKilled {
            program: program.clone(),
            signal: std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
        }),
    }
}

/// Kills a command's process group (SIGKILL) when dropped, unless the command ended by
/// itself: a reload cancelled because the sidecar stops leaves no process behind.
struct GroupKill(Option<u32>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(id) = self.0.take().and_then(|id| i32::try_from(id).ok()) {
            let _ = signal::killpg(Pid::from_raw(id), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a pipe to its end, keeping the first [`OUTPUT_LIMIT`] bytes; the rest is drained so
/// the command never blocks on a full pipe.
async fn read_capped(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

/// The output a reader task kept; a pipe still held open by a process the command left
/// behind is given up on after a short while.
async fn collect(task: Option<tokio::task::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    let Some(mut task) = task else {
        return Vec::new();
    };
    match tokio::time::timeout(Duration::from_millis(500), &mut task).await {
        Ok(Ok(v)) => v,
        _ => {
            task.abort();
            Vec::new()
        }
    }
}

async fn post(uri: &hyper::Uri, timeout: Duration) -> Result<(), ReloadError> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let url = uri.to_string();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::post(uri.clone())
        .header(hyper::header::CONTENT_LENGTH, "0")
        .header(hyper::header::USER_AGENT, "ssm-injector")
        .body(Empty::new())
        .map_err(|source| ReloadError::HttpRequest {
            url: url.clone(),
            source,
        })?;
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| ReloadError::HttpTimeout {
            url: url.clone(),
            timeout,
        })?
        .map_err(|source| ReloadError::Http {
            url: url.clone(),
            source,
        })?;
    let status = response.status();
    if status.is_success() {
        tracing::debug!(%url, %status, "reload POST answered");
        Ok(())
    } else {
        Err(ReloadError::HttpStatus { url, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload_action::{parse_command, parse_url};
    use proptest::prelude::*;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const DEADLINE: Duration = Duration::from_secs(10);

    proptest! {
        #[test]
        fn parse_pid_never_panics(s in any::<String>()) {
            let _ = parse_pid(&s);
        }
    }

    #[test]
    fn pid_files_must_hold_one_positive_pid() {
        assert_eq!(parse_pid("42\n"), Some(42));
        assert_eq!(parse_pid("  7  "), Some(7));
        for bad in ["", "\n", "0", "-1", "+3", "abc", "12 13", "99999999999"] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn finds_processes_by_comm_or_argv0_basename_in_a_fake_proc() {
        let root = tempfile::tempdir().unwrap();
        let add = |pid: &str, comm: &[u8], cmdline: &[u8]| {
            let d = root.path().join(pid);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("comm"), comm).unwrap();
            std::fs::write(d.join("cmdline"), cmdline).unwrap();
        };
        add("10", b"nginx\n", b"nginx: master process\0");
        add("11", b"nginx-exporter\n", b"/bin/nginx-exporter\0");
        // comm is cut at 15 bytes: the long name is found through argv[0].
        add(
            "12",
            b"averyveryverylo\n",
            b"/usr/bin/averyveryverylongname\0-c\0x\0",
        );
        add("13", b"sh\n", b"/usr/sbin/nginx\0-g\0daemon off;\0");
        add("14", b"nginx\n", b"nginx\0"); // ourselves
        add("self", b"nginx\n", b"nginx\0");
        std::fs::create_dir(root.path().join("15")).unwrap(); // vanished: no files

        assert_eq!(
            find_processes(root.path(), "nginx", 14).unwrap(),
            vec![10, 13]
        );
        assert_eq!(
            find_processes(root.path(), "averyveryverylongname", 14).unwrap(),
            vec![12]
        );
        assert!(find_processes(root.path(), "ngin", 14).unwrap().is_empty());
        assert!(find_processes(root.path(), "", 14).unwrap().is_empty());
    }

    /// Polls `child` until it exits or the deadline passes.
    async fn wait_exit(child: &mut tokio::process::Child) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "child still running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn sleeper() -> tokio::process::Child {
        tokio::process::Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    #[tokio::test]
    async fn signals_the_process_named_in_a_pid_file() {
        let mut child = sleeper();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("app.pid");
        std::fs::write(&pid_file, format!("{}\n", child.id().unwrap())).unwrap();
        let action = Action::Signal {
            signal: Signal::SIGTERM,
            target: SignalTarget::PidFile(pid_file),
        };
        run(&action, Duration::from_secs(5)).await.unwrap();
        let status = wait_exit(&mut child).await;
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    }

    #[tokio::test]
    async fn a_missing_or_bad_pid_file_is_an_error_naming_the_file_not_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pid");
        let action = Action::Signal {
            signal: Signal::SIGHUP,
            target: SignalTarget::PidFile(missing.clone()),
        };
        let err = run(&action, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ReloadError::PidFileRead { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.pid"));

        let bad = dir.path().join("bad.pid");
        std::fs::write(&bad, "hunter2\n").unwrap();
        let action = Action::Signal {
            signal: Signal::SIGHUP,
            target: SignalTarget::PidFile(bad),
        };
        let err = run(&action, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ReloadError::PidFileContent { .. }), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    /// Copies `sleep` to `dir/name`: a process started from it has `comm` `name` (cut at
    /// 15 bytes).
    fn copy_sleep(dir: &Path, name: &str) -> PathBuf {
        let exe = dir.join(name);
        std::fs::copy("/bin/sleep", &exe).unwrap();
        exe
    }

    /// Starts `exe 30`. A fork in another test thread may briefly hold a fresh copy open for
    /// writing (ETXTBSY): retry until the deadline.
    async fn start_sleeper(exe: &Path) -> tokio::process::Child {
        let start = Instant::now();
        loop {
            match tokio::process::Command::new(exe)
                .arg("30")
                .kill_on_drop(true)
                .spawn()
            {
                Ok(child) => return child,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    assert!(start.elapsed() < DEADLINE, "{e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("could not start {}: {e}", exe.display()),
            }
        }
    }

    fn unique_name(prefix: &str) -> String {
        format!("{prefix}{:06x}", fastrand::u32(..0x100_0000))
    }

    #[tokio::test]
    async fn signals_every_process_with_the_given_name() {
        let dir = tempfile::tempdir().unwrap();
        let name = unique_name("reloadtgt"); // 15 bytes: all of it is in comm
        assert_eq!(name.len(), 15);
        let exe = copy_sleep(dir.path(), &name);
        let mut a = start_sleeper(&exe).await;
        let mut b = start_sleeper(&exe).await;
        let action = Action::Signal {
            signal: Signal::SIGTERM,
            target: SignalTarget::ProcessName(name.clone()),
        };
        // The copy's comm is set at exec: poll until both are visible under their name.
        let start = Instant::now();
        while find_processes(Path::new("/proc"), &name, 0).unwrap().len() < 2 {
            assert!(start.elapsed() < DEADLINE, "children not visible in /proc");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        run(&action, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            wait_exit(&mut a).await.signal(),
            Some(Signal::SIGTERM as i32)
        );
        assert_eq!(
            wait_exit(&mut b).await.signal(),
            Some(Signal::SIGTERM as i32)
        );
    }

    #[tokio::test]
    async fn finds_a_long_process_name_through_argv0() {
        let dir = tempfile::tempdir().unwrap();
        let name = unique_name("reloadtargetlong"); // longer than comm holds
        let mut child = start_sleeper(&copy_sleep(dir.path(), &name)).await;
        let start = Instant::now();
        while find_processes(Path::new("/proc"), &name, 0)
            .unwrap()
            .is_empty()
        {
            assert!(start.elapsed() < DEADLINE, "child not visible in /proc");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let action = Action::Signal {
            signal: Signal::SIGTERM,
            target: SignalTarget::ProcessName(name),
        };
        run(&action, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            wait_exit(&mut child).await.signal(),
            Some(Signal::SIGTERM as i32)
        );
    }

    #[tokio::test]
    async fn no_process_with_the_name_is_an_error_that_hints_at_the_shared_namespace() {
        let name = unique_name("reloadnone");
        let action = Action::Signal {
            signal: Signal::SIGHUP,
            target: SignalTarget::ProcessName(name.clone()),
        };
        let err = run(&action, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ReloadError::NoProcess { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("no process named {name}")), "{msg}");
        assert!(msg.contains("shareProcessNamespace: true"), "{msg}");
    }

    #[tokio::test]
    async fn a_command_that_succeeds_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("reloaded");
        let argv = vec!["touch".to_owned(), marker.display().to_string()];
        run(&Action::Command(argv), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn a_command_that_fails_reports_its_exit_code() {
        let argv = parse_command("sh -c 'echo oops >&2; exit 3'").unwrap();
        let err = run(&Action::Command(argv), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ReloadError::CommandExit { code: 3, .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "command sh: exited with code 3");
    }

    #[tokio::test]
    async fn a_command_with_lots_of_output_does_not_block() {
        let argv =
            parse_command("sh -c 'yes | head -c 1000000; yes | head -c 1000000 >&2'").unwrap();
        run(&Action::Command(argv), Duration::from_secs(10))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let argv = vec!["/nonexistent/reload-me".to_owned()];
        let err = run(&Action::Command(argv), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ReloadError::Spawn { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_command_that_hangs_is_killed_at_the_timeout() {
        // The shell's own child (sleep) must die too: it is in the same process group.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let argv = vec!["sh".to_owned(), "-c".to_owned(), script];
        let started = Instant::now();
        let err = run(&Action::Command(argv), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, ReloadError::CommandTimeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("300ms"), "{err}");
        let pid = parse_pid(&std::fs::read_to_string(&pid_file).unwrap()).unwrap();
        wait_gone(pid).await;
    }

    /// Waits until `pid` is gone or a zombie (a grandchild is reparented away from us).
    async fn wait_gone(pid: i32) {
        let start = Instant::now();
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            let gone = state.as_deref().is_none_or(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            });
            if gone {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "grandchild {pid} still alive");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_cancelled_command_leaves_no_process_behind() {
        // The sidecar stops while the command hangs: the future is dropped, long before the
        // time limit, and the command's whole process group dies with it.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let script = format!(
            "sleep 30 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait",
            pid_file.display()
        );
        let argv = vec!["sh".to_owned(), "-c".to_owned(), script];
        let running =
            tokio::spawn(async move { run(&Action::Command(argv), Duration::from_secs(60)).await });
        let start = Instant::now();
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| parse_pid(&t))
            {
                break pid;
            }
            assert!(start.elapsed() < DEADLINE, "the command did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        wait_gone(pid).await;
    }

    /// A one-shot HTTP server: answers `status` and hands back the request head.
    async fn one_shot_server(status: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed before the end of the head");
                head.extend_from_slice(&buf[..n]);
            }
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (format!("http://{addr}/-/reload"), task)
    }

    #[tokio::test]
    async fn posts_to_the_reload_url() {
        let (url, server) = one_shot_server("200 OK").await;
        let action = Action::Http(parse_url(&url).unwrap());
        run(&action, Duration::from_secs(5)).await.unwrap();
        let head = server.await.unwrap();
        assert!(head.starts_with("POST /-/reload HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("content-length: 0"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_non_2xx_answer_is_an_error_with_the_status() {
        let (url, server) = one_shot_server("500 Internal Server Error").await;
        let action = Action::Http(parse_url(&url).unwrap());
        let err = run(&action, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(err, ReloadError::HttpStatus { status, .. } if status.as_u16() == 500),
            "{err:?}"
        );
        assert!(err.to_string().contains("500"), "{err}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_endpoint_that_does_not_answer_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/reload", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            // Keep the connection open without answering.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        });
        let action = Action::Http(parse_url(&url).unwrap());
        let err = run(&action, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, ReloadError::HttpTimeout { .. }), "{err:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/reload", listener.local_addr().unwrap());
        drop(listener);
        let action = Action::Http(parse_url(&url).unwrap());
        let err = run(&action, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, ReloadError::Http { .. }), "{err:?}");
    }
}
