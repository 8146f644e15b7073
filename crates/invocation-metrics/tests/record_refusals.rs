//! What `record()` refuses, so that nothing it acknowledges is refused later by a reader:
//! a second record with the same `invocationId` (readers keep only the first) and a record
//! whose line would pass the readers' line limit.

mod common;

use invocation_metrics::{
    Error, InvocationMetricsCollector, MAX_LINE_BYTES, ValidationError, read_records,
};
use tempfile::TempDir;

/// Every record of the file at `path`, and how many lines were damaged.
fn file_records(path: &std::path::Path) -> (usize, u64) {
    let mut records = 0;
    let stats = read_records(
        std::fs::File::open(path).unwrap(),
        |_, _| records += 1,
        |_| (),
    )
    .unwrap();
    (records, stats.problems)
}

fn refused_field(err: Error) -> ValidationError {
    match err {
        Error::Invalid(e) => e,
        other => panic!("expected a validation error, got {other}"),
    }
}

#[test]
fn a_duplicate_id_is_refused_and_nothing_is_recorded() {
    for keep_records in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let collector = InvocationMetricsCollector::builder(dir.path())
            .keep_records(keep_records)
            .open()
            .unwrap();
        collector.record(common::metric("inv-1", 1)).unwrap();
        collector.record(common::metric("inv-2", 2)).unwrap();
        let err = refused_field(collector.record(common::metric("inv-1", 3)).unwrap_err());
        assert_eq!(err.field, "invocationId");
        assert!(
            err.reason.contains("\"inv-1\" was already recorded"),
            "{err}"
        );
        assert_eq!(collector.get_count(), 2);
        assert_eq!(collector.compute_aggregate().total_invocations, 2);
        collector.flush().unwrap();
        assert_eq!(
            file_records(collector.path()),
            (2, 0),
            "keep_records({keep_records})"
        );
    }
}

/// A directory whose file holds `inv-0` to `inv-{count - 1}`, written by one collector and
/// reopened by another (`keep_records` as given), before any load.
fn reopened_after(count: u64, keep_records: bool) -> (TempDir, InvocationMetricsCollector) {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    for i in 0..count {
        collector
            .record(common::metric(format!("inv-{i}"), i))
            .unwrap();
    }
    collector.close().unwrap();
    let collector = InvocationMetricsCollector::builder(dir.path())
        .keep_records(keep_records)
        .open()
        .unwrap();
    (dir, collector)
}

/// Ids loaded from the file are taken too: a resumed run cannot record one again.
#[test]
fn an_id_loaded_from_disk_is_refused() {
    for keep_records in [true, false] {
        let (_dir, collector) = reopened_after(50, keep_records);
        let report = collector.load_from_disk(0).unwrap();
        assert_eq!((report.loaded, collector.get_count()), (50, 50));
        let err = refused_field(collector.record(common::metric("inv-7", 7)).unwrap_err());
        assert_eq!(err.field, "invocationId");
        collector.record(common::metric("inv-50", 50)).unwrap();
        assert_eq!(collector.get_count(), 51);
        // Loading the same file again adds nothing: every id is taken.
        collector.flush().unwrap();
        let again = collector.load_from_disk(0).unwrap();
        assert_eq!((again.loaded, again.duplicates), (0, 51));
        assert_eq!(collector.get_count(), 51);
    }
}

/// Resuming from a checkpoint skips the records it counts, but they are still in the file:
/// a record repeating one of their ids would be acknowledged and then dropped by every
/// reader (the first wins), so it is refused too.
#[test]
fn an_id_a_resume_skipped_is_refused() {
    for keep_records in [true, false] {
        let (dir, collector) = reopened_after(30, keep_records);
        let report = collector.load_from_disk(20).unwrap();
        assert_eq!((report.skipped, report.loaded), (20, 10));
        for repeated in ["inv-3", "inv-19", "inv-25"] {
            let err = refused_field(collector.record(common::metric(repeated, 7)).unwrap_err());
            assert_eq!(err.field, "invocationId", "{repeated}");
        }
        collector.record(common::metric("inv-30", 30)).unwrap();
        assert_eq!(collector.get_count(), 11);
        // Loading everything afterwards takes the skipped records as they are: theirs.
        collector.flush().unwrap();
        let all = collector.load_from_disk(0).unwrap();
        assert_eq!(
            (all.loaded, all.duplicates),
            (20, 11),
            "keep_records {keep_records}"
        );
        assert_eq!(collector.get_count(), 31);
        collector.close().unwrap();
        assert_eq!(file_records(&dir.path().join("invocations.jsonl")), (31, 0));
    }
}

#[test]
fn a_record_whose_line_would_be_too_long_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    // Just under the limit as a string, over it once serialised with every other field.
    let mut metric = common::metric("inv-long", 1);
    metric.agent = "a".repeat(MAX_LINE_BYTES - 100);
    let err = refused_field(collector.record(metric).unwrap_err());
    assert_eq!(err.field, "record");
    assert!(err.reason.contains("byte limit"), "{err}");
    assert_eq!(collector.get_count(), 0);

    // The longest accepted line reads back.
    let mut metric = common::metric("inv-fits", 1);
    let base = metric.to_json_line().len();
    metric.agent = "a".repeat(MAX_LINE_BYTES - base + metric.agent.len());
    assert_eq!(metric.to_json_line().len(), MAX_LINE_BYTES);
    collector.record(metric).unwrap();
    collector.flush().unwrap();
    assert_eq!(file_records(collector.path()), (1, 0));
}

/// The aggregate-only collector computes the same aggregate as one that keeps its records,
/// and holds none of them.
#[test]
fn an_aggregate_only_collector_agrees_with_a_full_one() {
    let (full_dir, lean_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let full = InvocationMetricsCollector::open(full_dir.path()).unwrap();
    let lean = InvocationMetricsCollector::builder(lean_dir.path())
        .keep_records(false)
        .open()
        .unwrap();
    for i in 0..1000 {
        full.record(common::metric(format!("inv-{i}"), i)).unwrap();
        lean.record(common::metric(format!("inv-{i}"), i)).unwrap();
        if i % 300 == 0 {
            assert_eq!(full.compute_aggregate(), lean.compute_aggregate());
        }
    }
    assert_eq!(full.compute_aggregate(), lean.compute_aggregate());
    assert_eq!((lean.get_count(), lean.get_all().len()), (1000, 0));
    lean.close().unwrap();

    let lean = InvocationMetricsCollector::builder(lean_dir.path())
        .keep_records(false)
        .open()
        .unwrap();
    lean.load_from_disk(0).unwrap();
    assert_eq!(full.compute_aggregate(), lean.compute_aggregate());
}
