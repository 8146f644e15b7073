//! What a report shows, gathered from the records in bounded memory: the aggregate, the
//! earliest invocations for the timeline, the retry chains that matter per agent, the
//! slowest invocations and the failures. No report holds every
//! record: what grows with the input is the aggregate's spilled state (on disk past a budget)
//! and one 8-byte hash per retried task.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use invocation_metrics::{
    AggregateOptions, InvocationMetric, MetricsAccumulator, MetricsAggregate, RecordFold,
    pico_to_usd, usd_to_pico,
};

use super::chains::{AgentChains, Picked, RetriedTasks};

/// Most invocations a timeline draws (the earliest): beyond this the SVG gets too heavy for
/// a browser.
pub const TIMELINE_LIMIT: usize = 3000;

/// How many of the slowest invocations a report lists.
pub const SLOWEST_LIMIT: usize = 20;
/// Failure classes a report keeps apart; the rest are counted together.
pub const FAILURE_CLASS_LIMIT: usize = 50;
/// Example failures a report shows per class: the earliest.
pub const FAILURE_EXAMPLES: usize = 3;

/// Everything a report renders.
#[derive(Debug)]
pub struct ReportData {
    pub aggregate: MetricsAggregate,
    /// What the report covers: inputs, filters, what was left out, when and by what.
    pub coverage: Coverage,
    /// The [`SLOWEST_LIMIT`] longest invocations, longest first.
    pub slowest: Vec<InvocationMetric>,
    /// Failures by class (`errorClass`, or the exit code when there is none), most first.
    pub failures: Vec<FailureClass>,
    /// What the failed invocations cost.
    pub failed_cost: f64,
    /// Cost so far at the end of each time bucket (Unix ms, USD), by when invocations ended.
    pub cumulative_cost: Vec<(i64, f64)>,
    /// The [`TIMELINE_LIMIT`] earliest invocations, by start, then agent, then input order.
    pub earliest: Vec<InvocationMetric>,
    /// The retry chains shown, by agent (see `chains.rs`).
    pub chains: Vec<AgentChains>,
    /// How many retried tasks there are in all.
    pub chain_count: u64,
    /// How many agents have one.
    pub chain_agents: u64,
}

/// What a report covers, stated at its top.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Each input: its name, valid records and damaged lines.
    pub inputs: Vec<(String, u64, u64)>,
    /// The filters, as typed (`--agent coder`, …); empty when none.
    pub filters: Vec<String>,
    /// Records left out as repeats of an earlier `invocationId`.
    pub duplicates: u64,
    /// Records the filters left out.
    pub filtered_out: u64,
    /// When the report was made.
    pub generated_at: String,
    /// The tool and its version.
    pub tool: String,
}

/// The failures of one class.
#[derive(Debug, Clone, Default)]
pub struct FailureClass {
    pub class: String,
    pub count: u64,
    pub cost: f64,
    /// The earliest few, by start.
    pub examples: Vec<InvocationMetric>,
}

/// A report's first pass, folded on every core: the aggregate, the earliest invocations,
/// the retried tasks, the slowest invocations and the failures.
#[derive(Debug)]
pub struct FirstPass {
    accumulator: MetricsAccumulator,
    earliest: Earliest,
    chains: RetriedTasks,
    /// The chains picked after the first pass, filled by the second.
    picked: Option<Picked>,
    slowest: Slowest,
    failures: Failures,
    cost_over_time: CostOverTime,
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
            chains: RetriedTasks::default(),
            picked: None,
            slowest: Slowest::default(),
            failures: Failures::default(),
            cost_over_time: CostOverTime::default(),
        }
    }

    /// What a second pass must fill in — the chains picked, without their attempts — if any
    /// task was retried.
    pub fn chains_to_fill(&mut self) -> Option<SecondPass> {
        let picked = self.chains.pick();
        if picked.total == 0 {
            return None;
        }
        let part = picked.part();
        self.picked = Some(picked);
        Some(SecondPass(part))
    }

    /// Takes the attempts a second pass found.
    pub fn fill_chains(&mut self, second: SecondPass) {
        if let Some(picked) = &mut self.picked {
            picked.merge(second.0);
        }
    }

    /// The data, or why the aggregate's spilled state could not be read back.
    pub fn finish(
        self,
        options: &AggregateOptions,
        coverage: Coverage,
    ) -> std::io::Result<ReportData> {
        let aggregate = self.accumulator.try_into_aggregate(options)?;
        let (chains, chain_count, chain_agents) =
            self.picked.map(Picked::finish).unwrap_or_default();
        let (failures, failed_cost) = self.failures.finish();
        Ok(ReportData {
            aggregate,
            coverage,
            slowest: self.slowest.finish(),
            failures,
            failed_cost,
            cumulative_cost: self.cost_over_time.cumulative(),
            earliest: self.earliest.into_sorted(),
            chains,
            chain_count,
            chain_agents,
        })
    }
}

impl RecordFold for FirstPass {
    fn add(&mut self, m: &InvocationMetric, index: u64) {
        self.accumulator.add(m);
        self.chains.add(m);
        self.earliest.offer(m, index);
        self.slowest.offer(m, index);
        self.failures.add(m, index);
        self.cost_over_time.add(m);
    }

    fn merge(&mut self, later: Self, offset: u64) {
        self.accumulator.absorb(later.accumulator);
        self.chains.merge(later.chains);
        self.earliest.merge(later.earliest, offset);
        self.slowest.merge(later.slowest, offset);
        self.failures.merge(later.failures, offset);
        self.cost_over_time.merge(later.cost_over_time);
    }

    fn settle(&mut self) {
        RecordFold::settle(&mut self.accumulator);
    }
}

/// A report's second pass, folded on every core: the attempts of the retry chains the first
/// pass picked.
#[derive(Debug, Clone)]
pub struct SecondPass(Picked);

impl RecordFold for SecondPass {
    fn add(&mut self, m: &InvocationMetric, _: u64) {
        self.0.add(m);
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

/// The [`SLOWEST_LIMIT`] longest invocations: a min-heap by (duration, earlier start,
/// earlier arrival), so the one to drop is on top.
#[derive(Debug, Default)]
struct Slowest {
    heap: BinaryHeap<Reverse<SlowKey>>,
}

/// (duration, earlier start first, earlier arrival first, the record).
type SlowKey = (u64, Reverse<i64>, Reverse<u64>, Held);

/// A record carried in a heap, compared by nothing (the keys before it decide).
#[derive(Debug)]
struct Held(InvocationMetric);

impl PartialEq for Held {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl Slowest {
    fn offer(&mut self, m: &InvocationMetric, arrival: u64) {
        let key = (m.duration_ms, Reverse(m.start_ms()), Reverse(arrival));
        if self.heap.len() >= SLOWEST_LIMIT {
            let Some(Reverse(least)) = self.heap.peek() else {
                return;
            };
            if key <= (least.0, least.1, least.2) {
                return;
            }
            self.heap.pop();
        }
        self.heap
            .push(Reverse((key.0, key.1, key.2, Held(m.clone()))));
    }

    fn merge(&mut self, later: Self, offset: u64) {
        for Reverse((duration, start, Reverse(arrival), held)) in later.heap {
            let arrival = arrival + offset;
            let key = (duration, start, Reverse(arrival));
            if self.heap.len() < SLOWEST_LIMIT {
                self.heap.push(Reverse((key.0, key.1, key.2, held)));
            } else if self
                .heap
                .peek()
                .is_some_and(|Reverse(least)| key > (least.0, least.1, least.2))
            {
                self.heap.pop();
                self.heap.push(Reverse((key.0, key.1, key.2, held)));
            }
        }
    }

    /// Longest first.
    fn finish(self) -> Vec<InvocationMetric> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((_, _, _, Held(m)))| m)
            .collect()
    }
}

/// Failures by class, in bounded memory: [`FAILURE_CLASS_LIMIT`] classes kept apart (the
/// first to appear in the input), the rest together; [`FAILURE_EXAMPLES`] earliest records
/// each. A chunk keeps every class it sees (a chunk is a few MiB of input); the limit
/// applies as chunks merge in input order, so the classes kept do not depend on where
/// chunks begin.
#[derive(Debug, Default)]
struct Failures {
    classes: BTreeMap<String, ClassState>,
    /// Failed invocations' cost, exact (picodollars, like the aggregate).
    cost_pico: i128,
}

#[derive(Debug, Default)]
struct ClassState {
    /// The input position of its first failure.
    first: u64,
    count: u64,
    cost_pico: i128,
    /// (start, arrival, record), earliest first.
    examples: Vec<(i64, u64, InvocationMetric)>,
}

/// What the classes beyond the limit are counted under.
const OTHER_CLASSES: &str = "(other classes)";

impl Failures {
    fn class_of(m: &InvocationMetric) -> String {
        match &m.error_class {
            Some(class) => class.clone(),
            None => format!("exit code {}", m.exit_code),
        }
    }

    fn add(&mut self, m: &InvocationMetric, arrival: u64) {
        if m.success {
            return;
        }
        let cost = usd_to_pico(m.cost);
        self.cost_pico += cost;
        let mut class = Self::class_of(m);
        // A backstop for memory: a chunk never sees this many classes unless every failure
        // has its own.
        if self.classes.len() >= 200 * FAILURE_CLASS_LIMIT && !self.classes.contains_key(&class) {
            class = OTHER_CLASSES.to_owned();
        }
        let state = self.classes.entry(class).or_insert_with(|| ClassState {
            first: arrival,
            ..ClassState::default()
        });
        state.count += 1;
        state.cost_pico += cost;
        state.offer((m.start_ms(), arrival, m.clone()));
    }

    fn merge(&mut self, later: Self, offset: u64) {
        self.cost_pico += later.cost_pico;
        let mut classes: Vec<(String, ClassState)> = later.classes.into_iter().collect();
        classes.sort_by_key(|(_, state)| state.first);
        for (mut class, state) in classes {
            let first = state.first + offset;
            if !self.classes.contains_key(&class) && self.classes.len() >= FAILURE_CLASS_LIMIT {
                class = OTHER_CLASSES.to_owned();
            }
            let into = self.classes.entry(class).or_insert_with(|| ClassState {
                first,
                ..ClassState::default()
            });
            into.count += state.count;
            into.cost_pico += state.cost_pico;
            for (start, arrival, m) in state.examples {
                into.offer((start, arrival + offset, m));
            }
        }
    }

    /// Most failures first, and what all failures cost. The limit is applied again here:
    /// records that reach the total without a chunk (the rare re-read of a chunk with
    /// repeated ids) may have added classes past it.
    fn finish(self) -> (Vec<FailureClass>, f64) {
        let mut by_first: Vec<(String, ClassState)> = self.classes.into_iter().collect();
        by_first.sort_by_key(|(class, state)| (class == OTHER_CLASSES, state.first));
        let mut kept: BTreeMap<String, ClassState> = BTreeMap::new();
        for (class, state) in by_first {
            let class = match kept.len() < FAILURE_CLASS_LIMIT || kept.contains_key(&class) {
                true => class,
                false => OTHER_CLASSES.to_owned(),
            };
            let into = kept.entry(class).or_insert_with(|| ClassState {
                first: state.first,
                ..ClassState::default()
            });
            into.count += state.count;
            into.cost_pico += state.cost_pico;
            for example in state.examples {
                into.offer(example);
            }
        }
        let mut classes: Vec<FailureClass> = kept
            .into_iter()
            .map(|(class, s)| FailureClass {
                class,
                count: s.count,
                cost: pico_to_usd(s.cost_pico),
                examples: s.examples.into_iter().map(|(_, _, m)| m).collect(),
            })
            .collect();
        classes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.class.cmp(&b.class)));
        (classes, pico_to_usd(self.cost_pico))
    }
}

impl ClassState {
    fn offer(&mut self, example: (i64, u64, InvocationMetric)) {
        let key = (example.0, example.1);
        let at = self
            .examples
            .partition_point(|(start, arrival, _)| (*start, *arrival) < key);
        if at < FAILURE_EXAMPLES {
            self.examples.insert(at, example);
            self.examples.truncate(FAILURE_EXAMPLES);
        }
    }
}

/// Most buckets [`CostOverTime`] keeps: past it, their width doubles.
const COST_BUCKETS: usize = 2048;

/// Cost by when invocations ended, exact (picodollars), in buckets of a minute that double
/// in width whenever there are more than [`COST_BUCKETS`] (so memory is bounded whatever the
/// span), mergeable across chunks whatever width each reached.
#[derive(Debug)]
struct CostOverTime {
    width_ms: i64,
    buckets: BTreeMap<i64, i128>,
}

impl Default for CostOverTime {
    fn default() -> Self {
        Self {
            width_ms: 60_000,
            buckets: BTreeMap::new(),
        }
    }
}

impl CostOverTime {
    fn add(&mut self, m: &InvocationMetric) {
        let key = m.end_ms().div_euclid(self.width_ms);
        *self.buckets.entry(key).or_default() += usd_to_pico(m.cost);
        while self.buckets.len() > COST_BUCKETS {
            self.coarsen();
        }
    }

    /// Doubles the width, merging neighbouring buckets.
    fn coarsen(&mut self) {
        self.width_ms *= 2;
        let old = std::mem::take(&mut self.buckets);
        for (key, pico) in old {
            *self.buckets.entry(key.div_euclid(2)).or_default() += pico;
        }
    }

    fn merge(&mut self, mut later: Self) {
        while self.width_ms < later.width_ms {
            self.coarsen();
        }
        while later.width_ms < self.width_ms {
            later.coarsen();
        }
        for (key, pico) in later.buckets {
            *self.buckets.entry(key).or_default() += pico;
        }
        while self.buckets.len() > COST_BUCKETS {
            self.coarsen();
        }
    }

    /// The running total at each bucket's end.
    fn cumulative(&self) -> Vec<(i64, f64)> {
        let mut total = 0i128;
        self.buckets
            .iter()
            .map(|(key, pico)| {
                total += pico;
                ((key + 1) * self.width_ms, pico_to_usd(total))
            })
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

    /// The slowest invocations and the failures by class are the same whether the records
    /// are folded in one piece or in chunks merged in order, and equal a plain computation.
    #[test]
    fn slowest_and_failures_are_the_same_in_one_piece_or_in_chunks() {
        let mut rng = fastrand::Rng::with_seed(5);
        let records: Vec<InvocationMetric> = (0..2_000)
            .map(|i| {
                let at = Timestamp::from_unix_ms(rng.i64(0..100_000)).unwrap();
                let mut m = InvocationMetric::new(format!("i{i}"), "a", 1, at);
                m.duration_ms = rng.u64(0..500); // many ties
                m.success = rng.u8(0..4) != 0;
                m.cost = 0.25;
                m.error_class = (!m.success && rng.bool()).then(|| format!("c{}", rng.u8(0..80)));
                m.exit_code = if m.success { 0 } else { 1 };
                m
            })
            .collect();
        let fold = |parts: usize| {
            let (mut slowest, mut failures) = (Slowest::default(), Failures::default());
            for (p, part) in records.chunks(records.len().div_ceil(parts)).enumerate() {
                let (mut s, mut f) = (Slowest::default(), Failures::default());
                for (i, m) in part.iter().enumerate() {
                    s.offer(m, i as u64);
                    f.add(m, i as u64);
                }
                let offset = (p * records.len().div_ceil(parts)) as u64;
                slowest.merge(s, offset);
                failures.merge(f, offset);
            }
            let slowest: Vec<String> = slowest
                .finish()
                .into_iter()
                .map(|m| m.invocation_id)
                .collect();
            let (classes, cost) = failures.finish();
            let classes: Vec<(String, u64, Vec<String>)> = classes
                .into_iter()
                .map(|c| {
                    (
                        c.class,
                        c.count,
                        c.examples.into_iter().map(|m| m.invocation_id).collect(),
                    )
                })
                .collect();
            (slowest, classes, cost)
        };
        let whole = fold(1);
        assert_eq!(fold(7), whole);

        // Longest first; among equal durations the earlier start, then the earlier record.
        let mut expected: Vec<(Reverse<u64>, i64, usize)> = records
            .iter()
            .enumerate()
            .map(|(i, m)| (Reverse(m.duration_ms), m.start_ms(), i))
            .collect();
        expected.sort();
        let expected: Vec<String> = expected[..SLOWEST_LIMIT]
            .iter()
            .map(|(_, _, i)| format!("i{i}"))
            .collect();
        assert_eq!(whole.0, expected);

        let failed = records.iter().filter(|m| !m.success).count() as u64;
        assert_eq!(whole.1.iter().map(|c| c.1).sum::<u64>(), failed);
        assert_eq!(whole.2, failed as f64 * 0.25);
        assert!(whole.1.len() <= FAILURE_CLASS_LIMIT + 1);
        assert!(whole.1.iter().all(|c| c.2.len() <= FAILURE_EXAMPLES));
    }

    #[test]
    fn cost_over_time_is_exact_and_bounded_whatever_the_split() {
        let records: Vec<InvocationMetric> = (0..10_000i64)
            .map(|i| {
                // Ten thousand minutes apart, a hundredth of a dollar each.
                let at = Timestamp::from_unix_ms(i * 60_000 * 7).unwrap();
                let mut m = InvocationMetric::new(format!("c{i}"), "a", 1, at);
                m.cost = 0.01;
                m
            })
            .collect();
        let fold = |parts: usize| {
            let mut total = CostOverTime::default();
            for part in records.chunks(records.len().div_ceil(parts)) {
                let mut c = CostOverTime::default();
                part.iter().for_each(|m| c.add(m));
                total.merge(c);
            }
            total
        };
        let whole = fold(1);
        assert!(whole.buckets.len() <= COST_BUCKETS);
        let series = whole.cumulative();
        assert_eq!(series.last().map(|p| p.1), Some(100.0));
        assert!(
            series
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        assert_eq!(fold(9).cumulative(), series);
    }
}
