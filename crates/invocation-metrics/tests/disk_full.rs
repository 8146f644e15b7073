//! A disk that stays full (the file is a symlink to /dev/full): flush and close report the
//! error and nothing in memory is lost. Recovery once space returns is in
//! `write_fault_recovery.rs` and `tmpfs_disk_full.rs`.

mod common;

use std::os::unix::fs::symlink;

use invocation_metrics::{Error, FleetEvent, InvocationMetricsCollector, METRICS_FILE_NAME};

#[test]
fn dev_full_fails_flush_and_close_and_keeps_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(METRICS_FILE_NAME);
    symlink("/dev/full", &path).unwrap();

    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let mut events = collector.subscribe();
    for i in 0..10 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    let err = collector.flush().unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(collector.get_count(), 10, "nothing in memory is lost");
    assert_eq!(collector.compute_aggregate().total_invocations, 10);

    let mut saw_failure = false;
    while let Ok(event) = events.try_recv() {
        saw_failure |= matches!(event, FleetEvent::WriteFailed { .. });
    }
    assert!(saw_failure, "a WriteFailed event was published");

    // The fault never clears here, so closing reports the records it could not write.
    let err = collector.close().unwrap_err();
    assert!(matches!(err, Error::Write { pending: 10, .. }), "{err}");
}
