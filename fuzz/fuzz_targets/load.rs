//! Any bytes as a whole metrics file: reading never panics; opening a collector repairs the
//! tail and loads exactly the records a plain reader finds.
#![no_main]

use invocation_metrics::{InvocationMetricsCollector, METRICS_FILE_NAME, read_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|content: &[u8]| {
    let mut valid = Vec::new();
    read_records(content, |_, m| valid.push(m), |_| {}).expect("reading memory never fails");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(METRICS_FILE_NAME), content).unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).expect("open repairs any file");
    let on_disk = std::fs::read(collector.path()).unwrap();
    assert!(on_disk.is_empty() || on_disk.ends_with(b"\n"));
    let report = collector.load_from_disk(0).unwrap();
    assert!(!report.torn_tail);
    let mut seen = std::collections::HashSet::new();
    valid.retain(|m| seen.insert(m.invocation_id.clone()));
    assert_eq!(collector.get_all(), valid);
});
