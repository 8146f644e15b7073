//! Many threads recording at once: every record lands exactly once, whole, in one order.

mod common;

use std::sync::Arc;

use invocation_metrics::{InvocationMetric, InvocationMetricsCollector, parse_line};

#[test]
fn threads_times_records_gives_exactly_that_many_lines_in_per_thread_order() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let collector = Arc::new(InvocationMetricsCollector::open(dir.path()).unwrap());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let collector = Arc::clone(&collector);
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    collector
                        .record(common::metric(format!("t{t}-{i}"), i))
                        .unwrap();
                    if i % 1000 == 999 {
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
    assert_eq!(lines.len() as u64, THREADS * PER_THREAD);
    let from_file: Vec<InvocationMetric> = lines
        .iter()
        .map(|l| parse_line(l.as_bytes()).unwrap())
        .collect();
    let mut next = vec![0u64; THREADS as usize];
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
    assert_eq!(collector.get_count() as u64, THREADS * PER_THREAD);
    Arc::try_unwrap(collector).unwrap().close().unwrap();
}
