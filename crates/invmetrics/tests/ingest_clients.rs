//! The ingest client the README gives for Python, run as written against the real binary:
//! records go in, refusals come back by line, the acknowledged records are in the file.

use std::path::Path;
use std::process::Command;

/// The body of the README's code block in `language` that holds `marker`.
fn readme_block(language: &str, marker: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let fence = format!("```{language}\n");
    readme
        .split(&fence)
        .skip(1)
        .map(|rest| &rest[..rest.find("```").unwrap_or(rest.len())])
        .find(|body| body.contains(marker))
        .unwrap_or_else(|| panic!("no {language} block with {marker:?} in the README"))
        .to_owned()
}

#[test]
fn the_readme_python_client_records_and_reports_refusals() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("client.py"),
        readme_block("python", "def ingest("),
    )
    .unwrap();
    let driver = r#"
import sys
from client import ingest
good = dict(invocationId="py-1", agent="coder", phase=1, durationMs=10, tokens=5, cost=0.01,
            exitCode=0, success=True, attempt=1, outputParsed=True,
            timestamp="2026-11-27T10:00:00Z")
result = ingest(sys.argv[1], [good, dict(good, invocationId="py-2", cost=-1), good,
                              dict(good, invocationId="py-3")])
print(result["acked"], result["lines"], sorted(result["rejected"]))
print(result["rejected"][2])
"#;
    std::fs::write(dir.path().join("driver.py"), driver).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_invmetrics"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let metrics = dir.path().join("metrics");
    let output = Command::new("python3")
        .arg("driver.py")
        .arg(&metrics)
        .current_dir(dir.path())
        .env("PATH", path)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("2 4 [2, 3]"));
    assert_eq!(
        lines.next(),
        Some("cost: must be a finite number >= 0, got -1")
    );
    let file = std::fs::read_to_string(metrics.join("invocations.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 2);
}
