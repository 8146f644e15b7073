//! Opening a file whose last record lacks its newline terminates that record; a write that
//! then fails half-way (a full disk, played by RLIMIT_FSIZE) is cut back to where the file
//! ended — after that newline, not before it. Cut one byte short, the next append would join
//! the repaired record's line and both records would be lost. (A mutant of the tail repair
//! that returned the length before the added newline survived every other test.)

mod common;

use invocation_metrics::{InvocationMetricsCollector, METRICS_FILE_NAME, TailRepair, parse_line};

#[test]
fn a_failed_write_after_a_terminated_tail_keeps_the_repaired_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(METRICS_FILE_NAME);
    let first = common::metric("first", 1).to_json_line();
    let repaired = common::metric("repaired", 2).to_json_line();
    std::fs::write(&path, format!("{first}\n{repaired}")).unwrap();

    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    assert_eq!(*collector.tail_repair(), TailRepair::Terminated);
    let healthy = std::fs::read_to_string(&path).unwrap();
    assert!(healthy.ends_with('\n'));

    // Room for part of one more line only.
    common::set_file_size_limit(healthy.len() as u64 + 20);
    collector.record(common::metric("during", 3)).unwrap();
    assert!(collector.flush().is_err());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        healthy,
        "the partial line is cut back to the end of the repaired record, its newline kept"
    );

    common::set_file_size_limit(libc::RLIM_INFINITY);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while collector.flush().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never recovered"
        );
    }
    collector.close().unwrap();
    let ids: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| parse_line(l.as_bytes()).unwrap().invocation_id)
        .collect();
    assert_eq!(ids, ["first", "repaired", "during"]);
}
