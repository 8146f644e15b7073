//! Repairing the tail of a metrics file before appending to it.
//!
//! Without this, the first new record would be glued to the torn line a crash left behind and
//! both would be lost to every reader.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::atomic_file::sync_parent_dir;
use crate::error::{Error, Result};
use crate::parse::{MAX_LINE_BYTES, parse_line};

use super::BOM;

/// What opening a collector found, and did, at the end of its metrics file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TailRepair {
    /// The file was empty or ended with a newline.
    Clean,
    /// The last line was a valid record without its newline; the newline was added.
    Terminated,
    /// The last line was not a valid record (a torn write); it was cut off.
    Cut {
        /// How many bytes were cut.
        bytes: u64,
        /// Where they were saved for inspection.
        saved_to: PathBuf,
    },
}

/// Makes the file end at a line boundary. Returns what was done and the new length.
pub(crate) fn repair_tail(file: &mut File, path: &Path) -> Result<(TailRepair, u64)> {
    let io_err = |action| move |e| Error::io(action, path, e);
    let len = file.metadata().map_err(io_err("inspect"))?.len();
    let tail_start = match last_newline(file, len).map_err(io_err("read"))? {
        Some(newline) => newline + 1,
        None => 0,
    };
    if tail_start == len {
        return Ok((TailRepair::Clean, len));
    }
    let tail_len = len - tail_start;
    if tail_len <= MAX_LINE_BYTES as u64 {
        let mut tail = Vec::with_capacity(tail_len as usize);
        file.seek(SeekFrom::Start(tail_start))
            .map_err(io_err("read"))?;
        Read::by_ref(file)
            .take(tail_len)
            .read_to_end(&mut tail)
            .map_err(io_err("read"))?;
        // A file that is one unterminated line may start with a byte order mark.
        let line = match tail_start {
            0 => tail.strip_prefix(BOM).unwrap_or(&tail),
            _ => &tail[..],
        };
        if parse_line(line).is_ok() {
            file.write_all(b"\n")
                .map_err(io_err("terminate the last line of"))?;
            file.sync_data().map_err(io_err("sync"))?;
            return Ok((TailRepair::Terminated, len + 1));
        }
    }

    let saved_to = torn_tail_path(path);
    let mut saved = File::create(&saved_to).map_err(|e| Error::io("create", &saved_to, e))?;
    let copied = file
        .seek(SeekFrom::Start(tail_start))
        .and_then(|_| io::copy(&mut Read::by_ref(file).take(tail_len), &mut saved))
        .and_then(|_| saved.sync_all());
    if let Err(e) = copied {
        // A full disk would otherwise leave an empty or partial copy at every open.
        drop(saved);
        let _ = std::fs::remove_file(&saved_to);
        return Err(Error::io("save the torn tail to", &saved_to, e));
    }
    file.set_len(tail_start)
        .map_err(io_err("truncate the torn tail of"))?;
    file.sync_all().map_err(io_err("sync"))?;
    sync_parent_dir(path)?;
    tracing::warn!(
        path = %path.display(),
        bytes = tail_len,
        saved_to = %saved_to.display(),
        "cut a torn last line (an interrupted write) before appending"
    );
    Ok((
        TailRepair::Cut {
            bytes: tail_len,
            saved_to,
        },
        tail_start,
    ))
}

/// Offset of the last `\n` in the first `len` bytes, scanning backwards in blocks.
fn last_newline(file: &mut File, len: u64) -> io::Result<Option<u64>> {
    const BLOCK: u64 = 1 << 16;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let block = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(block)?;
        if let Some(i) = memchr::memrchr(b'\n', block) {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// A fresh name beside `path` for saving a torn tail: `<name>.torn-<unix ms>[-n]`.
fn torn_tail_path(path: &Path) -> PathBuf {
    torn_tail_path_at(path, crate::record::Timestamp::now().unix_ms())
}

/// [`torn_tail_path`] for a save at `stamp` (unix ms): the first of `.torn-<stamp>`,
/// `.torn-<stamp>-1`, `-2`, … that does not exist yet.
fn torn_tail_path_at(path: &Path, stamp: i64) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut candidate = path.with_file_name(format!("{name}.torn-{stamp}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{name}.torn-{stamp}-{n}"));
        n += 1;
    }
    candidate
}

/// Opens a metrics file for appending, creating it if needed.
pub(crate) fn open_for_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saves in the same millisecond take the next free number; none takes an existing name.
    #[test]
    fn a_torn_tail_saved_in_a_taken_millisecond_takes_the_next_free_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invocations.jsonl");
        let at = |stamp| torn_tail_path_at(&path, stamp);
        assert_eq!(at(7), dir.path().join("invocations.jsonl.torn-7"));
        for taken in ["invocations.jsonl.torn-7", "invocations.jsonl.torn-7-1"] {
            std::fs::write(dir.path().join(taken), "earlier").unwrap();
        }
        assert_eq!(at(7), dir.path().join("invocations.jsonl.torn-7-2"));
        assert_eq!(at(8), dir.path().join("invocations.jsonl.torn-8"));
    }
}
