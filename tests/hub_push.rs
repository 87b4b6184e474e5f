//! Push refresh end to end: a real hub polling only once an hour reads an SQS queue in moto
//! (same server as SSM, through the counting proxy), a real sidecar follows it, and
//! EventBridge-shaped messages sent with boto3 are all that can explain a fast change.

use crate::hub_follow::dotenv_value;
use crate::support::hub::HubProcess;
use crate::support::sidecar::{Sidecar, SidecarCmd};
use crate::support::wait::poll_until;
use crate::support::{Emulator, Run, shared, unique_prefix};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const COVERING: &str = "ssm_injector_hub_covering";
/// The hub's StatefulSet-style name: its queue is `…-1`.
const INSTANCE: &str = "ssm-injector-hub-1";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A queue for one test (`<prefix>-hub-1`), and the `--queue-url` template naming it.
fn queue(emu: &Emulator, prefix: &str) -> (String, String) {
    let base: String = prefix
        .trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let r = emu.aws(
        "sqs",
        "create_queue",
        json!({"QueueName": format!("{base}-hub-1")}),
    );
    let url = r["QueueUrl"].as_str().expect("QueueUrl").to_owned();
    let template = url
        .strip_suffix("-hub-1")
        .map(|u| format!("{u}-hub-{{ordinal}}"))
        .expect("queue url ends in the name");
    (url, template)
}

/// Creates the test's queue (deleted again unless `keep_queue`) and starts a hub that
/// polls every `interval` and reads the queue; returns the queue's URL and the hub.
fn push_hub(
    emu: &Emulator,
    prefix: &str,
    interval: &str,
    keep_queue: bool,
) -> (String, HubProcess) {
    let (queue_url, template) = queue(emu, prefix);
    if !keep_queue {
        emu.aws("sqs", "delete_queue", json!({"QueueUrl": queue_url}));
    }
    let hub = HubProcess::start(
        emu,
        interval,
        &["--queue-url", &template, "--instance-id", INSTANCE],
    );
    (queue_url, hub)
}

fn send(emu: &Emulator, queue_url: &str, body: &str) {
    emu.aws(
        "sqs",
        "send_message",
        json!({"QueueUrl": queue_url, "MessageBody": body}),
    );
}

/// Messages in the queue, visible or in flight.
fn queued(emu: &Emulator, queue_url: &str) -> u64 {
    let r = emu.aws(
        "sqs",
        "get_queue_attributes",
        json!({"QueueUrl": queue_url, "AttributeNames": [
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}),
    );
    let attrs = &r["Attributes"];
    [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    .iter()
    .map(|k| {
        attrs[k]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// A `Parameter Store Change` event as EventBridge delivers it to SQS.
fn parameter_event(name: &str) -> String {
    json!({"version": "0", "id": "9547ef2d-3b7e-4057-b6cb-5fdf09ee7c8f",
        "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}")],
        "detail": {"operation": "Update", "name": name, "type": "String"}})
    .to_string()
}

/// Waits until `key` in the sidecar's dotenv file is `want`.
fn wait_value(sc: &mut Sidecar, out: &Path, key: &str, want: &str) {
    poll_until(
        Duration::from_secs(20),
        &format!("{key}={want} in the file"),
        || {
            sc.assert_running();
            (dotenv_value(out, key).as_deref() == Some(want)).then_some(())
        },
    );
}

/// Waits until every message of the queue is deleted.
fn wait_drained(emu: &Emulator, queue_url: &str) {
    poll_until(Duration::from_secs(10), "the messages deleted", || {
        (queued(emu, queue_url) == 0).then_some(())
    });
}

/// A sidecar that follows `hub` for `params` and polls AWS itself only once an hour.
fn follower(emu: &Emulator, hub: &HubProcess, params: &[String], out: &Path) -> Sidecar {
    let mut args: Vec<String> = params.iter().map(|p| format!("--param={p}")).collect();
    args.extend([
        format!("--output={}", out.display()),
        "--interval=1h".to_owned(),
        format!("--hub={}", hub.url),
        format!("--hub-ca={}", hub.ca_file.display()),
    ]);
    let mut sc = SidecarCmd::new(&emu.proxy).args(args).spawn();
    sc.wait_ready(Duration::from_secs(20));
    poll_until(Duration::from_secs(20), "the hub covering", || {
        sc.assert_running();
        (sc.metric(COVERING) == Some(1.0)).then_some(())
    });
    sc
}

/// Runs one of the hub client's requests from a synchronous test.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn hub_get(hub: &HubProcess, path: &str) -> Option<(u16, String)> {
    block_on(hub.get(path))
}

fn hub_metric(hub: &HubProcess, series: &str) -> Option<f64> {
    block_on(hub.metric(series))
}

fn events(outcome: &str) -> String {
    format!("ssm_injector_hub_events_total{{outcome=\"{outcome}\"}}")
}

#[test]
fn a_rotation_announced_by_an_event_reaches_every_followers_file_long_before_any_poll() {
    let emu = shared();
    let prefix = unique_prefix("push-rotate");
    let (a, b) = (format!("{prefix}/a"), format!("{prefix}/b"));
    emu.put_str(&a, "a1");
    emu.put_secure(&b, "b1");
    let (queue_url, hub) = push_hub(emu, &prefix, "1h", true);
    let dir = tempfile::tempdir().expect("tempdir");
    // Three pods following the hub; each would poll AWS itself only once an hour.
    let mut followers: Vec<(Sidecar, std::path::PathBuf)> = (0..3)
        .map(|i| {
            let out = dir.path().join(format!("app{i}.env"));
            let sc = follower(emu, &hub, &[format!("A={a}"), format!("B={b}")], &out);
            assert_eq!(dotenv_value(&out, "B").as_deref(), Some("b1"));
            (sc, out)
        })
        .collect();

    let start = Instant::now();
    emu.put_secure(&b, "b2");
    send(emu, &queue_url, &parameter_event(&b));
    for (sc, out) in &mut followers {
        wait_value(sc, out, "B", "b2");
        assert_eq!(dotenv_value(out, "A").as_deref(), Some("a1"));
    }
    let latency = start.elapsed();
    eprintln!("push latency (put-parameter + event -> all 3 files): {latency:?}");
    wait_drained(emu, &queue_url);
    assert_eq!(hub_metric(&hub, &events("matched")), Some(1.0));
    assert!(
        hub.log().contains("push: reading change events from SQS"),
        "{}",
        hub.log()
    );
}

#[test]
fn an_event_for_a_name_nobody_watches_costs_no_aws_call() {
    let emu = shared();
    let prefix = unique_prefix("push-unwatched");
    let a = format!("{prefix}/a");
    let nobody = format!("{prefix}/nobody");
    emu.put_str(&a, "a1");
    emu.put_str(&nobody, "n1");
    let (queue_url, hub) = push_hub(emu, &prefix, "1h", true);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let _sc = follower(emu, &hub, &[format!("A={a}")], &out);

    let since = unix_now();
    emu.put_str(&nobody, "n2");
    send(emu, &queue_url, &parameter_event(&nobody));
    poll_until(Duration::from_secs(20), "the event handled", || {
        (hub_metric(&hub, &events("unwatched")) == Some(1.0)).then_some(())
    });
    // Handling queues the reads before the message is deleted: none were queued.
    assert_eq!(
        hub_metric(&hub, "ssm_injector_hub_event_keys_total"),
        Some(0.0)
    );
    wait_drained(emu, &queue_url);
    let mentions: Vec<String> = emu
        .requests()
        .into_iter()
        .filter(|r| r.t >= since && r.body.contains(&prefix))
        .map(|r| r.op)
        .collect();
    assert!(
        mentions.is_empty(),
        "AWS calls after the event: {mentions:?}"
    );
}

#[test]
fn a_malformed_message_is_deleted_and_the_hub_keeps_serving() {
    let emu = shared();
    let prefix = unique_prefix("push-malformed");
    let a = format!("{prefix}/a");
    emu.put_str(&a, "a1");
    let (queue_url, hub) = push_hub(emu, &prefix, "1h", true);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let mut sc = follower(emu, &hub, &[format!("A={a}")], &out);

    send(emu, &queue_url, "{not json: canary-7f3a");
    send(
        emu,
        &queue_url,
        r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}"#,
    );
    poll_until(Duration::from_secs(20), "both messages handled", || {
        (hub_metric(&hub, &events("malformed")) == Some(1.0)
            && hub_metric(&hub, &events("ignored")) == Some(1.0))
        .then_some(())
    });
    wait_drained(emu, &queue_url);
    let log = hub.log();
    assert!(log.contains("push event dropped"), "{log}");
    assert!(
        !log.contains("canary-7f3a"),
        "the body reached the log:\n{log}"
    );

    // Push still works afterwards.
    emu.put_str(&a, "a2");
    send(emu, &queue_url, &parameter_event(&a));
    wait_value(&mut sc, &out, "A", "a2");
}

#[test]
fn without_its_queue_the_hub_backs_off_stays_ready_and_still_polls() {
    let emu = shared();
    let prefix = unique_prefix("push-no-queue");
    let a = format!("{prefix}/a");
    emu.put_str(&a, "a1");
    let (_, hub) = push_hub(emu, &prefix, "500ms", false);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let mut sc = follower(emu, &hub, &[format!("A={a}")], &out);

    poll_until(Duration::from_secs(20), "a failed ReceiveMessage", || {
        hub.log()
            .contains("SQS ReceiveMessage failed")
            .then_some(())
    });
    emu.put_str(&a, "a2");
    wait_value(&mut sc, &out, "A", "a2");
    assert_eq!(
        hub_get(&hub, "/readyz").map(|(s, _)| s),
        Some(200),
        "readiness must not depend on SQS"
    );
    // Backing off: a handful of attempts, not a tight loop.
    let failed: f64 = hub_get(&hub, "/metrics")
        .map(|(_, text)| {
            text.lines()
                .filter(|l| {
                    l.starts_with("ssm_injector_hub_queue_calls_total{operation=\"ReceiveMessage\"")
                        && !l.contains("outcome=\"ok\"")
                })
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    assert!(
        (1.0..=12.0).contains(&failed),
        "{failed} failed ReceiveMessage calls"
    );
}

#[test]
fn a_secrets_manager_rotation_event_wakes_a_client_watching_the_reference() {
    let emu = shared();
    let prefix = unique_prefix("push-secret");
    let secret = format!("{}/db", prefix.trim_start_matches('/'));
    let created: Value = emu.aws(
        "secretsmanager",
        "create_secret",
        json!({"Name": secret, "SecretString": "s1"}),
    );
    let arn = created["ARN"].as_str().expect("ARN").to_owned();
    let (queue_url, hub) = push_hub(emu, &prefix, "1h", true);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("app.env");
    let mut sc = follower(
        emu,
        &hub,
        &[format!("S=/aws/reference/secretsmanager/{secret}")],
        &out,
    );
    assert_eq!(dotenv_value(&out, "S").as_deref(), Some("s1"));

    emu.aws(
        "secretsmanager",
        "put_secret_value",
        json!({"SecretId": secret, "SecretString": "s2"}),
    );
    let event = json!({"version": "0", "detail-type": "AWS Service Event via CloudTrail",
        "source": "aws.secretsmanager", "region": "us-east-1", "resources": [],
        "detail": {"eventSource": "secretsmanager.amazonaws.com", "eventName": "RotationSucceeded",
            "requestParameters": null, "responseElements": null,
            "additionalEventData": {"SecretId": arn}, "eventType": "AwsServiceEvent"}});
    send(emu, &queue_url, &event.to_string());
    wait_value(&mut sc, &out, "S", "s2");
}

#[test]
fn a_queue_url_with_an_ordinal_needs_an_instance_id_ending_in_a_number() {
    Run::new([
        "hub",
        "--cert=/nonexistent.crt",
        "--key=/nonexistent.key",
        "--queue-url=https://sqs.us-east-1.amazonaws.com/123456789012/hub-{ordinal}",
        "--instance-id=hub",
    ])
    .run()
    .assert_code(2)
    .assert_stderr_has(&["--instance-id \"hub\" does not end in -N", "NAME-0"]);
}
