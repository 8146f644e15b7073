//! A failed sync is never followed by a "successful" one that proves nothing: after
//! `fdatasync` fails (EIO, from the `LD_PRELOAD` shim of `power_cut/sync_log.c`), every
//! durable wait fails — `sync`, `checkpoint`, a flush under `Always`, `close` — even once
//! the disk would answer again (Linux marks the failed pages clean, so a retry would
//! "succeed" without writing them). Writes go on, and a plain flush still answers. Under
//! `Buffered`, whose close promises no sync, close is not failed by it.

mod common;

use std::path::PathBuf;

use invocation_metrics::{
    CheckpointState, CheckpointStore, Durability, Error, InvocationMetricsCollector,
};

const CHILD_DIR: &str = "INVMETRICS_SYNC_FAILURE_CHILD_DIR";
const TRIGGER: &str = "INVMETRICS_FAIL_SYNC_IF";

fn is_sync_failure(result: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::SyncFailed { .. }))
}

/// Runs in a child with the shim loaded; prints one line per check.
#[test]
fn sync_failure_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let trigger = PathBuf::from(std::env::var(TRIGGER).unwrap());
    let collector = InvocationMetricsCollector::builder(dir.join("metrics"))
        .durability(Durability::Periodic(std::time::Duration::from_secs(3600)))
        .open()
        .unwrap();
    let store = CheckpointStore::new(dir.join("checkpoint")).unwrap();
    collector.record(common::metric("before", 0)).unwrap();
    println!("sync before the fault: {}", collector.sync().is_ok());

    std::fs::write(&trigger, b"").unwrap();
    collector.record(common::metric("during", 1)).unwrap();
    println!(
        "sync during the fault fails: {}",
        is_sync_failure(collector.sync())
    );
    std::fs::remove_file(&trigger).unwrap();

    collector.record(common::metric("after", 2)).unwrap();
    println!(
        "sync after the fault still fails: {}",
        is_sync_failure(collector.sync())
    );
    println!(
        "checkpoint fails: {}",
        is_sync_failure(collector.checkpoint(&store, CheckpointState::default()))
    );
    println!("no checkpoint saved: {}", store.load().unwrap().is_none());
    println!("plain flush answers: {}", collector.flush().is_ok());
    println!("close reports it: {}", is_sync_failure(collector.close()));

    // Under Buffered, close promises no sync, so an earlier failed one is not its error.
    let buffered = InvocationMetricsCollector::builder(dir.join("buffered"))
        .durability(Durability::Buffered)
        .open()
        .unwrap();
    buffered.record(common::metric("buffered", 3)).unwrap();
    std::fs::write(&trigger, b"").unwrap();
    println!(
        "a buffered sync fails: {}",
        is_sync_failure(buffered.sync())
    );
    std::fs::remove_file(&trigger).unwrap();
    println!("a buffered close does not: {}", buffered.close().is_ok());
}

#[test]
fn after_a_failed_sync_no_durable_wait_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let trigger = dir.path().join("fail-syncs");
    common::run_shimmed_child(
        "sync_failure_child",
        &[(CHILD_DIR, dir.path()), (TRIGGER, &trigger)],
        &[
            "sync before the fault: true",
            "sync during the fault fails: true",
            "sync after the fault still fails: true",
            "checkpoint fails: true",
            "no checkpoint saved: true",
            "plain flush answers: true",
            "close reports it: true",
            "a buffered sync fails: true",
            "a buffered close does not: true",
        ],
    );
    // Every record was written all the same.
    let file = std::fs::read_to_string(dir.path().join("metrics/invocations.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 3);
}
