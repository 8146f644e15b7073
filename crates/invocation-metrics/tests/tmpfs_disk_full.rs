//! A real full disk: a 256 KiB tmpfs filled to the brim. Flush reports ENOSPC, memory keeps
//! everything, and once space is freed the writer lands every record, in order, once.
//! Needs permission to mount (root); elsewhere it says so and checks nothing.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use invocation_metrics::{Error, InvocationMetricsCollector, parse_line};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn enospc_is_reported_and_recovered_from_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir.path())
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mount = Mount(dir.path().to_path_buf());
    let metrics = dir.path().join("metrics");
    let collector = InvocationMetricsCollector::open(&metrics).unwrap();

    // Fill the disk, leaving a few KiB.
    let filler = dir.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 250 * 1024]);

    // About 60 KiB of records for the few KiB left.
    for i in 0..200u64 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    let err = collector.flush().expect_err("the disk is full");
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(collector.get_count(), 200, "memory keeps every record");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = collector.flush() {
        assert!(Instant::now() < deadline, "never recovered: {e}");
    }
    let ids: Vec<String> = common::lines(collector.path())
        .iter()
        .map(|l| parse_line(l.as_bytes()).unwrap().invocation_id)
        .collect();
    let expected: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, expected);
    collector.close().unwrap();
}
