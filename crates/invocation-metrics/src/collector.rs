//! The collector: records metrics in memory and appends them to `invocations.jsonl`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::aggregate::{AggregateOptions, MetricsAccumulator, MetricsAggregate};
use crate::atomic_file::sync_parent_dir;
use crate::bus::{FleetEventBus, Subscription};
use crate::checkpoint::{CheckpointState, CheckpointStore};
use crate::error::{Error, Result, ValidationError};
use crate::hashing::hash64;
use crate::journal::{
    Chunk, Durability, InputStart, Journal, JournalState, LineProblem, TailRepair, open_for_append,
    parse_chunks, repair_tail, visit_records,
};
use crate::parse::{MAX_LINE_BYTES, parse_line_into};
use crate::record::InvocationMetric;
use crate::store::RecordStore;

/// The metrics file inside a metrics directory.
pub const METRICS_FILE_NAME: &str = "invocations.jsonl";
/// The lock file a collector holds inside its metrics directory.
pub const LOCK_FILE_NAME: &str = "invocations.lock";

/// How long dropping a collector waits for its writer before giving up.
const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for [`InvocationMetricsCollector::builder`].
///
/// | option | default |
/// |---|---|
/// | [`durability`](Self::durability) | [`Durability::Periodic`] every second |
/// | [`bucket_width_ms`](Self::bucket_width_ms) | 1000 |
/// | [`base_tier`](Self::base_tier) | `"normal"` |
/// | [`event_bus`](Self::event_bus) | a new bus of its own |
/// | [`keep_records`](Self::keep_records) | `true` |
#[derive(Debug, Clone)]
#[must_use = "call .open() to create the collector"]
pub struct CollectorBuilder {
    dir: PathBuf,
    durability: Durability,
    aggregate: AggregateOptions,
    bus: Option<FleetEventBus>,
    keep_records: bool,
}

impl CollectorBuilder {
    /// When the file is synced; see [`Durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Width of the parallelism-over-time buckets of [`compute_aggregate`](InvocationMetricsCollector::compute_aggregate).
    pub fn bucket_width_ms(mut self, width: u64) -> Self {
        self.aggregate.bucket_width_ms = width.max(1);
        self
    }

    /// The tier that does not count as an escalation.
    pub fn base_tier(mut self, tier: impl Into<String>) -> Self {
        self.aggregate.base_tier = tier.into();
        self
    }

    /// Publish events on this bus (to share one bus between several components).
    pub fn event_bus(mut self, bus: FleetEventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Whether the collector keeps every record in memory (the default) or only the running
    /// aggregate and a 64-bit hash of each id it has taken: about 10 bytes a record instead
    /// of about 150 (the aggregate's own per-record state spills to an unlinked temporary
    /// file past a few MB, as [`MetricsAccumulator::spilling`] does).
    ///
    /// Without the records, [`get_all`](InvocationMetricsCollector::get_all) returns
    /// nothing; [`get_count`](InvocationMetricsCollector::get_count),
    /// [`compute_aggregate`](InvocationMetricsCollector::compute_aggregate), duplicate-id
    /// refusal (by a 64-bit hash of the id: a false refusal has a chance of about 2^-64
    /// per pair of ids) and [`load_from_disk`](InvocationMetricsCollector::load_from_disk)
    /// work as before. For long-lived pipes such as `invmetrics ingest`, whose memory must
    /// not grow with every record.
    ///
    /// In this mode `record()` folds each record into the aggregate as it takes it, and
    /// the aggregate's spill file may then be written to: the one case where `record()`
    /// can wait for the disk.
    pub fn keep_records(mut self, keep: bool) -> Self {
        self.keep_records = keep;
        self
    }

    /// Creates the directory if needed, takes its lock, repairs the file's tail and starts
    /// the writer.
    pub fn open(self) -> Result<InvocationMetricsCollector> {
        let dir = self.dir;
        if let Ok(meta) = fs::metadata(&dir)
            && !meta.is_dir()
        {
            return Err(Error::NotAFile {
                path: dir,
                kind: crate::repair::file_kind(&meta),
                hint: "not a directory; a collector records into a metrics directory (the one that holds invocations.jsonl)",
            });
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io("create metrics directory", &dir, e))?;

        let lock = lock_directory(&dir)?;

        let path = dir.join(METRICS_FILE_NAME);
        let mut file = open_for_append(&path)?;
        let (tail_repair, file_len) = repair_tail(&mut file, &path)?;
        // What the file holds now is made durable once, whatever the policy: a checkpoint
        // taken in this run counts the records loaded from it, so they must not be lost
        // to a power cut after a crash left them only in the OS's cache (or left a new
        // file's name unsynced in its directory). A device (a test's /dev/full) has
        // nothing to sync.
        if file.metadata().is_ok_and(|m| m.is_file()) {
            file.sync_data().map_err(|e| Error::io("sync", &path, e))?;
            sync_parent_dir(&path)?;
        }

        let journal = Arc::new(Journal::new(
            path.clone(),
            self.durability,
            self.bus.unwrap_or_default(),
            file_len,
            self.keep_records,
        ));
        let writer = {
            let journal = Arc::clone(&journal);
            // The writer thread owns the lock: it is released when the last thing that
            // could append to the file is gone. A writer stuck on a hung disk past a drop's
            // wait keeps it, so no new collector appends while the old one may still write.
            std::thread::Builder::new()
                .name("invmetrics-writer".into())
                .spawn(move || {
                    let _lock = lock;
                    journal.run_writer(file);
                })
                .map_err(|e| Error::io("start the writer thread for", &path, e))?
        };
        Ok(InvocationMetricsCollector {
            dir,
            journal,
            writer: Some(writer),
            aggregate_options: self.aggregate,
            // Without the records, the aggregate is all there is: its per-record state
            // (record times, retries) spills to a temporary file past a few MB, as a bulk
            // read's does, so that memory stays flat.
            aggregate: Mutex::new((
                0,
                match self.keep_records {
                    true => MetricsAccumulator::new(),
                    false => MetricsAccumulator::spilling(),
                },
            )),
            tail_repair,
        })
    }
}

/// Takes the exclusive advisory lock that makes one writer per metrics directory; it is held
/// until the returned file is dropped. Fails with [`Error::Locked`] if it stays taken for
/// [`LOCK_PATIENCE`].
///
/// Why not fail at the first refusal: a lock just released can still be held for a moment
/// by a child process the program is starting. The lock belongs to the open file, and a
/// child forked by another thread keeps a copy of every descriptor until it runs its program
/// (which closes them: they are close-on-exec) — so closing a collector and reopening its
/// directory at once failed now and then in a program that spawns processes.
pub(crate) fn lock_directory(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK_FILE_NAME);
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| Error::io("create lock file", &lock_path, e))?;
    let give_up = Instant::now() + LOCK_PATIENCE;
    let mut pause = Duration::from_millis(1);
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < give_up => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: lock_path }),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path, e)),
        }
    }
}

/// A device number's major and minor parts, as glibc encodes them (`major(3)`, `minor(3)`):
/// the table of file locks names a file's device by these.
fn major_minor(dev: u64) -> (u64, u64) {
    // Each part's low bits sit below the other's high bits: mask exactly, or a major past
    // 4095 leaks into the minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    (major, minor)
}

/// The most text a record reused for many calls keeps allocated between them.
pub(crate) const REUSED_TEXT_BYTES: usize = 64 << 10;

/// How long opening waits for a directory's lock before reporting it taken: far longer than
/// a child process takes to start its program, short enough that a real second writer is
/// told at once, as a person counts it.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// Whether a collector (in any process on this machine) holds the lock of the metrics
/// directory `dir` — whether its file is being appended to right now.
///
/// Looks, without taking the lock, at the kernel's table of file locks (`/proc/locks`, on
/// Linux): trying the lock instead could make a writer starting at that moment fail.
/// Elsewhere, or when the table cannot be read, answers `false`.
pub fn has_live_writer(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(lock) = fs::metadata(dir.join(LOCK_FILE_NAME)) else {
        return false;
    };
    let Ok(table) = fs::read_to_string("/proc/locks") else {
        return false;
    };
    let (major, minor) = major_minor(lock.dev());
    let wanted = format!("{major:02x}:{minor:02x}:{}", lock.ino());
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters are marked "->".
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&wanted.as_str())
    })
}

/// What [`InvocationMetricsCollector::load_from_disk`] did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LoadReport {
    /// Records appended to memory.
    pub loaded: u64,
    /// Valid records skipped because they came first (the `skip` argument).
    pub skipped: u64,
    /// Records not loaded because a record with the same `invocationId` was already in memory.
    pub duplicates: u64,
    /// Lines that are not valid records (the torn tail not included).
    pub malformed: u64,
    /// Whether the file ended in an unterminated, invalid line (a torn write).
    pub torn_tail: bool,
    /// How many more valid records `skip` asked to skip than the file holds: not 0 means
    /// the checkpoint counts records the file lost (see
    /// [`load_from_disk`](InvocationMetricsCollector::load_from_disk)).
    pub missing: u64,
    /// Every invalid line, with its number and reason.
    pub problems: Vec<LineProblem>,
}

/// Records one [`InvocationMetric`] per agent invocation, in memory and appended to
/// `<metrics_dir>/invocations.jsonl`.
///
/// Share one collector between threads with an `Arc`: every method but
/// [`close`](Self::close) takes `&self`. Only one collector may have a directory open at a
/// time (an advisory lock on `invocations.lock`).
///
/// See the [crate documentation](crate) for an example and the resume flow.
#[derive(Debug)]
pub struct InvocationMetricsCollector {
    dir: PathBuf,
    journal: Arc<Journal>,
    /// The writer thread, which holds the directory's lock.
    writer: Option<JoinHandle<()>>,
    aggregate_options: AggregateOptions,
    /// The accumulator, and how many of the kept records are folded into it (without kept
    /// records, each is folded in as it is taken, and the count is not used).
    aggregate: Mutex<(usize, MetricsAccumulator)>,
    tail_repair: TailRepair,
}

impl InvocationMetricsCollector {
    /// Opens `metrics_dir` with the default options; see [`CollectorBuilder::open`].
    pub fn open(metrics_dir: impl AsRef<Path>) -> Result<Self> {
        Self::builder(metrics_dir).open()
    }

    /// A builder for a collector with non-default options.
    pub fn builder(metrics_dir: impl AsRef<Path>) -> CollectorBuilder {
        CollectorBuilder {
            dir: metrics_dir.as_ref().to_path_buf(),
            durability: Durability::default(),
            aggregate: AggregateOptions::default(),
            bus: None,
            keep_records: true,
        }
    }

    /// The metrics directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The metrics file, `<dir>/invocations.jsonl`.
    pub fn path(&self) -> &Path {
        &self.journal.path
    }

    /// What `open` had to do to the end of the file.
    pub fn tail_repair(&self) -> &TailRepair {
        &self.tail_repair
    }

    /// The bus this collector publishes on.
    pub fn event_bus(&self) -> &FleetEventBus {
        &self.journal.bus
    }

    /// A new subscriber to this collector's events.
    pub fn subscribe(&self) -> Subscription {
        self.journal.bus.subscribe()
    }

    /// Validates `metric`, appends it to memory, queues its line for the writer and
    /// publishes [`FleetEvent::MetricRecorded`](crate::FleetEvent::MetricRecorded).
    ///
    /// Never waits for the disk; safe to call from many threads and from async tasks. An
    /// invalid metric is refused with [`Error::Invalid`] naming the field, and nothing is
    /// recorded: a rule of [`InvocationMetric::validate`], an `invocationId` this collector
    /// already holds, or a record whose line would be longer than [`MAX_LINE_BYTES`], which
    /// no reader would accept.
    pub fn record(&self, metric: InvocationMetric) -> Result<()> {
        self.record_given(Cow::Owned(metric))
    }

    /// [`record`](Self::record) of a borrowed metric: for callers that fill one
    /// [`InvocationMetric`] again and again (another language's binding converting its own
    /// values), so that its strings are reused rather than allocated for every record. The
    /// collector keeps its own copy of what it needs.
    pub fn record_ref(&self, metric: &InvocationMetric) -> Result<()> {
        self.record_given(Cow::Borrowed(metric))
    }

    /// Records a metric given as one JSON object — a line of the metrics file, in any key
    /// order, spacing or [dialect](crate::Dialect) [`parse_line`](crate::parse_line) reads —
    /// as [`record`](Self::record) does: for callers that hold records as JSON (another
    /// language's binding, a pipe), without building an [`InvocationMetric`] for each.
    ///
    /// Refused with [`Error::Line`] (naming the field) when the text is no valid record,
    /// and as `record` refuses otherwise.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let collector = invocation_metrics::InvocationMetricsCollector::open(dir.path())?;
    /// collector.record_json(br#"{"invocationId":"i1","agent":"coder","phase":1,"durationMs":10,"tokens":5,"cost":0.01,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-27T10:00:00.000Z"}"#)?;
    /// let refused = collector.record_json(br#"{"invocationId":"i2","agent":"coder","phase":1,"durationMs":-10,"tokens":5,"cost":0.01,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-27T10:00:00.000Z"}"#);
    /// assert!(refused.unwrap_err().to_string().contains("durationMs"));
    /// assert_eq!(collector.get_count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_json(&self, json: &[u8]) -> Result<()> {
        thread_local! {
            /// The last record read on this thread, its strings reused for the next.
            static READ: RefCell<InvocationMetric> = RefCell::new(InvocationMetric::blank());
        }
        READ.with_borrow_mut(|metric| {
            let recorded = parse_line_into(json, metric)
                .map_err(Error::from)
                .and_then(|_| self.record_given(Cow::Borrowed(metric)));
            // One very long value would otherwise stay allocated for the thread's life.
            if metric.text_capacity() > REUSED_TEXT_BYTES {
                *metric = InvocationMetric::blank();
            }
            recorded
        })
    }

    /// [`record`](Self::record) of an owned metric or a borrowed one (copied only for the
    /// event, when someone listens).
    fn record_given(&self, metric: Cow<'_, InvocationMetric>) -> Result<()> {
        metric.validate()?;
        let mut line = Vec::with_capacity(320);
        metric.write_json(&mut line);
        if line.len() > MAX_LINE_BYTES {
            return Err(Error::Invalid(ValidationError::new(
                "record",
                format!(
                    "its line would be {} bytes, longer than the {MAX_LINE_BYTES}-byte limit every reader applies (shorten the ids or names)",
                    line.len()
                ),
            )));
        }
        line.push(b'\n');
        if self.journal.keep_records {
            self.journal.append(metric, &line, |_| ())
        } else {
            // Same lock order as compute_aggregate: the aggregate, then the journal.
            let mut cached = self.aggregate.lock().unwrap_or_else(|e| e.into_inner());
            self.journal.append(metric, &line, |m| cached.1.add(m))
        }
    }

    /// Blocks until every record recorded before the call is written to the file (and
    /// synced, under [`Durability::Always`]; see [`sync`](Self::sync) for the other
    /// policies).
    ///
    /// If the writer hits an error first, returns [`Error::Write`]: the records are still in
    /// memory and the writer retries them, in order, until the fault clears; a later `flush`
    /// returns `Ok` once they are written.
    pub fn flush(&self) -> Result<()> {
        self.journal.flush()
    }

    /// Blocks until every record recorded before the call is written to the file *and*
    /// synced to stable storage (`fdatasync`), whatever the [`Durability`] policy; one
    /// sync serves every caller waiting at the time.
    ///
    /// Errors as [`flush`](Self::flush) does. Use it before saving anything that points
    /// into the file — or call [`checkpoint`](Self::checkpoint), which does both in order.
    pub fn sync(&self) -> Result<()> {
        self.journal.sync().map(drop)
    }

    /// Saves a checkpoint that never runs ahead of the metrics file: takes the current
    /// count, syncs the file through it, then sets `state.metrics_count` to it and saves
    /// `state` atomically in `store`. Returns what was saved.
    ///
    /// The order is a database's: the log is durable before the checkpoint that points
    /// into it, so after a power cut at any moment the saved `metricsCount` counts only
    /// records the file still holds, under every policy. [`CheckpointStore::save`] on its
    /// own is for states without a metrics count.
    ///
    /// The count is the collector's ([`get_count`](Self::get_count)): the records it holds.
    /// It is a position in the file when the history was restored with `load_from_disk(0)`;
    /// after `load_from_disk(n)` (the seed's flow) it counts only what came after those `n`,
    /// so add them yourself if your next resume should skip them too.
    ///
    /// ```
    /// use invocation_metrics::{CheckpointState, CheckpointStore, InvocationMetric, InvocationMetricsCollector, Timestamp};
    ///
    /// let (metrics, checkpoints) = (tempfile::tempdir()?, tempfile::tempdir()?);
    /// let collector = InvocationMetricsCollector::open(metrics.path())?;
    /// let store = CheckpointStore::new(checkpoints.path())?;
    /// collector.record(InvocationMetric::new("inv-1", "planner", 1, Timestamp::now()))?;
    ///
    /// let mut state = CheckpointState::default();
    /// state.other.insert("phase".into(), 2.into());
    /// let saved = collector.checkpoint(&store, state)?;
    /// assert_eq!(saved.metrics_count, Some(1));
    /// assert_eq!(store.load()?, Some(saved));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checkpoint(
        &self,
        store: &CheckpointStore,
        mut state: CheckpointState,
    ) -> Result<CheckpointState> {
        let count = self.journal.sync()?;
        state.metrics_count = Some(count as u64);
        store.save(&state)?;
        Ok(state)
    }

    /// A copy of every record in memory, in record order (none when the collector keeps
    /// only the aggregate; see [`CollectorBuilder::keep_records`]).
    pub fn get_all(&self) -> Vec<InvocationMetric> {
        self.journal.lock().records.to_vec()
    }

    /// How many records the collector holds (recorded or loaded): the value a checkpoint
    /// stores as `metricsCount`.
    pub fn get_count(&self) -> usize {
        self.journal.lock().count
    }

    /// Reads the metrics file and appends its records to memory, skipping the first `skip`
    /// valid ones (those a checkpoint says are already accounted for) and any whose
    /// `invocationId` is already in memory (the first one wins). The skipped records' ids
    /// are taken all the same: [`record`](Self::record) refuses a record repeating one, as
    /// every reader of the file would keep the skipped record and drop the new one.
    ///
    /// Invalid lines are skipped, logged with their line number and counted; a final
    /// unterminated line counts only if it is a valid record. A missing file loads nothing.
    /// Only lines this collector's writer has completed are read.
    ///
    /// # When the file holds fewer than `skip` records
    ///
    /// Then the checkpoint counts records the file no longer has: a power cut after a
    /// checkpoint saved without [`checkpoint`](Self::checkpoint)'s sync, a file repaired or
    /// replaced since, or the wrong directory. Nothing is skipped silently: the report's
    /// [`missing`](LoadReport::missing) says how many, and a warning is logged. The work
    /// the checkpoint counts past the file's end has no metrics; redo it, or accept the gap —
    /// either way, take the next checkpoint with [`checkpoint`](Self::checkpoint), which
    /// stores the true count.
    pub fn load_from_disk(&self, skip: usize) -> Result<LoadReport> {
        let path = self.path();
        let complete_len = self.journal.lock().file_len;
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LoadReport::default()),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let mut report = LoadReport::default();
        // Stored compactly as they arrive, so the full records never all exist at once.
        let mut found = RecordStore::default();
        // Their aggregate, computed alongside on the parser threads, so the next
        // compute_aggregate() need not fold them all again.
        let mut folded = MetricsAccumulator::new();
        let mut valid = 0usize;
        // The skipped records' ids, which the collector takes too (see `IdIndex`).
        let mut skipped_ids = Vec::new();
        let (mut lines_before, mut torn_tail) = (0u64, false);
        // Chunks are parsed on every core; their records arrive here in file order.
        parse_chunks(
            file.take(complete_len),
            |chunk| {
                // Parsed, stored compactly and aggregated here, on a parser thread; the
                // ordered part below only moves the results.
                let mut loaded = LoadedChunk::default();
                let buffer = match chunk {
                    Chunk::Lines(bytes) => {
                        // Reading a slice cannot fail.
                        let stats = visit_records(
                            &bytes[..],
                            InputStart::No,
                            |_, m| {
                                loaded.records.push(m);
                                loaded.aggregate.add(m);
                            },
                            |p| loaded.problems.push(p),
                        );
                        loaded.lines = stats.map_or(0, |stats| stats.lines);
                        Some(bytes)
                    }
                    Chunk::Overlong { len, terminated } => {
                        loaded.lines = 1;
                        loaded
                            .problems
                            .push(Chunk::overlong_problem(len, terminated));
                        None
                    }
                };
                (loaded, buffer)
            },
            |(loaded, buffer)| {
                let count = loaded.records.len();
                // The first `skip` valid records are left out; a chunk may straddle that count.
                let first_kept = skip.saturating_sub(valid).min(count);
                skipped_ids.extend(
                    (0..first_kept).map(|at| hash64(loaded.records.id(at).unwrap_or_default())),
                );
                if first_kept == 0 {
                    folded.absorb(loaded.aggregate);
                } else {
                    loaded.records.visit_from(first_kept, |m| folded.add(m));
                }
                found.append_from(loaded.records, first_kept);
                valid += count;
                for mut problem in loaded.problems {
                    problem.line += lines_before;
                    torn_tail = problem.torn_tail;
                    tracing::warn!(path = %path.display(), "skipping {problem}");
                    report.problems.push(problem);
                }
                lines_before += loaded.lines;
                buffer
            },
        )
        .map_err(|e| Error::io("read", path, e))?;
        report.skipped = valid.min(skip) as u64;
        report.missing = skip.saturating_sub(valid) as u64;
        if report.missing > 0 {
            tracing::warn!(
                path = %path.display(),
                skip,
                valid,
                missing = report.missing,
                "the checkpoint counts more records than the file holds: the checkpoint is ahead of the metrics file (a power cut after an unsynced checkpoint, a repaired or replaced file, or the wrong directory)"
            );
        }
        report.torn_tail = torn_tail;
        report.malformed = report.problems.len() as u64 - u64::from(torn_tail);

        // Same lock order as compute_aggregate: the aggregate, then the journal.
        let mut cached = self.aggregate.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.journal.lock();
        let duplicates = if state.keep_records {
            let before = state.records.len();
            let duplicates = state.records.append_unique(found);
            let JournalState { ids, records, .. } = &mut *state;
            // `append_unique` has left repeats out already.
            for position in before..records.len() {
                ids.note(hash64(records.id(position).unwrap_or_default()));
            }
            state.count = state.records.len();
            // `folded` covers exactly the appended records unless duplicates were left
            // out; and it can join the cached aggregate only if that was up to date.
            if duplicates == 0 && cached.0 == before {
                cached.1.absorb(folded);
                cached.0 = state.records.len();
            }
            duplicates
        } else {
            let mut duplicates = 0;
            let JournalState {
                ids,
                count,
                records,
                ..
            } = &mut *state;
            found.visit_from(0, |m| {
                if ids.insert_loaded(hash64(&m.invocation_id), &m.invocation_id, records) {
                    *count += 1;
                    cached.1.add(m);
                } else {
                    duplicates += 1;
                }
            });
            duplicates
        };
        // Taken after the load, which treats the file's records the same with kept records
        // or without: only what is recorded from now on is held to them.
        for hash in skipped_ids {
            state.ids.note_skipped(hash);
        }
        report.loaded = valid.saturating_sub(skip) as u64 - duplicates;
        report.duplicates = duplicates;
        Ok(report)
    }

    /// The aggregate summary of every record in memory.
    ///
    /// Incremental: records already folded in by an earlier call are not scanned again.
    pub fn compute_aggregate(&self) -> MetricsAggregate {
        let mut cached = self.aggregate.lock().unwrap_or_else(|e| e.into_inner());
        let (folded, accumulator) = &mut *cached;
        {
            let state = self.journal.lock();
            // Without kept records, record() folds each one in as it takes it.
            if state.keep_records {
                state.records.visit_from(*folded, |m| accumulator.add(m));
                *folded = state.records.len();
            }
        }
        accumulator.finish(&self.aggregate_options)
    }

    /// Writes what is queued, stops the writer, syncs (unless the policy is
    /// [`Durability::Buffered`]) and releases the directory lock.
    ///
    /// Returns [`Error::Unwritten`] if the writer could not write every record (it tries
    /// once more while closing, however long it was backing off).
    pub fn close(mut self) -> Result<()> {
        self.stop_writer(None)
    }

    fn stop_writer(&mut self, deadline: Option<Instant>) -> Result<()> {
        let result = self.journal.shut_down(deadline);
        if let Some(writer) = self.writer.take() {
            // A writer that left its loop exits at once: join it, so nothing outlives the
            // collector. Only one stuck past the deadline (a hung disk) is left behind.
            if self.journal.writer_stopped() || deadline.is_none() {
                let _ = writer.join();
            }
        }
        result
    }
}

/// What a parser thread made of one chunk of the file for `load_from_disk`.
#[derive(Default)]
struct LoadedChunk {
    lines: u64,
    records: RecordStore,
    aggregate: MetricsAccumulator,
    problems: Vec<LineProblem>,
}

impl Drop for InvocationMetricsCollector {
    /// Writes what is queued, waiting at most five seconds.
    fn drop(&mut self) {
        if self.writer.is_some()
            && let Err(e) = self.stop_writer(Some(Instant::now() + DROP_FLUSH_TIMEOUT))
        {
            tracing::error!("metrics collector dropped with records unwritten: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc's `makedev(3)`, the inverse of [`major_minor`], written out from its definition.
    fn makedev(major: u64, minor: u64) -> u64 {
        ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
    }

    #[test]
    fn device_numbers_split_as_glibc_splits_them() {
        // Small numbers (a disk: 8:1; a virtual disk: 254:1) and parts past the 8 and 12
        // bits the old 16-bit encoding held, where the high bits live apart from the low.
        for (major, minor) in [
            (8, 1),
            (254, 1),
            (0, 0),
            (0xabc, 0xde),
            (0x12345, 0x6789a),
            (0xffff_ffff, 0xffff_ffff),
        ] {
            assert_eq!(major_minor(makedev(major, minor)), (major, minor));
        }
        // An NVMe partition as `stat` reports it: device 0x10301, that is 259:1.
        assert_eq!(major_minor(0x10301), (259, 1));
    }
}
