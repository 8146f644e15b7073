//! Repairing a damaged metrics file without losing a valid record.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::atomic_file::{sync_parent_dir, temp_path};
use crate::collector::{METRICS_FILE_NAME, lock_directory};
use crate::error::{Error, Result};
use crate::journal::{for_each_line, is_blank};
use crate::parse::parse_line;
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
    /// Lines longer than the limit, dropped (their bytes remain in the backup).
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
/// `path` is the file or its metrics directory. Invalid lines (the torn tail included) are
/// appended to `invocations.rejected.jsonl` beside it (`NAME.rejected.jsonl` for a file
/// named otherwise); the original is kept as `invocations.jsonl.bak-<unix ms>`; the clean
/// file replaces it atomically. Refuses with
/// [`Error::Locked`] while a collector holds the directory. A clean file is left untouched.
pub fn repair_metrics_file(path: &Path) -> Result<RepairReport> {
    let path = if path.is_dir() {
        path.join(METRICS_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    // Hold the directory lock while rewriting, so no collector appends meanwhile.
    let lock = lock_directory(&dir)?;

    let source = File::open(&path).map_err(|e| Error::io("read", &path, e))?;
    let temp = temp_path(&path);
    // Errors name `path`: the temporary file is ours, not the caller's.
    let mut clean = BufWriter::new(File::create(&temp).map_err(|e| Error::io("write", &path, e))?);
    let rejected_path = rejected_path(&dir, &path);
    let mut rejected: Option<BufWriter<File>> = None;
    let mut report = RepairReport {
        path: path.clone(),
        ..RepairReport::default()
    };
    let mut changed = false;
    let mut write_error = None;
    for_each_line(source, |line| {
        let bytes = match line.bytes {
            Err(_) => {
                report.overlong += 1;
                changed = true;
                return;
            }
            Ok(bytes) => bytes,
        };
        if is_blank(bytes) {
            changed |= !bytes.is_empty() || !line.terminated;
            return;
        }
        if parse_line(bytes).is_ok() {
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            changed |= bytes.len() != line.bytes.map_or(0, <[u8]>::len) || !line.terminated;
            report.kept += 1;
            if let Err(e) = clean.write_all(bytes).and_then(|()| clean.write_all(b"\n")) {
                write_error.get_or_insert(e);
            }
        } else {
            changed = true;
            report.rejected += 1;
            report.torn_tail |= !line.terminated;
            let appended = match &mut rejected {
                Some(file) => Ok(file),
                None => OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&rejected_path)
                    .map(|f| rejected.insert(BufWriter::new(f))),
            }
            .and_then(|file| {
                file.write_all(bytes)?;
                file.write_all(b"\n")
            });
            if let Err(e) = appended {
                write_error.get_or_insert(e);
            }
        }
    })
    .map_err(|e| Error::io("read", &path, e))?;
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
    if let Some(file) = rejected {
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
    Ok(report)
}
