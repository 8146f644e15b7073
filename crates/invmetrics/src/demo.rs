//! `demo`: a simulated multi-agent fleet recording real metrics through the library.
//!
//! Four phases (plan, implement, review, integrate), a dozen agents, worker threads recording
//! in parallel, infrastructure errors and code failures with retries, tier escalations and
//! prompt-cache hits. Time is simulated (no sleeping), so a million invocations take seconds,
//! and a seed makes a run reproducible: the same seed gives the same aggregate.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use invocation_metrics::{
    CheckpointState, CheckpointStore, InvocationMetric, InvocationMetricsCollector,
    METRICS_FILE_NAME, MetricsScan, RecordFilter, Timestamp,
};

use crate::args::DemoArgs;
use crate::report;
use crate::summary::write_tables;

/// Phases: name, share of the invocations, agents that work in it.
const PHASES: [(&str, f64, &[&str]); 4] = [
    ("plan", 0.10, &["planner", "architect"]),
    (
        "implement",
        0.50,
        &[
            "coder-backend",
            "coder-frontend",
            "coder-infra",
            "test-writer",
        ],
    ),
    (
        "review",
        0.30,
        &[
            "reviewer-security",
            "reviewer-style",
            "reviewer-perf",
            "docs-writer",
        ],
    ),
    ("integrate", 0.10, &["integrator", "release-manager"]),
];
const INFRA_ERRORS: [&str; 4] = ["rate-limit", "timeout", "api-5xx", "network"];
/// 2026-11-24T09:00:00Z: every demo run starts here, so runs are comparable.
const RUN_START_MS: i64 = 1_795_510_800_000;

/// `invmetrics demo`.
pub fn run(args: &DemoArgs, out: &mut impl Write) -> Result<ExitCode> {
    prepare_dir(&args.dir)?;
    let collector = Arc::new(InvocationMetricsCollector::open(&args.dir)?);
    let checkpoints = CheckpointStore::new(args.dir.join("checkpoint"))?;
    let threads = args.threads;

    // Ids carry a tag of their own run, so that runs read together (`summary -r`) never
    // share an id: the same seed gives the same records but for the tag.
    let run_tag: Arc<str> = format!("{:08x}", fastrand::u32(..)).into();
    let mut clock = RUN_START_MS;
    let mut remaining = args.records;
    for (index, (name, share, agents)) in PHASES.iter().enumerate() {
        let phase = index as u32 + 1;
        let budget = if phase as usize == PHASES.len() {
            remaining
        } else {
            ((args.records as f64 * share).round() as u64).min(remaining)
        };
        remaining -= budget;
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let collector = Arc::clone(&collector);
                let quota =
                    budget / threads as u64 + u64::from((worker as u64) < budget % threads as u64);
                let plan = Worker {
                    seed: args.seed,
                    run_tag: Arc::clone(&run_tag),
                    phase,
                    worker,
                    agents,
                    start_ms: clock,
                    quota,
                };
                std::thread::spawn(move || plan.run(&collector))
            })
            .collect();
        let mut phase_end = clock;
        for worker in workers {
            let end = worker
                .join()
                .map_err(|_| anyhow::anyhow!("a demo worker panicked"))??;
            phase_end = phase_end.max(end);
        }
        // Between phases the orchestrator checkpoints, as a real one would: the metrics
        // file is synced before the checkpoint that counts its records is saved.
        let mut state = CheckpointState::default();
        state.other.insert("demo".into(), true.into());
        state.other.insert("seed".into(), args.seed.into());
        state.other.insert("completedPhase".into(), (*name).into());
        collector.checkpoint(&checkpoints, state)?;
        clock = phase_end + 5_000;
    }

    let aggregate = collector.compute_aggregate();
    Arc::try_unwrap(collector)
        .map_err(|_| anyhow::anyhow!("collector still shared"))?
        .close()?;

    let path = args.dir.join(METRICS_FILE_NAME);
    if args.no_report {
        writeln!(
            out,
            "recorded {} invocations to {}",
            aggregate.total_invocations,
            path.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let scan = MetricsScan::new(RecordFilter::default()).finish();
    write_tables(out, &aggregate, &scan, None)?;
    let report_path = args.dir.join("report.html");
    // From the file just written, as `invmetrics report` would: bounded memory at any size.
    report::write_html_of(&path, &report_path)?;
    writeln!(
        out,
        "\nmetrics: {}\nreport:  {}",
        path.display(),
        report_path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Starts from a clean directory, but never deletes metrics the demo did not write.
fn prepare_dir(dir: &Path) -> Result<()> {
    let metrics = dir.join(METRICS_FILE_NAME);
    if !metrics.exists() {
        return Ok(());
    }
    // Only looked at when it exists: a refused run must leave the directory as it was.
    let checkpoint_dir = dir.join("checkpoint");
    let checkpoints = match checkpoint_dir.is_dir() {
        true => Some(CheckpointStore::new(&checkpoint_dir)?),
        false => None,
    };
    let from_demo = checkpoints
        .as_ref()
        .and_then(|store| store.load().ok().flatten())
        .is_some_and(|c| c.other.get("demo") == Some(&true.into()));
    let Some(checkpoints) = checkpoints.filter(|_| from_demo) else {
        bail!(
            "{} already holds metrics the demo did not write; give the demo another directory",
            dir.display()
        );
    };
    fs::remove_file(&metrics).with_context(|| format!("cannot remove {}", metrics.display()))?;
    let _ = fs::remove_file(checkpoints.path());
    Ok(())
}

/// One worker thread's share of a phase.
struct Worker {
    seed: u64,
    run_tag: Arc<str>,
    phase: u32,
    worker: usize,
    agents: &'static [&'static str],
    start_ms: i64,
    quota: u64,
}

impl Worker {
    /// Runs tasks until the quota of invocations is used; returns the simulated end time.
    fn run(self, collector: &InvocationMetricsCollector) -> Result<i64> {
        let mut rng = fastrand::Rng::with_seed(
            self.seed
                ^ (u64::from(self.phase) << 32)
                ^ (self.worker as u64).wrapping_mul(0x9e37_79b9),
        );
        let mut clock = self.start_ms + rng.i64(0..2_000);
        let mut recorded = 0;
        let mut task = 0;
        while recorded < self.quota {
            let agent = self.agents[rng.usize(..self.agents.len())];
            let task_id = format!("p{}-w{}-t{task}", self.phase, self.worker);
            task += 1;
            let mut tier = "normal";
            for attempt in 1..=3u32 {
                if recorded == self.quota {
                    break;
                }
                let mut m = invocation(&mut rng, agent, self.phase, &task_id, attempt, tier, clock);
                m.invocation_id = format!("{}-{task_id}-a{attempt}", self.run_tag);
                clock += m.duration_ms as i64 + rng.i64(50..800);
                let (success, infra) = (m.success, m.error_class.is_some());
                collector.record(m).context("demo record refused")?;
                recorded += 1;
                if success {
                    break;
                }
                // A bad answer goes to a stronger model; an infrastructure error just retries.
                if !infra {
                    tier = "premium";
                }
            }
        }
        Ok(clock)
    }
}

fn invocation(
    rng: &mut fastrand::Rng,
    agent: &str,
    phase: u32,
    task_id: &str,
    attempt: u32,
    tier: &str,
    start_ms: i64,
) -> InvocationMetric {
    let timestamp = Timestamp::from_unix_ms(start_ms).unwrap_or_else(Timestamp::now);
    let mut m = InvocationMetric::new(format!("{task_id}-a{attempt}"), agent, phase, timestamp);
    let heavy = agent.starts_with("coder") || agent == "architect";
    // Durations are long-tailed: most calls are quick, a few take minutes.
    let base = if heavy { 20_000.0 } else { 8_000.0 };
    let tail = -(1.0 - rng.f64()).ln();
    m.duration_ms = (base * (0.3 + tail * tail)).round() as u64 + 200;
    let input = rng.u64(2_000..if heavy { 60_000 } else { 20_000 });
    let output = rng.u64(200..if heavy { 8_000 } else { 2_000 });
    let cached = if attempt > 1 || rng.f64() < 0.4 {
        input * rng.u64(30..90) / 100
    } else {
        0
    };
    m.input_tokens = Some(input);
    m.output_tokens = Some(output);
    m.cached_tokens = Some(cached);
    m.tokens = input + output;
    let (input_price, output_price) = if tier == "premium" {
        (15e-6, 75e-6)
    } else {
        (3e-6, 15e-6)
    };
    let billed_input = (input - cached) as f64 + cached as f64 * 0.1;
    m.cost = ((billed_input * input_price + output as f64 * output_price) * 1e6).round() / 1e6;
    m.attempt = attempt;
    m.task_id = Some(task_id.to_owned());
    m.tier = Some(tier.to_owned());
    m.model = Some(
        if tier == "premium" {
            "model-large"
        } else {
            "model-standard"
        }
        .to_owned(),
    );

    let roll = rng.f64();
    if roll < 0.06 {
        m.success = false;
        m.exit_code = 75;
        m.output_parsed = false;
        m.error_class = Some(INFRA_ERRORS[rng.usize(..INFRA_ERRORS.len())].to_owned());
        m.duration_ms = m.duration_ms.min(30_000) / 3;
    } else if roll < 0.06 + 0.09 / f64::from(attempt) {
        m.success = false;
        m.exit_code = 1;
        m.output_parsed = rng.bool();
    }
    m
}
