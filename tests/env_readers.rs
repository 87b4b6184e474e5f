//! The reader matrix of the env-file dialects (issue 17): hostile values rendered by
//! `format::render` in each dialect and read back by the real readers of that dialect.
//!
//! | dialect | readers |
//! | --- | --- |
//! | `shell` | bash, dash (`set -a; . FILE`), busybox sh when it is installed |
//! | `dotenv` | python-dotenv (.venv), node `dotenv` default and `fast` parsers (tests/readers, `scripts/setup-node`), docker compose (a port of compose-go's parser) |
//! | `docker` | a port of docker/cli's env-file reader |
//! | `k8s-env` | a port of the kubelet's `ParseEnv` |
//!
//! The Go readers cannot run here, so tests/readers/env_readers.py ports them line for line,
//! each beside its source reference. Every value a dialect accepts must come back exactly
//! from every reader, no reader may see a variable that was not written (the injection
//! `it's fine\nNODE_OPTIONS=...` is in every batch), and every value a dialect refuses must
//! be refused with `FormatError::ValueRefused` (exit 6 from `render`) whose message names
//! the key and the dialect but not the value. One reader process reads a whole batch.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use ssm_injector::format::{Format, FormatError, FormatOptions, KeyCase, Rendered, render};
use ssm_injector::values::{Entry, SourceKey};

use crate::support::emulator::venv;

/// The injection of issue 17: the old dotenv output of this value created NODE_OPTIONS in
/// python-dotenv, node dotenv and systemd.
const ATTACK: &str = "it's fine\nNODE_OPTIONS=--require=/tmp/evil.js";

/// The hostile values of issue 17 and more.
const HOSTILE: &[&str] = &[
    ATTACK,
    "x\nNODE_OPTIONS=--require=/tmp/evil.js",
    "\"\nNODE_OPTIONS=evil\n\"",
    "'\nNODE_OPTIONS=evil\n'",
    "it's",
    "say \"hi\"",
    "$HOME and $1",
    "${PATH}",
    "${PATH:-x}",
    "`id`",
    "$(id)",
    "back\\slash",
    "trailing\\",
    "two\\\\",
    "\\'",
    "\\\"",
    "\\n literal",
    "line1\nline2",
    "trailing newline\n",
    "cr\rhere",
    "crlf\r\nhere",
    "ends with cr\r",
    "\ttab\t",
    "# not a comment",
    "a #b",
    "a=b=c",
    "export X=1",
    "=",
    "ctrl\u{1}\u{1b}[0m\u{7f}\u{b}\u{c}",
    "\u{feff}bom",
    "ls\u{2028}ps\u{2029}",
    "\u{85}nel\u{a0}",
    "ü€😀 non-ASCII",
    "",
    " ",
    "  lead and trail  ",
    "'",
    "\"",
    "'quoted'",
    "\"dq\"",
    "nul\0",
    "!history ~tilde *glob? [x] {a,b} ; & | < > ( )",
];

/// Pieces the generated values are made of: every character class a reader treats
/// specially, and plain text.
const PIECES: &[&str] = &[
    "'", "\"", "$", "${", "}", "{", "`", "\\", "\n", "\r", "\r\n", "\t", " ", "#", "=", ":",
    "export ", "K1=", "\u{1}", "\u{7f}", "\u{feff}", "\u{2028}", "\u{2029}", "\u{85}", "ü", "😀",
    "a", "Z9", "n", "r", "0", "\\n", "\\r", "$$", "\0",
];

fn value_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(PIECES).prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

const DIALECTS: [Format; 4] = [
    Format::Shell,
    Format::Dotenv,
    Format::Docker,
    Format::K8sEnv,
];

/// Every reader of a dialect, by name.
fn readers(format: Format) -> Vec<&'static str> {
    match format {
        Format::Shell => {
            let mut r = vec!["bash", "dash"];
            if which("busybox") {
                r.push("busybox-sh");
            }
            r
        }
        Format::Dotenv => vec![
            "python-dotenv",
            "node-dotenv",
            "node-dotenv-fast",
            "compose",
        ],
        Format::Docker => vec!["docker"],
        Format::K8sEnv => vec!["kubelet"],
        other => panic!("{other} is not an env-file dialect"),
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn readers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers")
}

pub(crate) type ReadResult = Result<BTreeMap<String, String>, String>;

/// Runs the named readers on `file`; one process per group of readers.
pub(crate) fn read_with(names: &[&str], file: &Path) -> BTreeMap<String, ReadResult> {
    let mut out = BTreeMap::new();
    let python: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| matches!(*n, "python-dotenv" | "compose" | "docker" | "kubelet"))
        .collect();
    if !python.is_empty() {
        let mut cmd = Command::new(venv().join("bin/python"));
        cmd.arg(readers_dir().join("env_readers.py"))
            .arg(python.join(","))
            .arg(file)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        out.extend(json_readers(cmd));
    }
    if names.iter().any(|n| n.starts_with("node-")) {
        assert!(
            readers_dir().join("node_modules/dotenv").exists(),
            "node dotenv is not installed: run scripts/setup-node"
        );
        let mut cmd = Command::new("node");
        cmd.arg(readers_dir().join("node_dotenv.js")).arg(file);
        out.extend(
            json_readers(cmd)
                .into_iter()
                .filter(|(n, _)| names.contains(&n.as_str())),
        );
    }
    for shell in names
        .iter()
        .filter(|n| matches!(**n, "bash" | "dash" | "busybox-sh"))
    {
        out.insert((*shell).to_owned(), read_with_shell(shell, file));
    }
    out
}

/// Parses `{READER: {"values": {...}, "error": null | "..."}}` from a reader process.
fn json_readers(mut cmd: Command) -> BTreeMap<String, ReadResult> {
    let out = cmd.output().expect("start a reader");
    assert!(
        out.status.success(),
        "reader {cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reader JSON");
    let obj = json.as_object().expect("reader JSON object");
    obj.iter()
        .map(|(name, r)| {
            let result = match r["error"].as_str() {
                Some(e) => Err(e.to_owned()),
                None => Ok(r["values"]
                    .as_object()
                    .expect("values")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("<null>").to_owned()))
                    .collect()),
            };
            (name.clone(), result)
        })
        .collect()
}

/// The environment a shell exports after `set -a; . FILE`, minus what it exports anyway.
fn read_with_shell(shell: &str, file: &Path) -> ReadResult {
    fn env_after(shell: &str, file: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
        let mut cmd = if shell == "busybox-sh" {
            let mut c = Command::new("busybox");
            c.arg("sh");
            c
        } else {
            Command::new(shell)
        };
        let out = cmd
            .arg("-c")
            .arg("set -a; . \"$1\" || exit 3; exec env -0")
            .arg("_")
            .arg(file)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| format!("start {shell}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{shell} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out
            .stdout
            .split(|b| *b == 0)
            .filter(|e| !e.is_empty())
            .filter_map(|e| {
                let eq = e.iter().position(|b| *b == b'=')?;
                Some((e[..eq].to_vec(), e[eq + 1..].to_vec()))
            })
            .collect())
    }
    static EMPTY: OnceLock<PathBuf> = OnceLock::new();
    let empty = EMPTY.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("ssm-injector-empty-{}.env", std::process::id()));
        std::fs::write(&path, b"").expect("write an empty file");
        path
    });
    let base = env_after(shell, empty)?;
    let after = env_after(shell, file)?;
    after
        .into_iter()
        .filter(|(k, v)| k.as_slice() != b"_" && base.get(k) != Some(v))
        .map(|(k, v)| {
            let k = String::from_utf8(k).map_err(|_| "a key that is not UTF-8".to_owned())?;
            let v = String::from_utf8(v).map_err(|_| format!("{k}: a value that is not UTF-8"))?;
            Ok((k, v))
        })
        .collect()
}

fn entry(key: &str, value: &str) -> Entry {
    Entry {
        key: SourceKey::Explicit(key.to_owned()),
        name: format!("/readers/{key}"),
        version: Some(1),
        value: value.into(),
    }
}

fn render_file(format: Format, entries: &[Entry]) -> Result<Vec<u8>, FormatError> {
    let opts = FormatOptions {
        format,
        key_case: KeyCase::UpperSnake,
        template: None,
    };
    match render(&opts, entries)? {
        Rendered::File(bytes) => Ok(bytes.to_vec()),
        Rendered::Tree(_) => panic!("{format} rendered a tree"),
    }
}

/// What one batch showed for one dialect.
#[derive(Default)]
struct Outcome {
    values: usize,
    accepted: usize,
    /// reader -> values read back exactly.
    exact: BTreeMap<String, usize>,
    /// Everything that broke a promise; empty when the dialect holds.
    failures: Vec<String>,
}

/// Renders `values` in `format` (each alone first, to sort accepted from refused), writes
/// one file with every accepted value and reads it with every reader of the dialect.
fn check_batch(format: Format, values: &[String]) -> Outcome {
    let mut outcome = Outcome {
        values: values.len(),
        ..Outcome::default()
    };
    let mut accepted = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let key = format!("K{i:04}");
        match render_file(format, &[entry(&key, value)]) {
            Ok(_) => accepted.push((key, value.clone())),
            Err(err @ FormatError::ValueRefused { .. }) => {
                let msg = err.to_string();
                let names_it = msg.contains(&key) && msg.contains(&format!("{format} output"));
                let leaks = value.len() >= 12 && msg.contains(value.as_str());
                if !names_it || leaks {
                    outcome
                        .failures
                        .push(format!("{format}: refusal of {value:?}: {msg}"));
                }
            }
            Err(err) => outcome.failures.push(format!(
                "{format}: {value:?} failed with {err:?}, not ValueRefused"
            )),
        }
    }
    outcome.accepted = accepted.len();
    let entries: Vec<Entry> = accepted.iter().map(|(k, v)| entry(k, v)).collect();
    let bytes = render_file(format, &entries).expect("values accepted one by one render together");
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(&bytes).expect("write");
    file.flush().expect("flush");
    for (reader, result) in read_with(&readers(format), file.path()) {
        let got = match result {
            Ok(got) => got,
            Err(e) => {
                outcome
                    .failures
                    .push(format!("{format}: {reader} refused the file: {e}"));
                outcome.exact.insert(reader, 0);
                continue;
            }
        };
        let mut exact = 0;
        for (key, want) in &accepted {
            match got.get(key) {
                Some(v) if v == want => exact += 1,
                other => outcome.failures.push(format!(
                    "{format}: {reader} read {key} = {other:?}, written {want:?}"
                )),
            }
        }
        for key in got
            .keys()
            .filter(|k| !accepted.iter().any(|(a, _)| a == *k))
        {
            outcome.failures.push(format!(
                "{format}: {reader} sees a variable {key:?} that was not written"
            ));
        }
        outcome.exact.insert(reader, exact);
    }
    outcome
}

fn generated(n: usize) -> Vec<String> {
    let mut runner = TestRunner::deterministic();
    let strategy = value_strategy();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generate a value")
                .current()
        })
        .collect()
}

#[test]
fn the_reader_matrix_reads_back_every_accepted_value_exactly() {
    let mut values: Vec<String> = HOSTILE.iter().map(|v| (*v).to_owned()).collect();
    values.extend(generated(400));
    let mut table = String::from(
        "\nreader x dialect: values read back exactly / values the dialect accepts (of all values)\n\n| reader | dialect | exact / accepted | refused |\n| --- | --- | --- | --- |\n",
    );
    let mut failures = Vec::new();
    for format in DIALECTS {
        let outcome = check_batch(format, &values);
        for (reader, exact) in &outcome.exact {
            let pct = if outcome.accepted == 0 {
                100.0
            } else {
                100.0 * *exact as f64 / outcome.accepted as f64
            };
            table.push_str(&format!(
                "| {reader} | {format} | {exact}/{} ({pct:.0} %) | {} of {} |\n",
                outcome.accepted,
                outcome.values - outcome.accepted,
                outcome.values
            ));
        }
        failures.extend(outcome.failures);
    }
    println!("{table}");
    assert!(failures.is_empty(), "{table}\n{}", failures.join("\n"));
}

#[test]
fn the_injection_value_never_creates_a_variable_in_any_reader_of_any_dialect() {
    for format in DIALECTS {
        let outcome = check_batch(format, &[ATTACK.to_owned(), "after".to_owned()]);
        assert!(
            outcome.failures.is_empty(),
            "{}",
            outcome.failures.join("\n")
        );
        assert!(!outcome.exact.is_empty(), "{format}: no reader ran");
    }
    // What each dialect does with it: shell and dotenv carry it, docker and k8s-env refuse.
    let accepted: Vec<bool> = DIALECTS
        .iter()
        .map(|f| render_file(*f, &[entry("A", ATTACK)]).is_ok())
        .collect();
    assert_eq!(accepted, [true, true, false, false]);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_values_come_back_exactly_from_every_reader_or_are_refused(
        values in proptest::collection::vec(value_strategy(), 60..120)
    ) {
        for format in DIALECTS {
            let outcome = check_batch(format, &values);
            prop_assert!(outcome.failures.is_empty(), "{}", outcome.failures.join("\n"));
        }
    }
}
