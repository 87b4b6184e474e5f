//! Names and selectors → `spec::names`: `parse_param_ref`, `check_name` and `check_path`
//! never panic on any string. A parsed reference prints (Display) as a string that parses
//! back to the same reference, its request has no `#field`, and its name passes
//! `check_name`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_injector::spec::names::{check_name, check_path, parse_param_ref};

fuzz_target!(|raw: &str| {
    let _ = check_path(raw);
    let _ = check_name(raw);
    if let Ok(r) = parse_param_ref(raw) {
        let shown = r.to_string();
        let again = parse_param_ref(&shown)
            .unwrap_or_else(|e| panic!("{raw:?} printed as {shown:?}, which fails: {e}"));
        assert_eq!(again, r, "{raw:?} printed as {shown:?}");
        assert!(!r.request().contains('#'), "{raw:?}");
        check_name(&r.name).unwrap_or_else(|e| panic!("{raw:?}: name {:?} {e}", r.name));
        let _ = r.is_secrets_manager();
        let _ = r.region();
    }
});
