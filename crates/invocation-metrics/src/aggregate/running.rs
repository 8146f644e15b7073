//! Changes in the number of running invocations, by millisecond, kept as a [`SortedLog`] of
//! start and end events so adding a record costs O(1) amortized and a sweep reads them in
//! time order. (A B-tree insert per event was once the aggregate's biggest cost.)

use super::log::SortedLog;

/// Each event is one key: its time doubled, plus one for a start. Keys then sort by time,
/// and the change is recovered from the low bit.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RunningChanges {
    events: SortedLog<i64>,
    /// The latest event: the end of the last occupied interval.
    last: Option<i64>,
}

/// Times are clamped to this range so doubling them cannot overflow; it is far wider than
/// any timestamp can be (±292 million years in milliseconds).
const LIMIT: i64 = i64::MAX / 4;

impl RunningChanges {
    pub fn spilling(budget_bytes: usize) -> Self {
        Self {
            events: SortedLog::spilling(budget_bytes),
            last: None,
        }
    }

    /// Records one invocation occupying `[start, end)`; empty intervals occupy nothing.
    pub fn add_interval(&mut self, start: i64, end: i64) {
        if end <= start {
            return;
        }
        let (start, end) = (start.clamp(-LIMIT, LIMIT), end.clamp(-LIMIT, LIMIT));
        self.events.push(start * 2 + 1);
        self.events.push(end * 2);
        self.last = self.last.max(Some(end));
    }

    pub fn merge(&mut self, other: &Self) {
        self.events.extend(other.events.iter_sorted());
        self.last = self.last.max(other.last);
    }

    /// [`merge`](Self::merge), moving `other`'s events instead of copying them.
    pub fn absorb(&mut self, other: Self) {
        self.events.absorb(other.events);
        self.last = self.last.max(other.last);
    }

    /// Sorts the events not yet sorted (see [`SortedLog::sort_pending`]).
    pub fn sort_pending(&mut self) {
        self.events.sort_pending();
    }

    /// Every change in time order, coalesced per millisecond, zeros dropped.
    pub fn in_order(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let mut events = self
            .events
            .iter_sorted()
            .map(|key| (key >> 1, if key & 1 == 1 { 1 } else { -1 }))
            .peekable();
        std::iter::from_fn(move || {
            loop {
                let (t, mut change) = events.next()?;
                while let Some(&(next_t, next_change)) = events.peek() {
                    if next_t != t {
                        break;
                    }
                    change += next_change;
                    events.next();
                }
                if change != 0 {
                    return Some((t, change));
                }
            }
        })
    }

    /// The latest time with a change: the end of the last occupied interval. (The latest
    /// event is always an end, and ends only add up, so it never coalesces to zero.)
    pub fn last_time(&self) -> Option<i64> {
        self.last
    }

    /// Whether the events are written out past a budget (for tests of what spills).
    #[cfg(test)]
    pub fn spills(&self) -> bool {
        self.events.spills()
    }

    /// Cuts the spill file to nothing (for tests of how a failed read back is reported).
    #[cfg(test)]
    pub fn lose_spill_file(&self) {
        self.events.lose_spill_file();
    }

    /// Why reading spilled events back failed, if it did.
    pub fn read_error(&self) -> Option<String> {
        self.events.read_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_per_millisecond_and_drops_zeros() {
        let mut changes = RunningChanges::default();
        changes.add_interval(10, 20);
        changes.add_interval(20, 30); // touching: the end and start at 20 cancel out
        changes.add_interval(-5, 10);
        changes.add_interval(7, 7); // empty
        let seen: Vec<_> = changes.in_order().collect();
        assert_eq!(seen, [(-5, 1), (30, -1)]);
        assert_eq!(changes.last_time(), Some(30));
    }

    #[test]
    fn a_spilling_log_of_changes_writes_out_and_reads_back_the_same() {
        let (mut kept, mut spilled) = (RunningChanges::default(), RunningChanges::spilling(4096));
        for i in 0..5_000i64 {
            let start = (i * 7919) % 10_000;
            kept.add_interval(start, start + 1 + i % 50);
            spilled.add_interval(start, start + 1 + i % 50);
        }
        assert!(
            spilled.events.spilled_runs() > 0,
            "4 KB cannot hold 10,000 events"
        );
        assert_eq!(kept.events.spilled_runs(), 0);
        assert!(spilled.in_order().eq(kept.in_order()));
        assert_eq!(spilled.last_time(), kept.last_time());
    }

    #[test]
    fn a_spill_file_that_cannot_be_read_back_is_reported() {
        let mut changes = RunningChanges::spilling(4096);
        for i in 0..5_000i64 {
            changes.add_interval(i, i + 10);
        }
        assert_eq!(changes.read_error(), None);
        changes.events.lose_spill_file();
        let _ = changes.in_order().count();
        let error = changes.read_error().expect("the failed read is reported");
        assert!(error.contains("spill file"), "{error}");
    }
}
