//! Bad input gets a one-line message and exit code 2 (usage) or 1 (data), never a panic.

mod common;

use std::fs;
use std::io::Write;

use common::run;

fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning:") && !l.starts_with("note:"))
        .collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
    assert!(
        stderr.matches("os error").count() <= 1,
        "the operating system's error is said once: {stderr}"
    );
}

#[test]
fn missing_path_is_a_usage_error() {
    let (code, _, stderr) = run(&["summary", "no-such-file.jsonl"]);
    assert_eq!(code, 2);
    assert_one_line_error(&stderr, "no-such-file.jsonl: No such file or directory");
}

#[test]
fn directory_without_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(&["summary", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_one_line_error(
        &stderr,
        "holds no metrics: it has no invocations.jsonl (use -r",
    );
    let (code, _, stderr) = run(&["summary", "-r", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_one_line_error(&stderr, "no invocations.jsonl anywhere below it");
}

/// A device never ends (`/dev/zero`) or is not data: every reading command refuses it at
/// once instead of reading forever.
#[test]
fn a_device_is_refused_by_every_reader() {
    for command in [
        &["summary", "/dev/zero"][..],
        &["check", "/dev/zero"],
        &["report", "/dev/zero", "-o", "-"],
        &["repair", "/dev/zero"],
    ] {
        let (code, _, stderr) = run(command);
        assert_eq!(code, 2, "{command:?}: {stderr}");
        assert_one_line_error(
            &stderr,
            "/dev/zero is a character device, not a metrics file",
        );
    }
}

/// A metrics directory whose invocations.jsonl is a directory says so.
#[test]
fn a_metrics_file_that_is_a_directory_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("invocations.jsonl")).unwrap();
    let (code, _, stderr) = run(&["summary", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_one_line_error(
        &stderr,
        "invocations.jsonl is a directory, not a metrics file",
    );
}

#[test]
fn binary_and_empty_files_are_data_errors() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("binary.bin");
    fs::write(
        &binary,
        (0..=255u8).cycle().take(10_000).collect::<Vec<_>>(),
    )
    .unwrap();
    let (code, _, stderr) = run(&["summary", binary.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_one_line_error(&stderr, "no valid records");
    assert!(stderr.contains("is this a metrics file?"));

    let empty = dir.path().join("empty.jsonl");
    fs::write(&empty, b"").unwrap();
    let (code, _, stderr) = run(&["report", empty.to_str().unwrap(), "-o", "-"]);
    assert_eq!(code, 1);
    assert_one_line_error(&stderr, "the input is empty");
}

#[test]
fn a_gigabyte_line_without_newline_is_skipped_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jsonl");
    let mut content = fs::read(common::fixtures().join("small.jsonl")).unwrap();
    content.push(b'{');
    fs::write(&path, &content).unwrap();
    // Extend with a sparse gigabyte of NUL bytes: one enormous unterminated line.
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(content.len() as u64 + (1 << 30)).unwrap();
    let (code, stdout, stderr) = run(&["summary", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let agg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(agg["totalInvocations"], 10);
    // Unterminated, so it reads as a torn last line, as every reader calls it.
    assert!(
        stderr.contains("ignored the incomplete last line 11"),
        "{stderr}"
    );
    // With a newline after it, it is a damaged line in the middle.
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"\n")
        .unwrap();
    let (code, _, stderr) = run(&["summary", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("skipped 1 damaged line(s), first at line 11"),
        "{stderr}"
    );
}

/// Root reads any file, so as root (CI) the command runs as `nobody` through util-linux's
/// `setpriv`: the test means the same for every user.
#[test]
fn unreadable_file_is_a_data_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("secret.jsonl");
    fs::copy(common::fixtures().join("small.jsonl"), &path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let binary = env!("CARGO_BIN_EXE_invmetrics");
    let mut command = if fs::read(&path).is_ok() {
        let mut as_nobody = std::process::Command::new("setpriv");
        as_nobody.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
        as_nobody
    } else {
        std::process::Command::new(binary)
    };
    let output = command
        .args(["summary", path.to_str().unwrap()])
        .output()
        .expect("setpriv (util-linux) runs the check as an unprivileged user");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, "Permission denied");
}

#[test]
fn unknown_bucket_unit_is_a_usage_error() {
    let (code, _, stderr) = run(&["summary", "small.jsonl", "--bucket", "3w"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown unit \"w\""), "{stderr}");
    let (code, _, stderr) = run(&["summary", "small.jsonl", "--since", "yesterday"]);
    assert_eq!(code, 2);
    // The error lists the forms a person can type, not a parser's words.
    assert!(
        stderr.contains("cannot read \"yesterday\" as a time; use 2026-11-24"),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_pipe_exits_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_invmetrics"))
        .args(["report", "small.jsonl", "--format", "json", "-o", "-"])
        .current_dir(common::fixtures())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe closes here, like `| head -c1`.
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn an_absurd_duration_widens_the_buckets_instead_of_exhausting_memory() {
    // 570 years: at 1 ms buckets the span would need 1.8e13 of them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("invocations.jsonl");
    let line = |id: &str, duration: u64| {
        format!(
            r#"{{"invocationId":"{id}","agent":"a","phase":1,"durationMs":{duration},"tokens":1,"cost":0.1,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-24T09:00:01.953Z"}}"#
        )
    };
    fs::write(
        &file,
        format!(
            "{}\n{}\n",
            line("long", invocation_metrics::MAX_DURATION_MS),
            line("short", 1000)
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&[
        "summary",
        file.to_str().unwrap(),
        "--json",
        "--bucket",
        "1ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let aggregate: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let width = aggregate["bucketWidthMs"].as_u64().unwrap();
    assert!(
        stderr.contains(&format!("used {width} ms buckets")),
        "{stderr}"
    );
    assert!(width > 1_000_000, "{width}");
    assert_eq!(aggregate["peakParallelInvocations"], 2);
    let buckets = aggregate["parallelismOverTime"].as_array().unwrap().len();
    assert!((1..=100_000).contains(&buckets), "{buckets} buckets");
}

#[test]
fn a_demo_of_nothing_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("run");
    for flag in ["--records", "--threads"] {
        let (code, _, stderr) = run(&["demo", target.to_str().unwrap(), flag, "0"]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains("must be at least 1"), "{flag}: {stderr}");
        assert!(!target.exists(), "{flag}: nothing was created");
    }
}
