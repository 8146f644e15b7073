//! The checkpoint: how many metrics records a run had accounted for, kept beside the
//! caller's own checkpoint fields and replaced atomically.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_file_atomically;
use crate::error::{Error, Result};

/// The file name of the checkpoint inside its directory.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoint.json";

/// A checkpoint: `metricsCount` plus any other fields of the caller's checkpoint, which a
/// load/save round trip keeps intact.
///
/// ```
/// use invocation_metrics::CheckpointState;
///
/// let state: CheckpointState = serde_json::from_str(r#"{"phase":3,"metricsCount":42}"#)?;
/// assert_eq!(state.metrics_count, Some(42));
/// assert_eq!(state.other["phase"], 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointState {
    /// How many records of `invocations.jsonl` this run had accounted for: the value of
    /// [`get_count`](crate::InvocationMetricsCollector::get_count) when the checkpoint was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_count: Option<u64>,
    /// Every other field of the checkpoint, kept as it was.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Saves and loads `checkpoint.json` in a checkpoint directory (kept apart from the metrics
/// directory: metrics are appended, checkpoints replaced).
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// A store in `checkpoint_dir`, which is created if missing.
    pub fn new(checkpoint_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = checkpoint_dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| Error::io("create checkpoint directory", dir, e))?;
        Ok(Self {
            path: dir.join(CHECKPOINT_FILE_NAME),
        })
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the checkpoint atomically: after a crash at any point, [`load`](Self::load)
    /// returns either the previous checkpoint or this one.
    pub fn save(&self, state: &CheckpointState) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(state).map_err(|e| Error::CorruptCheckpoint {
            path: self.path.clone(),
            source: e,
        })?;
        json.push(b'\n');
        write_file_atomically(&self.path, &json)
    }

    /// The saved checkpoint; `None` when there is none yet.
    pub fn load(&self) -> Result<Option<CheckpointState>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::CorruptCheckpoint {
                path: self.path.clone(),
                source: e,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_file::temp_path;

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("nested/checkpoints")).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let mut state: CheckpointState =
            serde_json::from_str(r#"{"phase":2,"completed":["a","b"],"nested":{"x":1.5}}"#)
                .unwrap();
        state.metrics_count = Some(17);
        store.save(&state).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded, state);
        let raw: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(raw["metricsCount"], 17);
        assert_eq!(raw["completed"][1], "b");
        assert_eq!(raw["nested"]["x"], 1.5);
    }

    #[test]
    fn leftover_temp_file_is_ignored_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path()).unwrap();
        let first = CheckpointState {
            metrics_count: Some(1),
            ..Default::default()
        };
        store.save(&first).unwrap();
        // A crash between writing the temp file and renaming it leaves this behind.
        fs::write(temp_path(store.path()), b"{\"metricsCount\": 99, \"trunc").unwrap();
        assert_eq!(store.load().unwrap(), Some(first));
        let second = CheckpointState {
            metrics_count: Some(2),
            ..Default::default()
        };
        store.save(&second).unwrap();
        assert_eq!(store.load().unwrap(), Some(second));
        assert!(!temp_path(store.path()).exists());
    }

    #[test]
    fn corrupt_checkpoint_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path()).unwrap();
        fs::write(store.path(), b"{\"metricsCount\": \"many\"}").unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, Error::CorruptCheckpoint { .. }));
        assert!(
            err.to_string().contains("checkpoint.json is corrupt"),
            "{err}"
        );
    }
}
