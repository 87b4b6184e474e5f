//! The `yaml` and `properties` outputs read back by the readers people use (issue 17):
//! hostile keys and values go into Secrets Manager (moto), through `render --spec` into
//! both formats, and out through PyYAML, ruamel.yaml, SnakeYAML 1.33, serde_yaml_ng and
//! `java.util.Properties` (`support::readers`). Every key and every value
//! must come back as the same string from every reader, and no value may add a key.

use crate::support::readers::{self, READERS, Reader};
use crate::support::{Run, shared, unique_prefix};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Pieces of hostile values: the (quotes, `$`, backticks, backslashes, line breaks,
/// tab, `#`, `=`, `export`, control characters, BOM, U+2028/9, the injection attack), what
/// YAML 1.1 or 1.2 readers resolve as non-strings or refuse when plain (booleans, null
/// forms, numbers, sexagesimals, dates, `=`, `<<`, indicators), and non-ASCII up to the
/// astral planes.
const HOSTILE: &[&str] = &[
    "it's",
    "it's fine\nNODE_OPTIONS=--require=/tmp/evil.js",
    "say \"hi\"",
    "'single'",
    "\"double\"",
    "$HOME",
    "${PATH}",
    "$(id)",
    "`id`",
    "back\\slash",
    "trailing\\",
    "\\",
    "\\n",
    "\\u0041\\x41\\U0001F600",
    "line\nbreak",
    "cr\rhere",
    "crlf\r\n",
    "\n",
    "\t tab",
    "# not a comment",
    "a #b",
    "a=b",
    "=",
    "==",
    "<<",
    "~",
    "export X=1",
    "  leading and trailing  ",
    " ",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "Y",
    "n",
    "True",
    "FALSE",
    "null",
    "Null",
    "NULL",
    "0",
    "-1",
    "+12",
    "007",
    "0o17",
    "0x1F",
    "0b1010",
    "1_000",
    "1e3",
    "6.8523015e+5",
    "3.14",
    ".inf",
    "-.Inf",
    "+.INF",
    ".nan",
    ".NaN",
    "1:20",
    "190:20:30",
    "-1:30.5",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "- item",
    "? key",
    "key: value",
    ": colon",
    "[list]",
    "{map}",
    "a, b",
    "&anchor",
    "*alias",
    "!tag",
    "!!str",
    "%YAML 1.1",
    "@at",
    "|",
    ">",
    "---",
    "...",
    "\0nul",
    "\u{1}\u{7}\u{8}\u{b}\u{c}\u{1b}\u{1f}",
    "\u{7f}del",
    "\u{85}nel",
    "\u{a0}nbsp",
    "\u{2028}ls",
    "\u{2029}ps",
    "\u{feff}bom",
    "\u{fffe}\u{ffff}",
    "ü€ß",
    "日本語",
    "😀",
    "\u{10ffff}",
    "a\u{300}",
];

/// The hostile values, and the same strings as keys (all non-empty and distinct).
fn corpus() -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    map.insert("EMPTY".to_owned(), String::new());
    for (i, v) in HOSTILE.iter().enumerate() {
        map.insert(format!("V{i:03}"), (*v).to_owned());
        map.insert((*v).to_owned(), format!("key {i}"));
    }
    // A key longer than YAML's 1024 characters for an implicit key, once escaped.
    map.insert("😀".repeat(120), "long key".to_owned());
    assert_eq!(map.len(), 2 * HOSTILE.len() + 2, "HOSTILE has a repeat");
    map
}

/// Renders each case (key -> value) with one `render --spec` into `case-N.yaml` and
/// `case-N.properties` in `dir`. Every value is a field of one Secrets Manager secret per
/// case, selected with `#field`, so empty values come through too.
fn render_cases(cases: &[BTreeMap<String, String>], dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let emu = shared();
    let p = unique_prefix("readers");
    cases
        .iter()
        .enumerate()
        .map(|(n, case)| {
            let secret = format!("{}-case{n}", p.trim_start_matches('/').replace('/', "-"));
            let fields: serde_json::Map<_, _> = case
                .values()
                .enumerate()
                .map(|(i, v)| (format!("f{i}"), json!(v)))
                .collect();
            emu.create_secret(&secret, &serde_json::Value::Object(fields).to_string());
            let params: serde_json::Map<_, _> = case
                .keys()
                .enumerate()
                .map(|(i, k)| {
                    let name = format!("/aws/reference/secretsmanager/{secret}#f{i}");
                    (k.clone(), json!(name))
                })
                .collect();
            let yaml = dir.join(format!("case-{n}.yaml"));
            let props = dir.join(format!("case-{n}.properties"));
            // JSON is YAML: every hostile key is a quoted string in the spec file.
            let spec = json!({
                "params": params,
                "outputs": [
                    {"format": "yaml", "file": yaml},
                    {"format": "properties", "file": props},
                ],
            });
            let spec_file = dir.join(format!("spec-{n}.yaml"));
            std::fs::write(&spec_file, spec_yaml(&spec.to_string())).expect("write the spec");
            Run::render(emu, ["--spec", spec_file.to_str().expect("UTF-8 path")])
                .run()
                .assert_code(0);
            (yaml, props)
        })
        .collect()
}

/// JSON text as YAML the spec reader takes: the characters YAML refuses raw or reads as
/// line breaks (controls, DEL, C1 with NEL, U+2028/9, the BOM, U+FFFE/F), which JSON
/// leaves raw, escaped; other characters raw, so a long key stays short enough for an
/// implicit key.
fn spec_yaml(json: &str) -> String {
    json.chars()
        .map(|c| match u32::from(c) {
            n @ (0..=0x1F | 0x7F..=0x9F | 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF) => {
                format!("\\u{n:04X}")
            }
            _ => c.to_string(),
        })
        .collect()
}

/// Per reader: entries read back exactly, entries written, and the problems (at most a
/// few per file, with the case number).
/// In the order of [`READERS`].
type Tally = Vec<(Reader, usize, usize, Vec<String>)>;

/// Renders the cases and reads every file back with every reader of its format.
fn read_back(cases: &[BTreeMap<String, String>]) -> Tally {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = render_cases(cases, dir.path());
    let list: Vec<(&str, &Path)> = files
        .iter()
        .flat_map(|(y, p)| [("yaml", y.as_path()), ("properties", p.as_path())])
        .collect();
    let got = readers::read(&READERS, &list);
    let mut tally = Tally::new();
    for reader in READERS {
        let mut entry = (reader, 0, 0, Vec::new());
        for (n, (case, (y, p))) in cases.iter().zip(&files).enumerate() {
            let file = if reader.format == "yaml" { y } else { p };
            let back = got
                .get(&(reader.name.to_owned(), file.clone()))
                .unwrap_or_else(|| panic!("{} gave nothing for {}", reader.name, file.display()));
            let (exact, problems) = readers::compare(case, back);
            entry.1 += exact;
            entry.2 += case.len();
            entry.3.extend(
                problems
                    .into_iter()
                    .take(5)
                    .map(|p| format!("case {n}: {p}")),
            );
        }
        tally.push(entry);
    }
    tally
}

/// Fails naming every reader that did not read every entry back exactly.
fn assert_exact(tally: &Tally) {
    let failures: Vec<String> = tally
        .iter()
        .filter(|(_, exact, total, problems)| exact != total || !problems.is_empty())
        .map(|(r, exact, total, problems)| {
            format!(
                "{} ({}): {exact}/{total} exact\n  {}",
                r.name,
                r.format,
                problems.join("\n  ")
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reader_matrix_every_reader_reads_every_hostile_key_and_value_back_exactly() {
    let tally = read_back(&[corpus()]);
    let mut table = String::from(
        "| reader | format | keys and values read back exactly |\n| --- | --- | --- |\n",
    );
    for (r, exact, total, _) in &tally {
        let pct = 100.0 * *exact as f64 / (*total).max(1) as f64;
        table.push_str(&format!(
            "| {} | {} | {exact}/{total} ({pct:.0} %) |\n",
            r.name, r.format
        ));
    }
    println!(
        "reader matrix ({} hostile strings, each as a value and as a key):\n{table}",
        HOSTILE.len()
    );
    assert_exact(&tally);
}

/// One hostile string: a few pieces of [`HOSTILE`], of printable ASCII and of any
/// character, joined.
fn hostile_string(min_pieces: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(HOSTILE).prop_map(str::to_owned),
        1 => "[ -~]{1,4}",
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, min_pieces..5).prop_map(|v| v.concat())
}

#[test]
fn property_hostile_keys_and_values_read_back_exactly_in_every_reader() {
    // Many cases per file set, so each reader program (a JVM) starts once.
    let strategy = proptest::collection::btree_map(hostile_string(1), hostile_string(0), 1..24);
    let mut runner = TestRunner::default();
    let cases: Vec<BTreeMap<String, String>> = (0..12)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generate a case")
                .current()
        })
        .collect();
    assert_exact(&read_back(&cases));
}
