//! One writer per directory: a second open fails and does not disturb the first; a lock just
//! released is taken even while other threads start child processes.

mod common;

use invocation_metrics::{Durability, Error, InvocationMetricsCollector};

#[test]
fn second_open_in_the_same_process_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = InvocationMetricsCollector::open(dir.path()).unwrap();
    first.record(common::metric("a", 0)).unwrap();

    let err = InvocationMetricsCollector::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("locked by another collector"),
        "{err}"
    );

    first.record(common::metric("b", 1)).unwrap();
    first.close().unwrap();
    assert_eq!(
        common::lines(&dir.path().join("invocations.jsonl")).len(),
        2
    );

    let second = InvocationMetricsCollector::open(dir.path()).unwrap();
    assert_eq!(second.load_from_disk(0).unwrap().loaded, 2);
}

/// A child process being started holds a copy of every descriptor until it runs its
/// program, the lock's included: closing and reopening at once while another thread starts
/// processes must still get the lock (it once failed in CI this way).
#[test]
fn reopening_at_once_works_while_other_threads_start_processes() {
    let dir = tempfile::tempdir().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
            }
        })
    };
    for round in 0..200 {
        let collector = InvocationMetricsCollector::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        collector
            .record(common::metric(format!("r{round}"), round))
            .unwrap();
        collector.close().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spawner.join().unwrap();
}

#[test]
fn dropping_a_collector_flushes_and_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Buffered: a drop waits at most five seconds for the writer, and a sync on a busy
        // shared disk could take longer; writing and unlocking are what is tested here.
        let collector = InvocationMetricsCollector::builder(dir.path())
            .durability(Durability::Buffered)
            .open()
            .unwrap();
        collector.record(common::metric("a", 0)).unwrap();
    }
    // Written by the time the drop returns, not merely before the lock is free.
    assert_eq!(
        common::lines(&dir.path().join("invocations.jsonl")).len(),
        1
    );
    let reopened = InvocationMetricsCollector::open(dir.path()).unwrap();
    assert_eq!(reopened.load_from_disk(0).unwrap().loaded, 1);
}

const READ_ONLY_CHILD_DIR: &str = "INVMETRICS_READ_ONLY_CHILD_DIR";

/// The child's body: opens a directory it may not write to.
#[test]
fn read_only_child() {
    let Ok(dir) = std::env::var(READ_ONLY_CHILD_DIR) else {
        return;
    };
    match InvocationMetricsCollector::open(&dir) {
        Err(e @ Error::Io { .. }) => println!("IO {e}"),
        Err(e) => println!("OTHER {e}"),
        Ok(_) => println!("OPENED"),
    }
}

/// Root ignores permission bits, so the open runs in a child process as `nobody`
/// (util-linux's `setpriv`) when the test runs as root, as CI does.
#[test]
fn read_only_directory_gives_a_clear_error_at_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = dir.path().join("ro");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let test_binary = std::env::current_exe().unwrap();
    let mut command = if std::fs::write(locked.join("probe"), b"").is_ok() {
        let _ = std::fs::remove_file(locked.join("probe"));
        let mut as_nobody = std::process::Command::new("setpriv");
        as_nobody
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&test_binary);
        as_nobody
    } else {
        std::process::Command::new(&test_binary)
    };
    let output = command
        .args([
            "--exact",
            "read_only_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(READ_ONLY_CHILD_DIR, &locked)
        .output()
        .expect("setpriv (util-linux) runs the check as an unprivileged user");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("IO ") && stdout.contains("Permission denied"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const LOCK_CHILD_DIR: &str = "INVMETRICS_LOCK_CHILD_DIR";

/// The child's body: tries to open a directory another process holds.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(LOCK_CHILD_DIR) else {
        return;
    };
    match InvocationMetricsCollector::open(&dir) {
        Err(e @ Error::Locked { .. }) => println!("REFUSED {e}"),
        Err(e) => println!("OTHER {e}"),
        Ok(_) => println!("OPENED"),
    }
}

#[test]
fn a_second_process_is_refused_while_the_first_keeps_writing() {
    let dir = tempfile::tempdir().unwrap();
    let first = InvocationMetricsCollector::open(dir.path()).unwrap();
    for i in 0..1000 {
        first
            .record(common::metric(format!("before-{i}"), i))
            .unwrap();
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env(LOCK_CHILD_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("REFUSED") && stdout.contains("locked by another collector"),
        "{stdout}"
    );
    for i in 0..1000 {
        first
            .record(common::metric(format!("after-{i}"), i))
            .unwrap();
    }
    first.close().unwrap();
    let lines = common::lines(&dir.path().join("invocations.jsonl"));
    assert_eq!(lines.len(), 2000, "the first writer was not disturbed");
}

/// `has_live_writer` sees the lock of exactly the directory asked about: true while its
/// collector is open, false once it closed, and never for another directory whose lock
/// file exists but is not held (while some other directory's lock is).
#[test]
fn has_live_writer_names_the_directory_whose_lock_is_held() {
    use invocation_metrics::has_live_writer;
    let (held, idle, missing) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // A lock just released can still be held for a moment by a child process another test
    // thread is starting (see above): wait for it to go, as opening does.
    let released = |dir: &std::path::Path| {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while has_live_writer(dir) && std::time::Instant::now() < give_up {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        !has_live_writer(dir)
    };
    // The idle directory had a collector once: its lock file stays.
    InvocationMetricsCollector::open(idle.path())
        .unwrap()
        .close()
        .unwrap();
    let writer = InvocationMetricsCollector::open(held.path()).unwrap();
    assert!(has_live_writer(held.path()));
    assert!(released(idle.path()));
    assert!(!has_live_writer(missing.path()));
    // And the held one is still seen.
    assert!(has_live_writer(held.path()));
    writer.close().unwrap();
    assert!(released(held.path()));
}
