//! A backlog on a disk that frees a little space: the writer writes it in runs of whole
//! lines, so what fits lands at once instead of waiting, all or nothing, for room for the
//! whole backlog. (Regression: with 2.4 MB pending and 2 MB freed, nothing was written.)
//! The file-size limit (RLIMIT_FSIZE) plays the full disk, as in `write_fault_recovery.rs`.

mod common;

use std::time::{Duration, Instant};

use invocation_metrics::{InvocationMetricsCollector, parse_line};

const MIB: u64 = 1 << 20;

#[test]
fn a_backlog_drains_as_far_as_the_freed_space_allows() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    collector.record(common::metric("first", 0)).unwrap();
    collector.flush().unwrap();
    let healthy_len = std::fs::metadata(collector.path()).unwrap().len();

    // The disk is full: about 3 MiB of records pile up in memory.
    common::set_file_size_limit(healthy_len);
    let padding = "x".repeat(2_000);
    for i in 0..1_400 {
        let mut metric = common::metric(format!("backlog-{i}"), i);
        metric.task_id = Some(format!("{padding}-{i}"));
        collector.record(metric).unwrap();
    }
    assert!(collector.flush().is_err(), "nothing fits yet");

    // 2 MiB are freed: at least a run of about 1 MiB of whole lines must land.
    common::set_file_size_limit(healthy_len + 2 * MIB);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let len = std::fs::metadata(collector.path()).unwrap().len();
        if len >= healthy_len + MIB {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog did not drain into the freed space ({} bytes written)",
            len - healthy_len
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(collector.flush().is_err(), "the rest still does not fit");
    let partial = common::read_between_retries(collector.path());
    assert!(partial.ends_with(b"\n"), "the file ends on a line boundary");
    let ids: Vec<String> = partial
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| parse_line(l).unwrap().invocation_id)
        .collect();
    let expected: Vec<String> = std::iter::once("first".to_string())
        .chain((0..ids.len() as u64 - 1).map(|i| format!("backlog-{i}")))
        .collect();
    assert_eq!(ids, expected, "whole lines, in order, from the start");

    // Space returns: the rest follows, each record once.
    common::set_file_size_limit(libc::RLIM_INFINITY);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = collector.flush() {
        assert!(Instant::now() < deadline, "writer never recovered: {e}");
    }
    let ids: Vec<String> = common::lines(collector.path())
        .iter()
        .map(|l| parse_line(l.as_bytes()).unwrap().invocation_id)
        .collect();
    let expected: Vec<String> = std::iter::once("first".to_string())
        .chain((0..1_400).map(|i| format!("backlog-{i}")))
        .collect();
    assert_eq!(ids, expected);
    collector.close().unwrap();
}
