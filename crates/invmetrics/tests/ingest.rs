//! `ingest`: records from another program, acknowledged once durable.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// The answers on stdout, one JSON object per line.
fn answers(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn ingest_records_every_valid_line_and_answers_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = std::fs::read_to_string(common::fixtures().join("dialects.jsonl")).unwrap();
    let dialect_lines = input.lines().count() as u64;
    input.push_str("{\"not\": \"a record\"}\n\n");
    input.push_str(&std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap());
    let total_lines = input.lines().count() as u64;

    let (code, stdout, stderr) =
        common::run_with_stdin(&["ingest", dir.path().to_str().unwrap()], input);
    assert_eq!(code, 1, "a rejected line makes the exit status 1: {stderr}");
    assert!(stderr.contains("ingest: 2 line(s) rejected"), "{stderr}");
    assert!(
        stderr.contains("invalid `invocationId`: \"inv-01\" was already recorded"),
        "the human-readable line names the field too: {stderr}"
    );
    let answers = answers(&stdout);
    assert_eq!(answers[0], serde_json::json!({"ready": true}));

    let rejected: Vec<&serde_json::Value> =
        answers.iter().filter_map(|a| a.get("rejected")).collect();
    assert_eq!(rejected.len(), 2, "{stdout}");
    assert_eq!(rejected[0]["line"], dialect_lines + 1);
    assert_eq!(rejected[0]["invocationId"], serde_json::Value::Null);
    // dialects.jsonl and small.jsonl share inv-01: the second is refused, not acknowledged
    // and then dropped by every reader.
    assert_eq!(rejected[1]["invocationId"], "inv-01");
    assert_eq!(rejected[1]["field"], "invocationId");
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("already recorded"),
        "{stdout}"
    );

    let acks: Vec<(u64, u64)> = answers
        .iter()
        .filter(|a| a.get("acked").is_some())
        .map(|a| (a["acked"].as_u64().unwrap(), a["lines"].as_u64().unwrap()))
        .collect();
    assert_eq!(acks.last(), Some(&(12, total_lines)));
    assert!(
        acks.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1),
        "acks only grow: {acks:?}"
    );

    let (code, stdout, _) = common::run(&["summary", dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
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
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), r#"{"ready":true}"#, "the lock is held");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{first}").unwrap();
    stdin.flush().unwrap();
    // The acknowledgement arrives while stdin is still open.
    let mut ack = String::new();
    stdout.read_line(&mut ack).unwrap();
    assert_eq!(ack.trim(), r#"{"acked":1,"lines":1}"#);
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// The end of input ends the run at once: no wait for the next tick of `--flush-every`.
#[test]
fn ingest_exits_after_the_final_flush_not_a_period_later() {
    let dir = tempfile::tempdir().unwrap();
    let line = std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_invmetrics"))
        .args([
            "ingest",
            dir.path().to_str().unwrap(),
            "--flush-every",
            "1d",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    // A watchdog, not a timing claim: the old code slept the whole day.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().unwrap()));
    let output = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("ingest still running a minute after its input ended");
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = answers(&stdout).pop().unwrap();
    assert_eq!(last["acked"], 10, "{stdout}");
}

/// A plain file where the metrics directory should be is named as such (it said "File
/// exists").
#[test]
fn ingest_into_a_plain_file_says_it_needs_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.jsonl");
    std::fs::write(&file, b"").unwrap();
    let (code, _, stderr) = common::run(&["ingest", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "metrics.jsonl is a file, not a directory; a collector records into a metrics directory"
        ),
        "{stderr}"
    );
}

/// A writer that sends nothing still hears how its input ended: the documented final
/// acknowledgement, not only `ready`.
#[test]
fn empty_input_is_acknowledged_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        common::run_with_stdin(&["ingest", dir.path().to_str().unwrap()], String::new());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        answers(&stdout),
        [
            serde_json::json!({"ready": true}),
            serde_json::json!({"acked": 0, "lines": 0})
        ]
    );
}

/// A second run refuses the ids the first one recorded.
#[test]
fn ingest_refuses_an_id_already_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let small = String::from_utf8(common::fixture("small.jsonl")).unwrap();
    let (code, _, stderr) = common::run_with_stdin(&["ingest", dir_arg], small.clone());
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = common::run_with_stdin(&["ingest", dir_arg], small);
    assert_eq!(code, 1);
    let rejected = answers(&stdout)
        .iter()
        .filter(|a| a.get("rejected").is_some())
        .count();
    assert_eq!(rejected, 10, "{stdout}");
    let file = std::fs::read_to_string(dir.path().join("invocations.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 10);
}

#[test]
fn ingest_into_a_locked_directory_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _holder = invocation_metrics::InvocationMetricsCollector::open(dir.path()).unwrap();
    let (code, _, stderr) = common::run(&["ingest", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("locked by another collector"), "{stderr}");
}

/// A disk that stays full: the log lines are plain text in the CLI's style (no colour
/// codes when stderr is not a terminal), and the final error says the records are not in
/// the file — not that they are being retried — naming the operating system's error once.
#[test]
fn a_full_disk_ends_with_a_plain_honest_message() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("invocations.jsonl")).unwrap();
    let line = std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let (code, _, stderr) = common::run_with_stdin(&["ingest", dir.path().to_str().unwrap()], line);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr:?}");
    assert!(
        stderr.lines().all(|l| ["warning: ", "error: ", "note: "]
            .iter()
            .any(|p| l.starts_with(p))),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: 10 record(s) could not be written"),
        "{last}"
    );
    assert!(!last.contains("retrying"), "{last}");
    assert_eq!(last.matches("os error").count(), 1, "{last}");
}
