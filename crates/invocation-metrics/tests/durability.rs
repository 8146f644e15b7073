//! Every durability policy writes every record; flush acknowledges only what is written.

mod common;

use std::sync::Arc;
use std::time::Duration;

use invocation_metrics::{Durability, InvocationMetricsCollector};

#[test]
fn every_policy_writes_every_record_once_flushed() {
    for durability in [
        Durability::Buffered,
        Durability::Periodic(Duration::from_millis(5)),
        Durability::Always,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let collector = Arc::new(
            InvocationMetricsCollector::builder(dir.path())
                .durability(durability)
                .open()
                .unwrap(),
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let collector = Arc::clone(&collector);
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
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(common::lines(collector.path()).len(), 800, "{durability:?}");
        Arc::try_unwrap(collector).unwrap().close().unwrap();
    }
}
