//! Following a metrics file as a writer appends to it: the complete lines past a position,
//! never a line still being written. One reader for every follower (`export otlp --follow`,
//! `invmetrics watch`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What [`FileTail::read_from`] found past the position it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewLines {
    /// Nothing new, or only the start of a line still being written.
    Nothing,
    /// Complete lines, in [`FileTail::lines`]; the next position is `next`.
    Lines {
        /// The position just past the last complete line read.
        next: u64,
    },
    /// The file is shorter than the position: it was repaired, truncated or replaced.
    Shrunk {
        /// Its length now.
        len: u64,
    },
    /// A whole window of bytes without a newline: no line a writer is finishing. The caller
    /// decides (skip it, or stop).
    NoNewline {
        /// The position past the window.
        next: u64,
    },
    /// Another file now has the path (a repair renames a clean copy over it): positions in
    /// the old one mean nothing in it.
    Replaced,
}

/// Reads the complete lines a file gained past a position, a window at a time, into a
/// buffer it reuses.
///
/// ```
/// use invocation_metrics::{FileTail, NewLines};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("invocations.jsonl");
/// std::fs::write(&path, "{\"a\":1}\n{\"b\":")?;
/// let mut tail = FileTail::new(&path);
/// assert_eq!(tail.read_from(0, 1 << 20)?, NewLines::Lines { next: 8 });
/// assert_eq!(tail.lines(), b"{\"a\":1}\n");
/// // The second line is not finished: nothing yet.
/// assert_eq!(tail.read_from(8, 1 << 20)?, NewLines::Nothing);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    buffer: Vec<u8>,
    /// Where the lines start in `buffer` (past a byte order mark at the file's start).
    start: usize,
    complete: usize,
    /// The file read last (device and inode), to notice another one taking its path.
    identity: Option<(u64, u64)>,
}

impl FileTail {
    /// A tail of the file at `path` (which need not exist yet).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            buffer: Vec::new(),
            start: 0,
            complete: 0,
            identity: None,
        }
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device and inode of the file read last, once one was read.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.identity
    }

    /// Reads at most `window` bytes from `from` and keeps the complete lines among them. A
    /// file that does not exist is empty.
    ///
    /// The first call sees whatever file has the path; later ones say
    /// [`NewLines::Replaced`] once when another file takes it (and then follow that one).
    pub fn read_from(&mut self, from: u64, window: u64) -> io::Result<NewLines> {
        use std::os::unix::fs::MetadataExt;
        self.buffer.clear();
        self.start = 0;
        self.complete = 0;
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(if from > 0 {
                    NewLines::Shrunk { len: 0 }
                } else {
                    NewLines::Nothing
                });
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let identity = (meta.dev(), meta.ino());
        if self
            .identity
            .replace(identity)
            .is_some_and(|seen| seen != identity)
        {
            return Ok(NewLines::Replaced);
        }
        let len = meta.len();
        if len < from {
            return Ok(NewLines::Shrunk { len });
        }
        if len == from {
            return Ok(NewLines::Nothing);
        }
        file.seek(SeekFrom::Start(from))?;
        file.take((len - from).min(window))
            .read_to_end(&mut self.buffer)?;
        // A byte order mark belongs to the file, not to its first line.
        if from == 0 && self.buffer.starts_with("\u{feff}".as_bytes()) {
            self.start = 3;
        }
        match memchr::memrchr(b'\n', &self.buffer) {
            Some(last) => {
                self.complete = last + 1;
                Ok(NewLines::Lines {
                    next: from + self.complete as u64,
                })
            }
            None if self.buffer.len() as u64 >= window => Ok(NewLines::NoNewline {
                next: from + self.buffer.len() as u64,
            }),
            None => Ok(NewLines::Nothing),
        }
    }

    /// The complete lines the last [`read_from`](Self::read_from) found, newlines included.
    pub fn lines(&self) -> &[u8] {
        &self.buffer[self.start.min(self.complete)..self.complete]
    }

    /// Where in the file [`lines`](Self::lines) starts, relative to the position read from
    /// (3 past a byte order mark at the start, else 0).
    pub fn lines_offset(&self) -> u64 {
        self.start.min(self.complete) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_growth_partial_lines_shrinking_and_long_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut tail = FileTail::new(&path);
        assert_eq!(tail.read_from(0, 100).unwrap(), NewLines::Nothing);
        assert_eq!(tail.read_from(5, 100).unwrap(), NewLines::Shrunk { len: 0 });
        std::fs::write(&path, "a\nb\nc").unwrap();
        assert_eq!(tail.read_from(0, 100).unwrap(), NewLines::Lines { next: 4 });
        assert_eq!(tail.lines(), b"a\nb\n");
        // A window that ends inside a line keeps only the lines before it.
        assert_eq!(tail.read_from(0, 3).unwrap(), NewLines::Lines { next: 2 });
        assert_eq!(tail.read_from(4, 100).unwrap(), NewLines::Nothing);
        std::fs::write(&path, "a\n").unwrap();
        assert_eq!(tail.read_from(4, 100).unwrap(), NewLines::Shrunk { len: 2 });
        std::fs::write(&path, "xxxxxxxxxx").unwrap();
        assert_eq!(
            tail.read_from(0, 4).unwrap(),
            NewLines::NoNewline { next: 4 }
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_line_and_a_new_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "\u{feff}a\nb\n").unwrap();
        let mut tail = FileTail::new(&path);
        assert_eq!(tail.read_from(0, 100).unwrap(), NewLines::Lines { next: 7 });
        assert_eq!((tail.lines(), tail.lines_offset()), (&b"a\nb\n"[..], 3));
        // A repair renames a clean copy over the file.
        let copy = dir.path().join("g");
        std::fs::write(&copy, "a\nb\nc\nd\n").unwrap();
        std::fs::rename(&copy, &path).unwrap();
        assert_eq!(tail.read_from(7, 100).unwrap(), NewLines::Replaced);
        assert_eq!(tail.read_from(0, 100).unwrap(), NewLines::Lines { next: 8 });
    }
}
