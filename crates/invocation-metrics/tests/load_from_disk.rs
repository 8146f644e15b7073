//! Loading a metrics file: malformed lines, the skip count, duplicates, a missing file.

mod common;

use std::fs;

use invocation_metrics::{InvocationMetricsCollector, METRICS_FILE_NAME};

fn line(id: &str, i: u64) -> String {
    common::metric(id, i).to_json_line() + "\n"
}

#[test]
fn malformed_middle_lines_are_skipped_and_counted_by_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let content = [
        line("a", 0),
        "{not json}\n".into(),
        line("b", 1),
        "\n".into(),
        line("c", 2).replace("\"attempt\":1", "\"attempt\":0"),
        line("d", 3).replace('\n', "\r\n"),
    ]
    .concat();
    fs::write(dir.path().join(METRICS_FILE_NAME), content).unwrap();

    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let report = collector.load_from_disk(0).unwrap();
    assert_eq!(
        (report.loaded, report.malformed, report.torn_tail),
        (3, 2, false)
    );
    let lines: Vec<u64> = report.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [2, 5]);
    assert!(report.problems[1].to_string().contains("attempt"));
    let ids: Vec<_> = collector
        .get_all()
        .into_iter()
        .map(|m| m.invocation_id)
        .collect();
    assert_eq!(ids, ["a", "b", "d"]);
}

#[test]
fn skip_counts_valid_records_and_duplicates_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let content = [
        line("a", 0),
        "garbage\n".into(),
        line("b", 1),
        line("c", 2),
        line("b", 5),
    ]
    .concat();
    fs::write(dir.path().join(METRICS_FILE_NAME), content).unwrap();

    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    collector.record(common::metric("c", 7)).unwrap();
    let report = collector.load_from_disk(1).unwrap();
    assert_eq!(report.skipped, 1);
    assert_eq!(
        report.loaded, 1,
        "only b; c is in memory and the second b is a duplicate"
    );
    assert_eq!(report.duplicates, 2);
    let all = collector.get_all();
    let ids: Vec<_> = all.iter().map(|m| m.invocation_id.as_str()).collect();
    assert_eq!(ids, ["c", "b"]);
    assert_eq!(
        all[0].tokens,
        common::metric("c", 7).tokens,
        "the first c wins"
    );
    assert_eq!(
        all[1].tokens,
        common::metric("b", 1).tokens,
        "the first b wins"
    );
}

#[test]
fn skip_beyond_the_end_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(METRICS_FILE_NAME), line("a", 0)).unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let report = collector.load_from_disk(10).unwrap();
    assert_eq!((report.loaded, report.skipped), (0, 1));
}

#[test]
fn missing_or_empty_file_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path().join("fresh")).unwrap();
    let report = collector.load_from_disk(0).unwrap();
    assert_eq!(report.loaded, 0);
    assert_eq!(collector.get_count(), 0);
    assert_eq!(collector.compute_aggregate().total_invocations, 0);
}

#[test]
fn loading_while_recording_reads_only_completed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    for i in 0..100 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    collector.flush().unwrap();
    let report = collector.load_from_disk(0).unwrap();
    assert_eq!(
        (report.duplicates, report.malformed, report.torn_tail),
        (100, 0, false)
    );
    assert_eq!(collector.get_count(), 100);
}

#[test]
fn resume_from_checkpoint_count() {
    use invocation_metrics::{CheckpointState, CheckpointStore};
    let (metrics, checkpoints) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = CheckpointStore::new(checkpoints.path()).unwrap();
    let collector = InvocationMetricsCollector::open(metrics.path()).unwrap();
    for i in 0..5 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    let saved = collector
        .checkpoint(&store, CheckpointState::default())
        .unwrap();
    assert_eq!(saved.metrics_count, Some(5));
    for i in 5..8 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    collector.close().unwrap();

    let collector = InvocationMetricsCollector::open(metrics.path()).unwrap();
    let count = store.load().unwrap().unwrap().metrics_count.unwrap();
    let report = collector.load_from_disk(count as usize).unwrap();
    assert_eq!((report.skipped, report.loaded), (5, 3));
    let ids: Vec<_> = collector
        .get_all()
        .into_iter()
        .map(|m| m.invocation_id)
        .collect();
    assert_eq!(ids, ["r5", "r6", "r7"]);
}

/// A checkpoint that counts more records than the file holds (here: the file was replaced
/// by a shorter one) skips nothing silently: the report says how many are missing.
#[test]
fn a_checkpoint_ahead_of_the_file_is_reported_as_missing_records() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    for i in 0..4 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    collector.close().unwrap();

    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let report = collector.load_from_disk(10).unwrap();
    assert_eq!((report.skipped, report.loaded, report.missing), (4, 0, 6));
    assert_eq!(collector.get_count(), 0);
    let report = collector.load_from_disk(4).unwrap();
    assert_eq!((report.skipped, report.loaded, report.missing), (4, 0, 0));
}

/// A file of several parser chunks (they are read in parallel): records, skip, duplicates
/// and damaged line numbers are exactly what one sequential read gives. (A torn tail never
/// reaches `load_from_disk`: opening the collector cuts it.)
#[test]
fn a_file_of_many_chunks_loads_exactly_like_a_sequential_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut content = String::new();
    for i in 0..100_000u64 {
        content += &line(&format!("r{}", i % 99_500), i);
        if i % 9_999 == 7 {
            content += "{\"damaged\": \n";
        }
    }
    fs::write(dir.path().join(METRICS_FILE_NAME), &content).unwrap();

    let mut expected_ids = Vec::new();
    let mut expected_lines = Vec::new();
    invocation_metrics::read_records(
        content.as_bytes(),
        |_, m| expected_ids.push(m.invocation_id),
        |p| expected_lines.push(p.line),
    )
    .unwrap();
    // Skipped records are not in memory, so only the repeats of r100..r499 are duplicates.
    let skip = 100;
    let mut seen = std::collections::HashSet::new();
    let expected_ids: Vec<String> = expected_ids
        .into_iter()
        .skip(skip)
        .filter(|id| seen.insert(id.clone()))
        .collect();

    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let report = collector.load_from_disk(skip).unwrap();
    let ids: Vec<String> = collector
        .get_all()
        .into_iter()
        .map(|m| m.invocation_id)
        .collect();
    assert!(content.len() > 3 * (4 << 20), "several chunks");
    assert_eq!(ids, expected_ids);
    let lines: Vec<u64> = report.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, expected_lines);
    assert_eq!(
        (
            report.skipped,
            report.duplicates,
            report.malformed,
            report.torn_tail
        ),
        (skip as u64, 400, 11, false)
    );
}

/// The file gone from under an open collector (deleted, the directory replaced): nothing to
/// load, not an error. A file that exists but cannot be opened is an error naming it.
#[test]
fn a_removed_file_loads_nothing_and_an_unopenable_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let path = dir.path().join(METRICS_FILE_NAME);
    fs::remove_file(&path).unwrap();
    let report = collector.load_from_disk(0).unwrap();
    assert_eq!((report.loaded, report.problems.len()), (0, 0));

    // A link to itself: opening it fails with "too many levels of symbolic links".
    std::os::unix::fs::symlink(METRICS_FILE_NAME, &path).unwrap();
    let err = collector.load_from_disk(0).unwrap_err();
    assert!(err.to_string().contains(METRICS_FILE_NAME), "{err}");
}

/// After `load_from_disk(n)` the aggregate covers only the records kept, not the `n` skipped
/// (the loaded part's aggregate is folded on the parser threads, skipping those).
#[test]
fn the_aggregate_after_a_skipping_load_leaves_the_skipped_records_out() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<_> = (0..10)
        .map(|i| common::metric(format!("r{i}"), i))
        .collect();
    let content: String = records.iter().map(|m| m.to_json_line() + "\n").collect();
    fs::write(dir.path().join(METRICS_FILE_NAME), content).unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    assert_eq!(collector.load_from_disk(3).unwrap().loaded, 7);
    let aggregate = collector.compute_aggregate();
    assert_eq!(aggregate.total_invocations, 7);
    assert_eq!(
        aggregate.total_tokens,
        records[3..].iter().map(|m| m.tokens).sum::<u64>()
    );
}

/// The file replaced under an open collector by one that ends in a torn line: the torn
/// line is reported as the torn tail, not counted as malformed.
#[test]
fn a_replaced_file_with_a_torn_tail_counts_it_apart_from_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    for i in 0..3 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    collector.flush().unwrap();
    let replacement = dir.path().join("replacement");
    fs::write(
        &replacement,
        [
            line("a", 0),
            "{not json}\n".into(),
            "{\"invocationId\":\"to".into(),
        ]
        .concat(),
    )
    .unwrap();
    fs::rename(&replacement, dir.path().join(METRICS_FILE_NAME)).unwrap();
    let report = collector.load_from_disk(0).unwrap();
    assert_eq!(
        (report.loaded, report.malformed, report.torn_tail),
        (1, 1, true)
    );
    assert_eq!(report.problems.len(), 2);
}

/// The aggregate stays exact however a load meets it: folded lazily before the load
/// (records not yet aggregated) or up to date, with or without duplicates of held records
/// in the file.
#[test]
fn the_aggregate_after_a_load_counts_every_record_held_once() {
    for aggregate_first in [false, true] {
        for with_duplicate in [false, true] {
            let case = format!("aggregate first: {aggregate_first}, duplicate: {with_duplicate}");
            let dir = tempfile::tempdir().unwrap();
            let file: String = (0..6).map(|i| line(&format!("f{i}"), i)).collect();
            fs::write(dir.path().join(METRICS_FILE_NAME), file).unwrap();
            let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
            collector.record(common::metric("own", 10)).unwrap();
            if with_duplicate {
                // Also in the file: the load leaves the file's copy out.
                collector.record(common::metric("f2", 2)).unwrap();
            }
            collector.flush().unwrap();
            if aggregate_first {
                let held = collector.get_count() as u64;
                assert_eq!(collector.compute_aggregate().total_invocations, held);
            }
            collector.load_from_disk(0).unwrap();
            assert_eq!(collector.get_count(), 7, "{case}");
            let aggregate = collector.compute_aggregate();
            assert_eq!(aggregate.total_invocations, 7, "{case}");
            assert_eq!(
                aggregate.total_tokens,
                collector.get_all().iter().map(|m| m.tokens).sum::<u64>(),
                "{case}"
            );
        }
    }
}

/// A load that finds no duplicates while the collector holds records the aggregate has not
/// folded yet (here: the file was replaced after they were written; in use, records not yet
/// written when the load reads): the aggregate still counts both.
#[test]
fn the_aggregate_after_a_load_keeps_records_it_had_not_folded_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(METRICS_FILE_NAME);
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    collector.record(common::metric("own", 10)).unwrap();
    collector.flush().unwrap();
    // Another record, padded with JSON whitespace to the length the collector has written
    // (a load reads no further than that).
    let written = fs::metadata(&path).unwrap().len() as usize;
    let other = common::metric("x", 10).to_json_line();
    assert!(other.len() < written);
    let replacement = dir.path().join("replacement");
    fs::write(
        &replacement,
        format!("{other:<width$}\n", width = written - 1),
    )
    .unwrap();
    fs::rename(&replacement, &path).unwrap();

    let report = collector.load_from_disk(0).unwrap();
    assert_eq!((report.loaded, report.duplicates), (1, 0));
    assert_eq!(collector.compute_aggregate().total_invocations, 2);
}
