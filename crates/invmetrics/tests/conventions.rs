//! What people expect of a command-line tool: output formats and `-o`, stdin when no path is
//! given, `-q`, completions and a man page.

mod common;

use common::{run, run_with_stdin};

#[test]
fn summary_writes_csv_markdown_and_json_to_stdout_or_a_file() {
    let (code, csv, stderr) = run(&["summary", "small.jsonl", "--format", "csv"]);
    assert_eq!(code, 0, "{stderr}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "dimension,group,invocations,retries,success_rate,tokens,cost_usd,mean_ms,p50_ms,p95_ms,p99_ms,max_ms"
        )
    );
    assert!(
        csv.contains("\nagent,coder,4,2,0.5,18300,0.352,4125,3000,6000,6000,6000\n"),
        "{csv}"
    );
    assert!(csv.contains("\nerror class,rate-limit,1,"), "{csv}");

    let (code, md, _) = run(&["summary", "small.jsonl", "--format", "md"]);
    assert_eq!(code, 0);
    assert!(
        md.starts_with("| Total | Value |") && md.contains("## By agent"),
        "{md}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let (code, stdout, stderr) = run(&[
        "summary",
        "small.jsonl",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(json["totalInvocations"], 10);

    let (code, _, stderr) = run(&["summary", "small.jsonl", "--json", "--format", "csv"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
    let small = String::from_utf8(common::fixture("small.jsonl")).unwrap();
    let hostile = small.replace("\"planner\"", "\"=HYPERLINK(\\\"x\\\"), a\"");
    let (code, csv, stderr) = run_with_stdin(&["summary", "-", "--format", "csv"], hostile);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        csv.contains("\nagent,\"'=HYPERLINK(\"\"x\"\"), a\",1,"),
        "{csv}"
    );
}

#[test]
fn without_a_path_piped_records_are_read_from_stdin() {
    let (code, out, stderr) =
        run_with_stdin(&["summary", "--json"], common::fixture("small.jsonl"));
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("\"totalInvocations\": 10"), "{out}");
    let (code, out, _) = run_with_stdin(&["check"], common::fixture("small.jsonl"));
    assert_eq!(code, 0);
    assert!(out.contains("<stdin>: 10 record(s)"), "{out}");
}

#[test]
fn quiet_leaves_only_errors() {
    let (code, _, stderr) = run(&["summary", "small.jsonl", "small.jsonl"]);
    assert_eq!(code, 0);
    assert!(stderr.contains("note: ignored 10 record(s)"), "{stderr}");
    let (code, _, stderr) = run(&["-q", "summary", "small.jsonl", "small.jsonl"]);
    assert_eq!(code, 0);
    assert!(stderr.is_empty(), "{stderr}");
    // A path that does not exist is a usage error (2), like `ls nosuch`; the error stays.
    let (code, _, stderr) = run(&["summary", "-q", "nosuch.jsonl"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error:"), "{stderr}");
}

#[test]
fn completions_and_a_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, stderr) = run(&["completions", shell]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            script.contains("invmetrics") && script.contains("summary"),
            "{shell}"
        );
    }
    let (code, page, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(
        page.contains(".TH invmetrics 1") && page.contains("watch"),
        "{page}"
    );
    let (code, _, stderr) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn an_agent_no_record_has_is_named_with_the_closest_real_ones() {
    let (code, out, stderr) = run(&["summary", "small.jsonl", "--agent", "codr"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        stderr
            .contains("no record has agent \"codr\"; agents in the input, closest first: coder, "),
        "{stderr}"
    );
    // One good name among them: the summary of that one, and a warning for the other.
    let (code, out, stderr) = run(&[
        "summary",
        "small.jsonl",
        "--agent",
        "codr",
        "--agent",
        "tester",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("tester") && !out.contains("coder "), "{out}");
    assert!(
        stderr.contains("warning: no record has agent \"codr\""),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[
        "report",
        "small.jsonl",
        "--agent",
        "nosuch",
        "--format",
        "md",
        "-o",
        "-",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("closest first"), "{stderr}");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    // Not a terminal: no colour by default, whatever NO_COLOR says.
    let (_, out, err) = run(&["summary", "small.jsonl", "small.jsonl"]);
    assert!(!out.contains('\x1b') && !err.contains('\x1b'));
    let (_, out, err) = run(&["summary", "small.jsonl", "small.jsonl", "--color", "always"]);
    assert!(out.contains("\x1b[1m Total"), "{out}");
    assert!(err.contains("\x1b[1;36mnote:\x1b[0m ignored"), "{err}");
    // The numbers a script reads are the same either way.
    assert!(out.contains("┆ 10 "), "{out}");
    let (_, out, _) = common::run_with_env(
        &[("NO_COLOR", "1")],
        &["summary", "small.jsonl", "--color", "never"],
    );
    assert!(!out.contains('\x1b'));
}

#[test]
fn an_empty_input_is_no_records_for_every_command_that_reads_records() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    for args in [
        vec!["summary", empty],
        vec!["report", empty, "--format", "md", "-o", "-"],
        vec!["export", "otlp", empty, "--endpoint", "http://127.0.0.1:9"],
    ] {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 1, "{args:?}");
        assert!(stderr.contains("the input is empty"), "{args:?}: {stderr}");
    }
    // check says so too, and an empty file is clean.
    let (code, out, _) = run(&["check", empty]);
    assert_eq!(code, 0);
    assert!(out.contains("0 record(s)"), "{out}");
}
