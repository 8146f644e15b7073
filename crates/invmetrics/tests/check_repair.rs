//! `check` finds every damaged line; `repair` fixes the file without losing a valid record.

mod common;

use std::fs;

use common::run;
use invocation_metrics::InvocationMetricsCollector;

#[test]
fn check_lists_every_problem_and_exits_1() {
    let (code, stdout, _) = run(&["check", "damaged.jsonl", "small.jsonl"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(stdout);
    let (code, _, _) = run(&["check", "small.jsonl"]);
    assert_eq!(code, 0);
}

#[test]
fn repair_keeps_valid_records_moves_the_rest_and_backs_up() {
    let dir = tempfile::tempdir().unwrap();
    let original = fs::read(common::fixtures().join("damaged.jsonl")).unwrap();
    let path = dir.path().join("invocations.jsonl");
    fs::write(&path, &original).unwrap();

    let (code, stdout, stderr) = run(&["repair", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kept 3 record(s)"), "{stdout}");
    assert!(
        stdout.contains("moved 3 damaged line(s) (one a torn tail)"),
        "{stdout}"
    );

    let (code, _, _) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "the repaired file is clean");
    let repaired = fs::read_to_string(&path).unwrap();
    let ids: Vec<String> = repaired
        .lines()
        .map(|l| {
            invocation_metrics::parse_line(l.as_bytes())
                .unwrap()
                .invocation_id
        })
        .collect();
    assert_eq!(ids, ["inv-01", "inv-02", "inv-04"]);
    assert!(!repaired.contains('\r'));
    let rejected = fs::read_to_string(dir.path().join("invocations.rejected.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 3);
    let backup = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".bak-"))
        .expect("a backup");
    assert_eq!(fs::read(backup).unwrap(), original);

    let (code, stdout, _) = run(&["repair", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("clean, 3 record(s); nothing to do"),
        "{stdout}"
    );
}

/// Two damaged files of other names in one directory: each keeps its own rejected lines.
#[test]
fn a_file_named_otherwise_gets_its_own_rejected_file() {
    let dir = tempfile::tempdir().unwrap();
    let original = fs::read(common::fixtures().join("damaged.jsonl")).unwrap();
    for name in ["monday.jsonl", "tuesday.log"] {
        fs::write(dir.path().join(name), &original).unwrap();
        let path = dir.path().join(name);
        let (code, stdout, stderr) = run(&["repair", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(".rejected.jsonl"), "{stdout}");
    }
    for stem in ["monday", "tuesday"] {
        let rejected = dir.path().join(format!("{stem}.rejected.jsonl"));
        assert_eq!(fs::read_to_string(rejected).unwrap().lines().count(), 3);
    }
    assert!(!dir.path().join("invocations.rejected.jsonl").exists());
}

#[test]
fn repair_refuses_while_a_collector_holds_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("invocations.jsonl"),
        fs::read(common::fixtures().join("small.jsonl")).unwrap(),
    )
    .unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let (code, _, stderr) = run(&["repair", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("locked by another collector"), "{stderr}");
    collector.close().unwrap();
}
