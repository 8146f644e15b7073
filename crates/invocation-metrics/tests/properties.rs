//! Properties over generated data: reading never panics and finds exactly the valid lines,
//! records round-trip through their JSON line, and the aggregate — incremental, merged from
//! chunks, or computed by a plain reference implementation of the definitions — is the same.

use std::collections::BTreeMap;

use invocation_metrics::{
    AggregateOptions, InvocationMetric, InvocationMetricsCollector, METRICS_FILE_NAME,
    MetricsAccumulator, Timestamp, parse_line, read_records,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("planner".to_owned()),
        Just("coder".to_owned()),
        Just("<script>é\u{1b}".to_owned()),
        "[a-z]{1,8}",
    ]
}

prop_compose! {
    fn metric()(
        id in "[a-zA-Z0-9-]{1,12}",
        agent in name(),
        phase in 0u32..4,
        task in prop::option::of(prop_oneof![Just("t1".to_owned()), Just("t2".to_owned())]),
        duration_ms in prop_oneof![Just(0u64), 0u64..3000],
        tokens in any::<u32>(),
        io in prop::option::of((any::<u32>(), any::<u32>(), any::<u32>())),
        cost in prop_oneof![Just(0.0f64), 0.0f64..1e6],
        exit_code in any::<i32>(),
        success in any::<bool>(),
        attempt in 1u32..4,
        output_parsed in any::<bool>(),
        model in prop::option::of(name()),
        tier in prop::option::of(prop_oneof![Just("normal".to_owned()), Just("premium".to_owned())]),
        start_ms in 0i64..6000,
        offset_minutes in -720i32..720,
        error_class in prop::option::of(prop_oneof![Just("rate-limit".to_owned()), Just("timeout".to_owned())]),
    ) -> InvocationMetric {
        let utc = Timestamp::from_unix_ms(1_764_000_000_000 + start_ms).unwrap().as_offset_date_time();
        let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
        InvocationMetric {
            invocation_id: id,
            agent,
            phase,
            task_id: task,
            duration_ms,
            tokens: u64::from(tokens),
            input_tokens: io.map(|v| u64::from(v.0)),
            output_tokens: io.map(|v| u64::from(v.1)),
            cached_tokens: io.map(|v| u64::from(v.2)),
            cost,
            exit_code,
            success,
            attempt,
            output_parsed,
            model,
            tier,
            timestamp: utc.to_offset(offset).into(),
            error_class,
        }
    }
}

/// A file of valid lines, garbage lines, blank lines and CRLF endings, possibly torn.
fn file_content() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        3 => metric().prop_map(|m| m.to_json_line().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..60),
        1 => Just(b"   ".to_vec()),
        1 => metric().prop_map(|m| { let l = m.to_json_line(); l.as_bytes()[..l.len() / 2].to_vec() }),
    ];
    (
        prop::collection::vec((line, any::<bool>()), 0..20),
        any::<bool>(),
    )
        .prop_map(|(lines, terminated)| {
            let mut out = Vec::new();
            let count = lines.len();
            for (i, (line, crlf)) in lines.into_iter().enumerate() {
                out.extend(line);
                if i + 1 < count || terminated {
                    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                }
            }
            out
        })
}

/// The records a file holds by the format's rules, found the plain way.
fn reference_records(content: &[u8]) -> Vec<InvocationMetric> {
    content
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .filter_map(|line| parse_line(line).ok())
        .collect()
}

/// The seed's definitions, implemented as plainly as possible.
fn reference_aggregate(
    records: &[InvocationMetric],
    width: i64,
    base_tier: &str,
) -> serde_json::Value {
    let mut by_agent: BTreeMap<&str, u64> = BTreeMap::new();
    let mut retries_by_agent: BTreeMap<&str, u64> = BTreeMap::new();
    for m in records {
        *by_agent.entry(&m.agent).or_default() += 1;
        *retries_by_agent.entry(&m.agent).or_default() += u64::from(m.attempt > 1);
    }
    let infra = records
        .iter()
        .filter(|m| m.attempt > 1 && m.task_id.is_some())
        .filter(|m| {
            records.iter().any(|p| {
                p.agent == m.agent
                    && p.phase == m.phase
                    && p.task_id == m.task_id
                    && p.attempt == m.attempt - 1
                    && p.error_class.is_some()
            })
        })
        .count();
    let running_at = |t: i64| {
        records
            .iter()
            .filter(|m| m.start_ms() <= t && t < m.end_ms())
            .count() as u64
    };
    let (mut buckets, mut peak) = (Vec::new(), 0);
    if let Some(first) = records.iter().map(InvocationMetric::start_ms).min() {
        let last = records
            .iter()
            .filter(|m| m.duration_ms > 0)
            .map(|m| m.end_ms() - 1)
            .max()
            .unwrap_or(first);
        let mut b = first.div_euclid(width);
        while b <= last.max(first).div_euclid(width) {
            let most = (b * width..(b + 1) * width)
                .map(running_at)
                .max()
                .unwrap_or(0);
            peak = peak.max(most);
            buckets.push(most);
            b += 1;
        }
    }
    let escalations = records
        .iter()
        .filter(|m| m.tier.as_deref().is_some_and(|t| t != base_tier))
        .count();
    serde_json::json!({
        "totalInvocations": records.len(),
        "invocationsByAgent": by_agent,
        "retriesByAgent": retries_by_agent,
        "totalRetries": records.iter().filter(|m| m.attempt > 1).count(),
        "infraRetries": infra,
        "totalTokens": records.iter().map(|m| m.tokens).sum::<u64>(),
        "totalCachedTokens": records.iter().map(|m| m.cached_tokens.unwrap_or(0)).sum::<u64>(),
        "totalDurationMs": records.iter().map(|m| m.duration_ms).sum::<u64>(),
        "peakParallelInvocations": peak,
        "parallelism": buckets,
        "escalationCount": escalations,
        "successCount": records.iter().filter(|m| m.success).count(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn reading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut records = 0;
        let stats = read_records(&bytes[..], |_, _| records += 1, |_| {}).unwrap();
        prop_assert_eq!(stats.records, records);
        prop_assert_eq!(stats.bytes, bytes.len() as u64);
    }

    #[test]
    fn reader_finds_exactly_the_valid_lines(content in file_content()) {
        let (mut found, mut problems) = (Vec::new(), 0u64);
        let stats = read_records(&content[..], |_, m| found.push(m), |_| problems += 1).unwrap();
        let expected = reference_records(&content);
        // Every non-blank line is a record or a problem, and the counts say so.
        // (A byte order mark at the start belongs to the file, not to its first line.)
        let body = content.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&content);
        let non_blank = body
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .count() as u64;
        prop_assert_eq!(stats.records, expected.len() as u64);
        prop_assert_eq!(stats.problems, problems);
        prop_assert_eq!(stats.records + stats.problems, non_blank);
        prop_assert_eq!(found, expected);
    }

    #[test]
    fn reopening_any_file_repairs_it_and_keeps_every_valid_record(content in file_content()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METRICS_FILE_NAME), &content).unwrap();
        let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
        let on_disk = std::fs::read(collector.path()).unwrap();
        prop_assert!(on_disk.is_empty() || on_disk.ends_with(b"\n"));
        let report = collector.load_from_disk(0).unwrap();
        prop_assert!(!report.torn_tail);
        let mut expected = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for m in reference_records(&content) {
            if seen.insert(m.invocation_id.clone()) {
                expected.push(m);
            }
        }
        prop_assert_eq!(collector.get_all(), expected);
    }

    #[test]
    fn records_round_trip_through_their_line(m in metric()) {
        let line = m.to_json_line();
        let back = parse_line(line.as_bytes()).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_json_line(), line);
    }

    #[test]
    fn aggregate_matches_the_reference_and_merges_exactly(
        records in prop::collection::vec(metric(), 0..40),
        split in any::<prop::sample::Index>(),
        width in 1u64..3000,
    ) {
        let options = AggregateOptions { bucket_width_ms: width, base_tier: "normal".into() };
        let whole: MetricsAccumulator = records.iter().collect();
        let agg = whole.finish(&options);

        let at = if records.is_empty() { 0 } else { split.index(records.len()) };
        let mut merged: MetricsAccumulator = records[at..].iter().collect();
        merged.merge(&records[..at].iter().collect());
        prop_assert_eq!(&merged.finish(&options), &agg);

        let ours = serde_json::json!({
            "totalInvocations": agg.total_invocations,
            "invocationsByAgent": agg.invocations_by_agent,
            "retriesByAgent": agg.retries_by_agent,
            "totalRetries": agg.total_retries,
            "infraRetries": agg.infra_retries,
            "totalTokens": agg.total_tokens,
            "totalCachedTokens": agg.total_cached_tokens,
            "totalDurationMs": agg.total_duration_ms,
            "peakParallelInvocations": agg.peak_parallel_invocations,
            "parallelism": agg.parallelism_over_time.iter().map(|b| b.concurrent).collect::<Vec<_>>(),
            "escalationCount": agg.escalation_count,
            "successCount": agg.success_count,
        });
        prop_assert_eq!(ours, reference_aggregate(&records, width as i64, "normal"));
        let cost: f64 = records.iter().map(|m| m.cost).sum();
        prop_assert!((agg.total_cost - cost).abs() <= 1e-9 * cost.max(1.0));
    }
}
