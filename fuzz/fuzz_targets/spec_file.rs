//! Spec files → `spec::file::parse` then `Spec::build`: any text parses or fails without a
//! panic, and so does building the spec from it. A built spec keeps its promises: paths end
//! with `/` and pass `check_path`, every parameter's name passes `check_name`, keys are
//! unique and non-empty, concurrency is in range, output files are distinct, and every mode
//! lets the owner read.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use ssm_injector::spec::names::{check_name, check_path};
use ssm_injector::spec::{MAX_CONCURRENCY, Spec, SpecInput, file};

fn env(name: &str) -> Option<String> {
    match name {
        "STAGE" => Some("prod".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fuzz_target!(|text: &str| {
    let Ok(parsed) = file::parse(text) else {
        return;
    };
    let input = SpecInput {
        file: Some(("fuzz.yaml".to_owned(), parsed)),
        outputs_optional: text.len().is_multiple_of(2),
        ..SpecInput::default()
    };
    let Ok(spec) = Spec::build(input, &env) else {
        return;
    };
    for p in &spec.paths {
        assert!(p.path.ends_with('/'), "{:?}", p.path);
        check_path(&p.path).unwrap_or_else(|e| panic!("{:?} {e}", p.path));
    }
    let mut keys = BTreeSet::new();
    for p in &spec.params {
        assert!(!p.key.is_empty());
        assert!(keys.insert(&p.key), "key {:?} twice", p.key);
        check_name(&p.param.name).unwrap_or_else(|e| panic!("{:?} {e}", p.param.name));
    }
    assert!((1..=MAX_CONCURRENCY).contains(&spec.concurrency));
    let mut files = BTreeSet::new();
    for o in &spec.outputs {
        assert!(files.insert(&o.file), "{:?} twice", o.file);
        assert!(o.mode & 0o400 != 0 && o.mode <= 0o777, "{:o}", o.mode);
    }
});
