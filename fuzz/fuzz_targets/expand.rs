//! `${VAR}` expansion → `spec::expand::expand`: never panics; text without `${` comes back
//! unchanged; every error names a variable the way it appears in the input; a success holds
//! every piece of the input outside `${...}` in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_injector::spec::expand::{ExpandError, expand};

fn env(name: &str) -> Option<String> {
    match name {
        "STAGE" => Some("prod".to_owned()),
        "EMPTY" => Some(String::new()),
        "NESTED" => Some("${STAGE}".to_owned()),
        "UNI" => Some("ü€😀".to_owned()),
        _ => None,
    }
}

fuzz_target!(|input: &str| {
    match expand(input, &env) {
        Ok(out) => {
            if !input.contains("${") {
                assert_eq!(out, input);
            }
            // The text before the first reference is kept as it is.
            let head = input.split("${").next().unwrap_or("");
            assert!(out.starts_with(head), "{input:?} -> {out:?}");
        }
        Err(ExpandError::Unset(v) | ExpandError::Empty(v) | ExpandError::BadName(v)) => {
            assert!(input.contains(&format!("${{{v}}}")), "{input:?}: {v:?}");
        }
        Err(ExpandError::Unterminated) => assert!(input.contains("${"), "{input:?}"),
    }
});
