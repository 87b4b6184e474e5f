//! Shared code for the fuzz targets: helpers that turn fuzzer input into the crate's types,
//! and the strict reference readers of the shell env file and properties formats
//! (`ssm_injector::format::reference`, built because `cargo fuzz` sets `cfg(fuzzing)`).

use std::collections::BTreeMap;

use ssm_injector::values::{Entry, SourceKey};

/// Entries with explicit keys (never re-cased), as `--param KEY=NAME` gives them.
pub fn explicit_entries(map: &BTreeMap<String, String>) -> Vec<Entry> {
    map.iter()
        .map(|(k, v)| Entry {
            key: SourceKey::Explicit(k.clone()),
            name: format!("/fuzz/{}", k.len()),
            version: Some(1),
            value: v.as_str().into(),
        })
        .collect()
}

pub use ssm_injector::format::reference::{java_load, parse_shell};
