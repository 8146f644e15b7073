//! `record_json`: a metric given as JSON text is recorded exactly as the same metric given
//! as a value — whatever its key order or dialect, and whatever the record read before it on
//! the same thread left in the reused buffer.

mod common;

use invocation_metrics::{Error, FleetEvent, InvocationMetricsCollector, parse_line};

/// Lines of one thread, in order: optional fields set, then absent, then set again, in
/// other key orders and spellings, so that a field left over from the previous record
/// would show.
const LINES: [&str; 4] = [
    r#"{"invocationId":"a","agent":"coder","phase":1,"taskId":"t1","durationMs":10,"tokens":5,"inputTokens":3,"outputTokens":2,"cachedTokens":1,"cost":0.5,"exitCode":1,"success":false,"attempt":2,"outputParsed":false,"model":"m1","tier":"high","timestamp":"2026-11-27T10:00:00.000Z","errorClass":"timeout"}"#,
    r#"{"timestamp":"2026-11-27T10:00:01Z", "success":true, "agent":"planner", "invocationId":"b", "phase":2, "durationMs":20, "tokens":7, "cost":0, "exitCode":0, "attempt":1, "outputParsed":true}"#,
    r#"{"invocationId":"c","agentType":"reviewer","phase":3,"durationMs":30,"tokensTotal":9,"costUsd":0.25,"status":"failed","attemptNumber":1,"startTime":"2026-11-27T10:00:02Z"}"#,
    r#"{"invocationId":"d","agent":"caf\u00e9 \"x\"","phase":1,"durationMs":40,"tokens":1,"cost":0.1,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"model":"m2","timestamp":"2026-11-27T10:00:03.5+02:00"}"#,
];

#[test]
fn records_from_json_are_the_records_the_lines_hold() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let mut events = collector.subscribe();
    for line in LINES {
        collector.record_json(line.as_bytes()).unwrap();
    }
    let expected: Vec<_> = LINES
        .iter()
        .map(|line| parse_line(line.as_bytes()).unwrap())
        .collect();
    assert_eq!(collector.get_all(), expected);
    // The event carries the record too, though the collector only borrowed it.
    for want in &expected {
        match events.try_recv() {
            Ok(FleetEvent::MetricRecorded(got)) => assert_eq!(&*got, want),
            other => panic!("expected the record's event, got {other:?}"),
        }
    }
    collector.close().unwrap();

    // And the file holds the same records, in the canonical spelling.
    let reopened = InvocationMetricsCollector::open(dir.path()).unwrap();
    reopened.load_from_disk(0).unwrap();
    assert_eq!(reopened.get_all(), expected);
}

#[test]
fn bad_json_is_refused_naming_the_field_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    collector.record_json(LINES[0].as_bytes()).unwrap();
    let cases = [
        (&LINES[1].replace(" \"phase\":2,", "") as &str, "phase"),
        (
            &LINES[1].replace("\"durationMs\":20", "\"durationMs\":\"20\""),
            "durationMs",
        ),
        (&LINES[1].replace("\"tokens\":7", "\"tokens\":-7"), "tokens"),
        (
            &LINES[1].replace("2026-11-27T10:00:01Z", "yesterday"),
            "timestamp",
        ),
        ("not json", "JSON"),
        // The id of the record already held.
        (LINES[0], "invocationId"),
    ];
    for (line, field) in cases {
        let err = collector.record_json(line.as_bytes()).unwrap_err();
        assert!(
            matches!(err, Error::Line(_) | Error::Invalid(_)),
            "{line}: {err:?}"
        );
        assert!(err.to_string().contains(field), "{line}: {err}");
    }
    assert_eq!(collector.get_count(), 1);
    // A refused line leaves nothing behind for the next one on the thread.
    collector.record_json(LINES[1].as_bytes()).unwrap();
    assert_eq!(
        collector.get_all()[1],
        parse_line(LINES[1].as_bytes()).unwrap()
    );
    collector.close().unwrap();
}
