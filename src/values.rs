//! The fetched values, as handed from the source to the formats.

use crate::secret::Secret;

/// Where an entry's output key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKey {
    /// A key the user chose (`--param KEY=NAME`): used as given, never re-cased.
    Explicit(String),
    /// The parameter name relative to a requested path (`db/password` under `/app/prod/`):
    /// turned into an output key by the output's key case.
    Relative(String),
}

/// One resolved value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What the output key is derived from.
    pub key: SourceKey,
    /// The parameter as the user asked for it (name, selector, ARN, `#field`), for messages.
    pub name: String,
    /// Parameter version as reported by the service, when it reports one.
    pub version: Option<i64>,
    /// The decrypted value.
    pub value: Secret,
}

/// Every resolved value of one fetch, in a stable order.
pub type Values = Vec<Entry>;
