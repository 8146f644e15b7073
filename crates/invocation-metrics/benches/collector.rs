//! The collector's figures for docs/PERFORMANCE.md: record throughput and latency, group
//! commit under durable flushes, load and aggregate at a million records.
//!
//! `cargo bench -p invocation-metrics --bench collector` (add `-- --quick` for a smoke run).
//! Prints a table; asserts nothing (timings on a shared machine are only meaningful as ratios
//! measured side by side, which is how the table is laid out).

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use invocation_metrics::{
    Durability, InvocationMetric, InvocationMetricsCollector, METRICS_FILE_NAME,
    MetricsAccumulator, Timestamp,
};

fn metric(id: u64) -> InvocationMetric {
    let mut m = InvocationMetric::new(
        format!("bench-{id}"),
        ["planner", "coder", "reviewer", "tester"][(id % 4) as usize],
        (id % 5) as u32,
        Timestamp::from_unix_ms(1_764_000_000_000 + id as i64 * 3).unwrap(),
    );
    m.task_id = Some(format!("task-{}", id / 3));
    m.duration_ms = 500 + id % 20_000;
    m.tokens = 1_000 + id % 9_000;
    m.cost = (id % 1000) as f64 / 10_000.0;
    m.model = Some("model-standard".into());
    m.tier = Some(
        if id.is_multiple_of(10) {
            "premium"
        } else {
            "normal"
        }
        .into(),
    );
    m
}

/// Resident memory of this process, from /proc.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn record_throughput(records_per_thread: u64, threads: u64) -> (f64, Vec<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let collector = Arc::new(InvocationMetricsCollector::open(dir.path()).unwrap());
    let metrics: Vec<Vec<InvocationMetric>> = (0..threads)
        .map(|t| {
            (0..records_per_thread)
                .map(|i| metric(t * records_per_thread + i))
                .collect()
        })
        .collect();
    let start = Instant::now();
    let handles: Vec<_> = metrics
        .into_iter()
        .map(|batch| {
            let collector = Arc::clone(&collector);
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(batch.len() / 16 + 1);
                for (i, m) in batch.into_iter().enumerate() {
                    if i % 16 == 0 {
                        let t = Instant::now();
                        collector.record(m).unwrap();
                        latencies.push(t.elapsed());
                    } else {
                        collector.record(m).unwrap();
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    collector.flush().unwrap();
    let elapsed = start.elapsed();
    latencies.sort();
    (
        (records_per_thread * threads) as f64 / elapsed.as_secs_f64(),
        latencies,
    )
}

/// Records per second with `threads` threads each flushing after every record, durably.
fn durable_flushes(threads: u64, per_thread: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let collector = Arc::new(
        InvocationMetricsCollector::builder(dir.path())
            .durability(Durability::Always)
            .open()
            .unwrap(),
    );
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let collector = Arc::clone(&collector);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    collector.record(metric(t * per_thread + i)).unwrap();
                    collector.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// The naive baseline: one thread, write + fdatasync per record.
fn naive_write_fsync(records: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("naive.jsonl"))
        .unwrap();
    let start = Instant::now();
    for i in 0..records {
        let mut line = metric(i).to_json_line();
        line.push('\n');
        file.write_all(line.as_bytes()).unwrap();
        file.sync_data().unwrap();
    }
    records as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale: u64 = if quick { 20 } else { 1 };
    // `cargo bench ... -- load` runs only the sections whose name contains "load".
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |section: &str| only.is_empty() || only.iter().any(|o| section.contains(o.as_str()));
    println!("| measure | value |\n|---|---|");
    // Load first: it measures resident memory, which memory freed by an earlier section
    // would hide.
    if run("load aggregate") {
        load_section(scale);
    }
    if run("record") {
        record_section(scale);
    }
    if run("durable") {
        durable_section(scale);
    }
}

fn record_section(scale: u64) {
    let (rate, latencies) = record_throughput(500_000 / scale, 4);
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "| record(), 4 threads, default durability | {:.0} records/s |",
        rate
    );
    println!(
        "| record() latency p50 / p99 / p99.9 | {:?} / {:?} / {:?} |",
        p(0.5),
        p(0.99),
        p(0.999)
    );
}

fn durable_section(scale: u64) {
    // Rounds alternate the baseline and the group commits so that the machine's drift hits
    // every configuration alike; the table gives medians over the rounds.
    let rounds = if scale > 1 { 1 } else { 5 };
    let records = 8_000 / scale;
    let (mut naive, mut by_threads) = (Vec::new(), [(8u64, Vec::new()), (64, Vec::new())]);
    for _ in 0..rounds {
        naive.push(naive_write_fsync(records / 4));
        for (threads, rates) in &mut by_threads {
            rates.push(durable_flushes(*threads, records / *threads));
        }
    }
    let naive = median(&mut naive);
    println!("| naive write + fdatasync per record, 1 thread | {naive:.0} records/s |");
    for (threads, rates) in &mut by_threads {
        let ratios: Vec<String> = rates
            .iter()
            .map(|r| format!("{:.2}", r / naive / *threads as f64))
            .collect();
        let durable = median(rates);
        println!(
            "| Always + flush per record, {threads} threads | {durable:.0} records/s = {:.1} × naive = {:.2} × (N × naive); rounds: {} |",
            durable / naive,
            durable / naive / *threads as f64,
            ratios.join(", ")
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn load_section(scale: u64) {
    // BENCH_LOAD_DIR: load that directory's metrics file instead of a generated one (how
    // bench/compare.sh times the load against DuckDB's on the same file).
    let given = std::env::var_os("BENCH_LOAD_DIR").map(std::path::PathBuf::from);
    let generated = tempfile::tempdir().unwrap();
    let dir = given.as_deref().unwrap_or(generated.path());
    let n = 1_000_000 / scale;
    if given.is_none() {
        // Written line by line, not through a collector: a million records freed just before
        // the load would leave the heap full of free memory for it to reuse unseen, and the
        // resident bytes per record would read low.
        let file = std::fs::File::create(dir.join(METRICS_FILE_NAME)).unwrap();
        let mut out = std::io::BufWriter::new(file);
        for i in 0..n {
            writeln!(out, "{}", metric(i).to_json_line()).unwrap();
        }
        out.flush().unwrap();
    }
    let before = rss_bytes();
    let collector = InvocationMetricsCollector::open(dir).unwrap();
    let start = Instant::now();
    let report = collector.load_from_disk(0).unwrap();
    let load = start.elapsed();
    assert!(report.loaded > 0, "no records in {}", dir.display());
    let per_record = rss_bytes().saturating_sub(before) as f64 / report.loaded as f64;
    println!(
        "| load_from_disk, {} records | {load:?}, {per_record:.0} resident bytes/record |",
        report.loaded
    );

    let start = Instant::now();
    let first = collector.compute_aggregate();
    let cold = start.elapsed();
    let start = Instant::now();
    let again = collector.compute_aggregate();
    let warm = start.elapsed();
    assert_eq!(first, again);
    println!(
        "| compute_aggregate, {} records: first call / later calls | {cold:?} / {warm:?} |",
        report.loaded
    );

    let records = collector.get_all();
    let start = Instant::now();
    let acc: MetricsAccumulator = records.iter().collect();
    let fold = start.elapsed();
    let start = Instant::now();
    let _ = acc.finish(&Default::default());
    println!(
        "| MetricsAccumulator: add {} / finish | {fold:?} / {:?} |",
        records.len(),
        start.elapsed()
    );
}
