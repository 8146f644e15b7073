//! Many threads recording at once: every record lands exactly once, whole, in one order.

mod common;

use std::sync::Arc;

use invocation_metrics::{InvocationMetric, InvocationMetricsCollector, parse_line};

#[test]
fn threads_times_records_gives_exactly_that_many_lines_in_per_thread_order() {
    check(8, 5_000);
}

/// The full-size run from docs/RELIABILITY.md:
/// `cargo test --release -p invocation-metrics --test concurrent_record -- --ignored`.
#[test]
#[ignore = "1.6 M records; run in release"]
fn sixteen_threads_times_100_000_records() {
    check(16, 100_000);
}

fn check(threads: u64, per_thread: u64) {
    let dir = tempfile::tempdir().unwrap();
    let collector = Arc::new(InvocationMetricsCollector::open(dir.path()).unwrap());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let collector = Arc::clone(&collector);
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t);
                for i in 0..per_thread {
                    collector
                        .record(common::metric(format!("t{t}-{i}"), i))
                        .unwrap();
                    // Random flushes, about one in 500 records.
                    if rng.u32(..500) == 0 {
                        collector.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    collector.flush().unwrap();

    let lines = common::lines(collector.path());
    assert_eq!(lines.len() as u64, threads * per_thread);
    let from_file: Vec<InvocationMetric> = lines
        .iter()
        .map(|l| parse_line(l.as_bytes()).unwrap())
        .collect();
    let mut next = vec![0u64; threads as usize];
    for m in &from_file {
        let (t, i) = m.invocation_id[1..].split_once('-').unwrap();
        let (t, i): (usize, u64) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[t], "thread {t} out of order");
        next[t] += 1;
    }
    assert_eq!(
        collector.get_all(),
        from_file,
        "memory order equals file order"
    );
    assert_eq!(collector.get_count() as u64, threads * per_thread);
    Arc::try_unwrap(collector).unwrap().close().unwrap();
}
