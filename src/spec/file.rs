//! The YAML spec file, as written: raw values, unknown keys rejected.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A path: `/app/prod/` or `{ path, recursive, optional }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    pub path: String,
    #[serde(default = "yes")]
    pub recursive: bool,
    #[serde(default)]
    pub optional: bool,
}

/// A parameter: `NAME` or `{ name, optional }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
}

/// One output file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOutput {
    #[serde(default)]
    pub format: Option<String>,
    pub file: String,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub key_case: Option<String>,
    /// Octal, as a string: `"0400"`.
    #[serde(default)]
    pub mode: Option<RawMode>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

/// A file mode as written; only strings are accepted, because YAML reads `0400` as
/// either 256 or 400 depending on the YAML version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMode(pub Result<String, i64>);

impl<'de> Deserialize<'de> for RawMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            I(i64),
        }
        Ok(match Either::deserialize(d)? {
            Either::S(s) => RawMode(Ok(s)),
            Either::I(i) => RawMode(Err(i)),
        })
    }
}

fn yes() -> bool {
    true
}

impl From<String> for RawPath {
    fn from(path: String) -> Self {
        RawPath {
            path,
            recursive: true,
            optional: false,
        }
    }
}

impl From<String> for RawParam {
    fn from(name: String) -> Self {
        RawParam {
            name,
            optional: false,
        }
    }
}

impl<'de> Deserialize<'de> for RawPathEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_struct(d).map(RawPathEntry)
    }
}

impl<'de> Deserialize<'de> for RawParamEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_struct(d).map(RawParamEntry)
    }
}

/// Wrappers that accept the short (string) form; serde's `untagged` would lose the
/// "unknown field" message, so the map form goes through the struct's own deserializer.
#[derive(Debug)]
pub struct RawPathEntry(pub RawPath);
/// See [`RawPathEntry`].
#[derive(Debug)]
pub struct RawParamEntry(pub RawParam);

fn string_or_struct<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: Deserialize<'de> + From<String>,
    D: Deserializer<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de> + From<String>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a map")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            Ok(T::from(v.to_owned()))
        }
        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<T, M::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// A parsed spec file; the short forms are already expanded. Every field is optional;
/// flags add to what the file says.
///
/// ```yaml
/// region: eu-west-1
/// paths:
///   - /app/${STAGE}/            # recursive, required
///   - { path: /shared/, recursive: false, optional: true }
/// params:
///   DB_PASSWORD: /app/${STAGE}/db-password
///   STRIPE_KEY: { name: /aws/reference/secretsmanager/stripe#key, optional: true }
/// outputs:
///   - { format: dotenv, file: /ssm/app.env }
///   - { format: template, template: /etc/app/config.tpl, file: /ssm/config.yaml, mode: "0440", gid: 1000 }
/// ```
#[derive(Debug, Default)]
pub struct SpecFile {
    pub region: Option<String>,
    pub paths: Vec<RawPath>,
    pub params: BTreeMap<String, RawParam>,
    pub outputs: Vec<RawOutput>,
    pub concurrency: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Wire {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    paths: Vec<RawPathEntry>,
    #[serde(default)]
    params: BTreeMap<String, RawParamEntry>,
    #[serde(default)]
    outputs: Vec<RawOutput>,
    #[serde(default)]
    concurrency: Option<usize>,
}

/// Parses a spec file's text. The error names the key and the line.
pub fn parse(text: &str) -> Result<SpecFile, serde_yaml_ng::Error> {
    if text.trim().is_empty() {
        return Ok(SpecFile::default());
    }
    let w: Wire = serde_yaml_ng::from_str(text)?;
    Ok(SpecFile {
        region: w.region,
        paths: w.paths.into_iter().map(|p| p.0).collect(),
        params: w.params.into_iter().map(|(k, v)| (k, v.0)).collect(),
        outputs: w.outputs,
        concurrency: w.concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_forms_both_parse() {
        let f = parse(
            r#"
paths:
  - /app/prod/
  - { path: /shared/, recursive: false, optional: true }
params:
  DB: /app/prod/db
  KEY: { name: /x/y, optional: true }
outputs:
  - { format: dotenv, file: /ssm/app.env, mode: "0440", uid: 1000 }
"#,
        )
        .unwrap();
        assert_eq!(f.paths[0], RawPath::from("/app/prod/".to_string()));
        assert!(!f.paths[1].recursive && f.paths[1].optional);
        assert_eq!(f.params["DB"].name, "/app/prod/db");
        assert!(f.params["KEY"].optional);
        assert_eq!(f.outputs[0].mode, Some(RawMode(Ok("0440".into()))));
        assert_eq!(f.outputs[0].uid, Some(1000));
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_key_named() {
        for (text, key) in [
            ("pathz: [/a/]", "pathz"),
            ("paths: [{ path: /a/, recursiv: true }]", "recursiv"),
            ("params: { A: { name: /a, optinal: true } }", "optinal"),
            ("outputs: [{ file: /x, fromat: json }]", "fromat"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn an_empty_file_is_an_empty_spec() {
        let f = parse("\n# nothing\n").unwrap();
        assert!(f.paths.is_empty() && f.params.is_empty() && f.outputs.is_empty());
    }

    #[test]
    fn wrong_types_are_reported() {
        assert!(parse("paths: /a/").is_err());
        assert!(parse("params: [a]").is_err());
    }
}
