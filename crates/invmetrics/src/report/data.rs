//! What a report shows, gathered from the records in bounded memory: the aggregate, the
//! earliest invocations for the timeline and the first retry chains. No report holds every
//! record: what grows with the input is the aggregate's spilled state (on disk past a budget)
//! and one 8-byte hash per retried task.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use invocation_metrics::{
    AggregateOptions, InvocationMetric, MetricsAccumulator, MetricsAggregate, RecordFold,
    RetryChain, RetryChainScan,
};

/// Most invocations a timeline draws (the earliest): beyond this the SVG gets too heavy for
/// a browser.
pub const TIMELINE_LIMIT: usize = 3000;
/// Most retry chains a report lists: the first in (agent, phase, task) order.
pub const CHAIN_LIMIT: usize = 200;

/// Everything a report renders.
#[derive(Debug)]
pub struct ReportData {
    pub aggregate: MetricsAggregate,
    /// The [`TIMELINE_LIMIT`] earliest invocations, by start, then agent, then input order.
    pub earliest: Vec<InvocationMetric>,
    /// The first [`CHAIN_LIMIT`] retry chains.
    pub chains: Vec<RetryChain>,
    /// How many retry chains there are in all.
    pub chain_count: u64,
}

/// A report's first pass, folded on every core: the aggregate, the earliest invocations and
/// the retried tasks.
#[derive(Debug)]
pub struct FirstPass {
    accumulator: MetricsAccumulator,
    earliest: Earliest,
    chains: RetryChainScan,
}

impl FirstPass {
    /// The value the chunks merge into: its aggregate state spills past a memory budget.
    pub fn total() -> Self {
        Self {
            accumulator: MetricsAccumulator::spilling(),
            ..Self::chunk()
        }
    }

    /// One chunk's value.
    pub fn chunk() -> Self {
        Self {
            accumulator: MetricsAccumulator::new(),
            earliest: Earliest::default(),
            chains: RetryChainScan::new(CHAIN_LIMIT),
        }
    }

    /// What a second pass must fill in — the chains kept, without their attempts — if any
    /// task was retried.
    pub fn chains_to_fill(&self) -> Option<SecondPass> {
        self.chains
            .needs_second_pass()
            .then(|| SecondPass(self.chains.second_pass_part()))
    }

    /// Takes the attempts a second pass found.
    pub fn fill_chains(&mut self, second: SecondPass) {
        self.chains.merge(second.0);
    }

    /// The data, or why the aggregate's spilled state could not be read back.
    pub fn finish(self, options: &AggregateOptions) -> std::io::Result<ReportData> {
        let aggregate = self.accumulator.try_into_aggregate(options)?;
        let (chains, chain_count) = self.chains.finish();
        Ok(ReportData {
            aggregate,
            earliest: self.earliest.into_sorted(),
            chains,
            chain_count,
        })
    }
}

impl RecordFold for FirstPass {
    fn add(&mut self, m: &InvocationMetric, index: u64) {
        self.accumulator.add(m);
        self.chains.first_pass(m);
        self.earliest.offer(m, index);
    }

    fn merge(&mut self, later: Self, offset: u64) {
        self.accumulator.absorb(later.accumulator);
        self.chains.merge(later.chains);
        self.earliest.merge(later.earliest, offset);
    }
}

/// A report's second pass, folded on every core: the attempts of the retry chains the first
/// pass kept.
#[derive(Debug, Clone)]
pub struct SecondPass(RetryChainScan);

impl RecordFold for SecondPass {
    fn add(&mut self, m: &InvocationMetric, _: u64) {
        self.0.second_pass(m);
    }

    fn merge(&mut self, later: Self, _: u64) {
        self.0.merge(later.0);
    }
}

/// The [`TIMELINE_LIMIT`] earliest records offered, in a max-heap so the latest of them is
/// the one to drop.
#[derive(Debug, Default)]
struct Earliest {
    heap: BinaryHeap<ByStart>,
}

impl Earliest {
    /// Keeps a copy of `metric`, the `arrival`th record, if it is among the earliest so far.
    fn offer(&mut self, metric: &InvocationMetric, arrival: u64) {
        let start = metric.start_ms();
        if self.heap.len() >= TIMELINE_LIMIT {
            let Some(latest) = self.heap.peek() else {
                return;
            };
            // Cheap checks first: most records of a file in time order start later.
            let later = (start, metric.agent.as_str(), arrival)
                >= (latest.start, latest.metric.agent.as_str(), latest.arrival);
            if later {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(ByStart {
            start,
            arrival,
            metric: metric.clone(),
        });
    }

    /// Adds the earliest of the records after this one's, which arrived from `offset` on.
    fn merge(&mut self, later: Self, offset: u64) {
        for mut candidate in later.heap {
            candidate.arrival += offset;
            if self.heap.len() < TIMELINE_LIMIT {
                self.heap.push(candidate);
            } else if self.heap.peek().is_some_and(|latest| candidate < *latest) {
                self.heap.pop();
                self.heap.push(candidate);
            }
        }
    }

    fn into_sorted(self) -> Vec<InvocationMetric> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| e.metric)
            .collect()
    }
}

/// A record ordered by start, then agent, then arrival.
#[derive(Debug)]
struct ByStart {
    start: i64,
    arrival: u64,
    metric: InvocationMetric,
}

impl Ord for ByStart {
    fn cmp(&self, other: &Self) -> Ordering {
        self.start
            .cmp(&other.start)
            .then_with(|| self.metric.agent.cmp(&other.metric.agent))
            .then(self.arrival.cmp(&other.arrival))
    }
}

impl PartialOrd for ByStart {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ByStart {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ByStart {}

#[cfg(test)]
mod tests {
    use super::*;
    use invocation_metrics::Timestamp;

    #[test]
    fn keeps_the_earliest_in_order_whatever_the_input_order_or_split() {
        let n = TIMELINE_LIMIT as i64 + 500;
        let mut rng = fastrand::Rng::with_seed(3);
        let mut starts: Vec<i64> = (0..n).map(|i| i / 2).collect();
        rng.shuffle(&mut starts);
        let records: Vec<InvocationMetric> = starts
            .iter()
            .enumerate()
            .map(|(i, start)| {
                let at = Timestamp::from_unix_ms(*start).unwrap();
                InvocationMetric::new(format!("i{i}"), ["b", "a"][i % 2], 1, at)
            })
            .collect();
        let mut whole = Earliest::default();
        for (i, m) in records.iter().enumerate() {
            whole.offer(m, i as u64);
        }
        // In parts, as chunks read in parallel are, merged in order.
        let mut merged = Earliest::default();
        for (p, part) in records.chunks(700).enumerate() {
            let mut earliest = Earliest::default();
            for (i, m) in part.iter().enumerate() {
                earliest.offer(m, i as u64);
            }
            merged.merge(earliest, (p * 700) as u64);
        }
        let ids = |e: Earliest| -> Vec<String> {
            e.into_sorted()
                .into_iter()
                .map(|m| m.invocation_id)
                .collect()
        };
        let kept = ids(whole);
        assert_eq!(ids(merged), kept);

        let mut expected: Vec<(i64, &str, usize)> = records
            .iter()
            .enumerate()
            .map(|(i, m)| (m.start_ms(), m.agent.as_str(), i))
            .collect();
        expected.sort();
        let expected: Vec<String> = expected[..TIMELINE_LIMIT]
            .iter()
            .map(|(_, _, i)| format!("i{i}"))
            .collect();
        assert_eq!(kept, expected);
    }
}
