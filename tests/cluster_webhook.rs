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

fn api_message(e: kube::Error) -> String {
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
async fn a_stopped_webhook_refuses_opted_in_pods_and_admits_the_rest_again_once_it_is_back() {
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
