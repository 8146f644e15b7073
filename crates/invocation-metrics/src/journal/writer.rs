//! The background writer: drains queued lines into the file in record order, whole lines
//! only, many records per write when they queue up (group commit), and syncs per the
//! durability policy.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::bus::{FleetEvent, FleetEventBus};
use crate::error::Error;
use crate::error::ValidationError;
use crate::record::InvocationMetric;
use crate::store::{IdIndex, RecordStore};

/// When the metrics file is synced to stable storage, like Redis's `appendfsync`.
///
/// | policy | `flush()` returns once the records are… | survives a process crash | survives power loss |
/// |---|---|---|---|
/// | `Buffered` | written to the OS | yes | no: whatever the OS had not yet written back |
/// | `Periodic(interval)` (default, 1 s) | written to the OS; the writer syncs at most every `interval` | yes | all but about the last `interval` |
/// | `Always` | written and synced (`fdatasync`); one sync serves every waiting flush | yes | yes, for every acknowledged flush |
///
/// In every policy `record()` itself never waits for the disk, and
/// [`sync`](crate::InvocationMetricsCollector::sync) and
/// [`checkpoint`](crate::InvocationMetricsCollector::checkpoint) wait for an `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Hand lines to the OS; never sync.
    Buffered,
    /// Hand lines to the OS and sync at most every interval.
    Periodic(Duration),
    /// Sync after every write; `flush()` waits for the sync.
    Always,
}

impl Default for Durability {
    fn default() -> Self {
        Self::Periodic(Duration::from_secs(1))
    }
}

/// Most bytes the writer hands to one `write` call: a backlog is written in runs of whole
/// lines of about this size, so that a disk with a little free space takes what fits.
const WRITE_RUN_BYTES: usize = 1 << 20;

/// Writes `batch` (whole lines) in runs of whole lines of about [`WRITE_RUN_BYTES`]. Returns
/// how many bytes of whole runs were written, and the first error.
fn write_in_runs(file: &mut File, batch: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while done < batch.len() {
        let rest = &batch[done..];
        let run = if rest.len() <= WRITE_RUN_BYTES {
            rest.len()
        } else {
            // Up to and including the first newline at or past the run's size.
            memchr::memchr(b'\n', &rest[WRITE_RUN_BYTES - 1..])
                .map_or(rest.len(), |i| WRITE_RUN_BYTES + i)
        };
        if let Err(e) = file.write_all(&rest[..run]) {
            return (done, Err(e));
        }
        done += run;
    }
    (done, Ok(()))
}

/// The error for a second record with the id `id`.
pub(crate) fn duplicate_id(id: &str) -> Error {
    Error::Invalid(ValidationError::new(
        "invocationId",
        format!(
            "{id:?} was already recorded; every invocation needs its own id (a retry is a new invocation with attempt + 1)"
        ),
    ))
}

/// First wait before retrying a failed write; doubles up to [`MAX_RETRY_BACKOFF`].
const INITIAL_RETRY_BACKOFF: Duration = Duration::from_millis(20);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Largest write buffer the writer keeps for reuse.
const MAX_SPARE_BYTES: usize = 8 << 20;
/// Longest a group commit waits for more flushers to join it.
const MAX_GATHER: Duration = Duration::from_millis(2);
/// Longest a line waits in the queue when nobody flushes: records arriving meanwhile go
/// out in the same write. Waking the writer for every record instead cost a wake-up and a
/// `write` per record, most of `record()`'s time from a single thread.
const LINGER: Duration = Duration::from_millis(2);
/// A queue this long is written at once, lingering or not.
const NUDGE_BYTES: usize = 256 << 10;

/// Everything guarded by the journal's one lock. Records and queued lines share it so that
/// the in-memory order and the file order are the same.
#[derive(Debug, Default)]
pub(crate) struct JournalState {
    /// Every record in memory (recorded here or loaded from disk), in order; empty when
    /// the collector keeps only the aggregate.
    pub records: RecordStore,
    /// Whether `records` keeps the records (else only their ids are indexed).
    pub keep_records: bool,
    /// Records taken, kept or not: the collector's count.
    pub count: usize,
    /// The ids of those records.
    pub ids: IdIndex,
    /// Lines recorded but not yet handed to the writer.
    queue: Vec<u8>,
    queued: u64,
    /// When the oldest line in `queue` was queued.
    queued_since: Option<Instant>,
    /// Records ever queued / written to the OS / synced (only those recorded here).
    recorded: u64,
    written: u64,
    synced: u64,
    /// Records a `sync()` waits to see synced, whatever the policy.
    sync_wanted: u64,
    /// Length of the file's complete lines.
    pub file_len: u64,
    /// The last write or sync error, until a write succeeds again.
    error: Option<Arc<io::Error>>,
    /// The first failed sync: from then on no sync is trusted (see `Error::SyncFailed`).
    sync_failed: Option<Arc<io::Error>>,
    error_epoch: u64,
    shutdown: bool,
    writer_waiting: bool,
    /// Threads asleep in `flush()`, each until its target is acknowledged.
    flush_waiters: Vec<FlushWaiter>,
    writer_alive: bool,
}

/// A thread asleep in `flush()` or `sync()` until `target` records are acknowledged.
#[derive(Debug)]
struct FlushWaiter {
    target: u64,
    /// Waits for the records to be synced, not only written.
    durable: bool,
    thread: Thread,
}

/// The state shared by the collector's handles and its writer thread.
#[derive(Debug)]
pub(crate) struct Journal {
    pub path: PathBuf,
    pub durability: Durability,
    /// Whether the records are kept (also in the state, where the loader reads it).
    pub keep_records: bool,
    pub bus: FleetEventBus,
    state: Mutex<JournalState>,
    /// Records written to the OS: what a `flush()` waits for unless the policy is `Always`.
    /// Atomics beside the lock so that a woken flusher can see its answer without taking
    /// the lock every recording thread wants.
    written: AtomicU64,
    /// Records synced: what a `sync()`, and a `flush()` under `Always`, waits for.
    synced: AtomicU64,
    /// Bumped, under the lock, on each write error and when the writer stops: sleeping
    /// flushers must then take the lock and look.
    alarms: AtomicU64,
    work: Condvar,
    /// Signals the writer's exit to `shut_down`.
    stopped: Condvar,
}

impl Journal {
    pub fn new(
        path: PathBuf,
        durability: Durability,
        bus: FleetEventBus,
        file_len: u64,
        keep_records: bool,
    ) -> Self {
        Self {
            path,
            durability,
            keep_records,
            bus,
            state: Mutex::new(JournalState {
                file_len,
                keep_records,
                ids: IdIndex::new(keep_records),
                writer_alive: true,
                ..JournalState::default()
            }),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            alarms: AtomicU64::new(0),
            work: Condvar::new(),
            stopped: Condvar::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, JournalState> {
        // A panic while holding the lock leaves the state consistent (every update is a
        // few assignments), so keep going rather than poison every later call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `metric` to memory and its `line` (newline included) to the write queue,
    /// calls `on_accept` with it, and publishes the event — all under the lock, so every
    /// order agrees. Refuses, changing nothing, a metric whose id was taken before.
    pub fn append(
        &self,
        metric: Cow<'_, InvocationMetric>,
        line: &[u8],
        on_accept: impl FnOnce(&InvocationMetric),
    ) -> Result<(), Error> {
        // Hashed before taking the lock every recording thread wants.
        let hash = crate::hashing::hash64(&metric.invocation_id);
        let mut state = self.lock();
        let JournalState {
            ids,
            records,
            keep_records,
            count,
            ..
        } = &mut *state;
        if !ids.insert(hash, &metric.invocation_id, records) {
            return Err(duplicate_id(&metric.invocation_id));
        }
        *count += 1;
        if *keep_records {
            records.push(&metric);
        }
        on_accept(&metric);
        let first_in_queue = state.queue.is_empty();
        if first_in_queue {
            state.queued_since = Some(Instant::now());
        }
        state.queue.extend_from_slice(line);
        state.queued += 1;
        state.recorded += 1;
        if self.bus.has_subscribers() {
            self.bus
                .publish(FleetEvent::MetricRecorded(Arc::new(metric.into_owned())));
        }
        // The first line of a batch wakes an idle writer, which then lets it linger up to
        // `LINGER` for company; a long queue wakes it to write now. (A flush nudges it
        // itself.)
        if first_in_queue || state.queue.len() >= NUDGE_BYTES {
            self.nudge_writer(&mut state);
        }
        Ok(())
    }

    /// Wakes the writer if it waits.
    fn nudge_writer(&self, state: &mut JournalState) {
        if state.writer_waiting {
            state.writer_waiting = false;
            self.work.notify_one();
        }
    }

    /// Blocks until every record queued before the call is written (and synced, if the
    /// policy says so), or a write error happens first.
    pub fn flush(&self) -> Result<(), Error> {
        let state = self.lock();
        let target = state.recorded;
        self.wait(state, target, self.durability == Durability::Always)
    }

    /// Blocks until every record queued before the call is written and synced, whatever
    /// the policy. Returns how many records were in memory at the call.
    pub fn sync(&self) -> Result<usize, Error> {
        let state = self.lock();
        let (count, target) = (state.count, state.recorded);
        self.wait(state, target, true).map(|()| count)
    }

    /// The counter a waiter of this kind is released by.
    fn done(&self, durable: bool) -> &AtomicU64 {
        if durable { &self.synced } else { &self.written }
    }

    /// Sleeps until `target` records are written (`durable`: synced), or a write error
    /// happens first.
    fn wait<'a>(
        &'a self,
        mut state: MutexGuard<'a, JournalState>,
        target: u64,
        durable: bool,
    ) -> Result<(), Error> {
        let done = self.done(durable);
        let epoch = state.error_epoch;
        loop {
            if done.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            if durable && let Some(source) = state.sync_failed.clone() {
                return Err(Error::SyncFailed {
                    path: self.path.clone(),
                    source,
                });
            }
            if state.error_epoch != epoch
                && let Some(source) = state.error.clone()
            {
                return Err(Error::Write {
                    path: self.path.clone(),
                    pending: state.recorded - state.written,
                    source,
                });
            }
            if !state.writer_alive {
                return Err(Error::WriterStopped {
                    path: self.path.clone(),
                });
            }
            if durable {
                state.sync_wanted = state.sync_wanted.max(target);
            }
            state.flush_waiters.push(FlushWaiter {
                target,
                durable,
                thread: thread::current(),
            });
            self.nudge_writer(&mut state);
            let alarms = self.alarms.load(Ordering::Relaxed);
            drop(state);
            // Sleep without the lock. The writer unparks this thread once `target` is
            // acknowledged or on an alarm; waking it through a condition variable instead
            // would have every released flusher queue for the lock, one wake-up after
            // another, before it could even see that it is done.
            while done.load(Ordering::Acquire) < target
                && self.alarms.load(Ordering::Acquire) == alarms
            {
                thread::park();
            }
            if done.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            state = self.lock();
        }
    }

    /// Asks the writer to finish and waits for it up to `deadline`. Returns
    /// [`Error::Unwritten`] if records were still unwritten when it stopped.
    pub fn shut_down(&self, deadline: Option<Instant>) -> Result<(), Error> {
        let mut state = self.lock();
        state.shutdown = true;
        self.work.notify_one();
        while state.writer_alive {
            state = match deadline {
                None => self.stopped.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.stopped
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let pending = state.recorded - state.written;
        if pending == 0 {
            return match state.sync_failed.clone() {
                Some(source) if self.durability != Durability::Buffered => Err(Error::SyncFailed {
                    path: self.path.clone(),
                    source,
                }),
                _ => Ok(()),
            };
        }
        Err(Error::Unwritten {
            path: self.path.clone(),
            pending,
            source: state.error.clone(),
        })
    }

    /// Whether the writer thread has left its loop (it is about to exit).
    pub fn writer_stopped(&self) -> bool {
        !self.lock().writer_alive
    }

    /// The writer thread's body.
    pub fn run_writer(self: Arc<Self>, mut file: File) {
        let mut last_sync = Instant::now();
        let mut retry_at: Option<Instant> = None;
        let mut backoff = INITIAL_RETRY_BACKOFF;
        // Group commit under `Always`: the flushers one sync released usually record and
        // flush again within microseconds. Waiting briefly for them (at most half a sync's
        // cost) lets the next sync serve them all instead of one or two at a time.
        let (mut released, mut sync_cost, mut gather_until) = (0u64, Duration::ZERO, None);
        let mut spare: Vec<u8> = Vec::new();
        // The length to cut the file back to before the next write, when a cut failed.
        let mut uncut: Option<u64> = None;
        // Flushers to unpark once the lock is let go.
        let mut woken: Vec<Thread> = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let mut can_write =
                !state.queue.is_empty() && (state.shutdown || retry_at.is_none_or(|t| now >= t));
            let linger_until = state.queued_since.map(|t| t + LINGER);
            if can_write
                && !state.shutdown
                && state.flush_waiters.is_empty()
                && state.queue.len() < NUDGE_BYTES
                && linger_until.is_some_and(|t| now < t)
            {
                can_write = false;
            }
            if can_write
                && self.durability == Durability::Always
                && !state.shutdown
                && state.queued < released
            {
                let until = *gather_until.get_or_insert(now + (sync_cost / 2).min(MAX_GATHER));
                if now < until {
                    can_write = false;
                }
            }
            // After a failed sync none is trusted, so none is tried.
            let dirty = state.written > state.synced && state.sync_failed.is_none();
            let sync_at = match self.durability {
                // A `sync()` is waiting, whatever the policy.
                _ if dirty && state.sync_wanted > state.synced => Some(now),
                Durability::Buffered => None,
                Durability::Always => dirty.then_some(now),
                // An interval too long to add (`Duration::MAX` for "never") never comes.
                Durability::Periodic(interval) if dirty => {
                    if state.shutdown {
                        Some(now)
                    } else {
                        last_sync.checked_add(interval)
                    }
                }
                Durability::Periodic(_) => None,
            };
            let sync_due = sync_at.is_some_and(|t| now >= t) && retry_at.is_none_or(|t| now >= t);

            if can_write {
                gather_until = None;
                // The last batch's buffer, emptied, becomes the queue: a fresh one would be
                // grown (copied, page-faulted) again on every batch.
                let batch = std::mem::replace(&mut state.queue, std::mem::take(&mut spare));
                let count = std::mem::take(&mut state.queued);
                state.queued_since = None;
                let start_len = state.file_len;
                drop(state);
                // A partial line a failed write left, and a failed cut could not remove,
                // must go before anything is appended after it (appends land at the end).
                let cut = match uncut {
                    Some(len) => file.set_len(len).map(|()| uncut = None),
                    None => Ok(()),
                };
                let (done, result) = match cut {
                    Ok(()) => write_in_runs(&mut file, &batch),
                    Err(e) => (0, Err(e)),
                };
                if result.is_err() && uncut.is_none() {
                    // Cut back a partial line so the retry starts on a line boundary; if
                    // even that fails, the cut is retried before the next write.
                    let boundary = start_len + done as u64;
                    if file.set_len(boundary).is_err() {
                        uncut = Some(boundary);
                    }
                }
                state = self.lock();
                // Whole runs that made it count even when a later one failed: as space
                // frees on a full disk, the backlog drains a run at a time.
                let done_records = if result.is_ok() {
                    count
                } else {
                    memchr::memchr_iter(b'\n', &batch[..done]).count() as u64
                };
                if done > 0 {
                    state.written += done_records;
                    state.file_len += done as u64;
                    if self.durability != Durability::Always {
                        let written = state.written;
                        self.acknowledge(&mut state, false, written, &mut woken);
                    }
                }
                match result {
                    Ok(()) => {
                        spare = batch;
                        retry_at = None;
                        backoff = INITIAL_RETRY_BACKOFF;
                        if state.error.take().is_some() {
                            tracing::info!(path = %self.path.display(), "metrics writes work again");
                            self.bus.publish(FleetEvent::WriteRecovered {
                                path: self.path.clone(),
                            });
                        }
                    }
                    Err(e) => {
                        let mut requeued = batch[done..].to_vec();
                        requeued.extend_from_slice(&state.queue);
                        spare = std::mem::replace(&mut state.queue, requeued);
                        state.queued += count - done_records;
                        state.queued_since.get_or_insert(Instant::now());
                        if self.fail(&mut state, e, &mut retry_at, &mut backoff, &mut woken) {
                            break;
                        }
                    }
                }
                spare.clear();
                if spare.capacity() > MAX_SPARE_BYTES {
                    // After a long stall (a full disk) the queue may have grown huge; let it go.
                    spare = Vec::new();
                }
            } else if sync_due {
                let target = state.written;
                drop(state);
                let started = Instant::now();
                let result = file.sync_data();
                state = self.lock();
                last_sync = Instant::now();
                sync_cost = last_sync - started;
                released = state.flush_waiters.len() as u64;
                match result {
                    Ok(()) => {
                        state.synced = target;
                        retry_at = None;
                        self.acknowledge(&mut state, true, target, &mut woken);
                    }
                    Err(e) => {
                        tracing::error!(path = %self.path.display(), error = %e, "cannot sync metrics; no later sync can prove they are on disk");
                        state.sync_failed = Some(Arc::new(io::Error::new(e.kind(), e.to_string())));
                        // Wakes the durable waiters, who now see the failure.
                        self.raise_alarm(&mut state, &mut woken);
                    }
                }
            } else if state.shutdown && state.queue.is_empty() && sync_at.is_none() {
                break;
            } else {
                let wake_at = [
                    retry_at.filter(|_| !state.queue.is_empty() || dirty),
                    sync_at,
                    gather_until,
                    linger_until.filter(|_| !state.queue.is_empty()),
                ]
                .into_iter()
                .flatten()
                .min();
                state.writer_waiting = true;
                state = match wake_at {
                    Some(t) => {
                        self.work
                            .wait_timeout(state, t.saturating_duration_since(now))
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => self.work.wait(state).unwrap_or_else(|e| e.into_inner()),
                };
                state.writer_waiting = false;
            }
            if !woken.is_empty() {
                drop(state);
                woken.drain(..).for_each(|thread| thread.unpark());
                state = self.lock();
            }
        }
        state.writer_alive = false;
        self.raise_alarm(&mut state, &mut woken);
        drop(state);
        woken.drain(..).for_each(|thread| thread.unpark());
        self.stopped.notify_all();
    }

    /// Marks the first `count` records written (`durable`: synced) and takes the waiters of
    /// that kind that wait for no more than those.
    fn acknowledge(
        &self,
        state: &mut JournalState,
        durable: bool,
        count: u64,
        woken: &mut Vec<Thread>,
    ) {
        self.done(durable).store(count, Ordering::Release);
        woken.extend(
            state
                .flush_waiters
                .extract_if(.., |waiter| {
                    waiter.durable == durable && waiter.target <= count
                })
                .map(|waiter| waiter.thread),
        );
    }

    /// Tells every sleeping flusher to take the lock and look (an error, or the writer is
    /// stopping) and takes them all.
    fn raise_alarm(&self, state: &mut JournalState, woken: &mut Vec<Thread>) {
        self.alarms.fetch_add(1, Ordering::Release);
        woken.extend(state.flush_waiters.drain(..).map(|waiter| waiter.thread));
    }

    /// Records a write or sync error and schedules the retry. Returns whether the writer
    /// should give up instead (it is shutting down).
    fn fail(
        &self,
        state: &mut JournalState,
        e: io::Error,
        retry_at: &mut Option<Instant>,
        backoff: &mut Duration,
        woken: &mut Vec<Thread>,
    ) -> bool {
        let pending = state.recorded - state.written;
        if state.shutdown {
            tracing::warn!(path = %self.path.display(), pending, error = %e, "cannot write metrics while closing; giving up on them");
        } else {
            tracing::warn!(path = %self.path.display(), pending, error = %e, "cannot write metrics; keeping them in memory and retrying");
        }
        self.bus.publish(FleetEvent::WriteFailed {
            path: self.path.clone(),
            pending,
            error: e.to_string(),
        });
        state.error = Some(Arc::new(e));
        state.error_epoch += 1;
        self.raise_alarm(state, woken);
        *retry_at = Some(Instant::now() + *backoff);
        *backoff = (*backoff * 2).min(MAX_RETRY_BACKOFF);
        state.shutdown
    }
}
