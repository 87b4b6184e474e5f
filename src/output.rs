//! Outputs: read templates, check directories, clean leftovers (before any AWS call);
//! then format every output and write each atomically. Shared by `render` and `--watch`.

use crate::format::{self, FormatOptions, Rendered, Template};
use crate::spec::{OutputSpec, Spec};
use crate::values::Values;
use crate::writer::{self, FileMeta, Outcome, WriteError};
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

/// Reads templates, checks that output directories exist and removes what a crashed
/// earlier run left behind.
pub fn prepare_outputs(spec: &Spec) -> Result<Vec<Prepared>, OutputError> {
    spec.outputs
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
            let dir = parent_dir(&o.file);
            if !dir.is_dir() {
                return Err(OutputError::NoOutputDir {
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
