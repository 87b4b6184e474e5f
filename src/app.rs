//! Per-subcommand glue: reads files, builds the spec, calls the source, formats, writes.
//! Owns the exit codes.

use crate::cli::{Cli, Command, OutputArgs, RenderArgs, SpecArgs};
use crate::format::{self, FormatOptions, Rendered, Template};
use crate::source::{FetchFailure, Kind, Source, ssm::SetupError};
use crate::spec::file::{RawMode, RawOutput};
use crate::spec::{OutputSpec, Spec, SpecError, SpecInput};
use crate::values::Values;
use crate::writer::{self, FileMeta, Outcome, WriteError};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Exit codes (also in `--help` and the README).
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything not covered below (unexpected AWS answers, internal errors).
    pub const OTHER: u8 = 1;
    /// Bad flags, spec file, name, variable or template file.
    pub const USAGE: u8 = 2;
    /// A required parameter, path content or JSON field is not there.
    pub const NOT_FOUND: u8 = 3;
    /// IAM or KMS denied access, or no credentials.
    pub const DENIED: u8 = 4;
    /// Throttled after retries, AWS 5xx, network down, timeout.
    pub const UNAVAILABLE: u8 = 5;
    /// An output could not be formatted or written.
    pub const OUTPUT: u8 = 6;
}

/// Everything that can stop a subcommand. Messages name the parameter, flag, key or file.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("spec file {path}: {reason}")]
    SpecFile { path: String, reason: String },
    #[error("template {path}: {source}")]
    TemplateFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Fetch(#[from] FetchFailure),
    #[error("output {file}: {source}")]
    Format {
        file: String,
        #[source]
        source: format::FormatError,
    },
    #[error(
        "output {file}: directory {dir} does not exist (mount the shared volume there, or fix --output)"
    )]
    NoOutputDir { file: String, dir: String },
    #[error("{0}")]
    Write(#[from] WriteError),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Spec(_)
            | AppError::SpecFile { .. }
            | AppError::TemplateFile { .. }
            | AppError::Setup(_) => exit::USAGE,
            AppError::Fetch(f) => match f.kind() {
                Kind::NotFound => exit::NOT_FOUND,
                Kind::Denied => exit::DENIED,
                Kind::Unavailable => exit::UNAVAILABLE,
                Kind::Other => exit::OTHER,
            },
            AppError::Format { .. } | AppError::NoOutputDir { .. } | AppError::Write(_) => {
                exit::OUTPUT
            }
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Render(args) => render(args).await,
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!(exit_code = e.exit_code(), "{e}");
            e.exit_code()
        }
    }
}

async fn render(args: RenderArgs) -> Result<(), AppError> {
    let RenderArgs { spec, output } = args;
    let spec = build_spec(spec, Some(output))?;
    let prepared = prepare_outputs(&spec)?;
    let source = Source::from_env(spec.region.clone(), spec.concurrency).await?;
    let started = Instant::now();
    let values = source.fetch(&spec).await?;
    tracing::info!(
        values = values.len(),
        api_calls = source.calls.total(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "fetched"
    );
    write_outputs(&prepared, &values)?;
    Ok(())
}

/// Reads the spec file (if any), merges the flags and checks everything.
pub fn build_spec(args: SpecArgs, output: Option<OutputArgs>) -> Result<Spec, AppError> {
    let SpecArgs {
        spec,
        paths,
        no_recursive,
        params,
        optional_params,
        region,
        concurrency,
    } = args;
    let file = match spec {
        None => None,
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| AppError::SpecFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let parsed = crate::spec::file::parse(&text).map_err(|e| AppError::SpecFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            Some((shown, parsed))
        }
    };
    let output = output.and_then(|o| {
        let OutputArgs {
            output,
            format,
            template,
            key_case,
            file_mode,
            uid,
            gid,
        } = o;
        output.map(|file| RawOutput {
            format,
            file,
            template,
            key_case,
            mode: file_mode.map(|m| RawMode(Ok(m))),
            uid,
            gid,
        })
    });
    let input = SpecInput {
        file,
        paths,
        recursive: !no_recursive,
        params,
        optional_params,
        region,
        output,
        concurrency,
    };
    Ok(Spec::build(input, &|name| std::env::var(name).ok())?)
}

/// An output with its template read and its directory checked: everything that can be
/// known wrong before any AWS call.
pub struct Prepared {
    pub spec: OutputSpec,
    pub options: FormatOptions,
}

/// Reads templates, checks that output directories exist and removes what a crashed
/// earlier run left behind.
pub fn prepare_outputs(spec: &Spec) -> Result<Vec<Prepared>, AppError> {
    spec.outputs
        .iter()
        .map(|o| {
            let template = match &o.template {
                None => None,
                Some(path) => Some(Template {
                    name: path.display().to_string(),
                    source: std::fs::read_to_string(path).map_err(|source| {
                        AppError::TemplateFile {
                            path: path.display().to_string(),
                            source,
                        }
                    })?,
                }),
            };
            let dir = parent_dir(&o.file);
            if !dir.is_dir() {
                return Err(AppError::NoOutputDir {
                    file: o.file.display().to_string(),
                    dir: dir.display().to_string(),
                });
            }
            let removed = if o.format == format::Format::Files {
                writer::clean_stale_tree(&o.file)?
            } else {
                writer::clean_stale_file(&o.file)?
            };
            if removed > 0 {
                tracing::info!(file = %o.file.display(), removed, "removed leftovers of an interrupted write");
            }
            Ok(Prepared {
                spec: o.clone(),
                options: FormatOptions {
                    format: o.format,
                    key_case: o.key_case,
                    template,
                },
            })
        })
        .collect()
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Formats every output first (so a formatting error writes nothing), then writes each
/// atomically. Returns whether anything changed.
pub fn write_outputs(outputs: &[Prepared], values: &Values) -> Result<bool, AppError> {
    let rendered = outputs
        .iter()
        .map(|o| {
            format::render(&o.options, values).map_err(|source| AppError::Format {
                file: o.spec.file.display().to_string(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut changed = false;
    for (o, r) in outputs.iter().zip(rendered) {
        let meta = FileMeta {
            mode: o.spec.mode,
            uid: o.spec.uid,
            gid: o.spec.gid,
        };
        let outcome = match &r {
            Rendered::File(bytes) => writer::write_file(&o.spec.file, bytes, &meta)?,
            Rendered::Tree(files) => writer::write_tree(&o.spec.file, files, &meta)?,
        };
        changed |= outcome == Outcome::Changed;
        tracing::info!(
            file = %o.spec.file.display(),
            format = %o.spec.format,
            changed = outcome == Outcome::Changed,
            "wrote"
        );
    }
    Ok(changed)
}
