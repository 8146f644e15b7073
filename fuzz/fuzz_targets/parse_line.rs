//! Any bytes as one line: parsing never panics, a record that parses round-trips, and a
//! native line is read exactly as the general serde parser reads it (the fast path for the
//! writer's own layout must never disagree).
#![no_main]

use invocation_metrics::{Dialect, InvocationMetric, parse_line, parse_line_with_dialect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok((metric, Dialect::Native)) = parse_line_with_dialect(line) {
        // What the parser ignores around the JSON: a trailing CR and a leading byte order mark.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        let general: InvocationMetric =
            serde_json::from_slice(line).expect("the general parser accepts it too");
        assert_eq!(general, metric);
    }
    if let Ok(metric) = parse_line(line) {
        let again = metric.to_json_line();
        let back = parse_line(again.as_bytes()).expect("a serialized record parses");
        assert_eq!(back, metric);
        assert_eq!(back.to_json_line(), again);
    }
});
