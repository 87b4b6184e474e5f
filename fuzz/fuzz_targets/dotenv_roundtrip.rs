//! shell env-file round trip: render any key/value map with the shell format, read it back with
//! the strict reference parser (`fuzz_support::parse_dotenv`, the shell's reading of our
//! single-quote subset) and get the same map. Keys that are not shell identifiers and
//! values with a NUL must be refused, and nothing else.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use fuzz_support::{explicit_entries, parse_dotenv};
use libfuzzer_sys::fuzz_target;
use ssm_injector::format::{Format, FormatError, FormatOptions, KeyCase, Rendered, render};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Use the keys as given (mostly refused) instead of turning them into identifiers.
    raw_keys: bool,
    values: BTreeMap<String, String>,
}

fn identifier(raw: &str) -> String {
    let mut key: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
        key.insert(0, 'K');
    }
    key
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fuzz_target!(|input: Input| {
    let map: BTreeMap<String, String> = if input.raw_keys {
        input.values
    } else {
        input
            .values
            .into_iter()
            .map(|(k, v)| (identifier(&k), v))
            .collect()
    };
    let opts = FormatOptions {
        format: Format::Shell,
        key_case: KeyCase::UpperSnake,
        template: None,
    };
    let result = render(&opts, &explicit_entries(&map));
    let bad_key = map.keys().any(|k| !is_identifier(k));
    let nul = map.values().any(|v| v.contains('\0'));
    match result {
        Ok(Rendered::File(bytes)) => {
            assert!(!bad_key && !nul, "rendered a bad key or a NUL");
            let text = std::str::from_utf8(&bytes).expect("dotenv output is UTF-8");
            let back: BTreeMap<String, String> = parse_dotenv(text)
                .unwrap_or_else(|e| panic!("output does not parse back: {e}\n{text:?}"))
                .into_iter()
                .collect();
            assert_eq!(back, map);
        }
        Ok(Rendered::Tree(_)) => panic!("dotenv rendered a tree"),
        Err(FormatError::InvalidKey { .. } | FormatError::EmptyKey { .. }) => {
            assert!(bad_key, "a valid key was refused")
        }
        Err(FormatError::ValueRefused { .. }) => assert!(nul, "a value without NUL was refused"),
        Err(e) => panic!("unexpected error: {e}"),
    }
});
