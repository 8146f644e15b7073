//! Power cut: a child process records from two threads, acknowledges flushes and saves
//! checkpoints, and is killed with SIGKILL. The parent then makes the metrics file look as
//! the disk could after a power cut at that moment — every byte an `fsync`/`fdatasync`
//! covered kept, a random part of what was only written kept (sometimes as zeros, as a
//! file system that had allocated the block but not written it leaves it) — and checks
//! the promises:
//!
//! - with [`Durability::Always`], every acknowledged record survives;
//! - under every policy, a checkpoint saved by `checkpoint()` never counts more records
//!   than survived, and the records it counts are exactly the ones it counted;
//! - records that were in the file before the run (synced by the open) all survive.
//!
//! What was synced is learned from `power_cut/sync_log.c`, a small `LD_PRELOAD` shim
//! (built here with the system C compiler) that logs the file's size after each successful
//! sync. `the_harness_catches_a_checkpoint_saved_without_a_sync` shows the check fails for
//! the old flow (`flush()` then `CheckpointStore::save`).
//!
//! `INVMETRICS_POWER_CUTS` sets the number of cuts (default 24, 6 per policy);
//! `INVMETRICS_POWER_CUT_SEED` replays a run.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use invocation_metrics::{
    CheckpointState, CheckpointStore, Durability, InvocationMetricsCollector, METRICS_FILE_NAME,
};

const CHILD_DIR: &str = "INVMETRICS_POWER_CUT_CHILD_DIR";
const CHILD_POLICY: &str = "INVMETRICS_POWER_CUT_CHILD_POLICY";
const CHILD_ROUND: &str = "INVMETRICS_POWER_CUT_CHILD_ROUND";
/// Set to make the child checkpoint the old way: `flush()`, then `CheckpointStore::save`.
const CHILD_SKIP_SYNC: &str = "INVMETRICS_POWER_CUT_CHILD_SKIP_SYNC";
/// Set to make the child checkpoint right after restoring the history, then pause before
/// recording (an orchestrator that saves its state on resume and plans its next phase).
const CHILD_CHECKPOINT_FIRST: &str = "INVMETRICS_POWER_CUT_CHILD_CHECKPOINT_FIRST";
const SYNC_LOG: &str = "INVMETRICS_SYNC_LOG";
const THREADS: u64 = 2;
const RECORDS_PER_THREAD: u64 = 1500;
/// Records between two checkpoints of thread 0.
const CHECKPOINT_EVERY: u64 = 40;
/// Cuts per directory before starting a fresh one (keeps each round's reads short).
const CUTS_PER_DIR: u64 = 8;

fn policy(index: u64) -> Durability {
    match index % 4 {
        0 => Durability::Buffered,
        1 => Durability::Periodic(Duration::from_millis(5)),
        2 => Durability::Periodic(Duration::from_secs(3600)),
        _ => Durability::Always,
    }
}

/// The child's body: runs only when the parent starts this test binary with `CHILD_DIR` set.
#[test]
fn power_cut_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let policy = policy(std::env::var(CHILD_POLICY).unwrap().parse().unwrap());
    let round: u64 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let skip_sync = std::env::var_os(CHILD_SKIP_SYNC).is_some();
    let collector = Arc::new(
        InvocationMetricsCollector::builder(dir.join("metrics"))
            .durability(policy)
            .open()
            .unwrap(),
    );
    let store = CheckpointStore::new(dir.join("checkpoint")).unwrap();
    // The resume flow: restore the whole history, so the count covers it.
    collector.load_from_disk(0).unwrap();
    println!("READY");
    if std::env::var_os(CHILD_CHECKPOINT_FIRST).is_some() {
        let saved = collector
            .checkpoint(&store, CheckpointState::default())
            .unwrap();
        println!("CKPT {}", saved.metrics_count.unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (collector, store) = (Arc::clone(&collector), store.clone());
            std::thread::spawn(move || {
                for seq in 0..RECORDS_PER_THREAD {
                    let id = format!("r{round}-t{t}-{seq}");
                    collector.record(common::metric(id, seq)).unwrap();
                    if seq % 5 == 4 && collector.flush().is_ok() {
                        println!("ACK {t} {seq}");
                    }
                    if t == 0 && seq % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
                        let saved = if skip_sync {
                            collector.flush().unwrap();
                            let state = CheckpointState {
                                metrics_count: Some(collector.get_count() as u64),
                                ..CheckpointState::default()
                            };
                            store.save(&state).unwrap();
                            state
                        } else {
                            collector
                                .checkpoint(&store, CheckpointState::default())
                                .unwrap()
                        };
                        println!("CKPT {}", saved.metrics_count.unwrap());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Wait to be killed, so every run ends the same way.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// What the child said before it was killed.
#[derive(Debug, Default)]
struct ChildReport {
    /// Per thread, the highest acknowledged sequence number.
    acked: Vec<Option<u64>>,
    /// Checkpoints saved, in order.
    checkpoints: Vec<u64>,
}

/// How one round is run.
struct Round {
    number: u64,
    policy: u64,
    skip_sync: bool,
    /// Kill only after the child has saved a checkpoint.
    after_checkpoint: bool,
    /// The child checkpoints before recording anything.
    checkpoint_first: bool,
    kill_after: Duration,
}

/// Runs the child until `round.kill_after` past its start (or its first checkpoint), kills
/// it, and returns what it acknowledged.
fn run_and_kill(dir: &Path, sync_log: &Path, round: &Round) -> ChildReport {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "power_cut_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_POLICY, round.policy.to_string())
        .env(CHILD_ROUND, round.number.to_string())
        .env("LD_PRELOAD", common::sync_shim())
        .env(SYNC_LOG, sync_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if round.skip_sync {
        command.env(CHILD_SKIP_SYNC, "1");
    }
    if round.checkpoint_first {
        command.env(CHILD_CHECKPOINT_FIRST, "1");
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let after_checkpoint = round.after_checkpoint;
    let reader = std::thread::spawn(move || {
        let mut report = ChildReport {
            acked: vec![None; THREADS as usize],
            ..ChildReport::default()
        };
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print "test power_cut_child ... " on the same line first.
            if line.ends_with("READY") && !after_checkpoint {
                let _ = ready_tx.send(());
            } else if let Some(rest) = line.strip_prefix("ACK ") {
                let (t, seq) = rest.split_once(' ').unwrap();
                report.acked[t.parse::<usize>().unwrap()] = Some(seq.parse().unwrap());
            } else if let Some(count) = line.strip_prefix("CKPT ") {
                report.checkpoints.push(count.parse().unwrap());
                let _ = ready_tx.send(());
            }
        }
        report
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the child never became ready");
    std::thread::sleep(round.kill_after);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

/// The length of `file` the last logged sync covered; 0 if none did (then nothing the run
/// did, nor the file it found, is known to be on disk).
fn synced_len(sync_log: &Path, file: &Path) -> u64 {
    let file = std::fs::canonicalize(file).unwrap();
    let log = std::fs::read_to_string(sync_log).unwrap_or_default();
    log.lines()
        .rev()
        .filter_map(|line| line.split_once(' '))
        .find(|(_, path)| Path::new(path) == file)
        .map(|(size, _)| size.parse::<u64>().unwrap())
        .unwrap_or(0)
}

/// Makes `file` what a power cut could leave: the synced prefix, then a random part of the
/// rest, sometimes nothing of it and sometimes partly zeros. Returns the bytes kept past
/// the synced prefix.
fn cut_power(file: &Path, synced: u64, rng: &mut fastrand::Rng) -> u64 {
    let mut bytes = std::fs::read(file).unwrap();
    let synced = synced as usize;
    assert!(synced <= bytes.len(), "a sync covered more than the file");
    let unsynced = bytes.len() - synced;
    let kept = match rng.u8(..4) {
        0 => 0,
        1 => unsynced,
        _ => rng.usize(..=unsynced),
    };
    bytes.truncate(synced + kept);
    if kept > 0 && rng.bool() {
        let start = synced + rng.usize(..kept);
        let end = start + rng.usize(1..=(synced + kept - start));
        bytes[start..end].fill(0);
    }
    std::fs::write(file, &bytes).unwrap();
    kept as u64
}

/// The `invocationId`s of the valid records in `dir/metrics`, in file order, as a new
/// writer opening the directory after the power cut finds them.
fn surviving_ids(dir: &Path) -> Vec<String> {
    let collector = InvocationMetricsCollector::open(dir.join("metrics")).unwrap();
    collector.load_from_disk(0).unwrap();
    collector
        .get_all()
        .into_iter()
        .map(|m| m.invocation_id)
        .collect()
}

/// Checks the promises after a cut. `before` are the ids the file held when the round began.
fn check_promises(
    dir: &Path,
    round: &Round,
    child: &ChildReport,
    before: &[String],
    now: &[String],
) -> Result<(), String> {
    if now.len() < before.len() || now[..before.len()] != *before {
        return Err(format!(
            "records that were in the file before the run were lost ({} before, {} now)",
            before.len(),
            now.len()
        ));
    }
    if policy(round.policy) == Durability::Always {
        let present: HashSet<&str> = now.iter().map(String::as_str).collect();
        for (t, acked) in child.acked.iter().enumerate() {
            for seq in 0..acked.map_or(0, |last| last + 1) {
                let id = format!("r{}-t{t}-{seq}", round.number);
                if !present.contains(id.as_str()) {
                    return Err(format!("acknowledged record {id} was lost"));
                }
            }
        }
    }
    let checkpoint = CheckpointStore::new(dir.join("checkpoint"))
        .unwrap()
        .load()
        .unwrap()
        .and_then(|s| s.metrics_count)
        .unwrap_or(0);
    if checkpoint > now.len() as u64 {
        return Err(format!(
            "the checkpoint counts {checkpoint} records, but only {} survived",
            now.len()
        ));
    }
    let resumed = InvocationMetricsCollector::open(dir.join("metrics"))
        .unwrap()
        .load_from_disk(checkpoint as usize)
        .unwrap();
    if resumed.missing != 0 {
        return Err(format!(
            "resuming from the checkpoint misses {} records",
            resumed.missing
        ));
    }
    // The records a checkpoint of this round counted are the history and then this
    // round's own, none from the part the cut took.
    if child.checkpoints.last() == Some(&checkpoint) && checkpoint as usize >= before.len() {
        let own = format!("r{}-", round.number);
        if let Some(stray) = now[before.len()..checkpoint as usize]
            .iter()
            .find(|id| !id.starts_with(&own))
        {
            return Err(format!("the checkpoint counts a stray record {stray}"));
        }
    }
    Ok(())
}

#[test]
fn a_power_cut_keeps_synced_records_and_checkpoints_never_run_ahead() {
    let cuts: u64 = std::env::var("INVMETRICS_POWER_CUTS").map_or(24, |k| k.parse().unwrap());
    let seed: u64 = std::env::var("INVMETRICS_POWER_CUT_SEED")
        .map_or_else(|_| fastrand::u64(..), |s| s.parse().unwrap());
    eprintln!("power cut: {cuts} cuts, seed {seed} (replay with INVMETRICS_POWER_CUT_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let logs = tempfile::tempdir().unwrap();

    let mut dir = tempfile::tempdir().unwrap();
    let mut before: Vec<String> = Vec::new();
    let (mut checkpoints, mut acked, mut unsynced_kept, mut survived) = (0, 0, 0, 0);
    for number in 0..cuts {
        if number % CUTS_PER_DIR == 0 {
            dir = tempfile::tempdir().unwrap();
            before.clear();
        }
        let round = Round {
            number,
            policy: number,
            skip_sync: false,
            after_checkpoint: rng.bool(),
            checkpoint_first: rng.u8(..3) == 0,
            kill_after: Duration::from_micros(rng.u64(0..30_000)),
        };
        let sync_log = logs.path().join(format!("sync-{number}.log"));
        let child = run_and_kill(dir.path(), &sync_log, &round);
        let file = dir.path().join("metrics").join(METRICS_FILE_NAME);
        unsynced_kept += cut_power(&file, synced_len(&sync_log, &file), &mut rng);
        let now = surviving_ids(dir.path());
        if let Err(broken) = check_promises(dir.path(), &round, &child, &before, &now) {
            panic!(
                "round {number}, {:?}, seed {seed}: {broken}",
                policy(round.policy)
            );
        }
        checkpoints += child.checkpoints.len();
        acked += child.acked.iter().flatten().map(|seq| seq + 1).sum::<u64>();
        survived += now.len() - before.len();
        before = now;
    }
    assert!(checkpoints > 0, "no round saved a checkpoint");
    eprintln!(
        "power cut: {cuts} cuts, {checkpoints} checkpoints and {acked} acknowledged records checked, \
         {survived} records survived, {unsynced_kept} unsynced bytes kept; 0 lost"
    );
}

/// The old resume flow — `flush()`, then `CheckpointStore::save` with `get_count()` —
/// under a policy that has not synced yet: the same check must catch the checkpoint
/// running ahead of the file, or the harness proves nothing.
#[test]
fn the_harness_catches_a_checkpoint_saved_without_a_sync() {
    let logs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let round = Round {
        number: 0,
        policy: 2, // Periodic(1 h): nothing after the open is synced.
        skip_sync: true,
        after_checkpoint: true,
        checkpoint_first: false,
        kill_after: Duration::ZERO,
    };
    let sync_log = logs.path().join("sync.log");
    let child = run_and_kill(dir.path(), &sync_log, &round);
    let file = dir.path().join("metrics").join(METRICS_FILE_NAME);
    // The harshest cut: nothing unsynced survives.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(synced_len(&sync_log, &file) as usize);
    std::fs::write(&file, bytes).unwrap();
    let now = surviving_ids(dir.path());
    let verdict = check_promises(dir.path(), &round, &child, &[], &now);
    let broken = verdict.expect_err("a checkpoint saved without a sync passed the check");
    assert!(broken.contains("the checkpoint counts"), "{broken}");
}
