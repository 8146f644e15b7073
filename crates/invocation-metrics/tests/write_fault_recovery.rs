//! A write fault that clears: the file-size limit (RLIMIT_FSIZE) makes writes fail with
//! EFBIG part-way through a batch, like a disk filling up; raising it again is the disk
//! getting space back. The partial line must be cut back and every record must then reach
//! the file exactly once, in order.

mod common;

use std::time::{Duration, Instant};

use invocation_metrics::{Error, FleetEvent, InvocationMetricsCollector, parse_line};

#[test]
fn records_survive_a_full_disk_and_land_in_order_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let mut events = collector.subscribe();
    for i in 0..20 {
        collector
            .record(common::metric(format!("before-{i}"), i))
            .unwrap();
    }
    collector.flush().unwrap();
    let healthy_len = std::fs::metadata(collector.path()).unwrap().len();

    // The "disk" has room for a few hundred more bytes: less than one batch.
    common::set_file_size_limit(healthy_len + 300);
    for i in 0..50 {
        collector
            .record(common::metric(format!("during-{i}"), i))
            .unwrap();
    }
    let err = collector.flush().unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    // Whatever fitted was written as whole lines; the partial line was cut back.
    let during_fault = common::read_between_retries(collector.path());
    assert!(during_fault.len() as u64 <= healthy_len + 300);
    assert!(
        during_fault.ends_with(b"\n"),
        "the file ends on a line boundary"
    );
    let mut lines_in_file = 0;
    for line in during_fault
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        parse_line(line).unwrap();
        lines_in_file += 1;
    }
    assert_eq!(collector.get_count(), 70);
    // The error counts the records not in the file.
    let Error::Write { pending, .. } = err else {
        unreachable!()
    };
    assert_eq!(pending, 70 - lines_in_file, "{err}");

    // The writer may try before all fifty are queued, so its first failure can count
    // fewer. The failure that ended the flush came after the flush's call, when all were
    // queued, and so does every retry since: the last failure counts what the error counts.
    let mut failures = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let FleetEvent::WriteFailed { pending, .. } = event {
            failures.push(pending);
        }
    }
    assert!(
        failures.is_sorted(),
        "records only join the queue: {failures:?}"
    );
    assert_eq!(failures.last(), Some(&(70 - lines_in_file)), "{failures:?}");

    common::set_file_size_limit(libc::RLIM_INFINITY);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = collector.flush() {
        assert!(Instant::now() < deadline, "writer never recovered: {e}");
    }
    let mut recovered = false;
    while let Ok(event) = events.try_recv() {
        recovered |= matches!(event, FleetEvent::WriteRecovered { .. });
    }
    assert!(recovered, "a WriteRecovered event was published");

    let ids: Vec<String> = common::lines(collector.path())
        .iter()
        .map(|l| parse_line(l.as_bytes()).unwrap().invocation_id)
        .collect();
    let expected: Vec<String> = (0..20)
        .map(|i| format!("before-{i}"))
        .chain((0..50).map(|i| format!("during-{i}")))
        .collect();
    assert_eq!(ids, expected);
    collector.close().unwrap();
}
