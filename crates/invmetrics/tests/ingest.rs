//! `ingest`: records from another program, acknowledged once durable.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[test]
fn ingest_records_every_valid_line_and_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = std::fs::read_to_string(common::fixtures().join("dialects.jsonl")).unwrap();
    input.push_str("{\"not\": \"a record\"}\n\n");
    input.push_str(&std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap());

    let (code, stdout, stderr) =
        common::run_with_stdin(&["ingest", dir.path().to_str().unwrap()], input);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("rejected line 4: invocationId is missing")
            || stderr.contains("rejected line 4:"),
        "{stderr}"
    );
    let acks: Vec<u64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["acked"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(acks.last(), Some(&13));
    assert!(
        acks.windows(2).all(|w| w[0] < w[1]),
        "acks only grow: {acks:?}"
    );

    let (code, stdout, _) = common::run(&["summary", dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // dialects.jsonl and small.jsonl share inv-01: readers keep the first.
    assert_eq!(agg["totalInvocations"], 12);
}

#[test]
fn a_slow_writer_is_acknowledged_before_it_closes_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let line = std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let first = line.lines().next().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_invmetrics"))
        .args([
            "ingest",
            dir.path().to_str().unwrap(),
            "--flush-every",
            "20ms",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{first}").unwrap();
    stdin.flush().unwrap();
    // The acknowledgement arrives while stdin is still open.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ack = String::new();
    stdout.read_line(&mut ack).unwrap();
    assert_eq!(ack.trim(), "{\"acked\": 1}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn ingest_into_a_locked_directory_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _holder = invocation_metrics::InvocationMetricsCollector::open(dir.path()).unwrap();
    let (code, _, stderr) = common::run(&["ingest", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("locked by another collector"), "{stderr}");
}
