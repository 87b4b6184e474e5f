//! Outputs: read templates, check directories, clean leftovers (before any AWS call);
//! then format every output and write each atomically. Shared by `render` and `--watch`.

use crate::format::{self, FormatOptions, Rendered, Template};
use crate::spec::overlap::overlap;
use crate::spec::{At, OutputSpec, Spec, SpecError, overlap_error};
use crate::values::Values;
use crate::writer::{self, FileMeta, Outcome, TargetKind, WriteError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An output that could not be prepared, formatted or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("template {path}: {source}")]
    TemplateFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "output {file}: directory {dir} does not exist (mount the shared volume there, or fix --output)"
    )]
    NoOutputDir { file: String, dir: String },
    #[error("output {file}: {source}")]
    Format {
        file: String,
        #[source]
        source: format::FormatError,
    },
    /// The target exists and is something the writer must not replace.
    #[error(
        "output {file}: it is {kind}; ssm-injector only replaces {wanted} (use --output - for standard output)"
    )]
    NotReplaceable {
        file: String,
        kind: TargetKind,
        wanted: &'static str,
    },
    #[error("output {file}: could not resolve its directory: {source}")]
    Resolve {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// Two outputs write into each other once symlinks are resolved (a usage error).
    #[error("{0}")]
    Overlap(SpecError),
    #[error("output -: could not write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("{0}")]
    Write(#[from] WriteError),
}

/// An output with its template read and its directory checked: everything that can be
/// known wrong before any AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub spec: OutputSpec,
    pub options: FormatOptions,
}

/// Reads templates, checks that output directories exist, that no target is something
/// other than what its format writes (a device, FIFO, socket, a directory for a file, or
/// a symlink to one of these), that no two outputs write into each other once symlinked
/// directories are resolved, and removes what a crashed earlier run left behind.
pub fn prepare_outputs(spec: &Spec) -> Result<Vec<Prepared>, OutputError> {
    let prepared = spec
        .outputs
        .iter()
        .map(|o| {
            let template = match &o.template {
                None => None,
                Some(path) => Some(Template {
                    name: path.display().to_string(),
                    source: std::fs::read_to_string(path).map_err(|source| {
                        OutputError::TemplateFile {
                            path: path.display().to_string(),
                            source,
                        }
                    })?,
                }),
            };
            if o.is_stdout() {
                return Ok(Prepared {
                    spec: o.clone(),
                    options: FormatOptions {
                        format: o.format,
                        key_case: o.key_case,
                        template,
                    },
                });
            }
            let dir = parent_dir(&o.file);
            if !dir.is_dir() {
                return Err(OutputError::NoOutputDir {
                    file: o.file.display().to_string(),
                    dir: dir.display().to_string(),
                });
            }
            check_target(o)?;
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
        .collect::<Result<Vec<_>, _>>()?;
    check_resolved_overlaps(&prepared)?;
    Ok(prepared)
}

/// A `files` tree target must be a directory (or a symlink to one) when it exists; any
/// other target a regular file (or a symlink to one, which is replaced by the file).
fn check_target(o: &OutputSpec) -> Result<(), OutputError> {
    let tree = o.format == format::Format::Files;
    let kind = writer::target_kind(&o.file).map_err(|source| OutputError::Resolve {
        file: o.file.display().to_string(),
        source,
    })?;
    let fits = match kind {
        None => true,
        Some(k) if tree => k.is_directory(),
        Some(k) => k.is_regular(),
    };
    match kind {
        Some(kind) if !fits => Err(OutputError::NotReplaceable {
            file: o.file.display().to_string(),
            kind,
            wanted: if tree {
                "directories for --format files"
            } else {
                "regular files"
            },
        }),
        _ => Ok(()),
    }
}

/// Where each output really writes: its directory resolved (symlinks, `..`) plus its
/// name; a `files` tree that exists is resolved whole (the writer follows it).
fn resolved_target(o: &OutputSpec) -> Result<PathBuf, OutputError> {
    let resolve_err = |source| OutputError::Resolve {
        file: o.file.display().to_string(),
        source,
    };
    if o.format == format::Format::Files && o.file.is_dir() {
        return std::fs::canonicalize(&o.file).map_err(resolve_err);
    }
    let dir = std::fs::canonicalize(parent_dir(&o.file)).map_err(resolve_err)?;
    Ok(match o.file.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    })
}

/// The overlap check of `Spec::build`, again on the resolved paths: it catches the same
/// file reached through a symlinked directory, or through `..` after a symlink.
fn check_resolved_overlaps(prepared: &[Prepared]) -> Result<(), OutputError> {
    let mut seen: Vec<(&OutputSpec, PathBuf)> = Vec::new();
    for p in prepared.iter().filter(|p| !p.spec.is_stdout()) {
        let real = resolved_target(&p.spec)?;
        for (other, other_real) in &seen {
            if let Some(found) = overlap(&real, other_real) {
                return Err(OutputError::Overlap(overlap_error(
                    At(format!("output {}", p.spec.file.display())),
                    &real,
                    &At(format!("output {}", other.file.display())),
                    other_real,
                    found,
                )));
            }
        }
        seen.push((&p.spec, real));
    }
    Ok(())
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Formats every output first (so a formatting error writes nothing), then writes each
/// atomically. Returns whether anything changed.
pub fn write_outputs(outputs: &[Prepared], values: &Values) -> Result<bool, OutputError> {
    let rendered = outputs
        .iter()
        .map(|o| {
            format::render(&o.options, values).map_err(|source| OutputError::Format {
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
            Rendered::File(bytes) if o.spec.is_stdout() => write_stdout(bytes)?,
            Rendered::File(bytes) => writer::write_file(&o.spec.file, bytes, &meta)?,
            Rendered::Tree(files) => writer::write_tree(&o.spec.file, files, &meta)?,
        };
        let changed_now = outcome == Outcome::Changed;
        changed |= changed_now;
        if changed_now {
            tracing::info!(file = %o.spec.file.display(), format = %o.spec.format, "wrote");
        } else {
            tracing::debug!(file = %o.spec.file.display(), "unchanged, not rewritten");
        }
    }
    Ok(changed)
}

/// `--output -`: the bytes as they are, then a flush; no temp file, mode or owner.
fn write_stdout(bytes: &[u8]) -> Result<Outcome, OutputError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(OutputError::Stdout)?;
    Ok(Outcome::Changed)
}
