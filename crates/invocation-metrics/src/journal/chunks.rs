//! Reading an input in newline-aligned chunks that are parsed on every core, with the results
//! handed back in file order — shared by the aggregating scan and `load_from_disk`.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, mpsc};

use crate::parse::LineError;

use super::{BOM, LineProblem};

/// Bytes handed to a parser at a time: big enough that merging a chunk's result is cheap,
/// small enough that the few in flight cost little memory.
const CHUNK_BYTES: usize = 4 << 20;

/// What a chunk parser is handed.
pub(crate) enum Chunk {
    /// Whole lines; the last is unterminated only at the end of the input.
    Lines(Vec<u8>),
    /// One line longer than a whole chunk — far past the line limit — skipped unread.
    Overlong {
        /// Its length, without the newline.
        len: u64,
        /// Whether a newline ended it (if not, it was the input's torn last line).
        terminated: bool,
    },
}

impl Chunk {
    /// Bytes of input the chunk covers.
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Lines(bytes) => bytes.len() as u64,
            Self::Overlong { len, terminated } => len + u64::from(*terminated),
        }
    }

    /// The problem an overlong line is, numbered as the chunk's first line.
    pub fn overlong_problem(len: u64, terminated: bool) -> LineProblem {
        LineProblem {
            line: 1,
            error: LineError::TooLong { len },
            torn_tail: !terminated,
        }
    }
}

/// Reads `reader` to its end in chunks, runs `parse` on each on the rayon pool (a few at a
/// time, so memory stays bounded) and hands the results to `absorb` in file order. `absorb`
/// may hand a chunk's buffer back to be filled again: allocating a fresh one per chunk left
/// the allocator's arenas fragmented, which showed as resident memory.
pub(crate) fn parse_chunks<T: Send + 'static>(
    reader: impl Read,
    parse: impl Fn(Chunk) -> T + Send + Sync + 'static,
    mut absorb: impl FnMut(T) -> Option<Vec<u8>>,
) -> io::Result<()> {
    let parse = Arc::new(parse);
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut in_flight: VecDeque<mpsc::Receiver<T>> = VecDeque::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let in_flight_limit = rayon::current_num_threads() + 1;
    let mut first = true;
    let send = |chunk: Chunk, in_flight: &mut VecDeque<_>| {
        let (tx, rx) = mpsc::sync_channel(1);
        let parse = Arc::clone(&parse);
        rayon::spawn(move || {
            let _ = tx.send(parse(chunk));
        });
        in_flight.push_back(rx);
    };
    loop {
        let mut chunk = spare.pop().unwrap_or_default();
        chunk.clear();
        chunk.extend_from_slice(&carry);
        carry.clear();
        chunk.reserve_exact(CHUNK_BYTES.saturating_sub(chunk.len()));
        let wanted = CHUNK_BYTES.saturating_sub(chunk.len()) as u64;
        let eof = (&mut reader).take(wanted).read_to_end(&mut chunk)? < wanted as usize;
        if std::mem::take(&mut first) && chunk.starts_with(BOM) {
            // The byte order mark a file may start with reads as whitespace, so that the
            // chunk keeps the file's length (offsets and second reads rely on it); chunk
            // parsers, which cannot tell the first chunk, then refuse any other one.
            chunk[..BOM.len()].fill(b' ');
        }
        if !eof {
            match memchr::memrchr(b'\n', &chunk) {
                Some(end) => {
                    carry.extend_from_slice(&chunk[end + 1..]);
                    chunk.truncate(end + 1);
                }
                None => {
                    let (rest, terminated) = skip_line(&mut reader)?;
                    let len = chunk.len() as u64 + rest;
                    chunk.clear();
                    send(Chunk::Overlong { len, terminated }, &mut in_flight);
                }
            }
        }
        if !chunk.is_empty() {
            send(Chunk::Lines(chunk), &mut in_flight);
        }
        while in_flight.len() > in_flight_limit || (eof && !in_flight.is_empty()) {
            let Some(rx) = in_flight.pop_front() else {
                break;
            };
            let result = rx
                .recv()
                .map_err(|_| io::Error::other("a parser thread panicked"))?;
            spare.extend(absorb(result));
        }
        if eof {
            return Ok(());
        }
    }
}

/// Consumes the rest of the current line and its newline; returns the bytes before the
/// newline and whether there was one.
fn skip_line(reader: &mut impl BufRead) -> io::Result<(u64, bool)> {
    let mut skipped = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((skipped, false));
        }
        match memchr::memchr(b'\n', buf) {
            Some(end) => {
                reader.consume(end + 1);
                return Ok((skipped + end as u64, true));
            }
            None => {
                let n = buf.len();
                skipped += n as u64;
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A few chunks at a time are parsed ahead of the one absorbed, never the whole input:
    /// that is what bounds the memory of a read. Results come back in file order.
    #[test]
    fn only_a_few_chunks_are_in_flight_and_results_come_in_order() {
        let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        let input: Vec<u8> = line.repeat(9 * CHUNK_BYTES / line.len());
        let parsed = Arc::new(AtomicUsize::new(0));
        let absorbed = Arc::new(AtomicUsize::new(0));
        let most_ahead = Arc::new(AtomicUsize::new(0));
        let (p, a, m) = (
            Arc::clone(&parsed),
            Arc::clone(&absorbed),
            Arc::clone(&most_ahead),
        );
        let mut order = Vec::new();
        parse_chunks(
            &input[..],
            move |chunk| {
                let n = p.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(n - a.load(Ordering::SeqCst), Ordering::SeqCst);
                (n, chunk.bytes())
            },
            |(n, bytes)| {
                absorbed.fetch_add(1, Ordering::SeqCst);
                order.push((n, bytes));
                None
            },
        )
        .unwrap();
        let chunks = parsed.load(Ordering::SeqCst);
        assert!(chunks >= 9, "{chunks} chunks");
        assert_eq!(
            order.iter().map(|(_, b)| b).sum::<u64>(),
            input.len() as u64
        );
        let limit = rayon::current_num_threads() + 1;
        assert!(
            most_ahead.load(Ordering::SeqCst) <= limit + 2,
            "{} chunks parsed ahead of the reader, limit {limit}",
            most_ahead.load(Ordering::SeqCst)
        );
    }
}
