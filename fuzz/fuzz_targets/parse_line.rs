//! Any bytes as one line: parsing never panics, and a record that parses round-trips.
#![no_main]

use invocation_metrics::parse_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok(metric) = parse_line(line) {
        let again = metric.to_json_line();
        let back = parse_line(again.as_bytes()).expect("a serialized record parses");
        assert_eq!(back, metric);
        assert_eq!(back.to_json_line(), again);
    }
});
