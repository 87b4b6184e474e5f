//! Who may ask the hub about what: the [`Authorizer`] seam (`--auth none`: [`AllowAll`];
//! `--auth kubernetes`: [`super::token_reviewer::TokenReviewer`]) and the [`Policy`] seam
//! ([`AllowAll`], or [`NamespacePolicy`]: the webhook's namespace → path-prefix policy).
//! Everything here is pure.

use crate::hub_protocol::Key;
use crate::policy::{self, Prefixes};
use std::future::Future;
use std::pin::Pin;

/// The caller, as an [`Authorizer`] established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The Kubernetes namespace, when the identity has one.
    pub namespace: Option<String>,
    /// The caller's name (a service account, or `anonymous`).
    pub name: String,
}

/// Why a caller was not let in. The message is shown to the caller: it never contains
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or one that is not valid for the hub (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The token could not be checked now, e.g. the Kubernetes API is unreachable (503);
    /// clients poll AWS themselves meanwhile.
    #[error("{0}")]
    Unavailable(String),
}

/// Why a caller may not watch a key (403); the message names the key and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The future of [`Authorizer::authorize`].
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>>;

/// Turns the request's bearer token (the `Authorization: Bearer …` header, if any) into an
/// identity. Called first for every watch request.
pub trait Authorizer: Send + Sync {
    fn authorize<'a>(&'a self, bearer: Option<&'a str>) -> AuthFuture<'a>;
}

/// Decides whether `identity` may watch `key`; a denial answers 403.
pub trait Policy: Send + Sync {
    fn check(&self, identity: &Identity, key: &Key) -> Result<(), Denied>;
}

/// `--auth none`: everyone is `anonymous` and may watch everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize<'a>(&'a self, _bearer: Option<&'a str>) -> AuthFuture<'a> {
        Box::pin(std::future::ready(Ok(Identity {
            namespace: None,
            name: "anonymous".to_owned(),
        })))
    }
}

impl Policy for AllowAll {
    fn check(&self, _identity: &Identity, _key: &Key) -> Result<(), Denied> {
        Ok(())
    }
}

/// The webhook's `namespace-prefixes` applied to watched keys, with the webhook's rules
/// ([`crate::inject::policy`]): a name (or an ARN's name, or a Secrets Manager reference
/// as `/NAME`) must be under one of the caller's namespace's prefixes, and so must a path
/// itself, so watching `/` cannot reveal the versions under other teams' prefixes. An
/// empty policy allows everything; a non-empty one allows nothing to a namespace it does
/// not list, or to a caller without a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePolicy {
    prefixes: Prefixes,
}

impl NamespacePolicy {
    pub fn new(prefixes: Prefixes) -> NamespacePolicy {
        NamespacePolicy { prefixes }
    }
}

impl Policy for NamespacePolicy {
    fn check(&self, identity: &Identity, key: &Key) -> Result<(), Denied> {
        if self.prefixes.is_empty() {
            return Ok(());
        }
        let Some(namespace) = identity.namespace.as_deref() else {
            return Err(Denied(format!(
                "{key}: the caller {} has no namespace, and the policy allows namespaces only",
                identity.name
            )));
        };
        let allowed = policy::allowance(&self.prefixes, namespace)
            .map_err(|e| Denied(format!("{key}: {e}")))?;
        let name = match key {
            Key::Name(r) => r.name.as_str(),
            Key::Path { path, .. } => path.as_str(),
        };
        if allowed.allows(name) {
            Ok(())
        } else {
            Err(Denied(format!(
                "{key} is outside the policy: {}; watch names and paths under an allowed prefix",
                allowed.rule(namespace)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> NamespacePolicy {
        NamespacePolicy::new(Prefixes::from([
            ("team-a".to_owned(), vec!["/apps/team-a/".to_owned()]),
            (
                "team-b".to_owned(),
                vec!["/apps/team-b".to_owned(), "/shared/".to_owned()],
            ),
            ("locked".to_owned(), vec![]),
        ]))
    }

    fn sa(namespace: &str) -> Identity {
        Identity {
            namespace: Some(namespace.to_owned()),
            name: "app".to_owned(),
        }
    }

    #[test]
    fn a_namespace_may_watch_only_under_its_prefixes() {
        // (case, namespace, key in wire form, allowed)
        let cases = [
            ("own name", "team-a", "name:/apps/team-a/x", true),
            (
                "own name by label",
                "team-a",
                "name:/apps/team-a/x:live",
                true,
            ),
            (
                "own name by version",
                "team-a",
                "name:/apps/team-a/x:3",
                true,
            ),
            ("own path", "team-a", "path:/apps/team-a/:r", true),
            (
                "the prefix without its slash",
                "team-a",
                "path:/apps/team-a:1",
                true,
            ),
            ("a deeper path", "team-a", "path:/apps/team-a/sub/:r", true),
            (
                "another team's name",
                "team-a",
                "name:/apps/team-b/x",
                false,
            ),
            (
                "another team's path",
                "team-a",
                "path:/apps/team-b/:r",
                false,
            ),
            ("a sibling prefix", "team-a", "name:/apps/team-ab/x", false),
            ("a parent path", "team-a", "path:/apps/:r", false),
            ("the root, one level", "team-a", "path:/:1", false),
            ("the root", "team-a", "path:/:r", false),
            (
                "own secret",
                "team-a",
                "name:/aws/reference/secretsmanager/apps/team-a/db",
                true,
            ),
            (
                "another team's secret",
                "team-a",
                "name:/aws/reference/secretsmanager/apps/team-b/db",
                false,
            ),
            (
                "an ARN is checked by its name",
                "team-a",
                "name:arn:aws:ssm:eu-west-1:111122223333:parameter/apps/team-a/db",
                true,
            ),
            (
                "an ARN outside",
                "team-a",
                "name:arn:aws:ssm:eu-west-1:111122223333:parameter/apps/team-b/db",
                false,
            ),
            ("second prefix", "team-b", "path:/shared/x/:r", true),
            (
                "prefix without slash",
                "team-b",
                "name:/apps/team-b/db",
                true,
            ),
            (
                "prefix without slash is component-wise",
                "team-b",
                "name:/apps/team-bc/db",
                false,
            ),
            (
                "an empty list allows nothing",
                "locked",
                "name:/apps/x",
                false,
            ),
            (
                "an unlisted namespace",
                "team-c",
                "name:/apps/team-c/x",
                false,
            ),
        ];
        let p = policy();
        for (case, ns, key, allowed) in cases {
            let key = Key::parse(key).unwrap();
            let got = p.check(&sa(ns), &key);
            assert_eq!(got.is_ok(), allowed, "{case}: {got:?}");
            if let Err(Denied(message)) = got {
                assert!(message.contains(&key.to_string()), "{case}: {message}");
                assert!(
                    message.contains(&format!("namespace {ns}")),
                    "{case}: {message}"
                );
            }
        }
    }

    #[test]
    fn a_denial_names_the_key_and_the_rule() {
        let p = policy();
        let key = Key::parse("path:/apps/:r").unwrap();
        let Err(Denied(m)) = p.check(&sa("team-b"), &key) else {
            panic!("allowed")
        };
        assert_eq!(
            m,
            "path:/apps/:r is outside the policy: namespace team-b may only read /apps/team-b/*, \
             /shared/*; watch names and paths under an allowed prefix"
        );
        let Err(Denied(m)) = p.check(&sa("team-c"), &key) else {
            panic!("allowed")
        };
        assert!(
            m.starts_with("path:/apps/:r: namespace team-c has no allowed parameter prefixes"),
            "{m}"
        );
        let Err(Denied(m)) = p.check(&sa("locked"), &key) else {
            panic!("allowed")
        };
        assert!(m.contains("namespace locked may read no parameters"), "{m}");
    }

    #[test]
    fn an_empty_policy_allows_everything_and_a_caller_without_namespace_gets_nothing() {
        let key = Key::parse("path:/:r").unwrap();
        let anonymous = Identity {
            namespace: None,
            name: "anonymous".to_owned(),
        };
        assert!(NamespacePolicy::default().check(&anonymous, &key).is_ok());
        assert!(NamespacePolicy::default().check(&sa("any"), &key).is_ok());
        let Err(Denied(m)) = policy().check(&anonymous, &key) else {
            panic!("allowed")
        };
        assert!(m.contains("has no namespace"), "{m}");
    }
}
