//! The webhook against a real kube-apiserver (v1.36, [`crate::support::cluster`]), registered
//! exactly as the chart renders it ([`crate::support::chart`]): pods created through the
//! API, the mutated pod read back as the API server stored it, PodSecurity `restricted`
//! checking the injected containers, denials as a client sees them, and outages.

use crate::require_cluster;
use crate::support::chart::Installed;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A pod that PodSecurity `restricted` admits as written, with `annotations`.
pub fn restricted_pod(name: &str, annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "app",
                "image": "registry.example/app:1",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                },
                "volumeMounts": [{"name": "config", "mountPath": "/config"}]
            }],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}]
        }
    }))
    .expect("a Pod")
}

fn names(cs: &Option<Vec<Container>>) -> Vec<String> {
    cs.iter().flatten().map(|c| c.name.clone()).collect()
}

/// The API server's message refusing `pod` in a fresh restricted namespace with the chart
/// installed (panics if it is admitted).
pub(crate) async fn denial_of(cluster: &crate::support::cluster::Cluster, pod: &Pod) -> String {
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let err = Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), pod)
        .await
        .map(|_| ())
        .expect_err(&format!("{name}: the pod was admitted"));
    api_message(err)
}

pub(crate) fn api_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn a_restricted_namespace_admits_every_injection_mode_as_the_chart_registers_it() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "app-config"},
        "data": {"app.tmpl": "db={{ DB }}\n"}
    }))
    .expect("ConfigMap");
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("create the template ConfigMap");

    // (name, extra annotations, init containers, containers) after injection.
    let cases: Vec<(&str, Value, Vec<&str>, Vec<&str>)> = vec![
        ("init", json!({}), vec!["ssm-injector-init"], vec!["app"]),
        (
            "native-sidecar",
            json!({"ssm-injector.io/mode": "sidecar"}),
            vec!["ssm-injector"],
            vec!["app"],
        ),
        (
            "classic-sidecar",
            json!({"ssm-injector.io/mode": "sidecar", "ssm-injector.io/native-sidecar": "false"}),
            vec![],
            vec!["app", "ssm-injector"],
        ),
        (
            "init-and-native-sidecar",
            json!({"ssm-injector.io/mode": "init+sidecar"}),
            vec!["ssm-injector-init", "ssm-injector"],
            vec!["app"],
        ),
        (
            "init-and-classic-sidecar",
            json!({"ssm-injector.io/mode": "init+sidecar", "ssm-injector.io/native-sidecar": "false"}),
            vec!["ssm-injector-init"],
            vec!["app", "ssm-injector"],
        ),
        (
            "files",
            json!({"ssm-injector.io/format": "files"}),
            vec!["ssm-injector-init"],
            vec!["app"],
        ),
        (
            "template",
            json!({"ssm-injector.io/template": "/config/app.tmpl", "ssm-injector.io/mode": "init+sidecar"}),
            vec!["ssm-injector-init", "ssm-injector"],
            vec!["app"],
        ),
    ];
    for (name, extra, inits, containers) in cases {
        let mut annotations = json!({
            "ssm-injector.io/inject": "true",
            "ssm-injector.io/path": "/app/prod/",
        });
        for (k, v) in extra.as_object().expect("object") {
            annotations[k] = v.clone();
        }
        let created = pods
            .create(&PostParams::default(), &restricted_pod(name, annotations))
            .await
            .unwrap_or_else(|e| {
                panic!("{name}: the restricted namespace refused the injected pod: {e}\nwebhook log:\n{}", chart.log())
            });
        let spec = created.spec.as_ref().expect("spec");
        assert_eq!(names(&spec.init_containers), inits, "{name}");
        assert_eq!(
            spec.containers
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>(),
            containers,
            "{name}"
        );
        let status = created
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("ssm-injector.io/status"));
        assert_eq!(status.map(String::as_str), Some("injected"), "{name}");
        // The stored pod is what a kubelet would run: read it back from the API.
        let stored = pods.get(name).await.expect("get the pod");
        assert_eq!(stored.spec, created.spec, "{name}");
    }
}

#[tokio::test]
async fn with_the_webhook_down_pods_that_did_not_opt_in_are_admitted_and_opted_in_pods_are_refused()
{
    let cluster = require_cluster!();
    let client = cluster.client().await;
    // failurePolicy Fail (the chart's default), nothing listening behind the url.
    let chart = Installed::install(&client, "", false).await;
    let hooks = chart.registered.webhooks.clone().unwrap_or_default();
    assert_eq!(hooks[0].failure_policy.as_deref(), Some("Fail"));
    assert!(
        hooks[0]
            .match_conditions
            .as_ref()
            .is_some_and(|m| !m.is_empty()),
        "the chart registers matchConditions: {hooks:?}"
    );
    let ns = chart.namespace(cluster, &client, false).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);

    for (name, annotations) in [
        ("plain", json!({})),
        ("opted-out", json!({"ssm-injector.io/inject": "false"})),
        ("upper-case", json!({"ssm-injector.io/inject": "TRUE"})),
        ("other-annotations", json!({"example.com/team": "a"})),
    ] {
        let created = pods
            .create(&PostParams::default(), &restricted_pod(name, annotations))
            .await
            .unwrap_or_else(|e| panic!("{name}: a pod that did not opt in was refused: {e}"));
        assert!(
            created.spec.expect("spec").init_containers.is_none(),
            "{name} was not injected"
        );
    }

    let err = pods
        .create(
            &PostParams::default(),
            &restricted_pod(
                "opted-in",
                json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/"}),
            ),
        )
        .await
        .expect_err("an opted-in pod must not start without its values");
    let message = api_message(err);
    assert!(
        message.contains("failed calling webhook \"inject.ssm-injector.io\""),
        "{message}"
    );

    // With failurePolicy Ignore (the documented alternative) it starts, uninjected.
    let ignore = Installed::install(&client, "webhook: {failurePolicy: Ignore}", false).await;
    let ns = ignore.namespace(cluster, &client, false).await;
    let created = Api::<Pod>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &restricted_pod(
                "opted-in",
                json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/"}),
            ),
        )
        .await
        .expect("failurePolicy Ignore admits the pod");
    assert!(created.spec.expect("spec").init_containers.is_none());
    chart.uninstall(&client).await;
    ignore.uninstall(&client).await;
}

#[tokio::test]
async fn a_webhook_stopped_after_injecting_refuses_opted_in_pods_and_still_admits_the_rest() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let mut chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let opted_in = json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/"});
    pods.create(
        &PostParams::default(),
        &restricted_pod("before", opted_in.clone()),
    )
    .await
    .expect("injected while up");
    chart.stop();
    pods.create(&PostParams::default(), &restricted_pod("plain", json!({})))
        .await
        .expect("a plain pod is admitted while the webhook is down");
    let message = api_message(
        pods.create(&PostParams::default(), &restricted_pod("during", opted_in))
            .await
            .expect_err("refused while down"),
    );
    assert!(message.contains("inject.ssm-injector.io"), "{message}");
}

#[tokio::test]
async fn re_applying_an_injected_pod_changes_nothing_and_a_copy_is_not_injected_twice() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let mut manifest = restricted_pod(
        "web",
        json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/", "ssm-injector.io/mode": "init+sidecar"}),
    );
    manifest.metadata.namespace = Some(ns.clone());
    let mut value = serde_json::to_value(&manifest).expect("JSON");
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Pod");
    let params = PatchParams::apply("ci-test");
    let first = pods
        .patch("web", &params, &Patch::Apply(&value))
        .await
        .expect("server-side apply creates the pod");
    let again = pods
        .patch("web", &params, &Patch::Apply(&value))
        .await
        .expect("applying the same manifest again succeeds");
    assert_eq!(again.spec, first.spec, "re-apply changed the pod");
    assert_eq!(
        names(&first.spec.as_ref().expect("spec").init_containers),
        ["ssm-injector-init", "ssm-injector"]
    );

    // A copy of the stored (injected) pod under a new name: already injected, left alone.
    let mut copy = first.clone();
    copy.metadata = kube::api::ObjectMeta {
        name: Some("web-copy".into()),
        annotations: first.metadata.annotations.clone(),
        ..Default::default()
    };
    let copied = pods
        .create(&PostParams::default(), &copy)
        .await
        .expect("create the copy");
    assert_eq!(
        copied.spec, first.spec,
        "the copy was injected a second time"
    );
}

/// `restricted_pod` as YAML for kubectl, in `namespace`.
fn manifest(name: &str, namespace: &str, annotations: Value) -> String {
    let mut v = serde_json::to_value(restricted_pod(name, annotations)).expect("JSON");
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Pod");
    v["metadata"]["namespace"] = json!(namespace);
    serde_json::to_string(&v).expect("JSON")
}

#[tokio::test]
async fn every_kind_of_denial_reaches_the_client_naming_the_annotation() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    // (annotations besides inject + path, the annotation the message must name)
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"ssm-injector.io/paht": "/x"}),
            "ssm-injector.io/paht",
        ),
        (
            json!({"ssm-injector.io/path": "app/prod"}),
            "ssm-injector.io/path",
        ),
        (
            json!({"ssm-injector.io/path": "/app/${STAGE}/"}),
            "ssm-injector.io/path",
        ),
        (
            json!({"ssm-injector.io/param-1DB": "/a/b"}),
            "ssm-injector.io/param-1DB",
        ),
        (
            json!({"ssm-injector.io/param-DB": "/a//b"}),
            "ssm-injector.io/param-DB",
        ),
        (
            json!({"ssm-injector.io/format": "toml"}),
            "ssm-injector.io/format",
        ),
        (
            json!({"ssm-injector.io/file": "../etc/passwd"}),
            "ssm-injector.io/file",
        ),
        (
            json!({"ssm-injector.io/mount-path": "/ssm/../etc"}),
            "ssm-injector.io/mount-path",
        ),
        (
            json!({"ssm-injector.io/mount-path": "/config"}),
            "ssm-injector.io/mount-path",
        ),
        (
            json!({"ssm-injector.io/mode": "daemon"}),
            "ssm-injector.io/mode",
        ),
        (
            json!({"ssm-injector.io/mode": "sidecar", "ssm-injector.io/interval": "500ms"}),
            "ssm-injector.io/interval",
        ),
        (
            json!({"ssm-injector.io/containers": "app,nope"}),
            "ssm-injector.io/containers",
        ),
        (
            json!({"ssm-injector.io/file-mode": "0999"}),
            "ssm-injector.io/file-mode",
        ),
        (
            json!({"ssm-injector.io/mode": "sidecar", "ssm-injector.io/reload-signal": "HUPP", "ssm-injector.io/reload-process": "nginx"}),
            "ssm-injector.io/reload-signal",
        ),
        (
            json!({"ssm-injector.io/reload-process": "nginx"}),
            "ssm-injector.io/reload-process",
        ),
        (
            json!({"ssm-injector.io/template": "/etc/tmpl/app.j2"}),
            "ssm-injector.io/template",
        ),
        (
            json!({"ssm-injector.io/native-sidecar": "yes"}),
            "ssm-injector.io/native-sidecar",
        ),
        (
            json!({"ssm-injector.io/memory-request": "1Gi", "ssm-injector.io/memory-limit": "32Mi"}),
            "ssm-injector.io/memory-request",
        ),
    ];
    for (i, (extra, named)) in cases.into_iter().enumerate() {
        let mut annotations =
            json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/"});
        for (k, v) in extra.as_object().expect("object") {
            annotations[k] = v.clone();
        }
        let name = format!("bad-{i}");
        let err = pods
            .create(&PostParams::default(), &restricted_pod(&name, annotations))
            .await
            .expect_err(&format!("{named}: the pod was admitted"));
        let message = api_message(err);
        assert!(
            message.contains("admission webhook \"inject.ssm-injector.io\" denied the request")
                && message.contains(named),
            "{named}: {message}"
        );
    }

    // kubectl prints the same sentence to the user and exits non-zero.
    let (code, _, stderr) = crate::support::chart::kubectl(
        cluster,
        &["create", "-f", "-"],
        Some(&manifest(
            "by-kubectl",
            &ns,
            json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/", "ssm-injector.io/mode": "daemon"}),
        )),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("admission webhook \"inject.ssm-injector.io\" denied the request: ssm-injector.io/mode: unknown mode \"daemon\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_namespace_policy_admits_a_teams_own_prefix_and_refuses_others_naming_the_rule() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let team_a = cluster
        .namespace(
            &client,
            "team-a",
            &[("pod-security.kubernetes.io/enforce", "restricted")],
        )
        .await;
    let team_b = cluster.namespace(&client, "team-b", &[]).await;
    let values = format!("policy: {{namespacePrefixes: {{{team_a}: [/team-a/]}}}}");
    let chart = Installed::install(&client, &values, true).await;
    chart.adopt(&client, &team_a).await;
    chart.adopt(&client, &team_b).await;

    let a = Api::<Pod>::namespaced(client.clone(), &team_a);
    let own = json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/team-a/prod/"});
    let created = a
        .create(&PostParams::default(), &restricted_pod("own", own.clone()))
        .await
        .unwrap_or_else(|e| panic!("team-a's own prefix: {e}\n{}", chart.log()));
    assert_eq!(
        names(&created.spec.expect("spec").init_containers),
        ["ssm-injector-init"]
    );

    let other =
        json!({"ssm-injector.io/inject": "true", "ssm-injector.io/param-X": "/team-b/prod/x"});
    let message = api_message(
        a.create(&PostParams::default(), &restricted_pod("other", other))
            .await
            .expect_err("another team's parameter"),
    );
    assert!(
        message.contains("ssm-injector.io/param-X") && message.contains("/team-a/"),
        "{message}"
    );
    // A namespace the policy does not list may read nothing.
    let message = api_message(
        Api::<Pod>::namespaced(client.clone(), &team_b)
            .create(&PostParams::default(), &restricted_pod("unlisted", own))
            .await
            .expect_err("an unlisted namespace"),
    );
    assert!(message.contains(&team_b), "{message}");
}

#[tokio::test]
async fn injected_containers_get_the_irsa_wiring_the_pod_identity_webhook_gave_the_app_before() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    // The pod as EKS's pod identity webhook (which runs first: "pod-identity-webhook" sorts
    // before "ssm-injector") leaves it.
    let mut pod = serde_json::to_value(restricted_pod(
        "irsa",
        json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/", "ssm-injector.io/mode": "init+sidecar"}),
    ))
    .expect("JSON");
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/app"},
        {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}
    ]);
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}));
    pod["spec"]["volumes"].as_array_mut().expect("volumes").push(json!({
        "name": "aws-iam-token",
        "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]}
    }));
    let created = Api::<Pod>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod).expect("Pod"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", chart.log()));
    for c in created
        .spec
        .expect("spec")
        .init_containers
        .into_iter()
        .flatten()
    {
        let env: Vec<String> = c.env.iter().flatten().map(|e| e.name.clone()).collect();
        for want in [
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_REGION",
            "AWS_STS_REGIONAL_ENDPOINTS",
        ] {
            assert!(env.contains(&want.to_owned()), "{}: {env:?}", c.name);
        }
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == "aws-iam-token"),
            "{}",
            c.name
        );
    }
}

#[tokio::test]
async fn the_sidecars_admin_port_and_its_probe_move_off_a_port_the_app_declares() {
    let cluster = require_cluster!();
    let client = cluster.client().await;
    let chart = Installed::install(&client, "", true).await;
    let ns = chart.namespace(cluster, &client, true).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let mut pod = serde_json::to_value(restricted_pod(
        "busy-8099",
        json!({"ssm-injector.io/inject": "true", "ssm-injector.io/path": "/app/prod/", "ssm-injector.io/mode": "sidecar"}),
    ))
    .expect("JSON");
    pod["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 8099}, {"containerPort": 8100}]);
    let created = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod.clone()).expect("Pod"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", chart.log()));
    let spec = created.spec.expect("spec");
    let sidecar = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "ssm-injector")
        .expect("the native sidecar");
    let args = sidecar.args.clone().unwrap_or_default();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .map(|i| args[i + 1].clone())
        .expect("--listen");
    let port: i32 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    assert!(![8099, 8100].contains(&port), "{listen}");
    let probe = sidecar
        .startup_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .map(|h| h.port.clone());
    assert_eq!(
        probe,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port))
    );

    // Named explicitly, and refused when the app declares it.
    pod["metadata"]["name"] = json!("named");
    pod["metadata"]["annotations"]["ssm-injector.io/admin-port"] = json!("9300");
    let named = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod.clone()).expect("Pod"),
        )
        .await
        .expect("admin-port 9300");
    let args = named.spec.expect("spec").init_containers.expect("inits")[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(
        args.windows(2).any(|w| w == ["--listen", "0.0.0.0:9300"]),
        "{args:?}"
    );
    pod["metadata"]["name"] = json!("clash");
    pod["metadata"]["annotations"]["ssm-injector.io/admin-port"] = json!("8099");
    let message = api_message(
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(pod).expect("Pod"),
        )
        .await
        .expect_err("a declared port"),
    );
    assert!(
        message.contains("ssm-injector.io/admin-port") && message.contains("app"),
        "{message}"
    );
}
