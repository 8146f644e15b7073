//! The metrics signal: cumulative series computed from the records themselves, so a point
//! sent twice (after a crash, or a retry whose answer was lost) carries the same values and
//! times, and a restarted `follow` rebuilds the same totals by reading the file up to its
//! cursor again — the file is the state, nothing else is kept.

use std::collections::BTreeMap;

use super::wire::{
    Data, Histogram, HistogramDataPoint, KeyValue, Metric, Number, NumberDataPoint, Sum,
};
use crate::record::InvocationMetric;

/// `gen_ai.client.token.usage` bucket bounds, as the GenAI semantic conventions recommend.
pub const TOKEN_BOUNDS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `gen_ai.client.operation.duration` bucket bounds in seconds, as the conventions recommend.
pub const DURATION_BOUNDS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// AggregationTemporality CUMULATIVE.
const CUMULATIVE: i32 = 2;

/// Which series a record adds to; the attribute values that tell series apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Who {
    agent: String,
    model: Option<String>,
}

/// One series' time span: fixed at its first record's start, then the latest end seen.
#[derive(Debug, Clone, Copy)]
struct Times {
    start_ns: u64,
    time_ns: u64,
}

impl Times {
    fn new(m: &InvocationMetric) -> Self {
        Self {
            start_ns: start_ns(m),
            time_ns: end_ns(m),
        }
    }

    fn add(&mut self, m: &InvocationMetric) {
        self.time_ns = self.time_ns.max(end_ns(m));
    }
}

#[derive(Debug, Clone)]
struct Counter {
    times: Times,
    /// The time of the point sent last: the next is later, even when its records ended
    /// earlier (a backend refuses two values at one time).
    sent_ns: u64,
    invocations: u64,
    /// Exact: picodollars, like the aggregate.
    cost_pico: i128,
    changed: bool,
}

#[derive(Debug, Clone)]
struct Buckets {
    times: Times,
    /// As for [`Counter::sent_ns`].
    sent_ns: u64,
    counts: [u64; 15],
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
    changed: bool,
}

impl Buckets {
    fn new(m: &InvocationMetric) -> Self {
        Self {
            times: Times::new(m),
            sent_ns: 0,
            counts: [0; 15],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
            changed: true,
        }
    }

    /// Adds `value`, whose bucket among `bounds` is found in `scaled` units (seconds for
    /// durations in milliseconds).
    fn add(&mut self, m: &InvocationMetric, value: u64, scaled: f64, bounds: &[f64; 14]) {
        self.times.add(m);
        // Upper bounds are inclusive: the first bound at or above the value.
        self.counts[bounds.partition_point(|b| *b < scaled)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.changed = true;
    }

    fn point(
        &mut self,
        attributes: Vec<KeyValue>,
        bounds: &[f64; 14],
        unit: f64,
    ) -> HistogramDataPoint {
        self.sent_ns = next_time(self.times.time_ns, self.sent_ns);
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: self.times.start_ns,
            time_unix_nano: self.sent_ns,
            count: self.count,
            sum: Some(self.sum as f64 / unit),
            bucket_counts: self.counts.to_vec(),
            explicit_bounds: bounds.to_vec(),
            min: Some(self.min as f64 / unit),
            max: Some(self.max as f64 / unit),
        }
    }
}

/// Cumulative totals of every series so far, and which changed since the last report.
#[derive(Debug, Default)]
pub(crate) struct MetricState {
    /// By agent, model, phase and outcome.
    counters: BTreeMap<(Who, u32, bool), Counter>,
    /// By agent, model and token type (`true`: input).
    tokens: BTreeMap<(Who, bool), Buckets>,
    /// By agent, model and error type (absent for a success).
    durations: BTreeMap<(Who, Option<String>), Buckets>,
}

impl MetricState {
    /// Adds one record to every series it belongs to.
    pub(crate) fn add(&mut self, m: &InvocationMetric) {
        let who = Who {
            agent: m.agent.clone(),
            model: m.model.clone(),
        };
        let counter = self
            .counters
            .entry((who.clone(), m.phase, m.success))
            .or_insert_with(|| Counter {
                times: Times::new(m),
                sent_ns: 0,
                invocations: 0,
                cost_pico: 0,
                changed: true,
            });
        counter.times.add(m);
        counter.invocations += 1;
        counter.cost_pico += crate::usd_to_pico(m.cost);
        counter.changed = true;

        for (input, tokens) in [(true, m.input_tokens), (false, m.output_tokens)] {
            if let Some(n) = tokens {
                self.tokens
                    .entry((who.clone(), input))
                    .or_insert_with(|| Buckets::new(m))
                    .add(m, n, n as f64, &TOKEN_BOUNDS);
            }
        }

        // The conventions' fallback when a failure has no class of its own.
        let error = (!m.success).then(|| m.error_class.clone().unwrap_or_else(|| "_OTHER".into()));
        self.durations
            .entry((who, error))
            .or_insert_with(|| Buckets::new(m))
            .add(
                m,
                m.duration_ms,
                m.duration_ms as f64 / 1000.0,
                &DURATION_BOUNDS,
            );
    }

    /// The series that changed since the last call, as OTLP metrics (cumulative, so the
    /// points hold the totals since each series' first record); marks them reported.
    pub(crate) fn take_changed(&mut self) -> Vec<Metric> {
        let common = |who: &Who| {
            let mut attributes = vec![
                KeyValue::string("gen_ai.operation.name", "invoke_agent"),
                KeyValue::string("gen_ai.agent.name", &who.agent),
            ];
            if let Some(model) = &who.model {
                attributes.push(KeyValue::string("gen_ai.request.model", model));
            }
            attributes
        };

        let (mut invocations, mut cost) = (Vec::new(), Vec::new());
        for ((who, phase, success), c) in &mut self.counters {
            if !std::mem::take(&mut c.changed) {
                continue;
            }
            let mut attributes = common(who);
            attributes.push(KeyValue::int("invocation_metrics.phase", *phase));
            attributes.push(KeyValue::string(
                "invocation_metrics.outcome",
                if *success { "success" } else { "failure" },
            ));
            c.sent_ns = next_time(c.times.time_ns, c.sent_ns);
            let point = |value| NumberDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: c.times.start_ns,
                time_unix_nano: c.sent_ns,
                value: Some(value),
            };
            invocations.push(point(Number::AsInt(
                i64::try_from(c.invocations).unwrap_or(i64::MAX),
            )));
            cost.push(point(Number::AsDouble(crate::pico_to_usd(c.cost_pico))));
        }

        let mut tokens = Vec::new();
        for ((who, input), b) in &mut self.tokens {
            if !std::mem::take(&mut b.changed) {
                continue;
            }
            let mut attributes = common(who);
            attributes.push(KeyValue::string(
                "gen_ai.token.type",
                if *input { "input" } else { "output" },
            ));
            tokens.push(b.point(attributes, &TOKEN_BOUNDS, 1.0));
        }

        let mut durations = Vec::new();
        for ((who, error), b) in &mut self.durations {
            if !std::mem::take(&mut b.changed) {
                continue;
            }
            let mut attributes = common(who);
            if let Some(error) = error {
                attributes.push(KeyValue::string("error.type", error));
            }
            durations.push(b.point(attributes, &DURATION_BOUNDS, 1000.0));
        }

        let mut metrics = Vec::new();
        let mut push = |name: &str, description: &str, unit: &str, data: Data, empty: bool| {
            if !empty {
                metrics.push(Metric {
                    name: name.into(),
                    description: description.into(),
                    unit: unit.into(),
                    data: Some(data),
                });
            }
        };
        let empty = tokens.is_empty();
        push(
            "gen_ai.client.token.usage",
            "Tokens per agent invocation, by token type",
            "{token}",
            Data::Histogram(Histogram {
                aggregation_temporality: CUMULATIVE,
                data_points: tokens,
            }),
            empty,
        );
        let empty = durations.is_empty();
        push(
            "gen_ai.client.operation.duration",
            "Duration of agent invocations",
            "s",
            Data::Histogram(Histogram {
                aggregation_temporality: CUMULATIVE,
                data_points: durations,
            }),
            empty,
        );
        let empty = invocations.is_empty();
        push(
            "invocation_metrics.invocations",
            "Agent invocations, by agent, model, phase and outcome",
            "{invocation}",
            Data::Sum(Sum {
                aggregation_temporality: CUMULATIVE,
                is_monotonic: true,
                data_points: invocations,
            }),
            empty,
        );
        push(
            "invocation_metrics.cost",
            "Estimated cost of agent invocations in US dollars",
            "USD",
            Data::Sum(Sum {
                aggregation_temporality: CUMULATIVE,
                is_monotonic: true,
                data_points: cost,
            }),
            empty,
        );
        metrics
    }
}

/// A point's time: the latest end among its series' records, but always after the point
/// sent before it (records that ended earlier can arrive later).
fn next_time(latest_end: u64, sent: u64) -> u64 {
    if sent == 0 {
        latest_end
    } else {
        latest_end.max(sent + 1)
    }
}

/// A record's start in nanoseconds since the Unix epoch (0 before it: OTLP times are
/// unsigned).
pub(crate) fn start_ns(m: &InvocationMetric) -> u64 {
    let nanos = i128::from(m.start_ms()) * 1_000_000
        + i128::from(m.timestamp.as_offset_date_time().nanosecond() % 1_000_000);
    u64::try_from(nanos).unwrap_or(0)
}

/// A record's end: start + `durationMs`.
pub(crate) fn end_ns(m: &InvocationMetric) -> u64 {
    start_ns(m).saturating_add(m.duration_ms.saturating_mul(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(agent: &str, duration_ms: u64, input: u64, success: bool) -> InvocationMetric {
        let mut m = InvocationMetric::new(
            format!("{agent}-{duration_ms}"),
            agent,
            1,
            "2026-11-27T10:00:00Z".parse().unwrap(),
        );
        m.duration_ms = duration_ms;
        m.input_tokens = Some(input);
        m.cost = 0.1;
        m.success = success;
        m
    }

    fn histogram(metrics: &[Metric], name: &str) -> Vec<HistogramDataPoint> {
        match &metrics.iter().find(|m| m.name == name).unwrap().data {
            Some(Data::Histogram(h)) => h.data_points.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn sum(metrics: &[Metric], name: &str) -> Vec<NumberDataPoint> {
        match &metrics.iter().find(|m| m.name == name).unwrap().data {
            Some(Data::Sum(s)) => s.data_points.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn points_are_cumulative_and_only_changed_series_are_reported_again() {
        let mut state = MetricState::default();
        state.add(&metric("coder", 10, 4, true)); // 0.01 s: first bucket (bound inclusive)
        state.add(&metric("coder", 90_000, 5, true)); // past the last bound
        state.add(&metric("tester", 500, 1, false));
        let first = state.take_changed();
        let durations = histogram(&first, "gen_ai.client.operation.duration");
        assert_eq!(durations.len(), 2);
        let coder = &durations[0];
        assert_eq!(
            (coder.count, coder.sum, coder.max),
            (2, Some(90.01), Some(90.0))
        );
        assert_eq!(coder.bucket_counts[0], 1);
        assert_eq!(coder.bucket_counts[14], 1);
        // The failure carries the conventions' fallback error type.
        assert!(
            durations[1]
                .attributes
                .contains(&KeyValue::string("error.type", "_OTHER"))
        );
        let tokens = histogram(&first, "gen_ai.client.token.usage");
        assert_eq!(tokens[0].bucket_counts[1], 1); // 4 tokens: bound 4 inclusive
        assert_eq!(tokens[0].bucket_counts[2], 1); // 5 tokens
        let cost = sum(&first, "invocation_metrics.cost");
        assert_eq!(cost[0].value, Some(Number::AsDouble(0.2)));

        assert!(state.take_changed().is_empty());
        state.add(&metric("coder", 20, 1, true));
        let second = state.take_changed();
        let invocations = sum(&second, "invocation_metrics.invocations");
        assert_eq!(invocations.len(), 1);
        assert_eq!(invocations[0].value, Some(Number::AsInt(3)));
        // The series' start stays its first record's; its time is the latest end — here
        // the record ended before it, and the point must still come after the last one.
        let latest_end = coder.start_time_unix_nano + 90_000_000_000;
        assert_eq!(
            invocations[0].start_time_unix_nano,
            coder.start_time_unix_nano
        );
        assert_eq!(invocations[0].time_unix_nano, latest_end + 1);
        state.add(&metric("coder", 5, 1, true));
        let third = state.take_changed();
        let again = sum(&third, "invocation_metrics.invocations");
        assert_eq!(again[0].value, Some(Number::AsInt(4)));
        assert_eq!(again[0].time_unix_nano, latest_end + 2);
    }
}
