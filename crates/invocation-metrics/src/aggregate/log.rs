//! A multiset of fixed-size keys read back in sorted order, for the parts of the aggregate
//! that need one entry per record (running-count changes, retry keys, id hashes).
//!
//! Keys are appended in O(1) and sorted in small batches into runs; runs of similar length
//! are merged, so reading everything in order is a merge of a few runs. A log made with
//! [`SortedLog::spilling`] instead sorts its keys whenever they fill its memory budget and
//! writes them as one run to an unlinked temporary file, so however many records are read
//! the memory it holds stays bounded — the cost moves to the disk (8 or 16 bytes per key)
//! instead of growing the process.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// A key of fixed size that a log can store and write to its spill file.
pub(crate) trait Key: Copy + Ord + Send + Sync + std::fmt::Debug + 'static {
    /// Bytes in its encoding.
    const BYTES: usize;
    /// Appends its little-endian encoding.
    fn encode(self, out: &mut Vec<u8>);
    /// Reads it back from exactly [`BYTES`](Self::BYTES) bytes.
    fn decode(bytes: &[u8]) -> Self;
}

macro_rules! impl_key {
    ($($t:ty),*) => {$(
        impl Key for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn encode(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }
        }
    )*};
}
impl_key!(i64, u64, u128);

/// Keys sorted together at a time before they become a run: small enough to sort in cache.
const BATCH: usize = 1 << 16;
/// Bytes of keys a spilling log keeps in memory, unless told otherwise, before writing
/// them out as one run.
pub(crate) const DEFAULT_SPILL_BUDGET_BYTES: usize = 8 << 20;

#[derive(Debug, Clone)]
pub(crate) struct SortedLog<K: Key> {
    /// Not yet sorted: at most [`BATCH`] keys in a log that never spills, at most the
    /// budget in one that does.
    pending: Vec<K>,
    /// Sorted runs in memory (a log that never spills).
    runs: Vec<Vec<K>>,
    /// Sorted runs written out, with where to read them.
    spilled: Vec<DiskRun>,
    /// Where runs are written; created at the first spill.
    spill: Option<Arc<SpillFile>>,
    /// Keys in memory that make a spill; `usize::MAX` never spills.
    spill_at: usize,
}

impl<K: Key> Default for SortedLog<K> {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            runs: Vec::new(),
            spilled: Vec::new(),
            spill: None,
            spill_at: usize::MAX,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct DiskRun {
    offset: u64,
    keys: u64,
}

/// An unlinked temporary file that runs are appended to.
#[derive(Debug)]
struct SpillFile {
    file: File,
    /// Bytes written so far: the next run's offset.
    end: Mutex<u64>,
    /// The first failed read, reported by [`SortedLog::read_error`].
    read_error: Mutex<Option<String>>,
}

impl<K: Key> SortedLog<K> {
    /// A log that keeps about `budget_bytes` of keys in memory and writes the rest to a
    /// temporary file.
    pub fn spilling(budget_bytes: usize) -> Self {
        Self {
            spill_at: (budget_bytes / K::BYTES).max(1),
            ..Self::default()
        }
    }

    /// Keys added so far.
    pub fn len(&self) -> u64 {
        let in_memory = self.pending.len() + self.runs.iter().map(Vec::len).sum::<usize>();
        in_memory as u64 + self.spilled.iter().map(|run| run.keys).sum::<u64>()
    }

    pub fn push(&mut self, key: K) {
        self.pending.push(key);
        if self.pending.len() >= self.spill_at {
            self.spill_pending();
        } else if self.spill_at == usize::MAX && self.pending.len() >= BATCH {
            self.seal_pending();
        }
    }

    pub fn extend(&mut self, keys: impl IntoIterator<Item = K>) {
        for key in keys {
            self.push(key);
        }
    }

    /// Moves every key of `other` into this log: the same as
    /// `extend(other.iter_sorted())`, but without sorting what need not be: when neither log
    /// spills, `other`'s sorted runs are taken over whole instead of re-read key by key, and
    /// when only this one does, `other`'s keys are added unsorted.
    pub fn absorb(&mut self, mut other: Self) {
        if other.spill.is_some() {
            self.extend(other.iter_sorted());
            return;
        }
        if self.spill_at != usize::MAX {
            // This log sorts what it holds when it spills: `other`'s keys join it in any
            // order (sorting them first, a chunk at a time, doubled the sorting).
            self.extend(other.runs.into_iter().flatten().chain(other.pending));
            return;
        }
        other.pending.sort_unstable();
        for run in other.runs.into_iter().chain([other.pending]) {
            if !run.is_empty() {
                self.push_run(run);
            }
        }
    }

    /// Sorts the pending keys into a run.
    fn seal_pending(&mut self) {
        let mut run = std::mem::take(&mut self.pending);
        run.sort_unstable();
        self.push_run(run);
    }

    /// Adds a sorted run and merges runs of similar length, so there are O(log n) of them to
    /// merge when the log is read.
    fn push_run(&mut self, run: Vec<K>) {
        self.runs.push(run);
        while let [.., longer, shorter] = &self.runs[..] {
            if longer.len() > 2 * shorter.len() {
                break;
            }
            let (Some(shorter), Some(longer)) = (self.runs.pop(), self.runs.pop()) else {
                break;
            };
            self.runs.push(merge_runs(&longer, &shorter));
        }
    }

    /// Sorts the pending keys and writes them out as one run. If the file cannot be made or
    /// written, the keys stay in memory and the log stops trying: slower to grow, never lost.
    fn spill_pending(&mut self) {
        // Two halves on two cores, merged as they are written: a budget's worth of keys (a
        // million) took one core tens of milliseconds to sort, and the thread that merges
        // every chunk, sorting them, held up the parser threads waiting to hand it the next.
        let half = self.pending.len() / 2;
        let (low, high) = self.pending.split_at_mut(half);
        rayon::join(|| low.sort_unstable(), || high.sort_unstable());
        match self.write_run(half) {
            Ok(run) => {
                self.spilled.push(run);
                self.pending.clear();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot spill aggregate state to a temporary file; keeping it in memory");
                self.spill_at = usize::MAX;
                self.seal_pending();
            }
        }
    }

    fn spill_file(&mut self) -> io::Result<Arc<SpillFile>> {
        if let Some(spill) = &self.spill {
            return Ok(Arc::clone(spill));
        }
        let spill = Arc::new(SpillFile {
            file: unlinked_temp_file()?,
            end: Mutex::new(0),
            read_error: Mutex::new(None),
        });
        self.spill = Some(Arc::clone(&spill));
        Ok(spill)
    }

    /// Writes the pending keys to the spill file in order, a block at a time, merging the
    /// two sorted parts they are in: those before `split` and those from it.
    fn write_run(&mut self, split: usize) -> io::Result<DiskRun> {
        const BLOCK_KEYS: usize = 1 << 16;
        let spill = self.spill_file()?;
        // Clones of this log share the file; each run gets its own range of it.
        let mut end = spill.end.lock().unwrap_or_else(|e| e.into_inner());
        let offset = *end;
        let mut block = Vec::with_capacity(BLOCK_KEYS * K::BYTES);
        let mut written = offset;
        let (low, high) = self.pending.split_at(split);
        let mut keys = merge_two(low.iter().copied(), high.iter().copied()).peekable();
        while keys.peek().is_some() {
            block.clear();
            for key in keys.by_ref().take(BLOCK_KEYS) {
                key.encode(&mut block);
            }
            spill.file.write_all_at(&block, written)?;
            written += block.len() as u64;
        }
        *end = written;
        Ok(DiskRun {
            offset,
            keys: self.pending.len() as u64,
        })
    }

    /// Sorts the keys not yet in a run, in place, so that reading the log later finds them in
    /// order (checking that costs one pass) instead of sorting them then.
    pub fn sort_pending(&mut self) {
        self.pending.sort_unstable();
    }

    /// Every key in ascending order. A spill-file read that fails ends its run early; the
    /// error is then reported by [`read_error`](Self::read_error).
    pub fn iter_sorted(&self) -> impl Iterator<Item = K> + '_ {
        let mut pending = self.pending.clone();
        pending.sort_unstable();
        let mut sources: Vec<Box<dyn Iterator<Item = K> + '_>> = Vec::new();
        for reader in self.run_readers() {
            sources.push(Box::new(reader));
        }
        for run in &self.runs {
            sources.push(Box::new(run.iter().copied()));
        }
        sources.push(Box::new(pending.into_iter()));
        merge_all(sources)
    }

    /// A reader for each run written out, their blocks sized to share the log's budget.
    fn run_readers(&self) -> Vec<RunReader<'_, K>> {
        let Some(spill) = &self.spill else {
            return Vec::new();
        };
        let block_keys = read_block_keys::<K>(self.spilled.len(), self.spill_at);
        self.spilled
            .iter()
            .map(|run| RunReader::new(spill, *run, block_keys))
            .collect()
    }

    /// Whether the log writes runs out past a budget (for tests of what spills).
    #[cfg(test)]
    pub fn spills(&self) -> bool {
        self.spill_at != usize::MAX
    }

    /// How many runs were written to the temporary file (for tests of what spills).
    #[cfg(test)]
    pub fn spilled_runs(&self) -> usize {
        self.spilled.len()
    }

    /// Cuts the temporary file to nothing, so that reading the spilled runs back fails (for
    /// tests of how that failure is reported).
    #[cfg(test)]
    pub fn lose_spill_file(&self) {
        if let Some(spill) = &self.spill {
            spill.file.set_len(0).unwrap();
        }
    }

    /// Why reading the spill file back failed, if it did.
    pub fn read_error(&self) -> Option<String> {
        let spill = self.spill.as_ref()?;
        spill
            .read_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl<K: Key> PartialEq for SortedLog<K> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter_sorted().eq(other.iter_sorted())
    }
}

/// A new file in the system's temporary directory, removed from it at once: it lives only as
/// long as this handle, and nothing is left behind if the process dies.
fn unlinked_temp_file() -> io::Result<File> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "invmetrics-spill-{}-{nanos}-{n}",
        std::process::id()
    ));
    // `create_new`: never an existing file, whoever made it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Keys per read of a run: at most this many (larger reads gain nothing measurable)…
const MAX_READ_BLOCK_KEYS: usize = 8192;
/// …and at least this many, whatever the number of runs, so that reads stay a few pages long.
const MIN_READ_BLOCK_KEYS: usize = 512;

/// Keys per read when `runs` runs of a log that keeps `budget_keys` keys in memory are
/// merged at once. Every run being merged holds a block (its bytes and the keys decoded from
/// them), so a fixed block size would make the memory of a merge grow with the input: a
/// 100 M-record scan spills hundreds of runs. Shared out of the log's own budget instead,
/// the blocks stay within it until the log has spilled more than budget / (512 × 2 × key
/// size) runs — 512 runs of 16-byte keys or 1,024 of 8-byte keys, 4 or 8 GB written out at
/// the default 8 MB budget — and grow by one minimal block per run past that.
fn read_block_keys<K: Key>(runs: usize, budget_keys: usize) -> u64 {
    let per_key = K::BYTES + std::mem::size_of::<K>();
    let keys = budget_keys.saturating_mul(K::BYTES) / per_key / runs.max(1);
    keys.clamp(MIN_READ_BLOCK_KEYS, MAX_READ_BLOCK_KEYS) as u64
}

/// Reads one spilled run back, a block at a time.
struct RunReader<'a, K> {
    spill: &'a SpillFile,
    next_offset: u64,
    keys_left: u64,
    /// Keys decoded per read.
    block_keys: u64,
    block: std::vec::IntoIter<K>,
    bytes: Vec<u8>,
}

impl<'a, K: Key> RunReader<'a, K> {
    fn new(spill: &'a SpillFile, run: DiskRun, block_keys: u64) -> Self {
        Self {
            spill,
            next_offset: run.offset,
            keys_left: run.keys,
            block_keys,
            block: Vec::new().into_iter(),
            bytes: Vec::new(),
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        let keys = self.keys_left.min(self.block_keys);
        let len = keys as usize * K::BYTES;
        self.bytes.resize(len, 0);
        self.spill
            .file
            .read_exact_at(&mut self.bytes, self.next_offset)?;
        self.next_offset += len as u64;
        self.keys_left -= keys;
        let block: Vec<K> = self.bytes.chunks_exact(K::BYTES).map(K::decode).collect();
        self.block = block.into_iter();
        Ok(())
    }
}

impl<K: Key> Iterator for RunReader<'_, K> {
    type Item = K;

    fn next(&mut self) -> Option<K> {
        if let Some(key) = self.block.next() {
            return Some(key);
        }
        if self.keys_left == 0 {
            return None;
        }
        if let Err(error) = self.refill() {
            let mut first = self
                .spill
                .read_error
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| format!("cannot read back the spill file: {error}"));
            self.keys_left = 0;
            return None;
        }
        self.block.next()
    }
}

/// Merges two ascending runs in memory (a plain loop over slices: several times faster than
/// [`merge_two`]'s iterators, and runs are merged often).
fn merge_runs<K: Key>(a: &[K], b: &[K]) -> Vec<K> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if b[j] < a[i] {
            merged.push(b[j]);
            j += 1;
        } else {
            merged.push(a[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend_from_slice(&b[j..]);
    merged
}

/// Merges two ascending sequences into one.
fn merge_two<K: Key>(
    a: impl Iterator<Item = K>,
    b: impl Iterator<Item = K>,
) -> impl Iterator<Item = K> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek().copied(), b.peek().copied()) {
        (Some(x), Some(y)) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// Merges any number of ascending sequences into one.
fn merge_all<'a, K: Key>(
    mut sources: Vec<Box<dyn Iterator<Item = K> + 'a>>,
) -> Box<dyn Iterator<Item = K> + 'a> {
    match sources.len() {
        0 => Box::new(std::iter::empty()),
        1 => sources
            .pop()
            .unwrap_or_else(|| Box::new(std::iter::empty())),
        2 => {
            let (Some(b), Some(a)) = (sources.pop(), sources.pop()) else {
                return Box::new(std::iter::empty());
            };
            Box::new(merge_two(a, b))
        }
        _ => {
            let mut heads: BinaryHeap<Reverse<(K, usize)>> = sources
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.next().map(|k| Reverse((k, i))))
                .collect();
            Box::new(std::iter::from_fn(move || {
                let Reverse((key, i)) = heads.pop()?;
                if let Some(next) = sources[i].next() {
                    heads.push(Reverse((next, i)));
                }
                Some(key)
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shuffled(n: u64, seed: u64) -> Vec<u64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| rng.u64(0..n / 2 + 1)).collect()
    }

    #[test]
    fn reads_back_sorted_across_batches_and_merges() {
        let keys = shuffled(5 * BATCH as u64 + 17, 1);
        let mut log = SortedLog::default();
        log.extend(keys.iter().copied());
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(log.iter_sorted().collect::<Vec<_>>(), expected);
        assert_eq!(log.len(), keys.len() as u64);
        assert!(log.runs.len() <= 3, "runs of similar length are merged");
        assert!(log.spilled.is_empty());
    }

    /// The blocks of every run read back at once, in bytes read plus keys decoded, stay
    /// within the log's budget up to 512 (16-byte keys) or 1,024 (8-byte keys) runs at the
    /// default budget, and are never smaller than the minimum.
    #[test]
    fn read_blocks_share_the_logs_budget_however_many_runs() {
        fn held_bytes<K: Key>(runs: usize) -> usize {
            let block_keys = read_block_keys::<K>(runs, DEFAULT_SPILL_BUDGET_BYTES / K::BYTES);
            block_keys as usize * (K::BYTES + std::mem::size_of::<K>()) * runs
        }
        for runs in [1, 2, 63, 64, 65, 300, 511, 512] {
            assert!(
                held_bytes::<u128>(runs) <= DEFAULT_SPILL_BUDGET_BYTES,
                "{runs} runs"
            );
        }
        for runs in [1, 2, 300, 1023, 1024] {
            assert!(
                held_bytes::<u64>(runs) <= DEFAULT_SPILL_BUDGET_BYTES,
                "{runs} runs"
            );
        }
        // Between the bounds, the budget in bytes over a key's bytes read and decoded.
        assert_eq!(read_block_keys::<u64>(100, 1 << 20), (8 << 20) / 16 / 100);
        assert_eq!(read_block_keys::<u128>(100, 1 << 19), (8 << 20) / 32 / 100);
        assert_eq!(
            read_block_keys::<u64>(1, 1 << 20),
            MAX_READ_BLOCK_KEYS as u64
        );
        assert_eq!(
            read_block_keys::<u128>(513, 1 << 19),
            MIN_READ_BLOCK_KEYS as u64
        );
        assert_eq!(read_block_keys::<u64>(10, 64), MIN_READ_BLOCK_KEYS as u64);
        // A log whose spill failed (budget unlimited since) reads in the largest blocks.
        assert_eq!(
            read_block_keys::<u64>(10, usize::MAX),
            MAX_READ_BLOCK_KEYS as u64
        );
    }

    /// Hundreds of runs, each read back in several blocks smaller than itself.
    #[test]
    fn reads_back_hundreds_of_runs_in_small_blocks() {
        let keys = shuffled(700 * 1024, 9);
        let mut log = SortedLog::<u64>::spilling(1024 * 8);
        log.extend(keys.iter().copied());
        assert!(log.spilled_runs() >= 680, "{} runs", log.spilled_runs());
        let mut readers = log.run_readers();
        let block_keys = read_block_keys::<u64>(log.spilled_runs(), log.spill_at);
        assert!(block_keys < 1024, "{block_keys} keys a block");
        assert_eq!(readers.len(), log.spilled_runs());
        for (reader, run) in readers.iter_mut().zip(&log.spilled) {
            assert_eq!(reader.block_keys, block_keys);
            // The first key reads one block, not the run.
            assert!(reader.next().is_some());
            assert_eq!(reader.keys_left, run.keys - block_keys);
        }
        let mut expected = keys;
        expected.sort_unstable();
        assert!(log.iter_sorted().eq(expected));
        assert_eq!(log.read_error(), None);
    }

    /// Every pairing of spilling and in-memory logs keeps every key, and a spilling log stays
    /// within its budget after absorbing however much the other held in memory.
    #[test]
    fn absorbing_a_log_equals_extending_with_its_keys() {
        let (a, b) = (
            shuffled(3 * BATCH as u64 + 5, 3),
            shuffled(BATCH as u64 + 9, 4),
        );
        let mut expected: Vec<u64> = a.iter().chain(&b).copied().collect();
        expected.sort_unstable();
        let new = |spilling| match spilling {
            true => SortedLog::spilling(4096),
            false => SortedLog::default(),
        };
        for (left_spills, right_spills) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            let case = format!("left spills: {left_spills}, right spills: {right_spills}");
            let (mut left, mut right) = (new(left_spills), new(right_spills));
            left.extend(a.iter().copied());
            right.extend(b.iter().copied());
            left.absorb(right);
            assert!(left.iter_sorted().eq(expected.iter().copied()), "{case}");
            assert_eq!(left.len(), expected.len() as u64, "{case}");
            if left_spills {
                assert!(
                    left.runs.is_empty() && left.pending.len() < left.spill_at,
                    "{case}"
                );
            }
        }
    }

    /// Below a batch, keys wait unsorted; a spilling log with the default budget writes
    /// nothing for a few keys; and runs of similar length are merged while a much longer one
    /// is left alone — O(log n) runs, without merging everything again on every batch.
    #[test]
    fn small_logs_stay_in_memory_and_runs_merge_by_length() {
        let mut log = SortedLog::default();
        log.extend(0..100u64);
        assert!(log.runs.is_empty() && log.pending.len() == 100);
        let mut spilling = SortedLog::spilling(DEFAULT_SPILL_BUDGET_BYTES);
        spilling.extend(0..100_000u64);
        assert_eq!(spilling.spilled_runs(), 0);

        let batch = BATCH as u64;
        let mut log = SortedLog::default();
        let mut lengths = Vec::new();
        for n in 0..4 {
            log.extend((0..batch).map(|k| k * 4 + n));
            lengths.push(log.runs.iter().map(Vec::len).collect::<Vec<_>>());
        }
        let b = BATCH;
        assert_eq!(lengths, [vec![b], vec![2 * b], vec![3 * b], vec![3 * b, b]]);
        assert!(log.iter_sorted().eq(0..4 * batch));
    }

    /// Logs are equal when they hold the same keys, whatever order they came in.
    #[test]
    fn logs_are_equal_only_with_the_same_keys() {
        let of = |keys: &[u64]| {
            let mut log = SortedLog::default();
            log.extend(keys.iter().copied());
            log
        };
        assert_eq!(of(&[1, 2, 3]), of(&[3, 1, 2]));
        assert_ne!(of(&[1, 2, 3]), of(&[1, 2, 4]));
        assert_ne!(of(&[1, 2, 3]), of(&[1, 2]));
    }

    #[test]
    fn a_spilling_log_writes_runs_out_and_reads_them_back_in_order() {
        let mut log = SortedLog::<u128>::spilling(DEFAULT_SPILL_BUDGET_BYTES);
        let n = 3 * log.spill_at as u64 + 1000;
        let keys: Vec<u128> = shuffled(n, 2).into_iter().map(u128::from).collect();
        log.extend(keys.iter().copied());
        assert!(log.spilled.len() >= 3, "{} runs on disk", log.spilled.len());
        assert!(log.pending.len() < log.spill_at && log.runs.is_empty());
        let clone = log.clone();
        let mut expected = keys;
        expected.sort_unstable();
        assert!(log.iter_sorted().eq(expected.iter().copied()));
        assert!(clone == log);
        assert_eq!(log.read_error(), None);
    }

    #[test]
    fn a_tiny_budget_makes_many_runs_that_still_merge_in_order() {
        let mut log = SortedLog::<u64>::spilling(100);
        let keys = shuffled(10_000, 3);
        log.extend(keys.iter().copied());
        assert!(log.spilled.len() > 500, "{} runs", log.spilled.len());
        let mut expected = keys;
        expected.sort_unstable();
        assert!(log.iter_sorted().eq(expected));
    }

    #[test]
    fn empty_logs_are_equal_and_empty() {
        let log = SortedLog::<i64>::spilling(DEFAULT_SPILL_BUDGET_BYTES);
        assert_eq!(log.iter_sorted().count(), 0);
        assert!(log == SortedLog::default());
    }
}
