//! Repairing a damaged metrics file without losing a valid record.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::atomic_file::{sync_parent_dir, temp_path};
use crate::collector::{LOCK_FILE_NAME, METRICS_FILE_NAME, lock_directory};
use crate::error::{Error, Result};
use crate::journal::{for_each_line, is_blank};
use crate::parse::{MAX_LINE_BYTES, parse_line};
use crate::record::Timestamp;

/// The file rejected lines are moved to, beside `invocations.jsonl`. (A file of another
/// name, `NAME.EXT`, gets `NAME.rejected.jsonl`.)
pub const REJECTED_FILE_NAME: &str = "invocations.rejected.jsonl";

/// Where the rejected lines of the metrics file at `path` go.
fn rejected_path(dir: &Path, path: &Path) -> PathBuf {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(METRICS_FILE_NAME) | None => dir.join(REJECTED_FILE_NAME),
        Some(_) => {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            dir.join(format!("{stem}.rejected.jsonl"))
        }
    }
}

/// What [`repair_metrics_file`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The metrics file.
    pub path: PathBuf,
    /// Valid records kept, in their original order.
    pub kept: u64,
    /// Invalid lines moved to the rejected file.
    pub rejected: u64,
    /// Lines longer than the limit, moved to the rejected file too.
    pub overlong: u64,
    /// Whether the last line was torn (unterminated and invalid).
    pub torn_tail: bool,
    /// The untouched original, when anything changed.
    pub backup: Option<PathBuf>,
    /// Where rejected lines were appended, when there were any.
    pub rejected_file: Option<PathBuf>,
}

impl RepairReport {
    /// Whether the file needed no change.
    pub fn was_clean(&self) -> bool {
        self.backup.is_none()
    }
}

/// Rewrites a damaged metrics file so that it holds exactly its valid records, in order.
///
/// `path` is the file or its metrics directory; a symlink is resolved first (the file it
/// points to is repaired, under the lock of that file's directory and, for a link named
/// `invocations.jsonl`, of the link's: a collector writing through it holds that one).
/// Invalid lines (the torn tail and over-long lines included) are appended to
/// `invocations.rejected.jsonl` beside it (`NAME.rejected.jsonl` for a file named
/// otherwise), one JSON object per line:
/// `{"line": N, "reason": "...", "text": "<the line>"}`, with `"lossy": true` where the line
/// was not valid UTF-8 (the backup holds its exact bytes). The original is kept as
/// `invocations.jsonl.bak-<unix ms>`; the clean file replaces it atomically. Refuses with
/// [`Error::Locked`] while a collector holds either directory, and holds them meanwhile
/// (creating a lock file, `invocations.lock`, where there was none); refuses with
/// [`Error::NotAFile`] anything but a regular file. A clean file is left untouched.
pub fn repair_metrics_file(path: &Path) -> Result<RepairReport> {
    let given = if path.is_dir() {
        path.join(METRICS_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    // The file a link points to is the one to repair: replacing the link would leave the
    // damaged file as it was. A collector writes only `DIR/invocations.jsonl`: through a link
    // of that name it holds the link's directory, so that one is locked too.
    let (path, link_dir) = match fs::symlink_metadata(&given) {
        Ok(meta) if meta.file_type().is_symlink() => (
            fs::canonicalize(&given).map_err(|e| Error::io("resolve", &given, e))?,
            (given.file_name() == Some(METRICS_FILE_NAME.as_ref())).then(|| parent_dir(&given)),
        ),
        _ => (given, None),
    };
    let meta = fs::metadata(&path).map_err(|e| Error::io("read", &path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path,
            kind: file_kind(&meta),
            hint: "not a metrics file; repair rewrites a regular file (a pipe or device has no lines to keep)",
        });
    }
    let dir = parent_dir(&path);

    // Hold the directory locks while rewriting, so no collector appends meanwhile.
    let same_dir = |a: &Path, b: &Path| match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let link_lock = match &link_dir {
        Some(link_dir) if !same_dir(link_dir, &dir) => match lock_directory(link_dir) {
            Ok(lock) => Some(lock),
            // No lock file there, and none can be made: no collector writes through it.
            Err(Error::Io { .. }) if !link_dir.join(LOCK_FILE_NAME).exists() => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let lock = lock_directory(&dir)?;

    let source = File::open(&path).map_err(|e| Error::io("read", &path, e))?;
    let temp = temp_path(&path);
    // Errors name `path`: the temporary file is ours, not the caller's.
    let mut clean = BufWriter::new(File::create(&temp).map_err(|e| Error::io("write", &path, e))?);
    let rejected_path = rejected_path(&dir, &path);
    let mut rejected = Rejected {
        path: rejected_path.clone(),
        file: None,
    };
    let mut report = RepairReport {
        path: path.clone(),
        ..RepairReport::default()
    };
    let mut changed = false;
    let mut write_error = None;
    // Over-long lines are not held in memory: their place in the file, to copy them later.
    let mut overlong_lines: Vec<(u64, u64, u64)> = Vec::new();
    let mut offset = 0u64;
    for_each_line(source, |line| {
        let start = offset;
        offset +=
            line.bytes.map_or_else(|len| len, |b| b.len() as u64) + u64::from(line.terminated);
        let bytes = match line.bytes {
            Err(len) => {
                report.overlong += 1;
                changed = true;
                overlong_lines.push((line.number, start, len));
                return;
            }
            Ok(bytes) => bytes,
        };
        if is_blank(bytes) {
            changed |= !bytes.is_empty() || !line.terminated;
            return;
        }
        match parse_line(bytes) {
            Ok(_) => {
                let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                changed |= bytes.len() != line.bytes.map_or(0, <[u8]>::len) || !line.terminated;
                report.kept += 1;
                if let Err(e) = clean.write_all(bytes).and_then(|()| clean.write_all(b"\n")) {
                    write_error.get_or_insert(e);
                }
            }
            Err(problem) => {
                changed = true;
                report.rejected += 1;
                report.torn_tail |= !line.terminated;
                let mut reason = problem.to_string();
                if !line.terminated {
                    reason.push_str(" (torn last line)");
                }
                if let Err(e) = rejected.line(line.number, &reason, bytes) {
                    write_error.get_or_insert(e);
                }
            }
        }
    })
    .map_err(|e| Error::io("read", &path, e))?;
    for (number, start, len) in overlong_lines {
        let reason = format!("line is {len} bytes, longer than the {MAX_LINE_BYTES}-byte limit");
        let copied = File::open(&path).and_then(|mut source| {
            source.seek(SeekFrom::Start(start))?;
            rejected.long_line(number, &reason, source.take(len))
        });
        if let Err(e) = copied {
            write_error.get_or_insert(e);
        }
    }
    let finish = |clean: BufWriter<File>| -> std::io::Result<()> {
        clean.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    let written = match write_error {
        Some(e) => Err(e),
        None => finish(clean),
    };
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write", &path, e));
    }
    if let Some(file) = rejected.file {
        finish(file).map_err(|e| Error::io("append to", &rejected_path, e))?;
        report.rejected_file = Some(rejected_path);
    }
    if !changed {
        fs::remove_file(&temp).map_err(|e| Error::io("remove", &temp, e))?;
        return Ok(report);
    }

    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let backup = dir.join(format!("{name}.bak-{}", Timestamp::now().unix_ms()));
    fs::hard_link(&path, &backup)
        .or_else(|_| fs::copy(&path, &backup).map(drop))
        .map_err(|e| Error::io("back up", &path, e))?;
    fs::rename(&temp, &path).map_err(|e| Error::io("replace", &path, e))?;
    sync_parent_dir(&path)?;
    report.backup = Some(backup);
    drop(lock);
    drop(link_lock);
    Ok(report)
}

/// The directory that holds `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What a file that is not a regular file is, for messages.
pub(crate) fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let file_type = meta.file_type();
    if file_type.is_file() {
        "a file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The rejected-lines file, created on the first rejected line.
struct Rejected {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl Rejected {
    fn open(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        let file = match self.file.take() {
            Some(file) => file,
            None => BufWriter::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        Ok(self.file.insert(file))
    }

    /// Appends `{"line": N, "reason": "...", "text": "..."}` for a line held in memory.
    fn line(&mut self, number: u64, reason: &str, bytes: &[u8]) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(bytes);
        let mut entry = serde_json::json!({"line": number, "reason": reason, "text": text});
        if matches!(text, std::borrow::Cow::Owned(_)) {
            entry["lossy"] = true.into();
        }
        let file = self.open()?;
        serde_json::to_writer(&mut *file, &entry)?;
        file.write_all(b"\n")
    }

    /// The same for a line too long to hold: its text is escaped as it streams through.
    fn long_line(&mut self, number: u64, reason: &str, bytes: impl Read) -> std::io::Result<()> {
        let file = self.open()?;
        write!(file, "{{\"line\":{number},\"reason\":")?;
        serde_json::to_writer(&mut *file, reason)?;
        file.write_all(b",\"text\":\"")?;
        let lossy = escape_json_text(bytes, file)?;
        file.write_all(b"\"")?;
        if lossy {
            file.write_all(b",\"lossy\":true")?;
        }
        file.write_all(b"}\n")
    }
}

/// Writes the UTF-8 text read from `bytes` as the inside of a JSON string, a block at a
/// time; invalid bytes become U+FFFD. Returns whether any were.
fn escape_json_text(mut bytes: impl Read, out: &mut impl Write) -> std::io::Result<bool> {
    let mut buffer = vec![0u8; 1 << 16];
    // Bytes of a character split by the block boundary, carried into the next block.
    let mut carried = 0;
    let mut lossy = false;
    loop {
        let read = bytes.read(&mut buffer[carried..])?;
        let end = carried + read;
        let mut block = &buffer[..end];
        let mut rest_start = end;
        loop {
            match std::str::from_utf8(block) {
                Ok(text) => {
                    escape_into(text, out)?;
                    break;
                }
                Err(e) => {
                    let (valid, after) = block.split_at(e.valid_up_to());
                    escape_into(std::str::from_utf8(valid).unwrap_or_default(), out)?;
                    match e.error_len() {
                        Some(bad) => {
                            lossy = true;
                            out.write_all("\u{fffd}".as_bytes())?;
                            block = &after[bad..];
                        }
                        // A character cut by the block's end: keep it for the next block,
                        // unless there is no next block.
                        None if read > 0 => {
                            rest_start = end - after.len();
                            break;
                        }
                        None => {
                            lossy = true;
                            out.write_all("\u{fffd}".as_bytes())?;
                            break;
                        }
                    }
                }
            }
        }
        if read == 0 {
            return Ok(lossy);
        }
        buffer.copy_within(rest_start..end, 0);
        carried = end - rest_start;
    }
}

/// Writes `text` escaped as JSON string content.
fn escape_into(text: &str, out: &mut impl Write) -> std::io::Result<()> {
    let json = serde_json::to_string(text)?;
    // Without the quotes serde_json put around it.
    out.write_all(&json.as_bytes()[1..json.len() - 1])
}
