//! Who may ask the hub about what: the seams for authentication (a bearer token, e.g. a
//! projected service account token checked with TokenReview) and for the namespace →
//! path-prefix policy. Only `--auth none` ([`AllowAll`]) is implemented here.

use super::protocol::Key;
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

/// Why a caller was not authenticated (401); the message is shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Why a caller may not watch a key (403); the message names the key and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The future of [`Authorizer::authorize`].
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>>;

/// Turns the request's bearer token (the `Authorization: Bearer …` header, if any) into an
/// identity. Called first for every watch request; an error answers 401.
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
