//! The checkpoint's atomic replace under SIGKILL: after a kill at any point, loading gives
//! the last acknowledged checkpoint or a newer one, never an error or a mix.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use invocation_metrics::{CheckpointState, CheckpointStore};

const CHILD_DIR: &str = "INVMETRICS_CHECKPOINT_CHILD_DIR";

#[test]
fn checkpoint_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = CheckpointStore::new(&dir).unwrap();
    let start = store
        .load()
        .unwrap()
        .and_then(|s| s.metrics_count)
        .unwrap_or(0);
    for count in start + 1.. {
        let mut state = CheckpointState {
            metrics_count: Some(count),
            ..CheckpointState::default()
        };
        // A payload that spans several pages, so a torn write would be visible.
        state.other.insert(
            "payload".into(),
            "x".repeat(20_000 + count as usize % 7).into(),
        );
        store.save(&state).unwrap();
        println!("SAVED {count}");
    }
}

#[test]
fn a_kill_leaves_the_old_or_the_new_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(dir.path()).unwrap();
    let mut rng = fastrand::Rng::new();
    let mut last_acked = 0;
    for round in 0..30 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "checkpoint_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_save, saving) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("SAVED ").and_then(|n| n.parse().ok()) {
                    if last.is_none() {
                        let _ = first_save.send(());
                    }
                    last = Some(n);
                }
            }
            last
        });
        // Most kills land among the saves: after the first one, however long a loaded
        // machine takes to start the child. Every fifth lands blind, start-up included.
        if round % 5 != 0 {
            saving
                .recv_timeout(Duration::from_secs(30))
                .expect("the child saved no checkpoint in 30 s");
        }
        std::thread::sleep(Duration::from_micros(rng.u64(1_000..40_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some(acked) = reader.join().unwrap() {
            last_acked = acked;
        }
        let loaded = store.load().expect("the checkpoint is never corrupt");
        let count = loaded.and_then(|s| s.metrics_count).unwrap_or(0);
        assert!(
            count >= last_acked,
            "acknowledged checkpoint {last_acked} lost (found {count})"
        );
        last_acked = count;
    }
    assert!(last_acked > 0, "the child never saved a checkpoint");
}
