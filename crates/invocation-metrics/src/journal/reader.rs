//! Streaming a metrics file line by line in bounded memory.

use std::io::{self, BufRead, BufReader, Read};

use crate::parse::{LineError, MAX_LINE_BYTES, parse_line, parse_line_into};
use crate::record::InvocationMetric;

/// A line of a metrics file that is not a valid record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {error}{}", if *.torn_tail { " (unterminated last line: torn write)" } else { "" })]
pub struct LineProblem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub error: LineError,
    /// It is the last line and has no newline: what a crash mid-write leaves behind.
    pub torn_tail: bool,
}

/// Counts from one pass of [`read_records`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Lines seen, blank ones included.
    pub lines: u64,
    /// Valid records.
    pub records: u64,
    /// Invalid lines, the torn tail included.
    pub problems: u64,
    /// Whether the last line was unterminated and invalid.
    pub torn_tail: bool,
    /// Bytes read.
    pub bytes: u64,
}

/// Reads every line of `reader`, calling `on_record` for each valid record and `on_problem`
/// for each invalid line, in file order. Memory stays bounded: a line longer than
/// [`MAX_LINE_BYTES`] is reported without being held.
///
/// ```
/// use invocation_metrics::read_records;
///
/// let file = b"{\"broken\n\n{\"also\":\"broken\"}\n";
/// let mut problems = Vec::new();
/// let stats = read_records(&file[..], |_, _| {}, |p| problems.push(p.line))?;
/// assert_eq!((stats.records, problems), (0, vec![1, 3]));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_records<R: Read>(
    reader: R,
    mut on_record: impl FnMut(u64, InvocationMetric),
    on_problem: impl FnMut(LineProblem),
) -> io::Result<ReadStats> {
    read_lines(
        BufReader::with_capacity(READ_BUFFER_BYTES, reader),
        InputStart::Yes,
        |number, bytes| {
            on_record(number, parse_line(bytes)?);
            Ok(())
        },
        on_problem,
    )
}

/// Like [`read_records`], lending each record instead of handing it over: one record's
/// buffers are reused for every line, so reading allocates nothing per record. It takes a
/// `BufRead` so that a chunk already in memory (`&[u8]`) is read in place, not copied
/// through a buffer.
pub(crate) fn visit_records<B: BufRead>(
    reader: B,
    start: InputStart,
    mut on_record: impl FnMut(u64, &InvocationMetric),
    on_problem: impl FnMut(LineProblem),
) -> io::Result<ReadStats> {
    let mut scratch = InvocationMetric::blank();
    read_lines(
        reader,
        start,
        |number, bytes| {
            parse_line_into(bytes, &mut scratch)?;
            on_record(number, &scratch);
            Ok(())
        },
        on_problem,
    )
}

/// The line loop both readers share: `on_line` parses a non-blank line and hands the record
/// on, or says why the line is not one.
fn read_lines<B: BufRead>(
    reader: B,
    start: InputStart,
    mut on_line: impl FnMut(u64, &[u8]) -> Result<(), LineError>,
    mut on_problem: impl FnMut(LineProblem),
) -> io::Result<ReadStats> {
    let mut stats = ReadStats::default();
    let bytes = for_each_buffered_line(reader, start, |line| {
        stats.lines = line.number;
        let handled = match line.bytes {
            Ok(bytes) if is_blank(bytes) => return,
            Ok(bytes) => on_line(line.number, bytes),
            Err(len) => Err(LineError::TooLong { len }),
        };
        match handled {
            Ok(()) => stats.records += 1,
            Err(error) => {
                stats.problems += 1;
                stats.torn_tail = !line.terminated;
                on_problem(LineProblem {
                    line: line.number,
                    error,
                    torn_tail: !line.terminated,
                });
            }
        }
    })?;
    stats.bytes = bytes;
    Ok(stats)
}

/// Whether a line holds nothing but whitespace (such lines are ignored).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// One raw line of a file, as [`for_each_line`] hands it over.
#[derive(Debug)]
pub struct RawLine<'a> {
    /// 1-based line number.
    pub number: u64,
    /// The line without its `\n`; `Err(len)` for a line longer than [`MAX_LINE_BYTES`],
    /// whose bytes were not kept.
    pub bytes: Result<&'a [u8], u64>,
    /// Whether the line ended with `\n` (only the last line of a file can lack it).
    pub terminated: bool,
}

/// Calls `visit` for every line of `reader` in bounded memory; returns the bytes read.
///
/// A UTF-8 byte order mark at the very start of the input (Windows tools write one) is
/// left out of the first line; anywhere else it stays, and makes its line invalid.
pub fn for_each_line<R: Read>(reader: R, visit: impl FnMut(RawLine<'_>)) -> io::Result<u64> {
    for_each_buffered_line(
        BufReader::with_capacity(READ_BUFFER_BYTES, reader),
        InputStart::Yes,
        visit,
    )
}

/// Whether a reader's input begins at the start of a file or stream (where a byte order
/// mark is allowed) or somewhere inside one (a chunk after the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputStart {
    Yes,
    No,
}

/// The UTF-8 byte order mark.
pub(crate) const BOM: &[u8] = "\u{feff}".as_bytes();

/// How much of a file is read per system call.
pub(crate) const READ_BUFFER_BYTES: usize = 1 << 16;

/// [`for_each_line`] over a reader that buffers itself; lines are handed over in place
/// unless they straddle two of its buffers.
fn for_each_buffered_line<B: BufRead>(
    mut reader: B,
    start: InputStart,
    mut visit: impl FnMut(RawLine<'_>),
) -> io::Result<u64> {
    if start == InputStart::Yes {
        // Counted as read, not handed over: offsets stay those of the file.
        let buf = loop {
            match reader.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if buf.starts_with(BOM) {
            reader.consume(BOM.len());
            return for_each_buffered_line(reader, InputStart::No, visit)
                .map(|bytes| bytes + BOM.len() as u64);
        }
    }
    let mut partial: Vec<u8> = Vec::new();
    // Length of the current line so far once it has outgrown the limit (and been dropped).
    let mut overlong: Option<u64> = None;
    let mut number = 1u64;
    let mut total = 0u64;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let taken = match memchr::memchr(b'\n', chunk) {
            Some(end) => {
                let bytes = if let Some(len) = overlong.take() {
                    Err(len + end as u64)
                } else if partial.is_empty() {
                    Ok(&chunk[..end])
                } else {
                    partial.extend_from_slice(&chunk[..end]);
                    Ok(&partial[..])
                };
                visit(RawLine {
                    number,
                    bytes,
                    terminated: true,
                });
                partial.clear();
                number += 1;
                end + 1
            }
            None => {
                match &mut overlong {
                    Some(len) => *len += chunk.len() as u64,
                    None if partial.len() + chunk.len() > MAX_LINE_BYTES + 1 => {
                        overlong = Some((partial.len() + chunk.len()) as u64);
                        partial = Vec::new();
                    }
                    None => partial.extend_from_slice(chunk),
                }
                chunk.len()
            }
        };
        total += taken as u64;
        reader.consume(taken);
    }
    if let Some(len) = overlong {
        visit(RawLine {
            number,
            bytes: Err(len),
            terminated: false,
        });
    } else if !partial.is_empty() {
        visit(RawLine {
            number,
            bytes: Ok(&partial),
            terminated: false,
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"invocationId":"i1","agent":"a","phase":1,"durationMs":5,"tokens":3,"cost":0.1,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-25T10:00:00Z"}"#;

    fn read(bytes: &[u8]) -> (Vec<u64>, Vec<LineProblem>, ReadStats) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        let stats = read_records(bytes, |n, _| ok.push(n), |p| bad.push(p)).unwrap();
        (ok, bad, stats)
    }

    #[test]
    fn crlf_blank_lines_and_malformed_middle_lines() {
        let file = format!("{GOOD}\r\n\n   \n{{oops}}\n{GOOD}\n");
        let (ok, bad, stats) = read(file.as_bytes());
        assert_eq!(ok, [1, 5]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 4);
        assert!(!bad[0].torn_tail && !stats.torn_tail);
        assert_eq!(stats.bytes, file.len() as u64);
    }

    #[test]
    fn unterminated_last_line_counts_only_when_valid() {
        let (ok, _, stats) = read(format!("{GOOD}\n{GOOD}").as_bytes());
        assert_eq!((ok.len(), stats.torn_tail), (2, false));
        let (ok, bad, stats) = read(format!("{GOOD}\n{}", &GOOD[..40]).as_bytes());
        assert_eq!((ok.len(), bad.len(), stats.torn_tail), (1, 1, true));
        assert!(bad[0].to_string().contains("torn write"));
    }

    /// A valid record padded to `len` bytes with a field readers ignore.
    fn padded(len: usize) -> String {
        let head = &GOOD[..GOOD.len() - 1];
        let pad = len - head.len() - r#","pad":""}"#.len();
        format!(r#"{head},"pad":"{}"}}"#, "x".repeat(pad))
    }

    #[test]
    fn the_line_limit_is_the_same_for_files_and_slices() {
        let longest = padded(MAX_LINE_BYTES);
        let too_long = padded(MAX_LINE_BYTES + 1);
        assert_eq!(
            (longest.len(), too_long.len()),
            (MAX_LINE_BYTES, MAX_LINE_BYTES + 1)
        );
        let file = format!("{GOOD}\n{longest}\n{too_long}\n{GOOD}\n");
        let too_long_at_3 = [(
            3,
            LineError::TooLong {
                len: MAX_LINE_BYTES as u64 + 1,
            },
        )];

        let (ok, bad, _) = read(file.as_bytes());
        assert_eq!(ok, [1, 2, 4]);
        let bad: Vec<_> = bad.into_iter().map(|p| (p.line, p.error)).collect();
        assert_eq!(bad, too_long_at_3);

        // A slice is its own buffer, so there long lines arrive whole; the parser refuses them.
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        visit_records(
            file.as_bytes(),
            InputStart::Yes,
            |n, _| ok.push(n),
            |p| bad.push((p.line, p.error)),
        )
        .unwrap();
        assert_eq!(ok, [1, 2, 4]);
        assert_eq!(bad, too_long_at_3);
    }

    #[test]
    fn overlong_lines_are_skipped_in_bounded_memory() {
        let mut file = format!("{GOOD}\n").into_bytes();
        file.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES * 3));
        file.extend(format!("\n{GOOD}\n").bytes());
        file.extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES + 10));
        let (ok, bad, _) = read(&file);
        assert_eq!(ok, [1, 3]);
        assert_eq!(bad.len(), 2);
        assert_eq!(
            bad[0].error,
            LineError::TooLong {
                len: MAX_LINE_BYTES as u64 * 3
            }
        );
        assert!(bad[1].torn_tail);
    }

    /// A reader that is interrupted (EINTR) before each piece it hands over, then fails
    /// with `fail` once its pieces are gone (or ends).
    struct Flaky {
        pieces: Vec<&'static [u8]>,
        interrupt: bool,
        fail: Option<io::ErrorKind>,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let interrupt = self.interrupt;
            self.interrupt = !interrupt;
            if interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            match self.pieces.first() {
                Some(piece) => {
                    let n = piece.len().min(buf.len());
                    buf[..n].copy_from_slice(&piece[..n]);
                    self.pieces.remove(0);
                    Ok(n)
                }
                None => match self.fail {
                    Some(kind) => Err(kind.into()),
                    None => Ok(0),
                },
            }
        }
    }

    #[test]
    fn interrupted_reads_are_retried_and_other_errors_end_the_read() {
        let mut lines = Vec::new();
        let flaky = Flaky {
            pieces: vec![b"\xef\xbb\xbfa\nb", b"c\n"],
            interrupt: true,
            fail: None,
        };
        // The byte order mark counts as read but is not part of the first line.
        let bytes = for_each_line(flaky, |line| lines.push(line.bytes.unwrap().to_vec())).unwrap();
        assert_eq!(bytes, 8);
        assert_eq!(lines, [b"a".to_vec(), b"bc".to_vec()]);

        let broken = Flaky {
            pieces: vec![b"a\n"],
            interrupt: true,
            fail: Some(io::ErrorKind::Other),
        };
        let err = for_each_line(broken, |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        // Failing at the very first read (where a byte order mark is looked for) too.
        let broken_at_once = Flaky {
            pieces: vec![],
            interrupt: true,
            fail: Some(io::ErrorKind::PermissionDenied),
        };
        let err = for_each_line(broken_at_once, |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    /// A line far past the limit is not held in memory: it is handed over as its length
    /// only, however many buffers it spans, and the next line reads normally.
    #[test]
    fn an_overlong_line_is_measured_not_kept() {
        let long = crate::parse::MAX_LINE_BYTES + 200_000;
        let mut input = vec![b'x'; long];
        input.extend_from_slice(b"\nok\n");
        let mut seen = Vec::new();
        for_each_line(&input[..], |line| {
            seen.push(line.bytes.map(|b| b.to_vec()).map_err(|len| len as usize))
        })
        .unwrap();
        assert_eq!(seen, [Err(long), Ok(b"ok".to_vec())]);
    }
}
