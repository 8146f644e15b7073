//! Replacing a file the user keeps (checkpoints, reports, repaired files) so that a crash at
//! any moment leaves either the old content or the new, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, synced,
/// renamed over `path`, then the directory synced so the rename itself survives power loss.
///
/// The temporary file is `.<name>.tmp` beside `path`; a leftover one from an interrupted
/// write is simply overwritten. Only one writer per `path` at a time.
///
/// A symbolic link is followed: the file it points to is replaced and the link kept. A path
/// that is not a regular file — a device such as `/dev/null`, a named pipe — is written
/// into directly, since renaming over it would replace it with a plain file.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("report.md");
/// invocation_metrics::write_file_atomically(&path, b"# Report\n")?;
/// assert_eq!(std::fs::read(&path)?, b"# Report\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_atomically_with(path, |out| {
        out.write_all(bytes)
            .map_err(|e| Error::io("write", path, e))
    })
}

/// Like [`write_file_atomically`], with the content written by `fill` as it is produced, so
/// it never needs to be in memory whole. If `fill` fails, a regular file at `path` is left as
/// it was (the temporary file is removed) and the error is returned; a device or pipe has
/// received whatever `fill` wrote before failing.
///
/// ```
/// use std::io::Write;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("numbers.txt");
/// invocation_metrics::write_file_atomically_with(&path, |out| -> Result<(), Box<dyn std::error::Error>> {
///     for n in 0..3 {
///         writeln!(out, "{n}")?;
///     }
///     Ok(())
/// })?;
/// assert_eq!(std::fs::read_to_string(&path)?, "0\n1\n2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_file_atomically_with<E: From<Error>>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let resolved = if is_link {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let path = resolved.as_path();
    if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let target = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io("write", path, e))?;
        let mut out = BufWriter::new(target);
        fill(&mut out)?;
        return Ok(out.flush().map_err(|e| Error::io("write", path, e))?);
    }
    let temp = temp_path(path);
    // Errors name `path`, the file the caller asked for; the temporary name is ours.
    let file = File::create(&temp).map_err(|e| Error::io("write", path, e))?;
    let mut out = BufWriter::new(file);
    if let Err(e) = fill(&mut out) {
        drop(out);
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    let finish = || -> std::io::Result<()> {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    };
    let placed = finish()
        .map_err(|e| Error::io("write", path, e))
        .and_then(|()| {
            fs::rename(&temp, path).map_err(|e| Error::io("rename into place", path, e))
        });
    if placed.is_err() {
        let _ = fs::remove_file(&temp);
    }
    placed?;
    Ok(sync_parent_dir(path)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        fs::write(&path, b"old").unwrap();
        let result = write_file_atomically_with(&path, |out| {
            out.write_all(b"half of the new").unwrap();
            Err(Error::io("read", "input", std::io::Error::other("gone")))
        });
        assert!(result.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.md");
        let link = dir.path().join("link.md");
        fs::write(&target, b"old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_file_atomically(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    /// Renaming over a device or a pipe would replace it (as root, `-o /dev/null` once
    /// turned /dev/null into a plain file): such a path is written into instead.
    #[test]
    fn a_named_pipe_is_written_into_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out.pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipping: mkfifo is not available");
            return;
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write_file_atomically(&fifo, b"report").unwrap();
        // Checked before joining: had the pipe been replaced, the reader would wait forever.
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(reader.join().unwrap(), b"report");
    }
}
