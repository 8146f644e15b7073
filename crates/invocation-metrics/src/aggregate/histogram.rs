//! A mergeable histogram of durations: exact below 2,048 ms, within 0.1% above, in bounded
//! memory (a few thousand counters however many records it holds).

use std::collections::HashMap;

use crate::hashing::FastHash;

/// Durations below this are counted exactly, one counter each.
const EXACT_BELOW: u64 = 2048;
/// Above it, each power of two is split into 2^10 equal counters: relative error < 1/1024.
const SUB_BUCKET_BITS: u32 = 10;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;

/// Distinct buckets a histogram keeps in a hash map before switching to one counter per
/// bucket. Groups are often small and many (an agent per task, say): a dense array of ~10,000
/// counters each made 20,000 agents cost 1.4 GB; a map costs about 20 bytes per distinct
/// bucket, and only a group that fills this many buckets has records enough to pay for an
/// array.
const SPARSE_MAX: usize = 1024;

#[derive(Debug, Clone, Default)]
pub(super) struct DurationHistogram {
    counts: Counts,
    total: u64,
    /// Meaningful once `total > 0`.
    min: u64,
    max: u64,
}

/// Buckets a histogram keeps in a short sorted list before switching to a hash map. Most
/// groups of a file with very many groups (an agent per task) see a handful of records: a
/// list that small is searched faster than a map is hashed, allocates once, and is already
/// in order when percentiles are read.
const FEW_MAX: usize = 32;

/// Buckets added one at a time that wait, unsorted, before they are counted together.
const PENDING_MAX: usize = 64;

/// Counts per bucket. Where the counters are small and many (a histogram per group, thousands
/// of groups), a single add is appended to `pending` — a store, which need not wait for the
/// cache — and counted with the next [`PENDING_MAX`] at once, in bucket order; finding the
/// counter on every add missed the cache twice (a fifth of a summary of 4,000 phases).
#[derive(Debug, Clone, Default)]
struct Counts {
    pending: Vec<u32>,
    counted: Counted,
}

/// The counted buckets: which form holds them changes memory and speed, never a result.
#[derive(Debug, Clone)]
enum Counted {
    /// One bucket and its count: the most common group of all holds one record.
    Single(u32, u64),
    /// Up to [`FEW_MAX`] (bucket, count) pairs, sorted by bucket, counts above zero.
    Few(Vec<(u32, u64)>),
    /// Count by bucket, counts above zero. A map rather than a sorted list: inserting into
    /// a list of hundreds of buckets moved the rest of the list each time, a tenth of a
    /// summary's time.
    Sparse(HashMap<u32, u64, FastHash>),
    /// Indexed by bucket.
    Dense(Vec<u64>),
}

impl Default for Counted {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl Counts {
    fn add(&mut self, bucket: usize, n: u64) {
        match &mut self.counted {
            // A dense array's counters are few and warm: counted at once.
            Counted::Dense(counts) if bucket < counts.len() => counts[bucket] += n,
            // The first add needs no allocation.
            Counted::Few(pairs) if pairs.is_empty() && self.pending.is_empty() => {
                self.counted = Counted::Single(bucket as u32, n);
            }
            _ if n == 1 => {
                // Buckets are below 60,000 (see the tests), so u32 holds them.
                self.pending.push(bucket as u32);
                if self.pending.len() == PENDING_MAX {
                    self.count_pending();
                }
            }
            counted => counted.add(bucket, n),
        }
    }

    /// Counts the pending buckets, a run of equal ones at a time.
    fn count_pending(&mut self) {
        self.pending.sort_unstable();
        for run in self.pending.chunk_by(|a, b| a == b) {
            self.counted.add(run[0] as usize, run.len() as u64);
        }
        self.pending.clear();
    }

    /// (bucket, count) in bucket order, counts above zero.
    fn iter(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let mut sorted = self.pending.clone();
        sorted.sort_unstable();
        // Runs of equal pending buckets, counted as they are reached (no second list).
        let mut at = 0;
        let pending = std::iter::from_fn(move || {
            let bucket = *sorted.get(at)?;
            let run = sorted[at..].iter().take_while(|&&b| b == bucket).count();
            at += run;
            Some((bucket as usize, run as u64))
        });
        let (mut counted, mut pending) = (self.counted.iter().peekable(), pending.peekable());
        std::iter::from_fn(move || match (counted.peek(), pending.peek()) {
            (Some(&(a, n)), Some(&(b, m))) if a == b => {
                counted.next();
                pending.next();
                Some((a, n + m))
            }
            (Some(&(a, _)), Some(&(b, _))) if b < a => pending.next(),
            (Some(_), _) => counted.next(),
            (None, _) => pending.next(),
        })
    }
}

impl Counted {
    fn add(&mut self, bucket: usize, n: u64) {
        let key = bucket as u32;
        match self {
            Self::Few(pairs) if pairs.is_empty() => *self = Self::Single(key, n),
            Self::Single(only, count) if *only == key => *count += n,
            Self::Single(only, count) => {
                let mut pairs = Vec::with_capacity(4);
                pairs.push((*only, *count));
                let at = usize::from(key > *only);
                pairs.insert(at, (key, n));
                *self = Self::Few(pairs);
            }
            Self::Few(pairs) => match pairs.binary_search_by_key(&key, |(b, _)| *b) {
                Ok(at) => pairs[at].1 += n,
                Err(_) if pairs.len() == FEW_MAX => {
                    let mut counts: HashMap<u32, u64, FastHash> = pairs.iter().copied().collect();
                    counts.insert(key, n);
                    *self = Self::Sparse(counts);
                }
                Err(at) => pairs.insert(at, (key, n)),
            },
            Self::Dense(counts) => {
                if bucket >= counts.len() {
                    counts.resize(bucket + 1, 0);
                }
                counts[bucket] += n;
            }
            Self::Sparse(counts) => {
                *counts.entry(key).or_default() += n;
                if counts.len() > SPARSE_MAX {
                    self.densify();
                }
            }
        }
    }

    fn densify(&mut self) {
        let pairs: Vec<(usize, u64)> = match self {
            Self::Dense(_) => return,
            _ => self.iter().collect(),
        };
        let len = pairs.last().map_or(0, |(b, _)| b + 1);
        let mut counts = vec![0; len];
        for (bucket, n) in pairs {
            counts[bucket] = n;
        }
        *self = Self::Dense(counts);
    }

    /// (bucket, count) in bucket order, counts above zero.
    fn iter(&self) -> CountedIter<'_> {
        match self {
            Self::Single(only, count) => CountedIter::Single(Some((*only, *count))),
            Self::Few(pairs) => CountedIter::Few(pairs.iter()),
            Self::Sparse(counts) => {
                let mut pairs: Vec<(u32, u64)> = counts.iter().map(|(b, n)| (*b, *n)).collect();
                pairs.sort_unstable();
                CountedIter::Sorted(pairs.into_iter())
            }
            Self::Dense(counts) => CountedIter::Dense(counts.iter().enumerate()),
        }
    }
}

/// [`Counted::iter`]'s iterator: one type for every form, so that listing the most common
/// histogram of all (a group's one record) allocates nothing.
enum CountedIter<'a> {
    Single(Option<(u32, u64)>),
    Few(std::slice::Iter<'a, (u32, u64)>),
    Sorted(std::vec::IntoIter<(u32, u64)>),
    Dense(std::iter::Enumerate<std::slice::Iter<'a, u64>>),
}

impl Iterator for CountedIter<'_> {
    type Item = (usize, u64);

    fn next(&mut self) -> Option<(usize, u64)> {
        let (bucket, n) = match self {
            Self::Single(only) => only.take()?,
            Self::Few(pairs) => *pairs.next()?,
            Self::Sorted(pairs) => pairs.next()?,
            Self::Dense(counts) => {
                let (bucket, n) = counts.find(|(_, n)| **n > 0)?;
                return Some((bucket, *n));
            }
        };
        Some((bucket as usize, n))
    }
}

impl PartialEq for DurationHistogram {
    fn eq(&self, other: &Self) -> bool {
        (self.total, self.min(), self.max) == (other.total, other.min(), other.max)
            && self.counts.iter().eq(other.counts.iter())
    }
}

impl Eq for DurationHistogram {}

fn bucket_of(d: u64) -> usize {
    if d < EXACT_BELOW {
        return d as usize;
    }
    let exponent = 63 - d.leading_zeros(); // >= 11
    let shift = exponent - SUB_BUCKET_BITS;
    let index = EXACT_BELOW
        + u64::from(exponent - (EXACT_BELOW.trailing_zeros())) * SUB_BUCKETS
        + ((d >> shift) - SUB_BUCKETS);
    index as usize
}

/// The smallest duration that falls in bucket `index`.
fn lower_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT_BELOW {
        return index;
    }
    let k = index - EXACT_BELOW;
    let exponent = k / SUB_BUCKETS + u64::from(EXACT_BELOW.trailing_zeros());
    let mantissa = k % SUB_BUCKETS + SUB_BUCKETS;
    mantissa << (exponent - u64::from(SUB_BUCKET_BITS))
}

impl DurationHistogram {
    pub fn add(&mut self, d: u64) {
        self.counts.add(bucket_of(d), 1);
        self.min = if self.total == 0 { d } else { self.min.min(d) };
        self.total += 1;
        self.max = self.max.max(d);
    }

    pub fn merge(&mut self, other: &Self) {
        if let Counted::Dense(theirs) = &other.counts.counted
            && theirs.len() > SPARSE_MAX
        {
            self.counts.counted.densify();
        }
        // Their pending adds join ours as they are, unsorted: listing them through `iter`
        // copied and sorted them first, for each of thousands of small groups.
        for &bucket in &other.counts.pending {
            self.counts.add(bucket as usize, 1);
        }
        for (bucket, n) in other.counts.counted.iter() {
            self.counts.add(bucket, n);
        }
        if other.total > 0 {
            self.min = if self.total == 0 {
                other.min
            } else {
                self.min.min(other.min)
            };
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The shortest duration added; 0 when none was.
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// One percentile (for tests): see [`percentiles`](Self::percentiles).
    #[cfg(test)]
    pub fn percentile(&self, p: u64) -> u64 {
        self.percentiles([p])[0]
    }

    /// The nearest-rank percentiles `ps`, which must be in ascending order, in one pass over
    /// the buckets (a summary asks for five per group): exact below 2,048 ms; above, the
    /// true value `v` satisfies `result <= v < result * (1 + 1/1024)`.
    pub fn percentiles<const N: usize>(&self, ps: [u64; N]) -> [u64; N] {
        assert!(
            ps.is_sorted(),
            "percentiles are asked for in ascending order"
        );
        let rank = |p: u64| (self.total * p).div_ceil(100).max(1);
        let mut found = [0; N];
        let (mut next, mut seen) = (0, 0);
        for (index, n) in self.counts.iter() {
            seen += n;
            while next < N && seen >= rank(ps[next]) {
                found[next] = lower_bound(index).min(self.max);
                next += 1;
            }
            if next == N {
                break;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_2048_and_tight_above() {
        for d in 0..EXACT_BELOW {
            assert_eq!(lower_bound(bucket_of(d)), d);
        }
        for d in (EXACT_BELOW..1 << 40)
            .step_by(7_777_777)
            .chain([u64::MAX, 2048, 4095, 4096])
        {
            let low = lower_bound(bucket_of(d));
            assert!(
                low <= d && (d - low) as f64 <= d as f64 / 1024.0,
                "{d} -> {low}"
            );
        }
        assert!(bucket_of(u64::MAX) < 60_000);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut h = DurationHistogram::default();
        for d in 1..=100 {
            h.add(d);
        }
        assert_eq!(
            (h.percentile(50), h.percentile(95), h.percentile(99)),
            (50, 95, 99)
        );
        assert_eq!(h.max(), 100);
        let mut other = DurationHistogram::default();
        other.add(1_000_000);
        h.merge(&other);
        let top = h.percentile(100);
        assert!(
            top <= 1_000_000 && 1_000_000 - top < 1_000_000 / 1024,
            "{top}"
        );
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.min(), 1);
        let mut later = DurationHistogram::default();
        assert_eq!(later.min(), 0);
        later.add(7);
        later.merge(&DurationHistogram::default());
        h.merge(&later);
        assert_eq!((later.min(), h.min()), (7, 1));
    }

    #[test]
    fn small_histograms_stay_lists_and_every_form_gives_the_same_answers() {
        let durations: Vec<u64> = (0..6000u64).map(|i| (i * 7919) % 4_000_000).collect();
        let mut whole = DurationHistogram::default();
        durations.iter().for_each(|d| whole.add(*d));
        assert!(matches!(whole.counts.counted, Counted::Dense(_)));

        let histograms_of_chunks = |size: usize| -> Vec<DurationHistogram> {
            durations
                .chunks(size)
                .map(|chunk| {
                    let mut h = DurationHistogram::default();
                    chunk.iter().for_each(|d| h.add(*d));
                    h
                })
                .collect()
        };
        let parts = histograms_of_chunks(100);
        assert!(
            parts
                .iter()
                .all(|h| matches!(h.counts.counted, Counted::Sparse(_)))
        );
        let few = histograms_of_chunks(20);
        assert!(
            few.iter()
                .all(|h| matches!(h.counts.counted, Counted::Single(..) | Counted::Few(_)))
        );
        let mut merged_few = DurationHistogram::default();
        few.iter().rev().for_each(|h| merged_few.merge(h));
        assert_eq!(merged_few, whole);
        let mut merged = DurationHistogram::default();
        parts.iter().for_each(|h| merged.merge(h));
        let mut merged_backwards = DurationHistogram::default();
        parts.iter().rev().for_each(|h| merged_backwards.merge(h));

        assert_eq!(merged, whole);
        assert_eq!(merged_backwards, whole);
        for p in [0, 1, 25, 50, 75, 95, 99, 100] {
            assert_eq!(merged.percentile(p), whole.percentile(p), "p{p}");
        }
        assert_eq!((merged.min(), merged.max()), (whole.min(), whole.max()));
    }

    /// Whatever form holds the counts, each bucket appears once, in order, with its total —
    /// a bucket added again (the one-bucket form included) is counted, not listed twice.
    #[test]
    fn each_bucket_is_listed_once_in_order_in_every_form() {
        for distinct in [1usize, 2, FEW_MAX, FEW_MAX + 1, 5 * FEW_MAX, SPARSE_MAX + 1] {
            let mut counts = Counts::default();
            let mut reference = std::collections::BTreeMap::new();
            for round in 0..3u64 {
                for b in (0..distinct).rev() {
                    let bucket = b * 3;
                    counts.add(bucket, round + 1);
                    *reference.entry(bucket).or_insert(0) += round + 1;
                }
            }
            let listed: Vec<(usize, u64)> = counts.iter().collect();
            assert_eq!(
                listed,
                reference.into_iter().collect::<Vec<_>>(),
                "{distinct} buckets"
            );
        }
    }

    /// Percentiles asked for together are each the nearest-rank percentile of the durations
    /// themselves (sorted here, without the histogram) rounded down to its bucket, whatever
    /// form holds the counts and however many adds are pending.
    #[test]
    fn percentiles_in_one_pass_are_nearest_ranks_of_the_durations() {
        let mut rng = fastrand::Rng::with_seed(11);
        for records in [0u64, 1, 2, 3, 7, 40, 63, 64, 65, 500, 5_000] {
            let mut h = DurationHistogram::default();
            let mut durations = Vec::new();
            for _ in 0..records {
                let bits = rng.u32(1..30);
                let d = rng.u64(0..1 << bits);
                h.add(d);
                durations.push(d);
            }
            durations.sort_unstable();
            let ps = [0, 1, 25, 50, 50, 75, 95, 99, 100];
            let expected = ps.map(|p| {
                let rank = (records * p).div_ceil(100).max(1) as usize;
                durations
                    .get(rank - 1)
                    .map_or(0, |&d| lower_bound(bucket_of(d)))
            });
            assert_eq!(h.percentiles(ps), expected, "{records} records");
            assert_eq!(ps.map(|p| h.percentile(p)), expected, "{records} records");
        }
    }

    /// A histogram's first add is held as a single bucket, allocating nothing: most groups
    /// of a file with a group per record hold one record (docs/RELIABILITY.md's
    /// million-distinct-names case is sized by it).
    #[test]
    fn a_first_add_allocates_nothing() {
        let mut h = DurationHistogram::default();
        h.add(5_000);
        assert!(h.counts.pending.capacity() == 0, "{:?}", h.counts);
        assert!(
            matches!(h.counts.counted, Counted::Single(_, 1)),
            "{:?}",
            h.counts
        );
        h.add(7);
        assert_eq!(h.counts.iter().count(), 2);
    }

    /// Every add is counted in every form the counts pass through and whatever is waiting:
    /// a few distinct buckets (a short list once the buffer is counted), a few dozen (the
    /// list's limit), more (a map, then an array), against a plain count of each bucket.
    #[test]
    fn every_add_is_counted_through_every_form() {
        for distinct in [1u64, 2, 5, 31, 32, 33, 100, 3_000] {
            for adds in [1, 2, 63, 64, 65, 129, 1_000] {
                let mut h = DurationHistogram::default();
                let mut reference = std::collections::BTreeMap::new();
                for i in 0..adds {
                    let d = (i * 7_919) % distinct * 3;
                    h.add(d);
                    *reference.entry(bucket_of(d)).or_insert(0u64) += 1;
                }
                let counted: Vec<(usize, u64)> = h.counts.iter().collect();
                let expected: Vec<(usize, u64)> = reference.into_iter().collect();
                assert_eq!(counted, expected, "{adds} adds over {distinct} durations");
            }
        }
    }

    /// Single adds wait unsorted and are counted in batches: whatever is pending, counted,
    /// or both, every listing and percentile is the same as counting each add at once —
    /// also for a bucket past the end of a dense array.
    #[test]
    fn pending_adds_count_the_same_as_counted_ones() {
        let durations: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 3_000).collect();
        for taken in [
            0,
            1,
            PENDING_MAX - 1,
            PENDING_MAX,
            PENDING_MAX + 1,
            1500,
            5000,
        ] {
            let mut h = DurationHistogram::default();
            durations[..taken].iter().for_each(|d| h.add(*d));
            // The reference: every count goes straight into the counted form.
            let mut reference = Counted::default();
            durations[..taken]
                .iter()
                .for_each(|d| reference.add(bucket_of(*d), 1));
            assert!(h.counts.pending.len() < PENDING_MAX, "{taken}");
            assert!(h.counts.iter().eq(reference.iter()), "{taken}");
        }
        let mut dense = DurationHistogram::default();
        durations.iter().for_each(|d| dense.add(*d));
        assert!(matches!(dense.counts.counted, Counted::Dense(_)));
        let waiting = dense.counts.pending.len();
        dense.add(1 << 30);
        dense.add(5);
        assert_eq!(
            dense.counts.pending.len(),
            waiting + 1,
            "only past the end waits"
        );
        let listed: Vec<(usize, u64)> = dense.counts.iter().collect();
        assert_eq!(listed.last(), Some(&(bucket_of(1 << 30), 1)));
        assert_eq!(dense.percentile(100), lower_bound(bucket_of(1 << 30)));
    }

    /// Equal means the same counts too, not only the same total and extremes.
    #[test]
    fn histograms_with_the_same_extremes_but_other_counts_differ() {
        let of = |durations: &[u64]| {
            let mut h = DurationHistogram::default();
            durations.iter().for_each(|d| h.add(*d));
            h
        };
        assert_eq!(of(&[10, 20, 30]), of(&[30, 10, 20]));
        assert_ne!(of(&[10, 20, 30]), of(&[10, 25, 30]));
        assert_ne!(of(&[10, 20, 30]), of(&[10, 20, 30, 30]));
    }
}
