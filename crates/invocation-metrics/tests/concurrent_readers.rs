//! Readers running while a writer appends never fail and never see a half-written line as
//! damage: at most an unterminated last line, which they skip as incomplete.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use invocation_metrics::{InvocationMetricsCollector, MetricsScan, RecordFilter};

#[test]
fn readers_during_appends_see_only_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Arc::new(InvocationMetricsCollector::open(dir.path()).unwrap());
    let path = collector.path().to_path_buf();
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let collector = Arc::clone(&collector);
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    collector
                        .record(common::metric(format!("{t}-{i}"), i))
                        .unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let (mut passes, mut last) = (0, 0);
            while !done.load(Ordering::Acquire) {
                let file = std::fs::File::open(&path).unwrap();
                let mut scan = MetricsScan::new(RecordFilter::default());
                let mut n = 0u64;
                scan.read("live", file, |_| n += 1).unwrap();
                let report = scan.finish();
                let problems = &report.inputs[0].problems;
                assert!(
                    problems.iter().all(|p| p.torn_tail),
                    "mid-file damage: {problems:?}"
                );
                assert!(n >= last, "a reader saw fewer records than before");
                last = n;
                passes += 1;
            }
            passes
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    collector.flush().unwrap();
    done.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(collector.get_count(), 80_000);
}

/// The same promise, met on purpose rather than by a lucky race: the test writes a record
/// in pieces, reading between each — the scan on every core and the one-by-one reader must
/// call the unfinished last line incomplete (a torn tail), never damage, and count the
/// record once it is whole (a valid last line counts even before its newline).
#[test]
fn a_line_written_in_pieces_is_incomplete_until_its_newline() {
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invocations.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for i in 0..3 {
        writeln!(
            file,
            "{}",
            common::metric(format!("whole-{i}"), i).to_json_line()
        )
        .unwrap();
    }
    let line = common::metric("in-pieces", 9).to_json_line();
    let pieces = [
        &line[..1],
        &line[1..40],
        &line[40..line.len() - 1],
        &line[line.len() - 1..],
    ];
    for (n, piece) in pieces.iter().enumerate() {
        file.write_all(piece.as_bytes()).unwrap();
        file.flush().unwrap();
        for parallel in [true, false] {
            let mut scan = MetricsScan::new(RecordFilter::default());
            let records = if parallel {
                let input = invocation_metrics::Input::File(path.clone());
                scan.aggregate_inputs(&[input], |i| Ok(i.open()?.0))
                    .unwrap()
                    .count()
            } else {
                let mut count = 0;
                scan.visit("file", std::fs::File::open(&path).unwrap(), |_| count += 1)
                    .unwrap();
                count
            };
            let report = scan.finish();
            let problems = &report.inputs[0].problems;
            if n + 1 < pieces.len() {
                assert_eq!(records, 3, "piece {n}, parallel {parallel}");
                assert_eq!(
                    problems.len(),
                    1,
                    "piece {n}, parallel {parallel}: {problems:?}"
                );
                assert!(
                    problems[0].torn_tail,
                    "piece {n}: an unfinished line is not damage"
                );
                assert_eq!(problems[0].line, 4);
            } else {
                // Whole but for its newline: a valid last line counts.
                assert_eq!((records, problems.len()), (4, 0), "parallel {parallel}");
            }
        }
    }
    writeln!(file).unwrap();
    let mut scan = MetricsScan::new(RecordFilter::default());
    let mut count = 0;
    scan.visit("file", std::fs::File::open(&path).unwrap(), |_| count += 1)
        .unwrap();
    assert_eq!((count, scan.finish().problem_count()), (4, 0));
}
