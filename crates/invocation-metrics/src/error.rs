//! Errors at the library's boundaries.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// A record broke one of the rules of [`InvocationMetric`](crate::InvocationMetric).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {reason}")]
pub struct ValidationError {
    /// The JSON name of the offending field, e.g. `"attempt"`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Everything the collector, the loader and the checkpoint store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The metric was refused; nothing was written or recorded.
    #[error(transparent)]
    Invalid(#[from] ValidationError),

    /// A metric given as JSON is no valid record ([`record_json`]); the message names the
    /// field. Nothing was recorded.
    ///
    /// [`record_json`]: crate::InvocationMetricsCollector::record_json
    #[error(transparent)]
    Line(#[from] crate::parse::LineError),

    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "open".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// Another collector (in this or another process) holds the directory's lock.
    #[error(
        "{} is locked by another collector; only one writer may append to a metrics directory \
         (close the other one, or use a different directory)",
        path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// Records could not be written to the metrics file. They are still in memory and the
    /// writer keeps retrying; once the fault clears they reach the file in order.
    #[error(
        "cannot write {pending} record(s) to {}: {source} (kept in memory, retrying)",
        path.display()
    )]
    Write {
        /// The metrics file.
        path: PathBuf,
        /// How many records were not yet written when the error was seen.
        pending: u64,
        /// The operating system's error.
        source: Arc<io::Error>,
    },

    /// Closing found records the writer could not write (disk full, I/O error): it tried
    /// once more and stopped. They are not in the file.
    #[error(
        "{pending} record(s) could not be written to {} before closing{}; they are not in the file",
        path.display(),
        source.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
    )]
    Unwritten {
        /// The metrics file.
        path: PathBuf,
        /// How many records were not written.
        pending: u64,
        /// The last write error, if one was seen.
        source: Option<Arc<io::Error>>,
    },

    /// A sync (`fdatasync`) of the metrics file failed. Records written since the last good
    /// sync may not be on stable storage, and no later sync can prove they are (the OS may
    /// have dropped the pages that failed): every durable wait — `sync`, `checkpoint`, a
    /// flush under `Durability::Always`, `close` — fails from then on. Writes go on.
    #[error(
        "cannot sync {}: {source}; records written since the last good sync may not be on disk, and no later sync of this collector can prove they are (close it, check the disk, then reopen)",
        path.display()
    )]
    SyncFailed {
        /// The metrics file.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },

    /// The background writer is gone (it panicked or the collector is closing).
    #[error("the metrics writer for {} has stopped", path.display())]
    WriterStopped {
        /// The metrics file.
        path: PathBuf,
    },

    /// A path given as metrics input holds no metrics file.
    #[error("{} holds no metrics: {hint}", path.display())]
    NoMetrics {
        /// The path given.
        path: PathBuf,
        /// What was looked for.
        hint: &'static str,
    },

    /// A path given as a metrics file is something that cannot be one: a directory where a
    /// file is needed, a device (`/dev/zero` would be read forever), a socket.
    #[error("{} is {kind}, {hint}", path.display())]
    NotAFile {
        /// The path given (or found).
        path: PathBuf,
        /// What it is, e.g. "a character device".
        kind: &'static str,
        /// What it is not, and what to give instead.
        hint: &'static str,
    },

    /// The checkpoint file exists but is not valid checkpoint JSON.
    #[error(
        "checkpoint {} is corrupt: {source}; fix or delete it to start without a checkpoint",
        path.display()
    )]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
