//! `invmetrics summary`: the tables and the JSON aggregate of a small hand-checked fixture.

mod common;

use common::run;

#[test]
fn summary_tables() {
    let (code, stdout, stderr) = run(&["summary", "small.jsonl"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!(stdout);
}

#[test]
fn summary_json_has_the_seed_fields_with_exact_values() {
    let (code, stdout, stderr) = run(&["summary", "small.jsonl", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Hand-computed from small.jsonl.
    assert_eq!(agg["totalInvocations"], 10);
    assert_eq!(agg["totalRetries"], 3);
    assert_eq!(
        agg["infraRetries"], 2,
        "t1 after rate-limit, r2 after timeout"
    );
    assert_eq!(agg["retriesByAgent"]["coder"], 2);
    assert_eq!(agg["escalationCount"], 1);
    assert_eq!(agg["totalTokens"], 23140);
    assert_eq!(agg["totalCachedTokens"], 4200);
    assert_eq!(agg["successRate"], 0.7);
    assert_eq!(agg["peakParallelInvocations"], 3);
    // 09:00:00 to the last occupied millisecond, 09:00:17.999.
    assert_eq!(agg["parallelismOverTime"].as_array().unwrap().len(), 18);
    assert_eq!(agg["avgDurationByAgent"]["reviewer"], 1250.0);
    insta::assert_snapshot!(stdout);
}

#[test]
fn filters_and_bucket_width() {
    let (code, stdout, _) = run(&[
        "summary",
        "small.jsonl",
        "--json",
        "--agent",
        "coder",
        "--bucket",
        "5s",
        "--since",
        "2026-11-24T09:00:05.400Z",
    ]);
    assert_eq!(code, 0);
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(agg["totalInvocations"], 3, "inv-02 started before --since");
    assert_eq!(agg["bucketWidthMs"], 5000);
    let (_, stdout, _) = run(&[
        "summary",
        "small.jsonl",
        "--json",
        "--phase",
        "3",
        "--base-tier",
        "premium",
    ]);
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(agg["totalInvocations"], 4);
    assert_eq!(
        agg["escalationCount"], 4,
        "all four phase-3 records have tier normal"
    );
}

#[test]
fn shards_are_read_together_and_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let small = std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let lines: Vec<&str> = small.lines().collect();
    for (shard, range) in [("a", 0..6), ("b/c", 4..10)] {
        let shard_dir = dir.path().join(shard);
        std::fs::create_dir_all(&shard_dir).unwrap();
        std::fs::write(shard_dir.join("invocations.jsonl"), lines[range].join("\n")).unwrap();
    }
    let root = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = run(&["summary", "-r", root, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(agg["totalInvocations"], 10);
    assert!(
        stderr.contains("ignored 2 record(s) whose invocationId appeared earlier"),
        "{stderr}"
    );
}

#[test]
fn stdin_and_dialects() {
    let (code, stdout, _) = common::run_with_stdin(
        &["summary", "-", "--json"],
        common::fixture("dialects.jsonl"),
    );
    assert_eq!(code, 0);
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(agg["totalInvocations"], 3);
    assert_eq!(agg["totalRetries"], 1);
    assert_eq!(agg["successRate"], 1.0 / 3.0);
    assert_eq!(agg["totalCost"], 0.032);
}

#[test]
fn damaged_lines_are_skipped_and_counted_on_stderr() {
    let (code, stdout, stderr) = run(&["summary", "damaged.jsonl", "--json"]);
    assert_eq!(code, 0);
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(agg["totalInvocations"], 3);
    assert!(
        stderr.contains("skipped 2 damaged line(s), first at line 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ignored the incomplete last line 6"),
        "{stderr}"
    );
}

#[test]
fn hostile_names_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let line = std::fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let evil = line.lines().next().unwrap().replace(
        "\"planner\"",
        &format!("\"\\u001b[31m{}\\u0007\"", "x".repeat(300)),
    );
    let path = dir.path().join("evil.jsonl");
    std::fs::write(&path, evil).unwrap();
    let (code, stdout, _) = run(&["summary", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!stdout.contains('\x1b') && !stdout.contains('\x07'));
    assert!(stdout.contains("\\u{1b}[31m"));
}

#[test]
fn filters_that_match_nothing_give_zeros_and_say_so() {
    // (An --agent that no record has is an error naming the agents there are: see
    // conventions.rs.)
    let (code, stdout, stderr) =
        run(&["summary", "small.jsonl", "--json", "--since", "2030-01-01"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: none of the") && stderr.contains("match the filters"),
        "{stderr}"
    );
    let aggregate: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(aggregate["totalInvocations"], 0);
}

/// A window no record can fall in is a usage error, not a table of zeros; so is an empty
/// base tier (every tiered record would count as an escalation).
#[test]
fn an_empty_window_or_base_tier_is_refused() {
    for args in [
        &["--since", "2026-11-25", "--until", "2026-11-24"][..],
        &["--since", "2026-11-24", "--until", "2026-11-24"],
    ] {
        let mut all = vec!["summary", "small.jsonl"];
        all.extend(args);
        let (code, stdout, stderr) = run(&all);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("is not before --until"), "{stderr}");
        assert!(stdout.is_empty());
    }
    let (code, _, stderr) = run(&["summary", "small.jsonl", "--base-tier", ""]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--base-tier"), "{stderr}");
}

/// `--top N` keeps each table to its N busiest groups and says how many it left out; a long
/// table without it ends with a hint.
#[test]
fn top_keeps_the_busiest_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.jsonl");
    // 150 agents; agent-0 is the busiest (3 invocations), the rest have one each.
    let line = |id: &str, agent: &str| {
        format!(
            r#"{{"invocationId":"{id}","agent":"{agent}","phase":1,"durationMs":10,"tokens":1,"cost":0,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-24T09:00:00Z"}}"#
        )
    };
    let mut lines: Vec<String> = (0..150)
        .map(|i| line(&format!("i{i}"), &format!("agent-{i}")))
        .collect();
    lines.push(line("extra-1", "agent-0"));
    lines.push(line("extra-2", "agent-0"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let path = path.to_str().unwrap();

    let (code, stdout, stderr) = run(&["summary", path, "--top", "1"]);
    assert_eq!(code, 0, "{stderr}");
    let agent_rows: Vec<&str> = stdout.lines().filter(|l| l.contains("agent-")).collect();
    assert_eq!(agent_rows.len(), 1, "{stdout}");
    assert!(agent_rows[0].contains("agent-0 "), "{stdout}");
    assert!(
        stdout.contains("…and 149 more with fewer invocations (without --top: all 150)"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&["summary", path]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().filter(|l| l.contains("agent-")).count(), 150);
    assert!(
        stdout.contains("(150 agent groups: --top N lists only the busiest)"),
        "{stdout}"
    );

    let (code, _, stderr) = run(&["summary", path, "--top", "0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("must be at least 1"), "{stderr}");
}
