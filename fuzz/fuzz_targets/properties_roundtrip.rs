//! properties round trip: render any key/value map (any keys, any values) as a Java
//! `.properties` file, check it is pure ASCII, read it back with the reference
//! `Properties.load` (`fuzz_support::java_load`) and get the same map, entry for entry.
#![no_main]

use std::collections::BTreeMap;

use fuzz_support::{explicit_entries, java_load};
use libfuzzer_sys::fuzz_target;
use ssm_injector::format::{Format, FormatError, FormatOptions, KeyCase, Rendered, render};

fuzz_target!(|map: BTreeMap<String, String>| {
    let opts = FormatOptions {
        format: Format::Properties,
        key_case: KeyCase::UpperSnake,
        template: None,
    };
    match render(&opts, &explicit_entries(&map)) {
        Ok(Rendered::File(bytes)) => {
            assert!(!map.contains_key(""), "an empty key was rendered");
            assert!(bytes.is_ascii(), "properties output is not pure ASCII");
            let text = std::str::from_utf8(&bytes).expect("ASCII is UTF-8");
            let back =
                java_load(text).unwrap_or_else(|e| panic!("output does not load: {e}\n{text:?}"));
            assert_eq!(back.len(), map.len(), "entries lost or split:\n{text:?}");
            let back: BTreeMap<String, String> = back.into_iter().collect();
            assert_eq!(back, map, "\n{text:?}");
        }
        Ok(Rendered::Tree(_)) => panic!("properties rendered a tree"),
        Err(FormatError::EmptyKey { .. }) => assert!(map.contains_key("")),
        Err(e) => panic!("unexpected error: {e}"),
    }
});
