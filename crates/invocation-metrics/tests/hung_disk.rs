//! A disk that stops answering (a `write` that blocks, from the `LD_PRELOAD` shim of
//! `power_cut/sync_log.c`) does not hang the program that drops its collector: the drop
//! waits its few seconds for the queue, reports the records it could not write, and returns
//! without waiting for the stuck writer thread — which keeps the directory's lock until it
//! has finished, so that no new collector appends while it still may.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use invocation_metrics::{Error, InvocationMetricsCollector};

const CHILD_DIR: &str = "INVMETRICS_HUNG_DISK_CHILD_DIR";
const TRIGGER: &str = "INVMETRICS_HANG_WRITE_IF";

/// Runs in a child with the shim loaded; prints one line per check.
#[test]
fn hung_disk_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let trigger = PathBuf::from(std::env::var(TRIGGER).unwrap());
    let blocked = PathBuf::from(format!("{}.blocked", trigger.display()));
    let dir = PathBuf::from(dir);
    let collector = InvocationMetricsCollector::open(&dir).unwrap();
    collector.record(common::metric("written", 0)).unwrap();
    println!("a healthy flush: {}", collector.flush().is_ok());

    std::fs::write(&trigger, b"").unwrap();
    collector.record(common::metric("stuck", 1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !blocked.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("the writer is stuck in write: {}", blocked.exists());
    drop(collector);
    println!(
        "drop returned while the write still hung: {}",
        blocked.exists()
    );
    // The stuck writer may still append: nobody else may open the directory meanwhile.
    println!(
        "a new collector is refused meanwhile: {}",
        matches!(
            InvocationMetricsCollector::open(&dir),
            Err(Error::Locked { .. })
        )
    );
    // Once the disk answers, the old writer finishes its line and lets the lock go.
    std::fs::remove_file(&trigger).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let reopened = loop {
        match InvocationMetricsCollector::open(&dir) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => continue,
            other => break other.unwrap(),
        }
    };
    reopened.load_from_disk(0).unwrap();
    let ids: Vec<String> = reopened
        .get_all()
        .into_iter()
        .map(|m| m.invocation_id)
        .collect();
    println!(
        "afterwards both records are in the file: {}",
        ids == ["written", "stuck"]
    );
}

#[test]
fn dropping_a_collector_on_a_hung_disk_returns() {
    let dir = tempfile::tempdir().unwrap();
    let trigger = dir.path().join("hang-writes");
    let metrics = dir.path().join("metrics");
    common::run_shimmed_child(
        "hung_disk_child",
        &[(CHILD_DIR, &metrics), (TRIGGER, &trigger)],
        &[
            "a healthy flush: true",
            "the writer is stuck in write: true",
            "drop returned while the write still hung: true",
            "a new collector is refused meanwhile: true",
            "afterwards both records are in the file: true",
        ],
    );
}
