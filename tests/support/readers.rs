//! Real readers of the `yaml` and `properties` outputs: PyYAML (its safe and full loaders,
//! pure and libyaml) and ruamel.yaml (YAML 1.2) from `.venv`, SnakeYAML 1.33 and
//! `java.util.Properties` (single-file Java on `.tools/java`, from `scripts/setup-java`), and
//! serde_yaml_ng in this process. `tests/readers/yaml_readers.py` and `tests/readers/Readers.java`
//! read files and print what they got back as JSON lines; every reader of a language runs in
//! one process for all files (a JVM starts once per call of [`read`]).

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The program that runs a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Python,
    Java,
    /// serde_yaml_ng, in this process.
    Rust,
}

/// One real reader of one output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// The reader's name in the reader programs (and in the matrix).
    pub name: &'static str,
    /// The `--format` it reads.
    pub format: &'static str,
    runtime: Runtime,
}

const fn reader(name: &'static str, format: &'static str, runtime: Runtime) -> Reader {
    Reader {
        name,
        format,
        runtime,
    }
}

/// Every reader, yaml first.
pub const READERS: [Reader; 11] = [
    reader("pyyaml-safe", "yaml", Runtime::Python),
    reader("pyyaml-full", "yaml", Runtime::Python),
    reader("pyyaml-csafe", "yaml", Runtime::Python),
    reader("pyyaml-cfull", "yaml", Runtime::Python),
    reader("ruamel-safe", "yaml", Runtime::Python),
    reader("ruamel-rt", "yaml", Runtime::Python),
    reader("snakeyaml", "yaml", Runtime::Java),
    reader("snakeyaml-safe", "yaml", Runtime::Java),
    reader("serde_yaml_ng", "yaml", Runtime::Rust),
    reader("java-properties", "properties", Runtime::Java),
    reader("java-properties-utf8", "properties", Runtime::Java),
];

/// One key or value as a reader gave it back.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scalar {
    Str(String),
    /// Not a string: the reader's type name and its text.
    Other(String, String),
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Other(t, text) => write!(f, "<{t} {text:?}>"),
        }
    }
}

impl Scalar {
    fn from_json(v: &Value) -> Scalar {
        match v {
            Value::String(s) => Scalar::Str(s.clone()),
            other => Scalar::Other(
                other["type"].as_str().unwrap_or("?").to_owned(),
                other["text"].as_str().unwrap_or("?").to_owned(),
            ),
        }
    }
}

/// What one reader made of one file: its key/value pairs, or why it refused the file.
pub type Readback = Result<Vec<(Scalar, Scalar)>, String>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The SnakeYAML jar `scripts/setup-java` installs.
fn snakeyaml_jar() -> PathBuf {
    let jar = root().join(".tools/java/snakeyaml-1.33.jar");
    assert!(
        jar.exists(),
        "{} is missing: run scripts/setup-java first (scripts/test does)",
        jar.display()
    );
    jar
}

/// Runs every reader in `readers` on every file (the reader of its format only), one
/// process per runtime. Keyed by (reader name, file).
pub fn read(readers: &[Reader], files: &[(&str, &Path)]) -> BTreeMap<(String, PathBuf), Readback> {
    let mut out = BTreeMap::new();
    for runtime in [Runtime::Python, Runtime::Java, Runtime::Rust] {
        let names: Vec<&str> = readers
            .iter()
            .filter(|r| r.runtime == runtime)
            .map(|r| r.name)
            .collect();
        if names.is_empty() {
            continue;
        }
        let mut cmd = match runtime {
            Runtime::Python => {
                let mut c = Command::new(super::emulator::venv().join("bin/python"));
                c.arg(root().join("tests/readers/yaml_readers.py"));
                c
            }
            Runtime::Java => {
                let mut c = Command::new("java");
                c.arg("-cp")
                    .arg(snakeyaml_jar())
                    .arg(root().join("tests/readers/Readers.java"));
                c
            }
            Runtime::Rust => {
                for (format, file) in files {
                    if *format == "yaml" {
                        out.insert(
                            ("serde_yaml_ng".to_owned(), file.to_path_buf()),
                            serde(file),
                        );
                    }
                }
                continue;
            }
        };
        // The programs read every file with every reader named; the lines for a reader of
        // another format than the file's are dropped below.
        cmd.arg(names.join(","));
        for (_, file) in files {
            cmd.arg(file);
        }
        let o = cmd.output().expect("start the reader program");
        assert!(
            o.status.success(),
            "{runtime:?} readers failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8(o.stdout).expect("reader output is UTF-8");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{runtime:?} reader printed {line:?}: {e}"));
            let name = v["reader"].as_str().expect("reader").to_owned();
            let file = PathBuf::from(v["file"].as_str().expect("file"));
            let format = readers
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.format)
                .expect("a reader asked for");
            if !files.iter().any(|(f, p)| *f == format && *p == file) {
                continue;
            }
            let got = match v.get("pairs") {
                Some(Value::Array(pairs)) => Ok(pairs
                    .iter()
                    .map(|p| (Scalar::from_json(&p[0]), Scalar::from_json(&p[1])))
                    .collect()),
                _ => Err(v["error"]
                    .as_str()
                    .unwrap_or("no pairs and no error")
                    .to_owned()),
            };
            out.insert((name, file), got);
        }
    }
    out
}

/// serde_yaml_ng as a reader (YAML 1.2).
fn serde(file: &Path) -> Readback {
    let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
    let map: serde_yaml_ng::Mapping =
        serde_yaml_ng::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(map
        .iter()
        .map(|(k, v)| {
            let s = |x: &serde_yaml_ng::Value| match x {
                serde_yaml_ng::Value::String(s) => Scalar::Str(s.clone()),
                other => Scalar::Other("yaml".into(), format!("{other:?}")),
            };
            (s(k), s(v))
        })
        .collect())
}

/// The entries of `expected` that `got` gave back exactly (same key, same string), and a
/// line for everything else: a value lost or changed, a key the file did not hold (a value
/// that created a variable), or the whole file refused.
pub fn compare(expected: &BTreeMap<String, String>, got: &Readback) -> (usize, Vec<String>) {
    let pairs = match got {
        Ok(pairs) => pairs,
        Err(e) => return (0, vec![format!("the file was refused: {e}")]),
    };
    let mut back: BTreeMap<Scalar, Vec<&Scalar>> = BTreeMap::new();
    for (k, v) in pairs {
        back.entry(k.clone()).or_default().push(v);
    }
    let mut exact = 0;
    let mut problems = Vec::new();
    for (k, v) in expected {
        match back.remove(&Scalar::Str(k.clone())).as_deref() {
            Some([got]) if **got == Scalar::Str(v.clone()) => exact += 1,
            Some(got) => problems.push(format!("key {k:?}: wrote {v:?}, read back {got:?}")),
            None => problems.push(format!("key {k:?}: missing (value {v:?})")),
        }
    }
    for (k, v) in back {
        problems.push(format!("key {k:?} was not written but read back as {v:?}"));
    }
    (exact, problems)
}
