//! Fleet behaviour against moto: the per-process call budget, coalescing of identical
//! calls in flight, and polls spread over the interval by each pod's own slot.

use crate::support::emulator::Request;
use crate::support::sidecar::{Sidecar, SidecarCmd};
use crate::support::wait::poll_until;
use crate::support::{Emulator, Run, shared, unique_prefix};
use serde_json::json;
use ssm_injector::source::Source;
use ssm_injector::spec::budget::BudgetConfig;
use ssm_injector::spec::{Spec, SpecInput};
use ssm_injector::watch::schedule::slot_of;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The requests of one operation whose body mentions `needle`, in arrival order.
fn requests_for(emu: &Emulator, op: &str, needle: &str) -> Vec<Request> {
    emu.requests()
        .into_iter()
        .filter(|r| r.op == op && r.body.contains(needle))
        .collect()
}

/// Checks that no window between two calls holds more calls than the token bucket
/// allows: `burst + rate * (t_j - t_i)`, with `slack` seconds for the trip to the proxy.
fn assert_within_budget(times: &[f64], rate: f64, burst: f64, slack: f64) {
    for i in 0..times.len() {
        for j in i + 1..times.len() {
            let calls = (j - i + 1) as f64;
            let allowed = burst + rate * (times[j] - times[i] + slack);
            assert!(
                calls <= allowed,
                "{calls} calls in {:.3} s, the budget allows {allowed:.2}: {times:?}",
                times[j] - times[i]
            );
        }
    }
}

/// `n` String parameters under a fresh prefix, and their `--param` flags.
fn seeded_params(emu: &Emulator, tag: &str, n: usize) -> (String, Vec<String>) {
    let prefix = unique_prefix(tag);
    let args = (0..n)
        .map(|i| {
            let name = format!("{prefix}/p{i:02}");
            emu.put_str(&name, &format!("v{i}"));
            format!("--param=K{i:02}={name}")
        })
        .collect();
    (prefix, args)
}

#[test]
fn a_one_shot_render_is_not_slowed_by_its_own_budget() {
    // 30 names are 3 calls; at 1 call/s after a burst of 1 the budget would hold the
    // second and third back (1 s and 2 s, each logged "call budget: waited"). The budget
    // protects the account from repeated polls; a render runs once, at a pod's start.
    let emu = shared();
    let (_, args) = seeded_params(emu, "first-render", 30);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let run = Run::render(emu, &args)
        .via_proxy(emu)
        .env("RUST_LOG", "ssm_injector=debug")
        .arg("--max-tps=1")
        .arg("--burst=1")
        .arg(format!("--output={}", out.display()))
        .run();
    run.assert_code(0);
    let text = std::fs::read_to_string(&out).expect("output");
    assert!(text.contains("K00='v0'") && text.contains("K29='v29'"));
    let stderr = &run.stderr;
    assert!(
        stderr.contains("fetched") && !stderr.contains("call budget: waited"),
        "the render waited for its budget:\n{stderr}"
    );
}

#[test]
fn a_sidecar_keeps_to_its_call_budget_after_its_first_render() {
    // The first fetch of `render --watch` is the pod's first render: not throttled. The
    // polls after it keep to the budget: 6 calls per poll at 4/s after a burst of 2.
    let emu = shared();
    let (prefix, args) = seeded_params(emu, "budget", 60);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let mut sidecar = SidecarCmd::new(&emu.proxy)
        .args(&args)
        .args(["--max-tps=4", "--burst=2", "--concurrency=8"])
        .args(["--interval=1s", "--jitter=0"])
        .args([format!("--output={}", out.display())])
        .spawn();
    sidecar.wait_ok_polls(1.0, Duration::from_secs(30));
    let wait_series = "ssm_injector_budget_wait_seconds_total";
    let first_wait = sidecar.metric(wait_series);
    let after_first = requests_for(emu, "GetParameters", &prefix).len();
    sidecar.wait_ok_polls(2.0, Duration::from_secs(30));
    let waited = sidecar.metric(wait_series).unwrap_or(0.0);
    assert_eq!(
        first_wait,
        Some(0.0),
        "the first render waited for the budget; stderr:\n{}",
        sidecar.stderr()
    );
    assert!(
        waited > 0.0,
        "the second poll (6 calls, burst 2) did not wait for the budget"
    );
    let text = std::fs::read_to_string(&out).expect("output");
    assert!(text.contains("K00='v0'") && text.contains("K59='v59'"));

    let times: Vec<f64> = requests_for(emu, "GetParameters", &prefix)
        .iter()
        .map(|r| r.t)
        .collect();
    assert_eq!(after_first, 6, "60 names are 6 calls of 10");
    assert!(times.len() >= 12, "two polls: {times:?}");
    // The second poll's calls. Slack of one token (0.25 s): a call that opens a new
    // connection reaches the proxy later than one that reuses it; a budget of 8/s would
    // still put 6 calls in 0.5 s, over 2 + 4 × 0.75.
    assert_within_budget(&times[6..12], 4.0, 2.0, 0.25);
}

#[test]
fn without_a_budget_wait_the_same_calls_go_at_once() {
    // The control for the sidecar test above: unthrottled, 6 calls go together, so the
    // budget check above really is what spaced them.
    let emu = shared();
    let (prefix, args) = seeded_params(emu, "no-budget", 60);
    let dir = tempfile::tempdir().expect("tempdir");
    Run::render(emu, &args)
        .via_proxy(emu)
        .arg("--concurrency=8")
        .arg(format!("--output={}", dir.path().join("app.env").display()))
        .run()
        .assert_code(0);
    let times: Vec<f64> = requests_for(emu, "GetParameters", &prefix)
        .iter()
        .map(|r| r.t)
        .collect();
    assert_eq!(times.len(), 6);
    let span = times[5] - times[0];
    assert!(
        span < 1.25,
        "6 calls at 4/s with burst 2 would take 1 s or more; unbudgeted they took {span:.3} s"
    );
}

#[test]
fn a_budget_out_of_range_is_refused_before_any_call() {
    let emu = shared();
    let dir = tempfile::tempdir().expect("tempdir");
    Run::render(emu, ["--param=A=/x", "--max-tps=0"])
        .arg(format!("--output={}", dir.path().join("a.env").display()))
        .run()
        .assert_code(2)
        .assert_stderr_has(&["--max-tps must be between 0.001 and 10000"]);
    Run::render(emu, ["--param=A=/x", "--burst=0"])
        .arg(format!("--output={}", dir.path().join("a.env").display()))
        .run()
        .assert_code(2)
        .assert_stderr_has(&["--burst must be between 1 and 10000"]);
    assert!(!dir.path().join("a.env").exists());
}

fn source_for(emu: &Emulator, concurrency: usize) -> Source {
    let rt_loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&emu.proxy)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(Source::from_loader(
        rt_loader,
        concurrency,
        BudgetConfig::default(),
    ))
    .expect("source")
}

fn spec_of(names: &[String], path: Option<&str>) -> Spec {
    let input = SpecInput {
        params: names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("K{i}={n}"))
            .collect(),
        paths: path.into_iter().map(str::to_owned).collect(),
        recursive: true,
        outputs_optional: true,
        ..SpecInput::default()
    };
    Spec::build(input, &|_| None).expect("spec")
}

#[test]
fn concurrent_refreshes_of_the_same_names_share_one_call() {
    // A private emulator: the delay rule must not slow other tests down.
    let emu = Emulator::start();
    let names: Vec<String> = (0..25)
        .map(|i| {
            let n = format!("/coalesce/p{i:02}");
            emu.put_secure(&n, &format!("s{i}"));
            n
        })
        .collect();
    for i in 0..12 {
        emu.put_str(&format!("/coalesce-path/q{i:02}"), "x");
    }
    let spec = spec_of(&names, Some("/coalesce-path/"));
    // Every call takes 300 ms, so the refreshes below overlap.
    emu.faults(json!([{"op": "*", "delay_ms": 300}]));
    let source = source_for(&emu, 4);
    emu.reset_calls();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt.block_on(async {
        let fetches = (0..8).map(|_| source.fetch(&spec));
        futures::future::join_all(fetches).await
    });
    let first = results[0].as_ref().expect("fetch");
    assert_eq!(first.len(), 25 + 12);
    for r in &results {
        let values = r.as_ref().expect("every refresh gets the values");
        let shown: Vec<(String, String)> = values
            .iter()
            .map(|e| (e.name.clone(), e.value.expose().to_owned()))
            .collect();
        let want: Vec<(String, String)> = first
            .iter()
            .map(|e| (e.name.clone(), e.value.expose().to_owned()))
            .collect();
        assert_eq!(shown, want);
    }
    // 8 refreshes of 25 names and a 12-parameter path: one refresh's calls, not eight.
    assert_eq!(emu.calls_of("GetParameters"), 3, "{:?}", emu.calls());
    assert_eq!(emu.calls_of("GetParametersByPath"), 2, "{:?}", emu.calls());
    assert_eq!(
        source.calls().coalesced(),
        7 * (3 + 1),
        "7 of 8 refreshes were answered by the first one's calls"
    );

    // Refreshes one after another are not cached: each asks AWS again.
    emu.faults(json!([]));
    emu.reset_calls();
    rt.block_on(async {
        source.fetch(&spec).await.expect("fetch");
        source.fetch(&spec).await.expect("fetch");
    });
    assert_eq!(emu.calls_of("GetParameters"), 6);
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Distance between two phases on a circle of `period` seconds.
fn phase_distance(a: f64, b: f64, period: f64) -> f64 {
    let d = (a - b).rem_euclid(period);
    d.min(period - d)
}

/// Starts one sidecar per id, each watching its own parameter and writing into `dir`.
/// Every other one gets its identity through HOSTNAME instead of the flag (the Kubernetes
/// default).
fn start_fleet(
    emu: &Emulator,
    prefix: &str,
    ids: &[&str],
    interval: &str,
    dir: &Path,
) -> Vec<Sidecar> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let mut cmd = SidecarCmd::new(&emu.proxy).args([
                format!("--param=V={prefix}/{id}"),
                format!("--output={}/{id}.env", dir.display()),
                format!("--interval={interval}"),
                "--jitter=0".to_owned(),
            ]);
            cmd = if i % 2 == 0 {
                cmd.args([format!("--instance-id={id}")])
            } else {
                cmd.env("HOSTNAME", id)
            };
            cmd.no_listen().spawn()
        })
        .collect()
}

#[test]
fn each_pod_polls_at_its_own_slot_and_keeps_it_after_a_restart() {
    let emu = shared();
    let prefix = unique_prefix("slots");
    let ids = [
        "web-6f7c9-a1b2c",
        "web-6f7c9-d3e4f",
        "api-85d4f-g5h6i",
        "api-85d4f-j7k8l",
    ];
    for id in ids {
        emu.put_str(&format!("{prefix}/{id}"), "v");
    }
    let period = 2.0;
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..2 {
        // All pods start at the same moment, as after a node drain or a rollout.
        let started = unix_now();
        let mut fleet = start_fleet(emu, &prefix, &ids, "2s", dir.path());
        // Wait for two regular polls of each pod after its start-up poll.
        let calls_of = |id: &str| -> Vec<f64> {
            requests_for(emu, "GetParameters", &format!("{prefix}/{id}\""))
                .into_iter()
                .map(|r| r.t)
                .filter(|t| *t >= started)
                .collect()
        };
        poll_until(Duration::from_secs(30), "3 polls per pod", || {
            for sc in fleet.iter_mut() {
                sc.assert_running();
            }
            ids.iter().all(|id| calls_of(id).len() >= 3).then_some(())
        });
        drop(fleet);
        let mut phases = Vec::new();
        for id in ids {
            let want = slot_of(id) * period;
            // The first call is the start-up poll; the others are on the slot.
            for t in &calls_of(id)[1..] {
                let d = phase_distance(t.rem_euclid(period), want, period);
                assert!(
                    d < 0.25,
                    "round {round}: {id} polled {d:.3} s away from its slot {want:.3} s"
                );
            }
            phases.push(want);
        }
        // The slots themselves are spread, not one moment for all.
        let spread = phases.iter().cloned().fold(f64::MIN, f64::max)
            - phases.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 0.5, "slots {phases:?}");
    }
}
