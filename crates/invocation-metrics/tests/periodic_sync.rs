//! `Durability::Periodic` syncs on its own, and closing syncs under it: seen through the
//! `LD_PRELOAD` shim of `power_cut/sync_log.c`, which logs the file's length at every
//! successful `fsync`/`fdatasync`. (Nothing else shows a sync short of a power cut.)

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use invocation_metrics::{Durability, InvocationMetricsCollector};

const CHILD_DIR: &str = "INVMETRICS_PERIODIC_SYNC_CHILD_DIR";
const SYNC_LOG: &str = "INVMETRICS_SYNC_LOG";

/// Whether the log holds a sync of `file` that covered at least `len` bytes.
fn synced(log: &Path, file: &Path, len: u64) -> bool {
    let file = file.canonicalize().unwrap();
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .any(|(size, path)| Path::new(path) == file && size.parse::<u64>().unwrap() >= len)
}

fn record_three(collector: &InvocationMetricsCollector, prefix: &str) -> u64 {
    for i in 0..3 {
        collector
            .record(common::metric(format!("{prefix}-{i}"), i))
            .unwrap();
    }
    collector.flush().unwrap();
    std::fs::metadata(collector.path()).unwrap().len()
}

/// Runs in a child with the shim loaded; prints one line per check.
#[test]
fn periodic_sync_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let log = PathBuf::from(std::env::var(SYNC_LOG).unwrap());

    let collector = InvocationMetricsCollector::builder(dir.join("often"))
        .durability(Durability::Periodic(Duration::from_millis(5)))
        .open()
        .unwrap();
    let len = record_three(&collector, "often");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !synced(&log, collector.path(), len) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "a periodic sync came on its own: {}",
        synced(&log, collector.path(), len)
    );
    collector.close().unwrap();

    let collector = InvocationMetricsCollector::builder(dir.join("hourly"))
        .durability(Durability::Periodic(Duration::from_secs(3600)))
        .open()
        .unwrap();
    let len = record_three(&collector, "hourly");
    let path = collector.path().to_path_buf();
    println!("no sync before the hour: {}", !synced(&log, &path, len));
    collector.close().unwrap();
    println!("close synced: {}", synced(&log, &path, len));
}

#[test]
fn periodic_durability_syncs_on_its_own_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syncs.log");
    common::run_shimmed_child(
        "periodic_sync_child",
        &[(CHILD_DIR, dir.path()), (SYNC_LOG, &log)],
        &[
            "a periodic sync came on its own: true",
            "no sync before the hour: true",
            "close synced: true",
        ],
    );
}
