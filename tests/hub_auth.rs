//! `ssm-injector hub --auth kubernetes` end to end: the real binary, AWS in moto, and the
//! real kube-apiserver ([`crate::support::cluster`]) reviewing tokens that it minted itself
//! (TokenRequest) for service accounts of real namespaces. The hub's own service account
//! is bound to `system:auth-delegator` as the chart binds it. The webhook's config file
//! gives the namespace policy.

use crate::hub_follow::dotenv_value;
use crate::require_cluster;
use crate::support::cluster::Cluster;
use crate::support::hub::HubProcess;
use crate::support::relay::Relay;
use crate::support::run::Run;
use crate::support::sidecar::{Sidecar, SidecarCmd};
use crate::support::wait::{eventually, eventually_ok, poll_until};
use crate::support::{Emulator, shared, unique_prefix};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The hub's audience (the webhook's default hub-audience).
const AUDIENCE: &str = "ssm-injector-hub";
const COVERING: &str = "ssm_injector_hub_covering";
/// The hub's service account in its namespace.
const HUB_SA: &str = "ssm-injector-hub";

// ------------------------------------------------------------------ the API, as admin

async fn create_service_account(client: &kube::Client, ns: &str, name: &str) {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("ServiceAccount");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap_or_else(|e| panic!("create ServiceAccount {ns}/{name}: {e}"));
}

async fn delete_service_account(client: &kube::Client, ns: &str, name: &str) {
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete ServiceAccount {ns}/{name}: {e}"));
}

/// A token of `ns/name` minted by the API server (TokenRequest, one hour), for
/// `audiences` (none: the API server's own).
async fn mint(client: &kube::Client, ns: &str, name: &str, audiences: &[&str]) -> String {
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": audiences, "expirationSeconds": 3600}
    }))
    .expect("TokenRequest");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("mint a token for {ns}/{name}: {e}"))
        .status
        .expect("TokenRequest status")
        .token
}

/// Binds `ns/name` to the ClusterRole `system:auth-delegator`, as the chart binds the hub.
async fn bind_auth_delegator(client: &kube::Client, ns: &str, name: &str) {
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{ns}-{name}-auth-delegator")},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:auth-delegator"
        },
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    }))
    .expect("ClusterRoleBinding");
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("bind {ns}/{name} to system:auth-delegator: {e}"));
}

/// Whether the API server, asked by the admin, accepts `token` for `audience` now.
async fn accepted(client: &kube::Client, token: &str, audience: &str) -> bool {
    let review: TokenReview = serde_json::from_value(json!({
        "spec": {"token": token, "audiences": [audience]}
    }))
    .expect("TokenReview");
    Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("TokenReview as admin")
        .status
        .and_then(|s| s.authenticated)
        == Some(true)
}

/// Waits until the API server no longer accepts `token` (its service account is gone).
async fn until_refused(client: &kube::Client, token: &str, audience: &str) {
    let what = "the API server refusing the token of a deleted service account";
    eventually(Duration::from_secs(20), what, || async {
        (!accepted(client, token, audience).await).then_some(())
    })
    .await;
}

fn write_token(path: &Path, token: &str) {
    // Written whole and renamed, as the kubelet does: never half a token in the file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, token).expect("write token");
    std::fs::rename(&tmp, path).expect("rename token");
}

// ------------------------------------------------------------------------ the setup

/// How the hub of a [`Setup`] is started.
struct Options {
    /// Bind the hub's service account to system:auth-delegator.
    bind: bool,
    /// Reach the API server through this address instead of directly (a [`Relay`]).
    api: Option<String>,
    /// Extra flags.
    flags: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bind: true,
            api: None,
            flags: Vec::new(),
        }
    }
}

/// A hub with `--auth kubernetes` against the real API server, and the parameter prefix
/// of the test: namespace `team_a` may read `PREFIX/team-a/`, `team_b` `PREFIX/team-b/`;
/// `team_c` is not in the policy.
struct Setup {
    cluster: &'static Cluster,
    client: kube::Client,
    prefix: String,
    /// `PREFIX/team-a/x`, version 1.
    own: String,
    team_a: String,
    team_b: String,
    team_c: String,
    /// The hub's namespace; its service account is [`HUB_SA`].
    hub_ns: String,
    hub: HubProcess,
    /// The hub's own token file.
    hub_token: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start(emu: &Emulator, cluster: &'static Cluster, test: &str, o: Options) -> Setup {
        let client = cluster.client().await;
        let prefix = unique_prefix(test);
        let dir = tempfile::tempdir().expect("tempdir");
        let hub_ns = cluster.namespace(&client, "hub", &[]).await;
        let team_a = cluster.namespace(&client, "team-a", &[]).await;
        let team_b = cluster.namespace(&client, "team-b", &[]).await;
        let team_c = cluster.namespace(&client, "team-c", &[]).await;
        create_service_account(&client, &hub_ns, HUB_SA).await;
        if o.bind {
            bind_auth_delegator(&client, &hub_ns, HUB_SA).await;
        }
        let hub_token = dir.path().join("hub-token");
        write_token(&hub_token, &mint(&client, &hub_ns, HUB_SA, &[]).await);
        let config = dir.path().join("config.yaml");
        // The webhook's own config file: the hub takes namespace-prefixes from it.
        std::fs::write(
            &config,
            format!(
                "image: ghcr.io/ssm-injector/ssm-injector:test\n\
                 default-interval: 10m\n\
                 namespace-prefixes:\n  {team_a}: [{prefix}/team-a/]\n  {team_b}: [{prefix}/team-b/]\n"
            ),
        )
        .expect("write config");
        let api = o
            .api
            .map_or_else(|| cluster.server.clone(), |a| format!("https://{a}"));
        let mut flags = vec![
            "--auth=kubernetes".to_owned(),
            format!("--kube-api={api}"),
            format!("--kube-ca-file={}", cluster.ca_file.display()),
            format!("--kube-token-file={}", hub_token.display()),
            format!("--config={}", config.display()),
        ];
        flags.extend(o.flags);
        let hub = HubProcess::start(
            emu,
            "300ms",
            &flags.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let own = format!("{prefix}/team-a/x");
        emu.put_str(&own, "1");
        Setup {
            cluster,
            client,
            prefix,
            own,
            team_a,
            team_b,
            team_c,
            hub_ns,
            hub,
            hub_token,
            dir,
        }
    }

    /// A token of the `default` service account of `ns`, for the hub's audience.
    async fn token_in(&self, ns: &str) -> String {
        mint(&self.client, ns, "default", &[AUDIENCE]).await
    }

    async fn watch(&self, bearer: &str, body: Value) -> (u16, Value) {
        self.hub.watch_as(Some(bearer), &body).await
    }

    /// The hub's count of refusals with `status`.
    async fn refusals(&self, status: u16) -> Option<f64> {
        let series = format!("ssm_injector_hub_refusals_total{{status=\"{status}\"}}");
        self.hub.metric(&series).await
    }

    /// The hub's count of TokenReviews sent, by outcome.
    async fn reviews(&self, outcome: &str) -> f64 {
        let series = format!("ssm_injector_hub_token_reviews_total{{outcome=\"{outcome}\"}}");
        self.hub
            .metric(&series)
            .await
            .unwrap_or_else(|| panic!("no {series} in the hub's /metrics"))
    }

    /// A request for [`Setup::own`] answered at once.
    fn request(&self) -> Value {
        json!({"names": [self.own], "wait_seconds": 0})
    }
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

// ------------------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_watches_its_namespaces_prefix_and_gets_403_naming_key_and_rule_elsewhere()
 {
    let cluster = require_cluster!();
    let emu = shared();
    let s = Setup::start(emu, cluster, "auth-policy", Options::default()).await;
    let p = &s.prefix;
    let own = &s.own;
    emu.put_str(own, "2");
    emu.put_str(&format!("{p}/team-b/y"), "secret-ish");
    let a = s.token_in(&s.team_a).await;

    let (status, v) = s.watch(&a, json!({"names": [own]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["versions"][format!("name:{own}")], "2");
    let (status, v) = s
        .watch(&a, json!({"paths": [{"path": format!("{p}/team-a/")}]}))
        .await;
    assert_eq!(status, 200, "{v}");

    let rule = format!("namespace {} may only read {p}/team-a/*", s.team_a);
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

    // A service account of a namespace the policy does not list may watch nothing.
    let c = s.token_in(&s.team_c).await;
    let (status, v) = s.watch(&c, json!({"names": [own]})).await;
    assert_eq!(status, 403, "{v}");
    assert!(
        error_of(&v).contains(&format!(
            "namespace {} has no allowed parameter prefixes",
            s.team_c
        )),
        "{v}"
    );
    assert_eq!(s.refusals(403).await, Some(4.0));
    assert_eq!(s.reviews("authenticated").await, 2.0, "one per token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_for_another_audience_forged_or_of_a_deleted_service_account_get_401_and_no_token_is_logged()
 {
    let cluster = require_cluster!();
    let emu = shared();
    let s = Setup::start(emu, cluster, "auth-401", Options::default()).await;
    let req = s.request();

    let (status, v) = s.hub.watch(&req).await;
    assert_eq!(status, 401, "{v}");
    assert!(error_of(&v).contains("no bearer token"), "{v}");

    // (case, token, text in the API server's reason)
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".to_owned();
    let cases = [
        (
            "another audience",
            mint(&s.client, &s.team_a, "default", &["another-audience"]).await,
            "audiences",
        ),
        (
            "the API server's own audience (the pod's default token)",
            mint(&s.client, &s.team_a, "default", &[]).await,
            "audiences",
        ),
        ("forged", forged, "invalid bearer token"),
    ];
    for (case, token, reason) in &cases {
        let (status, v) = s.watch(token, req.clone()).await;
        assert_eq!(status, 401, "{case}: {v}");
        assert!(
            error_of(&v).contains("the token was not accepted"),
            "{case}: {v}"
        );
        assert!(error_of(&v).contains(reason), "{case}: {v}");
    }

    // A token that was good, until its service account was deleted.
    create_service_account(&s.client, &s.team_a, "gone").await;
    let gone = mint(&s.client, &s.team_a, "gone", &[AUDIENCE]).await;
    assert!(accepted(&s.client, &gone, AUDIENCE).await, "good at first");
    delete_service_account(&s.client, &s.team_a, "gone").await;
    until_refused(&s.client, &gone, AUDIENCE).await;
    let (status, v) = s.watch(&gone, req.clone()).await;
    assert_eq!(status, 401, "{v}");
    assert!(error_of(&v).contains("the token was not accepted"), "{v}");

    let hub_token = std::fs::read_to_string(&s.hub_token).expect("hub token");
    let log = s.hub.log();
    for t in cases.iter().map(|(_, t, _)| t).chain([&gone, &hub_token]) {
        assert!(
            !log.contains(t.as_str()),
            "a token in the hub's log:\n{log}"
        );
    }
    assert_eq!(s.refusals(401).await, Some(5.0));
    assert_eq!(
        s.reviews("unauthenticated").await,
        4.0,
        "no token: no review"
    );
    assert_eq!(s.reviews("unavailable").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_is_not_a_service_account_and_gets_401() {
    let cluster = require_cluster!();
    let emu = shared();
    // A hub that accepts the API server's own audience, so that the API server vouches
    // for the admin (a static token, not a service account) and the hub must refuse.
    let s = Setup::start(
        emu,
        cluster,
        "auth-person",
        Options {
            flags: vec![format!("--audience={}", cluster.issuer)],
            ..Options::default()
        },
    )
    .await;
    let (status, v) = s.watch(&cluster.admin_token, s.request()).await;
    assert_eq!(status, 401, "{v}");
    assert!(
        error_of(&v).contains("user \"envtest-admin\" is not a service account"),
        "{v}"
    );
    assert!(!s.hub.log().contains(&cluster.admin_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_requests_within_the_ttl_cost_one_token_review_and_refusals_are_not_cached() {
    let cluster = require_cluster!();
    let emu = shared();
    let s = Setup::start(emu, cluster, "auth-cache", Options::default()).await;
    let req = s.request();
    let a = s.token_in(&s.team_a).await;
    for _ in 0..5 {
        let (status, v) = s.watch(&a, req.clone()).await;
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(
        s.reviews("authenticated").await,
        1.0,
        "one review for five requests"
    );

    let a2 = s.token_in(&s.team_a).await;
    let (status, _) = s.watch(&a2, req.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        s.reviews("authenticated").await,
        2.0,
        "another token, another review"
    );

    let wrong = mint(&s.client, &s.team_a, "default", &["another-audience"]).await;
    for _ in 0..2 {
        let (status, _) = s.watch(&wrong, req.clone()).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        s.reviews("unauthenticated").await,
        2.0,
        "a refused token is asked about again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_without_the_auth_delegator_binding_answers_503_naming_it_and_serves_once_bound() {
    let cluster = require_cluster!();
    let emu = shared();
    let s = Setup::start(
        emu,
        cluster,
        "auth-unbound",
        Options {
            bind: false,
            ..Options::default()
        },
    )
    .await;
    let req = s.request();
    let a = s.token_in(&s.team_a).await;
    let (status, v) = s.watch(&a, req.clone()).await;
    assert_eq!(status, 503, "not the client's fault: {v}");
    assert!(
        error_of(&v).contains("HTTP 403")
            && error_of(&v).contains(
                "bind the hub's service account to the ClusterRole system:auth-delegator"
            ),
        "{v}"
    );
    assert!(
        s.hub.log().contains("system:auth-delegator"),
        "{}",
        s.hub.log()
    );

    // The binding arrives later (e.g. applied after the hub): no restart needed.
    bind_auth_delegator(&s.client, &s.hub_ns, HUB_SA).await;
    eventually_ok(Duration::from_secs(20), "200 after binding", || async {
        let (status, v) = s.watch(&a, req.clone()).await;
        if status == 200 {
            return Ok(());
        }
        assert_eq!(status, 503, "{v}");
        Err(format!("{status}: {v}"))
    })
    .await;
    assert!(!s.hub.log().contains(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_kubernetes_api_is_unreachable_the_hub_answers_503_and_recovers() {
    let cluster = require_cluster!();
    let emu = shared();
    let relay = Relay::start(cluster.server.trim_start_matches("https://"));
    // The API server is away before the hub starts: the hub starts anyway.
    relay.down();
    let s = Setup::start(
        emu,
        cluster,
        "auth-down",
        Options {
            api: Some(relay.addr.clone()),
            ..Options::default()
        },
    )
    .await;
    let req = s.request();
    let (a, b) = (s.token_in(&s.team_a).await, s.token_in(&s.team_a).await);
    let unreachable = format!("cannot reach the Kubernetes API at https://{}", relay.addr);
    let (status, v) = s.watch(&a, req.clone()).await;
    assert_eq!(status, 503, "never 401 for an outage: {v}");
    assert!(error_of(&v).contains(&unreachable), "{v}");

    relay.up();
    let (status, v) = s.watch(&a, req.clone()).await;
    assert_eq!(status, 200, "{v}");

    relay.down();
    let (status, v) = s.watch(&b, req.clone()).await;
    assert_eq!(status, 503, "{v}");
    assert!(error_of(&v).contains(&unreachable), "{v}");
    let (status, v) = s.watch(&a, req.clone()).await;
    assert_eq!(status, 200, "a token reviewed before stays good: {v}");

    relay.up();
    let (status, v) = s.watch(&b, req.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(s.refusals(401).await.unwrap_or(0.0), 0.0, "never 401");
    assert_eq!(s.reviews("unavailable").await, 2.0);
    let log = s.hub.log();
    assert!(!log.contains(&a) && !log.contains(&b), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_reads_its_rotated_token_file_again_when_the_api_server_refuses_the_old_one() {
    let cluster = require_cluster!();
    let emu = shared();
    let s = Setup::start(emu, cluster, "auth-rotate", Options::default()).await;
    let req = s.request();
    let (status, v) = s.watch(&s.token_in(&s.team_a).await, req.clone()).await;
    assert_eq!(status, 200, "{v}");

    // The hub's token stops working (its service account is replaced), and a new token,
    // of a bound service account, is written into the file, as the kubelet would.
    let old = std::fs::read_to_string(&s.hub_token).expect("hub token");
    create_service_account(&s.client, &s.hub_ns, "hub-next").await;
    bind_auth_delegator(&s.client, &s.hub_ns, "hub-next").await;
    let next = mint(&s.client, &s.hub_ns, "hub-next", &[]).await;
    delete_service_account(&s.client, &s.hub_ns, HUB_SA).await;
    until_refused(&s.client, &old, &s.cluster.issuer).await;
    write_token(&s.hub_token, &next);

    // Well before the kube client's own re-read (once a minute), the 401 makes the hub
    // read the file again. (At most one re-read a second: a request right after the
    // previous one may still get a 503.)
    let a = s.token_in(&s.team_a).await;
    eventually_ok(
        Duration::from_secs(10),
        "200 after the rotation",
        || async {
            let (status, v) = s.watch(&a, req.clone()).await;
            if status == 200 {
                return Ok(());
            }
            assert_eq!(status, 503, "{v}");
            assert!(error_of(&v).contains("HTTP 401"), "{v}");
            Err(format!("{status}: {v}"))
        },
    )
    .await;
    let log = s.hub.log();
    assert!(log.contains("read the credentials again"), "{log}");
    assert!(!log.contains(&old) && !log.contains(&next), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_kube_api_the_hub_uses_the_kubeconfig_and_does_not_start_without_any_api() {
    let cluster = require_cluster!();
    let emu = shared();
    let client = cluster.client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub_ns = cluster.namespace(&client, "hub", &[]).await;
    let team = cluster.namespace(&client, "team", &[]).await;
    create_service_account(&client, &hub_ns, HUB_SA).await;
    bind_auth_delegator(&client, &hub_ns, HUB_SA).await;
    let hub_token = dir.path().join("hub-token");
    write_token(&hub_token, &mint(&client, &hub_ns, HUB_SA, &[]).await);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::to_string(&json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "envtest", "cluster": {
                "server": cluster.server,
                "certificate-authority": cluster.ca_file,
            }}],
            "users": [{"name": "hub", "user": {"tokenFile": hub_token}}],
            "contexts": [{"name": "hub", "context": {"cluster": "envtest", "user": "hub"}}],
            "current-context": "hub",
        }))
        .expect("kubeconfig"),
    )
    .expect("write kubeconfig");
    let home = tempfile::tempdir().expect("home");
    let home = home.path().display().to_string();
    let hub = HubProcess::start_with_env(
        emu,
        "300ms",
        &["--auth=kubernetes"],
        &[
            ("KUBECONFIG", &kubeconfig.display().to_string()),
            ("HOME", &home),
        ],
    );
    let token = mint(&client, &team, "default", &[AUDIENCE]).await;
    let (status, v) = hub
        .watch_as(
            Some(&token),
            &json!({"names": ["/any/name"], "wait_seconds": 0}),
        )
        .await;
    assert_eq!(status, 200, "no policy: everything: {v}");
    assert!(hub.log().contains(&cluster.server), "{}", hub.log());

    // No --kube-api, no kubeconfig, not in a pod: the hub does not start.
    let hub_run = |extra: &[&str]| {
        extra
            .iter()
            .fold(
                Run::new([
                    "hub",
                    "--auth=kubernetes",
                    "--listen=127.0.0.1:0",
                    "--cert=/nonexistent",
                    "--key=/nonexistent",
                ]),
                |r, a| r.arg(a),
            )
            .env("HOME", &home)
            .run()
    };
    hub_run(&[]).assert_code(2).assert_stderr_has(&[
        "--auth kubernetes needs the Kubernetes API",
        "--kube-api",
        "KUBECONFIG",
    ]);
    // The files of --kube-api do nothing without it: refused rather than ignored.
    hub_run(&[&format!("--kube-token-file={}", hub_token.display())])
        .assert_code(2)
        .assert_stderr_has(&["--kube-token-file applies with --kube-api only"]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_with_a_token_of_its_namespace_follows_the_hub() {
    let cluster = require_cluster!();
    let emu = shared();
    let s = Setup::start(emu, cluster, "auth-sidecar", Options::default()).await;
    let token = s.token_in(&s.team_a).await;
    let (mut sc, out) = sidecar(emu, &s, &token);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_the_hub_refuses_polls_aws_itself() {
    let cluster = require_cluster!();
    let emu = shared();
    let s = Setup::start(emu, cluster, "auth-refused", Options::default()).await;
    // A team-b service account watching team-a's parameter.
    let token = s.token_in(&s.team_b).await;
    let (mut sc, out) = sidecar(emu, &s, &token);
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
