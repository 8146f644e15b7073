//! Reading one line of a metrics file, in any of the three dialects the framework family
//! writes, into an [`InvocationMetric`].
//!
//! See [`Dialect`] for the mapping.

use std::borrow::Cow;

use serde::Deserialize;

use crate::error::ValidationError;
use crate::record::{
    InvocationMetric, MAX_DURATION_MS, MAX_TOKENS, Timestamp, refill, refill_optional,
};

/// Longest line a reader accepts, in bytes. Longer lines are skipped as malformed without
/// being held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why one line of a metrics file is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line is not a JSON object (invalid JSON, or JSON of another kind).
    #[error("{0}")]
    Json(String),
    /// The line is JSON but a field is missing or wrong.
    #[error(transparent)]
    Field(#[from] ValidationError),
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("line is {len} bytes, longer than the {MAX_LINE_BYTES}-byte limit")]
    TooLong {
        /// The line's length in bytes (at least; reading stops counting at the newline).
        len: u64,
    },
}

/// Which form a line was written in, and how each maps to [`InvocationMetric`].
///
/// | dialect | recognised by | mapping |
/// |---|---|---|
/// | native | every required seed field (whatever else the line carries), or no other dialect's fields | as is |
/// | framework (older) | `agentType`, `tokensTotal` or `costUsd` | `agentType`→agent, `attemptNumber`→attempt, `tokensTotal`→tokens, `tokensPrompt`/`tokensCompletion`→input/outputTokens, `costUsd`→cost, `status` ("success" / "failed" / "cancelled")→success, `startTime`→timestamp, `routingTier`→tier |
/// | launcher | `duration` without `durationMs` (and no framework field) | `duration`→durationMs, `startTime`→timestamp (its own `timestamp` is the completion time, used only when `startTime` is absent: start = completion − duration), `exitCode` may be null, `status` may also be "timed-out", `attemptNumber`→attempt (absent = 1), `cost` absent = 0 |
///
/// A seed field that is present always wins over another dialect's name for it (`timestamp`
/// over `startTime` in the framework form, `agent` over `agentType`, …).
///
/// Where a dialect has no field for a native one: `exitCode` absent or null becomes 0 for a
/// success and -1 otherwise; `outputParsed` absent becomes false; `tokens` absent in the
/// launcher form becomes 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// This project's own form: the seed's field names.
    Native,
    /// The older framework form (`agentType`, `tokensTotal`, `costUsd`, `status`, …).
    Framework,
    /// The launcher form (`duration`, `startTime`, nullable `exitCode`).
    Launcher,
}

/// Every field any dialect may carry; strings are borrowed from the line where possible.
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawLine<'a> {
    #[serde(borrow)]
    pub(crate) invocation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) agent_type: Option<Cow<'a, str>>,
    pub(crate) phase: Option<u32>,
    #[serde(borrow)]
    pub(crate) task_id: Option<Cow<'a, str>>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) duration: Option<u64>,
    pub(crate) tokens: Option<u64>,
    pub(crate) tokens_total: Option<u64>,
    pub(crate) input_tokens: Option<u64>,
    pub(crate) tokens_prompt: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) tokens_completion: Option<u64>,
    pub(crate) cached_tokens: Option<u64>,
    pub(crate) cost: Option<f64>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) exit_code: Option<i32>,
    pub(crate) success: Option<bool>,
    #[serde(borrow)]
    pub(crate) status: Option<Cow<'a, str>>,
    pub(crate) attempt: Option<u32>,
    pub(crate) attempt_number: Option<u32>,
    pub(crate) output_parsed: Option<bool>,
    #[serde(borrow)]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) routing_tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) start_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) error_class: Option<Cow<'a, str>>,
}

impl RawLine<'_> {
    /// The dialect whose required fields the line has. A line with every native field is
    /// native whatever else it carries: another dialect's field never overrides a seed
    /// field that is present.
    fn dialect(&self) -> Dialect {
        let native = self.invocation_id.is_some()
            && self.agent.is_some()
            && self.phase.is_some()
            && self.duration_ms.is_some()
            && self.tokens.is_some()
            && self.cost.is_some()
            && self.exit_code.is_some()
            && self.success.is_some()
            && self.attempt.is_some()
            && self.output_parsed.is_some()
            && self.timestamp.is_some();
        if native {
            Dialect::Native
        } else if self.agent_type.is_some()
            || self.tokens_total.is_some()
            || self.cost_usd.is_some()
        {
            Dialect::Framework
        } else if self.duration.is_some() && self.duration_ms.is_none() {
            Dialect::Launcher
        } else {
            Dialect::Native
        }
    }
}

/// Parses one line (without its newline; a trailing `\r` is tolerated) in any dialect,
/// normalises it and validates it.
///
/// ```
/// use invocation_metrics::parse_line;
///
/// let line = br#"{"invocationId":"i1","agentType":"coder","phase":2,"durationMs":10,
///   "tokensTotal":5,"costUsd":0.5,"status":"failed","attemptNumber":2,
///   "startTime":"2026-11-25T10:00:00Z"}"#;
/// let metric = parse_line(line)?;
/// assert_eq!((metric.agent.as_str(), metric.attempt, metric.success), ("coder", 2, false));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_line(line: &[u8]) -> Result<InvocationMetric, LineError> {
    parse_line_with_dialect(line).map(|(metric, _)| metric)
}

/// Like [`parse_line`], also saying which dialect the line was written in.
pub fn parse_line_with_dialect(line: &[u8]) -> Result<(InvocationMetric, Dialect), LineError> {
    let mut metric = InvocationMetric::blank();
    let dialect = parse_line_into(line, &mut metric)?;
    Ok((metric, dialect))
}

/// Like [`parse_line_with_dialect`], reading into `into` and reusing its string buffers
/// (for readers of many lines). After an error `into` holds no meaningful record.
pub(crate) fn parse_line_into(
    line: &[u8],
    into: &mut InvocationMetric,
) -> Result<Dialect, LineError> {
    let line = within_limit(line)?;
    let mut raw = RawLine::default();
    if crate::scan::scan_line_into(line, &mut raw).is_some() {
        let dialect = raw.dialect();
        if normalize_into(raw, dialect, into).is_ok() && into.validate().is_ok() {
            return Ok(dialect);
        }
        // Refused: the general path says why, in its words.
    }
    parse_general_into(line, into)
}

/// The general path alone: serde reads the line, without the fast reader in front. Public
/// only so that tests and the fuzz target can hold [`parse_line`] to it: both must give the
/// same record, or the same error, for every line.
#[doc(hidden)]
pub fn parse_line_general(line: &[u8]) -> Result<InvocationMetric, LineError> {
    let line = within_limit(line)?;
    let mut into = InvocationMetric::blank();
    parse_general_into(line, &mut into)?;
    Ok(into)
}

/// The line without a trailing `\r` (a CRLF file's), refused if longer than
/// [`MAX_LINE_BYTES`].
fn within_limit(line: &[u8]) -> Result<&[u8], LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.len() > MAX_LINE_BYTES {
        true => Err(LineError::TooLong {
            len: line.len() as u64,
        }),
        false => Ok(line),
    }
}

fn parse_general_into(line: &[u8], into: &mut InvocationMetric) -> Result<Dialect, LineError> {
    let raw: RawLine<'_> = serde_json::from_slice(line).map_err(|e| diagnose(line, e))?;
    // serde skips unknown fields without looking at their bytes: check the whole line, so
    // that no invalid UTF-8 is accepted anywhere in it.
    if let Err(e) = std::str::from_utf8(line) {
        return Err(invalid_utf8(e));
    }
    let dialect = raw.dialect();
    normalize_into(raw, dialect, into).map_err(|e| name_null(line, e))?;
    into.validate()?;
    Ok(dialect)
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ValidationError> {
    value.ok_or_else(|| ValidationError::new(field, "is missing"))
}

/// Maps a line's fields to the record, writing into `into` and reusing its string buffers.
fn normalize_into(
    raw: RawLine<'_>,
    dialect: Dialect,
    into: &mut InvocationMetric,
) -> Result<(), ValidationError> {
    let native = dialect == Dialect::Native;
    // The other dialects' names count only outside native lines: in a native line they are
    // unknown fields, ignored, exactly as a plain serde read of the native record ignores them.
    let aliases = !native;

    let success = match (raw.success, raw.status.as_deref()) {
        (Some(success), _) => success,
        (None, Some(status)) if !native => match status {
            "success" | "succeeded" | "completed" => true,
            "failed" | "cancelled" | "timed-out" | "error" => false,
            other => {
                return Err(ValidationError::new(
                    "status",
                    format!(
                        "unknown status {other:?} (expected success, failed, cancelled or timed-out)"
                    ),
                ));
            }
        },
        (None, _) => return Err(ValidationError::new("success", "is missing")),
    };

    let duration_ms = match (raw.duration_ms, raw.duration) {
        (Some(d), _) => d,
        (None, Some(d)) if !native => d,
        _ => return Err(ValidationError::new("durationMs", "is missing")),
    };

    let timestamp = match dialect {
        Dialect::Native => required(raw.timestamp, "timestamp")?.parse::<Timestamp>()?,
        // The seed's own field wins when both are there.
        Dialect::Framework => match (raw.timestamp, raw.start_time) {
            (Some(t), _) => t.parse()?,
            (None, Some(start)) => parse_time(&start, "startTime")?,
            (None, None) => return Err(ValidationError::new("startTime", "is missing")),
        },
        Dialect::Launcher => match (raw.start_time, raw.timestamp) {
            (Some(start), _) => parse_time(&start, "startTime")?,
            (None, Some(end)) => {
                let end = parse_time(&end, "timestamp")?;
                let start = end.unix_ms() - i64::try_from(duration_ms).unwrap_or(i64::MAX);
                Timestamp::from_unix_ms(start).ok_or_else(|| {
                    ValidationError::new("duration", "puts the start before year -9999")
                })?
            }
            (None, None) => return Err(ValidationError::new("startTime", "is missing")),
        },
    };

    let tokens = match (raw.tokens, raw.tokens_total) {
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) if dialect == Dialect::Launcher => 0,
        (None, None) => return Err(ValidationError::new("tokens", "is missing")),
    };
    let cost = match (raw.cost, raw.cost_usd) {
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) if dialect == Dialect::Launcher => 0.0,
        (None, None) => return Err(ValidationError::new("cost", "is missing")),
    };
    let exit_code = match raw.exit_code {
        Some(code) => code,
        None if !native => {
            if success {
                0
            } else {
                -1
            }
        }
        None => return Err(ValidationError::new("exitCode", "is missing")),
    };
    let attempt = match (raw.attempt, raw.attempt_number.filter(|_| aliases)) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) if !native => 1,
        (None, None) => return Err(ValidationError::new("attempt", "is missing")),
    };
    let output_parsed = match raw.output_parsed {
        Some(p) => p,
        None if !native => false,
        None => return Err(ValidationError::new("outputParsed", "is missing")),
    };

    let invocation_id = required(raw.invocation_id, "invocationId")?;
    let agent = required(raw.agent.or(raw.agent_type), "agent")?;
    let phase = required(raw.phase, "phase")?;
    refill(&mut into.invocation_id, &invocation_id);
    refill(&mut into.agent, &agent);
    into.phase = phase;
    refill_optional(&mut into.task_id, raw.task_id.as_deref());
    into.duration_ms = duration_ms;
    into.tokens = tokens;
    into.input_tokens = raw.input_tokens.or(raw.tokens_prompt.filter(|_| aliases));
    into.output_tokens = raw
        .output_tokens
        .or(raw.tokens_completion.filter(|_| aliases));
    into.cached_tokens = raw.cached_tokens;
    into.cost = cost;
    into.exit_code = exit_code;
    into.success = success;
    into.attempt = attempt;
    into.output_parsed = output_parsed;
    refill_optional(&mut into.model, raw.model.as_deref());
    refill_optional(
        &mut into.tier,
        raw.tier
            .as_deref()
            .or(raw.routing_tier.as_deref().filter(|_| aliases)),
    );
    into.timestamp = timestamp;
    refill_optional(&mut into.error_class, raw.error_class.as_deref());
    Ok(())
}

fn parse_time(s: &str, field: &'static str) -> Result<Timestamp, ValidationError> {
    s.parse().map_err(|e: ValidationError| ValidationError {
        field,
        reason: e.reason,
    })
}

/// The fields of every dialect whose values are non-negative whole numbers.
const WHOLE_NUMBER_FIELDS: [&str; 12] = [
    "phase",
    "durationMs",
    "duration",
    "tokens",
    "tokensTotal",
    "inputTokens",
    "tokensPrompt",
    "outputTokens",
    "tokensCompletion",
    "cachedTokens",
    "attempt",
    "attemptNumber",
];

/// A required field that reads as absent, said more exactly where the line shows why: it
/// is `null` (for a number, JavaScript's `JSON.stringify` writes `NaN` and `Infinity` so),
/// or the line names it in snake_case (`duration_ms`), as Python code often does.
fn name_null(line: &[u8], e: ValidationError) -> ValidationError {
    if e.reason != "is missing" {
        return e;
    }
    let Ok(object) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line)
    else {
        return e;
    };
    if object.get(e.field).is_some_and(serde_json::Value::is_null) {
        let is_number = WHOLE_NUMBER_FIELDS.contains(&e.field)
            || matches!(e.field, "cost" | "costUsd" | "exitCode");
        return ValidationError::new(
            e.field,
            match is_number {
                true => "is null (JSON.stringify writes NaN and Infinity as null)",
                false => "is null: it needs a value",
            },
        );
    }
    missing_field(e.field, |key| object.contains_key(key))
}

/// The error for a required `field` that is absent: "is missing", with a hint when the
/// input (`has_key` says which keys it has) names the field in snake_case instead.
#[doc(hidden)]
pub fn missing_field(field: &'static str, has_key: impl Fn(&str) -> bool) -> ValidationError {
    let snake: String = field
        .chars()
        .flat_map(|c| match c.is_ascii_uppercase() {
            true => vec!['_', c.to_ascii_lowercase()],
            false => vec![c],
        })
        .collect();
    match snake != field && has_key(&snake) {
        true => ValidationError::new(
            field,
            format!("is missing (`{snake}` is given: field names are camelCase, `{field}`)"),
        ),
        false => ValidationError::new(field, "is missing"),
    }
}

/// serde's syntax error for `line`, in the reader's words: the column without serde's
/// "line 1", and an unpaired *trailing* surrogate
/// escape (`\udc00`), which serde calls a "lone leading surrogate", named as what it is.
fn syntax_error_message(line: &[u8], e: serde_json::Error) -> String {
    let column = e.column();
    let message = without_serde_line(&e);
    // The escape's hex digits end at the reported column.
    let escape = column
        .checked_sub(6)
        .and_then(|start| line.get(start..column))
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|b| b.strip_prefix("\\u"))
        .and_then(|hex| u16::from_str_radix(hex, 16).ok());
    match escape {
        // (Any other message is left as it is: it does not contain the words.)
        Some(unit @ 0xdc00..=0xdfff) => message.replace(
            "lone leading surrogate",
            &format!("lone trailing surrogate \\u{unit:04x} (without a leading one before it)"),
        ),
        _ => message,
    }
}

/// The error for `NaN`, `Infinity` or `-Infinity` where serde stopped (at 1-based `column`):
/// Python's `json.dumps` writes them for non-finite floats, and JSON has no spelling for
/// them. Names the field when the value follows a plain `"key":`.
fn non_finite_number(line: &[u8], column: usize) -> Option<String> {
    // serde stops at the word, or just after the minus sign that starts `-Infinity`.
    let (at, word) = [
        (1, "-Infinity"),
        (2, "-Infinity"),
        (1, "NaN"),
        (1, "Infinity"),
    ]
    .into_iter()
    .filter_map(|(back, word)| Some((column.checked_sub(back)?, word)))
    .find(|(at, word)| {
        line.get(*at..)
            .is_some_and(|rest| rest.starts_with(word.as_bytes()))
    })?;
    let column = at + 1;
    let before = line[..at]
        .trim_ascii_end()
        .strip_suffix(b":")?
        .trim_ascii_end();
    // Named only when it reads as a field name: the key is the data's, shown on a terminal.
    let field = before
        .strip_suffix(b"\"")
        .and_then(|key| key.rsplit(|b| *b == b'"').next())
        .filter(|key| {
            (1..=40).contains(&key.len())
                && key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        })
        .and_then(|key| std::str::from_utf8(key).ok())
        .map_or(String::new(), |key| format!("`{key}` is "));
    Some(format!(
        "invalid JSON: {field}{word} at column {column}, which JSON cannot spell (Python's \
         json.dumps writes NaN and Infinity unless allow_nan=False)"
    ))
}

/// The error for a line that is not UTF-8, at the first byte that is not.
fn invalid_utf8(e: std::str::Utf8Error) -> LineError {
    LineError::Json(format!(
        "invalid UTF-8 at byte {} of the line",
        e.valid_up_to() + 1
    ))
}

/// serde's message without its "line 1": serde reads one line at a time here, so its line
/// would only be confused with the file's line number the message is shown with.
fn without_serde_line(e: &serde_json::Error) -> String {
    let column = e.column();
    match e.line() {
        1 => e.to_string().replace(
            &format!(" at line 1 column {column}"),
            &format!(" at column {column}"),
        ),
        _ => e.to_string(),
    }
}

/// Turns a serde error into one that names the field, re-reading the line generically.
/// Only runs for lines that already failed, so the happy path pays nothing for it.
fn diagnose(line: &[u8], err: serde_json::Error) -> LineError {
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        // UTF-16 (what Windows PowerShell's `>` writes) has a zero byte in every ASCII
        // character; say so instead of "expected value at column 1" on every line.
        Err(_) if line.starts_with(&[0xff, 0xfe]) || line.starts_with(&[0xfe, 0xff]) => {
            return LineError::Json("the file is UTF-16, not UTF-8: convert it to UTF-8".into());
        }
        Err(_)
            if !line.is_empty() && line.iter().filter(|b| **b == 0).count() * 3 >= line.len() =>
        {
            return LineError::Json(
                "invalid JSON: a third or more of the line is zero bytes (UTF-16 text, or binary)"
                    .into(),
            );
        }
        Err(_) if line.starts_with("\u{feff}".as_bytes()) => {
            return LineError::Json(
                "a byte order mark (U+FEFF) starts this line; it belongs only at the start of a file"
                    .into(),
            );
        }
        Err(e) => {
            if let Err(utf8) = std::str::from_utf8(line) {
                return invalid_utf8(utf8);
            }
            if let Some(message) = non_finite_number(line, e.column()) {
                return LineError::Json(message);
            }
            return LineError::Json(format!("invalid JSON: {}", syntax_error_message(line, e)));
        }
    };
    let Some(object) = value.as_object() else {
        return LineError::Json(format!(
            "expected a JSON object, found {}",
            json_kind(&value)
        ));
    };
    const STRINGS: [&str; 12] = [
        "invocationId",
        "agent",
        "agentType",
        "taskId",
        "status",
        "model",
        "tier",
        "routingTier",
        "timestamp",
        "startTime",
        "errorClass",
        "_",
    ];
    for (name, v) in object {
        let expected = if v.is_null() {
            None
        } else if let Some(field) = STRINGS.iter().find(|f| *f == name) {
            (!v.is_string()).then(|| (*field, "a string".into()))
        } else if let Some(field) = WHOLE_NUMBER_FIELDS.iter().find(|f| *f == name) {
            // The kind is checked against the type's range (a value past the domain's limit
            // but inside the type is refused later, by validation, with its own message);
            // the message names the limit a value must keep to, which is the domain's.
            let (type_limit, limit) = match *field {
                "phase" | "attempt" | "attemptNumber" => (u64::from(u32::MAX), u64::from(u32::MAX)),
                "durationMs" | "duration" => (u64::MAX, MAX_DURATION_MS),
                _ => (u64::MAX, MAX_TOKENS),
            };
            v.as_u64()
                .is_none_or(|n| n > type_limit)
                .then(|| (*field, format!("a whole number from 0 to {limit}")))
        } else {
            match name.as_str() {
                "cost" => (!v.is_number()).then(|| ("cost", "a number".into())),
                "costUsd" => (!v.is_number()).then(|| ("costUsd", "a number".into())),
                "exitCode" => v
                    .as_i64()
                    .is_none_or(|n| i32::try_from(n).is_err())
                    .then(|| ("exitCode", "a 32-bit integer".into())),
                "success" => (!v.is_boolean()).then(|| ("success", "true or false".into())),
                "outputParsed" => {
                    (!v.is_boolean()).then(|| ("outputParsed", "true or false".into()))
                }
                _ => None,
            }
        };
        if let Some((field, wanted)) = expected {
            return LineError::Field(ValidationError::new(
                field,
                format!("expected {wanted}, found {}", json_kind(v)),
            ));
        }
    }
    LineError::Json(format!("invalid record: {}", without_serde_line(&err)))
}

fn json_kind(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) if s.len() > 40 => "a long string".into(),
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regressions: a byte order mark starting a line inside a file, and invalid UTF-8
    /// inside a field no dialect knows, were accepted; an unpaired trailing surrogate was
    /// called a leading one.
    #[test]
    fn a_bom_mid_file_invalid_utf8_anywhere_and_lone_surrogates_are_refused_clearly() {
        let with_bom = [BOM_BYTES, NATIVE.as_bytes()].concat();
        let error = parse_line(&with_bom).unwrap_err().to_string();
        assert!(error.contains("byte order mark"), "{error}");

        let unknown = NATIVE.replace("\"phase\"", "\"note\":\"\u{1}\",\"phase\"");
        let mut bytes = unknown.into_bytes();
        let at = bytes.iter().position(|b| *b == 1).unwrap();
        bytes[at] = 0xff;
        let error = parse_line(&bytes).unwrap_err().to_string();
        assert!(error.contains("invalid UTF-8"), "{error}");

        let lone = NATIVE.replace("\"a\"", r#""a\udc00""#);
        let error = parse_line(lone.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("lone trailing surrogate \\udc00"), "{error}");
        let lone = NATIVE.replace("\"a\"", r#""a\ud800""#);
        let error = parse_line(lone.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("hex escape"), "{error}");
    }

    const BOM_BYTES: &[u8] = "\u{feff}".as_bytes();

    /// Regression: a native record that also carried `startTime` was read as the launcher
    /// form and its `timestamp` replaced.
    #[test]
    fn a_native_record_keeps_its_timestamp_whatever_else_it_carries() {
        let line = br#"{"invocationId":"n1","agent":"coder","phase":1,"durationMs":5,"tokens":1,"cost":0,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-25T10:00:00Z","startTime":"2020-01-01T00:00:00Z","duration":99,"agentType":"other","costUsd":7}"#;
        let (metric, dialect) = parse_line_with_dialect(line).unwrap();
        assert_eq!(dialect, Dialect::Native);
        assert_eq!(metric.timestamp.to_string(), "2026-11-25T10:00:00.000Z");
        assert_eq!(
            (metric.agent.as_str(), metric.duration_ms, metric.cost),
            ("coder", 5, 0.0)
        );
    }

    /// In the framework form, a `timestamp` that is present wins over `startTime`.
    #[test]
    fn a_framework_line_with_both_times_keeps_the_seed_field() {
        let line = br#"{"invocationId":"f1","agentType":"coder","phase":2,"durationMs":40,"tokensTotal":30,"costUsd":0.25,"status":"failed","startTime":"2020-01-01T00:00:00Z","timestamp":"2026-11-25T10:00:00Z"}"#;
        let (metric, dialect) = parse_line_with_dialect(line).unwrap();
        assert_eq!(dialect, Dialect::Framework);
        assert_eq!(metric.timestamp.to_string(), "2026-11-25T10:00:00.000Z");
    }

    const NATIVE: &str = r#"{"invocationId":"i1","agent":"a","phase":1,"durationMs":5,"tokens":3,"cost":0.1,"exitCode":0,"success":true,"attempt":1,"outputParsed":true,"timestamp":"2026-11-25T10:00:00.000Z"}"#;

    #[test]
    fn native_lines_parse_and_crlf_and_a_file_starting_with_a_byte_order_mark_are_tolerated() {
        let (m, d) = parse_line_with_dialect(format!("{NATIVE}\r").as_bytes()).unwrap();
        assert_eq!(d, Dialect::Native);
        assert_eq!(m.to_json_line(), NATIVE);
        // UTF-16 with its byte order mark, either way round, is named as such.
        let little: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(NATIVE.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let big: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain(NATIVE.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        for utf16 in [little, big] {
            let error = parse_line(&utf16).unwrap_err().to_string();
            assert_eq!(error, "the file is UTF-16, not UTF-8: convert it to UTF-8");
        }
        let second_line: Vec<u8> = NATIVE.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let error = parse_line(&second_line).unwrap_err().to_string();
        assert!(error.contains("zero bytes"), "{error}");
        // The mark is the file's, not the line's: readers leave it out of the first line
        // only.
        let file = [
            BOM_BYTES,
            NATIVE.as_bytes(),
            b"\r\n",
            BOM_BYTES,
            NATIVE.as_bytes(),
        ]
        .concat();
        let (mut records, mut problems) = (Vec::new(), Vec::new());
        let stats =
            crate::read_records(&file[..], |_, m| records.push(m), |p| problems.push(p.line))
                .unwrap();
        assert_eq!(
            (records.len(), problems, stats.bytes),
            (1, vec![2], file.len() as u64)
        );
        assert_eq!(records[0].to_json_line(), NATIVE);
    }

    #[test]
    fn other_dialects_names_are_unknown_fields_in_a_native_line() {
        let with = |from: &str, to: &str| NATIVE.replace(from, to);
        // `attemptNumber` stands in for `attempt` only in the other dialects.
        let error =
            parse_line(with("\"attempt\":1", "\"attemptNumber\":2").as_bytes()).unwrap_err();
        assert_eq!(error.to_string(), "invalid `attempt`: is missing");
        let m = parse_line(
            with(
                "}",
                ",\"tokensPrompt\":7,\"tokensCompletion\":8,\"routingTier\":\"x\"}",
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (m.input_tokens, m.output_tokens, m.tier),
            (None, None, None)
        );
    }

    #[test]
    fn framework_lines_are_normalised() {
        let line = r#"{"invocationId":"f1","agentType":"coder","phase":2,"taskId":"t","durationMs":40,"tokensTotal":30,"tokensPrompt":20,"tokensCompletion":10,"costUsd":0.25,"status":"cancelled","attemptNumber":3,"startTime":"2026-11-25T10:00:00+01:00","routingTier":"premium","model":"m"}"#;
        let (m, d) = parse_line_with_dialect(line.as_bytes()).unwrap();
        assert_eq!(d, Dialect::Framework);
        assert_eq!(m.agent, "coder");
        assert_eq!(
            (m.tokens, m.input_tokens, m.output_tokens),
            (30, Some(20), Some(10))
        );
        assert_eq!(
            (m.cost, m.success, m.attempt, m.exit_code),
            (0.25, false, 3, -1)
        );
        assert_eq!(m.tier.as_deref(), Some("premium"));
        assert_eq!(m.timestamp.to_string(), "2026-11-25T10:00:00.000+01:00");
        assert!(!m.output_parsed);
    }

    #[test]
    fn launcher_lines_take_start_from_start_time_or_completion_minus_duration() {
        let with_start = r#"{"invocationId":"l1","agent":"x","phase":0,"duration":1500,"startTime":"2026-11-25T10:00:00Z","timestamp":"2026-11-25T10:00:01.500Z","exitCode":null,"status":"timed-out","tokens":9}"#;
        let (m, d) = parse_line_with_dialect(with_start.as_bytes()).unwrap();
        assert_eq!(d, Dialect::Launcher);
        assert_eq!(m.timestamp.to_string(), "2026-11-25T10:00:00.000Z");
        assert_eq!((m.duration_ms, m.exit_code, m.success), (1500, -1, false));
        assert_eq!((m.attempt, m.cost), (1, 0.0));

        let completion_only = r#"{"invocationId":"l2","agent":"x","phase":0,"duration":1500,"timestamp":"2026-11-25T10:00:01.500Z","exitCode":0,"status":"success"}"#;
        let m = parse_line(completion_only.as_bytes()).unwrap();
        assert_eq!(
            m.timestamp.to_utc_millis_string(),
            "2026-11-25T10:00:00.000Z"
        );
        assert_eq!(m.tokens, 0);
    }

    /// A required field written as `null` (what `JSON.stringify` makes of NaN) is called
    /// null, not missing, with the NaN hint for numbers only; a field really missing stays
    /// "missing".
    #[test]
    fn a_null_required_field_is_called_null() {
        for parse in [parse_line, parse_line_general] {
            let error = parse(NATIVE.replace("0.1", "null").as_bytes()).unwrap_err();
            assert_eq!(
                error.to_string(),
                "invalid `cost`: is null (JSON.stringify writes NaN and Infinity as null)"
            );
            let error = parse(NATIVE.replace("\"cost\":0.1,", "").as_bytes()).unwrap_err();
            assert_eq!(error.to_string(), "invalid `cost`: is missing");
            // A string has no NaN to blame.
            let error = parse(NATIVE.replace("\"a\"", "null").as_bytes()).unwrap_err();
            assert_eq!(
                error.to_string(),
                "invalid `agent`: is null: it needs a value"
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (NATIVE.replace("\"phase\":1", "\"phase\":-1"), "phase"),
            (NATIVE.replace("\"phase\":1,", ""), "phase"),
            (NATIVE.replace("\"cost\":0.1", "\"cost\":\"lots\""), "cost"),
            (NATIVE.replace("\"cost\":0.1", "\"cost\":-1"), "cost"),
            (NATIVE.replace("\"attempt\":1", "\"attempt\":0"), "attempt"),
            (NATIVE.replace("\"agent\":\"a\"", "\"agent\":\"\""), "agent"),
            (NATIVE.replace("\"agent\":\"a\"", "\"agent\":7"), "agent"),
            (NATIVE.replace("10:00:00.000Z", "10:00:00"), "timestamp"),
            (
                NATIVE.replace("\"success\":true", "\"success\":1"),
                "success",
            ),
            (
                NATIVE.replace("\"exitCode\":0", "\"exitCode\":99999999999"),
                "exitCode",
            ),
        ];
        for (line, field) in cases {
            match parse_line(line.as_bytes()) {
                Err(LineError::Field(e)) => assert_eq!(e.field, field, "{line}"),
                other => panic!("{line}: expected an error naming {field}, got {other:?}"),
            }
        }
    }

    /// A required field named in snake_case is missing, and the error says what to write.
    #[test]
    fn a_snake_case_field_gets_a_hint() {
        for (from, to, field) in [
            ("durationMs", "duration_ms", "durationMs"),
            ("invocationId", "invocation_id", "invocationId"),
        ] {
            let line = NATIVE.replace(from, to);
            let expected = format!(
                "invalid `{field}`: is missing (`{to}` is given: field names are camelCase, `{field}`)"
            );
            assert_eq!(
                parse_line(line.as_bytes()).unwrap_err().to_string(),
                expected
            );
            assert_eq!(
                parse_line_general(line.as_bytes()).unwrap_err().to_string(),
                expected
            );
        }
        // A field missing without a snake_case twin is plainly missing.
        let line = NATIVE.replace("\"durationMs\":5,", "");
        assert_eq!(
            parse_line(line.as_bytes()).unwrap_err().to_string(),
            "invalid `durationMs`: is missing"
        );
    }

    /// A syntax error names the column alone: the line is the file's, which the reader
    /// shows beside it, never serde's "line 1".
    #[test]
    fn a_syntax_error_names_its_column_not_serdes_line_1() {
        for (line, expected) in [
            (
                &b"{\"agent\":"[..],
                "invalid JSON: EOF while parsing a value at column 9",
            ),
            (b"{\"agent\" 1}", "invalid JSON: expected `:` at column 10"),
        ] {
            let error = parse_line(line).unwrap_err().to_string();
            assert_eq!(error, expected);
            assert_eq!(parse_line_general(line).unwrap_err().to_string(), expected);
        }
        // Bytes that are not UTF-8 inside a field every dialect knows.
        let mut bytes = NATIVE.as_bytes().to_vec();
        let at = NATIVE.find("\"a\"").unwrap() + 1;
        bytes[at] = 0xff;
        for error in [parse_line(&bytes), parse_line_general(&bytes)] {
            let error = error.unwrap_err().to_string();
            assert_eq!(
                error,
                format!("invalid UTF-8 at byte {} of the line", at + 1)
            );
        }
        // Python's non-finite floats, named with their field.
        for (value, word) in [
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
        ] {
            let line = NATIVE.replace("0.1", value);
            for error in [
                parse_line(line.as_bytes()),
                parse_line_general(line.as_bytes()),
            ] {
                let error = error.unwrap_err().to_string();
                assert!(
                    error.starts_with(&format!("invalid JSON: `cost` is {word} at column ")),
                    "{error}"
                );
                assert!(error.contains("allow_nan=False"), "{error}");
            }
        }
        // A record's error, not the syntax's: a field given twice.
        let twice = NATIVE.replacen('{', "{\"agent\":\"b\",", 1);
        for error in [
            parse_line(twice.as_bytes()),
            parse_line_general(twice.as_bytes()),
        ] {
            let error = error.unwrap_err().to_string();
            assert!(
                error.starts_with("invalid record: duplicate field `agent` at column "),
                "{error}"
            );
        }
    }

    /// A value of the wrong kind is refused naming the field, what it should be and what it
    /// is (long strings not repeated); integers at their type's limit are of the right kind.
    #[test]
    fn a_wrong_value_is_described_exactly() {
        const FRAMEWORK: &str = r#"{"invocationId":"f1","agentType":"coder","phase":2,"durationMs":40,"tokensTotal":30,"costUsd":0.25,"status":"failed","startTime":"2026-11-25T10:00:00Z"}"#;
        let long = "x".repeat(41);
        let just_short = "x".repeat(40);
        let cases = [
            (
                NATIVE.replace("\"phase\":1", "\"phase\":-1"),
                "phase",
                "a whole number from 0 to 4294967295, found -1",
            ),
            (
                NATIVE.replace("\"phase\":1", "\"phase\":4294967296"),
                "phase",
                "a whole number from 0 to 4294967295, found 4294967296",
            ),
            (
                NATIVE.replace("\"tokens\":3", "\"tokens\":true"),
                "tokens",
                "a whole number from 0 to 10000000000, found true",
            ),
            (
                NATIVE.replace("\"tokens\":3", "\"tokens\":[3]"),
                "tokens",
                "a whole number from 0 to 10000000000, found an array",
            ),
            (
                NATIVE.replace("\"tokens\":3", &format!("\"tokens\":\"{long}\"")),
                "tokens",
                "a whole number from 0 to 10000000000, found a long string",
            ),
            (
                NATIVE.replace("\"tokens\":3", &format!("\"tokens\":\"{just_short}\"")),
                "tokens",
                &format!("a whole number from 0 to 10000000000, found \"{just_short}\""),
            ),
            (
                NATIVE.replace("\"agent\":\"a\"", "\"agent\":{\"x\":1}"),
                "agent",
                "a string, found an object",
            ),
            (
                NATIVE.replace("\"cost\":0.1", "\"cost\":\"0.1\""),
                "cost",
                "a number, found \"0.1\"",
            ),
            (
                FRAMEWORK.replace("\"costUsd\":0.25", "\"costUsd\":\"x\""),
                "costUsd",
                "a number, found \"x\"",
            ),
            (
                NATIVE.replace("\"exitCode\":0", "\"exitCode\":1.5"),
                "exitCode",
                "a 32-bit integer, found 1.5",
            ),
            (
                NATIVE.replace("\"exitCode\":0", "\"exitCode\":2147483648"),
                "exitCode",
                "a 32-bit integer, found 2147483648",
            ),
            (
                NATIVE.replace("\"success\":true", "\"success\":\"yes\""),
                "success",
                "true or false, found \"yes\"",
            ),
            (
                NATIVE.replace("\"outputParsed\":true", "\"outputParsed\":1"),
                "outputParsed",
                "true or false, found 1",
            ),
        ];
        for (line, field, expected) in cases {
            for parse in [parse_line, parse_line_general] {
                let error = parse(line.as_bytes()).unwrap_err().to_string();
                assert_eq!(
                    error,
                    format!("invalid `{field}`: expected {expected}"),
                    "{line}"
                );
            }
        }
        // At the limit of its type a value is of the right kind: the field in error is the
        // other one (fields are looked at in name order, `phase` before `tokens`).
        let at_limit = NATIVE
            .replace("\"phase\":1", "\"phase\":4294967295")
            .replace("\"tokens\":3", "\"tokens\":-3");
        for parse in [parse_line, parse_line_general] {
            match parse(at_limit.as_bytes()) {
                Err(LineError::Field(e)) => assert_eq!(e.field, "tokens"),
                other => panic!("{other:?}"),
            }
        }
        // At the limit of its type: no complaint about the kind of value.
        for line in [
            NATIVE.replace("\"phase\":1", "\"phase\":4294967295"),
            NATIVE.replace("\"exitCode\":0", "\"exitCode\":-2147483648"),
        ] {
            if let Err(error) = parse_line(line.as_bytes()) {
                assert!(!error.to_string().contains("expected"), "{line}: {error}");
            }
        }
    }

    #[test]
    fn non_objects_and_garbage_are_json_errors() {
        for line in [
            &b"[1,2]"[..],
            b"42",
            b"{\"invocationId\":",
            b"\0\0\0",
            b"\xff\xfe",
            b"",
        ] {
            assert!(
                matches!(parse_line(line), Err(LineError::Json(_))),
                "{line:?}"
            );
        }
        // Zero bytes are named when they are a third of the line or more — not on a blank
        // line, which has none.
        let message = |line: &[u8]| parse_line(line).unwrap_err().to_string();
        for line in [&b"\0"[..], b"\0\0\0", b"{\0\"\0a\0\"\0}"] {
            assert!(message(line).contains("zero bytes"), "{line:?}");
        }
        for line in [&b""[..], b"\0{\"ab\":1}"] {
            assert!(!message(line).contains("zero bytes"), "{line:?}");
        }
    }

    #[test]
    fn over_long_lines_are_refused_without_parsing() {
        let too_long = vec![b' '; MAX_LINE_BYTES + 1];
        let longest = vec![b' '; MAX_LINE_BYTES];
        let longest_crlf = [&longest[..], b"\r"].concat();
        for parse in [parse_line, parse_line_general] {
            let error = parse(&too_long).unwrap_err();
            assert_eq!(
                error,
                LineError::TooLong {
                    len: MAX_LINE_BYTES as u64 + 1
                }
            );
            // At the limit (its `\r` not counted) the line is read, and found to be blank.
            for line in [&longest, &longest_crlf] {
                assert!(matches!(parse(line), Err(LineError::Json(_))));
            }
        }
    }

    /// A line is native only with every field the seed requires; lacking any one, another
    /// dialect's field makes it that dialect's.
    #[test]
    fn a_line_is_native_only_with_every_seed_field() {
        const REQUIRED: [&str; 11] = [
            "\"invocationId\":\"i1\",",
            "\"agent\":\"a\",",
            "\"phase\":1,",
            "\"durationMs\":5,",
            "\"tokens\":3,",
            "\"cost\":0.1,",
            "\"exitCode\":0,",
            "\"success\":true,",
            "\"attempt\":1,",
            "\"outputParsed\":true,",
            ",\"timestamp\":\"2026-11-25T10:00:00.000Z\"",
        ];
        let dialect = |line: &str| serde_json::from_str::<RawLine<'_>>(line).unwrap().dialect();
        for marker in [
            "\"agentType\":\"b\"",
            "\"tokensTotal\":4",
            "\"costUsd\":0.2",
        ] {
            let with_marker = NATIVE.replacen('{', &format!("{{{marker},"), 1);
            assert_eq!(dialect(&with_marker), Dialect::Native, "{with_marker}");
            for field in REQUIRED {
                let line = with_marker.replace(field, "");
                assert_ne!(line, with_marker, "{field}");
                assert_eq!(dialect(&line), Dialect::Framework, "{line}");
            }
        }
        let launcher = NATIVE.replace("\"durationMs\":5", "\"duration\":5");
        assert_eq!(dialect(&launcher), Dialect::Launcher);
        let both = NATIVE.replace("\"tokens\":3", "\"duration\":5");
        assert_eq!(
            dialect(&both),
            Dialect::Native,
            "durationMs present: not launcher"
        );
    }

    /// Where the seed's field is missing from a native line, the error names it — another
    /// dialect's stand-in (`status` for `success`) counts for nothing, and no default
    /// (a launcher's 0 tokens or cost) is taken.
    #[test]
    fn a_native_line_missing_a_required_field_names_it() {
        for (field, spelled) in [
            ("invocationId", "\"invocationId\":\"i1\","),
            ("agent", "\"agent\":\"a\","),
            ("phase", "\"phase\":1,"),
            ("durationMs", "\"durationMs\":5,"),
            ("tokens", "\"tokens\":3,"),
            ("cost", "\"cost\":0.1,"),
            ("exitCode", "\"exitCode\":0,"),
            ("success", "\"success\":true,"),
            ("attempt", "\"attempt\":1,"),
            ("outputParsed", "\"outputParsed\":true,"),
            ("timestamp", ",\"timestamp\":\"2026-11-25T10:00:00.000Z\""),
        ] {
            let line = NATIVE.replace(spelled, "");
            let line = match field {
                "success" => line.replace('}', ",\"status\":\"success\"}"),
                _ => line,
            };
            for parse in [parse_line, parse_line_general] {
                match parse(line.as_bytes()) {
                    Err(LineError::Field(e)) => {
                        assert_eq!(
                            (e.field, e.reason.as_str()),
                            (field, "is missing"),
                            "{line}"
                        );
                    }
                    other => panic!("{line}: expected {field} missing, got {other:?}"),
                }
            }
        }
    }
}
