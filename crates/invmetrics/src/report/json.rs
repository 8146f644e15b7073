//! The JSON report, `{"metrics": [every record], "aggregate": {…}}`, pretty-printed exactly
//! as serde_json would print that object, but written as it is read: a first pass computes
//! the aggregate, a second serializes the records straight to the output — on every core,
//! chunk by chunk in input order, unless ids repeat (then one record after another, which
//! leaves the repeats out as it goes).

use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender};

use anyhow::{Context, Result};
use invocation_metrics::{
    AggregateOptions, InvocationMetric, MetricsAccumulator, RecordFilter, RecordFold,
};
use serde::Serialize;

use crate::args::ReportArgs;
use crate::input::{self, ReadAgain};

/// Serialized records are kept in blocks of about this size: a chunk's output grown as one
/// buffer was copied at every doubling and left the allocator's arenas fragmented (twice the
/// resident memory).
const BLOCK_BYTES: usize = 256 << 10;
/// Blocks the total hands over at a time, at most.
const HANDOFF_BLOCKS: usize = 4;
/// Hand-overs in flight between the parsers and the writer.
const HANDOFFS_IN_FLIGHT: usize = 1;

/// Writes the JSON report of `args`' inputs to `out`.
pub fn write(args: &ReportArgs, options: &AggregateOptions, out: &mut dyn Write) -> Result<()> {
    let (accumulator, scan, inputs) = input::fold_remembering(
        &args.input,
        args.aggregate.filter(),
        false,
        MetricsAccumulator::spilling,
        MetricsAccumulator::new,
    )?;
    input::require_records(&scan)?;
    let aggregate = accumulator
        .try_into_aggregate(options)
        .context("cannot compute the aggregate")?;
    input::warn_if_buckets_widened(options, &aggregate);

    let mut out = io::BufWriter::new(out);
    let filter = args.aggregate.filter();
    document(&mut out, &aggregate, |out, elements| {
        if scan.duplicates == 0 {
            records_in_parallel(inputs, filter, out, elements)
        } else {
            // The parallel fold would find the repeats only after writing them.
            records_in_order(inputs, filter, out, elements)
        }
    })?;
    out.flush().context(CANNOT_WRITE)?;
    Ok(())
}

/// What an error writing the output is said to be (reading errors name their input).
const CANNOT_WRITE: &str = "cannot write the report";

/// The report's text around its records, which `records` writes as array elements.
fn document<W: Write>(
    out: &mut W,
    aggregate: &impl Serialize,
    records: impl FnOnce(&mut W, &mut Elements) -> Result<()>,
) -> Result<()> {
    out.write_all(b"{\n  \"metrics\": [")
        .context(CANNOT_WRITE)?;
    let mut elements = Elements::default();
    records(out, &mut elements)?;
    let end = if elements.written { "\n  ]" } else { "]" };
    write!(out, "{end},\n  \"aggregate\": ").context(CANNOT_WRITE)?;
    serde_json::to_writer_pretty(Indented::new(&mut *out, 1), aggregate).context(CANNOT_WRITE)?;
    out.write_all(b"\n}\n").context(CANNOT_WRITE)?;
    Ok(())
}

/// Reads the inputs again one record after another, writing each as it comes.
fn records_in_order(
    inputs: ReadAgain,
    filter: RecordFilter,
    out: &mut impl Write,
    elements: &mut Elements,
) -> Result<()> {
    let mut failed = None;
    let (mut element, mut scratch) = (Vec::new(), Vec::new());
    inputs.scan(filter, |m| {
        if failed.is_none() {
            element.clear();
            push_element(&mut element, m, &mut scratch);
            failed = elements.write(out, &element).err();
        }
    })?;
    match failed {
        Some(e) => Err(anyhow::Error::new(e).context(CANNOT_WRITE)),
        None => Ok(()),
    }
}

/// Folds the inputs again on every core; each chunk's records become array elements there,
/// and this thread writes them in input order as they come.
fn records_in_parallel(
    inputs: ReadAgain,
    filter: RecordFilter,
    out: &mut impl Write,
    elements: &mut Elements,
) -> Result<()> {
    let (sink, handed) = mpsc::sync_channel::<Vec<Vec<u8>>>(HANDOFFS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let folding = scope.spawn(move || {
            let mut total = inputs.fold(
                filter,
                move || ElementsFold::writing_to(sink.clone()),
                ElementsFold::default,
            )?;
            total.hand_over();
            anyhow::Ok(())
        });
        let mut written = Ok(());
        for blocks in handed {
            written = blocks
                .iter()
                .try_for_each(|block| elements.write(out, block));
            if written.is_err() {
                // Dropping the receiver makes every later hand-over fail quietly; the fold
                // runs to its end and the write error is reported.
                break;
            }
        }
        let folded = folding
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a report thread panicked")));
        written.context(CANNOT_WRITE)?;
        folded
    })
}

/// Array elements, each `,\n    {…record…}` with the comma dropped from the first.
#[derive(Default)]
struct Elements {
    written: bool,
}

impl Elements {
    fn write(&mut self, out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
        let bytes = match (self.written, bytes) {
            (_, []) => return Ok(()),
            (false, [_comma, rest @ ..]) => rest,
            (true, bytes) => bytes,
        };
        self.written = true;
        out.write_all(bytes)
    }
}

/// Appends `m` as an element of the metrics array: a comma, then the record as serde_json
/// pretty-prints it two levels deep. `scratch` is any buffer, reused between calls.
fn push_element(bytes: &mut Vec<u8>, m: &InvocationMetric, scratch: &mut Vec<u8>) {
    scratch.clear();
    // Serializing a record into memory cannot fail.
    let _ = serde_json::to_writer_pretty(&mut *scratch, m);
    bytes.extend_from_slice(b",\n    ");
    let mut line_start = 0;
    for newline in memchr::memchr_iter(b'\n', scratch) {
        bytes.extend_from_slice(&scratch[line_start..=newline]);
        bytes.extend_from_slice(b"    ");
        line_start = newline + 1;
    }
    bytes.extend_from_slice(&scratch[line_start..]);
}

/// The records of one chunk, serialized as array elements; the total hands each chunk's
/// bytes to the writing thread as chunks are merged in input order.
#[derive(Default)]
struct ElementsFold {
    blocks: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    sink: Option<SyncSender<Vec<Vec<u8>>>>,
}

impl ElementsFold {
    fn writing_to(sink: SyncSender<Vec<Vec<u8>>>) -> Self {
        Self {
            sink: Some(sink),
            ..Self::default()
        }
    }

    /// Sends what this fold holds to the writing thread (the total only).
    fn hand_over(&mut self) {
        if let Some(sink) = &self.sink
            && !self.blocks.is_empty()
        {
            // A failed send means the writer stopped on an error it reports itself.
            let _ = sink.send(std::mem::take(&mut self.blocks));
        }
    }
}

impl RecordFold for ElementsFold {
    fn add(&mut self, m: &InvocationMetric, _: u64) {
        let block = match self.blocks.last_mut() {
            Some(block) if block.len() < BLOCK_BYTES => block,
            _ => {
                if self.blocks.len() >= HANDOFF_BLOCKS {
                    self.hand_over();
                }
                self.blocks
                    .push(Vec::with_capacity(BLOCK_BYTES + (4 << 10)));
                self.blocks.last_mut().expect("just pushed")
            }
        };
        push_element(block, m, &mut self.scratch);
    }

    fn merge(&mut self, later: Self, _: u64) {
        self.hand_over();
        if let Some(sink) = &self.sink
            && !later.blocks.is_empty()
        {
            let _ = sink.send(later.blocks);
        }
    }
}

/// Passes JSON through, indenting every line after the first by `level` more steps of two
/// spaces: how serde_json's pretty printer would have printed the value that deep. (JSON
/// strings cannot hold a raw newline, so every newline is the printer's.)
struct Indented<W> {
    out: W,
    indent: &'static [u8],
}

impl<W: Write> Indented<W> {
    fn new(out: W, level: usize) -> Self {
        const SPACES: &[u8] = b"        ";
        Self {
            out,
            indent: &SPACES[..(2 * level).min(SPACES.len())],
        }
    }
}

impl<W: Write> Write for Indented<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for (i, line) in buf.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                self.out.write_all(b"\n")?;
                self.out.write_all(self.indent)?;
            }
            self.out.write_all(line)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the report was before it was written by hand: serde_json's pretty print of the
    /// whole object.
    #[derive(Serialize)]
    struct Whole<'a, A: Serialize> {
        metrics: &'a [InvocationMetric],
        aggregate: &'a A,
    }

    fn by_hand<A: Serialize>(records: &[InvocationMetric], aggregate: &A) -> Vec<u8> {
        let mut out = Vec::new();
        document(&mut out, aggregate, |out, elements| {
            for m in records {
                let mut element = Vec::new();
                push_element(&mut element, m, &mut Vec::new());
                elements.write(out, &element)?;
            }
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn written_by_hand_exactly_as_serde_json_prints_the_whole() {
        let line = r#"{"invocationId":"i1","agent":"a \"quoted\"\nline","phase":1,"taskId":"t","durationMs":5,"tokens":3,"inputTokens":2,"cost":0.1,"exitCode":-2,"success":false,"attempt":2,"outputParsed":true,"model":"m","timestamp":"2026-11-25T10:00:00.5+01:00","errorClass":"timeout"}"#;
        let record = invocation_metrics::parse_line(line.as_bytes()).unwrap();
        let mut other = record.clone();
        other.invocation_id = "i2".into();
        other.model = None;
        let records = [record, other];
        let aggregate: MetricsAccumulator = records.iter().collect();
        let aggregate = aggregate.finish(&AggregateOptions::default());
        for n in 0..=records.len() {
            let whole = Whole {
                metrics: &records[..n],
                aggregate: &aggregate,
            };
            let mut expected = serde_json::to_vec_pretty(&whole).unwrap();
            expected.push(b'\n');
            assert_eq!(
                String::from_utf8(by_hand(&records[..n], &aggregate)).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{n} records"
            );
        }
    }
}
