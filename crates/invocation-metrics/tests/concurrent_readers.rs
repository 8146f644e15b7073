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
