//! Every way another writer may spell the same record — any key order, any JSON whitespace,
//! CRLF, escapes inside strings, the older dialects — reads as the same record and aggregates
//! to byte-identical JSON; and on any line, spelled or damaged, the fast reader gives exactly
//! what the general serde path gives (the same record, or the same error).

use invocation_metrics::{
    AggregateOptions, InvocationMetric, MetricsAccumulator, Timestamp, parse_line,
    parse_line_general, read_records,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

prop_compose! {
    fn metric()(
        id in "[a-zA-Z0-9-]{1,12}",
        agent in prop_oneof![Just("coder".to_owned()), Just("ré\"vie/wer\\".to_owned()), "[a-z]{1,8}"],
        phase in 0u32..4,
        task in prop::option::of("[a-z0-9-]{1,6}"),
        duration_ms in 0u64..100_000,
        tokens in any::<u32>(),
        io in prop::option::of((any::<u32>(), any::<u32>(), any::<u32>())),
        cost in prop_oneof![Just(0.0f64), 0.0f64..1e4],
        exit_code in any::<i32>(),
        success in any::<bool>(),
        attempt in 1u32..4,
        output_parsed in any::<bool>(),
        model in prop::option::of(prop_oneof![Just("model-ü".to_owned()), Just("m\u{1F600}".to_owned())]),
        tier in prop::option::of(prop_oneof![Just("normal".to_owned()), Just("premium".to_owned())]),
        start_ms in 0i64..10_000_000,
        offset_minutes in -720i32..720,
        error_class in prop::option::of(Just("rate-limit".to_owned())),
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

#[derive(Debug, Clone, Copy)]
enum Dialect {
    Native,
    Framework,
    Launcher,
}

/// How one line is written: its dialect, a key order (a permutation seed), the whitespace
/// around its tokens, whether strings escape what they could, and its line ending.
#[derive(Debug, Clone)]
struct Spelling {
    dialect: Dialect,
    order: u64,
    space: &'static str,
    escape: bool,
    crlf: bool,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (
        prop_oneof![
            Just(Dialect::Native),
            Just(Dialect::Framework),
            Just(Dialect::Launcher)
        ],
        any::<u64>(),
        prop_oneof![Just(""), Just(" "), Just("\t"), Just("\r\n  ")],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(dialect, order, space, escape, crlf)| Spelling {
            dialect,
            order,
            space,
            escape,
            crlf,
        })
}

/// The record's fields under the dialect's names.
fn fields(m: &InvocationMetric, dialect: Dialect) -> Vec<(String, Value)> {
    let Value::Object(native) = serde_json::from_str::<Value>(&m.to_json_line()).unwrap() else {
        unreachable!()
    };
    let status = Value::from(if m.success { "success" } else { "failed" });
    let rename = |key: &str| -> Option<(&'static str, Option<Value>)> {
        match (dialect, key) {
            (Dialect::Framework, "agent") => Some(("agentType", None)),
            (Dialect::Framework, "tokens") => Some(("tokensTotal", None)),
            (Dialect::Framework, "inputTokens") => Some(("tokensPrompt", None)),
            (Dialect::Framework, "outputTokens") => Some(("tokensCompletion", None)),
            (Dialect::Framework, "cost") => Some(("costUsd", None)),
            (Dialect::Framework, "attempt") => Some(("attemptNumber", None)),
            (Dialect::Framework, "tier") => Some(("routingTier", None)),
            (Dialect::Framework | Dialect::Launcher, "timestamp") => Some(("startTime", None)),
            (Dialect::Framework | Dialect::Launcher, "success") => {
                Some(("status", Some(status.clone())))
            }
            (Dialect::Launcher, "durationMs") => Some(("duration", None)),
            _ => None,
        }
    };
    let mut out: Vec<(String, Value)> = Map::into_iter(native)
        .map(|(key, value)| match rename(&key) {
            Some((to, replaced)) => (to.to_owned(), replaced.unwrap_or(value)),
            None => (key, value),
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A JSON string with every non-ASCII character and every other letter written as a
/// `\u` escape (surrogate pairs above the basic plane).
fn escaped(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if !c.is_ascii() || c < ' ' || i % 2 == 0 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out + "\""
}

fn spell(m: &InvocationMetric, how: &Spelling) -> String {
    let mut fields = fields(m, how.dialect);
    // A permutation from the seed: a Fisher–Yates shuffle with a small generator.
    let mut state = how.order | 1;
    for i in (1..fields.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        fields.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let s = how.space;
    let string = |text: &str| {
        if how.escape {
            escaped(text)
        } else {
            serde_json::to_string(text).unwrap()
        }
    };
    let members: Vec<String> = fields
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(text) => string(text),
                other => other.to_string(),
            };
            format!("{}{s}:{s}{value}", string(key))
        })
        .collect();
    let line = format!("{s}{{{s}{}{s}}}{s}", members.join(&format!("{s},{s}")));
    if how.crlf { line + "\r" } else { line }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_spelling_reads_as_the_same_record(m in metric(), how in spelling()) {
        let line = spell(&m, &how);
        prop_assert_eq!(parse_line(line.as_bytes()), Ok(m.clone()), "{}", line);
        prop_assert_eq!(parse_line_general(line.as_bytes()), Ok(m), "{}", line);
    }

    /// Damaged or not, every line gets from the fast reader exactly what the general serde
    /// path gives: the same record, or the same error.
    #[test]
    fn the_fast_reader_agrees_with_the_general_parser_on_any_line(
        m in metric(),
        how in spelling(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
    ) {
        let mut line = spell(&m, &how).into_bytes();
        for (at, byte, kind) in edits {
            let i = at.index(line.len() + 1);
            match kind {
                0 => line.insert(i, byte),
                1 if i < line.len() => line[i] = byte,
                _ if i < line.len() => { line.remove(i); }
                _ => {}
            }
        }
        prop_assert_eq!(
            parse_line(&line),
            parse_line_general(&line),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }

    /// A file whose lines are spelled every which way aggregates to the same JSON, byte for
    /// byte, as the same records in this project's own layout.
    #[test]
    fn a_file_in_any_spelling_aggregates_to_the_same_json(
        lines in prop::collection::vec((metric(), spelling()), 1..30),
    ) {
        let own: String = lines.iter().map(|(m, _)| m.to_json_line() + "\n").collect();
        // Inside a file a line cannot hold a newline: the spaces become a lone CR.
        let spelled: String = lines
            .iter()
            .map(|(m, how)| {
                let space = if how.space.contains('\n') { " \r " } else { how.space };
                spell(m, &Spelling { space, ..how.clone() }) + "\n"
            })
            .collect();
        let aggregate = |content: &str| {
            let mut acc = MetricsAccumulator::default();
            let stats = read_records(content.as_bytes(), |_, m| acc.add(&m), |p| panic!("{p:?}")).unwrap();
            assert_eq!(stats.records, lines.len() as u64);
            serde_json::to_string(&acc.finish(&AggregateOptions::default())).unwrap()
        };
        prop_assert_eq!(aggregate(&spelled), aggregate(&own));
    }
}
