//! Hostile clients against the real webhook and hub processes (issue 16): clients that send
//! a large declared body one byte per TLS record, clients over the connection limit, and
//! a declared body above the largest. The servers' memory stays bounded by what the clients
//! sent, every slow connection is answered 408 and closed at `--request-timeout`, and real
//! requests keep being answered promptly meanwhile.

use crate::support::hub::HubProcess;
use crate::support::pki::{Ca, client_config};
use crate::support::sidecar::metric_value;
use crate::support::wait::poll_until;
use crate::support::webhook::Webhook;
use crate::support::{shared, unique_prefix};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// The `--request-timeout` the servers run with here.
const DEADLINE: Duration = Duration::from_secs(3);
/// Slow clients at once, and the time between two of their bytes.
const SLOW_CLIENTS: usize = 12;
const EVERY: Duration = Duration::from_millis(3);
/// What a slow client declares to the webhook (the attack), and to the hub (its
/// largest body, 256 KiB: more is refused at once).
const DECLARED_WEBHOOK: usize = 8_000_000;
const DECLARED_HUB: usize = 256 * 1024;

/// The resident memory of process `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What became of one slow client.
#[derive(Debug)]
struct Slow {
    /// Body bytes sent (each in its own TLS record).
    sent: usize,
    /// From the end of its headers to the server's close, if it closed within the limit.
    closed_after: Option<Duration>,
    /// The start of what the server answered.
    answer: String,
}

/// Sends `POST path` declaring `declared` bytes, then one byte per TLS record every
/// [`EVERY`] until the server closes the connection or `limit` passes.
async fn slow_client(
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    (path, declared): (&str, usize),
    limit: Duration,
) -> Slow {
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.flush().await.expect("flush");
    let started = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut sent = 0;
    let mut raw = Vec::new();
    let closed = {
        let read = async {
            let _ = rd.read_to_end(&mut raw).await;
        };
        let write = async {
            loop {
                if wr.write_all(b" ").await.is_err() || wr.flush().await.is_err() {
                    // Refused by the server: wait for the close to be read.
                    std::future::pending::<()>().await;
                }
                sent += 1;
                tokio::time::sleep(EVERY).await;
            }
        };
        tokio::select! {
            () = read => true,
            () = write => unreachable!("writes forever"),
            () = tokio::time::sleep(limit) => false,
        }
    };
    Slow {
        sent,
        closed_after: closed.then(|| started.elapsed()),
        answer: String::from_utf8_lossy(&raw).chars().take(200).collect(),
    }
}

/// Runs [`SLOW_CLIENTS`] slow clients against `path` while `real` (one real request; its
/// latency) runs again and again; returns the slow clients, the highest RSS seen and the
/// real requests' latencies.
async fn under_attack<F, Fut>(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    path: (&'static str, usize),
    pid: u32,
    mut real: F,
) -> (Vec<Slow>, u64, Vec<Duration>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let limit = DEADLINE * 2;
    let clients: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(slow_client(addr.to_owned(), tls.clone(), path, limit)))
        .collect();
    let mut peak = 0;
    let mut latencies = Vec::new();
    let until = Instant::now() + limit + Duration::from_secs(1);
    while clients.iter().any(|c| !c.is_finished()) && Instant::now() < until {
        peak = peak.max(rss(pid));
        latencies.push(real().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak = peak.max(rss(pid));
    let mut slow = Vec::new();
    for c in clients {
        slow.push(c.await.expect("slow client"));
    }
    (slow, peak, latencies)
}

/// The checks shared by the webhook and the hub.
fn check(server: &str, idle: u64, slow: &[Slow], peak: u64, before: Duration, during: &[Duration]) {
    let sent: usize = slow.iter().map(|s| s.sent).sum();
    let worst = during.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{server}: idle RSS {} KiB, peak {} KiB with {} slow clients ({sent} bytes sent); real request {before:?} before, at most {worst:?} during ({} requests)",
        idle / 1024,
        peak / 1024,
        slow.len(),
        during.len()
    );
    for s in slow {
        let after = s.closed_after.unwrap_or_else(|| {
            panic!(
                "{server}: a slow connection still open after {:?}: {s:?}",
                DEADLINE * 2
            )
        });
        assert!(
            after >= DEADLINE - Duration::from_millis(100)
                && after <= DEADLINE + Duration::from_secs(1),
            "{server}: closed {after:?} after its headers, not at the {DEADLINE:?} deadline: {s:?}"
        );
        assert!(s.answer.starts_with("HTTP/1.1 408 "), "{server}: {s:?}");
    }
    assert!(
        peak < 2 * idle + sent as u64,
        "{server}: RSS {peak} bytes is above 2 × idle ({idle}) + the {sent} bytes sent"
    );
    // Stricter than the bound above: what a connection holds grows with what it sent, not
    // by a read buffer per TLS record (about 4 KiB per byte before issue 16).
    let growth = peak.saturating_sub(idle);
    let allowed = slow.len() as u64 * 64 * 1024 + 16 * sent as u64;
    assert!(
        growth <= allowed,
        "{server}: RSS grew by {growth} bytes for {sent} bytes sent (at most {allowed})"
    );
    assert!(
        !during.is_empty(),
        "{server}: no real request ran meanwhile"
    );
    let bound = (before * 5).max(Duration::from_secs(1));
    assert!(
        worst <= bound,
        "{server}: a real request took {worst:?} under attack (before: {before:?}; bound {bound:?})"
    );
}

fn pod_review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "5b1c5f2e-1111-4b8e-9a65-3d4e3a8f0c11",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"generateName": "web-", "namespace": "apps",
                             "annotations": {"ssm-injector.io/inject": "true",
                                             "ssm-injector.io/path": "/app/prod/"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}
            },
            "dryRun": false
        }
    })
}

/// One real review on a new connection (as the API server makes them); its latency.
fn timed_review(w: &Webhook) -> Duration {
    let started = std::time::Instant::now();
    let answer = w.review(&pod_review());
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    started.elapsed()
}

fn webhook(ca: &Ca, extra: &[&str]) -> Webhook {
    let mut args: Vec<String> = [
        "webhook",
        "--cert=/tls/tls.crt",
        "--key=/tls/tls.key",
        "--listen=0.0.0.0:8443",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    Webhook::start_chart(ca, &ca.server_pair("webhook"), "", &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_hold_no_memory_and_are_closed_at_the_deadline_while_reviews_go_on() {
    let ca = Ca::new("hostile test CA");
    let timeout = format!("--request-timeout={}s", DEADLINE.as_secs());
    let w = webhook(&ca, &[&timeout]);
    // Reviews from several connections at once first, so every worker thread of the
    // webhook has served one (and made its allocator arena) before the idle figure: the
    // growth measured below is then what the slow connections hold.
    let before = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..5).map(|_| timed_review(&w)).max().unwrap_or_default()))
            .collect();
        workers
            .into_iter()
            .map(|t| t.join().expect("a warm-up review"))
            .max()
            .unwrap_or_default()
    });
    let idle = rss(w.pid());
    let (slow, peak, during) = under_attack(
        &w.addr,
        ca.client_config(),
        ("/mutate", DECLARED_WEBHOOK),
        w.pid(),
        || {
            let latency = tokio::task::block_in_place(|| timed_review(&w));
            std::future::ready(latency)
        },
    )
    .await;
    check("webhook", idle, &slow, peak, before, &during);
    let (_, text) = w
        .connect()
        .and_then(|mut c| c.request("GET", "/metrics", ""))
        .expect("metrics");
    let series =
        format!("ssm_injector_webhook_limit_refusals_total{{limit=\"body_time\"}} {SLOW_CLIENTS}");
    assert!(text.lines().any(|l| l == series), "{series} in:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_against_the_hub_are_closed_at_the_deadline_while_watches_go_on() {
    let emu = shared();
    let name = format!("{}/db", unique_prefix("hostile-hub"));
    emu.put_str(&name, "v1");
    let timeout = format!("{}s", DEADLINE.as_secs());
    let hub = HubProcess::start(emu, "500ms", &["--request-timeout", &timeout]);
    let pid = hub.pid().expect("running");
    let tls = client_config(&std::fs::read_to_string(&hub.ca_file).expect("CA file"));
    let watch = json!({"names": [name], "wait_seconds": 0});
    let timed_watch = || async {
        let started = Instant::now();
        let (status, answer) = hub.watch(&watch).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["versions"][format!("name:{name}")], "1", "{answer}");
        started.elapsed()
    };
    let mut before = Duration::ZERO;
    for _ in 0..5 {
        before = before.max(timed_watch().await);
    }
    let idle = rss(pid);
    let (slow, peak, during) = under_attack(
        &hub.addr,
        tls,
        ("/v1/watch", DECLARED_HUB),
        pid,
        timed_watch,
    )
    .await;
    check("hub", idle, &slow, peak, before, &during);
    assert_eq!(
        hub.metric("ssm_injector_hub_limit_refusals_total{limit=\"body_time\"}")
            .await,
        Some(SLOW_CLIENTS as f64)
    );
}

#[test]
fn connections_beyond_the_most_are_closed_at_once_and_a_large_declared_body_is_refused_unread() {
    let ca = Ca::new("hostile test CA");
    let w = webhook(&ca, &["--max-connections=4"]);
    // Four open connections (each answered once) hold the four places.
    let mut held: Vec<_> = (0..4)
        .map(|_| {
            let mut c = w.connect().expect("connect");
            assert_eq!(c.request("GET", "/healthz", "").map(|a| a.0), Some(200));
            c
        })
        .collect();
    // The fifth is closed before its handshake, at once.
    let started = std::time::Instant::now();
    let mut fifth = std::net::TcpStream::connect(&w.addr).expect("the kernel accepts");
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let read = fifth.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut),
        "{read:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");
    assert!(
        w.connect()
            .and_then(|mut c| c.request("GET", "/healthz", ""))
            .is_none()
    );
    // One place freed: new connections are served again.
    drop(held.pop());
    poll_until(Duration::from_secs(10), "a new connection served", || {
        w.connect()
            .and_then(|mut c| c.request("GET", "/healthz", ""))
            .filter(|a| a.0 == 200)
    });
    drop(held);
    // A body declared above 8 MiB gets 413 before any of it is sent.
    let mut c = poll_until(Duration::from_secs(10), "a connection", || w.connect());
    let answer = c.declare("POST", "/mutate", 8 * 1024 * 1024 + 1);
    assert_eq!(answer.as_ref().map(|a| a.0), Some(413), "{answer:?}");
    let (_, text) = w
        .connect()
        .and_then(|mut c| c.request("GET", "/metrics", ""))
        .expect("metrics");
    let count = |limit: &str| {
        metric_value(
            &text,
            &format!("ssm_injector_webhook_limit_refusals_total{{limit=\"{limit}\"}}"),
        )
    };
    assert_eq!(count("body_size"), Some(1.0), "{text}");
    assert!(count("connections") >= Some(2.0), "{text}");
}
