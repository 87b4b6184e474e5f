//! The AWS identity the injected containers inherit from the app.
//!
//! On EKS, IRSA and EKS Pod Identity work through a mutating webhook of their own (the
//! "pod identity webhook") that gives every container *that exists when it runs* the
//! credentials' environment (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, or
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`), the
//! region, and a mount of its projected token. Mutating webhooks run in the order of their
//! configurations' names, so it usually runs before ours, and it does not add them to
//! containers added later, even when re-invoked (aws/amazon-eks-pod-identity-webhook
//! issues 61 and 91). Without them the injected containers would fall back to the node's
//! role through IMDS, or have no credentials at all. So the injector copies that wiring
//! from the app: the same pod, the same service account, nothing the pod did not have.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, VolumeMount};

/// The environment the pod identity webhook (and a user who wires IRSA by hand) sets.
pub const INHERITED_ENV: &[&str] = &[
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

/// Variables that name a token file, whose directory's mount is inherited too.
const TOKEN_FILE_ENV: &[&str] = &[
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// What the injected containers get: environment variables and mounts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inherited {
    pub env: Vec<EnvVar>,
    pub mounts: Vec<VolumeMount>,
}

/// The AWS wiring of the first container among `readers` (app containers first) that has
/// credentials (`AWS_ROLE_ARN` or `AWS_CONTAINER_CREDENTIALS_FULL_URI`); else only the
/// region variables of the first reader that sets one. Token-file mounts come along: the
/// mount whose path holds the token file.
pub fn inherited(spec: &PodSpec, chosen: impl Fn(&Container) -> bool) -> Inherited {
    let readers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| chosen(c))
        .collect();
    let has = |c: &Container, name: &str| c.env.iter().flatten().any(|e| e.name == name);
    let source = readers
        .iter()
        .find(|c| has(c, "AWS_ROLE_ARN") || has(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    let Some(source) = source else {
        let region = readers
            .iter()
            .find(|c| has(c, "AWS_REGION") || has(c, "AWS_DEFAULT_REGION"));
        return Inherited {
            env: region
                .map(|c| env_of(c, &["AWS_REGION", "AWS_DEFAULT_REGION"]))
                .unwrap_or_default(),
            mounts: Vec::new(),
        };
    };
    let env = env_of(source, INHERITED_ENV);
    let token_files: Vec<&str> = env
        .iter()
        .filter(|e| TOKEN_FILE_ENV.contains(&e.name.as_str()))
        .filter_map(|e| e.value.as_deref())
        .collect();
    let mounts = source
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| {
            token_files
                .iter()
                .any(|f| crate::spec::names::is_under(f, &m.mount_path) && *f != m.mount_path)
        })
        .map(|m| VolumeMount {
            read_only: Some(true),
            ..m.clone()
        })
        .collect();
    Inherited { env, mounts }
}

fn env_of(c: &Container, names: &[&str]) -> Vec<EnvVar> {
    c.env
        .iter()
        .flatten()
        .filter(|e| names.contains(&e.name.as_str()))
        .cloned()
        .collect()
}

/// Adds what `c` lacks of `inherited` (a variable or mount path `c` has already wins).
pub fn give(c: &mut Container, inherited: &Inherited) {
    for e in &inherited.env {
        let env = c.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|have| have.name == e.name) {
            env.push(e.clone());
        }
    }
    for m in &inherited.mounts {
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts
            .iter()
            .any(|have| have.mount_path == m.mount_path || have.name == m.name)
        {
            mounts.push(m.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("a PodSpec")
    }

    /// What the pod identity webhook leaves on an app container for IRSA.
    fn irsa_app(name: &str) -> serde_json::Value {
        json!({"name": name, "env": [
            {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
            {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
            {"name": "AWS_REGION", "value": "eu-west-1"},
            {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/app"},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
            {"name": "DB_HOST", "value": "db"}
        ], "volumeMounts": [
            {"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true},
            {"name": "data", "mountPath": "/data"}
        ]})
    }

    fn names(env: &[EnvVar]) -> Vec<&str> {
        env.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn irsa_env_and_its_token_mount_are_inherited_and_nothing_else() {
        let s = spec(json!({"containers": [{"name": "sidecar-of-someone"}, irsa_app("app")]}));
        let got = inherited(&s, |_| true);
        assert_eq!(
            names(&got.env),
            [
                "AWS_STS_REGIONAL_ENDPOINTS",
                "AWS_DEFAULT_REGION",
                "AWS_REGION",
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE"
            ]
        );
        assert_eq!(got.mounts.len(), 1);
        assert_eq!(got.mounts[0].name, "aws-iam-token");
        assert_eq!(got.mounts[0].read_only, Some(true));
    }

    #[test]
    fn pod_identity_env_and_its_token_mount_are_inherited() {
        let s = spec(json!({"containers": [{"name": "app", "env": [
            {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://169.254.170.23/v1/credentials"},
            {"name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "value": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"}
        ], "volumeMounts": [
            {"name": "eks-pod-identity-token", "mountPath": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount", "readOnly": true}
        ]}]}));
        let got = inherited(&s, |_| true);
        assert_eq!(got.env.len(), 2);
        assert_eq!(got.mounts[0].name, "eks-pod-identity-token");
    }

    #[test]
    fn only_chosen_containers_are_read_and_without_credentials_only_the_region_comes() {
        let s = spec(json!({"containers": [
            irsa_app("other"),
            {"name": "app", "env": [{"name": "AWS_REGION", "value": "us-west-2"}, {"name": "X", "value": "1"}]}
        ]}));
        let got = inherited(&s, |c| c.name == "app");
        assert_eq!(names(&got.env), ["AWS_REGION"]);
        assert!(got.mounts.is_empty());
        let none = inherited(&spec(json!({"containers": [{"name": "app"}]})), |_| true);
        assert_eq!(none, Inherited::default());
    }

    #[test]
    fn a_container_keeps_what_it_has() {
        let s = spec(json!({"containers": [irsa_app("app")]}));
        let got = inherited(&s, |_| true);
        let mut c: Container = serde_json::from_value(json!({"name": "ours", "env": [
            {"name": "AWS_REGION", "value": "us-east-1"}
        ]}))
        .expect("container");
        give(&mut c, &got);
        give(&mut c, &got);
        let env = c.env.expect("env");
        assert_eq!(env.iter().filter(|e| e.name == "AWS_REGION").count(), 1);
        assert_eq!(env[0].value.as_deref(), Some("us-east-1"));
        assert_eq!(c.volume_mounts.expect("mounts").len(), 1);
    }
}
