//! `ssm-injector hub --auth kubernetes` end to end: the real binary, AWS in moto, and a stub
//! Kubernetes API over HTTPS that answers TokenReviews from a table and counts them.
//! Clients are service accounts; the webhook's config file gives the namespace policy.

use crate::hub_follow::dotenv_value;
use crate::support::hub::HubProcess;
use crate::support::kube::{AUDIENCE, KubeApi};
use crate::support::run::Run;
use crate::support::sidecar::{Sidecar, SidecarCmd, poll_until};
use crate::support::{Emulator, shared, unique_prefix};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const COVERING: &str = "ssm_injector_hub_covering";
const HUB_TOKEN: &str = "hub-own-service-account-token";

/// A random-looking token no other test uses.
fn token(who: &str) -> String {
    format!("{who}.{}", unique_prefix("tok").replace('/', "-"))
}

fn service_account(namespace: &str) -> String {
    format!("system:serviceaccount:{namespace}:app")
}

/// A hub with `--auth kubernetes` against a stub API, and the parameter prefix of the test:
/// namespace team-a may read `PREFIX/team-a/`, team-b `PREFIX/team-b/`.
struct Setup {
    prefix: String,
    /// `PREFIX/team-a/x`, version 1.
    own: String,
    kube: KubeApi,
    hub: HubProcess,
    /// The hub's own token file.
    hub_token: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    fn start(emu: &Emulator, test: &str) -> Setup {
        let prefix = unique_prefix(test);
        let dir = tempfile::tempdir().expect("tempdir");
        let kube = KubeApi::start(HUB_TOKEN);
        let hub_token = dir.path().join("hub-token");
        std::fs::write(&hub_token, format!("{HUB_TOKEN}\n")).expect("write token");
        let config = dir.path().join("config.yaml");
        // The webhook's own config file: the hub takes namespace-prefixes from it.
        std::fs::write(
            &config,
            format!(
                "image: ghcr.io/ssm-injector/ssm-injector:test\n\
                 default-interval: 10m\n\
                 namespace-prefixes:\n  team-a: [{prefix}/team-a/]\n  team-b: [{prefix}/team-b/]\n"
            ),
        )
        .expect("write config");
        let hub = HubProcess::start(
            emu,
            "300ms",
            &[
                "--auth=kubernetes",
                &format!("--kube-api={}", kube.url),
                &format!("--kube-ca-file={}", kube.ca_file.display()),
                &format!("--kube-token-file={}", hub_token.display()),
                &format!("--config={}", config.display()),
            ],
        );
        let own = format!("{prefix}/team-a/x");
        emu.put_str(&own, "1");
        Setup {
            prefix,
            own,
            kube,
            hub,
            hub_token,
            dir,
        }
    }

    /// A token of a service account in `namespace`, known to the stub.
    fn token_in(&self, namespace: &str) -> String {
        let t = token(namespace);
        self.kube.user(&t, &service_account(namespace));
        t
    }

    async fn watch(&self, bearer: &str, body: Value) -> (u16, Value) {
        self.hub.watch_as(Some(bearer), &body).await
    }

    /// The hub's count of refusals with `status`.
    async fn refusals(&self, status: u16) -> Option<f64> {
        let series = format!("ssm_injector_hub_refusals_total{{status=\"{status}\"}}");
        self.hub.metric(&series).await
    }

    /// A request for [`Setup::own`] answered at once.
    fn request(&self) -> Value {
        json!({"names": [self.own], "wait_seconds": 0})
    }
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_watches_its_namespaces_prefix_and_gets_403_naming_key_and_rule_elsewhere()
 {
    let emu = shared();
    let s = Setup::start(emu, "auth-policy");
    let p = &s.prefix;
    let own = &s.own;
    emu.put_str(own, "2");
    emu.put_str(&format!("{p}/team-b/y"), "secret-ish");
    let a = s.token_in("team-a");

    let (status, v) = s.watch(&a, json!({"names": [own]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["versions"][format!("name:{own}")], "2");
    let (status, v) = s
        .watch(&a, json!({"paths": [{"path": format!("{p}/team-a/")}]}))
        .await;
    assert_eq!(status, 200, "{v}");

    let rule = format!("namespace team-a may only read {p}/team-a/*");
    let other = format!("{p}/team-b/y");
    let (status, v) = s.watch(&a, json!({"names": [own, other]})).await;
    assert_eq!(status, 403, "{v}");
    assert!(error_of(&v).contains(&format!("name:{other}")), "{v}");
    assert!(error_of(&v).contains(&rule), "{v}");
    assert!(
        v.get("versions").is_none(),
        "no versions with a refusal: {v}"
    );

    // A path above the prefix would reveal other teams' versions: refused too.
    for path in [format!("{p}/"), "/".to_owned()] {
        let (status, v) = s.watch(&a, json!({"paths": [{"path": path}]})).await;
        assert_eq!(status, 403, "{path}: {v}");
        assert!(error_of(&v).contains(&format!("path:{path}:r")), "{v}");
        assert!(error_of(&v).contains(&rule), "{v}");
    }

    // A namespace the policy does not list may watch nothing.
    let c = s.token_in("team-c");
    let (status, v) = s.watch(&c, json!({"names": [own]})).await;
    assert_eq!(status, 403, "{v}");
    assert!(
        error_of(&v).contains("namespace team-c has no allowed parameter prefixes"),
        "{v}"
    );

    // The hub asked with its own token, for the hub's audience.
    let reviews = s.kube.reviews();
    assert!(!reviews.is_empty());
    for r in &reviews {
        assert_eq!(r.caller, HUB_TOKEN);
        assert_eq!(r.audiences, [AUDIENCE]);
    }
    assert_eq!(s.refusals(403).await, Some(4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_users_that_are_not_service_accounts_get_401_and_no_token_is_echoed() {
    let emu = shared();
    let s = Setup::start(emu, "auth-401");
    let req = s.request();

    let (status, v) = s.hub.watch(&req).await;
    assert_eq!(status, 401, "{v}");
    assert!(error_of(&v).contains("no bearer token"), "{v}");

    let unknown = token("forged");
    let (status, v) = s.watch(&unknown, req.clone()).await;
    assert_eq!(status, 401, "{v}");
    assert!(error_of(&v).contains("invalid bearer token"), "{v}");

    let person = token("person");
    s.kube.user(&person, "alice");
    let (status, v) = s.watch(&person, req.clone()).await;
    assert_eq!(status, 401, "{v}");
    assert!(
        error_of(&v).contains("\"alice\" is not a service account"),
        "{v}"
    );

    // A token projected for the API server, not for the hub.
    let api_only = token("api-only");
    s.kube.user_for(
        &api_only,
        &service_account("team-a"),
        &["https://kubernetes.default.svc"],
    );
    let (status, v) = s.watch(&api_only, req.clone()).await;
    assert_eq!(status, 401, "{v}");

    let log = s.hub.log();
    for t in [&unknown, &person, &api_only, &HUB_TOKEN.to_owned()] {
        assert!(
            !log.contains(t.as_str()),
            "a token in the hub's log:\n{log}"
        );
    }
    assert_eq!(s.refusals(401).await, Some(4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_within_the_ttl_cost_one_token_review_and_refusals_are_not_cached() {
    let emu = shared();
    let s = Setup::start(emu, "auth-cache");
    let req = s.request();
    let a = s.token_in("team-a");
    for _ in 0..5 {
        let (status, v) = s.watch(&a, req.clone()).await;
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(s.kube.reviews().len(), 1, "one review for five requests");

    let a2 = s.token_in("team-a");
    let (status, _) = s.watch(&a2, req.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(s.kube.reviews().len(), 2, "another token, another review");

    let bad = token("bad");
    for _ in 0..2 {
        let (status, _) = s.watch(&bad, req.clone()).await;
        assert_eq!(status, 401);
    }
    let asked: Vec<String> = s.kube.reviews().into_iter().map(|r| r.token).collect();
    assert_eq!(
        asked,
        [a.as_str(), &a2, &bad, &bad],
        "a refused token is asked about again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_kubernetes_api_is_down_or_failing_the_hub_answers_503_and_recovers() {
    let emu = shared();
    let mut s = Setup::start(emu, "auth-down");
    let req = s.request();
    let (a, b) = (s.token_in("team-a"), s.token_in("team-a"));
    let (status, _) = s.watch(&a, req.clone()).await;
    assert_eq!(status, 200);

    s.kube.stop();
    let (status, v) = s.watch(&b, req.clone()).await;
    assert_eq!(status, 503, "{v}");
    assert!(
        error_of(&v).contains("cannot reach the Kubernetes API"),
        "{v}"
    );
    let (status, v) = s.watch(&a, req.clone()).await;
    assert_eq!(status, 200, "a token reviewed before stays good: {v}");

    s.kube.resume();
    s.kube.fail_with(Some(500));
    let (status, v) = s.watch(&b, req.clone()).await;
    assert_eq!(status, 503, "{v}");
    assert!(error_of(&v).contains("HTTP 500"), "{v}");

    s.kube.fail_with(None);
    let (status, v) = s.watch(&b, req.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert!(!s.hub.log().contains(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_reads_its_rotated_token_again_when_the_api_server_refuses_the_old_one() {
    let emu = shared();
    let s = Setup::start(emu, "auth-rotate");
    let req = s.request();
    let (status, _) = s.watch(&s.token_in("team-a"), req.clone()).await;
    assert_eq!(status, 200);

    // The kubelet rotates the hub's token; the old one stops working.
    std::fs::write(&s.hub_token, "hub-token-rotated").expect("rotate");
    s.kube.accept_caller("hub-token-rotated");
    let (status, v) = s.watch(&s.token_in("team-a"), req.clone()).await;
    assert_eq!(status, 200, "{v}");
    let callers: Vec<String> = s.kube.reviews().into_iter().map(|r| r.caller).collect();
    assert_eq!(
        callers,
        [HUB_TOKEN, HUB_TOKEN, "hub-token-rotated"],
        "refused once, then the new token"
    );
}

#[test]
fn the_hub_finds_the_api_server_in_the_pod_environment_and_does_not_start_without_one() {
    let emu = shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let kube = KubeApi::start(HUB_TOKEN);
    let hub_token = dir.path().join("token");
    std::fs::write(&hub_token, HUB_TOKEN).expect("write");
    let flags = [
        "--auth=kubernetes".to_owned(),
        format!("--kube-ca-file={}", kube.ca_file.display()),
        format!("--kube-token-file={}", hub_token.display()),
    ];
    let port = kube.port.to_string();
    let hub = HubProcess::start_with_env(
        emu,
        "300ms",
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
        &[
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", &port),
        ],
    );
    let t = token("team-a");
    kube.user(&t, &service_account("team-a"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (status, v) = rt.block_on(hub.watch_as(
        Some(&t),
        &json!({"names": ["/any/name"], "wait_seconds": 0}),
    ));
    assert_eq!(status, 200, "no policy: everything: {v}");
    assert_eq!(kube.reviews().len(), 1);

    let out = flags
        .iter()
        .fold(
            Run::new([
                "hub",
                "--listen=127.0.0.1:0",
                "--cert=/nonexistent",
                "--key=/nonexistent",
            ]),
            Run::arg,
        )
        .run();
    out.assert_code(2)
        .assert_stderr_has(&["--auth kubernetes needs the Kubernetes API", "--kube-api"]);
}

// ------------------------------------------------------------------------- sidecars

/// A sidecar watching [`Setup::own`] as `A` through the hub, with `token` in its token
/// file, writing `app.env` in the setup's directory.
fn sidecar(emu: &Emulator, s: &Setup, token: &str) -> (Sidecar, PathBuf) {
    let token_file = s.dir.path().join("sidecar-token");
    std::fs::write(&token_file, token).expect("write token");
    let out = s.dir.path().join("app.env");
    let mut sc = SidecarCmd::new(&emu.proxy)
        .args([
            format!("--param=A={}", s.own),
            format!("--output={}", out.display()),
            "--interval=1s".to_owned(),
            format!("--hub={}", s.hub.url),
            format!("--hub-ca={}", s.hub.ca_file.display()),
            format!("--hub-token-file={}", token_file.display()),
        ])
        .spawn();
    sc.wait_ready(Duration::from_secs(20));
    (sc, out)
}

#[test]
fn a_sidecar_with_a_token_of_its_namespace_follows_the_hub() {
    let emu = shared();
    let s = Setup::start(emu, "auth-sidecar");
    let (mut sc, out) = sidecar(emu, &s, &s.token_in("team-a"));
    poll_until(Duration::from_secs(20), "the hub covering", || {
        sc.assert_running();
        (sc.metric(COVERING) == Some(1.0)).then_some(())
    });
    emu.put_str(&s.own, "2");
    poll_until(Duration::from_secs(20), "the rotated value", || {
        (dotenv_value(&out, "A").as_deref() == Some("2")).then_some(())
    });
    let log = sc.stderr();
    assert!(log.contains("hub: watched parameters changed"), "{log}");
    assert!(!log.contains("refused"), "{log}");
}

#[test]
fn a_sidecar_the_hub_refuses_polls_aws_itself() {
    let emu = shared();
    let s = Setup::start(emu, "auth-refused");
    // A team-b service account watching team-a's parameter.
    let (mut sc, out) = sidecar(emu, &s, &s.token_in("team-b"));
    poll_until(Duration::from_secs(20), "the refusal", || {
        sc.assert_running();
        sc.stderr()
            .contains("the hub refused the request (HTTP 403)")
            .then_some(())
    });
    let log = sc.stderr();
    assert!(log.contains(&format!("name:{}", s.own)), "{log}");
    assert!(log.contains("polling AWS myself"), "{log}");
    assert_eq!(sc.metric(COVERING), Some(0.0));
    emu.put_str(&s.own, "2");
    poll_until(
        Duration::from_secs(20),
        "the rotation by own polling",
        || {
            sc.assert_running();
            (dotenv_value(&out, "A").as_deref() == Some("2")).then_some(())
        },
    );
}
