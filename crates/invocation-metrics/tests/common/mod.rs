//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use invocation_metrics::{Durability, InvocationMetric, InvocationMetricsCollector, Timestamp};

/// A valid metric whose fields vary with `i`.
pub fn metric(id: impl Into<String>, i: u64) -> InvocationMetric {
    let mut m = InvocationMetric::new(
        id,
        ["planner", "coder", "reviewer"][(i % 3) as usize],
        (i % 4) as u32 + 1,
        Timestamp::from_unix_ms(1_764_000_000_000 + i as i64 * 250).unwrap(),
    );
    m.task_id = Some(format!("task-{}", i / 3));
    m.duration_ms = 100 + (i * 37) % 2000;
    m.tokens = 1000 + i;
    m.cost = 0.001 * (i % 10) as f64;
    m.success = !i.is_multiple_of(5);
    m.exit_code = if m.success { 0 } else { 1 };
    m.model = Some("model-a".into());
    m
}

/// A collector with `durability` in a new temporary directory, ready to share between
/// threads. Keep the directory alive as long as the collector.
pub fn shared_collector(
    durability: Durability,
) -> (tempfile::TempDir, Arc<InvocationMetricsCollector>) {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::builder(dir.path())
        .durability(durability)
        .open()
        .unwrap();
    (dir, Arc::new(collector))
}

/// Sets this process's file-size limit (RLIMIT_FSIZE): writes past `bytes` then fail with
/// EFBIG, as on a full disk (SIGXFSZ, which would kill the process, is ignored).
pub fn set_file_size_limit(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls on this process's own limits and signal disposition.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// The lines of a file, without newlines.
pub fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A metrics file as it is between the writer's retries on a full disk: each retry writes
/// what fits and cuts the partial line back a moment later, so a read can land between the
/// two. Read again, at most five times 50 ms apart, until the file ends on a line boundary
/// (a writer that never cuts back still leaves a file that does not).
pub fn read_between_retries(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    for _ in 0..5 {
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        bytes = std::fs::read(path).unwrap();
    }
    bytes
}

/// The `LD_PRELOAD` shim of `tests/power_cut/sync_log.c` (it logs what each sync covered, and
/// fails syncs on demand), compiled once per test process with the system C compiler.
pub fn sync_shim() -> &'static std::path::Path {
    static SHIM: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    let (_, path) = SHIM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("libsynclog.so");
        let source =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/power_cut/sync_log.c");
        let status =
            std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
                .args(["-shared", "-fPIC", "-O1", "-o"])
                .arg(&out)
                .arg(&source)
                .arg("-ldl")
                .status()
                .expect("the sync shim needs a C compiler (cc, or $CC)");
        assert!(status.success(), "building {} failed", source.display());
        (dir, out)
    });
    path
}

/// Runs the test `child` of the current test binary in a process of its own with the sync
/// shim loaded and `env` set, and checks that it printed every line of `checks`.
pub fn run_shimmed_child(child: &str, env: &[(&str, &std::path::Path)], checks: &[&str]) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env("LD_PRELOAD", sync_shim());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for check in checks {
        assert!(
            stdout.contains(check),
            "{check:?} missing:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
