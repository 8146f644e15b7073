//! `export otlp` against a real OpenTelemetry receiver: rotel's agent (`pip install
//! rotel`), started here on 127.0.0.1 and stopped by PID, printing every span and metric it
//! takes.
//! These tests need its binary: `ROTEL_AGENT=/path/to/rotel-agent cargo test -p invmetrics
//! --test export_rotel -- --ignored` (scripts/test-all installs rotel and runs them).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running receiver, killed when dropped.
struct Rotel {
    child: Child,
    log: PathBuf,
    url: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rotel {
    fn start() -> Self {
        Self::start_on(free_port())
    }

    fn start_on(http: u16) -> Self {
        let agent = std::env::var("ROTEL_AGENT")
            .expect("set ROTEL_AGENT to rotel's rotel-agent binary (pip install rotel==0.0.1a15)");
        let grpc = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("rotel.log");
        let child = Command::new(agent)
            .args(["start", "--exporter", "blackhole"])
            .args(["--debug-log", "traces", "--debug-log", "metrics"])
            .args(["--debug-log-verbosity", "detailed"])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(Instant::now() < deadline, "rotel did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            log,
            url: format!("http://127.0.0.1:{http}"),
            _dir: dir,
        }
    }

    /// Every span id rotel printed, in order (a span sent twice appears twice).
    fn span_ids(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("ID "))
            .map(|rest| rest.trim_start_matches([' ', ':']).trim().to_owned())
            .collect()
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until rotel has printed `n` spans.
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.span_ids().len() < n {
            assert!(
                Instant::now() < deadline,
                "rotel printed {} of {n} spans",
                self.span_ids().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Rotel {
    /// Rotel's output once `done` holds for it, or after 30 s as it is then. Rotel answers
    /// a request before its pipeline prints it, and prints traces and metrics from separate
    /// tasks: the spans being there does not mean the metrics are.
    fn log_when(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if done(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The sum of the `invocation_metrics.invocations` points in rotel's output (a line being
/// written counts nothing yet).
fn invocations_counted(log: &str) -> u64 {
    log.split("Metric #")
        .filter(|m| m.contains("Name: invocation_metrics.invocations"))
        .flat_map(|m| m.lines().filter_map(|l| l.strip_prefix("Value: ")))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn invmetrics() -> Command {
    Command::new(env!("CARGO_BIN_EXE_invmetrics"))
}

#[test]
#[ignore = "needs rotel: ROTEL_AGENT=… cargo test -p invmetrics --test export_rotel -- --ignored"]
fn every_record_arrives_once_with_its_attributes() {
    let rotel = Rotel::start();
    let fixtures = common::fixtures();
    let status = invmetrics()
        .args(["export", "otlp", "--endpoint", &rotel.url])
        .arg(fixtures.join("small.jsonl"))
        .arg(fixtures.join("dialects.jsonl"))
        .status()
        .unwrap();
    assert!(status.success());
    // small.jsonl's 10, and dialects.jsonl's 3 but the one id they share.
    rotel.wait_for(12);
    let ids = rotel.span_ids();
    assert_eq!(ids.len(), 12);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 12);
    let expected = [
        "Name           : invoke_agent planner",
        "Kind           : SPAN_KIND_CLIENT",
        "gen_ai.operation.name: Str(invoke_agent)",
        "gen_ai.agent.name: Str(coder)",
        "gen_ai.usage.input_tokens: Int(",
        "gen_ai.usage.cache_read.input_tokens: Int(",
        "gen_ai.request.model: Str(",
        "invocation_metrics.invocation_id: Str(inv-01)",
        "Status code    : STATUS_CODE_ERROR",
        "service.name: Str(invocation-metrics)",
        // Metrics, cumulative, with the conventions' names and attributes.
        "Name: gen_ai.client.token.usage",
        "Name: gen_ai.client.operation.duration",
        "Name: invocation_metrics.invocations",
        "Name: invocation_metrics.cost",
        "DataType: Histogram",
        "AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE",
        "gen_ai.token.type: Str(input)",
        "ExplicitBounds #13: 67108864",
        "invocation_metrics.outcome: Str(failure)",
    ];
    let log = rotel
        .log_when(|log| expected.iter().all(|e| log.contains(e)) && invocations_counted(log) >= 12);
    for expected in expected {
        assert!(log.contains(expected), "{expected:?} not in rotel's output");
    }
    // Twelve invocations in all, counted once each across the series.
    assert_eq!(invocations_counted(&log), 12);
}

/// OTLP/JSON reaches the same receiver with the same spans.
#[test]
#[ignore = "needs rotel: ROTEL_AGENT=… cargo test -p invmetrics --test export_rotel -- --ignored"]
fn json_spans_arrive_too() {
    let rotel = Rotel::start();
    let status = invmetrics()
        .args([
            "export",
            "otlp",
            "--protocol",
            "http/json",
            "--signals",
            "traces",
        ])
        .args(["--endpoint", &rotel.url])
        .arg(common::fixtures().join("small.jsonl"))
        .status()
        .unwrap();
    assert!(status.success());
    rotel.wait_for(10);
    let log = rotel.log_when(|log| log.contains("gen_ai.agent.name: Str(coder)"));
    assert!(log.contains("gen_ai.agent.name: Str(coder)"), "{log}");
    assert!(!log.contains("Metric #"), "metrics were not asked for");
}

/// The receiver is not there when the export starts, and goes away in the middle of it:
/// the exporter waits and retries, and every record arrives.
#[test]
#[ignore = "needs rotel: ROTEL_AGENT=… cargo test -p invmetrics --test export_rotel -- --ignored"]
fn a_receiver_that_starts_late_and_restarts_mid_export_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    record_into(dir.path(), 0, 20_000);
    let port = free_port();
    let mut export = invmetrics()
        .args(["export", "otlp", "--signals", "traces", "--batch", "20"])
        .args([
            "--timeout",
            "60s",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let first = Rotel::start_on(port);
    // Stop it once some spans arrived, well before the 20,000.
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.span_ids().len() < 200 {
        assert!(Instant::now() < deadline, "nothing arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Stopped as an operator stops it (SIGTERM), so that what it acknowledged it also
    // printed: a receiver killed outright can lose a batch it already acknowledged, which
    // no exporter can know about.
    let first_ids = {
        let mut first = first;
        let _ = Command::new("kill")
            .args(["-TERM", &first.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while first.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = first.child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        first.span_ids()
    };
    assert!(first_ids.len() < 20_000, "stopped mid-export");
    std::thread::sleep(Duration::from_millis(700));
    let second = Rotel::start_on(port);
    let status = export.wait().unwrap();
    assert!(status.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut export.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(stdout.contains("exported 20000 record(s)"), "{stdout}");
    let retries: u64 = stdout
        .split(" retr")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(retries >= 2, "it had to wait twice: {stdout}");
    second.wait_for(20_000 - first_ids.len());
    let all: BTreeSet<String> = first_ids.into_iter().chain(second.span_ids()).collect();
    assert_eq!(
        all.len(),
        20_000,
        "every record reached one receiver or the other"
    );
}

fn record_into(dir: &Path, from: u64, to: u64) {
    let collector = invocation_metrics::InvocationMetricsCollector::open(dir).unwrap();
    collector.load_from_disk(0).unwrap();
    for i in from..to {
        let start =
            invocation_metrics::Timestamp::from_unix_ms(1_795_510_800_000 + i as i64 * 10).unwrap();
        let mut m = invocation_metrics::InvocationMetric::new(format!("k-{i}"), "agent", 1, start);
        m.duration_ms = 5;
        collector.record(m).unwrap();
    }
    collector.close().unwrap();
}

/// kill -9 of `--follow` while it exports, then a restart: every record reaches the
/// receiver, and a record sent twice (the batch in flight) is the same span both times.
#[test]
#[ignore = "needs rotel: ROTEL_AGENT=… cargo test -p invmetrics --test export_rotel -- --ignored"]
fn a_killed_follower_resumes_without_losing_a_record() {
    let rotel = Rotel::start();
    let dir = tempfile::tempdir().unwrap();
    record_into(dir.path(), 0, 3000);
    let follow = || {
        invmetrics()
            .args(["export", "otlp", "--follow"])
            .arg(dir.path())
            .args([
                "--endpoint",
                &rotel.url,
                "--batch",
                "50",
                "--idle-exit",
                "1s",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = follow();
    let cursor = dir.path().join("export-otlp.cursor");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = std::fs::read(&cursor)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|c| c["records"].as_u64())
            .unwrap_or(0);
        if records >= 500 {
            break;
        }
        assert!(Instant::now() < deadline, "the follower made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // More records arrive while nobody exports.
    record_into(dir.path(), 3000, 3500);
    let status = follow().wait().unwrap();
    assert!(status.success());
    rotel.wait_for(3500);
    let ids = rotel.span_ids();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 3500, "every record, each with one identity");
    assert!(
        ids.len() - 3500 <= 50 * 2,
        "at most the batches in flight were sent again"
    );
}
