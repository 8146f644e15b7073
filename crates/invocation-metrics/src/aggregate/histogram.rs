//! A mergeable histogram of durations: exact below 2,048 ms, within 0.1% above, in bounded
//! memory (a few thousand counters however many records it holds).

/// Durations below this are counted exactly, one counter each.
const EXACT_BELOW: u64 = 2048;
/// Above it, each power of two is split into 2^10 equal counters: relative error < 1/1024.
const SUB_BUCKET_BITS: u32 = 10;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;

/// Distinct buckets a histogram keeps in a sorted list before switching to one counter per
/// bucket. Groups are often small and many (an agent per task, say): a dense array of ~10,000
/// counters each made 20,000 agents cost 1.4 GB; a list costs 16 bytes per distinct bucket,
/// and only a group that fills this many buckets has records enough to pay for an array.
const LIST_MAX: usize = 1024;

#[derive(Debug, Clone, Default)]
pub(super) struct DurationHistogram {
    counts: Counts,
    total: u64,
    /// Meaningful once `total > 0`.
    min: u64,
    max: u64,
}

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
    /// Up to [`LIST_MAX`] (bucket, count) pairs, sorted by bucket, counts above zero. Adds
    /// arrive in sorted batches (the pending adds, another histogram's buckets) and are
    /// merged in one pass: a hash map instead, grown and rehashed as thousands of groups each
    /// filled a few hundred buckets, cost a sixth of a summary of 4,000 phases.
    List(Vec<(u32, u64)>),
    /// Indexed by bucket.
    Dense(Vec<u64>),
}

impl Default for Counted {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl Counts {
    #[inline]
    fn add(&mut self, bucket: usize) {
        // A dense array's counters are few and warm: counted at once, inline. The other
        // forms' adds are out of line, so that this one (a summary's most common add, five
        // per record) costs no call and no stack frame.
        if let Counted::Dense(counts) = &mut self.counted
            && let Some(count) = counts.get_mut(bucket)
        {
            *count += 1;
            return;
        }
        self.add_to_other(bucket);
    }

    /// An add to any form but a dense array that holds the bucket.
    #[inline(never)]
    fn add_to_other(&mut self, bucket: usize) {
        match &mut self.counted {
            // The first add needs no allocation.
            Counted::List(pairs) if pairs.is_empty() && self.pending.is_empty() => {
                self.counted = Counted::Single(bucket as u32, 1);
            }
            _ => {
                // Buckets are below 60,000 (see the tests), so u32 holds them.
                self.pending.push(bucket as u32);
                if self.pending.len() == PENDING_MAX {
                    self.count_pending();
                }
            }
        }
    }

    /// Counts the pending buckets, a run of equal ones at a time.
    fn count_pending(&mut self) {
        self.pending.sort_unstable();
        let runs = self
            .pending
            .chunk_by(|a, b| a == b)
            .map(|run| (run[0] as usize, run.len() as u64));
        self.counted.add_sorted(runs);
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
        merge_counts(self.counted.iter(), pending)
    }
}

/// Two ascending lists of (bucket, count) as one, the counts of a bucket in both added.
fn merge_counts(
    a: impl Iterator<Item = (usize, u64)>,
    b: impl Iterator<Item = (usize, u64)>,
) -> impl Iterator<Item = (usize, u64)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(&(x, n)), Some(&(y, m))) if x == y => {
            a.next();
            b.next();
            Some((x, n + m))
        }
        (Some(&(x, _)), Some(&(y, _))) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

impl Counted {
    /// Adds `runs`: (bucket, count) pairs in ascending order of bucket, each bucket once.
    fn add_sorted(&mut self, runs: impl Iterator<Item = (usize, u64)>) {
        let mut runs = runs.peekable();
        if runs.peek().is_none() {
            return;
        }
        if let Self::Dense(counts) = self {
            for (bucket, n) in runs {
                if bucket >= counts.len() {
                    counts.resize(bucket + 1, 0);
                }
                counts[bucket] += n;
            }
            return;
        }
        let merged: Vec<(u32, u64)> = merge_counts(self.iter(), runs)
            .map(|(bucket, n)| (bucket as u32, n))
            .collect();
        *self = match merged[..] {
            [(only, n)] => Self::Single(only, n),
            _ if merged.len() > LIST_MAX => Self::dense(merged.into_iter()),
            _ => Self::List(merged),
        };
    }

    /// Counts by bucket in an array, from (bucket, count) pairs in ascending order.
    fn dense(pairs: impl Iterator<Item = (u32, u64)>) -> Self {
        let mut counts = Vec::new();
        for (bucket, n) in pairs {
            let bucket = bucket as usize;
            counts.resize(bucket + 1, 0);
            counts[bucket] = n;
        }
        Self::Dense(counts)
    }

    fn densify(&mut self) {
        if !matches!(self, Self::Dense(_)) {
            *self = Self::dense(self.iter().map(|(bucket, n)| (bucket as u32, n)));
        }
    }

    /// (bucket, count) in bucket order, counts above zero.
    fn iter(&self) -> CountedIter<'_> {
        match self {
            Self::Single(only, count) => CountedIter::Single(Some((*only, *count))),
            Self::List(pairs) => CountedIter::List(pairs.iter()),
            Self::Dense(counts) => CountedIter::Dense(counts.iter().enumerate()),
        }
    }
}

/// [`Counted::iter`]'s iterator: one type for every form, so that listing the most common
/// histogram of all (a group's one record) allocates nothing.
enum CountedIter<'a> {
    Single(Option<(u32, u64)>),
    List(std::slice::Iter<'a, (u32, u64)>),
    Dense(std::iter::Enumerate<std::slice::Iter<'a, u64>>),
}

impl Iterator for CountedIter<'_> {
    type Item = (usize, u64);

    fn next(&mut self) -> Option<(usize, u64)> {
        let (bucket, n) = match self {
            Self::Single(only) => only.take()?,
            Self::List(pairs) => *pairs.next()?,
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
        self.counts.add(bucket_of(d));
        self.min = if self.total == 0 { d } else { self.min.min(d) };
        self.total += 1;
        self.max = self.max.max(d);
    }

    pub fn merge(&mut self, other: &Self) {
        if let Counted::Dense(theirs) = &other.counts.counted
            && theirs.len() > LIST_MAX
        {
            self.counts.counted.densify();
        }
        // Their pending adds join ours as they are, unsorted: listing them through `iter`
        // copied and sorted them first, for each of thousands of small groups.
        for &bucket in &other.counts.pending {
            self.counts.add(bucket as usize);
        }
        // A histogram of a few records (a chunk's share of one of thousands of groups) has
        // one bucket counted: it waits with the pending adds too, for a batch, instead of
        // rebuilding a list of hundreds for one bucket at every merge.
        match other.counts.counted {
            Counted::Single(bucket, n) if n <= PENDING_MAX as u64 => {
                for _ in 0..n {
                    self.counts.add(bucket as usize);
                }
            }
            ref counted => self.counts.counted.add_sorted(counted.iter()),
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
                .all(|h| matches!(&h.counts.counted, Counted::List(pairs) if pairs.len() > 32))
        );
        let few = histograms_of_chunks(20);
        assert!(
            few.iter()
                .all(|h| matches!(h.counts.counted, Counted::Single(..) | Counted::List(_)))
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
    /// a bucket added again (the one-bucket form included) is counted, not listed twice,
    /// whether it came one add at a time or in a sorted batch.
    #[test]
    fn each_bucket_is_listed_once_in_order_in_every_form() {
        for distinct in [1usize, 2, 32, 33, 160, LIST_MAX, LIST_MAX + 1] {
            let mut counts = Counts::default();
            let mut reference = std::collections::BTreeMap::new();
            for round in 0..3u64 {
                for b in (0..distinct).rev() {
                    let bucket = b * 3;
                    for _ in 0..=round {
                        counts.add(bucket);
                    }
                    *reference.entry(bucket).or_insert(0) += round + 1;
                }
                // A batch, as a merged histogram brings: every other bucket, and new ones.
                let batch: Vec<(usize, u64)> = (0..distinct + 2)
                    .step_by(2)
                    .map(|b| (b * 3 + usize::from(round == 2), 5))
                    .collect();
                for &(bucket, n) in &batch {
                    *reference.entry(bucket).or_insert(0) += n;
                }
                counts.counted.add_sorted(batch.into_iter());
            }
            let listed: Vec<(usize, u64)> = counts.iter().collect();
            assert_eq!(
                listed,
                reference.into_iter().collect::<Vec<_>>(),
                "{distinct} buckets"
            );
        }
    }

    /// A list stays a list up to its limit and becomes an array past it; one bucket is the
    /// one-bucket form, however it was reached.
    #[test]
    fn the_counted_form_follows_the_number_of_buckets() {
        let form = |buckets: usize| {
            let mut counted = Counted::default();
            counted.add_sorted((0..buckets).map(|b| (b * 2, 1)));
            counted
        };
        assert!(matches!(form(1), Counted::Single(0, 1)));
        assert!(matches!(form(2), Counted::List(pairs) if pairs.len() == 2));
        assert!(matches!(form(LIST_MAX), Counted::List(pairs) if pairs.len() == LIST_MAX));
        assert!(
            matches!(form(LIST_MAX + 1), Counted::Dense(counts) if counts.len() == 2 * LIST_MAX + 1)
        );
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
    /// a few distinct buckets (one, then a short list once the buffer is counted), hundreds
    /// (a long list), thousands (an array), against a plain count of each bucket.
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
            // The reference: a plain count of each bucket.
            let mut reference = std::collections::BTreeMap::new();
            durations[..taken]
                .iter()
                .for_each(|d| *reference.entry(bucket_of(*d)).or_insert(0u64) += 1);
            assert!(h.counts.pending.len() < PENDING_MAX, "{taken}");
            assert!(h.counts.iter().eq(reference.into_iter()), "{taken}");
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
