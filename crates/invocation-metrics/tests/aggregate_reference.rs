//! Every field of the aggregate against a reference written as plainly as the definitions
//! read (no histograms, no sorted logs, no merging), for generated records read back through
//! both parse paths: the fast reader and the general serde one.

use std::collections::BTreeMap;

use invocation_metrics::{
    AggregateOptions, GroupSummary, InvocationMetric, MetricsAccumulator, MetricsAggregate,
    Timestamp, parse_line, parse_line_general,
};
use proptest::prelude::*;

prop_compose! {
    fn metric()(
        id in "[a-z0-9]{1,8}",
        agent in prop_oneof![Just("planner"), Just("coder"), Just("tester")],
        phase in 0u32..3,
        task in prop::option::of(prop_oneof![Just("t1"), Just("t2")]),
        // Both sides of the histogram's exact range (2,048 ms) and far past it.
        duration_ms in prop_oneof![0u64..100, 0u64..5000, 1_000_000u64..2_000_000],
        tokens in 0u64..100_000,
        io in prop::option::of((0u64..50_000, 0u64..50_000, 0u64..50_000)),
        cost in prop_oneof![Just(0.0f64), 0.0f64..10.0],
        success in any::<bool>(),
        attempt in 1u32..4,
        model in prop::option::of(prop_oneof![Just("m-a"), Just("m-b")]),
        tier in prop::option::of(prop_oneof![Just("normal"), Just("premium")]),
        start_ms in 0i64..20_000,
        error_class in prop::option::of(Just("rate-limit")),
    ) -> InvocationMetric {
        let mut m = InvocationMetric::new(
            id,
            agent,
            phase,
            Timestamp::from_unix_ms(1_795_510_800_000 + start_ms).unwrap(),
        );
        m.task_id = task.map(str::to_owned);
        m.duration_ms = duration_ms;
        m.tokens = tokens;
        m.input_tokens = io.map(|v| v.0);
        m.output_tokens = io.map(|v| v.1);
        m.cached_tokens = io.map(|v| v.2);
        m.cost = cost;
        m.success = success;
        m.attempt = attempt;
        m.model = model.map(str::to_owned);
        m.tier = tier.map(str::to_owned);
        m.error_class = error_class.map(str::to_owned);
        m
    }
}

/// Nearest rank: the smallest value with at least `p`% of the values at or below it.
fn nearest_rank(sorted: &[u64], p: u64) -> u64 {
    let rank = (sorted.len() as u64 * p).div_ceil(100).max(1);
    sorted[rank as usize - 1]
}

/// A group's summary by the definitions; percentiles exact.
fn reference_group(records: &[&InvocationMetric]) -> GroupSummary {
    let n = records.len() as u64;
    let mut durations: Vec<u64> = records.iter().map(|m| m.duration_ms).collect();
    durations.sort_unstable();
    let successes = records.iter().filter(|m| m.success).count() as u64;
    let total_duration: u64 = durations.iter().sum();
    GroupSummary {
        invocations: n,
        retries: records.iter().filter(|m| m.attempt > 1).count() as u64,
        successes,
        success_rate: successes as f64 / n as f64,
        tokens: records.iter().map(|m| m.tokens).sum(),
        cached_tokens: records.iter().map(|m| m.cached_tokens.unwrap_or(0)).sum(),
        cost: records.iter().map(|m| m.cost).sum(),
        total_duration_ms: total_duration,
        mean_duration_ms: total_duration as f64 / n as f64,
        min_duration_ms: durations[0],
        p25_duration_ms: nearest_rank(&durations, 25),
        p50_duration_ms: nearest_rank(&durations, 50),
        p75_duration_ms: nearest_rank(&durations, 75),
        p95_duration_ms: nearest_rank(&durations, 95),
        p99_duration_ms: nearest_rank(&durations, 99),
        max_duration_ms: *durations.last().unwrap(),
    }
}

fn groups<K: Ord>(
    records: &[InvocationMetric],
    key: impl Fn(&InvocationMetric) -> Option<K>,
) -> BTreeMap<K, GroupSummary> {
    let mut by: BTreeMap<K, Vec<&InvocationMetric>> = BTreeMap::new();
    for m in records {
        if let Some(k) = key(m) {
            by.entry(k).or_default().push(m);
        }
    }
    by.into_iter()
        .map(|(k, rs)| (k, reference_group(&rs)))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The aggregate's summary agrees with the reference: counts and sums exactly, costs and
/// means to rounding, percentiles exactly below 2,048 ms and within the histogram's 0.1 %
/// (rounded down) above.
fn check_group(ours: &GroupSummary, exact: &GroupSummary, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        (
            ours.invocations,
            ours.retries,
            ours.successes,
            ours.tokens,
            ours.cached_tokens
        ),
        (
            exact.invocations,
            exact.retries,
            exact.successes,
            exact.tokens,
            exact.cached_tokens
        ),
        "{}",
        what
    );
    prop_assert_eq!(ours.total_duration_ms, exact.total_duration_ms, "{}", what);
    prop_assert_eq!(
        (ours.min_duration_ms, ours.max_duration_ms),
        (exact.min_duration_ms, exact.max_duration_ms),
        "{}",
        what
    );
    prop_assert!(
        close(ours.cost, exact.cost),
        "{what}: cost {} vs {}",
        ours.cost,
        exact.cost
    );
    prop_assert!(close(ours.success_rate, exact.success_rate), "{}", what);
    prop_assert!(
        close(ours.mean_duration_ms, exact.mean_duration_ms),
        "{}",
        what
    );
    for (p, o, e) in [
        (25, ours.p25_duration_ms, exact.p25_duration_ms),
        (50, ours.p50_duration_ms, exact.p50_duration_ms),
        (75, ours.p75_duration_ms, exact.p75_duration_ms),
        (95, ours.p95_duration_ms, exact.p95_duration_ms),
        (99, ours.p99_duration_ms, exact.p99_duration_ms),
    ] {
        if e < 2048 {
            prop_assert_eq!(o, e, "{}: p{}", what, p);
        } else {
            prop_assert!(
                o <= e && (e as f64) < o as f64 * (1.0 + 1.0 / 1024.0),
                "{what}: p{p} {o} vs {e}"
            );
        }
    }
    Ok(())
}

fn utc(ms: i64) -> String {
    Timestamp::from_unix_ms(ms).unwrap().to_utc_millis_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn every_field_agrees_with_the_definitions_through_both_parsers(
        records in prop::collection::vec(metric(), 1..60),
        width in prop_oneof![Just(1u64), 1u64..5000, Just(60_000u64)],
    ) {
        let options = AggregateOptions { bucket_width_ms: width, base_tier: "normal".into() };
        // Read back through each parser: both must give these very records.
        let lines: Vec<String> = records.iter().map(InvocationMetric::to_json_line).collect();
        let fast: Vec<InvocationMetric> = lines.iter().map(|l| parse_line(l.as_bytes()).unwrap()).collect();
        let general: Vec<InvocationMetric> =
            lines.iter().map(|l| parse_line_general(l.as_bytes()).unwrap()).collect();
        prop_assert_eq!(&fast, &records);
        prop_assert_eq!(&general, &records);
        let agg: MetricsAggregate = fast.iter().collect::<MetricsAccumulator>().finish(&options);
        let from_general = general.iter().collect::<MetricsAccumulator>().finish(&options);
        prop_assert_eq!(&agg, &from_general);

        // Totals.
        let n = records.len() as u64;
        let count = |f: fn(&InvocationMetric) -> bool| records.iter().filter(|m| f(m)).count() as u64;
        prop_assert_eq!(agg.total_invocations, n);
        prop_assert_eq!(agg.total_retries, count(|m| m.attempt > 1));
        prop_assert_eq!(agg.success_count, count(|m| m.success));
        prop_assert!(close(agg.success_rate, agg.success_count as f64 / n as f64));
        prop_assert_eq!(agg.total_tokens, records.iter().map(|m| m.tokens).sum::<u64>());
        prop_assert_eq!(agg.total_duration_ms, records.iter().map(|m| m.duration_ms).sum::<u64>());
        let input: u64 = records.iter().map(|m| m.input_tokens.unwrap_or(0)).sum();
        let cached: u64 = records.iter().map(|m| m.cached_tokens.unwrap_or(0)).sum();
        prop_assert_eq!(agg.total_input_tokens, input);
        prop_assert_eq!(agg.total_output_tokens, records.iter().map(|m| m.output_tokens.unwrap_or(0)).sum::<u64>());
        prop_assert_eq!(agg.total_cached_tokens, cached);
        let hit_ratio = if input == 0 { 0.0 } else { cached as f64 / input as f64 };
        prop_assert!(close(agg.cache_hit_ratio, hit_ratio));
        prop_assert!(close(agg.total_cost, records.iter().map(|m| m.cost).sum()));
        prop_assert_eq!(
            agg.escalation_count,
            count(|m| m.tier.as_deref().is_some_and(|t| t != "normal"))
        );
        prop_assert_eq!(&agg.base_tier, "normal");

        // The time span, and the instant the peak was first reached. The number running is
        // constant between starts and ends, so a most over an interval is reached at its
        // beginning or at a start inside it.
        let first = records.iter().map(InvocationMetric::start_ms).min().unwrap();
        let last = records.iter().map(InvocationMetric::end_ms).max().unwrap();
        prop_assert_eq!(agg.first_start.clone(), Some(utc(first)));
        prop_assert_eq!(agg.last_end.clone(), Some(utc(last)));
        let running = |t: i64| records.iter().filter(|m| m.start_ms() <= t && t < m.end_ms()).count() as u64;
        let most_in = |from: i64, to: i64| {
            records
                .iter()
                .map(InvocationMetric::start_ms)
                .filter(|s| (from..to).contains(s))
                .chain([from])
                .map(running)
                .max()
                .unwrap_or(0)
        };
        let peak = most_in(first, last.max(first + 1));
        prop_assert_eq!(agg.peak_parallel_invocations, peak);
        let mut starts: Vec<i64> = records.iter().map(InvocationMetric::start_ms).collect();
        starts.sort_unstable();
        let peak_at = starts.into_iter().find(|t| peak > 0 && running(*t) == peak);
        prop_assert_eq!(agg.peak_parallel_at.clone(), peak_at.map(utc));

        // Buckets: the requested width, or its smallest multiple that needs no more than the
        // limit, from the bucket of the first start to the bucket of the last occupied
        // millisecond.
        let last_occupied = records
            .iter()
            .filter(|m| m.duration_ms > 0)
            .map(|m| m.end_ms() - 1)
            .max()
            .unwrap_or(first)
            .max(first);
        let buckets_of = |w: i64| last_occupied.div_euclid(w) - first.div_euclid(w) + 1;
        let mut used = width as i64;
        while buckets_of(used) > invocation_metrics::MAX_PARALLELISM_BUCKETS as i64 {
            used += width as i64;
        }
        prop_assert_eq!(agg.bucket_width_ms, used as u64);
        prop_assert_eq!(agg.parallelism_over_time.len() as i64, buckets_of(used));
        // Every bucket when there are a few thousand; past that, every k-th (the checks cost
        // as much per bucket as a record does).
        let step = agg.parallelism_over_time.len().div_ceil(3000).max(1);
        for bucket in agg.parallelism_over_time.iter().step_by(step) {
            let start = bucket.bucket_start.parse::<Timestamp>().unwrap().unix_ms();
            prop_assert_eq!(start.rem_euclid(used), 0);
            prop_assert_eq!(bucket.concurrent, most_in(start, start + used), "bucket at {}", bucket.bucket_start);
        }

        // By agent and by phase, the seed's maps.
        let by_agent = groups(&records, |m| Some(m.agent.clone()));
        let by_phase = groups(&records, |m| Some(m.phase));
        let pick = |f: fn(&GroupSummary) -> u64| -> BTreeMap<String, u64> {
            by_agent.iter().map(|(k, g)| (k.clone(), f(g))).collect()
        };
        prop_assert_eq!(&agg.invocations_by_agent, &pick(|g| g.invocations));
        prop_assert_eq!(&agg.retries_by_agent, &pick(|g| g.retries));
        prop_assert_eq!(&agg.tokens_by_agent, &pick(|g| g.tokens));
        prop_assert_eq!(
            agg.invocations_by_phase.clone(),
            by_phase.iter().map(|(k, g)| (*k, g.invocations)).collect::<BTreeMap<_, _>>()
        );
        prop_assert_eq!(
            agg.retries_by_phase.clone(),
            by_phase.iter().map(|(k, g)| (*k, g.retries)).collect::<BTreeMap<_, _>>()
        );
        for (agent, g) in &by_agent {
            prop_assert!(close(agg.cost_by_agent[agent], g.cost));
            prop_assert!(close(agg.avg_duration_by_agent[agent], g.mean_duration_ms));
        }

        // Every breakdown, every field.
        let check_all = |ours: &BTreeMap<String, GroupSummary>, exact: BTreeMap<String, GroupSummary>, dim: &str| {
            prop_assert_eq!(ours.keys().collect::<Vec<_>>(), exact.keys().collect::<Vec<_>>(), "{}", dim);
            for (k, e) in &exact {
                check_group(&ours[k], e, &format!("{dim} {k}"))?;
            }
            Ok(())
        };
        check_all(&agg.agents, by_agent.clone(), "agent")?;
        check_all(&agg.models, groups(&records, |m| m.model.clone()), "model")?;
        check_all(&agg.tiers, groups(&records, |m| m.tier.clone()), "tier")?;
        check_all(&agg.error_classes, groups(&records, |m| m.error_class.clone()), "error class")?;
        prop_assert_eq!(agg.phases.keys().collect::<Vec<_>>(), by_phase.keys().collect::<Vec<_>>());
        for (k, e) in &by_phase {
            check_group(&agg.phases[k], e, &format!("phase {k}"))?;
        }
    }
}
