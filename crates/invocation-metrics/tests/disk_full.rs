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
    assert!(matches!(err, Error::Unwritten { pending: 10, .. }), "{err}");
    assert!(!err.to_string().contains("retrying"), "{err}");
}

/// Flushers asleep when the write fails are all woken with the error, under every policy:
/// none sleeps on, none reports success.
#[test]
fn every_waiting_flusher_gets_the_error() {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use invocation_metrics::Durability;

    for durability in [
        Durability::Buffered,
        Durability::Periodic(Duration::from_millis(5)),
        Durability::Always,
    ] {
        let dir = tempfile::tempdir().unwrap();
        symlink("/dev/full", dir.path().join(METRICS_FILE_NAME)).unwrap();
        let collector = Arc::new(
            InvocationMetricsCollector::builder(dir.path())
                .durability(durability)
                .open()
                .unwrap(),
        );
        let start = Arc::new(Barrier::new(16));
        let flushers: Vec<_> = (0..16)
            .map(|t| {
                let (collector, start) = (Arc::clone(&collector), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    collector
                        .record(common::metric(format!("t{t}"), t))
                        .unwrap();
                    collector.flush()
                })
            })
            .collect();
        for flusher in flushers {
            let result = flusher.join().unwrap();
            assert!(
                matches!(result, Err(Error::Write { .. })),
                "{durability:?}: {result:?}"
            );
        }
        assert_eq!(collector.get_count(), 16, "{durability:?}");
    }
}
