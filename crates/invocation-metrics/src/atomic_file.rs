//! Replacing a file the user keeps (checkpoints, reports, repaired files) so that a crash at
//! any moment leaves either the old content or the new, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, synced,
/// renamed over `path`, then the directory synced so the rename itself survives power loss.
///
/// The temporary file is `.<name>.tmp` beside `path`; a leftover one from an interrupted
/// write is simply overwritten. Only one writer per `path` at a time.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("report.md");
/// invocation_metrics::write_file_atomically(&path, b"# Report\n")?;
/// assert_eq!(std::fs::read(&path)?, b"# Report\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| Error::io("write", &temp, e))?;
    fs::rename(&temp, path).map_err(|e| Error::io("rename into place", path, e))?;
    sync_parent_dir(path)
}

/// The temporary file [`write_file_atomically`] uses for `path`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Syncs the directory holding `path`, making a create or rename in it durable.
pub(crate) fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}
