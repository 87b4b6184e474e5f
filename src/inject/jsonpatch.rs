//! The JSONPatch (RFC 6902) the injector answers with, built from what the injection adds
//! ([`super::patch::Changes`]) rather than by diffing two JSON trees: each operation holds the
//! typed value it adds, written straight to bytes when the review is encoded.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Volume, VolumeMount};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A JSONPatch: operations applied in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Patch(pub Vec<Op>);

impl Patch {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The patch as JSON, what the API server reads (base64 in the review).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The same operations as a [`json_patch::Patch`] (for checks that apply the patch to a
    /// JSON document). Read back from [`Patch::to_bytes`], so it is what the API server gets.
    pub fn to_json_patch(&self) -> Result<json_patch::Patch, serde_json::Error> {
        serde_json::from_slice(&self.to_bytes()?)
    }

    pub(super) fn add(&mut self, path: impl Into<Cow<'static, str>>, value: Item) {
        self.0.push(Op {
            op: Kind::Add,
            path: path.into(),
            value: Some(value),
        });
    }

    pub(super) fn replace(&mut self, path: impl Into<Cow<'static, str>>, value: Item) {
        self.0.push(Op {
            op: Kind::Replace,
            path: path.into(),
            value: Some(value),
        });
    }

    pub(super) fn remove(&mut self, path: impl Into<Cow<'static, str>>) {
        self.0.push(Op {
            op: Kind::Remove,
            path: path.into(),
            value: None,
        });
    }
}

/// One operation: `{"op": ..., "path": ..., "value": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    pub op: Kind,
    /// A JSON pointer (RFC 6901) into the pod.
    pub path: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Add,
    Replace,
    Remove,
}

/// The value an operation adds, typed: serialised as the pod's own JSON would hold it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Item {
    Spec(Box<PodSpec>),
    Containers(Vec<Container>),
    Container(Box<Container>),
    Env(Vec<EnvVar>),
    EnvVar(Box<EnvVar>),
    Mounts(Vec<VolumeMount>),
    Mount(VolumeMount),
    Volumes(Vec<Volume>),
    Volume(Box<Volume>),
    Annotations(BTreeMap<String, String>),
    Text(String),
    /// A container's `command`.
    Strings(Vec<String>),
    Bool(bool),
}

/// `key` as one reference token of a JSON pointer: `~` → `~0`, `/` → `~1` (RFC 6901 §3;
/// `~` first, so a `/` never becomes `~01`).
pub fn pointer_token(key: &str) -> Cow<'_, str> {
    if key.contains(['~', '/']) {
        Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_tokens_escape_tilde_before_slash() {
        assert_eq!(pointer_token("plain"), "plain");
        assert_eq!(
            pointer_token("ssm-injector.io/status"),
            "ssm-injector.io~1status"
        );
        assert_eq!(pointer_token("a~b"), "a~0b");
        assert_eq!(pointer_token("~/"), "~0~1");
        assert_eq!(pointer_token("a~1b"), "a~01b");
        // The escaped token finds the member it names.
        for key in ["a/b", "a~b", "~1", "/~", "x~01/y"] {
            let doc = json!({ key: 1 });
            assert_eq!(
                doc.pointer(&format!("/{}", pointer_token(key))),
                Some(&json!(1)),
                "{key}"
            );
        }
    }

    #[test]
    fn operations_serialise_as_rfc_6902() {
        let mut p = Patch::default();
        p.add("/spec/shareProcessNamespace", Item::Bool(true));
        p.replace("/metadata/annotations/a~1b", Item::Text("v".into()));
        p.remove("/spec/initContainers");
        let bytes = p.to_bytes().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            json!([
                {"op": "add", "path": "/spec/shareProcessNamespace", "value": true},
                {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "v"},
                {"op": "remove", "path": "/spec/initContainers"},
            ])
        );
        assert_eq!(p.to_json_patch().unwrap().0.len(), 3);
    }
}
