//! What a report shows, gathered from the records in bounded memory: the aggregate, the
//! earliest invocations for the timeline and the first retry chains. No report holds every
//! record, so a report of ten million records needs about what one of a thousand does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use invocation_metrics::{
    AggregateOptions, InvocationMetric, MetricsAccumulator, MetricsAggregate, RetryChain,
    RetryChainScan,
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

/// Gathers a [`ReportData`] from the records as they are read: every record in a first pass,
/// then — only if there are retry chains to fill in — the same records again in a second.
#[derive(Debug)]
pub struct ReportBuilder {
    accumulator: MetricsAccumulator,
    earliest: Earliest,
    chains: RetryChainScan,
}

impl Default for ReportBuilder {
    fn default() -> Self {
        Self {
            accumulator: MetricsAccumulator::spilling(),
            earliest: Earliest::default(),
            chains: RetryChainScan::new(CHAIN_LIMIT),
        }
    }
}

impl ReportBuilder {
    pub fn first_pass(&mut self, m: &InvocationMetric) {
        self.accumulator.add(m);
        self.chains.first_pass(m);
        self.earliest.offer(m);
    }

    pub fn needs_second_pass(&self) -> bool {
        self.chains.needs_second_pass()
    }

    pub fn second_pass(&mut self, m: &InvocationMetric) {
        self.chains.second_pass(m);
    }

    /// The data, or why the aggregate's spilled state could not be read back.
    pub fn finish(self, options: &AggregateOptions) -> std::io::Result<ReportData> {
        let aggregate = self.accumulator.try_finish(options)?;
        let (chains, chain_count) = self.chains.finish();
        Ok(ReportData {
            aggregate,
            earliest: self.earliest.into_sorted(),
            chains,
            chain_count,
        })
    }
}

/// The [`TIMELINE_LIMIT`] earliest records offered, in a max-heap so the latest of them is
/// the one to drop.
#[derive(Debug, Default)]
struct Earliest {
    offered: u64,
    heap: BinaryHeap<ByStart>,
}

impl Earliest {
    /// Keeps a copy of `metric` if it is among the earliest so far.
    fn offer(&mut self, metric: &InvocationMetric) {
        let arrival = self.offered;
        self.offered += 1;
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
    fn keeps_the_earliest_in_order_whatever_the_input_order() {
        let n = TIMELINE_LIMIT as i64 + 500;
        let mut rng = fastrand::Rng::with_seed(3);
        let mut starts: Vec<i64> = (0..n).map(|i| i / 2).collect();
        rng.shuffle(&mut starts);
        let mut earliest = Earliest::default();
        for (i, start) in starts.iter().enumerate() {
            let agent = ["b", "a"][i % 2];
            let at = Timestamp::from_unix_ms(*start).unwrap();
            earliest.offer(&InvocationMetric::new(format!("i{i}"), agent, 1, at));
        }
        let kept: Vec<(i64, String)> = earliest
            .into_sorted()
            .iter()
            .map(|m| (m.start_ms(), m.agent.clone()))
            .collect();
        assert_eq!(kept.len(), TIMELINE_LIMIT);
        let mut expected: Vec<(i64, String)> = starts
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, ["b", "a"][i % 2].to_owned()))
            .collect();
        expected.sort();
        expected.truncate(TIMELINE_LIMIT);
        assert_eq!(kept, expected);
    }
}
