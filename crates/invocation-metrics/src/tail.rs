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
    complete: usize,
}

impl FileTail {
    /// A tail of the file at `path` (which need not exist yet).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            buffer: Vec::new(),
            complete: 0,
        }
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads at most `window` bytes from `from` and keeps the complete lines among them. A
    /// file that does not exist is empty.
    pub fn read_from(&mut self, from: u64, window: u64) -> io::Result<NewLines> {
        self.buffer.clear();
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
        let len = file.metadata()?.len();
        if len < from {
            return Ok(NewLines::Shrunk { len });
        }
        if len == from {
            return Ok(NewLines::Nothing);
        }
        file.seek(SeekFrom::Start(from))?;
        file.take((len - from).min(window))
            .read_to_end(&mut self.buffer)?;
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
        &self.buffer[..self.complete]
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
}
