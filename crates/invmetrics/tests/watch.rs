//! `watch`: one frame with `--once`, and the live view in a real terminal (tmux) while a
//! collector writes, through a truncation, until `q`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::run;
use invocation_metrics::{InvocationMetric, InvocationMetricsCollector, Timestamp};

#[test]
fn once_prints_one_frame_of_what_the_file_holds() {
    let (code, out, stderr) = run(&["watch", "small.jsonl", "--once"]);
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "10 records",
        "cost $0.4004",
        "failures 3 (30.0%)",
        "retries 3",
        "coder ",
        "failed (rate-limit), attempt 1",
        "succeeded on attempt 2",
        "slowest of the last 10 records",
        "6.0 s  coder  t1",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    assert!(!out.contains('\x1b'), "no terminal codes in --once output");
    let (code, _, stderr) = run(&["watch", "small.jsonl"]);
    assert_eq!(code, 1, "without a terminal, only --once: {stderr}");
    assert!(stderr.contains("--once"), "{stderr}");
}

fn record(dir: &Path, from: u64, to: u64) {
    let collector = InvocationMetricsCollector::open(dir).unwrap();
    collector.load_from_disk(0).unwrap();
    for i in from..to {
        let start = Timestamp::from_unix_ms(1_795_510_800_000 + i as i64 * 1000).unwrap();
        let mut m = InvocationMetric::new(
            format!("w-{i}"),
            ["planner", "coder"][i as usize % 2],
            1,
            start,
        );
        m.duration_ms = 5_000;
        m.cost = 0.5;
        m.task_id = Some(format!("t{i}"));
        if i % 7 == 0 {
            m.success = false;
            m.error_class = Some("timeout".into());
        }
        collector.record(m).unwrap();
    }
    collector.close().unwrap();
}

/// A tmux server of the test's own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "watch"]).stdout)
            .into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("{text:?} to show"), |screen| screen.contains(text))
    }

    /// The screen once `done` holds for it; fails after 15 s, saying what it waited for.
    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited in vain for {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn the_live_view_follows_a_writer_survives_truncation_and_quits_on_q() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have tmux (.ci/run installs it)"
        );
        eprintln!("SKIPPED: no tmux on this machine (apt-get install tmux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), 0, 50);
    let tmux = Tmux {
        socket: format!("invmetrics-watch-{}", std::process::id()),
    };
    let command = format!(
        "{} watch {} --every 200ms",
        env!("CARGO_BIN_EXE_invmetrics"),
        dir.path().display()
    );
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "watch",
        "-x",
        "140",
        "-y",
        "45",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let screen = tmux.wait_for("50 records");
    assert!(
        screen.contains("(q quits)") && screen.contains("planner"),
        "{screen}"
    );
    assert!(screen.contains("failed (timeout), attempt 1"), "{screen}");

    // A writer appends: the view follows.
    record(dir.path(), 50, 80);
    tmux.wait_for("80 records");

    // The file is cut back (as a repair might): the view says so and starts again.
    let path = dir.path().join("invocations.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let first_ten: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, first_ten).unwrap();
    let screen = tmux.wait_for("10 records");
    assert!(screen.contains("the file shrank"), "{screen}");

    // A smaller window redraws to fit it.
    tmux.run(&["resize-window", "-t", "watch", "-x", "60", "-y", "12"]);
    // Waited for, not slept on: a loaded machine may take its time to redraw.
    tmux.wait_until("a redraw within 60 columns", |screen| {
        let widest = screen.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        widest <= 60 && screen.contains("failures 2 (20.0%)")
    });

    tmux.run(&["send-keys", "-t", "watch", "q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.run(&["has-session", "-t", "watch"]).status.success() {
        assert!(Instant::now() < deadline, "q did not quit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
