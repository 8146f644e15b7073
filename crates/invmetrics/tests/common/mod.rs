//! Helpers shared by the CLI tests.
#![allow(dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;

/// The committed fixtures directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `invmetrics`, run from the fixtures directory so paths in its output are short and stable.
pub fn invmetrics() -> Command {
    let mut cmd = Command::cargo_bin("invmetrics").unwrap();
    cmd.current_dir(fixtures());
    cmd
}

/// Runs `invmetrics` with `args` and returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    outcome(invmetrics().args(args).output().unwrap())
}

/// [`run`] with `stdin` as the standard input.
pub fn run_with_stdin(args: &[&str], stdin: impl Into<Vec<u8>>) -> (i32, String, String) {
    outcome(invmetrics().args(args).write_stdin(stdin).output().unwrap())
}

/// The fixture file `name`'s bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn outcome(output: std::process::Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
