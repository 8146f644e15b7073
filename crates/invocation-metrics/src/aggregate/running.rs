//! Changes in the number of running invocations, by millisecond: an append-mostly log that is
//! sorted and coalesced in batches, so adding a record costs O(1) amortized (a B-tree insert
//! per event was the aggregate's biggest cost) and a sweep reads it in time order.

use std::cmp::Ordering;

#[derive(Debug, Clone, Default)]
pub(super) struct RunningChanges {
    /// Sorted by time, one entry per time, no zero changes.
    sorted: Vec<(i64, i64)>,
    /// Not yet sorted; folded into `sorted` once it grows past a fraction of it.
    pending: Vec<(i64, i64)>,
}

impl RunningChanges {
    pub fn push(&mut self, t: i64, change: i64) {
        self.pending.push((t, change));
        if self.pending.len() >= (self.sorted.len() / 8).max(1 << 16) {
            self.compact();
        }
    }

    pub fn merge(&mut self, other: &Self) {
        self.pending.extend_from_slice(&other.sorted);
        self.pending.extend_from_slice(&other.pending);
        if self.pending.len() >= (self.sorted.len() / 8).max(1 << 16) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|c| c.0);
        let sorted = std::mem::take(&mut self.sorted);
        self.sorted = coalesce(merge_sorted(&sorted, &pending)).collect();
    }

    /// Every change in time order, coalesced per millisecond, zeros dropped. Sorts a copy of
    /// the pending part only (at most an eighth of the whole, or 65,536).
    pub fn in_order(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let mut pending = self.pending.clone();
        pending.sort_unstable_by_key(|c| c.0);
        let (sorted, mut i, mut j) = (&self.sorted, 0, 0);
        coalesce(std::iter::from_fn(move || {
            let take_sorted = match (sorted.get(i), pending.get(j)) {
                (Some(x), Some(y)) => x.0 <= y.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            if take_sorted {
                i += 1;
                Some(sorted[i - 1])
            } else {
                j += 1;
                Some(pending[j - 1])
            }
        }))
    }

    /// The latest time with a change: the end of the last occupied interval. (The latest
    /// change is always an end, and ends only add up, so it never coalesces to zero.)
    pub fn last_time(&self) -> Option<i64> {
        let pending = self.pending.iter().map(|c| c.0).max();
        self.sorted.last().map(|c| c.0).max(pending)
    }
}

impl PartialEq for RunningChanges {
    fn eq(&self, other: &Self) -> bool {
        self.in_order().eq(other.in_order())
    }
}

fn merge_sorted<'a>(
    a: &'a [(i64, i64)],
    b: &'a [(i64, i64)],
) -> impl Iterator<Item = (i64, i64)> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                Ordering::Greater => {
                    j += 1;
                    *y
                }
                _ => {
                    i += 1;
                    *x
                }
            },
            (Some(x), None) => {
                i += 1;
                *x
            }
            (None, Some(y)) => {
                j += 1;
                *y
            }
            (None, None) => return None,
        };
        Some(next)
    })
}

fn coalesce(sorted: impl Iterator<Item = (i64, i64)>) -> impl Iterator<Item = (i64, i64)> {
    let mut sorted = sorted.peekable();
    std::iter::from_fn(move || {
        loop {
            let (t, mut change) = sorted.next()?;
            while let Some(&(next_t, next_change)) = sorted.peek() {
                if next_t != t {
                    break;
                }
                change += next_change;
                sorted.next();
            }
            if change != 0 {
                return Some((t, change));
            }
        }
    })
}
