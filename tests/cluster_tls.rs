//! Self-managed TLS (`tls.mode: self`, the chart's default) against a real kube-apiserver:
//! the webhook runs with the rendered Deployment's args as the chart's ServiceAccount (its
//! RBAC created as rendered), the rendered MutatingWebhookConfiguration is registered with
//! only its `url` swapped and its `caBundle` left empty, and the API server calls the
//! webhook through whatever `caBundle` the webhook sets ([`Installed::install_self`]).
//! Also: installs without cert-manager (raw manifests, `helm install` in certManager mode).

use crate::cluster_webhook::restricted_pod;
use crate::require_cluster;
use crate::support::chart::{self, Installed, RELEASE_NAMESPACE};
use crate::support::wait::eventually;
use crate::support::webhook::Webhook;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};

/// `ca.crt` of the CA Secret.
fn bundle_of(secret: &Secret) -> String {
    let data = secret.data.as_ref().expect("Secret data");
    String::from_utf8(data["ca.crt"].0.clone()).expect("PEM text")
}

/// The caBundle of every webhook of the configuration (`None`: unset).
fn ca_bundles(mwc: &MutatingWebhookConfiguration) -> Vec<Option<String>> {
    mwc.webhooks
        .iter()
        .flatten()
        .map(|w| {
            w.client_config
                .ca_bundle
                .as_ref()
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
        .collect()
}

/// Waits until every webhook's caBundle is the CA Secret's bundle; returns the bundle.
async fn wait_patched(chart: &Installed, client: &kube::Client, limit: Duration) -> String {
    eventually(limit, "caBundle = the CA Secret's ca.crt", || async {
        let bundle = bundle_of(&chart.ca_secret(client).await?);
        let got = ca_bundles(&chart.configuration(client).await);
        (!got.is_empty() && got.iter().all(|b| b.as_deref() == Some(bundle.as_str())))
            .then_some(bundle)
    })
    .await
}

fn opted_in(name: &str) -> Pod {
    restricted_pod(
        name,
        json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/"}),
    )
}

/// Creates an opted-in pod and checks it was injected. The API server takes a moment to
/// see a new caBundle: a "failed calling webhook" is retried for a few seconds.
async fn create_injected(pods: &Api<Pod>, name: &str, webhook_log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let created = loop {
        match pods.create(&PostParams::default(), &opted_in(name)).await {
            Ok(p) => break p,
            Err(kube::Error::Api(s))
                if s.message.contains("failed calling webhook") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{name}: refused: {e}\nwebhook log:\n{}", webhook_log()),
        }
    };
    let inits: Vec<String> = created
        .spec
        .expect("spec")
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(inits, ["ssm-injector-init"], "{name} was not injected");
}

/// The certificate `w` serves now (DER) and its notAfter, checked against the CAs the
/// client trusts.
fn served(w: &Webhook) -> (Vec<u8>, SystemTime) {
    let der = w
        .connect()
        .unwrap_or_else(|| panic!("no TLS answer:\n{}", w.log()))
        .peer_certificate()
        .to_vec();
    (der.clone(), not_after(&der))
}

/// The certificate the server at `addr` presents, checked against `bundle` only.
fn served_trusting(addr: &str, bundle: &str) -> Vec<u8> {
    use std::io::Write;
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_owned();
    let name = rustls::pki_types::ServerName::try_from(host).expect("name");
    let conn = rustls::ClientConnection::new(crate::support::pki::client_config(bundle), name)
        .expect("client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.flush()
        .expect("TLS handshake with a certificate the bundle trusts");
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("TLS handshake with a certificate the bundle trusts");
    }
    tls.conn.peer_certificates().expect("peer certificates")[0].to_vec()
}

fn not_after(der: &[u8]) -> SystemTime {
    let (_, x509) = x509_parser::parse_x509_certificate(der).expect("a certificate");
    SystemTime::from(x509.validity().not_after.to_datetime())
}

fn metric(w: &Webhook, series: &str) -> f64 {
    let (_, text) = w
        .connect()
        .and_then(|mut c| c.request("GET", "/metrics", ""))
        .expect("/metrics");
    crate::support::sidecar::metric_value(&text, series)
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

fn version(meta: &kube::api::ObjectMeta) -> String {
    meta.resource_version.clone().expect("resourceVersion")
}

#[tokio::test]
async fn a_fresh_self_managed_install_sets_the_empty_ca_bundle_and_injects_through_it() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install_self(cluster, &client, "", true).await;
    assert!(
        ca_bundles(&chart.registered).iter().all(Option::is_none),
        "registered with the rendered, empty caBundle"
    );
    let secret = chart
        .ca_secret(&client)
        .await
        .expect("the webhook made its CA Secret");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let keys: Vec<&String> = secret.data.as_ref().expect("data").keys().collect();
    assert_eq!(
        keys,
        ["ca.crt", "ca.key"],
        "the CA only: no serving certificate"
    );
    let bundle = wait_patched(&chart, &client, Duration::from_secs(30)).await;
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);

    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    create_injected(&pods, "first", || chart.log()).await;
    let w = chart.webhook.as_ref().expect("running");
    assert_eq!(
        metric(w, "ssm_injector_webhook_ca_bundle_patches_total"),
        1.0
    );
    assert!(
        !chart.log().contains("PRIVATE KEY"),
        "a private key in the log:\n{}",
        chart.log()
    );
}

#[tokio::test]
async fn two_replicas_started_together_make_one_ca_and_both_serve_certificates_from_it() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install_self(cluster, &client, "", false).await;
    assert!(chart.ca_secret(&client).await.is_none());
    let s = chart.self_tls.as_ref().expect("self-managed");
    // Both start before either has read anything.
    let (mut a, mut b) = (s.spawn(), s.spawn());
    s.wait_serving(&client, &mut a).await;
    s.wait_serving(&client, &mut b).await;

    let secret = chart.ca_secret(&client).await.expect("one CA Secret");
    let bundle = bundle_of(&secret);
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1, "one CA");
    // wait_serving trusted only that bundle: both serve certificates chaining to it.
    let (leaf_a, leaf_b) = (served(&a).0, served(&b).0);
    assert_ne!(leaf_a, leaf_b, "each replica issues its own certificate");
    let made = [&a, &b]
        .iter()
        .filter(|w| w.log().contains("made a new CA"))
        .count();
    assert_eq!(made, 1, "logs:\n{}\n---\n{}", a.log(), b.log());
    let bundle_now = wait_patched(&chart, &client, Duration::from_secs(30)).await;
    assert_eq!(bundle_now, bundle);
    let patches = metric(&a, "ssm_injector_webhook_ca_bundle_patches_total")
        + metric(&b, "ssm_injector_webhook_ca_bundle_patches_total");
    assert_eq!(patches, 1.0, "the caBundle is patched once, by one of them");
    assert_eq!(
        version(&chart.ca_secret(&client).await.expect("Secret").metadata),
        version(&secret.metadata),
        "nobody rewrote the Secret"
    );
}

#[tokio::test]
async fn a_restart_writes_neither_the_secret_nor_the_webhook_configuration() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let values = "tls: {self: {checkInterval: 1s}}";
    let mut chart = Installed::install_self(cluster, &client, values, true).await;
    wait_patched(&chart, &client, Duration::from_secs(30)).await;
    let secret_version = version(&chart.ca_secret(&client).await.expect("Secret").metadata);
    let config_version = version(&chart.configuration(&client).await.metadata);
    let before = served(chart.webhook.as_ref().expect("running")).0;

    chart.stop();
    chart.restart(&client).await;
    let w = chart.webhook.as_ref().expect("restarted");
    assert_ne!(served(w).0, before, "a new certificate, issued in memory");
    let ns = chart.namespace(cluster, &client, false).await;
    create_injected(&Api::namespaced(client.clone(), &ns), "after", || {
        chart.log()
    })
    .await;
    // Three check rounds of the restarted webhook.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        version(&chart.ca_secret(&client).await.expect("Secret").metadata),
        secret_version,
        "the restart rewrote the CA Secret"
    );
    assert_eq!(
        version(&chart.configuration(&client).await.metadata),
        config_version,
        "the restart patched the configuration"
    );
    assert_eq!(
        metric(w, "ssm_injector_webhook_ca_bundle_patches_total"),
        0.0
    );
}

#[tokio::test]
async fn a_short_lived_serving_certificate_is_reissued_before_it_expires_while_pods_are_admitted() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let values = "tls: {self: {certValidity: 6s, checkInterval: 1s}}";
    let chart = Installed::install_self(cluster, &client, values, true).await;
    wait_patched(&chart, &client, Duration::from_secs(30)).await;
    let ns = chart.namespace(cluster, &client, false).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let w = chart.webhook.as_ref().expect("running");

    let (first, first_expiry) = served(w);
    let mut seen = vec![first];
    let mut replaced_at = None;
    let mut admitted = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "{} certificates in 20 s:\n{}",
            seen.len(),
            chart.log()
        );
        create_injected(&pods, &format!("pod-{admitted}"), || chart.log()).await;
        admitted += 1;
        let (cert, expiry) = served(w);
        let now = SystemTime::now();
        assert!(expiry > now, "served an expired certificate");
        if !seen.contains(&cert) {
            replaced_at.get_or_insert(now);
            seen.push(cert);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let replaced_at = replaced_at.expect("replaced");
    assert!(
        replaced_at < first_expiry,
        "the first certificate was replaced only after it expired"
    );
    create_injected(&pods, "after", || chart.log()).await;
    assert!(
        metric(
            w,
            r#"ssm_injector_webhook_cert_reloads_total{outcome="ok"}"#
        ) >= 3.0,
        "the first certificate and two reissues"
    );
}

#[tokio::test]
async fn a_ca_bundle_wiped_by_someone_else_is_repaired_at_once() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    // The default check interval (1m): a repair within seconds comes from the watch.
    let chart = Installed::install_self(cluster, &client, "", true).await;
    let bundle = wait_patched(&chart, &client, Duration::from_secs(30)).await;
    let configs = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let wipe = json!({"webhooks": [{"name": "inject.ssm-injector.io", "clientConfig": {"caBundle": null}}]});
    configs
        .patch(
            &chart.release,
            &PatchParams::default(),
            &Patch::Strategic(&wipe),
        )
        .await
        .expect("wipe the caBundle");
    let started = Instant::now();
    let repaired = tokio::time::timeout(
        Duration::from_secs(15),
        wait_patched(&chart, &client, Duration::from_secs(20)),
    )
    .await
    .unwrap_or_else(|_| panic!("not repaired within 15 s:\n{}", chart.log()));
    assert_eq!(repaired, bundle);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        !chart.log().contains("watch MutatingWebhookConfiguration"),
        "the watch failed:\n{}",
        chart.log()
    );
    let ns = chart.namespace(cluster, &client, false).await;
    create_injected(&Api::namespaced(client.clone(), &ns), "after", || {
        chart.log()
    })
    .await;
}

#[tokio::test]
async fn a_ca_secret_with_broken_content_stops_the_webhook_naming_the_secret_and_the_key() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let valid_ca = crate::support::pki::Ca::new("someone else's CA").pem();
    for (ca_crt, ca_key, key) in [
        ("garbage", "garbage", "key ca.crt"),
        (valid_ca.as_str(), "", "key ca.key is missing"),
    ] {
        let chart = Installed::install_self(cluster, &client, "", false).await;
        let s = chart.self_tls.as_ref().expect("self-managed");
        let mut data = std::collections::BTreeMap::new();
        data.insert("ca.crt".to_owned(), ByteString(ca_crt.as_bytes().to_vec()));
        if !ca_key.is_empty() {
            data.insert("ca.key".to_owned(), ByteString(ca_key.as_bytes().to_vec()));
        }
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(s.secret.clone()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let secrets = Api::<Secret>::namespaced(client.clone(), RELEASE_NAMESPACE);
        let created = secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the broken Secret");

        let mut w = s.spawn();
        let status = w.wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(2), "{}", w.log());
        let log = w.log();
        let named = format!("Secret {RELEASE_NAMESPACE}/{}", s.secret);
        assert!(
            log.contains(&named) && log.contains(key),
            "want {named:?} and {key:?} in:\n{log}"
        );
        assert!(
            !log.contains("garbage"),
            "Secret content in the log:\n{log}"
        );
        let after = secrets.get(&s.secret).await.expect("the Secret");
        assert_eq!(
            version(&after.metadata),
            version(&created.metadata),
            "the broken Secret was overwritten"
        );
        assert!(
            ca_bundles(&chart.configuration(&client).await)
                .iter()
                .all(Option::is_none)
        );
    }
}

#[tokio::test]
async fn the_raw_manifests_apply_completely_on_a_cluster_without_cert_manager() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    chart::release_namespace(&client).await;
    for file in ["ssm-injector.yaml", "ssm-injector-with-hub.yaml"] {
        let path = chart::repo().join("deploy/kubernetes").join(file);
        let out = std::process::Command::new(chart::repo().join(".tools/bin/kubectl"))
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["apply", "--dry-run=server", "-f"])
            .arg(&path)
            .output()
            .expect("run kubectl");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl apply --dry-run=server -f {file} on a cluster without cert-manager:\n{stdout}{stderr}"
        );
        assert!(
            stdout.contains("mutatingwebhookconfiguration.admissionregistration.k8s.io/ssm-injector created (server dry run)"),
            "{stdout}"
        );
        assert!(!stdout.contains("cert-manager"), "{stdout}");
    }
}

#[tokio::test]
async fn helm_install_in_cert_manager_mode_without_cert_manager_fails_before_creating_anything() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let ns = cluster.namespace(&client, "helm", &[]).await;
    let release = format!("cm{}", std::process::id() % 100_000);
    let out = std::process::Command::new(chart::helm())
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(["install", &release])
        .arg(chart::repo().join("charts/ssm-injector"))
        .args(["--namespace", &ns, "--set", "tls.mode=certManager"])
        .output()
        .expect("run helm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let configs = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let leaked = configs
        .get_opt(&format!("{release}-ssm-injector"))
        .await
        .expect("get");
    if out.status.success() || leaked.is_some() {
        // Never leave a live configuration behind for the other tests.
        let _ = std::process::Command::new(chart::helm())
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["uninstall", &release, "--namespace", &ns])
            .output();
        panic!("helm install without cert-manager created objects:\n{stderr}");
    }
    assert!(
        stderr.contains("no matches for kind \"Certificate\" in version \"cert-manager.io/v1\""),
        "{stderr}"
    );
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .expect("list secrets");
    assert!(
        secrets.items.is_empty(),
        "helm left objects (a release record?) in {ns}: {:?}",
        secrets
            .items
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    let deployments =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await
            .expect("list deployments");
    assert!(deployments.items.is_empty());
}

/// The subjects of the certificates of a PEM bundle, in order.
fn subjects(bundle: &str) -> Vec<String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(bundle.as_bytes())
        .map(|der| {
            let der = der.expect("PEM");
            let (_, x509) = x509_parser::parse_x509_certificate(&der).expect("certificate");
            x509.subject().to_string()
        })
        .collect()
}

fn issuer(der: &[u8]) -> String {
    let (_, x509) = x509_parser::parse_x509_certificate(der).expect("certificate");
    x509.issuer().to_string()
}

#[tokio::test]
async fn the_ca_rotates_before_it_expires_and_pods_are_admitted_throughout() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    // A CA of 40 s renewed 25 s before it expires (at 15 s), signing 5 s after it joined
    // the bundle; serving certificates of 6 s.
    let values = "tls: {self: {caValidity: 40s, caRenewBefore: 25s, caPropagation: 5s, certValidity: 6s, checkInterval: 1s}}";
    let chart = Installed::install_self(cluster, &client, values, true).await;
    let first = subjects(&wait_patched(&chart, &client, Duration::from_secs(30)).await);
    assert_eq!(first.len(), 1);
    let ns = chart.namespace(cluster, &client, false).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let w = chart.webhook.as_ref().expect("running");
    let mut n = 0;
    let mut admit = async |pods: &Api<Pod>| {
        create_injected(pods, &format!("pod-{n}"), || chart.log()).await;
        n += 1;
    };

    // The new CA joins the bundle in front of the old one; the caBundle follows; serving
    // certificates stay with the old CA for the propagation delay.
    let deadline = Instant::now() + Duration::from_secs(40);
    let both = loop {
        admit(&pods).await;
        let bundle = bundle_of(&chart.ca_secret(&client).await.expect("Secret"));
        let s = subjects(&bundle);
        if s.len() == 2 {
            assert_eq!(s[1], first[0], "the new CA goes in front");
            let leaf = served_trusting(&w.addr, &bundle);
            assert_eq!(issuer(&leaf), first[0], "too early for the new CA");
            break s;
        }
        assert!(Instant::now() < deadline, "no rotation:\n{}", chart.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let bundle = wait_patched(&chart, &client, Duration::from_secs(10)).await;
    assert_eq!(subjects(&bundle), both);
    // Then the new CA signs.
    loop {
        admit(&pods).await;
        if issuer(&served_trusting(&w.addr, &bundle)) == both[0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still the old CA:\n{}",
            chart.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The old CA leaves the bundle once it has expired.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        admit(&pods).await;
        let bundle = bundle_of(&chart.ca_secret(&client).await.expect("Secret"));
        if !subjects(&bundle).contains(&first[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old CA stayed:\n{}",
            chart.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_patched(&chart, &client, Duration::from_secs(10)).await;
    admit(&pods).await;
}

#[tokio::test]
async fn with_the_hub_on_the_webhooks_ca_sidecars_trust_its_bundle_and_the_hub_serves_from_it() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    // hub.tls.mode self is the default once the hub is on; no TokenReview here.
    let values = "hub: {enabled: true, auth: none}";
    let chart = Installed::install_self(cluster, &client, values, true).await;
    let bundle = wait_patched(&chart, &client, Duration::from_secs(30)).await;
    let s = chart.self_tls.as_ref().expect("self-managed");
    assert!(
        s.config.contains("hub-url:") && !s.config.contains("hub-ca-file"),
        "{}",
        s.config
    );

    // The webhook gives each sidecar the Secret's CA bundle.
    let ns = chart.namespace(cluster, &client, true).await;
    let pod = restricted_pod(
        "follows-the-hub",
        json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/",
               "ssm-injector.io/mode": "sidecar"}),
    );
    let created = Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("refused: {e}\n{}", chart.log()));
    let spec = created.spec.expect("spec");
    let sidecar = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "ssm-injector")
        .expect("the native sidecar");
    let ca_env = sidecar
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "SSM_INJECTOR_HUB_CA_PEM")
        .and_then(|e| e.value.clone());
    assert_eq!(ca_env.as_deref(), Some(bundle.as_str()));

    // The hub, with the StatefulSet's args as its own ServiceAccount, serves a certificate
    // from the same CA.
    let sts = chart::find(&chart.docs, "StatefulSet", None);
    let pod_spec = &sts["spec"]["template"]["spec"];
    let sa = pod_spec["serviceAccountName"].as_str().expect("hub SA");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    chart::service_account_kubeconfig(cluster, &client, sa, &kubeconfig).await;
    let port = crate::support::sidecar::free_port();
    let mut args: Vec<String> = pod_spec["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .filter(|a| !a.starts_with("--listen="))
        .collect();
    assert!(
        args.iter().any(|a| a.starts_with("--tls-secret=")),
        "{args:?}"
    );
    args.push(format!("--listen=127.0.0.1:{port}"));
    args.push("--tls-extra-san=127.0.0.1".to_owned());
    let log = dir.path().join("hub.log");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ssm-injector"));
    cmd.args(&args)
        .env_clear()
        .env("KUBECONFIG", &kubeconfig)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    let mut hub = crate::support::cluster::spawn_kept(cmd);
    let tls = crate::support::pki::client_config(&bundle);
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = hub.try_wait() {
            panic!(
                "the hub exited with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let answer = crate::support::webhook::https_get(&tls, &addr, "/healthz", None);
        if answer.is_some_and(|(status, _)| status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the hub never answered /healthz");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leaf = served_trusting(&addr, &bundle);
    assert_eq!(issuer(&leaf), subjects(&bundle)[0]);
    let _ = hub.kill();
    let _ = hub.wait();
}

#[tokio::test]
async fn sighup_makes_a_self_managed_webhook_reread_its_ca_secret_now() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    // One check an hour: only SIGHUP can bring the next round in time.
    let values = "tls: {self: {checkInterval: 1h}}";
    let chart = Installed::install_self(cluster, &client, values, true).await;
    wait_patched(&chart, &client, Duration::from_secs(30)).await;
    let w = chart.webhook.as_ref().expect("running");
    let secret = chart
        .self_tls
        .as_ref()
        .expect("self-managed")
        .secret
        .clone();
    Api::<Secret>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .delete(&secret, &Default::default())
        .await
        .expect("delete the CA Secret");
    eventually(Duration::from_secs(10), "the CA Secret is gone", || async {
        chart.ca_secret(&client).await.is_none().then_some(())
    })
    .await;

    let sent = Instant::now();
    w.signal("HUP");
    eventually(
        Duration::from_secs(10),
        "the CA Secret is made again after SIGHUP",
        || async { chart.ca_secret(&client).await.map(|_| ()) },
    )
    .await;
    eprintln!(
        "CA Secret re-read (and made again) {:?} after SIGHUP",
        sent.elapsed()
    );
    let log = chart.log();
    assert!(
        log.contains("SIGHUP: re-reading the CA Secret"),
        "no SIGHUP line:\n{log}"
    );
    assert!(
        chart.webhook.as_ref().expect("running").connect().is_some(),
        "SIGHUP stopped the webhook:\n{log}"
    );
}
