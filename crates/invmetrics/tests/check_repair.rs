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

/// A writer appending leaves its last line unterminated for a moment: with the directory's
/// lock held, `check` calls that line work in progress, not damage (and exits 0, as
/// `summary` only notes it); with no writer, it is a torn line.
#[test]
fn check_calls_a_live_writers_last_line_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    let mut content = fs::read(common::fixtures().join("small.jsonl")).unwrap();
    content.extend_from_slice(br#"{"invocationId":"inv-99","agent":"co"#);
    fs::write(&path, &content).unwrap();
    let dir_arg = dir.path().to_str().unwrap();

    let (code, stdout, _) = run(&["check", dir_arg]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("(torn last line)"), "{stdout}");

    // The lock a collector holds, taken without opening one (opening would repair the tail).
    let lock = fs::File::create(dir.path().join("invocations.lock")).unwrap();
    lock.lock().unwrap();
    let (code, stdout, _) = run(&["check", dir_arg]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(":11: in progress"), "{stdout}");
    assert!(stdout.contains("0 damaged line(s)"), "{stdout}");
}

/// Records whose id appeared earlier are findings of `check`, named with where the id
/// first appeared; `--no-dedup` makes `summary` keep them.
#[test]
fn check_names_repeated_ids_and_summary_can_keep_them() {
    let (code, stdout, _) = run(&["check", "small.jsonl", "small.jsonl"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            r#"small.jsonl:3: repeated invocationId "inv-03" (first at small.jsonl:3; readers keep only the first)"#
        ),
        "{stdout}"
    );
    let (_, deduped, stderr) = run(&["summary", "--json", "small.jsonl", "small.jsonl"]);
    assert!(stderr.contains("ignored 10 record(s) whose invocationId appeared earlier"));
    let deduped: serde_json::Value = serde_json::from_str(&deduped).unwrap();
    assert_eq!(deduped["totalInvocations"], 10);
    let (_, kept, _) = run(&[
        "summary",
        "--json",
        "--no-dedup",
        "small.jsonl",
        "small.jsonl",
    ]);
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept["totalInvocations"], 20);
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

/// Repeated ids are no damage a rewrite could mend: `repair` leaves them and says so, rather
/// than calling a file that `check` fails clean.
#[test]
fn repair_leaves_repeated_ids_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    let small = fs::read_to_string(common::fixtures().join("small.jsonl")).unwrap();
    let first = small.lines().next().unwrap();
    fs::write(&path, format!("{small}{first}\n")).unwrap();
    let (code, stdout, stderr) = run(&["repair", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("no damaged lines, 11 record(s); nothing to do"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 repeated id(s) left as they are"),
        "{stdout}"
    );
    let (code, _, _) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 1, "the repeat is still there for check to list");
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
    assert!(stderr.contains("stop the writer first"), "{stderr}");
    collector.close().unwrap();
}

/// A collector writing through a link holds the link's directory, not the file's: `repair`
/// of the link refuses too (it took only the file's directory's lock, and cut records the
/// collector acknowledged meanwhile out of the file).
#[test]
fn repair_refuses_while_a_collector_writes_through_a_link() {
    let (real, links) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = real.path().join("data.jsonl");
    fs::write(
        &target,
        fs::read(common::fixtures().join("small.jsonl")).unwrap(),
    )
    .unwrap();
    std::os::unix::fs::symlink(&target, links.path().join("invocations.jsonl")).unwrap();
    let collector = InvocationMetricsCollector::open(links.path()).unwrap();
    for path in [links.path(), &links.path().join("invocations.jsonl")] {
        let (code, _, stderr) = run(&["repair", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("locked by another collector"), "{stderr}");
    }
    collector.close().unwrap();
    let (code, stdout, stderr) = run(&["repair", links.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(": clean, 10 record(s); nothing to do"),
        "{stdout}"
    );

    // A link beside its target locks the one directory once (not against itself); a link
    // of another name, which no collector writes through, leaves no lock file beside it.
    let beside = real.path().join("invocations.jsonl");
    std::os::unix::fs::symlink("data.jsonl", &beside).unwrap();
    let (code, stdout, stderr) = run(&["repair", real.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": clean, 10 record(s)"), "{stdout}");
    let elsewhere = tempfile::tempdir().unwrap();
    let named_otherwise = elsewhere.path().join("latest.jsonl");
    std::os::unix::fs::symlink(&target, &named_otherwise).unwrap();
    let (code, _, stderr) = run(&["repair", named_otherwise.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!elsewhere.path().join("invocations.lock").exists());
}

/// Each rejected line is kept with its line number and reason, over-long lines included,
/// so that it can be fixed and ingested again.
#[test]
fn rejected_lines_keep_their_number_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    let mut content = fs::read(common::fixtures().join("damaged.jsonl")).unwrap();
    // Before the torn tail: an over-long line, with a character split across read blocks
    // and a byte that is not UTF-8.
    let tail_start = content.iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let tail = content.split_off(tail_start);
    let mut long = "é".repeat(700_000).into_bytes();
    long.push(0xff);
    content.extend_from_slice(&long);
    content.push(b'\n');
    content.extend_from_slice(&tail);
    fs::write(&path, &content).unwrap();

    let (code, stdout, stderr) = run(&["repair", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("moved 3 damaged line(s) (one a torn tail) and 1 over-long line(s)"),
        "{stdout}"
    );
    let rejected = fs::read_to_string(dir.path().join("invocations.rejected.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = entries
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        [2, 4, 7, 6],
        "damaged lines in order, then the over-long one"
    );
    assert!(entries[1]["reason"].as_str().unwrap().contains("attempt"));
    assert!(
        entries[2]["reason"]
            .as_str()
            .unwrap()
            .ends_with("(torn last line)")
    );
    assert_eq!(entries[0]["text"], r#"{"invocationId":"broken","#);
    let long_text = entries[3]["text"].as_str().unwrap();
    assert_eq!(long_text, format!("{}\u{fffd}", "é".repeat(700_000)));
    assert_eq!(entries[3]["lossy"], true);
    assert!(
        entries[3]["reason"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );
}

/// `repair` through a symlink repairs the file it points to and keeps the link.
#[test]
fn repair_follows_a_symlink() {
    let (real, links) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = real.path().join("invocations.jsonl");
    fs::write(
        &target,
        fs::read(common::fixtures().join("damaged.jsonl")).unwrap(),
    )
    .unwrap();
    let link = links.path().join("invocations.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let (code, stdout, stderr) = run(&["repair", links.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kept 3 record(s)"), "{stdout}");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let (code, _, _) = run(&["check", link.to_str().unwrap()]);
    assert_eq!(code, 0, "the file behind the link is clean");
    assert!(real.path().join("invocations.rejected.jsonl").exists());
}

/// A named pipe has no lines to keep: refused, and left where it is.
#[test]
fn repair_refuses_a_named_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("invocations.jsonl");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, _, stderr) = run(&["repair", fifo.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is a named pipe, not a metrics file"),
        "{stderr}"
    );
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["invocations.jsonl"], "nothing renamed or created");
}

/// A byte order mark starts a file harmlessly; at the start of a later line it is damage
/// (it was accepted there before). Checked through the parallel chunked reader `check` uses.
#[test]
fn a_byte_order_mark_is_accepted_only_at_the_start_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.jsonl");
    let small = fs::read(common::fixtures().join("small.jsonl")).unwrap();
    let bom = "\u{feff}".as_bytes();
    fs::write(&path, [bom, &small[..]].concat()).unwrap();
    let (code, stdout, _) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");

    let third_line = small
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    let mid = [&small[..third_line], bom, &small[third_line..]].concat();
    fs::write(&path, mid).unwrap();
    let (code, stdout, _) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("bom.jsonl:3: a byte order mark"),
        "{stdout}"
    );
}
