//! Any bytes as one line: parsing never panics, the fast reader gives exactly what the
//! general serde path gives (the same record or the same error), and a record that parses
//! round-trips through its line.
#![no_main]

use invocation_metrics::{parse_line, parse_line_general};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let parsed = parse_line(line);
    assert_eq!(parsed, parse_line_general(line));
    if let Ok(metric) = parsed {
        let again = metric.to_json_line();
        let back = parse_line(again.as_bytes()).expect("a serialized record parses");
        assert_eq!(back, metric);
        assert_eq!(back.to_json_line(), again);
    }
});
