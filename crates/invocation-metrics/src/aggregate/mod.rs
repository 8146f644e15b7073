//! The aggregate summary: a mergeable [`MetricsAccumulator`] that records are added to one at
//! a time, and the [`MetricsAggregate`] it finishes into.
//!
//! Accumulators over disjoint sets of records merge exactly: every sum is kept in integers
//! (costs in picodollars), every breakdown in ordered maps, so the result does not depend on
//! the order records arrived in or on how they were split into chunks or shards.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use crate::hashing::FastHash;
use crate::record::{InvocationMetric, Timestamp};

mod histogram;
pub(crate) mod log;
mod running;

use histogram::DurationHistogram;
use log::SortedLog;
use running::RunningChanges;

/// The tier that is not an escalation, unless the options say otherwise.
pub const DEFAULT_BASE_TIER: &str = "normal";
/// Width of a parallelism bucket, unless the options say otherwise.
pub const DEFAULT_BUCKET_WIDTH_MS: u64 = 1000;
/// Most buckets `parallelismOverTime` holds. A longer span widens the buckets (see
/// [`MetricsAggregate`]): one record with an absurd `durationMs` must not make the aggregate
/// allocate gigabytes.
pub const MAX_PARALLELISM_BUCKETS: u64 = 100_000;

/// Costs are summed as integers of this many units per USD, so sums are exact and
/// independent of order.
const PICO_PER_USD: f64 = 1e12;

/// Settings that shape the aggregate but not the accumulated data.
///
/// | option | default |
/// |---|---|
/// | `bucket_width_ms` | 1000 (values below 1 are treated as 1; widened if the span would need more than [`MAX_PARALLELISM_BUCKETS`]) |
/// | `base_tier` | `"normal"` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateOptions {
    /// Width of the parallelism-over-time buckets, in milliseconds.
    pub bucket_width_ms: u64,
    /// Records whose tier is set and differs from this count as escalations.
    pub base_tier: String,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            bucket_width_ms: DEFAULT_BUCKET_WIDTH_MS,
            base_tier: DEFAULT_BASE_TIER.to_owned(),
        }
    }
}

/// The aggregate summary of a set of records.
///
/// The seed's fields come first, with its exact names and these definitions:
///
/// - `totalRetries`, `retriesByAgent`, `retriesByPhase` count records with `attempt > 1`.
/// - `infraRetries` counts retries whose previous attempt — the record with the same agent,
///   phase and taskId and `attempt - 1` — has `errorClass` set. Records without a taskId have
///   no previous attempt.
/// - Each record occupies the half-open interval `[timestamp, timestamp + durationMs)` in
///   whole milliseconds (the start rounded down); zero-length intervals occupy nothing.
///   `parallelismOverTime` has one bucket per `bucketWidthMs`, aligned to multiples of the
///   width since the Unix epoch, from the bucket holding the earliest start to the bucket
///   holding the last occupied millisecond, empty buckets included; `concurrent` is the most
///   intervals overlapping at any instant inside the bucket. `peakParallelInvocations` is the
///   most at any instant. If that would take more than [`MAX_PARALLELISM_BUCKETS`] buckets,
///   the width becomes the smallest multiple of the requested one that needs no more, and
///   `bucketWidthMs` says which width was used.
/// - `escalationCount` counts records whose tier is set and differs from the base tier.
/// - `successRate` is successes / invocations, 0 when there are none.
///
/// The fields after them are this project's additions: per-group breakdowns with duration
/// percentiles (nearest rank: exact below 2,048 ms, above it rounded down by less than
/// 0.1%), token and cache totals, and the time span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsAggregate {
    /// Number of records.
    pub total_invocations: u64,
    /// Records per agent.
    pub invocations_by_agent: BTreeMap<String, u64>,
    /// Records per phase.
    pub invocations_by_phase: BTreeMap<u32, u64>,
    /// Records with `attempt > 1`.
    pub total_retries: u64,
    /// Retries per agent.
    pub retries_by_agent: BTreeMap<String, u64>,
    /// Retries per phase.
    pub retries_by_phase: BTreeMap<u32, u64>,
    /// Retries whose previous attempt failed with an infrastructure error.
    pub infra_retries: u64,
    /// Sum of `tokens`.
    pub total_tokens: u64,
    /// Sum of `cost`, in USD.
    pub total_cost: f64,
    /// Sum of `cachedTokens` (absent counts as 0).
    pub total_cached_tokens: u64,
    /// Sum of `tokens` per agent.
    pub tokens_by_agent: BTreeMap<String, u64>,
    /// Sum of `cost` per agent.
    pub cost_by_agent: BTreeMap<String, f64>,
    /// Sum of `durationMs`.
    pub total_duration_ms: u64,
    /// Mean `durationMs` per agent.
    pub avg_duration_by_agent: BTreeMap<String, f64>,
    /// Most invocations running at any one instant.
    pub peak_parallel_invocations: u64,
    /// Most invocations running at once, per time bucket.
    pub parallelism_over_time: Vec<ParallelismBucket>,
    /// Records whose tier is set and differs from the base tier.
    pub escalation_count: u64,
    /// Successes divided by invocations; 0 when there are none.
    pub success_rate: f64,

    /// Width of the parallelism buckets used, in milliseconds.
    pub bucket_width_ms: u64,
    /// The base tier used for `escalationCount`.
    pub base_tier: String,
    /// The first instant at which `peakParallelInvocations` were running (UTC).
    pub peak_parallel_at: Option<String>,
    /// Earliest start of any record (UTC).
    pub first_start: Option<String>,
    /// Latest end of any record (UTC).
    pub last_end: Option<String>,
    /// Number of successful records.
    pub success_count: u64,
    /// Sum of `inputTokens` (absent counts as 0).
    pub total_input_tokens: u64,
    /// Sum of `outputTokens` (absent counts as 0).
    pub total_output_tokens: u64,
    /// `totalCachedTokens / totalInputTokens`; 0 when no input tokens are known.
    pub cache_hit_ratio: f64,
    /// Breakdown per agent.
    pub agents: BTreeMap<String, GroupSummary>,
    /// Breakdown per phase.
    pub phases: BTreeMap<u32, GroupSummary>,
    /// Breakdown per model (records without a model are not included).
    pub models: BTreeMap<String, GroupSummary>,
    /// Breakdown per tier (records without a tier are not included).
    pub tiers: BTreeMap<String, GroupSummary>,
    /// Breakdown per error class (records without one are not included).
    pub error_classes: BTreeMap<String, GroupSummary>,
}

impl MetricsAggregate {
    /// The per-group breakdowns in display order — agent, phase, model, tier, error class —
    /// each as (group name, summary) rows in key order. Renderers skip empty ones.
    pub fn breakdowns(&self) -> [Breakdown<'_>; 5] {
        fn rows(groups: &BTreeMap<String, GroupSummary>) -> Vec<(Cow<'_, str>, &GroupSummary)> {
            groups
                .iter()
                .map(|(k, g)| (Cow::Borrowed(k.as_str()), g))
                .collect()
        }
        [
            Breakdown {
                dimension: "agent",
                groups: rows(&self.agents),
            },
            Breakdown {
                dimension: "phase",
                groups: self
                    .phases
                    .iter()
                    .map(|(k, g)| (Cow::Owned(k.to_string()), g))
                    .collect(),
            },
            Breakdown {
                dimension: "model",
                groups: rows(&self.models),
            },
            Breakdown {
                dimension: "tier",
                groups: rows(&self.tiers),
            },
            Breakdown {
                dimension: "error class",
                groups: rows(&self.error_classes),
            },
        ]
    }
}

/// One breakdown of a [`MetricsAggregate`]: what it groups by, and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown<'a> {
    /// What the records are grouped by, in words: "agent", "phase", "error class"…
    pub dimension: &'static str,
    /// (group name, its summary), in key order (phases numerically). Names are borrowed
    /// from the aggregate where they are strings: a breakdown of a million groups costs no
    /// copy of their names.
    pub groups: Vec<(Cow<'a, str>, &'a GroupSummary)>,
}

/// One time bucket of [`MetricsAggregate::parallelism_over_time`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParallelismBucket {
    /// Start of the bucket: RFC 3339 in UTC with milliseconds and `Z`.
    pub bucket_start: String,
    /// Most invocations overlapping at any instant inside the bucket.
    pub concurrent: u64,
}

/// Totals and duration statistics for one group of records (an agent, a phase, a model…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// Number of records.
    pub invocations: u64,
    /// Records with `attempt > 1`.
    pub retries: u64,
    /// Successful records.
    pub successes: u64,
    /// `successes / invocations`.
    pub success_rate: f64,
    /// Sum of `tokens`.
    pub tokens: u64,
    /// Sum of `cachedTokens`.
    pub cached_tokens: u64,
    /// Sum of `cost`, in USD.
    pub cost: f64,
    /// Sum of `durationMs`.
    pub total_duration_ms: u64,
    /// Mean `durationMs`.
    pub mean_duration_ms: f64,
    /// Shortest `durationMs`.
    pub min_duration_ms: u64,
    /// First quartile of `durationMs` (nearest rank).
    pub p25_duration_ms: u64,
    /// Median `durationMs` (nearest rank).
    pub p50_duration_ms: u64,
    /// Third quartile of `durationMs` (nearest rank).
    pub p75_duration_ms: u64,
    /// 95th percentile of `durationMs` (nearest rank).
    pub p95_duration_ms: u64,
    /// 99th percentile of `durationMs` (nearest rank).
    pub p99_duration_ms: u64,
    /// Longest `durationMs`.
    pub max_duration_ms: u64,
}

/// The summaries of every group, by dimension.
struct GroupSummaries {
    agents: BTreeMap<String, GroupSummary>,
    phases: BTreeMap<u32, GroupSummary>,
    models: BTreeMap<String, GroupSummary>,
    tiers: BTreeMap<String, GroupSummary>,
    error_classes: BTreeMap<String, GroupSummary>,
}

/// Groups a worker thread's accumulator keeps across chunks, all dimensions together (see
/// [`MetricsAccumulator::hand_back_all_but_groups`]): a group is ~200 bytes, so a worker
/// keeps at most ~13 MB of them. Past it (a file of very many groups) the worker hands its
/// groups to the total after each chunk, as a chunk's own accumulator would.
const WORKER_GROUPS_MAX: usize = 1 << 16;

/// Running totals per group, by key; sorted only when summarised. A hash map: with 30,000
/// agents, a B-tree's lookup by name (a string comparison per level, each a cache miss) was
/// a fifth of a summary's time. Boxed, so that the table stays small: with a million groups
/// the entries the table moved as it grew, 180 bytes each, took seconds.
type Groups<K> = HashMap<K, Box<GroupAccumulator>, FastHash>;

/// Summarises `groups`, freeing each group's histogram as its summary is made. On every
/// core: with 30,000 agents, summarising them one at a time took most of the time the other
/// core sat idle at the end of a summary.
fn into_summaries<K: Ord + Send>(groups: Groups<K>) -> BTreeMap<K, GroupSummary> {
    let (keys, summaries) = groups
        .into_par_iter()
        .map(|(key, group)| (key, group.summary()))
        .unzip();
    sorted(keys, summaries)
}

/// The summaries by key (`keys[i]` is `summaries[i]`'s). The keys are sorted with their
/// positions (small pairs), not with their summaries: sorting a million (name, summary)
/// pairs moved 150-byte entries a score of times each, most of a summary's time on a file of
/// a million distinct agents.
fn sorted<K: Ord + Send>(keys: Vec<K>, summaries: Vec<GroupSummary>) -> BTreeMap<K, GroupSummary> {
    let mut keys: Vec<(K, usize)> = keys.into_iter().zip(0..).collect();
    keys.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Already in order: the map is built without sorting again, with full nodes.
    keys.into_iter()
        .map(|(key, at)| (key, summaries[at].clone()))
        .collect()
}

/// Running totals for one group. Sums saturate instead of wrapping: every summand is
/// non-negative, so a saturated sum is still the same in any order (and says "at least").
#[derive(Debug, Clone, Default, PartialEq)]
struct GroupAccumulator {
    invocations: u64,
    retries: u64,
    successes: u64,
    tokens: u64,
    cached_tokens: u64,
    cost_pico: i128,
    duration_ms: u64,
    durations: DurationHistogram,
}

impl GroupAccumulator {
    fn add(&mut self, m: &InvocationMetric, cost_pico: i128) {
        self.invocations += 1;
        self.retries += u64::from(m.attempt > 1);
        self.successes += u64::from(m.success);
        self.tokens = self.tokens.saturating_add(m.tokens);
        self.cached_tokens = self
            .cached_tokens
            .saturating_add(m.cached_tokens.unwrap_or(0));
        self.cost_pico = self.cost_pico.saturating_add(cost_pico);
        self.duration_ms = self.duration_ms.saturating_add(m.duration_ms);
        self.durations.add(m.duration_ms);
    }

    fn merge(&mut self, other: &Self) {
        self.invocations += other.invocations;
        self.retries += other.retries;
        self.successes += other.successes;
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cost_pico = self.cost_pico.saturating_add(other.cost_pico);
        self.duration_ms = self.duration_ms.saturating_add(other.duration_ms);
        self.durations.merge(&other.durations);
    }

    fn summary(&self) -> GroupSummary {
        let [p25, p50, p75, p95, p99] = self.durations.percentiles([25, 50, 75, 95, 99]);
        GroupSummary {
            invocations: self.invocations,
            retries: self.retries,
            successes: self.successes,
            success_rate: ratio(self.successes, self.invocations),
            tokens: self.tokens,
            cached_tokens: self.cached_tokens,
            cost: pico_to_usd(self.cost_pico),
            total_duration_ms: self.duration_ms,
            mean_duration_ms: ratio(self.duration_ms, self.invocations),
            min_duration_ms: self.durations.min(),
            p25_duration_ms: p25,
            p50_duration_ms: p50,
            p75_duration_ms: p75,
            p95_duration_ms: p95,
            p99_duration_ms: p99,
            max_duration_ms: self.durations.max(),
        }
    }
}

/// Identifies one attempt of a task — agent, phase, taskId, attempt — by a 64-bit hash, so
/// the retry bookkeeping costs 8 bytes per retry instead of two strings. Two different
/// attempts colliding needs a 64-bit hash collision (about one in 10^7 for 10 M retries).
fn attempt_key(agent: &str, phase: u32, task: &str, attempt: u32) -> u64 {
    crate::hashing::hash64((agent, phase, task, attempt))
}

/// Running state from which a [`MetricsAggregate`] is computed.
///
/// Add records with [`add`](Self::add) (or collect an iterator of them), combine
/// accumulators over disjoint record sets with [`merge`](Self::merge), and call
/// [`finish`](Self::finish) as often as needed.
///
/// ```
/// use invocation_metrics::{AggregateOptions, InvocationMetric, MetricsAccumulator};
///
/// let t = "2026-11-25T10:00:00Z".parse()?;
/// let mut a: MetricsAccumulator = [InvocationMetric::new("1", "planner", 1, t)].iter().collect();
/// let b: MetricsAccumulator = [InvocationMetric::new("2", "coder", 1, t)].iter().collect();
/// a.merge(&b);
/// assert_eq!(a.finish(&AggregateOptions::default()).total_invocations, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsAccumulator {
    all: GroupAccumulator,
    input_tokens: u64,
    output_tokens: u64,
    by_agent: Groups<String>,
    by_phase: Groups<u32>,
    by_model: Groups<String>,
    by_tier: Groups<String>,
    by_error_class: Groups<String>,
    /// For each retry that has a taskId: the key of its previous attempt.
    retries_after: SortedLog<u64>,
    /// Attempts that failed with an infrastructure error (`errorClass` set).
    infra_failed: SortedLog<u64>,
    /// Change in the number of running invocations at each millisecond.
    running: RunningChanges,
    first_start: Option<i64>,
    /// The latest end of any record, those that last no time included (which the running
    /// count never sees).
    last_end: Option<i64>,
}

impl MetricsAccumulator {
    /// An accumulator with no records.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator for records read in bulk: the state it needs per record (16 bytes
    /// for each record's start and end, 8 per retry and per infrastructure failure) is kept
    /// in memory up to about 8 MB per kind and then written in sorted runs to an unlinked
    /// temporary file, so its memory stays flat however many records are added. Finish it
    /// with [`try_finish`](Self::try_finish) to see a failure to read that file back.
    ///
    /// If no temporary file can be made, the state stays in memory (and a warning is logged).
    pub fn spilling() -> Self {
        Self::spilling_within(log::DEFAULT_SPILL_BUDGET_BYTES)
    }

    /// Like [`spilling`](Self::spilling), keeping about `budget_bytes` of each kind of
    /// per-record state in memory instead of 8 MB.
    pub fn spilling_within(budget_bytes: usize) -> Self {
        Self {
            retries_after: SortedLog::spilling(budget_bytes),
            infra_failed: SortedLog::spilling(budget_bytes),
            running: RunningChanges::spilling(budget_bytes),
            ..Self::default()
        }
    }

    /// Number of records added so far.
    pub fn count(&self) -> u64 {
        self.all.invocations
    }

    /// Adds one record.
    pub fn add(&mut self, m: &InvocationMetric) {
        let cost_pico = usd_to_pico(m.cost);
        self.all.add(m, cost_pico);
        self.input_tokens = self
            .input_tokens
            .saturating_add(m.input_tokens.unwrap_or(0));
        self.output_tokens = self
            .output_tokens
            .saturating_add(m.output_tokens.unwrap_or(0));
        add_to_group(&mut self.by_agent, &m.agent, m, cost_pico);
        self.by_phase.entry(m.phase).or_default().add(m, cost_pico);
        for (map, key) in [
            (&mut self.by_model, &m.model),
            (&mut self.by_tier, &m.tier),
            (&mut self.by_error_class, &m.error_class),
        ] {
            if let Some(key) = key {
                add_to_group(map, key, m, cost_pico);
            }
        }

        if let Some(task) = &m.task_id {
            if m.attempt > 1 {
                let previous = attempt_key(&m.agent, m.phase, task, m.attempt - 1);
                self.retries_after.push(previous);
            }
            if m.error_class.is_some() {
                let this = attempt_key(&m.agent, m.phase, task, m.attempt);
                self.infra_failed.push(this);
            }
        }

        let start = m.start_ms();
        self.first_start = Some(self.first_start.map_or(start, |f| f.min(start)));
        self.last_end = self.last_end.max(Some(m.end_ms()));
        self.running.add_interval(start, m.end_ms());
    }

    /// Adds everything `other` accumulated. Both must cover disjoint sets of records for the
    /// result to equal one accumulator over their union.
    pub fn merge(&mut self, other: &Self) {
        self.all.merge(&other.all);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        merge_groups(&mut self.by_agent, &other.by_agent);
        merge_groups(&mut self.by_phase, &other.by_phase);
        merge_groups(&mut self.by_model, &other.by_model);
        merge_groups(&mut self.by_tier, &other.by_tier);
        merge_groups(&mut self.by_error_class, &other.by_error_class);
        self.retries_after.extend(other.retries_after.iter_sorted());
        self.infra_failed.extend(other.infra_failed.iter_sorted());
        self.running.merge(&other.running);
        self.last_end = self.last_end.max(other.last_end);
        self.first_start = match (self.first_start, other.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// For an accumulator a worker thread keeps across chunks (see
    /// [`RecordFold::hand_back`](crate::RecordFold::hand_back)): takes out the per-record
    /// state, which grows with the input, leaving the sums and groups to fold on into —
    /// unless the groups number more than [`WORKER_GROUPS_MAX`], then everything is taken.
    /// Either way what stays is bounded, whatever the input.
    pub(crate) fn hand_back_all_but_groups(&mut self) -> Self {
        let groups = self.by_agent.len()
            + self.by_phase.len()
            + self.by_model.len()
            + self.by_tier.len()
            + self.by_error_class.len();
        if groups > WORKER_GROUPS_MAX {
            return std::mem::take(self);
        }
        Self {
            retries_after: std::mem::take(&mut self.retries_after),
            infra_failed: std::mem::take(&mut self.infra_failed),
            running: std::mem::take(&mut self.running),
            ..Self::default()
        }
    }

    /// [`merge`](Self::merge), moving `other`'s per-record state instead of copying it:
    /// much faster when many chunk accumulators are folded into one.
    pub fn absorb(&mut self, mut other: Self) {
        let retries_after = std::mem::take(&mut other.retries_after);
        let infra_failed = std::mem::take(&mut other.infra_failed);
        let running = std::mem::take(&mut other.running);
        // Groups move: a chunk of a file with thousands of groups brings thousands of keys
        // and histograms, which need not be copied.
        absorb_groups(&mut self.by_agent, std::mem::take(&mut other.by_agent));
        absorb_groups(&mut self.by_phase, std::mem::take(&mut other.by_phase));
        absorb_groups(&mut self.by_model, std::mem::take(&mut other.by_model));
        absorb_groups(&mut self.by_tier, std::mem::take(&mut other.by_tier));
        absorb_groups(
            &mut self.by_error_class,
            std::mem::take(&mut other.by_error_class),
        );
        // The rest is small (totals): merged as usual.
        self.merge(&other);
        self.retries_after.absorb(retries_after);
        self.infra_failed.absorb(infra_failed);
        self.running.absorb(running);
    }

    /// Sorts the per-record state not yet sorted, which finishing would otherwise sort then:
    /// for [`RecordFold::settle`](crate::RecordFold::settle).
    pub(crate) fn sort_pending(&mut self) {
        self.running.sort_pending();
        self.retries_after.sort_pending();
        self.infra_failed.sort_pending();
    }

    /// Computes the aggregate of every record added so far, or says why the state a
    /// [`spilling`](Self::spilling) accumulator wrote out could not be read back.
    pub fn try_finish(&self, options: &AggregateOptions) -> std::io::Result<MetricsAggregate> {
        let aggregate = self.compute(options, || self.summaries());
        match self.spill_error() {
            Some(error) => Err(std::io::Error::other(error)),
            None => Ok(aggregate),
        }
    }

    /// Like [`try_finish`](Self::try_finish), consuming the accumulator: each group's
    /// histogram is freed as its summary is made, so the two never both exist in full —
    /// less peak memory when there are very many groups.
    pub fn try_into_aggregate(
        mut self,
        options: &AggregateOptions,
    ) -> std::io::Result<MetricsAggregate> {
        if let Some(error) = self.spill_error() {
            return Err(std::io::Error::other(error));
        }
        let by_agent = std::mem::take(&mut self.by_agent);
        let by_phase = std::mem::take(&mut self.by_phase);
        let by_model = std::mem::take(&mut self.by_model);
        let by_tier = std::mem::take(&mut self.by_tier);
        let by_error_class = std::mem::take(&mut self.by_error_class);
        let groups = move || GroupSummaries {
            agents: into_summaries(by_agent),
            phases: into_summaries(by_phase),
            models: into_summaries(by_model),
            tiers: into_summaries(by_tier),
            error_classes: into_summaries(by_error_class),
        };
        let aggregate = self.compute(options, groups);
        match self.spill_error() {
            Some(error) => Err(std::io::Error::other(error)),
            None => Ok(aggregate),
        }
    }

    fn spill_error(&self) -> Option<String> {
        self.running
            .read_error()
            .or_else(|| self.retries_after.read_error())
            .or_else(|| self.infra_failed.read_error())
    }

    /// Computes the aggregate of every record added so far.
    ///
    /// For an accumulator made with [`spilling`](Self::spilling), a failure to read its
    /// temporary file back is only logged, and the result then misses what could not be
    /// read: use [`try_finish`](Self::try_finish) there.
    pub fn finish(&self, options: &AggregateOptions) -> MetricsAggregate {
        let aggregate = self.compute(options, || self.summaries());
        if let Some(error) = self.spill_error() {
            tracing::error!(%error, "the aggregate misses records it could not read back");
        }
        aggregate
    }

    /// Every group's summary, the accumulator left as it is.
    fn summaries(&self) -> GroupSummaries {
        fn of<K: Clone + Ord + Send + Sync>(groups: &Groups<K>) -> BTreeMap<K, GroupSummary> {
            let (keys, summaries) = groups
                .par_iter()
                .map(|(k, g)| (k.clone(), g.summary()))
                .unzip();
            sorted(keys, summaries)
        }
        GroupSummaries {
            agents: of(&self.by_agent),
            phases: of(&self.by_phase),
            models: of(&self.by_model),
            tiers: of(&self.by_tier),
            error_classes: of(&self.by_error_class),
        }
    }

    /// The aggregate, with the groups' summaries made by `groups` on one core while the
    /// per-record state (running-count changes, retry keys) is swept on another: on a file of
    /// thousands of groups each takes tens of milliseconds, and nothing else is left to run.
    fn compute(
        &self,
        options: &AggregateOptions,
        groups: impl FnOnce() -> GroupSummaries + Send,
    ) -> MetricsAggregate {
        let ((parallelism, infra_retries), groups) = rayon::join(
            || {
                let parallelism = self.parallelism(options.bucket_width_ms.max(1));
                let infra_retries = count_in(
                    self.retries_after.iter_sorted(),
                    self.infra_failed.iter_sorted(),
                );
                (parallelism, infra_retries)
            },
            groups,
        );
        let (peak, peak_at, width, buckets) = parallelism;
        let GroupSummaries {
            agents,
            phases,
            models,
            tiers,
            error_classes,
        } = groups;
        // The seed's five maps by agent, two cores between them: each copies every agent's
        // name, 30,000 of them taking 5 ms a map.
        let (
            (invocations_by_agent, retries_by_agent),
            ((tokens_by_agent, cost_by_agent), avg_duration_by_agent),
        ) = rayon::join(
            || {
                rayon::join(
                    || by_agent(&agents, |g| g.invocations),
                    || by_agent(&agents, |g| g.retries),
                )
            },
            || {
                rayon::join(
                    || {
                        rayon::join(
                            || by_agent(&agents, |g| g.tokens),
                            || by_agent(&agents, |g| g.cost),
                        )
                    },
                    || by_agent(&agents, |g| g.mean_duration_ms),
                )
            },
        );
        let escalation_count = tiers
            .iter()
            .filter(|(tier, _)| **tier != options.base_tier)
            .map(|(_, g)| g.invocations)
            .sum();
        let to_string = |ms: i64| Timestamp::from_unix_ms(ms).map(|t| t.to_utc_millis_string());
        let all = self.all.summary();

        MetricsAggregate {
            total_invocations: all.invocations,
            invocations_by_agent,
            invocations_by_phase: phases.iter().map(|(k, g)| (*k, g.invocations)).collect(),
            total_retries: all.retries,
            retries_by_agent,
            retries_by_phase: phases.iter().map(|(k, g)| (*k, g.retries)).collect(),
            infra_retries,
            total_tokens: all.tokens,
            total_cost: all.cost,
            total_cached_tokens: all.cached_tokens,
            tokens_by_agent,
            cost_by_agent,
            total_duration_ms: all.total_duration_ms,
            avg_duration_by_agent,
            peak_parallel_invocations: peak,
            parallelism_over_time: buckets,
            escalation_count,
            success_rate: all.success_rate,
            bucket_width_ms: width,
            base_tier: options.base_tier.clone(),
            peak_parallel_at: peak_at.and_then(to_string),
            first_start: self.first_start.and_then(to_string),
            last_end: self.last_end.and_then(to_string),
            success_count: all.successes,
            total_input_tokens: self.input_tokens,
            total_output_tokens: self.output_tokens,
            cache_hit_ratio: ratio(all.cached_tokens, self.input_tokens),
            agents,
            phases,
            models,
            tiers,
            error_classes,
        }
    }

    /// Sweeps the running-count changes in time order: the peak, when it was first reached,
    /// the bucket width used and the per-bucket maxima.
    fn parallelism(&self, width: u64) -> (u64, Option<i64>, u64, Vec<ParallelismBucket>) {
        let Some(first_start) = self.first_start else {
            return (0, None, width, Vec::new());
        };
        let last_occupied = self.running.last_time().map(|end| end - 1);
        let width = bucket_width_within_limit(
            i64::try_from(width).unwrap_or(i64::MAX),
            first_start,
            last_occupied.unwrap_or(first_start),
        );
        let first_bucket = first_start.div_euclid(width);
        let last_bucket =
            last_occupied.map_or(first_bucket, |t| t.div_euclid(width).max(first_bucket));
        let bucket_count = usize::try_from(last_bucket - first_bucket + 1).unwrap_or(0);
        let mut maxima = vec![0u64; bucket_count];

        let (mut running, mut peak, mut peak_at) = (0i64, 0u64, None);
        let mut changes = self.running.in_order().peekable();
        while let Some((t, delta)) = changes.next() {
            running += delta;
            let level = u64::try_from(running).unwrap_or(0);
            let Some(&(next, _)) = changes.peek() else {
                break;
            };
            if level == 0 {
                continue;
            }
            if level > peak {
                peak = level;
                peak_at = Some(t);
            }
            // The level holds on [t, next): every bucket that range touches sees it.
            let from = usize::try_from(t.div_euclid(width) - first_bucket).unwrap_or(0);
            let to = usize::try_from((next - 1).div_euclid(width) - first_bucket).unwrap_or(0);
            for max in &mut maxima[from..=to.min(bucket_count - 1)] {
                *max = (*max).max(level);
            }
        }
        let buckets = maxima
            .into_iter()
            .zip(first_bucket..)
            .map(|(concurrent, b)| ParallelismBucket {
                bucket_start: Timestamp::from_unix_ms(b * width)
                    .map(|t| t.to_utc_millis_string())
                    .unwrap_or_default(),
                concurrent,
            })
            .collect();
        (peak, peak_at, width.unsigned_abs(), buckets)
    }
}

/// `width`, or its smallest multiple that covers `[first, last]` in at most
/// [`MAX_PARALLELISM_BUCKETS`] epoch-aligned buckets.
fn bucket_width_within_limit(width: i64, first: i64, last: i64) -> i64 {
    let max = i128::from(MAX_PARALLELISM_BUCKETS);
    let buckets = |w: i128| i128::from(last).div_euclid(w) - i128::from(first).div_euclid(w) + 1;
    let width = i128::from(width);
    let mut wide = width;
    if buckets(wide) > max {
        // Alignment can add one bucket to span / multiple; one step more always fits.
        let span = i128::from(last) - i128::from(first) + 1;
        let mut multiple = (span + width * max - 1) / (width * max);
        while buckets(width * multiple) > max {
            multiple += 1;
        }
        wide = width * multiple;
    }
    i64::try_from(wide).unwrap_or(i64::MAX)
}

impl<'a> Extend<&'a InvocationMetric> for MetricsAccumulator {
    fn extend<I: IntoIterator<Item = &'a InvocationMetric>>(&mut self, records: I) {
        for m in records {
            self.add(m);
        }
    }
}

impl<'a> FromIterator<&'a InvocationMetric> for MetricsAccumulator {
    fn from_iter<I: IntoIterator<Item = &'a InvocationMetric>>(records: I) -> Self {
        let mut acc = Self::new();
        acc.extend(records);
        acc
    }
}

/// One figure of every agent's summary, by agent: the seed's per-agent maps.
fn by_agent<T>(
    agents: &BTreeMap<String, GroupSummary>,
    figure: fn(&GroupSummary) -> T,
) -> BTreeMap<String, T> {
    agents.iter().map(|(k, g)| (k.clone(), figure(g))).collect()
}

/// How many of the ascending `keys` also occur in the ascending `set`.
fn count_in(keys: impl Iterator<Item = u64>, set: impl Iterator<Item = u64>) -> u64 {
    let mut set = set.peekable();
    let mut count = 0;
    for key in keys {
        while set.next_if(|s| *s < key).is_some() {}
        count += u64::from(set.peek() == Some(&key));
    }
    count
}

fn add_to_group(map: &mut Groups<String>, key: &str, m: &InvocationMetric, cost_pico: i128) {
    // One lookup by &str in the common case, which allocates nothing; the key is copied
    // only for a new group.
    match map.get_mut(key) {
        Some(group) => group.add(m, cost_pico),
        None => map.entry(key.to_owned()).or_default().add(m, cost_pico),
    }
}

fn merge_groups<K: Hash + Eq + Clone>(into: &mut Groups<K>, from: &Groups<K>) {
    for (k, g) in from {
        match into.get_mut(k) {
            Some(group) => group.merge(g),
            None => drop(into.insert(k.clone(), g.clone())),
        }
    }
}

fn absorb_groups<K: Hash + Eq>(into: &mut Groups<K>, mut from: Groups<K>) {
    if into.len() < from.len() {
        std::mem::swap(into, &mut from);
    }
    for (k, g) in from {
        match into.get_mut(&k) {
            Some(group) => group.merge(&g),
            None => drop(into.insert(k, g)),
        }
    }
}

/// A cost in USD as an integer of picodollars (10^-12 USD), rounded: the unit every cost sum
/// here is kept in, so that sums are exact and the same in any order (`f64` additions are
/// neither). Use it for sums of your own that must agree with the aggregate's.
///
/// ```
/// use invocation_metrics::{pico_to_usd, usd_to_pico};
///
/// let sum: i128 = [0.1, 0.2, 0.3].iter().map(|c| usd_to_pico(*c)).sum();
/// assert_eq!(pico_to_usd(sum), 0.6); // 0.1 + 0.2 + 0.3 in f64 is 0.6000000000000001
/// ```
pub fn usd_to_pico(cost: f64) -> i128 {
    (cost * PICO_PER_USD).round() as i128
}

/// Picodollars back to USD: the inverse of [`usd_to_pico`].
pub fn pico_to_usd(pico: i128) -> f64 {
    pico as f64 / PICO_PER_USD
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn at(ms: i64, duration_ms: u64) -> InvocationMetric {
        let mut m = InvocationMetric::new(
            format!("i{ms}-{duration_ms}"),
            "a",
            1,
            Timestamp::from_unix_ms(ms).unwrap(),
        );
        m.duration_ms = duration_ms;
        m
    }

    fn aggregate(records: &[InvocationMetric], width: u64) -> MetricsAggregate {
        records
            .iter()
            .collect::<MetricsAccumulator>()
            .finish(&AggregateOptions {
                bucket_width_ms: width,
                ..AggregateOptions::default()
            })
    }

    fn concurrency(agg: &MetricsAggregate) -> Vec<u64> {
        agg.parallelism_over_time
            .iter()
            .map(|b| b.concurrent)
            .collect()
    }

    #[test]
    fn empty_set_is_all_zero() {
        let agg = aggregate(&[], 1000);
        assert_eq!(agg.total_invocations, 0);
        assert_eq!(agg.success_rate, 0.0);
        assert_eq!(agg.peak_parallel_invocations, 0);
        assert!(agg.parallelism_over_time.is_empty());
        assert_eq!(agg.cache_hit_ratio, 0.0);
        assert!(agg.first_start.is_none() && agg.peak_parallel_at.is_none());
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        let agg = aggregate(&[at(0, 1000), at(1000, 1000)], 1000);
        assert_eq!(agg.peak_parallel_invocations, 1);
        assert_eq!(concurrency(&agg), [1, 1]);
    }

    /// An invocation ending exactly on a bucket's edge is not running in that bucket.
    #[test]
    fn an_interval_ending_on_a_bucket_edge_stays_out_of_the_next_bucket() {
        let agg = aggregate(&[at(0, 1000), at(3000, 2000)], 1000);
        assert_eq!(concurrency(&agg), [1, 0, 0, 1, 1]);
    }

    /// The bucket width is widened only past the limit on the number of buckets.
    #[test]
    fn the_bucket_width_is_kept_up_to_the_bucket_limit() {
        let limit = MAX_PARALLELISM_BUCKETS as i64;
        assert_eq!(bucket_width_within_limit(1000, 0, 1000 * limit - 1), 1000);
        assert_eq!(bucket_width_within_limit(1000, 0, 1000 * limit), 2000);
        // Widened to the smallest multiple that fits, exactly the limit included.
        assert_eq!(bucket_width_within_limit(1000, 0, 2000 * limit - 1), 2000);
        assert_eq!(
            bucket_width_within_limit(1000, 500, 500 + 3000 * limit - 1),
            4000
        );
    }

    #[test]
    fn overlaps_count_at_the_instant_not_per_bucket() {
        // Two intervals in the same bucket that never overlap: concurrent is 1, not 2.
        let agg = aggregate(&[at(100, 200), at(500, 200), at(600, 1000)], 1000);
        assert_eq!(agg.peak_parallel_invocations, 2);
        assert_eq!(
            agg.peak_parallel_at.as_deref(),
            Some("1970-01-01T00:00:00.600Z")
        );
        assert_eq!(concurrency(&agg), [2, 1]);
    }

    #[test]
    fn zero_durations_occupy_nothing_but_start_the_range() {
        let agg = aggregate(&[at(0, 0), at(2500, 100)], 1000);
        assert_eq!(concurrency(&agg), [0, 0, 1]);
        assert_eq!(
            agg.parallelism_over_time[0].bucket_start,
            "1970-01-01T00:00:00.000Z"
        );
        let only_zero = aggregate(&[at(1500, 0)], 1000);
        assert_eq!(concurrency(&only_zero), [0]);
        assert_eq!(only_zero.peak_parallel_invocations, 0);
    }

    /// The last end is the latest end of any record: one that lasts no time, after every
    /// other has ended, still ends the run (the buckets stop at the last occupied one).
    #[test]
    fn a_zero_duration_record_can_end_the_run() {
        let agg = aggregate(&[at(0, 0), at(1, 0)], 1);
        assert_eq!(agg.last_end.as_deref(), Some("1970-01-01T00:00:00.001Z"));
        let agg = aggregate(&[at(0, 100), at(5000, 0)], 1000);
        assert_eq!(agg.last_end.as_deref(), Some("1970-01-01T00:00:05.000Z"));
        assert_eq!(concurrency(&agg), [1]);
        let mut later = MetricsAccumulator::new();
        later.add(&at(9000, 0));
        let mut merged: MetricsAccumulator = [at(0, 100)].iter().collect();
        merged.merge(&later);
        let agg = merged.finish(&AggregateOptions::default());
        assert_eq!(agg.last_end.as_deref(), Some("1970-01-01T00:00:09.000Z"));
    }

    #[test]
    fn a_span_too_long_for_the_bucket_limit_widens_the_buckets() {
        // 570 years at 1 s buckets would be 1.8e10 buckets.
        let long = at(1_000, 18_000_000_000_000);
        let agg = aggregate(&[long.clone(), at(5_000, 1_000)], 1_000);
        let buckets = agg.parallelism_over_time.len() as u64;
        assert!(buckets <= MAX_PARALLELISM_BUCKETS, "{buckets} buckets");
        assert!(buckets > MAX_PARALLELISM_BUCKETS / 2, "{buckets} buckets");
        assert!(agg.bucket_width_ms > 1_000 && agg.bucket_width_ms.is_multiple_of(1_000));
        assert_eq!(agg.peak_parallel_invocations, 2);
        assert_eq!(concurrency(&agg)[0], 2);

        // The longest representable interval, at the narrowest width.
        let endless = at(1_000, u64::MAX);
        let agg = aggregate(&[endless], 1);
        assert!(agg.parallelism_over_time.len() as u64 <= MAX_PARALLELISM_BUCKETS);
        assert_eq!(agg.peak_parallel_invocations, 1);
    }

    /// Sorting the pending state ahead of finishing (what a scan does while it looks for
    /// repeated ids) changes no answer, whether little or most of the state has spilled, nor
    /// do records added after it.
    #[test]
    fn settling_changes_no_answer() {
        for records in [3, 100, 2_000] {
            let mut acc = spilling_with_every_kind_of_state(records);
            let before = acc.finish(&AggregateOptions::default());
            acc.sort_pending();
            assert_eq!(acc.finish(&AggregateOptions::default()), before);
            let more: Vec<_> = (0..50).map(|i| at(i * 3, 7)).collect();
            acc.extend(&more);
            let mut unsettled = spilling_with_every_kind_of_state(records);
            unsettled.extend(&more);
            assert_eq!(
                acc.finish(&AggregateOptions::default()),
                unsettled.finish(&AggregateOptions::default())
            );
        }
    }

    /// Every key found in the set counts, repeats included; none found, none counted.
    #[test]
    fn count_in_counts_each_key_found_in_the_set() {
        let count = |keys: &[u64], set: &[u64]| count_in(keys.iter().copied(), set.iter().copied());
        assert_eq!(count(&[1, 2, 2, 5, 9], &[2, 5, 7]), 3);
        assert_eq!(count(&[1, 3, 4], &[2, 5]), 0);
        assert_eq!(count(&[], &[2, 5]), 0);
        assert_eq!(count(&[4, 6], &[]), 0);
        assert_eq!(count(&[0, 7, 8, 9], &[0, 7, 8, 9, 10]), 4);
    }

    #[test]
    fn sums_saturate_instead_of_wrapping_in_any_order() {
        let mut huge = at(0, u64::MAX / 2 + 1);
        huge.tokens = u64::MAX;
        huge.cost = 1e300;
        let small = at(10, 5);
        let one_pass = aggregate(&[huge.clone(), small.clone(), huge.clone()], 1000);
        assert_eq!(one_pass.total_tokens, u64::MAX);
        assert_eq!(one_pass.total_duration_ms, u64::MAX);
        // Two costs of 1e300 saturate the picodollar sum (validation keeps records far
        // below this; the accumulator itself must still never wrap to a small number).
        assert_eq!(one_pass.total_cost, pico_to_usd(i128::MAX));
        let mut merged: MetricsAccumulator = [&small].into_iter().collect();
        merged.merge(&[&huge, &huge].into_iter().collect());
        assert_eq!(merged.finish(&AggregateOptions::default()), one_pass);
    }

    #[test]
    fn a_span_within_the_bucket_limit_keeps_the_width() {
        let agg = aggregate(&[at(0, MAX_PARALLELISM_BUCKETS - 1)], 1);
        assert_eq!(agg.bucket_width_ms, 1);
        assert_eq!(
            agg.parallelism_over_time.len() as u64,
            MAX_PARALLELISM_BUCKETS - 1
        );
    }

    #[test]
    fn bucket_edges_are_aligned_to_the_epoch() {
        // [999, 1001) touches buckets 0 and 1; [1999, 2000) ends exactly at bucket 2's start.
        let agg = aggregate(&[at(999, 2), at(1999, 1)], 1000);
        assert_eq!(concurrency(&agg), [1, 1]);
        let agg = aggregate(&[at(1234, 10)], 500);
        assert_eq!(
            agg.parallelism_over_time[0].bucket_start,
            "1970-01-01T00:00:01.000Z"
        );
    }

    #[test]
    fn retries_infra_retries_and_escalations() {
        let mut records = Vec::new();
        for (attempt, error_class, tier) in [
            (1, Some("rate-limit"), None),
            (2, None, Some("premium")),
            (3, None, Some("normal")),
        ] {
            let mut m = at(i64::from(attempt) * 10, 5);
            m.invocation_id = format!("t{attempt}");
            m.task_id = Some("task".into());
            m.attempt = attempt;
            m.error_class = error_class.map(Into::into);
            m.tier = tier.map(Into::into);
            m.success = attempt == 3;
            records.push(m);
        }
        // A retry without a taskId never has a previous attempt.
        let mut orphan = at(100, 5);
        orphan.attempt = 2;
        records.push(orphan);
        // The same chain key in another phase is a different chain.
        let mut other_phase = records[1].clone();
        other_phase.phase = 2;
        records.push(other_phase);

        let agg = aggregate(&records, 1000);
        assert_eq!(agg.total_retries, 4);
        assert_eq!(agg.infra_retries, 1);
        assert_eq!(agg.escalation_count, 2);
        assert_eq!(agg.retries_by_phase, BTreeMap::from([(1, 3), (2, 1)]));
        // t3 and the orphan succeeded.
        assert_eq!(agg.success_rate, 2.0 / 5.0);
    }

    #[test]
    fn sums_means_and_percentiles() {
        let mut records = Vec::new();
        for i in 1..=100u64 {
            let mut m = at(i as i64 * 1000, i);
            m.agent = if i % 2 == 0 { "even" } else { "odd" }.into();
            m.tokens = i;
            m.cost = 0.1;
            m.cached_tokens = (i <= 10).then_some(1);
            m.input_tokens = Some(2);
            records.push(m);
        }
        let agg = aggregate(&records, 1000);
        assert_eq!(agg.total_tokens, 5050);
        assert_eq!(agg.total_cost, 10.0);
        assert_eq!(agg.cost_by_agent["even"], 5.0);
        assert_eq!(agg.total_cached_tokens, 10);
        assert_eq!(agg.cache_hit_ratio, 10.0 / 200.0);
        assert_eq!(agg.total_duration_ms, 5050);
        assert_eq!(agg.avg_duration_by_agent["even"], 51.0);
        assert_eq!(agg.avg_duration_by_agent["odd"], 50.0);
        assert_eq!(agg.tokens_by_agent["odd"], 2500);
        let all: MetricsAccumulator = records.iter().collect();
        assert_eq!(all.all.durations.percentile(50), 50);
        assert_eq!(all.all.durations.percentile(95), 95);
        assert_eq!(all.all.durations.percentile(99), 99);
        assert_eq!(agg.agents["even"].p50_duration_ms, 50);
        assert_eq!(agg.agents["even"].max_duration_ms, 100);
    }

    #[test]
    fn merging_chunks_equals_one_pass() {
        let records: Vec<_> = (0..50)
            .map(|i| {
                let mut m = at(i * 37 % 900, (i as u64 * 53) % 400);
                m.cost = 0.1 + i as f64 * 0.01;
                m.agent = format!("agent-{}", i % 3);
                m
            })
            .collect();
        let whole: MetricsAccumulator = records.iter().collect();
        let mut merged: MetricsAccumulator = records[30..].iter().collect();
        merged.merge(&records[..30].iter().collect());
        assert_eq!(merged, whole);
        let options = AggregateOptions::default();
        assert_eq!(merged.finish(&options), whole.finish(&options));
    }

    /// A worker's accumulator hands back what grows with the records (the sorted logs) and
    /// keeps its sums and groups — until the groups pass the limit, then it hands back all;
    /// the pieces always add up to the whole.
    #[test]
    fn a_worker_keeps_its_groups_and_hands_back_per_record_state() {
        let records: Vec<_> = (0..200)
            .map(|i| {
                let mut m = at(i * 41 % 900, (i as u64 * 53) % 400);
                m.agent = format!("agent-{}", i % 7);
                m.task_id = Some(format!("task-{}", i / 2));
                m.attempt = (i % 2 + 1) as u32;
                m.error_class = (i % 3 == 0).then(|| "timeout".to_owned());
                m
            })
            .collect();
        let whole: MetricsAccumulator = records.iter().collect();
        let mut worker = MetricsAccumulator::new();
        let mut total = MetricsAccumulator::new();
        for chunk in records.chunks(64) {
            chunk.iter().for_each(|m| worker.add(m));
            let handed = worker.hand_back_all_but_groups();
            assert_eq!(
                (handed.count(), handed.by_agent.len(), worker.by_agent.len()),
                (0, 0, 7),
                "the groups stay"
            );
            assert_eq!(
                (
                    worker.running.last_time().is_none(),
                    worker.retries_after.len(),
                    worker.infra_failed.len()
                ),
                (true, 0, 0),
                "per-record state goes"
            );
            assert!(handed.running.last_time().is_some() && handed.retries_after.len() > 0);
            total.absorb(handed);
        }
        total.absorb(std::mem::take(&mut worker));
        assert_eq!(total, whole);

        // Past the limit, counting the groups of every dimension, everything goes; at it,
        // the groups stay.
        for (agents, all_go) in [
            (WORKER_GROUPS_MAX - 3, true),
            (WORKER_GROUPS_MAX - 4, false),
        ] {
            let mut crowded = MetricsAccumulator::new();
            for i in 0..agents {
                let mut m = at(i as i64, 1);
                m.agent = format!("agent-{i}");
                m.model = Some("m".into());
                m.tier = Some("t".into());
                m.error_class = Some("e".into());
                crowded.add(&m);
            }
            assert_eq!(crowded.count(), agents as u64);
            let handed = crowded.hand_back_all_but_groups();
            let kept = WORKER_GROUPS_MAX - 4;
            match all_go {
                true => assert_eq!(
                    (crowded.count(), handed.by_agent.len()),
                    (0, agents),
                    "{agents}"
                ),
                false => assert_eq!(
                    (crowded.by_agent.len(), handed.by_agent.len()),
                    (kept, 0),
                    "{agents}"
                ),
            }
        }
    }

    /// An accumulator with a 64-byte budget, given `n` retries after infrastructure errors:
    /// each kind of per-record state has spilled.
    fn spilling_with_every_kind_of_state(n: i64) -> MetricsAccumulator {
        let mut accumulator = MetricsAccumulator::spilling_within(64);
        for i in 0..n {
            let mut m = at(i, 5);
            m.task_id = Some(format!("t{i}"));
            m.attempt = 2;
            m.error_class = Some("timeout".into());
            accumulator.add(&m);
        }
        accumulator
    }

    /// A spilling accumulator spills every kind of per-record state (the default budget and
    /// a given one); a plain one keeps it all in memory.
    #[test]
    fn spilling_accumulators_spill_every_kind_of_per_record_state() {
        let kinds = |a: &MetricsAccumulator| {
            [
                a.retries_after.spills(),
                a.infra_failed.spills(),
                a.running.spills(),
            ]
        };
        assert_eq!(kinds(&MetricsAccumulator::spilling()), [true; 3]);
        assert_eq!(kinds(&MetricsAccumulator::new()), [false; 3]);
        let small = spilling_with_every_kind_of_state(100);
        assert!(small.retries_after.spilled_runs() > 0);
        assert!(small.infra_failed.spilled_runs() > 0);
        assert!(small.running.spills());
        let plain: MetricsAccumulator = (0..100)
            .map(|i| at(i, 5))
            .collect::<Vec<_>>()
            .iter()
            .collect();
        let options = AggregateOptions::default();
        assert_eq!(
            small.finish(&options).total_invocations,
            plain.finish(&options).total_invocations
        );
    }

    /// Consuming the accumulator gives the same aggregate as finishing it, and the
    /// breakdowns list every group of every dimension, in key order.
    #[test]
    fn the_aggregate_by_value_and_its_breakdowns_hold_every_group() {
        let records: Vec<_> = (0..60)
            .map(|i| {
                let mut m = at(i * 1000, 500);
                m.agent = format!("agent-{}", i % 3);
                m.phase = (i % 4) as u32 + 8;
                m.model = Some(format!("model-{}", i % 2));
                m.tier = (i % 5 == 0).then(|| "premium".to_owned());
                m.error_class = (i % 6 == 0).then(|| "timeout".to_owned());
                m
            })
            .collect();
        let accumulator: MetricsAccumulator = records.iter().collect();
        let options = AggregateOptions::default();
        let finished = accumulator.finish(&options);
        let consumed = accumulator.try_into_aggregate(&options).unwrap();
        assert_eq!(consumed, finished);
        let listed: Vec<(&str, Vec<String>)> = consumed
            .breakdowns()
            .iter()
            .map(|b| {
                (
                    b.dimension,
                    b.groups.iter().map(|(name, _)| name.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "agent",
                    vec!["agent-0".into(), "agent-1".into(), "agent-2".into()]
                ),
                (
                    "phase",
                    vec!["8".into(), "9".into(), "10".into(), "11".into()]
                ),
                ("model", vec!["model-0".into(), "model-1".into()]),
                ("tier", vec!["premium".into()]),
                ("error class", vec!["timeout".into()]),
            ]
        );
        let agent_0 = consumed.breakdowns()[0].groups[0].1.invocations;
        assert_eq!(agent_0, 20);
    }

    /// State spilled to a temporary file that cannot be read back makes the aggregate an
    /// error, whichever kind of state it was, by reference or by value.
    #[test]
    fn a_spill_file_lost_makes_the_aggregate_an_error() {
        let options = AggregateOptions::default();
        for lost in ["retries", "infrastructure failures", "running"] {
            let accumulator = spilling_with_every_kind_of_state(200);
            assert!(accumulator.try_finish(&options).is_ok(), "{lost}");
            match lost {
                "retries" => accumulator.retries_after.lose_spill_file(),
                "infrastructure failures" => accumulator.infra_failed.lose_spill_file(),
                _ => accumulator.running.lose_spill_file(),
            }
            let error = accumulator.try_finish(&options).unwrap_err().to_string();
            assert!(error.contains("cannot read back"), "{lost}: {error}");
            let error = accumulator
                .try_into_aggregate(&options)
                .unwrap_err()
                .to_string();
            assert!(error.contains("cannot read back"), "{lost}: {error}");
        }
    }
}
