//! A file damaged at its end, as a crash or power loss leaves it: reopening keeps every
//! complete record and new appends read back.

mod common;

use std::fs;

use invocation_metrics::{InvocationMetricsCollector, METRICS_FILE_NAME, TailRepair};

fn write_valid_file(dir: &std::path::Path, n: u64) -> Vec<u8> {
    let collector = InvocationMetricsCollector::open(dir).unwrap();
    for i in 0..n {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    collector.close().unwrap();
    fs::read(dir.join(METRICS_FILE_NAME)).unwrap()
}

/// Reopens `dir`, loads it, appends one record and returns the ids read back afterwards.
fn reopen_load_and_append(dir: &std::path::Path) -> (Vec<String>, TailRepair) {
    let collector = InvocationMetricsCollector::open(dir).unwrap();
    let repair = collector.tail_repair().clone();
    let report = collector.load_from_disk(0).unwrap();
    assert!(!report.torn_tail, "open repaired the tail before loading");
    assert_eq!(report.malformed, 0);
    collector.record(common::metric("new", 99)).unwrap();
    collector.close().unwrap();

    let check = InvocationMetricsCollector::open(dir).unwrap();
    let report = check.load_from_disk(0).unwrap();
    assert_eq!((report.malformed, report.torn_tail), (0, false));
    let ids = check
        .get_all()
        .into_iter()
        .map(|m| m.invocation_id)
        .collect();
    (ids, repair)
}

#[test]
fn cut_at_every_byte_offset_keeps_exactly_the_complete_prefix() {
    let source = tempfile::tempdir().unwrap();
    let full = write_valid_file(source.path(), 3);
    let line_ends: Vec<usize> = full
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();

    for cut in 0..=full.len() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(METRICS_FILE_NAME), &full[..cut]).unwrap();
        let (ids, repair) = reopen_load_and_append(dir.path());

        let complete = line_ends.iter().filter(|end| **end < cut).count();
        // A cut just before a newline leaves a valid record without its newline: kept.
        let kept = if line_ends.contains(&cut) {
            complete + 1
        } else {
            complete
        };
        let mut expected: Vec<String> = (0..kept).map(|i| format!("r{i}")).collect();
        expected.push("new".into());
        assert_eq!(ids, expected, "cut at byte {cut}");
        match repair {
            TailRepair::Clean => assert!(cut == 0 || full[cut - 1] == b'\n', "cut {cut}"),
            TailRepair::Terminated => assert!(line_ends.contains(&cut), "cut {cut}"),
            TailRepair::Cut {
                bytes,
                ref saved_to,
            } => {
                assert_eq!(fs::read(saved_to).unwrap().len() as u64, bytes, "cut {cut}");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn nul_filled_and_garbage_tails_are_cut_and_saved() {
    let source = tempfile::tempdir().unwrap();
    let full = write_valid_file(source.path(), 2);
    let tails: [&[u8]; 4] = [
        &[0u8; 4096],
        b"{\"invocationId\":\"half",
        b"\xff\xfe garbage \x01\x02",
        b"{\"invocationId\":\"x\"}",
    ];
    for tail in tails {
        let dir = tempfile::tempdir().unwrap();
        let mut damaged = full.clone();
        damaged.extend_from_slice(tail);
        fs::write(dir.path().join(METRICS_FILE_NAME), &damaged).unwrap();
        let (ids, repair) = reopen_load_and_append(dir.path());
        assert_eq!(ids, ["r0", "r1", "new"]);
        let TailRepair::Cut { saved_to, .. } = repair else {
            panic!("expected the tail to be cut, got {repair:?}");
        };
        assert_eq!(fs::read(saved_to).unwrap(), tail);
    }
}

#[test]
fn valid_but_unterminated_last_line_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let full = write_valid_file(dir.path(), 2);
    fs::write(dir.path().join(METRICS_FILE_NAME), &full[..full.len() - 1]).unwrap();
    let (ids, repair) = reopen_load_and_append(dir.path());
    assert_eq!(repair, TailRepair::Terminated);
    assert_eq!(ids, ["r0", "r1", "new"]);
}

/// A file that is one valid record without its newline, starting with a byte order mark (an
/// editor's save): the record is kept and terminated, not cut away as torn.
#[test]
fn a_single_unterminated_record_after_a_byte_order_mark_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let full = write_valid_file(dir.path(), 1);
    let with_bom = [b"\xef\xbb\xbf".as_slice(), &full[..full.len() - 1]].concat();
    fs::write(dir.path().join(METRICS_FILE_NAME), with_bom).unwrap();
    let (ids, repair) = reopen_load_and_append(dir.path());
    assert_eq!(repair, TailRepair::Terminated);
    assert_eq!(ids, ["r0", "new"]);
}

/// Torn tails saved in the same millisecond get their own names (`-1`, `-2`, …): none
/// overwrites another's bytes. (The numbering itself is unit-tested in `recovery.rs` with a
/// fixed clock: here the open may come after the five seconds covered, on a loaded machine.)
#[test]
fn torn_tails_saved_in_the_same_millisecond_get_their_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let full = write_valid_file(dir.path(), 1);
    fs::write(
        dir.path().join(METRICS_FILE_NAME),
        [&full[..], b"{\"torn"].concat(),
    )
    .unwrap();
    // Earlier saves from this millisecond and the next few seconds, and their first numbered
    // copies, are already there.
    let now = invocation_metrics::Timestamp::now().unix_ms();
    let covered = now..now + 5_000;
    let earlier: Vec<_> = covered
        .clone()
        .flat_map(|ms| {
            ["", "-1"].map(|suffix| {
                dir.path()
                    .join(format!("{METRICS_FILE_NAME}.torn-{ms}{suffix}"))
            })
        })
        .collect();
    for path in &earlier {
        fs::write(path, "earlier").unwrap();
    }
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let TailRepair::Cut { saved_to, .. } = collector.tail_repair().clone() else {
        panic!("the torn tail was not cut");
    };
    assert_eq!(fs::read(&saved_to).unwrap(), b"{\"torn");
    for path in &earlier {
        assert_eq!(fs::read(path).unwrap(), b"earlier", "{}", path.display());
    }
    let name = saved_to.file_name().unwrap().to_string_lossy().into_owned();
    let stamp: i64 = name
        .trim_start_matches(&format!("{METRICS_FILE_NAME}.torn-"))
        .split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("not a torn tail's name: {name}"));
    if covered.contains(&stamp) {
        assert!(name.ends_with("-2"), "{name}");
    }
}
