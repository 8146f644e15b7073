//! Helpers shared by the integration tests.
#![allow(dead_code)]

use invocation_metrics::{InvocationMetric, Timestamp};

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

/// The lines of a file, without newlines.
pub fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
