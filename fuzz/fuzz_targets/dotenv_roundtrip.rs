//! Env-file dialects: render any key/value map in each of `shell`, `dotenv`, `docker` and
//! `k8s-env`. The shell output, read back by the strict reader of the shell's single-quote
//! subset (`fuzz_support::parse_shell`), gives the same map; keys that are not shell
//! identifiers and values with a NUL are refused, nothing else. Every dialect either
//! renders or refuses with `InvalidKey` / `ValueRefused`, never panics, and what it renders
//! keeps to its rules (no `'` in a k8s-env value, no newline in a docker value, one
//! assignment line per key outside quoted newlines). The exact round trips through the real
//! readers of each dialect are tests/readers.rs.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use fuzz_support::{explicit_entries, parse_shell};
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

fn render_as(format: Format, map: &BTreeMap<String, String>) -> Result<Vec<u8>, FormatError> {
    let opts = FormatOptions {
        format,
        key_case: KeyCase::UpperSnake,
        template: None,
    };
    match render(&opts, &explicit_entries(map))? {
        Rendered::File(bytes) => Ok(bytes.to_vec()),
        Rendered::Tree(_) => panic!("{format} rendered a tree"),
    }
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
    let bad_key = map.keys().any(|k| !is_identifier(k));
    let nul = map.values().any(|v| v.contains('\0'));
    match render_as(Format::Shell, &map) {
        Ok(bytes) => {
            assert!(!bad_key && !nul, "rendered a bad key or a NUL");
            let text = std::str::from_utf8(&bytes).expect("shell output is UTF-8");
            let back: BTreeMap<String, String> = parse_shell(text)
                .unwrap_or_else(|e| panic!("output does not parse back: {e}\n{text:?}"))
                .into_iter()
                .collect();
            assert_eq!(back, map);
        }
        Err(FormatError::InvalidKey { .. } | FormatError::EmptyKey { .. }) => {
            assert!(bad_key, "a valid key was refused")
        }
        Err(FormatError::ValueRefused { .. }) => assert!(nul, "a value without NUL was refused"),
        Err(e) => panic!("unexpected error: {e}"),
    }
    for format in [Format::Dotenv, Format::Docker, Format::K8sEnv] {
        match render_as(format, &map) {
            Ok(bytes) => {
                assert!(!bad_key && !nul, "{format} rendered a bad key or a NUL");
                let text = std::str::from_utf8(&bytes).expect("env output is UTF-8");
                let newlines: usize = map.values().map(|v| v.matches('\n').count()).sum();
                match format {
                    Format::Docker => assert!(newlines == 0, "docker wrote a newline"),
                    Format::K8sEnv => {
                        assert!(map.values().all(|v| !v.contains('\'') && !v.is_empty()))
                    }
                    _ => {}
                }
                // The header and one line per key, plus the newlines kept raw inside
                // single quotes (k8s-env always, dotenv when it single-quotes).
                let lines = text.lines().count();
                let base = 1 + map.len();
                match format {
                    Format::K8sEnv => assert_eq!(lines, base + newlines, "{text:?}"),
                    Format::Docker => assert_eq!(lines, base, "{text:?}"),
                    _ => assert!(base <= lines && lines <= base + newlines, "{text:?}"),
                }
            }
            Err(
                FormatError::InvalidKey { .. }
                | FormatError::EmptyKey { .. }
                | FormatError::ValueRefused { .. },
            ) => {}
            Err(e) => panic!("{format}: unexpected error: {e}"),
        }
    }
});
