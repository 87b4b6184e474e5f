//! `ssm-injector hub` end to end: the real binary over real HTTPS (rcgen certificates),
//! reading versions from moto through the counting proxy, with rotations made by boto3.

use crate::support::emulator::Request;
use crate::support::hub::{HubProcess, WAITING};
use crate::support::wait::eventually;
use crate::support::{Emulator, shared, unique_prefix};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// Starts `ssm-injector hub --interval 500ms` against the emulator's proxy.
fn hub(emu: &Emulator) -> HubProcess {
    HubProcess::start(emu, "500ms", &[])
}

/// The `known` a client sends back: the tokens of the last answer.
fn known(answer: &Value) -> Value {
    answer["versions"].clone()
}

/// Longest time from a change to the answer of a request held on it: a few hub intervals
/// (500 ms), far less than the 30 s the held requests wait, so an answer that came only
/// because the wait ran out (no wake-up) fails.
const WOKEN_WITHIN: Duration = Duration::from_secs(10);

/// Sends `held` (a watch with the current tokens), waits until the hub holds it (its
/// waiting-clients gauge), then makes `change` (blocking calls to the emulator). Returns
/// the answer and when the change was made; fails if the request was answered before the
/// change or not within [`WOKEN_WITHIN`] of it.
async fn answer_to_change<R>(
    hub: &HubProcess,
    held: &Value,
    change: impl FnOnce() -> R,
) -> ((u16, Value), Instant) {
    let watch = hub.watch(held);
    tokio::pin!(watch);
    tokio::select! {
        early = &mut watch => panic!("answered before the change: {early:?}"),
        () = hub.wait_holding(1.0, Duration::from_secs(10)) => {}
    }
    let _ = tokio::task::block_in_place(change);
    let changed_at = Instant::now();
    let answer = watch.await;
    assert!(
        changed_at.elapsed() < WOKEN_WITHIN,
        "answered {:?} after the change: not woken by it; {answer:?}",
        changed_at.elapsed()
    );
    (answer, changed_at)
}

/// Lowercase hex SHA-256 of the sorted `"<name> <version>\n"` lines, computed here
/// independently of the hub's code.
fn digest(params: &[(&str, i64)]) -> String {
    let mut lines: Vec<String> = params.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    lines.sort();
    let d = ring::digest::digest(&ring::digest::SHA256, lines.concat().as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_request_gets_tokens_at_once_and_a_rotation_wakes_a_held_poll() {
    let emu = shared();
    let p = unique_prefix("hub-first");
    let (a, b) = (format!("{p}/a"), format!("{p}/b"));
    emu.put_secure(&a, "one");
    emu.put_str(&b, "x");
    emu.put_str(&b, "y");
    let hub = hub(emu);
    assert_eq!(
        hub.get("/readyz").await.map(|r| r.0),
        Some(200),
        "nothing to watch yet"
    );

    let missing = format!("{p}/nope");
    let req = json!({"names": [a, b, missing]});
    let started = Instant::now();
    let (status, first) = hub.watch(&req).await;
    assert_eq!(status, 200, "{first}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
    let ka = format!("name:{a}");
    let kb = format!("name:{b}");
    let km = format!("name:{missing}");
    assert_eq!(first["versions"][&ka], "1");
    assert_eq!(first["versions"][&kb], "2");
    assert_eq!(first["versions"][&km], "missing");
    assert_eq!(first["changed"].as_array().map(Vec::len), Some(3));
    assert_eq!(first["interval_ms"], 500);
    assert_eq!(hub.get("/readyz").await.map(|r| r.0), Some(200));

    // Held with the current tokens; a rotation answers it within a few intervals.
    let held = json!({"names": [a, b, missing], "known": known(&first), "wait_seconds": 30});
    let ((status, answer), rotated_at) =
        answer_to_change(&hub, &held, || emu.put_secure(&a, "two")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], json!([ka]));
    assert_eq!(answer["versions"][&ka], "2");
    assert!(
        rotated_at.elapsed() < Duration::from_secs(3),
        "woken within the interval"
    );
    assert!(answer["spread_ms"].as_u64().is_some());
    let log = hub.log();
    assert!(
        !log.contains("one") && !log.contains("two"),
        "no value in the log:\n{log}"
    );
}

/// Forgets the emulator's requests, waits for five more interval polls of the hub and
/// returns the requests made meanwhile.
async fn requests_over_five_polls(
    emu: &Emulator,
    hub: &HubProcess,
    limit: Duration,
    with: &str,
) -> Vec<Request> {
    const POLLS: &str = "ssm_injector_hub_polls_total{kind=\"interval\",outcome=\"ok\"}";
    emu.reset_calls();
    let before = hub.metric(POLLS).await.unwrap_or(0.0);
    eventually(limit, &format!("5 polls with {with}"), || async {
        let n = hub.metric(POLLS).await?;
        (n >= before + 5.0).then_some(())
    })
    .await;
    emu.requests()
}

/// DescribeParameters requests mentioning `needle`, grouped into polls: each poll starts
/// with a first page (no NextToken). Calls before the first first page and the last
/// group (maybe still going) are left out, so only whole polls are counted.
fn polls(requests: &[Request], needle: &str) -> Vec<usize> {
    let mut groups: Vec<usize> = Vec::new();
    for r in requests
        .iter()
        .filter(|r| r.op == "DescribeParameters" && r.body.contains(needle))
    {
        if !r.body.contains("NextToken") {
            groups.push(1);
        } else if let Some(g) = groups.last_mut() {
            *g += 1;
        }
    }
    groups.pop();
    groups
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_watching_the_same_names_cost_the_aws_calls_of_one() {
    let emu = Emulator::start();
    let p = unique_prefix("hub-fleet");
    let names: Vec<String> = (0..20).map(|i| format!("{p}/n{i:02}")).collect();
    for n in &names {
        emu.put_str(n, "v");
    }
    let hub = hub(&emu);
    let (_, first) = hub.watch(&json!({"names": names})).await;
    let held = json!({"names": names, "known": known(&first), "wait_seconds": 55});

    // One client, held, for a few polls.
    let one = {
        let (hub, held) = (&hub, held.clone());
        async move { hub.watch(&held).await }
    };
    let phase_one = async {
        hub.wait_holding(1.0, Duration::from_secs(10)).await;
        requests_over_five_polls(&emu, &hub, Duration::from_secs(20), "one client").await
    };
    let single = tokio::select! {
        a = one => panic!("the one client was answered early: {a:?}"),
        r = phase_one => r,
    };
    let single = polls(&single, &p);
    assert!(single.len() >= 3, "polls seen: {single:?}");
    let per_poll = single[0];
    assert!(
        single.iter().all(|&n| n == per_poll),
        "one client: {single:?}"
    );

    // 1,000 clients, each holding a long poll on its own connection.
    let clients = async {
        let all = (0..1000).map(|_| {
            let (hub, held) = (&hub, held.clone());
            async move { hub.watch(&held).await }
        });
        futures::future::join_all(all).await
    };
    let phase_two = async {
        eventually(Duration::from_secs(60), "1,000 clients waiting", || async {
            let n = hub.metric(WAITING).await?;
            (n >= 1000.0).then_some(())
        })
        .await;
        let requests =
            requests_over_five_polls(&emu, &hub, Duration::from_secs(30), "1,000 clients").await;
        let waiting = hub.metric(WAITING).await;
        (requests, waiting)
    };
    let (many, waiting) = tokio::select! {
        answers = clients => panic!("clients answered early: {:?}", answers.first()),
        r = phase_two => r,
    };
    assert!(waiting >= Some(1000.0), "{waiting:?}");
    let fleet = polls(&many, &p);
    eprintln!("calls per poll: 1 client {single:?}, 1,000 clients {fleet:?}");
    assert!(fleet.len() >= 3, "polls seen: {fleet:?}");
    assert!(
        fleet.iter().all(|&n| n == per_poll),
        "1 client: {per_poll} calls per poll; 1,000 clients: {fleet:?}"
    );
    // And nothing but those polls.
    assert!(
        many.iter().all(|r| r.op == "DescribeParameters"),
        "{:?}",
        many.iter().map(|r| &r.op).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_token_is_the_digest_of_its_names_and_versions_and_moves_when_one_is_added() {
    let emu = shared();
    let p = unique_prefix("hub-path");
    let path = format!("{p}/cfg/");
    let (x, y, deep) = (
        format!("{path}x"),
        format!("{path}y"),
        format!("{path}sub/z"),
    );
    emu.put_str(&x, "1");
    emu.put_str(&y, "1");
    emu.put_str(&y, "2");
    emu.put_secure(&deep, "s");
    let hub = hub(emu);
    let key_r = format!("path:{path}:r");
    let key_1 = format!("path:{path}:1");
    let req =
        json!({"paths": [{"path": path, "recursive": true}, {"path": path, "recursive": false}]});
    let (status, first) = hub.watch(&req).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["versions"][&key_r],
        digest(&[(&x, 1), (&y, 2), (&deep, 1)])
    );
    assert_eq!(first["versions"][&key_1], digest(&[(&x, 1), (&y, 2)]));

    let new = format!("{path}sub/new");
    let held = json!({"paths": req["paths"], "known": known(&first), "wait_seconds": 30});
    let ((status, answer), _) = answer_to_change(&hub, &held, || emu.put_str(&new, "n")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], json!([key_r]), "only the recursive path");
    assert_eq!(
        answer["versions"][&key_r],
        digest(&[(&x, 1), (&y, 2), (&deep, 1), (&new, 1)])
    );

    let (_, empty) = hub
        .watch(&json!({"paths": [{"path": format!("{p}/empty/")}]}))
        .await;
    assert_eq!(empty["versions"][format!("path:{p}/empty/:r")], "missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_label_changes_the_label_token() {
    let emu = shared();
    let p = unique_prefix("hub-label");
    let name = format!("{p}/key");
    emu.put_secure(&name, "a");
    emu.put_secure(&name, "b");
    emu.aws(
        "ssm",
        "label_parameter_version",
        json!({"Name": name, "ParameterVersion": 1, "Labels": ["live"]}),
    );
    let hub = hub(emu);
    let (live, v2, plain) = (format!("{name}:live"), format!("{name}:2"), name.clone());
    let (status, first) = hub.watch(&json!({"names": [live, v2, plain]})).await;
    assert_eq!(status, 200, "{first}");
    let key = format!("name:{live}");
    assert_eq!(first["versions"][&key], "1");
    assert_eq!(first["versions"][format!("name:{v2}")], "2");
    assert_eq!(first["versions"][format!("name:{plain}")], "2");

    let held = json!({"names": [live, v2, plain], "known": known(&first), "wait_seconds": 30});
    let ((status, answer), _) = answer_to_change(&hub, &held, || {
        emu.aws(
            "ssm",
            "label_parameter_version",
            json!({"Name": name, "ParameterVersion": 2, "Labels": ["live"]}),
        );
    })
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], json!([key]));
    assert_eq!(answer["versions"][&key], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_manager_reference_is_tracked_by_its_current_version_id() {
    let emu = shared();
    let secret = unique_prefix("hub-secret")
        .trim_start_matches('/')
        .to_owned();
    emu.create_secret(&secret, "s1");
    let current = |emu: &Emulator| -> String {
        let d = emu.aws(
            "secretsmanager",
            "describe_secret",
            json!({"SecretId": secret}),
        );
        let stages = d["VersionIdsToStages"].as_object().expect("stages").clone();
        stages
            .into_iter()
            .find(|(_, s)| {
                s.as_array()
                    .is_some_and(|a| a.contains(&json!("AWSCURRENT")))
            })
            .map(|(id, _)| id)
            .expect("AWSCURRENT")
    };
    let hub = hub(emu);
    let name = format!("/aws/reference/secretsmanager/{secret}");
    let key = format!("name:{name}");
    let (status, first) = hub.watch(&json!({"names": [name]})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["versions"][&key], current(emu));

    let held = json!({"names": [name], "known": known(&first), "wait_seconds": 30});
    let ((status, answer), _) = answer_to_change(&hub, &held, || {
        emu.aws(
            "secretsmanager",
            "put_secret_value",
            json!({"SecretId": secret, "SecretString": "s2"}),
        );
    })
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], json!([key]));
    assert_eq!(answer["versions"][&key], current(emu));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_name_and_oversize_bodies_get_413() {
    let emu = shared();
    let hub = hub(emu);
    let (status, v) = hub.watch(&json!({"names": ["/ok", "/bad name!"]})).await;
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("/bad name!"),
        "{v}"
    );
    let (status, v) = hub.watch(&json!({"names": ["/app/db#password"]})).await;
    assert_eq!(status, 400);
    let e = v["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("/app/db#password") && e.contains("#field"),
        "{v}"
    );
    let (status, v) = hub
        .watch(&json!({"paths": [{"path": "no-slash", "recursive": true}]}))
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().unwrap_or_default().contains("no-slash"),
        "{v}"
    );
    let names: Vec<String> = (0..1001).map(|i| format!("/n{i}")).collect();
    let (status, _) = hub.watch(&json!({ "names": names })).await;
    assert_eq!(status, 400);
    // A body declared larger than the limit is refused before it is read.
    let (status, text) = hub
        .send_declared(300 * 1024, b"{\"names\": [\"/a\"], \"pad\": \"xxxx")
        .await
        .unwrap_or_else(|| panic!("no answer from the hub:\n{}", hub.log()));
    assert_eq!(status, 413, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(v["error"].is_string());
    assert_eq!(
        hub.metric("ssm_injector_hub_limit_refusals_total{limit=\"body_size\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_sends_no_spurious_change_to_clients_that_resend_their_tokens() {
    let emu = shared();
    let p = unique_prefix("hub-restart");
    let (a, sub) = (format!("{p}/a"), format!("{p}/dir/"));
    emu.put_str(&a, "1");
    emu.put_str(&format!("{sub}x"), "1");
    emu.aws(
        "ssm",
        "label_parameter_version",
        json!({"Name": a, "ParameterVersion": 1, "Labels": ["live"]}),
    );
    let names = json!([a, format!("{a}:live"), format!("{p}/missing")]);
    let paths = json!([{"path": sub, "recursive": true}]);
    let mut hub = hub(emu);
    let (_, first) = hub.watch(&json!({"names": names, "paths": paths})).await;
    // A new process on the same port, certificate and flags.
    hub.restart();
    let started = Instant::now();
    let (status, again) = hub
        .watch(&json!({"names": names, "paths": paths, "known": known(&first), "wait_seconds": 2}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["changed"], json!([]), "{again}");
    assert_eq!(again["versions"], first["versions"]);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "held until the wait ran out"
    );
    assert_eq!(
        hub.metric("ssm_injector_hub_answers_total{reason=\"timeout\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_poll_is_let_go_when_its_client_leaves_and_answered_at_once_when_the_hub_stops() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = shared();
    let name = format!("{}/db", unique_prefix("hub-stop"));
    emu.put_str(&name, "v1");
    let mut hub = hub(emu);
    let (status, first) = hub.watch(&json!({"names": [name]})).await;
    assert_eq!(status, 200, "{first}");
    let held = json!({"names": [name], "known": known(&first), "wait_seconds": 55});

    // Two watches on one keep-alive connection, then `/healthz` on it: each answered in
    // turn (the long poll is served on the small path, the rest by hyper).
    let body = json!({"names": [name], "wait_seconds": 0}).to_string();
    let watch_head = |close: &str| {
        format!(
            "POST /v1/watch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{close}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut conn = hub.connect().await.expect("connect");
    let requests = format!(
        "{}{}GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        watch_head(""),
        watch_head("")
    );
    conn.write_all(requests.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{text}");
    assert_eq!(text.matches("\"versions\"").count(), 2, "{text}");
    assert!(text.ends_with("\r\n\r\nok\n"), "{text}");

    // A client that leaves while held: the hub lets its request go.
    let body = held.to_string();
    let mut leaving = hub.connect().await.expect("connect");
    leaving
        .write_all(
            format!(
                "POST /v1/watch HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    leaving.flush().await.expect("flush");
    hub.wait_holding(1.0, Duration::from_secs(10)).await;
    drop(leaving);
    eventually(
        Duration::from_secs(10),
        "the request of the client that left let go",
        || async { (hub.metric(WAITING).await? == 0.0).then_some(()) },
    )
    .await;

    // A request held when the hub is told to stop is answered at once, with no change.
    let stopped_at;
    let (status, answer) = {
        let watch = hub.watch(&held);
        tokio::pin!(watch);
        tokio::select! {
            early = &mut watch => panic!("answered before the stop: {early:?}"),
            () = hub.wait_holding(1.0, Duration::from_secs(10)) => {}
        }
        stopped_at = Instant::now();
        hub.signal("TERM");
        watch.await
    };
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], json!([]), "{answer}");
    assert_eq!(answer["versions"][format!("name:{name}")], "1", "{answer}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "answered {:?} after SIGTERM",
        stopped_at.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.running() {
        assert!(Instant::now() < deadline, "still running:\n{}", hub.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_the_hub_serve_its_rotated_certificate_now_and_never_stops_it() {
    let emu = shared();
    // Files checked once an hour: only SIGHUP can bring the new pair in time.
    let mut hub = HubProcess::start(emu, "500ms", &["--cert-check-interval", "1h"]);
    let first = hub.served_certificate().await.expect("serving");
    let hups = |hub: &HubProcess| {
        hub.log()
            .matches("SIGHUP: re-reading the certificate files now")
            .count()
    };

    hub.signal("HUP");
    eventually(Duration::from_secs(10), "the SIGHUP is logged", || async {
        (hups(&hub) == 1).then_some(())
    })
    .await;
    assert!(hub.running(), "SIGHUP stopped the hub:\n{}", hub.log());
    assert_eq!(hub.served_certificate().await, Some(first.clone()));

    let new = hub.rotate_certificate("hub-2");
    assert_ne!(new, first);
    let sent = Instant::now();
    hub.signal("HUP");
    eventually(
        Duration::from_secs(5),
        "new handshakes present the rotated certificate after SIGHUP",
        || async { (hub.served_certificate().await.as_ref() == Some(&new)).then_some(()) },
    )
    .await;
    eprintln!(
        "rotated certificate served {:?} after SIGHUP",
        sent.elapsed()
    );
    assert!(hub.running(), "{}", hub.log());
    assert_eq!(hups(&hub), 2, "{}", hub.log());
    assert_eq!(hub.get("/healthz").await.map(|r| r.0), Some(200));
}

/// The time from a rotation of `name` to the answer of a watch held on it, for `n`
/// rotations in a row; `known` is the client's tokens, kept current.
async fn times_to_hear(
    emu: &Emulator,
    hub: &HubProcess,
    name: &str,
    known: &mut Value,
    n: usize,
) -> Vec<Duration> {
    let mut times = Vec::new();
    for i in 0..n {
        let held = json!({"names": [name], "known": known, "wait_seconds": 30});
        let ((status, answer), rotated_at) =
            answer_to_change(hub, &held, || emu.put_str(name, &format!("v{i}"))).await;
        times.push(rotated_at.elapsed());
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["changed"],
            json!([format!("name:{name}")]),
            "{answer}"
        );
        *known = answer["versions"].clone();
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_made_up_names_gets_429_and_does_not_delay_rotations_for_others() {
    let emu = shared();
    let p = unique_prefix("hub-flood");
    let real = format!("{p}/real");
    emu.put_str(&real, "v");
    // 500 names per client address (--auth none): 10 DescribeParameters calls a poll at
    // most, well within the hub's budget at a 1 s interval.
    let hub = HubProcess::start(emu, "1s", &["--max-keys-per-client", "500"]);
    let (status, first) = hub.watch(&json!({"names": [real]})).await;
    assert_eq!(status, 200, "{first}");
    let mut known = known(&first);
    let calm = times_to_hear(emu, &hub, &real, &mut known, 4).await;

    // Another address floods: 20,000 made-up names, 100 per request then 1,000 per request
    // (the most a request may name), all at once.
    let flooder: std::net::IpAddr = [127, 0, 0, 2].into();
    let flood = |from: usize, count: usize| {
        let names: Vec<String> = (from..from + count)
            .map(|i| format!("{p}/made-up/{i}"))
            .collect();
        let body = json!({"names": names, "wait_seconds": 0})
            .to_string()
            .into_bytes();
        let hub = &hub;
        async move {
            let (status, text) = hub
                .send_from(Some(flooder), "POST", "/v1/watch", body, None)
                .await
                .unwrap_or_else(|| panic!("no answer from the hub:\n{}", hub.log()));
            (status, text)
        }
    };
    for i in 0..5 {
        let (status, text) = flood(i * 100, 100).await;
        assert_eq!(status, 200, "within the limit: {text}");
    }
    let (status, text) = flood(500, 1).await;
    assert_eq!(status, 429, "{text}");
    assert!(
        text.contains("address 127.0.0.2 has the hub watch 500 names and paths and this request adds 1: at most 500 per client (--max-keys-per-client)"),
        "{text}"
    );
    let rest = futures::future::join_all((0..19).map(|i| flood(1000 + i * 1000, 1000))).await;
    assert!(rest.iter().all(|(status, _)| *status == 429), "{rest:?}");

    let flooded = times_to_hear(emu, &hub, &real, &mut known, 4).await;
    let (calm_max, flooded_max) = (
        calm.iter().max().copied().unwrap_or_default(),
        flooded.iter().max().copied().unwrap_or_default(),
    );
    eprintln!("time to hear a rotation: {calm:?} without the flood, {flooded:?} with it");
    // The floor: a rotation may wait a whole interval (1 s) to be read.
    assert!(
        flooded_max <= 2 * calm_max.max(Duration::from_secs(1)),
        "a flood delayed rotations: {flooded:?} against {calm:?} without it"
    );
    assert_eq!(
        hub.metric("ssm_injector_hub_refusals_total{status=\"429\"}")
            .await,
        Some(20.0)
    );
}

#[test]
fn a_malformed_region_stops_the_hub_with_a_usage_error_before_it_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let ca = crate::support::pki::Ca::new("hub region test CA");
    let pair = ca.server_pair("hub");
    std::fs::write(&cert, pair.cert).expect("write cert");
    std::fs::write(&key, pair.key).expect("write key");
    for (flag, env, named) in [
        (Some("eu_west_1"), None, "--region"),
        (None, Some("eu_west_1"), "environment variable AWS_REGION"),
    ] {
        let stderr = dir.path().join("stderr.log");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ssm-injector"));
        cmd.args(["hub", "--interval", "1s", "--listen", "127.0.0.1:0"])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .env_clear()
            .envs(crate::support::run::clean_env())
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if let Some(r) = flag {
            cmd.args(["--region", r]);
        }
        if let Some(r) = env {
            cmd.env("AWS_REGION", r);
        }
        let mut child = cmd.spawn().expect("start the hub");
        // A hub that got past the check would serve until killed.
        let status =
            crate::support::wait::within(Duration::from_secs(20), || match child.try_wait() {
                Ok(Some(status)) => Ok(status),
                _ => Err(()),
            });
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        let status = status.unwrap_or_else(|()| panic!("{named}: the hub started:\n{log}"));
        assert_eq!(status.code(), Some(2), "{named}: {log}");
        assert!(
            log.contains(&format!("{named}: \"eu_west_1\" is not an AWS region")),
            "{named}: {log}"
        );
    }
}
