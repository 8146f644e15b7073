//! A mergeable histogram of durations: exact below 2,048 ms, within 0.1% above, in bounded
//! memory (a few thousand counters however many records it holds).

/// Durations below this are counted exactly, one counter each.
const EXACT_BELOW: u64 = 2048;
/// Above it, each power of two is split into 2^10 equal counters: relative error < 1/1024.
const SUB_BUCKET_BITS: u32 = 10;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DurationHistogram {
    counts: Vec<u64>,
    total: u64,
    /// Meaningful once `total > 0`.
    min: u64,
    max: u64,
}

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
        let bucket = bucket_of(d);
        if bucket >= self.counts.len() {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.min = if self.total == 0 { d } else { self.min.min(d) };
        self.total += 1;
        self.max = self.max.max(d);
    }

    pub fn merge(&mut self, other: &Self) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
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

    /// The nearest-rank `p`th percentile: exact below 2,048 ms; above, the true value `v`
    /// satisfies `result <= v < result * (1 + 1/1024)`.
    pub fn percentile(&self, p: u64) -> u64 {
        let rank = (self.total * p).div_ceil(100).max(1);
        let mut seen = 0;
        for (index, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return lower_bound(index).min(self.max);
            }
        }
        0
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
}
