//! `demo`: a simulated fleet recorded through the library, reproducible by seed.

mod common;

use std::fs;

use common::run;

#[test]
fn demo_records_checkpoints_reports_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let run_dir = run_dir.to_str().unwrap();
    let (code, stdout, stderr) = run(&["demo", run_dir, "--records", "600", "--seed", "9"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("By agent") && stdout.contains("report.html"),
        "{stdout}"
    );
    assert!(
        fs::metadata(format!("{run_dir}/report.html"))
            .unwrap()
            .len()
            > 10_000
    );
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&fs::read(format!("{run_dir}/checkpoint/checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(checkpoint["metricsCount"], 600);
    assert_eq!(checkpoint["completedPhase"], "integrate");

    let summary = |dir: &str| {
        let (code, stdout, _) = run(&["summary", dir, "--json"]);
        assert_eq!(code, 0);
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let first = summary(run_dir);
    assert_eq!(first["totalInvocations"], 600);
    assert!(first["totalRetries"].as_u64().unwrap() > 0);
    assert!(first["infraRetries"].as_u64().unwrap() > 0);
    assert!(first["escalationCount"].as_u64().unwrap() > 0);
    assert!(first["totalCachedTokens"].as_u64().unwrap() > 0);
    assert!(first["invocationsByAgent"].as_object().unwrap().len() >= 12);
    assert!(first["peakParallelInvocations"].as_u64().unwrap() > 1);

    // Running again over its own directory replaces the run; the same seed, the same numbers.
    let (code, _, stderr) = run(&[
        "demo",
        run_dir,
        "--records",
        "600",
        "--seed",
        "9",
        "--no-report",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(run_dir), first);
}

#[test]
fn demo_refuses_a_directory_with_foreign_metrics() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        common::fixtures().join("small.jsonl"),
        dir.path().join("invocations.jsonl"),
    )
    .unwrap();
    let (code, _, stderr) = run(&["demo", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("already holds metrics the demo did not write"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(dir.path().join("invocations.jsonl")).unwrap(),
        fs::read(common::fixtures().join("small.jsonl")).unwrap()
    );
    assert!(
        !dir.path().join("checkpoint").exists(),
        "a refused run leaves nothing behind"
    );
}

/// Regression: runs with different seeds shared ids, so reading them together
/// (`summary -r`) silently kept fewer than half of the records.
#[test]
fn runs_read_together_share_no_id() {
    let dir = tempfile::tempdir().unwrap();
    for seed in ["1", "2", "1"] {
        let run_dir = dir
            .path()
            .join(format!("run-{}", fs::read_dir(dir.path()).unwrap().count()));
        let (code, _, stderr) = run(&[
            "demo",
            run_dir.to_str().unwrap(),
            "--records",
            "300",
            "--seed",
            seed,
            "--no-report",
        ]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, stderr) = run(&["summary", "-r", dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("appeared earlier"), "{stderr}");
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(agg["totalInvocations"], 900);
}
