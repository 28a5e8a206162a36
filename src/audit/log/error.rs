//! What can go wrong on the audit log's write and read paths, each with the path it concerns.

use std::path::{Path, PathBuf};

use super::DirError;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot write the audit log `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the last record of the audit log `{path}` is unreadable ({why}); refusing to append to a chain that cannot be continued"
    )]
    BadTail { path: PathBuf, why: TailError },
    #[error(
        "refusing the audit log `{path}`: it is a symbolic link, and gate never writes its log through one"
    )]
    Symlink { path: PathBuf },
    /// Its directory, or one above, lets other users swap files under gate.
    #[error("refusing the audit log `{log}`: {why}")]
    Unsafe { log: PathBuf, why: DirError },
    #[error(
        "refusing the audit log `{log}`: it is writable by other users (mode {mode:04o}); it must be 0600"
    )]
    Writable { log: PathBuf, mode: u32 },
    /// The log no longer holds the record an append must follow (the result of a run whose
    /// decision was written there): it was deleted, moved, replaced or rewritten meanwhile.
    #[error("the audit log `{path}` that holds seq {seq} is gone: {why}")]
    Lost {
        path: PathBuf,
        seq: u64,
        why: String,
    },
    /// The log and its signed checkpoint disagree, so signing a new head would cover it up.
    #[error("refusing to append to the audit log `{path}`: {why}")]
    Diverged { path: PathBuf, why: String },
    /// The records were written but their checkpoint could not be: they were cut off again.
    #[error(
        "cannot sign the checkpoint `{checkpoint}` ({source}); the record was taken back out of the audit log `{path}`"
    )]
    Checkpoint {
        path: PathBuf,
        checkpoint: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] crate::audit::key::KeyError),
    #[error("cannot encode an audit record: {0}")]
    Encode(#[from] crate::jcs::FloatError),
}

impl AuditError {
    /// The next step for whoever reads the error, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            AuditError::Symlink { path } => Some(format!(
                "point `GATE_LOG` / `audit.path` at the real file, or replace the link at `{}` with it",
                path.display()
            )),
            AuditError::Unsafe { log, .. } | AuditError::Writable { log, .. } => Some(format!(
                "keep the log in a directory only you (or root) can write, e.g. `chmod go-w {}`, or point `GATE_LOG` / `audit.path` elsewhere",
                log.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .display()
            )),
            AuditError::Diverged { path, .. } => Some(format!(
                "keep `{}` and its checkpoint for the audit (`gate log verify`); to start a new log, move both aside",
                path.display()
            )),
            _ => None,
        }
    }
}

/// Why the last line of a log cannot be continued from.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{len} bytes with no complete record")]
    OnlyTorn { len: usize },
}

/// A line of the log that does not read as a record (1-based line number).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct BadLine {
    pub line: usize,
    pub source: serde_json::Error,
}
