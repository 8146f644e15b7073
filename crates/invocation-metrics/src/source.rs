//! Reading metrics from many places at once — files, metrics directories, directory trees
//! of shards, standard input — de-duplicated by `invocationId` and filtered.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use crate::aggregate::MetricsAccumulator;

use crate::collector::METRICS_FILE_NAME;
use crate::error::{Error, Result};
use crate::journal::{LineProblem, read_records};
use crate::record::{InvocationMetric, Timestamp};

/// One place records are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-` on a command line).
    Stdin,
    /// A metrics file.
    File(PathBuf),
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdin => f.write_str("<stdin>"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Input {
    /// Opens the input for reading, with its size when known.
    pub fn open(&self) -> Result<(Box<dyn Read>, Option<u64>)> {
        match self {
            Self::Stdin => Ok((Box::new(io::stdin().lock()), None)),
            Self::File(path) => {
                let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
                let size = file.metadata().ok().map(|m| m.len());
                Ok((Box::new(file), size))
            }
        }
    }
}

/// Turns command-line paths into inputs: `-` is stdin, a file is itself, a directory is its
/// `invocations.jsonl`, and with `recursive` every `invocations.jsonl` below it (shards).
pub fn resolve_inputs(paths: &[PathBuf], recursive: bool) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let meta = fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
        if !meta.is_dir() {
            inputs.push(Input::File(path.clone()));
        } else if recursive {
            let before = inputs.len();
            find_metrics_files(path, &mut inputs)?;
            if inputs.len() == before {
                return Err(Error::NoMetrics {
                    path: path.clone(),
                    hint: "no invocations.jsonl anywhere below it",
                });
            }
        } else {
            let file = path.join(METRICS_FILE_NAME);
            if !file.is_file() {
                return Err(Error::NoMetrics {
                    path: path.clone(),
                    hint: "it has no invocations.jsonl (use -r to search subdirectories)",
                });
            }
            inputs.push(Input::File(file));
        }
    }
    Ok(inputs)
}

fn find_metrics_files(dir: &Path, found: &mut Vec<Input>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .filter_map(|entry| entry.ok())
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            find_metrics_files(&path, found)?;
        } else if entry.file_name() == METRICS_FILE_NAME {
            found.push(Input::File(path));
        }
    }
    Ok(())
}

/// Which records to keep. Empty lists keep everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Keep records that started at or after this time.
    pub since: Option<Timestamp>,
    /// Keep records that started before this time.
    pub until: Option<Timestamp>,
    /// Keep only these agents.
    pub agents: Vec<String>,
    /// Keep only these phases.
    pub phases: Vec<u32>,
}

impl RecordFilter {
    /// Whether `m` passes the filter.
    pub fn matches(&self, m: &InvocationMetric) -> bool {
        self.since.is_none_or(|t| m.timestamp >= t)
            && self.until.is_none_or(|t| m.timestamp < t)
            && (self.agents.is_empty() || self.agents.contains(&m.agent))
            && (self.phases.is_empty() || self.phases.contains(&m.phase))
    }
}

/// What one input held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputReport {
    /// The input, for messages.
    pub name: String,
    /// Valid records, duplicates and filtered ones included.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Invalid lines, with line numbers.
    pub problems: Vec<LineProblem>,
}

/// What a [`MetricsScan`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanReport {
    /// Per input, in reading order.
    pub inputs: Vec<InputReport>,
    /// Records handed on (unique and matching the filter).
    pub kept: u64,
    /// Records dropped because their `invocationId` was seen before (the first one wins).
    pub duplicates: u64,
    /// Records dropped by the filter.
    pub filtered_out: u64,
}

impl ScanReport {
    /// Invalid lines over all inputs.
    pub fn problem_count(&self) -> u64 {
        self.inputs.iter().map(|i| i.problems.len() as u64).sum()
    }

    /// Valid records over all inputs, before de-duplication and filtering.
    pub fn valid_records(&self) -> u64 {
        self.inputs.iter().map(|i| i.records).sum()
    }
}

/// Reads inputs one after another, handing on each record whose `invocationId` has not
/// been seen in any earlier input and which passes the filter.
///
/// Ids are remembered as 64-bit hashes (8 bytes per record rather than the whole string);
/// two different ids colliding is about as likely as one in 10^12 for ten million records.
///
/// ```
/// use invocation_metrics::{MetricsScan, RecordFilter};
///
/// let line = br#"{"invocationId":"a","agent":"x","phase":1,"durationMs":1,"tokens":1,"cost":0,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-25T10:00:00Z"}"#;
/// let shard = [&line[..], b"\n", &line[..], b"\nnot json\n"].concat();
/// let mut scan = MetricsScan::new(RecordFilter::default());
/// let mut kept = Vec::new();
/// scan.read("shard-1", &shard[..], |m| kept.push(m))?;
/// let report = scan.finish();
/// assert_eq!((kept.len(), report.duplicates, report.problem_count()), (1, 1, 1));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MetricsScan {
    filter: RecordFilter,
    seen: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
    report: ScanReport,
}

impl MetricsScan {
    /// A scan keeping the records `filter` matches.
    pub fn new(filter: RecordFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Reads one input to its end.
    pub fn read(
        &mut self,
        name: &str,
        reader: impl Read,
        mut on_record: impl FnMut(InvocationMetric),
    ) -> io::Result<()> {
        let mut input = InputReport {
            name: name.to_owned(),
            ..InputReport::default()
        };
        let stats = read_records(
            reader,
            |_, metric| {
                if !self.seen.insert(id_hash(&metric.invocation_id)) {
                    self.report.duplicates += 1;
                } else if !self.filter.matches(&metric) {
                    self.report.filtered_out += 1;
                } else {
                    self.report.kept += 1;
                    on_record(metric);
                }
            },
            |problem| input.problems.push(problem),
        )?;
        input.records = stats.records;
        input.bytes = stats.bytes;
        self.report.inputs.push(input);
        Ok(())
    }

    /// Reads one input to its end, adding every unique record that passes the filter to
    /// `into` — the same result as [`read`](Self::read) feeding [`MetricsAccumulator::add`],
    /// computed on all cores: newline-aligned chunks are parsed and aggregated in parallel,
    /// while de-duplication stays in file order.
    pub fn read_into(
        &mut self,
        name: &str,
        reader: impl Read,
        into: &mut MetricsAccumulator,
    ) -> io::Result<()> {
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut input = InputReport {
            name: name.to_owned(),
            ..InputReport::default()
        };
        let filter = Arc::new(self.filter.clone());
        let mut in_flight: VecDeque<mpsc::Receiver<ChunkResult>> = VecDeque::new();
        let mut lines_before = 0u64;
        let mut carry: Vec<u8> = Vec::new();
        let in_flight_limit = rayon::current_num_threads() + 1;
        loop {
            let mut chunk = std::mem::take(&mut carry);
            chunk.reserve_exact(CHUNK_BYTES.saturating_sub(chunk.len()));
            let wanted = (CHUNK_BYTES.saturating_sub(chunk.len())) as u64;
            let eof = (&mut reader).take(wanted).read_to_end(&mut chunk)? < wanted as usize;
            if !eof {
                match memchr::memrchr(b'\n', &chunk) {
                    Some(end) => carry = chunk[end + 1..].to_vec(),
                    // A line longer than a whole chunk: far past the line limit. Send the chunk
                    // on as it is (it reads as one over-long, torn line); skip the rest of the
                    // line here, then report it as one line.
                    None => {
                        let consumed = chunk.len() as u64 + skip_line(&mut reader)?;
                        let (tx, rx) = mpsc::sync_channel(1);
                        let _ = tx.send(ChunkResult::overlong(consumed));
                        in_flight.push_back(rx);
                        chunk.clear();
                    }
                }
            }
            if let Some(end) = (!eof).then(|| chunk.len() - carry.len()) {
                chunk.truncate(end);
            }
            if !chunk.is_empty() {
                let (tx, rx) = mpsc::sync_channel(1);
                let filter = Arc::clone(&filter);
                rayon::spawn(move || {
                    let _ = tx.send(ChunkResult::parse(chunk, &filter));
                });
                in_flight.push_back(rx);
            }
            while in_flight.len() > in_flight_limit || (eof && !in_flight.is_empty()) {
                let Some(rx) = in_flight.pop_front() else {
                    break;
                };
                let result = rx
                    .recv()
                    .map_err(|_| io::Error::other("a parser thread panicked"))?;
                self.absorb(result, &mut lines_before, &mut input, into);
            }
            if eof {
                break;
            }
        }
        self.report.inputs.push(input);
        Ok(())
    }

    /// Folds one chunk's result in, in file order.
    fn absorb(
        &mut self,
        chunk: ChunkResult,
        lines_before: &mut u64,
        input: &mut InputReport,
        into: &mut MetricsAccumulator,
    ) {
        input.records += chunk.hashes.len() as u64;
        input.bytes += chunk.bytes;
        input
            .problems
            .extend(chunk.problems.into_iter().map(|mut p| {
                p.line += *lines_before;
                p
            }));
        *lines_before += chunk.lines;
        let duplicates: Vec<bool> = chunk.hashes.iter().map(|h| !self.seen.insert(*h)).collect();
        let duplicate_count = duplicates.iter().filter(|d| **d).count() as u64;
        self.report.duplicates += duplicate_count;
        if duplicate_count == 0 {
            // The common case: the chunk's own aggregate is exactly right.
            into.merge(&chunk.accumulator);
            self.report.kept += chunk.matched;
            self.report.filtered_out += chunk.hashes.len() as u64 - chunk.matched;
            return;
        }
        // Rare: parse the chunk again, leaving the duplicates out.
        let mut index = 0;
        let _ = read_records(
            &chunk.bytes_read[..],
            |_, m| {
                if !duplicates[index] {
                    if self.filter.matches(&m) {
                        self.report.kept += 1;
                        into.add(&m);
                    } else {
                        self.report.filtered_out += 1;
                    }
                }
                index += 1;
            },
            |_| {},
        );
    }

    /// The counts so far.
    pub fn report(&self) -> &ScanReport {
        &self.report
    }

    /// Ends the scan.
    pub fn finish(self) -> ScanReport {
        self.report
    }
}

/// Bytes handed to a parser thread at a time.
const CHUNK_BYTES: usize = 8 << 20;

fn id_hash(id: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

/// Consumes the rest of the current line, newline included; returns the bytes consumed.
fn skip_line(reader: &mut impl BufRead) -> io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(skipped);
        }
        match memchr::memchr(b'\n', buf) {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(skipped + end as u64 + 1);
            }
            None => {
                let n = buf.len();
                skipped += n as u64;
                reader.consume(n);
            }
        }
    }
}

/// What a parser thread made of one newline-aligned chunk.
struct ChunkResult {
    bytes: u64,
    lines: u64,
    /// The chunk itself, parsed again in the rare case it holds duplicates.
    bytes_read: Vec<u8>,
    /// `invocationId` hashes of its valid records, in order.
    hashes: Vec<u64>,
    /// The aggregate of the records that pass the filter, and how many those are.
    accumulator: MetricsAccumulator,
    matched: u64,
    /// Invalid lines, numbered from the chunk's start.
    problems: Vec<LineProblem>,
}

impl ChunkResult {
    fn parse(chunk: Vec<u8>, filter: &RecordFilter) -> Self {
        let mut result = Self {
            bytes: chunk.len() as u64,
            lines: memchr::memchr_iter(b'\n', &chunk).count() as u64,
            bytes_read: Vec::new(),
            hashes: Vec::new(),
            accumulator: MetricsAccumulator::new(),
            matched: 0,
            problems: Vec::new(),
        };
        let mut problems = Vec::new();
        // Reading a slice cannot fail.
        let _ = read_records(
            &chunk[..],
            |_, m| {
                result.hashes.push(id_hash(&m.invocation_id));
                if filter.matches(&m) {
                    result.accumulator.add(&m);
                    result.matched += 1;
                }
            },
            |p| problems.push(p),
        );
        result.problems = problems;
        result.bytes_read = chunk;
        result
    }

    /// A line too long for any chunk; `consumed` counts its newline, if it had one.
    fn overlong(consumed: u64) -> Self {
        let len = consumed - 1;
        Self {
            bytes: consumed,
            lines: 1,
            bytes_read: Vec::new(),
            hashes: Vec::new(),
            accumulator: MetricsAccumulator::new(),
            matched: 0,
            problems: vec![LineProblem {
                line: 1,
                error: crate::parse::LineError::TooLong { len },
                torn_tail: false,
            }],
        }
    }
}

/// The set already holds hashes; hashing them again would only cost time.
#[derive(Debug, Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
