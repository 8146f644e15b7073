//! Crash loop: a child process records from several threads, flushing and reporting every
//! acknowledged flush, and is killed with SIGKILL at a random moment. The parent reopens the
//! directory and checks that every acknowledged record is there exactly once, that at most
//! the torn last line was discarded, that no valid record was dropped (each thread's records
//! form an unbroken prefix), and that records appended by later writers read back.
//!
//! `INVMETRICS_CRASH_KILLS` sets the number of kills (default 120, 40 per durability policy;
//! the long run in docs/RELIABILITY.md uses 2000), `INVMETRICS_CRASH_SEED` replays a run.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use invocation_metrics::{Durability, InvocationMetricsCollector, TailRepair};

const CHILD_DIR: &str = "INVMETRICS_CRASH_CHILD_DIR";
const CHILD_POLICY: &str = "INVMETRICS_CRASH_CHILD_POLICY";
const CHILD_GENERATION: &str = "INVMETRICS_CRASH_CHILD_GENERATION";
const THREADS: u64 = 4;
const RECORDS_PER_THREAD: u64 = 1000;
/// Kills per directory before starting a fresh one (keeps verification time bounded).
const KILLS_PER_DIR: u64 = 10;

fn policy(index: u64) -> Durability {
    match index % 3 {
        0 => Durability::Buffered,
        1 => Durability::Periodic(Duration::from_millis(5)),
        _ => Durability::Always,
    }
}

/// The child's body: runs only when the parent starts this test binary with `CHILD_DIR` set.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let policy_index: u64 = std::env::var(CHILD_POLICY).unwrap().parse().unwrap();
    let generation: u64 = std::env::var(CHILD_GENERATION).unwrap().parse().unwrap();
    let collector = Arc::new(
        InvocationMetricsCollector::builder(&dir)
            .durability(policy(policy_index))
            .open()
            .unwrap(),
    );
    println!("READY");
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let collector = Arc::clone(&collector);
            std::thread::spawn(move || {
                for seq in 0..RECORDS_PER_THREAD {
                    let id = format!("g{generation}-t{t}-{seq}");
                    collector.record(common::metric(id, seq)).unwrap();
                    if seq % 7 == 6 && collector.flush().is_ok() {
                        println!("ACK {t} {seq}");
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

/// Runs one child until a random moment, kills it, and returns the highest acknowledged
/// sequence number per thread.
fn run_and_kill(dir: &Path, generation: u64, rng: &mut fastrand::Rng) -> BTreeMap<u64, u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_POLICY, generation.to_string())
        .env(CHILD_GENERATION, generation.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = BTreeMap::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print "test crash_child ... " on the same line first.
            if line.ends_with("READY") {
                let _ = ready_tx.send(());
            } else if let Some(rest) = line.strip_prefix("ACK ") {
                let (t, seq) = rest.split_once(' ').unwrap();
                acked.insert(t.parse().unwrap(), seq.parse().unwrap());
            }
        }
        acked
    });
    // Mostly kill while recording; sometimes during start-up and tail repair.
    if rng.u8(..10) > 0 {
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
    }
    std::thread::sleep(Duration::from_micros(rng.u64(0..30_000)));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn acknowledged_records_survive_sigkill_exactly_once() {
    let kills: u64 = std::env::var("INVMETRICS_CRASH_KILLS").map_or(120, |k| k.parse().unwrap());
    let seed: u64 = std::env::var("INVMETRICS_CRASH_SEED")
        .map_or_else(|_| fastrand::u64(..), |s| s.parse().unwrap());
    eprintln!("crash loop: {kills} kills, seed {seed} (replay with INVMETRICS_CRASH_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let mut dir = tempfile::tempdir().unwrap();
    // Per generation in the current directory: records per thread that must stay forever.
    let mut kept: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    let (mut torn_tails, mut acked_total) = (0u64, 0u64);
    for generation in 0..kills {
        if generation % KILLS_PER_DIR == 0 {
            dir = tempfile::tempdir().unwrap();
            kept.clear();
        }
        let acked = run_and_kill(dir.path(), generation, &mut rng);

        let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
        torn_tails += u64::from(matches!(collector.tail_repair(), TailRepair::Cut { .. }));
        let report = collector.load_from_disk(0).unwrap();
        let context = format!(
            "generation {generation}, {:?}, seed {seed}",
            policy(generation)
        );
        assert_eq!(
            report.malformed, 0,
            "damage beyond the last line: {context}"
        );
        assert!(!report.torn_tail, "open repaired the tail: {context}");
        assert_eq!(report.duplicates, 0, "a record appears twice: {context}");

        let mut found: BTreeMap<u64, BTreeMap<u64, Vec<u64>>> = BTreeMap::new();
        let mut verified = Vec::new();
        for m in collector.get_all() {
            if let Some(g) = m.invocation_id.strip_prefix("verify-") {
                verified.push(g.parse::<u64>().unwrap());
                continue;
            }
            let mut parts = m.invocation_id[1..]
                .split(['-', 't'])
                .filter(|p| !p.is_empty());
            let g: u64 = parts.next().unwrap().parse().unwrap();
            let t: u64 = parts.next().unwrap().parse().unwrap();
            let seq: u64 = parts.next().unwrap().parse().unwrap();
            found.entry(g).or_default().entry(t).or_default().push(seq);
        }
        // Each earlier writer in this directory closed cleanly after its record: each is
        // there once, in order.
        let earlier: Vec<u64> = (generation - generation % KILLS_PER_DIR..generation).collect();
        assert_eq!(
            verified, earlier,
            "the verifying writers' records: {context}"
        );
        let current = found.remove(&generation).unwrap_or_default();
        for (t, seqs) in &current {
            let prefix: Vec<u64> = (0..seqs.len() as u64).collect();
            assert_eq!(
                seqs, &prefix,
                "thread {t} lost a record mid-sequence: {context}"
            );
        }
        for (t, seq) in &acked {
            let written = current.get(t).map_or(0, Vec::len) as u64;
            assert!(
                written > *seq,
                "thread {t} acked {seq} but only {written} survived: {context}"
            );
            acked_total += seq + 1;
        }
        for (g, threads) in &kept {
            let now: BTreeMap<u64, u64> = found
                .get(g)
                .map(|ts| ts.iter().map(|(t, s)| (*t, s.len() as u64)).collect())
                .unwrap_or_default();
            assert_eq!(
                &now, threads,
                "generation {g}'s records changed later: {context}"
            );
        }
        kept.insert(
            generation,
            current.iter().map(|(t, s)| (*t, s.len() as u64)).collect(),
        );

        // A new writer appends and reads back.
        collector
            .record(common::metric(format!("verify-{generation}"), 0))
            .unwrap();
        collector.close().unwrap();
    }
    eprintln!(
        "crash loop: {kills} kills survived, {acked_total} acknowledged records all present, {torn_tails} torn tails cut"
    );
}
