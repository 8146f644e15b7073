//! `export otlp` against a scripted local receiver: retries on "try later", headers and
//! resource attributes, one-line errors, and `--follow` resuming from its cursor.

mod common;

use std::collections::BTreeSet;

use common::{ScriptedReceiver, run};

#[test]
fn every_record_arrives_once_after_the_receiver_says_try_later() {
    let receiver = ScriptedReceiver::start(vec![(429, "Retry-After: 0\r\n"), (503, "")]);
    let (code, stdout, stderr) = common::run_with_env(
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Basic%20dXNlcg%3D%3D",
            ),
            // Proxies from the environment are not used: the batch goes to the receiver.
            ("HTTP_PROXY", "http://127.0.0.1:9"),
            ("ALL_PROXY", "http://127.0.0.1:9"),
        ],
        &[
            "export",
            "otlp",
            "small.jsonl",
            "--endpoint",
            &receiver.url,
            "--header",
            "x-tenant=team-a",
            "--resource",
            "deployment.environment=test",
            "--protocol",
            "http/json",
            "--signals",
            "traces",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout
            .contains("exported 10 record(s) as 10 span(s) and 0 metric point(s) in 1 request(s)")
            && stdout.contains("(2 retries)"),
        "{stdout}"
    );
    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "two refusals, then the batch");
    let (head, body) = &requests[2];
    assert!(head.starts_with("POST /v1/traces "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-tenant: team-a"),
        "{head}"
    );
    // From the environment, percent-decoded as the specification says.
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: basic dxnlcg=="),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    let resource = body["resourceSpans"][0]["resource"]["attributes"].to_string();
    assert!(resource.contains("service.name") && resource.contains("deployment.environment"));
    let ids = receiver.span_ids();
    // The same batch three times, each time the same span ids.
    assert_eq!(ids.len(), 30);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 10);
    assert_eq!(ids[..10], ids[20..]);
}

#[test]
fn an_unreachable_receiver_is_a_one_line_error_and_bad_options_are_usage_errors() {
    let (code, _, stderr) = run(&[
        "export",
        "otlp",
        "small.jsonl",
        "--endpoint",
        "http://127.0.0.1:9",
        "--timeout",
        "1s",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("did not take the batch: ") && stderr.contains("would pass the 1s budget"),
        "{stderr}"
    );
    for (flag, value, message) in [
        ("--endpoint", "localhost:4318", "must be an http:// URL"),
        ("--protocol", "grpc", "is not built in"),
        ("--protocol", "http/xml", "unknown protocol"),
        ("--signals", "traces,logs", "unknown signal \"logs\""),
    ] {
        let (code, _, stderr) = run(&["export", "otlp", "small.jsonl", flag, value]);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
    // A refusal that retrying cannot change is final.
    let receiver = ScriptedReceiver::start(vec![(400, "")]);
    let (code, _, stderr) = run(&["export", "otlp", "small.jsonl", "--endpoint", &receiver.url]);
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the batch: HTTP 400"), "{stderr}");
    // A long answer is quoted from its start, cut on a character, not dropped.
    let long = format!("{{\"error\":\"bad span{}\"}}", "é".repeat(40_000)).leak();
    let receiver = ScriptedReceiver::start_replying(vec![(400, "")], long);
    let (code, _, stderr) = run(&["export", "otlp", "small.jsonl", "--endpoint", &receiver.url]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("HTTP 400: {\"error\":\"bad spanéé"),
        "{stderr}"
    );
    assert!(stderr.len() < 1000, "{stderr}");
}

/// `--follow` exports what a collector appends, keeps its cursor, and a second run starts
/// where the first stopped: nothing twice, nothing missing.
#[test]
fn follow_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    let write = |from: u64, to: u64| {
        let collector = invocation_metrics::InvocationMetricsCollector::open(dir.path()).unwrap();
        collector.load_from_disk(0).unwrap();
        for i in from..to {
            let start =
                invocation_metrics::Timestamp::from_unix_ms(1_795_510_800_000 + i as i64).unwrap();
            collector
                .record(invocation_metrics::InvocationMetric::new(
                    format!("f-{i}"),
                    "a",
                    1,
                    start,
                ))
                .unwrap();
        }
        collector.close().unwrap();
    };
    write(0, 25);
    let receiver = ScriptedReceiver::start(vec![]);
    let follow = |url: &str| {
        run(&[
            "export",
            "otlp",
            "--follow",
            &dir_arg,
            "--endpoint",
            url,
            "--batch",
            "10",
            "--idle-exit",
            "300ms",
        ])
    };
    let (code, stdout, stderr) = follow(&receiver.url);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("exported 25 record(s)") && stdout.contains("the cursor is past record 25"),
        "{stdout}"
    );
    let cursor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("export-otlp.cursor")).unwrap())
            .unwrap();
    assert_eq!(cursor["records"], 25);
    assert_eq!(
        cursor["offset"],
        std::fs::metadata(dir.path().join("invocations.jsonl"))
            .unwrap()
            .len()
    );

    write(25, 40);
    let (code, stdout, stderr) = follow(&receiver.url);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("exported 15 record(s) as 15 span(s)") && stdout.contains("past record 40"),
        "{stdout}"
    );
    let ids = receiver.span_ids();
    assert_eq!(ids.len(), 40);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        40,
        "nothing twice"
    );
    // The metrics are cumulative across the restart: the second run read the first run's
    // records back (without sending them) before adding its own.
    let invocations = |request: &invocation_metrics::otlp::wire::MetricsRequest| -> i64 {
        use invocation_metrics::otlp::wire::{Data, Number};
        request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .filter(|m| m.name == "invocation_metrics.invocations")
            .flat_map(|m| match &m.data {
                Some(Data::Sum(sum)) => sum.data_points.clone(),
                _ => vec![],
            })
            .map(|p| match p.value {
                Some(Number::AsInt(n)) => n,
                other => panic!("{other:?}"),
            })
            .sum()
    };
    let totals: Vec<i64> = receiver.metric_requests().iter().map(invocations).collect();
    assert_eq!(
        totals,
        [10, 20, 25, 35, 40],
        "one metrics request per span batch"
    );
}

/// A receiver without a metrics endpoint (404 there) still gets every span; the exporter
/// says it sends spans only, and does not fail.
#[test]
fn a_receiver_for_traces_only_still_gets_the_spans() {
    let receiver = ScriptedReceiver::start(vec![(200, ""), (404, "")]);
    let (code, stdout, stderr) =
        run(&["export", "otlp", "small.jsonl", "--endpoint", &receiver.url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("takes no metrics there"), "{stderr}");
    assert!(
        stdout.contains("as 10 span(s) and 0 metric point(s)"),
        "{stdout}"
    );
    assert_eq!(receiver.span_ids().len(), 10);
}

/// An OTLP partial success (a 200 that says some spans were dropped) is counted and said.
#[test]
fn a_partial_success_is_reported() {
    let receiver = ScriptedReceiver::start_replying(
        vec![],
        r#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"too old"}}"#,
    );
    let (code, stdout, stderr) = run(&[
        "export",
        "otlp",
        "small.jsonl",
        "--endpoint",
        &receiver.url,
        "--protocol",
        "http/json",
        "--signals",
        "traces",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("dropped part of a request") && stderr.contains("too old"),
        "{stderr}"
    );
    assert!(stdout.contains("the receiver dropped 3"), "{stdout}");
}
