//! Every durability policy writes every record; flush acknowledges only what is written.

mod common;

use std::sync::Arc;
use std::time::Duration;

use invocation_metrics::Durability;

#[test]
fn every_policy_writes_every_record_once_flushed() {
    for durability in [
        Durability::Buffered,
        Durability::Periodic(Duration::from_millis(5)),
        Durability::Always,
    ] {
        let (_dir, collector) = common::shared_collector(durability);
        // A watchdog, not a timing: a flush that is never acknowledged fails the test
        // instead of hanging it.
        let (done, finished) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let collector = Arc::clone(&collector);
                let done = done.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        collector
                            .record(common::metric(format!("{t}-{i}"), i))
                            .unwrap();
                        collector.flush().unwrap();
                        // Everything this thread flushed is in the file.
                        let lines = common::lines(collector.path());
                        assert!(lines.iter().any(|l| l.contains(&format!("\"{t}-{i}\""))));
                    }
                    done.send(()).unwrap();
                })
            })
            .collect();
        for _ in 0..threads.len() {
            finished
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("{durability:?}: a flush was never acknowledged"));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(common::lines(collector.path()).len(), 800, "{durability:?}");
        Arc::try_unwrap(collector).unwrap().close().unwrap();
    }
}

/// Many flushers racing the writer, half of them waiting for a sync (`sync()`) and half
/// for a write (`flush()`): each sleeps until the writer wakes it by name, so a wake-up
/// lost anywhere would leave a thread asleep for good. A watchdog turns such a hang into a
/// failure instead of a stuck test run.
#[test]
fn no_flusher_sleeps_through_its_acknowledgement() {
    use std::sync::mpsc;

    for durability in [
        Durability::Buffered,
        Durability::Periodic(Duration::from_secs(3600)),
        Durability::Always,
    ] {
        let (_dir, collector) = common::shared_collector(durability);
        let (threads, per_thread) = (16u64, 300u64);
        let (done, finished) = mpsc::channel();
        for t in 0..threads {
            let (collector, done) = (Arc::clone(&collector), done.clone());
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    collector
                        .record(common::metric(format!("{t}-{i}"), i))
                        .unwrap();
                    if t % 2 == 0 {
                        collector.flush().unwrap();
                    } else {
                        collector.sync().unwrap();
                    }
                }
                done.send(t).unwrap();
            });
        }
        for _ in 0..threads {
            finished
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| panic!("{durability:?}: a flusher never woke up"));
        }
        let lines = common::lines(collector.path());
        assert_eq!(lines.len() as u64, threads * per_thread, "{durability:?}");
    }
}

/// Regression: once the writer was idle, a record that nobody flushed stayed in memory
/// until the next flush (lines waited to be woken by a long queue only), so a crash lost it
/// however long ago it was recorded. The first line of a batch wakes the writer; it then
/// lingers at most a few milliseconds. (A watchdog of 10 s, not a timing.)
#[test]
fn a_record_nobody_flushes_still_reaches_the_file() {
    for durability in [
        Durability::Buffered,
        Durability::Periodic(Duration::from_secs(3600)),
        Durability::Always,
    ] {
        let (_dir, collector) = common::shared_collector(durability);
        for round in 0..3u64 {
            // Each round starts with an idle writer: the previous line is written.
            collector
                .record(common::metric(format!("unflushed-{round}"), round))
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while common::lines(collector.path()).len() as u64 <= round {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{durability:?}: round {round}'s record never reached the file"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
