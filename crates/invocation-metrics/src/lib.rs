//! Crash-safe per-invocation metrics for multi-agent LLM systems.
//!
//! An orchestrator records one [`InvocationMetric`] per agent invocation with an
//! [`InvocationMetricsCollector`]. Each record is kept in memory, appended to
//! `<metrics_dir>/invocations.jsonl` by a background writer (one JSON object per line, see
//! [the format](#file-format)), and published on a [`FleetEventBus`]. At any time
//! [`compute_aggregate`](InvocationMetricsCollector::compute_aggregate) gives the exact
//! [`MetricsAggregate`]: totals, breakdowns by agent and phase, retries (and how many followed
//! infrastructure errors), cost, parallelism over time, escalations and success rate.
//!
//! ```
//! use invocation_metrics::{InvocationMetric, InvocationMetricsCollector, Timestamp};
//!
//! let dir = tempfile::tempdir()?;
//! let collector = InvocationMetricsCollector::open(dir.path())?;
//!
//! let mut metric = InvocationMetric::new("inv-1", "planner", 1, Timestamp::now());
//! metric.duration_ms = 1_200;
//! metric.tokens = 3_000;
//! metric.cost = 0.018;
//! collector.record(metric)?;
//!
//! collector.flush()?; // the record is now in invocations.jsonl
//! let summary = collector.compute_aggregate();
//! assert_eq!(summary.total_invocations, 1);
//! assert_eq!(summary.tokens_by_agent["planner"], 3_000);
//! collector.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Resuming after a restart
//!
//! Save your checkpoint with [`checkpoint`](InvocationMetricsCollector::checkpoint): it syncs
//! the metrics file through the current [`get_count`](InvocationMetricsCollector::get_count),
//! then stores that count as `metricsCount` in your [`CheckpointState`] and replaces
//! `checkpoint.json` atomically ([`CheckpointStore`]). Because the file is synced first, the
//! checkpoint never counts records a power cut could take away, whatever the [`Durability`].
//! After a restart, reopen the same metrics directory — the open repairs a torn last line —
//! and read the checkpoint:
//!
//! - to restore the whole history into memory, call `load_from_disk(0)`;
//! - the seed framework's flow, where the first `metricsCount` records are already
//!   accounted for elsewhere, calls `load_from_disk(metrics_count)` to take only the rest;
//!   its report's `missing` says if the file holds fewer records than the checkpoint counts.
//!
//! ```
//! use invocation_metrics::{
//!     CheckpointState, CheckpointStore, InvocationMetric, InvocationMetricsCollector, Timestamp,
//! };
//!
//! let (metrics_dir, checkpoint_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! let checkpoints = CheckpointStore::new(checkpoint_dir.path())?;
//!
//! // First run: record, checkpoint, stop.
//! let collector = InvocationMetricsCollector::open(metrics_dir.path())?;
//! for i in 0..3 {
//!     collector.record(InvocationMetric::new(format!("inv-{i}"), "coder", 1, Timestamp::now()))?;
//! }
//! let mut state = CheckpointState::default();
//! state.other.insert("phase".into(), 1.into()); // your own fields ride along
//! collector.checkpoint(&checkpoints, state)?; // sync the file, then save metricsCount = 3
//! collector.close()?;
//!
//! // Second run: reopen and restore.
//! let collector = InvocationMetricsCollector::open(metrics_dir.path())?;
//! let checkpoint = checkpoints.load()?.unwrap_or_default();
//! let report = collector.load_from_disk(0)?;
//! assert_eq!(report.loaded, 3);
//! assert_eq!(checkpoint.metrics_count, Some(3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # File format
//!
//! `invocations.jsonl` is UTF-8 JSON Lines: one [`InvocationMetric`] object per line (field
//! names in [its docs](InvocationMetric)), each ended by `\n`, in record order. It is only
//! ever appended to. A crash can tear at most the last line; readers skip invalid lines with
//! their line number and count a final unterminated line only if it is a valid record, and a
//! writer cuts a torn last line (saving it as `invocations.jsonl.torn-<ms>`) before appending.
//! Lines in the older framework and launcher dialects are read too; see [`parse_line`].
//!
//! # Durability
//!
//! `record()` never waits for the disk; [`flush`](InvocationMetricsCollector::flush) waits
//! for the writer, and [`Durability`] says what an acknowledged flush survives.

mod aggregate;
mod atomic_file;
mod bus;
mod checkpoint;
mod collector;
mod error;
mod hashing;
mod journal;
#[cfg(feature = "otlp")]
pub mod otlp;
mod parse;
mod record;
mod repair;
mod retry;
mod scan;
mod source;
mod store;
mod tail;

pub use aggregate::{
    AggregateOptions, Breakdown, DEFAULT_BASE_TIER, DEFAULT_BUCKET_WIDTH_MS, GroupSummary,
    MAX_PARALLELISM_BUCKETS, MetricsAccumulator, MetricsAggregate, ParallelismBucket, pico_to_usd,
    usd_to_pico,
};
pub use atomic_file::{write_file_atomically, write_file_atomically_with};
pub use bus::{DEFAULT_BUS_CAPACITY, FleetEvent, FleetEventBus, RecvError, Subscription};
pub use checkpoint::{CHECKPOINT_FILE_NAME, CheckpointState, CheckpointStore};
pub use collector::{
    CollectorBuilder, InvocationMetricsCollector, LOCK_FILE_NAME, LoadReport, METRICS_FILE_NAME,
    has_live_writer,
};
pub use error::{Error, Result, ValidationError};
pub use journal::{
    Durability, LineProblem, RawLine, ReadStats, TailRepair, for_each_line, is_blank, read_records,
};
pub use parse::{
    Dialect, LineError, MAX_LINE_BYTES, missing_field, parse_line, parse_line_general,
    parse_line_with_dialect,
};
pub use record::{InvocationMetric, MAX_COST_USD, MAX_DURATION_MS, MAX_TOKENS, Timestamp};
pub use repair::{REJECTED_FILE_NAME, RepairReport, repair_metrics_file};
pub use retry::{Attempt, RetryChain, RetryChainScan, retry_chains};
pub use source::{
    Input, InputReport, MetricsScan, RecordFilter, RecordFold, ScanReport, resolve_inputs,
};
pub use tail::{FileTail, NewLines};
