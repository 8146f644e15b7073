//! Per-operation timings of the read path, with divan: parsing one line, reading one
//! timestamp, folding records into the aggregate, finishing it, and scanning a file the way
//! `invmetrics summary` does. These are the numbers to watch when changing the parser or the
//! aggregate; the collector's concurrency, durability and memory figures are in
//! `benches/collector.rs`, which divan's one-function-at-a-time model does not fit.
//!
//! `cargo bench -p invocation-metrics --bench read_path` (divan's options after `--`, e.g.
//! `-- parse` to run only the parsing benchmarks).

use std::io::Write;

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use invocation_metrics::{
    AggregateOptions, Input, InvocationMetric, MetricsAccumulator, MetricsScan, RecordFilter,
    Timestamp, parse_line,
};

fn main() {
    divan::main();
}

/// A record as the collector writes it: every field, canonical order, UTC timestamp.
const NATIVE: &str = r#"{"invocationId":"p2-w3-t41-a1","agent":"coder-backend","phase":2,"taskId":"p2-w3-t41","durationMs":48211,"tokens":21874,"inputTokens":18102,"outputTokens":3772,"cachedTokens":9930,"cost":0.071245,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"model":"model-standard","tier":"normal","timestamp":"2026-11-24T09:14:03.705Z"}"#;

/// The same record from another program: fields reordered and a local offset.
const REORDERED: &str = r#"{"agent":"coder-backend","invocationId":"p2-w3-t41-a1","phase":2,"taskId":"p2-w3-t41","timestamp":"2026-11-24T10:14:03.705+01:00","durationMs":48211,"tokens":21874,"inputTokens":18102,"outputTokens":3772,"cachedTokens":9930,"cost":0.071245,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"model":"model-standard","tier":"normal"}"#;

/// The same record as Python's `json.dumps` writes it: keys in another order, `", "` and
/// `": "` between them.
const SPACED: &str = r#"{"exitCode": 0, "tokens": 21874, "tier": "normal", "model": "model-standard", "cost": 0.071245, "invocationId": "p2-w3-t41-a1", "cachedTokens": 9930, "outputParsed": true, "taskId": "p2-w3-t41", "inputTokens": 18102, "success": true, "attempt": 1, "outputTokens": 3772, "agent": "coder-backend", "timestamp": "2026-11-24T09:14:03.705Z", "phase": 2, "durationMs": 48211}"#;

/// The same record in the older framework dialect.
const FRAMEWORK: &str = r#"{"invocationId":"p2-w3-t41-a1","agentType":"coder-backend","phase":2,"durationMs":48211,"tokensTotal":21874,"costUsd":0.071245,"status":"success","exitCode":0,"attemptNumber":1,"outputParsed":true,"startTime":"2026-11-24T09:14:03.705Z","taskId":"p2-w3-t41","tokensPrompt":18102,"tokensCompletion":3772,"cachedTokens":9930,"model":"model-standard","routingTier":"normal"}"#;

/// Which of the lines to parse (named, so that divan's table does not print the line).
#[derive(Debug, Clone, Copy)]
enum Line {
    Native,
    Reordered,
    Spaced,
    Framework,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[divan::bench(args = [Line::Native, Line::Reordered, Line::Spaced, Line::Framework], sample_size = 64)]
fn parse(bencher: Bencher, line: Line) {
    let line = match line {
        Line::Native => NATIVE,
        Line::Reordered => REORDERED,
        Line::Spaced => SPACED,
        Line::Framework => FRAMEWORK,
    };
    bencher
        .counter(BytesCount::of_str(line))
        .bench(|| parse_line(black_box(line.as_bytes())).unwrap());
}

#[divan::bench(args = ["2026-11-24T09:14:03.705Z", "2026-11-24T10:14:03.705+01:00"])]
fn timestamp(bencher: Bencher, text: &str) {
    bencher.bench(|| black_box(text).parse::<Timestamp>().unwrap());
}

/// `n` records shaped like a demo run's: a dozen agents, four phases, retries and
/// infrastructure errors, overlapping in time.
fn records(n: u64) -> Vec<InvocationMetric> {
    let base: InvocationMetric = parse_line(NATIVE.as_bytes()).unwrap();
    let start = base.timestamp.unix_ms();
    (0..n)
        .map(|i| {
            let mut m = base.clone();
            m.invocation_id = format!("inv-{i}");
            m.agent = format!("agent-{}", i % 12);
            m.phase = (i % 4) as u32 + 1;
            m.task_id = Some(format!("task-{}", i / 3));
            m.attempt = (i % 3) as u32 + 1;
            m.duration_ms = 500 + (i * 7_919) % 90_000;
            m.timestamp = Timestamp::from_unix_ms(start + i as i64 * 40).unwrap();
            if i % 17 == 0 {
                m.success = false;
                m.error_class = Some("rate-limit".into());
            }
            m
        })
        .collect()
}

const RECORDS: u64 = 100_000;

#[divan::bench]
fn accumulate(bencher: Bencher) {
    let records = records(RECORDS);
    bencher
        .counter(ItemsCount::new(RECORDS))
        .bench(|| records.iter().collect::<MetricsAccumulator>());
}

#[divan::bench]
fn finish(bencher: Bencher) {
    let accumulator: MetricsAccumulator = records(RECORDS).iter().collect();
    let options = AggregateOptions::default();
    bencher
        .counter(ItemsCount::new(RECORDS))
        .bench(|| accumulator.finish(&options));
}

/// Reading, parsing and aggregating a file on every core, as `summary` does (the file is
/// in the page cache after the first sample).
#[divan::bench(sample_count = 20)]
fn scan_file(bencher: Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for m in records(RECORDS) {
        writeln!(file, "{}", m.to_json_line()).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let bytes = std::fs::metadata(&path).unwrap().len();
    let inputs = [Input::File(path)];
    bencher.counter(BytesCount::new(bytes)).bench(|| {
        let mut scan = MetricsScan::new(RecordFilter::default());
        let total = scan
            .aggregate_inputs(&inputs, |input| Ok(input.open()?.0))
            .unwrap();
        assert_eq!(total.count(), RECORDS);
        total
    });
}
