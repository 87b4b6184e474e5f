//! The spec: what to fetch and where to write it. Raw input (flags, environment, spec file)
//! becomes a checked [`Spec`] in one [`Spec::build`], with every default and every check.
//! Pure: the environment comes in as a lookup function, files as text.

pub mod budget;
pub mod expand;
pub mod file;
pub mod names;
pub mod overlap;
pub mod region;

use crate::format::{Format, KeyCase};
use budget::{BudgetConfig, BudgetError, DEFAULT_BURST, DEFAULT_MAX_TPS};
use file::{RawMode, RawOutput, RawParam, RawPath, SpecFile};
use names::{NameError, ParamRef};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Default number of AWS calls in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Upper bound for `--concurrency`: more only buys throttling.
pub const MAX_CONCURRENCY: usize = 64;
/// Default file mode of outputs.
pub const DEFAULT_MODE: u32 = 0o400;
/// The output file that means standard output.
pub const STDOUT: &str = "-";

/// Everything a render needs to know, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub region: Option<String>,
    pub paths: Vec<PathRequest>,
    pub params: Vec<ParamRequest>,
    pub outputs: Vec<OutputSpec>,
    pub concurrency: usize,
    /// The per-process call budget (`--max-tps`, `--burst`).
    pub budget: BudgetConfig,
}

/// Everything under a path (GetParametersByPath).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRequest {
    /// Always ends with `/`, so keys are the names with this prefix cut off.
    pub path: String,
    pub recursive: bool,
    /// An optional path may hold no parameters; a required one may not.
    pub optional: bool,
}

/// One named parameter under a key the user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamRequest {
    pub key: String,
    pub param: ParamRef,
    pub optional: bool,
}

/// One output file (or directory, for `files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub format: Format,
    pub key_case: KeyCase,
    pub file: PathBuf,
    pub template: Option<PathBuf>,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl OutputSpec {
    /// `--output -`: the bytes go to standard output (no file, no mode, no owner).
    pub fn is_stdout(&self) -> bool {
        self.file == Path::new(STDOUT)
    }

    /// The output's path with `.` and `..` resolved on the text.
    pub fn normalized(&self) -> PathBuf {
        overlap::normalize(&self.file)
    }
}

/// Raw input from flags/environment plus an optional parsed spec file.
#[derive(Debug, Default)]
pub struct SpecInput {
    /// The spec file's path (for messages) and its parsed content.
    pub file: Option<(String, SpecFile)>,
    pub paths: Vec<String>,
    pub recursive: bool,
    pub params: Vec<String>,
    pub optional_params: Vec<String>,
    pub region: Option<String>,
    /// The output given by flags, if any.
    pub output: Option<RawOutput>,
    pub concurrency: Option<usize>,
    /// `--max-tps` and `--burst` [defaults: `DEFAULT_MAX_TPS`, `DEFAULT_BURST`].
    pub max_tps: Option<f64>,
    pub burst: Option<u32>,
    /// True for subcommands that write no files (`exec`, `iam-policy`): a spec without
    /// outputs is then fine. False (the default) keeps `render`'s [`SpecError::NoOutput`].
    pub outputs_optional: bool,
}

/// Where in the input a problem is: a flag or a spec-file key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At(pub String);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bad spec; the message names the flag or key and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{at}: {source}")]
    Expand {
        at: At,
        #[source]
        source: expand::ExpandError,
    },
    #[error("{at}: name {name:?} {source}")]
    Name {
        at: At,
        name: String,
        #[source]
        source: NameError,
    },
    #[error("{at}: path {path:?} {source}")]
    Path {
        at: At,
        path: String,
        #[source]
        source: NameError,
    },
    #[error("{at}: expected KEY=NAME, e.g. DB_PASSWORD=/app/prod/db-password")]
    ParamSyntax { at: At },
    #[error("{at}: key {key:?} is given twice")]
    DuplicateKey { at: At, key: String },
    #[error("{at}: {value:?} is not a format; use one of {allowed}")]
    BadFormat {
        at: At,
        value: String,
        allowed: String,
    },
    #[error("{at}: {value:?} is not a key case; use upper-snake, lower-snake or relative")]
    BadKeyCase { at: At, value: String },
    #[error("{at}: {reason}")]
    BadMode { at: At, reason: String },
    #[error("{at}: format template needs a template file (--template FILE or template: FILE)")]
    TemplateMissing { at: At },
    #[error("{at}: a template is only used with format template")]
    TemplateUnused { at: At },
    #[error("{at}: {file} is also written by {other}; give each output its own file")]
    SameFile { at: At, file: String, other: At },
    #[error(
        "{at}: {file} is inside {other_file}, the directory of {other}; outputs must not write into each other"
    )]
    Inside {
        at: At,
        file: String,
        other: At,
        other_file: String,
    },
    #[error(
        "{at}: standard output (-) takes one file, not a files tree; give a directory for --format files"
    )]
    StdoutTree { at: At },
    #[error("{at}: {what} does not apply to standard output (-); remove it or write to a file")]
    StdoutMeta { at: At, what: &'static str },
    #[error(
        "{at}: render --watch cannot write to standard output (-): a sidecar keeps files current; give a file"
    )]
    StdoutWatch { at: At },
    #[error("{at}: output file {file:?} has no file name")]
    BadFile { at: At, file: String },
    #[error("no output: give --output FILE, or outputs: in the spec file")]
    NoOutput,
    #[error("nothing to fetch: give --path, --param, or paths:/params: in the spec file")]
    NothingToFetch,
    #[error("{0}")]
    Budget(#[source] BudgetError),
    #[error("{at}: concurrency must be between 1 and {MAX_CONCURRENCY}, not {value}")]
    BadConcurrency { at: At, value: usize },
    #[error("{at}: {value:?} is not an AWS region (like eu-west-1 or us-gov-west-1)")]
    BadRegion { at: At, value: String },
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Spec {
    /// Checks and merges the raw input; `env` looks up `${VAR}` references.
    pub fn build(input: SpecInput, env: Lookup<'_>) -> Result<Spec, SpecError> {
        let (file_name, file) = match input.file {
            Some((name, f)) => (Some(name), f),
            None => (None, SpecFile::default()),
        };
        let file_at = |key: &str| At(format!("{}: {key}", file_name.as_deref().unwrap_or("spec")));

        let mut paths = Vec::new();
        let mut seen_paths = BTreeSet::new();
        let raw_paths = file
            .paths
            .into_iter()
            .enumerate()
            .map(|(i, p)| (file_at(&format!("paths[{i}]")), p))
            .chain(input.paths.into_iter().map(|p| {
                (
                    At(format!("--path {p}")),
                    RawPath {
                        path: p,
                        recursive: input.recursive,
                        optional: false,
                    },
                )
            }));
        for (at, raw) in raw_paths {
            let p = build_path(&at, raw, env)?;
            if seen_paths.insert(p.path.clone()) {
                paths.push(p);
            }
        }

        let mut params = Vec::new();
        let mut keys = BTreeSet::new();
        let raw_params = file
            .params
            .into_iter()
            .map(|(k, p)| (file_at(&format!("params.{k}")), k, p))
            .chain(cli_params(input.params, false, "--param")?)
            .chain(cli_params(input.optional_params, true, "--optional-param")?);
        for (at, key, raw) in raw_params {
            if key.is_empty() {
                return Err(SpecError::ParamSyntax { at });
            }
            if !keys.insert(key.clone()) {
                return Err(SpecError::DuplicateKey { at, key });
            }
            let name = expand::expand(&raw.name, env).map_err(|source| SpecError::Expand {
                at: at.clone(),
                source,
            })?;
            let param = names::parse_param_ref(&name).map_err(|source| SpecError::Name {
                at: at.clone(),
                name: name.clone(),
                source,
            })?;
            params.push(ParamRequest {
                key,
                param,
                optional: raw.optional,
            });
        }
        if paths.is_empty() && params.is_empty() {
            return Err(SpecError::NothingToFetch);
        }

        let mut outputs: Vec<(At, OutputSpec)> = Vec::new();
        let raw_outputs = file
            .outputs
            .into_iter()
            .enumerate()
            .map(|(i, o)| (file_at(&format!("outputs[{i}]")), o))
            .chain(input.output.map(|o| (At("--output".into()), o)));
        for (at, raw) in raw_outputs {
            let out = build_output(&at, raw)?;
            for (other_at, other) in &outputs {
                let found = if out.is_stdout() || other.is_stdout() {
                    (out.file == other.file).then_some(overlap::Overlap::Same)
                } else {
                    overlap::overlap(&out.normalized(), &other.normalized())
                };
                if let Some(found) = found {
                    return Err(overlap_error(at, &out.file, other_at, &other.file, found));
                }
            }
            outputs.push((at, out));
        }
        if outputs.is_empty() && !input.outputs_optional {
            return Err(SpecError::NoOutput);
        }

        let concurrency_at = if input.concurrency.is_some() {
            At("--concurrency".into())
        } else {
            file_at("concurrency")
        };
        let concurrency = input
            .concurrency
            .or(file.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(SpecError::BadConcurrency {
                at: concurrency_at,
                value: concurrency,
            });
        }

        let budget = BudgetConfig::new(
            input.max_tps.unwrap_or(DEFAULT_MAX_TPS),
            input.burst.unwrap_or(DEFAULT_BURST),
        )
        .map_err(SpecError::Budget)?;

        let (region_at, region) = match (input.region, file.region) {
            (Some(r), _) => (At("--region".into()), Some(r)),
            (None, Some(r)) => (file_at("region"), Some(r)),
            (None, None) => (At(String::new()), None),
        };
        if let Some(r) = &region
            && !region::is_region(r)
        {
            return Err(SpecError::BadRegion {
                at: region_at,
                value: r.clone(),
            });
        }
        // Without a region here the SDK reads these variables: a malformed one is a usage
        // error now, not "AWS could not be reached" after a call to a made-up host.
        if region.is_none()
            && let Some((name, value)) = region::malformed_in_environment(env)
        {
            return Err(SpecError::BadRegion {
                at: At(format!("environment variable {name}")),
                value,
            });
        }

        Ok(Spec {
            region,
            paths,
            params,
            outputs: outputs.into_iter().map(|(_, o)| o).collect(),
            concurrency,
            budget,
        })
    }
}

/// The error for two outputs that collide: `at` writes `file`, `other_at` writes
/// `other_file`. Also used by `output::prepare_outputs` on the resolved paths.
pub fn overlap_error(
    at: At,
    file: &Path,
    other_at: &At,
    other_file: &Path,
    found: overlap::Overlap,
) -> SpecError {
    let shown = |p: &Path| p.display().to_string();
    match found {
        overlap::Overlap::Same => SpecError::SameFile {
            at,
            file: shown(file),
            other: other_at.clone(),
        },
        overlap::Overlap::Inside => SpecError::Inside {
            at,
            file: shown(file),
            other: other_at.clone(),
            other_file: shown(other_file),
        },
        overlap::Overlap::Contains => SpecError::Inside {
            at: other_at.clone(),
            file: shown(other_file),
            other: at,
            other_file: shown(file),
        },
    }
}

impl Spec {
    /// `render --watch` keeps files current: standard output is refused.
    pub fn check_for_watch(&self, outputs_at: &str) -> Result<(), SpecError> {
        match self.outputs.iter().find(|o| o.is_stdout()) {
            Some(_) => Err(SpecError::StdoutWatch {
                at: At(outputs_at.to_owned()),
            }),
            None => Ok(()),
        }
    }
}

fn cli_params(
    raw: Vec<String>,
    optional: bool,
    flag: &'static str,
) -> Result<Vec<(At, String, RawParam)>, SpecError> {
    raw.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let at = At(format!("{flag} {s}"));
            match s.split_once('=') {
                Some((k, n)) if !k.trim().is_empty() && !n.trim().is_empty() => Ok((
                    At(format!("{flag} {}", k.trim())),
                    k.trim().to_owned(),
                    RawParam {
                        name: n.trim().to_owned(),
                        optional,
                    },
                )),
                _ => Err(SpecError::ParamSyntax { at }),
            }
        })
        .collect()
}

fn build_path(at: &At, raw: RawPath, env: Lookup<'_>) -> Result<PathRequest, SpecError> {
    let path = expand::expand(raw.path.trim(), env).map_err(|source| SpecError::Expand {
        at: at.clone(),
        source,
    })?;
    names::check_path(&path).map_err(|source| SpecError::Path {
        at: at.clone(),
        path: path.clone(),
        source,
    })?;
    let path = if path.ends_with('/') {
        path
    } else {
        format!("{path}/")
    };
    Ok(PathRequest {
        path,
        recursive: raw.recursive,
        optional: raw.optional,
    })
}

fn build_output(at: &At, raw: RawOutput) -> Result<OutputSpec, SpecError> {
    let format = match raw.format.as_deref() {
        None => Format::Shell,
        Some(f) => f.parse::<Format>().map_err(|_| SpecError::BadFormat {
            at: at.clone(),
            value: f.to_owned(),
            allowed: Format::ALL
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?,
    };
    let key_case = match raw.key_case.as_deref() {
        None => format.default_key_case(),
        Some(k) => k.parse::<KeyCase>().map_err(|_| SpecError::BadKeyCase {
            at: at.clone(),
            value: k.to_owned(),
        })?,
    };
    let template = raw.template.map(PathBuf::from);
    match (format, &template) {
        (Format::Template, None) => return Err(SpecError::TemplateMissing { at: at.clone() }),
        (f, Some(_)) if f != Format::Template => {
            return Err(SpecError::TemplateUnused { at: at.clone() });
        }
        _ => {}
    }
    let file = PathBuf::from(&raw.file);
    if raw.file.is_empty() || raw.file.ends_with('/') || file.file_name().is_none() {
        return Err(SpecError::BadFile {
            at: at.clone(),
            file: raw.file,
        });
    }
    if raw.file == STDOUT {
        if format == Format::Files {
            return Err(SpecError::StdoutTree { at: at.clone() });
        }
        for (given, what) in [
            (raw.mode.is_some(), "a file mode"),
            (raw.uid.is_some(), "a uid"),
            (raw.gid.is_some(), "a gid"),
        ] {
            if given {
                return Err(SpecError::StdoutMeta {
                    at: at.clone(),
                    what,
                });
            }
        }
    }
    let mode = match raw.mode {
        None => DEFAULT_MODE,
        Some(m) => parse_mode(&m).map_err(|reason| SpecError::BadMode {
            at: at.clone(),
            reason,
        })?,
    };
    Ok(OutputSpec {
        format,
        key_case,
        file,
        template,
        mode,
        uid: raw.uid,
        gid: raw.gid,
    })
}

/// Parses an octal file mode: `0400`, `400`, `0o400`. It must let its owner read, and
/// nobody but the owner write (no group or other write bit; nothing above 0777).
pub fn parse_mode(raw: &RawMode) -> Result<u32, String> {
    let text = match &raw.0 {
        Ok(s) => s.trim(),
        Err(n) => {
            return Err(format!(
                "mode {n} is a number; write it as a quoted octal string like \"0400\""
            ));
        }
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let mode = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !digits.is_empty())
        .ok_or_else(|| format!("mode {text:?} is not an octal file mode between 0000 and 0777"))?;
    if mode & 0o400 == 0 {
        return Err(format!(
            "mode {text} does not let the file's owner read it; use 0400 or 0440"
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "mode {text} lets the group or others write the file; use 0400, 0440 or 0444"
        ));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "STAGE").then(|| "prod".to_owned())
    }

    fn output(file: &str) -> Option<RawOutput> {
        Some(RawOutput {
            file: file.into(),
            ..Default::default()
        })
    }

    fn build(input: SpecInput) -> Result<Spec, SpecError> {
        Spec::build(input, &env)
    }

    #[test]
    fn flags_build_a_spec_with_defaults() {
        let s = build(SpecInput {
            paths: vec!["/app/${STAGE}".into()],
            recursive: true,
            params: vec!["DB=/app/${STAGE}/db:3".into()],
            output: output("/ssm/app.env"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.paths[0].path, "/app/prod/");
        assert!(s.paths[0].recursive);
        assert_eq!(s.params[0].key, "DB");
        assert_eq!(s.params[0].param.request(), "/app/prod/db:3");
        assert_eq!(s.outputs[0].format, Format::Shell);
        assert_eq!(s.outputs[0].mode, 0o400);
        assert_eq!(s.concurrency, DEFAULT_CONCURRENCY);
    }

    #[test]
    fn spec_file_and_flags_are_merged() {
        let file = file::parse(
            "params: { A: /a }\noutputs: [{ format: json, file: /ssm/a.json }]\nregion: eu-west-1",
        )
        .unwrap();
        let s = build(SpecInput {
            file: Some(("spec.yaml".into(), file)),
            params: vec!["B=/b".into()],
            output: output("/ssm/b.env"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.params.len(), 2);
        assert_eq!(s.outputs.len(), 2);
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn unset_variables_name_the_flag_and_the_variable() {
        let e = build(SpecInput {
            params: vec!["DB=/app/${REGION_STAGE}/db".into()],
            output: output("/ssm/app.env"),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--param DB") && e.contains("REGION_STAGE"),
            "{e}"
        );
    }

    #[test]
    fn bad_names_name_the_spec_key() {
        let file = file::parse("params: { DB: '/app/db password' }").unwrap();
        let e = build(SpecInput {
            file: Some(("spec.yaml".into(), file)),
            output: output("/ssm/app.env"),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("spec.yaml: params.DB: name"), "{e}");
    }

    #[test]
    fn duplicate_keys_and_bad_syntax_are_errors() {
        let e = build(SpecInput {
            params: vec!["A=/a".into(), "A=/b".into()],
            output: output("/x"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, SpecError::DuplicateKey { .. }), "{e}");
        let e = build(SpecInput {
            params: vec!["/just/a/name".into()],
            output: output("/x"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("expected KEY=NAME"), "{e}");
    }

    #[test]
    fn outputs_are_checked() {
        let base = || SpecInput {
            params: vec!["A=/a".into()],
            ..Default::default()
        };
        assert_eq!(build(base()).unwrap_err(), SpecError::NoOutput);
        let mut i = base();
        i.outputs_optional = true;
        assert!(build(i).unwrap().outputs.is_empty());
        let mut i = base();
        i.output = Some(RawOutput {
            file: "/x".into(),
            format: Some("xml".into()),
            ..Default::default()
        });
        let e = build(i).unwrap_err().to_string();
        assert!(
            e.contains("shell, dotenv, docker, k8s-env, json, yaml, properties, files, template"),
            "{e}"
        );
        let mut i = base();
        i.output = Some(RawOutput {
            file: "/x".into(),
            format: Some("template".into()),
            ..Default::default()
        });
        assert!(matches!(
            build(i).unwrap_err(),
            SpecError::TemplateMissing { .. }
        ));
        let mut i = base();
        i.output = output("/ssm/");
        assert!(matches!(build(i).unwrap_err(), SpecError::BadFile { .. }));
    }

    #[test]
    fn two_outputs_to_one_file_are_rejected() {
        let file = file::parse("outputs: [{ file: /ssm/a }]\nparams: { A: /a }").unwrap();
        let e = build(SpecInput {
            file: Some(("s.yaml".into(), file)),
            output: output("/ssm/a"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, SpecError::SameFile { .. }), "{e}");
    }

    #[test]
    fn outputs_inside_another_outputs_directory_are_rejected_naming_both() {
        let file = || {
            file::parse("params: { A: /a }\noutputs:\n  - { format: files, file: /ssm/tree }\n")
                .unwrap()
        };
        for inner in [
            "/ssm/tree/db",
            "/ssm/./tree/sub/../db",
            "/ssm/x/../tree/a/b",
        ] {
            let e = build(SpecInput {
                file: Some(("s.yaml".into(), file())),
                output: output(inner),
                ..Default::default()
            })
            .unwrap_err();
            assert!(matches!(e, SpecError::Inside { .. }), "{inner}: {e}");
            let text = e.to_string();
            assert!(
                text.contains("--output") && text.contains("s.yaml: outputs[0]"),
                "{text}"
            );
            assert!(
                text.contains(inner) && text.contains("/ssm/tree,"),
                "{text}"
            );
        }
        let e = build(SpecInput {
            file: Some(("s.yaml".into(), file())),
            output: output("/ssm/x/../tree"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, SpecError::SameFile { .. }), "{e}");
        assert!(
            build(SpecInput {
                file: Some(("s.yaml".into(), file())),
                output: output("/ssm/tree2"),
                ..Default::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn standard_output_takes_one_file_without_mode_or_owner_and_not_in_watch_mode() {
        let base = |raw: RawOutput| SpecInput {
            params: vec!["A=/a".into()],
            output: Some(raw),
            ..Default::default()
        };
        let stdout = || RawOutput {
            file: "-".into(),
            ..Default::default()
        };
        let s = build(base(stdout())).unwrap();
        assert!(s.outputs[0].is_stdout());
        assert!(s.check_for_watch("--watch").is_err());
        let e = build(base(RawOutput {
            format: Some("files".into()),
            ..stdout()
        }))
        .unwrap_err();
        assert!(matches!(e, SpecError::StdoutTree { .. }), "{e}");
        let e = build(base(RawOutput {
            mode: Some(RawMode(Ok("0440".into()))),
            ..stdout()
        }))
        .unwrap_err();
        assert!(e.to_string().contains("a file mode does not apply"), "{e}");
        let e = build(base(RawOutput {
            uid: Some(1),
            ..stdout()
        }))
        .unwrap_err();
        assert!(matches!(e, SpecError::StdoutMeta { .. }), "{e}");
        let s = build(base(RawOutput {
            file: "./-".into(),
            ..Default::default()
        }))
        .unwrap();
        assert!(!s.outputs[0].is_stdout());
        assert!(s.check_for_watch("--watch").is_ok());
    }

    #[test]
    fn a_malformed_region_from_the_environment_is_a_usage_error_naming_the_variable() {
        let input = || SpecInput {
            params: vec!["A=/a".into()],
            output: output("/x"),
            ..Default::default()
        };
        for (vars, named) in [
            (&[("AWS_REGION", "eu_west_1")][..], "AWS_REGION"),
            (
                &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "http://x")][..],
                "AWS_DEFAULT_REGION",
            ),
        ] {
            let lookup = |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            };
            let e = Spec::build(input(), &lookup).unwrap_err();
            assert!(matches!(e, SpecError::BadRegion { .. }), "{e}");
            assert!(e.to_string().contains(named), "{e}");
        }
        let good = |n: &str| (n == "AWS_REGION").then(|| "eu-west-1".to_owned());
        assert!(Spec::build(input(), &good).is_ok());
        // A region given by flag wins: the variable is not read.
        let bad = |n: &str| (n == "AWS_REGION").then(|| "bad".to_owned());
        let mut i = input();
        i.region = Some("us-east-1".into());
        assert!(Spec::build(i, &bad).is_ok());
    }

    #[test]
    fn modes_that_let_the_group_or_others_write_are_rejected() {
        for m in ["0777", "0660", "0620", "0602", "0644"] {
            let r = parse_mode(&RawMode(Ok(m.into())));
            if m == "0644" {
                assert_eq!(r, Ok(0o644));
            } else {
                assert!(r.unwrap_err().contains("group or others write"), "{m}");
            }
        }
        for m in ["04400", "02440", "01400"] {
            assert!(parse_mode(&RawMode(Ok(m.into()))).is_err(), "{m}");
        }
    }

    #[test]
    fn modes_are_octal_strings_that_let_the_owner_read() {
        assert_eq!(parse_mode(&RawMode(Ok("0440".into()))), Ok(0o440));
        assert_eq!(parse_mode(&RawMode(Ok("0o400".into()))), Ok(0o400));
        assert!(
            parse_mode(&RawMode(Err(400)))
                .unwrap_err()
                .contains("quoted")
        );
        assert!(
            parse_mode(&RawMode(Ok("0200".into())))
                .unwrap_err()
                .contains("read")
        );
        assert!(parse_mode(&RawMode(Ok("9".into()))).is_err());
        assert!(parse_mode(&RawMode(Ok("01777".into()))).is_err());
    }

    #[test]
    fn nothing_to_fetch_is_an_error() {
        assert_eq!(
            build(SpecInput {
                output: output("/x"),
                ..Default::default()
            })
            .unwrap_err(),
            SpecError::NothingToFetch
        );
    }

    #[test]
    fn concurrency_and_region_are_bounded() {
        let e = build(SpecInput {
            params: vec!["A=/a".into()],
            output: output("/x"),
            concurrency: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("between 1 and 64"), "{e}");
        let e = build(SpecInput {
            params: vec!["A=/a".into()],
            output: output("/x"),
            region: Some("EU West".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, SpecError::BadRegion { .. }));
    }
}
