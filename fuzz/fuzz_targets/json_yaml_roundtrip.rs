//! json and yaml round trips: render any key/value map as json and as yaml, read each back
//! with serde_json / serde_yaml_ng as a map of strings and get the same map (so `true`,
//! `0x1F`, `~` and the like stay strings).
#![no_main]

use std::collections::BTreeMap;

use fuzz_support::explicit_entries;
use libfuzzer_sys::fuzz_target;
use ssm_injector::format::{Format, FormatError, FormatOptions, KeyCase, Rendered, render};

fuzz_target!(|map: BTreeMap<String, String>| {
    let entries = explicit_entries(&map);
    for format in [Format::Json, Format::Yaml] {
        let opts = FormatOptions {
            format,
            key_case: KeyCase::UpperSnake,
            template: None,
        };
        match render(&opts, &entries) {
            Ok(Rendered::File(bytes)) => {
                assert!(!map.contains_key(""), "an empty key was rendered");
                let back: BTreeMap<String, String> = match format {
                    Format::Json => serde_json::from_slice(&bytes)
                        .unwrap_or_else(|e| panic!("json does not parse back: {e}")),
                    _ => serde_yaml_ng::from_slice(&bytes).unwrap_or_else(|e| {
                        panic!(
                            "yaml does not parse back: {e}\n{:?}",
                            String::from_utf8_lossy(&bytes)
                        )
                    }),
                };
                assert_eq!(back, map, "{format}");
            }
            Ok(Rendered::Tree(_)) => panic!("{format} rendered a tree"),
            Err(FormatError::EmptyKey { .. }) => assert!(map.contains_key("")),
            Err(e) => panic!("{format}: unexpected error: {e}"),
        }
    }
});
