//! Reading metrics from many places at once — files, metrics directories, directory trees
//! of shards, standard input — de-duplicated by `invocationId` and filtered.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::aggregate::MetricsAccumulator;
use crate::aggregate::log::SortedLog;

use crate::collector::METRICS_FILE_NAME;
use crate::error::{Error, Result};
use crate::hashing::IdentityBuild;
use crate::journal::{
    Chunk, InputStart, LineProblem, READ_BUFFER_BYTES, parse_chunks, visit_records,
};
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
            check_readable_kind(path, &meta)?;
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
            match fs::metadata(&file) {
                Ok(meta) if meta.is_dir() => {
                    return Err(Error::NotAFile {
                        path: file,
                        kind: "a directory",
                        hint: "not a metrics file; a metrics directory holds invocations.jsonl as a file",
                    });
                }
                Ok(meta) => check_readable_kind(&file, &meta)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::NoMetrics {
                        path: path.clone(),
                        hint: "it has no invocations.jsonl (use -r to search subdirectories)",
                    });
                }
                Err(e) => return Err(Error::io("read", &file, e)),
            }
            inputs.push(Input::File(file));
        }
    }
    Ok(inputs)
}

/// Refuses what a reader must not open as a metrics file: a device never ends
/// (`/dev/zero`) or is not data, a socket cannot be opened. Regular files and pipes (a
/// shell's `<(…)`) are read.
fn check_readable_kind(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let file_type = meta.file_type();
    if file_type.is_char_device() || file_type.is_block_device() || file_type.is_socket() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
            kind: crate::repair::file_kind(meta),
            hint: "not a metrics file; give a metrics file, a metrics directory, or - for stdin",
        });
    }
    Ok(())
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
            let meta = fs::metadata(&path).map_err(|e| Error::io("read", &path, e))?;
            check_readable_kind(&path, &meta)?;
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
    seen: HashSet<u64, IdentityBuild>,
    report: ScanReport,
    /// Per-record state kept in memory before spilling; `None`: the default, 8 MB.
    memory_budget: Option<usize>,
    /// Keep records whose id was seen before (see [`keep_duplicates`](Self::keep_duplicates)).
    keep_duplicates: bool,
}

impl MetricsScan {
    /// A scan keeping the records `filter` matches.
    pub fn new(filter: RecordFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Sets how many bytes of each kind of per-record state
    /// [`aggregate_inputs`](Self::aggregate_inputs) keeps in memory before spilling it to a
    /// temporary file (default 8 MB; see [`MetricsAccumulator::spilling`]). Lower means less
    /// memory and more temporary-file traffic; the result is the same.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// With `true`, keeps every valid record, also those whose `invocationId` was seen before
    /// (no de-duplication; [`ScanReport::duplicates`] stays 0). For files known to reuse ids
    /// on purpose, or to see what de-duplication changes.
    pub fn keep_duplicates(mut self, keep: bool) -> Self {
        self.keep_duplicates = keep;
        self
    }

    /// Hands on a group's records that are neither repeats nor filtered out, and empties it.
    /// The ids go into the set first, all together: inserted one at a time, between records,
    /// each missed the cache and the TLB (a fifth of an export's CPU); in one tight loop the
    /// misses overlap.
    fn settle(&mut self, group: &mut Group, on_record: &mut impl FnMut(&InvocationMetric)) {
        let Group {
            records,
            hashes,
            fresh,
            len,
        } = group;
        fresh.clear();
        if self.keep_duplicates {
            fresh.resize(*len, true);
        } else {
            fresh.extend(hashes[..*len].iter().map(|h| self.seen.insert(*h)));
        }
        for (metric, fresh) in records[..*len].iter().zip(fresh.iter()) {
            if !fresh {
                self.report.duplicates += 1;
            } else if !self.filter.matches(metric) {
                self.report.filtered_out += 1;
            } else {
                self.report.kept += 1;
                on_record(metric);
            }
        }
        *len = 0;
    }

    fn memory_budget(&self) -> usize {
        self.memory_budget
            .unwrap_or(crate::aggregate::log::DEFAULT_SPILL_BUDGET_BYTES)
    }

    /// Reads one input to its end, handing each unique record that passes the filter to
    /// `on_record`, in input order.
    pub fn read(
        &mut self,
        name: &str,
        reader: impl Read,
        mut on_record: impl FnMut(InvocationMetric),
    ) -> io::Result<()> {
        self.visit(name, reader, |m| on_record(m.clone()))
    }

    /// Like [`read`](Self::read), lending each record instead of handing it over: a few dozen
    /// records' buffers serve every line, so a reader that keeps few records allocates
    /// nothing per line. Records are handed on in groups of up to 64, in order (their ids go
    /// into the de-duplication set together); every one read is handed on before this
    /// returns, also when the input fails.
    pub fn visit(
        &mut self,
        name: &str,
        reader: impl Read,
        mut on_record: impl FnMut(&InvocationMetric),
    ) -> io::Result<()> {
        let mut input = InputReport {
            name: name.to_owned(),
            ..InputReport::default()
        };
        let mut group = Group::default();
        let stats = visit_records(
            BufReader::with_capacity(READ_BUFFER_BYTES, reader),
            InputStart::Yes,
            |_, metric| {
                if group.push(metric) {
                    self.settle(&mut group, &mut on_record);
                }
            },
            |problem| input.problems.push(problem),
        );
        // What was read before a failure is handed on too, as it would have been at once.
        self.settle(&mut group, &mut on_record);
        let stats = stats?;
        input.records = stats.records;
        input.bytes = stats.bytes;
        self.report.inputs.push(input);
        Ok(())
    }

    /// Reads every input to its end and returns the accumulator of every unique record that
    /// passes the filter — the same result as [`read`](Self::read) feeding
    /// [`MetricsAccumulator::add`], computed on all cores and in bounded memory. `open` opens an input for reading (the
    /// place to wrap it in a progress bar); it may be called twice per input, see below.
    ///
    /// Newline-aligned chunks are parsed and aggregated in parallel and merged into a
    /// [`MetricsAccumulator::spilling`] accumulator (each worker thread keeps its groups'
    /// running totals across chunks while they are few, see [`RecordFold::ORDER_FREE`]).
    /// De-duplication is deferred so that
    /// it needs no table of every id in memory: each record's id hash and position go to a
    /// sorted log (spilled like the accumulator's state), and after the last input the log
    /// says which records repeat an earlier id. Usually none do, and the one pass is the
    /// answer. If some do, the files are read a second time — only as far as the first pass
    /// read them, so a writer still appending changes nothing — leaving those records out.
    /// Standard input cannot be read twice: with `-` among the inputs, ids are remembered in
    /// memory instead (8 bytes per record) and duplicates are left out as they are met.
    ///
    /// ```
    /// use invocation_metrics::{Input, MetricsScan, RecordFilter};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let line = r#"{"invocationId":"a","agent":"x","phase":1,"durationMs":1,"tokens":1,"cost":0,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-25T10:00:00Z"}"#;
    /// let path = dir.path().join("shard.jsonl");
    /// std::fs::write(&path, format!("{line}\n{line}\nnot json\n"))?;
    ///
    /// let mut scan = MetricsScan::new(RecordFilter::default());
    /// let total = scan.aggregate_inputs(&[Input::File(path)], |input| Ok(input.open()?.0))?;
    /// let report = scan.finish();
    /// assert_eq!((total.count(), report.duplicates, report.problem_count()), (1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aggregate_inputs(
        &mut self,
        inputs: &[Input],
        open: impl FnMut(&Input) -> Result<Box<dyn Read>>,
    ) -> Result<MetricsAccumulator> {
        let budget = self.memory_budget();
        self.fold_inputs(
            inputs,
            open,
            || MetricsAccumulator::spilling_within(budget),
            MetricsAccumulator::new,
        )
    }

    /// Like [`aggregate_inputs`](Self::aggregate_inputs), for any [`RecordFold`]: each chunk
    /// is folded into its own `new_chunk()` on a worker thread, and the chunks are merged in
    /// input order into `new_total()` (made again if the inputs must be read a second time to
    /// leave out repeated ids). An [order-free](RecordFold::ORDER_FREE) fold is instead made
    /// once per worker thread with `new_chunk()` and folds every chunk that worker parses;
    /// after each chunk, what [`RecordFold::hand_back`] gives is merged into the total, and
    /// what is left at the end — except where a chunk may have to be folded again without
    /// its repeated ids (standard input among the inputs, and the second read). The same
    /// de-duplication, filter and counts as [`visit`](Self::visit) reading the inputs one
    /// after another.
    pub fn fold_inputs<F: RecordFold>(
        &mut self,
        inputs: &[Input],
        mut open: impl FnMut(&Input) -> Result<Box<dyn Read>>,
        new_total: impl Fn() -> F,
        new_chunk: impl Fn() -> F + Send + Sync + 'static,
    ) -> Result<F> {
        let new_chunk = Arc::new(new_chunk);
        let mut first = new_total();
        let mut dedup = if self.keep_duplicates {
            Dedup::Off
        } else if inputs.contains(&Input::Stdin) {
            Dedup::InMemory
        } else {
            Dedup::Deferred {
                ids: SortedLog::spilling(self.memory_budget()),
                next_index: 0,
            }
        };
        // Where no chunk's fold can be dropped for holding a repeated id (every record is
        // kept, or repeats are left out by a second pass), an order-free fold is kept per
        // worker instead of per chunk.
        let workers = (F::ORDER_FREE && matches!(dedup, Dedup::Off | Dedup::Deferred { .. }))
            .then(|| Arc::new(WorkerFolds::new()));
        let mut read_bytes = Vec::with_capacity(inputs.len());
        let mut position = 0;
        for input in inputs {
            let report = self.read_chunks(
                input,
                open(input)?,
                &new_chunk,
                workers.as_ref(),
                &mut position,
                &mut dedup,
                &mut first,
            )?;
            read_bytes.push(report.bytes);
            self.report.inputs.push(report);
        }
        let budget = self.memory_budget();
        let settle = |first: &mut F| {
            if let Some(workers) = workers {
                workers.merge_into(first);
            }
            first.settle();
        };
        let Dedup::Deferred { ids, .. } = dedup else {
            settle(&mut first);
            return Ok(first);
        };
        // Looking for repeated ids and merging the workers' folds each take tens of
        // milliseconds at a million records, and need nothing of each other: one core each.
        let (skip, ()) = rayon::join(
            || repeated_positions(&ids, SortedLog::spilling(budget)),
            || settle(&mut first),
        );
        if let Some(error) = ids.read_error().or_else(|| skip.read_error()) {
            return Err(Error::io("read", "the spill file", io::Error::other(error)));
        }
        if skip.len() == 0 {
            return Ok(first);
        }
        // Second pass, leaving out the repeats. Counts of records and damaged lines are the
        // first pass's; only what depends on the repeats is counted again.
        drop(first);
        let mut second = new_total();
        let mut dedup = Dedup::Skip {
            positions: (Box::new(skip.iter_sorted()) as Box<dyn Iterator<Item = u64>>).peekable(),
            next_index: 0,
        };
        (self.report.kept, self.report.filtered_out) = (0, 0);
        let mut position = 0;
        for (input, bytes) in inputs.iter().zip(read_bytes) {
            let reader = open(input)?.take(bytes);
            self.read_chunks(
                input,
                Box::new(reader),
                &new_chunk,
                None,
                &mut position,
                &mut dedup,
                &mut second,
            )?;
        }
        second.settle();
        Ok(second)
    }

    /// Reads one input in newline-aligned chunks folded on the rayon pool, merging each
    /// chunk's fold into `into` in input order — or, given `workers`, into the worker's own
    /// fold. `position` counts the valid records before.
    #[allow(clippy::too_many_arguments)]
    fn read_chunks<F: RecordFold>(
        &mut self,
        input: &Input,
        reader: Box<dyn Read + '_>,
        new_chunk: &Arc<impl Fn() -> F + Send + Sync + 'static>,
        workers: Option<&Arc<WorkerFolds<F>>>,
        position: &mut u64,
        dedup: &mut Dedup<'_>,
        into: &mut F,
    ) -> Result<InputReport> {
        let name = input.to_string();
        let mut report = InputReport {
            name: name.clone(),
            ..InputReport::default()
        };
        let filter = Arc::new(self.filter.clone());
        let new_chunk = Arc::clone(new_chunk);
        let workers = workers.map(Arc::clone);
        let mut lines_before = 0u64;
        parse_chunks(
            reader,
            move |chunk| ChunkResult::parse_for(chunk, &filter, &*new_chunk, workers.as_deref()),
            |result| {
                Some(self.absorb(
                    result,
                    &mut lines_before,
                    position,
                    &mut report,
                    dedup,
                    into,
                ))
            },
        )
        .map_err(|e| Error::io("read", name, e))?;
        Ok(report)
    }

    /// Folds one chunk's result in, in input order, and hands back its buffer.
    fn absorb<F: RecordFold>(
        &mut self,
        chunk: ChunkResult<F>,
        lines_before: &mut u64,
        position: &mut u64,
        input: &mut InputReport,
        dedup: &mut Dedup<'_>,
        into: &mut F,
    ) -> Vec<u8> {
        let offset = *position;
        *position += chunk.hashes.len() as u64;
        input.records += chunk.hashes.len() as u64;
        input.bytes += chunk.bytes;
        input
            .problems
            .extend(chunk.problems.into_iter().map(|mut p| {
                p.line += *lines_before;
                p
            }));
        *lines_before += chunk.lines;
        let duplicates = dedup.repeats(&chunk.hashes, &mut self.seen);
        let duplicate_count = duplicates.iter().filter(|d| **d).count() as u64;
        self.report.duplicates += duplicate_count;
        if duplicate_count == 0 {
            // The common case: the chunk's own fold is exactly right.
            if let Some(fold) = chunk.fold {
                into.merge(fold, offset);
            }
            self.report.kept += chunk.matched;
            self.report.filtered_out += chunk.hashes.len() as u64 - chunk.matched;
            return chunk.bytes_read;
        }
        // Rare: parse the chunk again, leaving the duplicates out. (Only chunks with a fold
        // of their own can hold repeats: see `fold_inputs`.)
        debug_assert!(chunk.fold.is_some());
        let mut index = 0;
        let _ = visit_records(
            &chunk.bytes_read[..],
            InputStart::No,
            |_, m| {
                if !duplicates[index] {
                    if self.filter.matches(m) {
                        self.report.kept += 1;
                        into.add(m, offset + index as u64);
                    } else {
                        self.report.filtered_out += 1;
                    }
                }
                index += 1;
            },
            |_| {},
        );
        chunk.bytes_read
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

/// How [`MetricsScan::aggregate_inputs`] tells repeated ids.
enum Dedup<'a> {
    /// Keep every record.
    Off,
    /// Remember every id hash in the scan's set; repeats are known at once.
    InMemory,
    /// First pass: log `(id hash, position)` of every valid record; repeats are found later.
    Deferred {
        ids: SortedLog<u128>,
        next_index: u64,
    },
    /// Second pass: leave out the records at these positions (ascending).
    Skip {
        positions: std::iter::Peekable<Box<dyn Iterator<Item = u64> + 'a>>,
        next_index: u64,
    },
}

impl Dedup<'_> {
    /// For each of a chunk's records, in file order, whether it repeats an earlier id.
    fn repeats(&mut self, hashes: &[u64], seen: &mut HashSet<u64, IdentityBuild>) -> Vec<bool> {
        match self {
            Self::Off => vec![false; hashes.len()],
            Self::InMemory => hashes.iter().map(|h| !seen.insert(*h)).collect(),
            Self::Deferred { ids, next_index } => {
                for hash in hashes {
                    ids.push(u128::from(*hash) << 64 | u128::from(*next_index));
                    *next_index += 1;
                }
                vec![false; hashes.len()]
            }
            Self::Skip {
                positions,
                next_index,
            } => {
                let mut repeats = vec![false; hashes.len()];
                let end = *next_index + hashes.len() as u64;
                while let Some(at) = positions.next_if(|p| *p < end) {
                    repeats[(at - *next_index) as usize] = true;
                }
                *next_index = end;
                repeats
            }
        }
    }
}

/// Records read by [`MetricsScan::visit`] and not yet handed on, with their id hashes; the
/// records' buffers are reused group after group.
#[derive(Default)]
struct Group {
    records: Vec<InvocationMetric>,
    hashes: Vec<u64>,
    /// Per record, whether its id is new (scratch for [`MetricsScan::settle`]).
    fresh: Vec<bool>,
    len: usize,
}

impl Group {
    /// How many records wait to be settled together.
    const SIZE: usize = 64;

    /// Adds a copy of `metric`; whether the group is now full.
    fn push(&mut self, metric: &InvocationMetric) -> bool {
        match self.records.get_mut(self.len) {
            Some(slot) => slot.clone_from(metric),
            None => self.records.push(metric.clone()),
        }
        self.hashes.truncate(self.len);
        self.hashes.push(id_hash(&metric.invocation_id));
        self.len += 1;
        self.len == Self::SIZE
    }
}

/// Positions of the records whose id hash appeared at an earlier position, ascending.
fn repeated_positions(ids: &SortedLog<u128>, mut repeats: SortedLog<u64>) -> SortedLog<u64> {
    let mut previous_hash = None;
    // Sorted by hash, then position: the first of each hash is its first occurrence.
    for key in ids.iter_sorted() {
        let (hash, position) = ((key >> 64) as u64, key as u64);
        if previous_hash == Some(hash) {
            repeats.push(position);
        }
        previous_hash = Some(hash);
    }
    repeats
}

fn id_hash(id: &str) -> u64 {
    crate::hashing::hash64(id)
}

/// A computation over records that runs on every core: each newline-aligned chunk of input
/// is folded into its own value on a worker thread, and the values are merged in input order
/// ([`MetricsScan::fold_inputs`]) — or, for an [order-free](Self::ORDER_FREE) fold, into one
/// value per worker thread, of which [`hand_back`](Self::hand_back) says what goes to the
/// total after each chunk. [`MetricsAccumulator`] is one of those.
pub trait RecordFold: Send + Sized + 'static {
    /// Folds in one record. `index` numbers the valid records of what this value covers from
    /// 0 — records left out as repeats or by the filter count too — so that, with the offset
    /// [`merge`](Self::merge) is given, it places the record among all the inputs.
    fn add(&mut self, m: &InvocationMetric, index: u64);
    /// Appends `later`, which folded the records that follow, from position `offset` on.
    fn merge(&mut self, later: Self, offset: u64);

    /// Whether the fold is the same whatever order records are added and values merged in,
    /// `index` and `offset` unused (as for [`MetricsAccumulator`]). Such a fold may be kept
    /// per worker thread, folding every chunk that worker parses, with
    /// [`hand_back`](Self::hand_back) deciding after each chunk what goes to the total at
    /// once: far less merging when records fall into thousands of groups.
    const ORDER_FREE: bool = false;

    /// For an [order-free](Self::ORDER_FREE) fold kept by a worker thread: called after each
    /// chunk it folds, returns the part to merge into the total now, leaving in `self` what
    /// is worth folding on into (state that is bounded, and costly to merge often). The
    /// worker's memory is what this leaves, so it must not grow with the input. The default
    /// keeps everything, which suits a fold whose state is bounded (counts, sums).
    fn hand_back(&mut self) -> Option<Self> {
        None
    }

    /// Called once every record is in and every value merged, before the value is handed
    /// back: the place to sort or index what reading the result needs. After a first read
    /// it runs on one core while the scan looks for repeated ids on another (if some
    /// repeat, that value is dropped, the inputs are read again, and the second read's value
    /// is settled in turn). The default does nothing.
    fn settle(&mut self) {}
}

/// Keeps nothing: for a scan that only counts records and finds damaged lines.
impl RecordFold for () {
    fn add(&mut self, _: &InvocationMetric, _: u64) {}

    fn merge(&mut self, _: Self, _: u64) {}
}

impl RecordFold for MetricsAccumulator {
    fn add(&mut self, m: &InvocationMetric, _: u64) {
        MetricsAccumulator::add(self, m);
    }

    fn merge(&mut self, later: Self, _: u64) {
        self.absorb(later);
    }

    const ORDER_FREE: bool = true;

    fn hand_back(&mut self) -> Option<Self> {
        Some(self.hand_back_all_but_groups())
    }

    fn settle(&mut self) {
        self.sort_pending();
    }
}

/// One fold per worker thread of the pool, for an [order-free](RecordFold::ORDER_FREE) fold:
/// a worker folds every chunk it parses into its own value, handing back part of it after
/// each chunk.
struct WorkerFolds<F>(Vec<Mutex<Option<F>>>);

impl<F: RecordFold> WorkerFolds<F> {
    fn new() -> Self {
        Self(
            (0..rayon::current_num_threads().max(1))
                .map(|_| Mutex::new(None))
                .collect(),
        )
    }

    /// Runs `work` on the calling worker's fold, made by `new_fold` at its first use. Each
    /// worker has a slot of its own, so the lock is never contended; it only makes sharing
    /// the slots safe whatever thread calls.
    fn with<R>(&self, new_fold: impl FnOnce() -> F, work: impl FnOnce(&mut F) -> R) -> R {
        let slot = rayon::current_thread_index().unwrap_or(0) % self.0.len();
        let mut fold = self.0[slot].lock().unwrap_or_else(|e| e.into_inner());
        work(fold.get_or_insert_with(new_fold))
    }

    /// The workers' folds, all merged into `into`.
    fn merge_into(&self, into: &mut F) {
        for slot in &self.0 {
            if let Some(fold) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                into.merge(fold, 0);
            }
        }
    }
}

/// What a parser thread made of one newline-aligned chunk.
struct ChunkResult<F> {
    bytes: u64,
    lines: u64,
    /// The chunk itself, parsed again in the rare case it holds duplicates.
    bytes_read: Vec<u8>,
    /// `invocationId` hashes of its valid records, in order.
    hashes: Vec<u64>,
    /// The fold of the records that pass the filter (where a worker's fold took them, the
    /// part it handed back, if any), and how many those are.
    fold: Option<F>,
    matched: u64,
    /// Invalid lines, numbered from the chunk's start.
    problems: Vec<LineProblem>,
}

impl<F: RecordFold> ChunkResult<F> {
    /// Parses `chunk` into its own new fold, or into the worker's fold where there is one.
    fn parse_for(
        chunk: Chunk,
        filter: &RecordFilter,
        new_fold: impl FnOnce() -> F,
        workers: Option<&WorkerFolds<F>>,
    ) -> Self {
        match workers {
            Some(workers) => workers.with(new_fold, |fold| {
                let mut result = Self::parse(chunk, filter, fold);
                result.fold = fold.hand_back();
                result
            }),
            None => {
                let mut fold = new_fold();
                let mut result = Self::parse(chunk, filter, &mut fold);
                result.fold = Some(fold);
                result
            }
        }
    }

    fn parse(chunk: Chunk, filter: &RecordFilter, fold: &mut F) -> Self {
        let mut result = Self {
            bytes: chunk.bytes(),
            // Counted as the chunk's lines are read, below.
            lines: 0,
            bytes_read: Vec::new(),
            hashes: Vec::new(),
            fold: None,
            matched: 0,
            problems: Vec::new(),
        };
        let bytes = match chunk {
            Chunk::Lines(bytes) => bytes,
            Chunk::Overlong { len, terminated } => {
                result.lines = 1;
                result.problems = vec![Chunk::overlong_problem(len, terminated)];
                return result;
            }
        };
        let mut problems = Vec::new();
        // Reading a slice cannot fail.
        let stats = visit_records(
            &bytes[..],
            InputStart::No,
            |_, m| {
                let index = result.hashes.len() as u64;
                result.hashes.push(id_hash(&m.invocation_id));
                if filter.matches(m) {
                    fold.add(m, index);
                    result.matched += 1;
                }
            },
            |p| problems.push(p),
        );
        // Counted by the line loop, not by a second search for newlines (2 % of a summary).
        result.lines = stats.map_or(0, |stats| stats.lines);
        result.problems = problems;
        result.bytes_read = bytes;
        result
    }
}
