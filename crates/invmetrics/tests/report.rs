//! `report` in its three formats, with hostile strings in the data.

mod common;

use std::fs;

use common::run;

fn hostile_fixture(dir: &std::path::Path) -> std::path::PathBuf {
    let small = fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let evil = small
        .replace("\"planner\"", "\"<script>alert(1)</script>\"")
        .replace("\"model-large\"", "\"model|<b>bold</b>&amp;\"")
        .replace("\"t2\"", "\"t2: \\\"quoted\\\" #x\"");
    let path = dir.join("evil.jsonl");
    fs::write(&path, evil).unwrap();
    path
}

#[test]
fn html_report_is_self_contained_and_escapes_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = hostile_fixture(dir.path());
    let out = dir.path().join("report.html");
    let (code, _, stderr) = run(&[
        "report",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let html = fs::read_to_string(&out).unwrap();
    assert!(!html.contains("<script>"), "the agent name must be inert");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<b>bold</b>"));
    for external in ["http://", "https://", "src=", "<link"] {
        let allowed = html.matches("http://www.w3.org").count();
        if external == "http://" {
            assert_eq!(
                html.matches(external).count(),
                allowed,
                "only SVG namespaces"
            );
        } else {
            assert!(
                !html.contains(external),
                "{external} found: not self-contained"
            );
        }
    }
    for section in [
        "Parallelism over time",
        "Cost by agent",
        "Tokens by phase",
        "Duration distribution",
        "Timeline",
        "Retry chains",
        "By agent",
    ] {
        assert!(html.contains(section), "missing {section}");
    }
    assert!(html.matches("<svg").count() >= 7);
    assert!(html.contains("failed (rate-limit) → succeeded"));
    assert!(!dir.path().join(".report.html.tmp").exists());
}

#[test]
fn markdown_report() {
    let (code, stdout, stderr) = run(&["report", "small.jsonl", "--format", "md", "-o", "-"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!(stdout);
}

#[test]
fn markdown_escapes_hostile_strings() {
    let dir = tempfile::tempdir().unwrap();
    let input = hostile_fixture(dir.path());
    let (_, stdout, _) = run(&[
        "report",
        input.to_str().unwrap(),
        "--format",
        "md",
        "-o",
        "-",
    ]);
    assert!(!stdout.contains("<script>") && !stdout.contains("<b>"));
    assert!(stdout.contains("model\\|&lt;b&gt;bold&lt;/b&gt;&amp;amp;"));
    let gantt = stdout.split("```mermaid").nth(1).unwrap();
    assert!(gantt.contains("t2_ _quoted_ _x #2"), "{gantt}");
}

#[test]
fn json_report_holds_metrics_and_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let (code, _, _) = run(&[
        "report",
        "small.jsonl",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["metrics"].as_array().unwrap().len(), 10);
    assert_eq!(report["metrics"][0]["invocationId"], "inv-01");
    assert_eq!(report["aggregate"]["totalInvocations"], 10);
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    // Reports are diffed and checked in; a chart whose SVG changed order from run to run
    // (plotters' hash-map histogram) made every report look changed.
    let dir = tempfile::tempdir().unwrap();
    let input = common::fixtures().join("small.jsonl");
    let mut pages = Vec::new();
    for name in ["a.html", "b.html"] {
        let out = dir.path().join(name);
        let (code, _, stderr) = run(&[
            "report",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        pages.push(fs::read(out).unwrap());
    }
    assert!(pages[0] == pages[1], "two runs gave different reports");
}

#[test]
fn a_report_from_stdin_equals_the_report_from_the_file() {
    // Reports read their input twice (the retry chains' attempts, or the JSON report's
    // records, in the second pass); stdin is read once and kept in a temporary copy for that.
    for format in ["md", "json"] {
        let (code, from_file, stderr) =
            run(&["report", "small.jsonl", "--format", format, "-o", "-"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(from_file.contains("t1"), "{from_file}");
        let (code, from_stdin, _) = common::run_with_stdin(
            &["report", "-", "--format", format, "-o", "-"],
            common::fixture("small.jsonl"),
        );
        assert_eq!(code, 0);
        // The same report, but for the line that names the input.
        let named = |report: &str| report.replace("&lt;stdin&gt; (", "small.jsonl (");
        assert_eq!(named(&from_stdin), from_file, "{format}");
    }
}

#[test]
fn stdin_after_a_file_is_read_again_in_full() {
    // The second pass reads stdin from the copy the first made; it must be made whatever
    // comes before `-`.
    let (code, from_files, stderr) = run(&[
        "report",
        "dialects.jsonl",
        "small.jsonl",
        "--format",
        "json",
        "-o",
        "-",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, with_stdin, _) = common::run_with_stdin(
        &[
            "report",
            "dialects.jsonl",
            "-",
            "--format",
            "json",
            "-o",
            "-",
        ],
        common::fixture("small.jsonl"),
    );
    assert_eq!(code, 0);
    assert_eq!(with_stdin, from_files);
}

#[test]
fn inputs_given_twice_report_their_records_once() {
    // Every record of the second copy repeats an id: the parallel reader finds that after
    // the first pass and reads both files again leaving them out.
    let (code, once, stderr) = run(&["report", "small.jsonl", "--format", "md", "-o", "-"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, twice, stderr) = run(&[
        "report",
        "small.jsonl",
        "small.jsonl",
        "--format",
        "md",
        "-o",
        "-",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("whose invocationId appeared earlier"),
        "{stderr}"
    );
    // The same report but for what it says it read and left out.
    assert!(
        twice.contains("- Read: small.jsonl (10 records); small.jsonl (10 records)")
            && twice.contains("- Left out: 10 records repeating an earlier invocationId"),
        "{twice}"
    );
    assert_eq!(without_coverage(&twice), without_coverage(&once));
    // `-` twice: stdin is read once, and is empty the second time.
    let (code, stdin_twice, _) = common::run_with_stdin(
        &["report", "-", "-", "--format", "md", "-o", "-"],
        common::fixture("small.jsonl"),
    );
    assert_eq!(code, 0);
    assert_eq!(without_coverage(&stdin_twice), without_coverage(&once));
}

/// A Markdown report without the lines that say what it read and left out.
fn without_coverage(report: &str) -> String {
    report
        .lines()
        .filter(|l| !(l.starts_with("- Read: ") || l.starts_with("- Left out: ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Without `--format`, the output file's extension picks it; `--format` wins over the
/// extension, and stdout gets HTML.
#[test]
fn the_output_extension_picks_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    for (name, extra, starts) in [
        ("r.json", None, "{"),
        ("r.JSON", None, "{"),
        ("r.md", None, "# Invocation metrics report"),
        ("r.markdown", None, "# Invocation metrics report"),
        ("r.html", None, "<!DOCTYPE html>"),
        ("r.htm", None, "<!DOCTYPE html>"),
        ("r.txt", Some("html"), "<!DOCTYPE html>"),
        ("r2.json", Some("md"), "# Invocation metrics report"),
    ] {
        let path = out(name);
        let mut args = vec!["report", "small.jsonl", "-o", &path];
        if let Some(format) = extra {
            args.extend(["--format", format]);
        }
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 0, "{name}: {stderr}");
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(starts), "{name}: {}", &written[..40]);
    }
    let (code, stdout, _) = run(&["report", "small.jsonl", "-o", "-"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("<!DOCTYPE html>"));
}

/// An extension that names no format is a usage error, not a silent HTML file.
#[test]
fn an_unknown_output_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["r.txt", "run.jsonl", "report"] {
        let path = dir.path().join(name);
        let (code, _, stderr) = run(&["report", "small.jsonl", "-o", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains("name the file .html, .md or .json, or give --format"),
            "{stderr}"
        );
        assert!(!path.exists(), "{name} was written");
    }
}

/// Neither a report nor a summary written with `-o` replaces one of its inputs: not by its
/// own path, not through a symlink, not through a directory given as input.
#[test]
fn an_output_never_overwrites_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("invocations.jsonl");
    let original = common::fixture("small.jsonl");
    std::fs::write(&metrics, &original).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&metrics, &link).unwrap();
    let (dir_arg, metrics_arg, link_arg) = (
        dir.path().to_str().unwrap(),
        metrics.to_str().unwrap(),
        link.to_str().unwrap(),
    );
    for (command, input, output, extra) in [
        ("report", dir_arg, metrics_arg, &["--format", "html"][..]),
        ("report", metrics_arg, link_arg, &[]),
        ("report", dir_arg, link_arg, &["--format", "md"]),
        ("summary", metrics_arg, metrics_arg, &["--json"]),
        ("summary", dir_arg, link_arg, &["--format", "csv"]),
    ] {
        let mut args = vec![command, input, "-o", output];
        args.extend(extra);
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("writing there would destroy the metrics"),
            "{stderr}"
        );
        assert_eq!(std::fs::read(&metrics).unwrap(), original, "{args:?}");
    }
    // A directory is no output file, refused before anything is read.
    for command in ["summary", "report"] {
        let (code, _, stderr) = run(&[command, metrics_arg, "-o", dir_arg, "--format", "md"]);
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(stderr.contains("is a directory: name a file"), "{stderr}");
    }
    // Standard input redirected from the file is the file.
    for command in ["summary", "report"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_invmetrics"))
            .args([command, "-o", metrics_arg, "--format", "md"])
            .stdin(std::fs::File::open(&metrics).unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("is the input <stdin>"), "{stderr}");
        assert_eq!(std::fs::read(&metrics).unwrap(), original, "{command}");
    }
}

/// The JSON report's records are serialized on every core, chunk by chunk, unless ids
/// repeat (then one by one, leaving the repeats out). On a run of several chunks both ways
/// must give the same bytes, in the same order as the file.
#[test]
fn the_json_report_is_the_same_written_in_parallel_or_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let (code, _, stderr) = run(&[
        "demo",
        run_dir.to_str().unwrap(),
        "--records",
        "16000",
        "--no-report",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let file = run_dir.join("invocations.jsonl");
    assert!(
        fs::metadata(&file).unwrap().len() > 4 << 20,
        "more than one 4 MiB chunk"
    );
    let path = file.to_str().unwrap();

    let (code, parallel, stderr) = run(&["report", path, "--format", "json", "-o", "-"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, in_order, stderr) = run(&["report", path, path, "--format", "json", "-o", "-"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("appeared earlier"), "{stderr}");
    assert!(parallel == in_order, "the two ways differ");

    let report: serde_json::Value = serde_json::from_str(&parallel).unwrap();
    let ids: Vec<&str> = report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["invocationId"].as_str().unwrap())
        .collect();
    let file_ids: Vec<String> = fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["invocationId"].to_string())
        .collect();
    assert_eq!(ids.len(), 16000);
    assert!(
        ids.iter()
            .zip(&file_ids)
            .all(|(a, b)| b.trim_matches('"') == *a),
        "records in file order"
    );
}

/// Regression: a right-to-left override (U+202E) and its kin in a name reached the
/// terminal, Markdown and HTML raw, reordering the text around them. Each output shows
/// them as escapes instead.
#[test]
fn bidirectional_controls_are_shown_not_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bidi.jsonl");
    let content = String::from_utf8(common::fixture("small.jsonl"))
        .unwrap()
        .replace("\"planner\"", "\"plan\u{202e}renn\u{2066}x\"");
    std::fs::write(&input, content).unwrap();
    let input = input.to_str().unwrap();
    let bidi = ['\u{202e}', '\u{2066}'];
    let (code, tables, _) = run(&["summary", input]);
    assert_eq!(code, 0);
    for format in ["md", "html"] {
        let (code, page, stderr) = run(&["report", input, "-o", "-", "--format", format]);
        assert_eq!(code, 0, "{stderr}");
        assert!(!page.contains(bidi), "{format}: a control reached the page");
        assert!(page.contains("plan\\u{202e}renn\\u{2066}x"), "{format}");
    }
    assert!(!tables.contains(bidi), "a control reached the terminal");
    assert!(tables.contains("plan\\u{202e}renn\\u{2066}x"), "{tables}");
}
