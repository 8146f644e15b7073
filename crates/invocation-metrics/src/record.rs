//! The record: one [`InvocationMetric`] per agent invocation, and its validation rules.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ValidationError;

/// Largest `cost` a record may carry, in USD. Costs are summed exactly in picodollars (a
/// 128-bit integer): at this bound, more records than any file can hold still sum exactly.
pub const MAX_COST_USD: f64 = 1e12;
/// Largest token count (`tokens`, `inputTokens`, `outputTokens`, `cachedTokens`) a record
/// may carry: ten billion, a thousand times the largest context windows. Sums are exact
/// 64-bit integers up to 1.8 billion records at the bound.
pub const MAX_TOKENS: u64 = 10_000_000_000;
/// Longest `durationMs` a record may carry: ten years. Sums are exact 64-bit integers up to
/// 58 million records at the bound.
pub const MAX_DURATION_MS: u64 = 315_576_000_000;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in Unix milliseconds: an invocation's
/// start and end in UTC must lie between them, so every time in the aggregate prints as a
/// four-digit-year RFC 3339 time.
const MIN_TIME_MS: i64 = -62_167_219_200_000;
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// One agent invocation, as written to a line of `invocations.jsonl`.
///
/// Field names on disk are camelCase, exactly those of the TypeScript framework family, so
/// files are interchangeable. Optional fields are omitted when absent; unknown fields are
/// ignored when reading.
///
/// | JSON | meaning |
/// |---|---|
/// | `invocationId` | unique id of the invocation |
/// | `agent` | agent name |
/// | `phase` | phase (stage) number |
/// | `taskId` | task or session within the phase (optional) |
/// | `durationMs` | wall-clock duration in milliseconds |
/// | `tokens` | total tokens |
/// | `inputTokens`, `outputTokens`, `cachedTokens` | when known (optional) |
/// | `cost` | estimated cost in USD |
/// | `exitCode` | process exit code |
/// | `success` | whether the invocation succeeded |
/// | `attempt` | which attempt this was; 1 is the first try |
/// | `outputParsed` | whether the output matched its schema |
/// | `model`, `tier` | model used; model-routing tier (optional) |
/// | `timestamp` | RFC 3339 time, with offset, at which the invocation **started** |
/// | `errorClass` | infrastructure error class, when it failed with one (optional) |
///
/// # Example
///
/// ```
/// use invocation_metrics::InvocationMetric;
///
/// let metric = InvocationMetric::new("inv-1", "planner", 1, "2026-11-25T10:00:00Z".parse()?);
/// assert_eq!(metric.attempt, 1);
/// metric.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationMetric {
    /// Unique invocation id.
    pub invocation_id: String,
    /// Agent name.
    pub agent: String,
    /// Phase (stage) number.
    pub phase: u32,
    /// Task or session id within the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Wall-clock duration in milliseconds.
    pub duration_ms: u64,
    /// Total tokens consumed.
    pub tokens: u64,
    /// Input tokens, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens served from the prompt cache, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Estimated cost in USD.
    pub cost: f64,
    /// Process exit code.
    pub exit_code: i32,
    /// Whether the invocation succeeded.
    pub success: bool,
    /// Which attempt this was: 1 is the first try, 2 the first retry.
    pub attempt: u32,
    /// Whether the output was parsed against its schema.
    pub output_parsed: bool,
    /// Model used for this invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model-routing tier, when routing is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// When the invocation started.
    pub timestamp: Timestamp,
    /// Infrastructure error class, set when the invocation failed with an infrastructure error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
}

/// By hand for `clone_from`, which reuses the target's strings: a batch of records
/// overwritten in place allocates nothing.
impl Clone for InvocationMetric {
    fn clone(&self) -> Self {
        let mut copy = Self::blank();
        copy.clone_from(self);
        copy
    }

    fn clone_from(&mut self, source: &Self) {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            invocation_id,
            agent,
            phase,
            task_id,
            duration_ms,
            tokens,
            input_tokens,
            output_tokens,
            cached_tokens,
            cost,
            exit_code,
            success,
            attempt,
            output_parsed,
            model,
            tier,
            timestamp,
            error_class,
        } = source;
        refill(&mut self.invocation_id, invocation_id);
        refill(&mut self.agent, agent);
        self.phase = *phase;
        refill_optional(&mut self.task_id, task_id.as_deref());
        self.duration_ms = *duration_ms;
        self.tokens = *tokens;
        self.input_tokens = *input_tokens;
        self.output_tokens = *output_tokens;
        self.cached_tokens = *cached_tokens;
        self.cost = *cost;
        self.exit_code = *exit_code;
        self.success = *success;
        self.attempt = *attempt;
        self.output_parsed = *output_parsed;
        refill_optional(&mut self.model, model.as_deref());
        refill_optional(&mut self.tier, tier.as_deref());
        self.timestamp = *timestamp;
        refill_optional(&mut self.error_class, error_class.as_deref());
    }
}

/// The record as one JSON object, written by hand: exactly the bytes `serde_json` writes for
/// it (the same key order, unset optional fields left out, the same escapes and number
/// forms), at about half the cost — `serde_json` escape-checks every key of every record,
/// and this is on the path of every `record()`. A property test holds the two equal.
impl InvocationMetric {
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            invocation_id,
            agent,
            phase,
            task_id,
            duration_ms,
            tokens,
            input_tokens,
            output_tokens,
            cached_tokens,
            cost,
            exit_code,
            success,
            attempt,
            output_parsed,
            model,
            tier,
            timestamp,
            error_class,
        } = self;
        let mut numbers = itoa::Buffer::new();
        let mut number = |out: &mut Vec<u8>, key: &[u8], n: u64| {
            out.extend_from_slice(key);
            out.extend_from_slice(numbers.format(n).as_bytes());
        };
        out.extend_from_slice(b"{\"invocationId\":");
        json_string(out, invocation_id);
        out.extend_from_slice(b",\"agent\":");
        json_string(out, agent);
        number(out, b",\"phase\":", (*phase).into());
        if let Some(task_id) = task_id {
            out.extend_from_slice(b",\"taskId\":");
            json_string(out, task_id);
        }
        number(out, b",\"durationMs\":", *duration_ms);
        number(out, b",\"tokens\":", *tokens);
        if let Some(n) = input_tokens {
            number(out, b",\"inputTokens\":", *n);
        }
        if let Some(n) = output_tokens {
            number(out, b",\"outputTokens\":", *n);
        }
        if let Some(n) = cached_tokens {
            number(out, b",\"cachedTokens\":", *n);
        }
        out.extend_from_slice(b",\"cost\":");
        // serde_json's own float form (shortest round-trip; `null` for what JSON cannot hold).
        serde_json::to_writer(&mut *out, cost).expect("a Vec takes every write");
        out.extend_from_slice(b",\"exitCode\":");
        out.extend_from_slice(itoa::Buffer::new().format(*exit_code).as_bytes());
        out.extend_from_slice(if *success {
            b",\"success\":true"
        } else {
            b",\"success\":false"
        });
        number(out, b",\"attempt\":", (*attempt).into());
        out.extend_from_slice(if *output_parsed {
            b",\"outputParsed\":true"
        } else {
            b",\"outputParsed\":false"
        });
        for (key, value) in [(&b",\"model\":"[..], model), (b",\"tier\":", tier)] {
            if let Some(value) = value {
                out.extend_from_slice(key);
                json_string(out, value);
            }
        }
        out.extend_from_slice(b",\"timestamp\":");
        let mut buf = [0; RFC3339_MAX];
        match timestamp.write_rfc3339(&mut buf) {
            Some(text) => json_text(out, text),
            // Never for a validated record (its year is 0..=9999 in its offset).
            None => json_string(out, &timestamp.to_string()),
        }
        if let Some(error_class) = error_class {
            out.extend_from_slice(b",\"errorClass\":");
            json_string(out, error_class);
        }
        out.push(b'}');
    }
}

/// `text`, which needs no escapes, as a JSON string.
fn json_text(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// `value` as a JSON string: copied as it is when nothing in it needs an escape (ids and
/// names almost never do), else escaped by `serde_json`.
fn json_string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(&mut *out, value).expect("a Vec takes every write");
    } else {
        json_text(out, value);
    }
}

/// For readers that fill one record per line, reusing its string buffers, instead of
/// allocating a new record each time.
impl InvocationMetric {
    /// A record with empty strings, to be filled — for a caller that fills one record again
    /// and again and passes it to
    /// [`record_ref`](crate::InvocationMetricsCollector::record_ref). It does not validate
    /// until its fields are set.
    pub fn blank() -> Self {
        Self::new("", "", 0, Timestamp::UNIX_EPOCH)
    }
}

impl InvocationMetric {
    /// Bytes allocated for the record's text fields. A caller that fills one record again
    /// and again (reusing its buffers) can start afresh when one unusually long value left
    /// them large.
    pub fn text_capacity(&self) -> usize {
        let optional = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        self.invocation_id.capacity()
            + self.agent.capacity()
            + optional(&self.task_id)
            + optional(&self.model)
            + optional(&self.tier)
            + optional(&self.error_class)
    }
}

/// Replaces `field`'s text with `value`, keeping its buffer.
pub(crate) fn refill(field: &mut String, value: &str) {
    field.clear();
    field.push_str(value);
}

/// Like [`refill`], for an optional field.
pub(crate) fn refill_optional(field: &mut Option<String>, value: Option<&str>) {
    match value {
        Some(value) => refill(field.get_or_insert_with(String::new), value),
        None => *field = None,
    }
}

impl InvocationMetric {
    /// A successful first attempt with zero duration, tokens and cost; set the other fields
    /// directly.
    pub fn new(
        invocation_id: impl Into<String>,
        agent: impl Into<String>,
        phase: u32,
        timestamp: Timestamp,
    ) -> Self {
        Self {
            invocation_id: invocation_id.into(),
            agent: agent.into(),
            phase,
            task_id: None,
            duration_ms: 0,
            tokens: 0,
            input_tokens: None,
            output_tokens: None,
            cached_tokens: None,
            cost: 0.0,
            exit_code: 0,
            success: true,
            attempt: 1,
            output_parsed: true,
            model: None,
            tier: None,
            timestamp,
            error_class: None,
        }
    }

    /// Checks the rules every stored record obeys: non-empty `invocationId` and `agent`,
    /// `attempt >= 1`, `cost` finite, not negative and at most [`MAX_COST_USD`], token counts
    /// at most [`MAX_TOKENS`], `durationMs` at most [`MAX_DURATION_MS`], and the invocation's
    /// start and end (in UTC) within years 0000 to 9999 — so that every accepted record
    /// gives exact sums and printable times in the aggregate. (A [`Timestamp`] always
    /// carries an offset: that is checked when it is built.)
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.invocation_id.is_empty() {
            return Err(ValidationError::new("invocationId", "must not be empty"));
        }
        if self.agent.is_empty() {
            return Err(ValidationError::new("agent", "must not be empty"));
        }
        if self.attempt == 0 {
            return Err(ValidationError::new(
                "attempt",
                "must be 1 or more (1 is the first try)",
            ));
        }
        if !self.cost.is_finite() || self.cost < 0.0 {
            return Err(ValidationError::new(
                "cost",
                format!("must be a finite number >= 0, got {}", self.cost),
            ));
        }
        if self.cost > MAX_COST_USD {
            return Err(ValidationError::new(
                "cost",
                format!("must be at most {MAX_COST_USD:e} USD, got {:e}", self.cost),
            ));
        }
        for (field, value) in [
            ("tokens", Some(self.tokens)),
            ("inputTokens", self.input_tokens),
            ("outputTokens", self.output_tokens),
            ("cachedTokens", self.cached_tokens),
        ] {
            if let Some(value) = value.filter(|v| *v > MAX_TOKENS) {
                return Err(ValidationError::new(
                    field,
                    format!("must be at most {MAX_TOKENS}, got {value}"),
                ));
            }
        }
        if self.duration_ms > MAX_DURATION_MS {
            return Err(ValidationError::new(
                "durationMs",
                format!(
                    "must be at most {MAX_DURATION_MS} (ten years), got {}",
                    self.duration_ms
                ),
            ));
        }
        let start = self.start_ms();
        if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&start) {
            return Err(ValidationError::new(
                "timestamp",
                format!(
                    "{} is outside 0000-01-01T00:00:00Z..9999-12-31T23:59:59.999Z in UTC",
                    self.timestamp
                ),
            ));
        }
        // In range in UTC, yet a year past 9999 or before 0 in its own offset (a time built
        // in code: text with such a year does not parse), it could not be written.
        if !(0..=9999).contains(&self.timestamp.as_offset_date_time().year()) {
            return Err(ValidationError::new(
                "timestamp",
                format!(
                    "{} has a year outside 0000..9999 in its offset, which RFC 3339 cannot write (give it in UTC)",
                    self.timestamp
                ),
            ));
        }
        if self.end_ms() > MAX_TIME_MS {
            return Err(ValidationError::new(
                "durationMs",
                "makes the invocation end after 9999-12-31T23:59:59.999Z",
            ));
        }
        Ok(())
    }

    /// Start of the invocation in whole milliseconds since the Unix epoch (rounded down).
    pub fn start_ms(&self) -> i64 {
        self.timestamp.unix_ms()
    }

    /// End of the half-open interval `[start, start + durationMs)` the invocation occupies.
    pub fn end_ms(&self) -> i64 {
        self.start_ms()
            .saturating_add(i64::try_from(self.duration_ms).unwrap_or(i64::MAX))
    }

    /// The line this record occupies in a metrics file, without the newline.
    pub fn to_json_line(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An RFC 3339 timestamp with an explicit UTC offset (`Z` or `±hh:mm`).
///
/// Serialized as RFC 3339; parsing refuses a timestamp without an offset.
///
/// ```
/// use invocation_metrics::Timestamp;
///
/// let t: Timestamp = "2026-11-25T10:00:00.250+01:00".parse()?;
/// assert_eq!(t.unix_ms(), 1_795_597_200_250);
/// assert!("2026-11-25T10:00:00".parse::<Timestamp>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(OffsetDateTime::UNIX_EPOCH);

    /// The current time, in UTC.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    /// A UTC timestamp at `ms` milliseconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_ms(ms: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .map(Self)
    }

    /// Whole milliseconds since the Unix epoch, rounded down.
    pub fn unix_ms(&self) -> i64 {
        // Whole seconds (rounded down) plus the millisecond within the second, which offsets
        // (whole seconds in the time crate) leave alone; no 128-bit division, which made this
        // the hottest function of sorting records by start. The time crate's range (±9999
        // years) fits comfortably in i64 milliseconds.
        self.0.unix_timestamp() * 1000 + i64::from(self.0.millisecond())
    }

    /// The underlying `time` value.
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// RFC 3339 in UTC with exactly three fractional digits and `Z`, as used for bucket starts.
    pub fn to_utc_millis_string(&self) -> String {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(value: OffsetDateTime) -> Self {
        Self(value)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(Self)
            .map_err(|e| {
                ValidationError::new(
                    "timestamp",
                    format!("{s:?} is not RFC 3339 with an offset: {e}"),
                )
            })
    }
}

/// RFC 3339 as JavaScript's `Date.prototype.toISOString` writes it — always at least three
/// fractional digits (six or nine when the time has that precision), `Z` for UTC, else the
/// offset — so a record written by the TypeScript framework reads back and writes out with
/// the very same text.
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0; RFC3339_MAX];
        if let Some(text) = self.write_rfc3339(&mut buf) {
            return f.write_str(text);
        }
        // A year outside 0..=9999 in its offset (only a Timestamp built in code, never a
        // validated record, gets here): the same instant in UTC, or else the time crate's
        // own form, which RFC 3339 readers will not take but which names the time.
        let utc = Self(self.0.to_offset(time::UtcOffset::UTC));
        match utc.write_rfc3339(&mut buf) {
            Some(text) => f.write_str(text),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The longest text [`Timestamp::write_rfc3339`] writes: `2026-11-27T10:00:00.123456789+05:30`.
const RFC3339_MAX: usize = 35;

impl Timestamp {
    /// Writes the text [`Display`](std::fmt::Display) gives into `buf`, digit by digit
    /// (every record written goes through here, and `format!`'s padding machinery cost a
    /// few hundred nanoseconds); `None` for a year outside 0..=9999.
    fn write_rfc3339<'b>(&self, buf: &'b mut [u8; RFC3339_MAX]) -> Option<&'b str> {
        let t = self.0;
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = Text { buf, len: 0 };
        out.number(year, 4);
        out.byte(b'-');
        out.number(u8::from(t.month()).into(), 2);
        out.byte(b'-');
        out.number(t.day().into(), 2);
        out.byte(b'T');
        out.number(t.hour().into(), 2);
        out.byte(b':');
        out.number(t.minute().into(), 2);
        out.byte(b':');
        out.number(t.second().into(), 2);
        out.byte(b'.');
        let nanos = t.nanosecond();
        if nanos.is_multiple_of(1_000_000) {
            out.number(nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            out.number(nanos / 1_000, 6);
        } else {
            out.number(nanos, 9);
        }
        let offset = t.offset();
        if offset.is_utc() {
            out.byte(b'Z');
        } else {
            let (hours, minutes, _) = offset.as_hms();
            out.byte(if offset.is_negative() { b'-' } else { b'+' });
            out.number(hours.unsigned_abs().into(), 2);
            out.byte(b':');
            out.number(minutes.unsigned_abs().into(), 2);
        }
        let Text { buf, len } = out;
        std::str::from_utf8(&buf[..len]).ok()
    }
}

/// A timestamp's text being written into a buffer of [`RFC3339_MAX`] bytes.
struct Text<'b> {
    buf: &'b mut [u8; RFC3339_MAX],
    len: usize,
}

impl Text<'_> {
    /// `n` in decimal, zero-padded to `width` digits.
    fn number(&mut self, mut n: u32, width: usize) {
        for at in (self.len..self.len + width).rev() {
            self.buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len += width;
    }

    fn byte(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; RFC3339_MAX];
        match self.write_rfc3339(&mut buf) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InvocationMetric {
        InvocationMetric {
            invocation_id: "inv-7".into(),
            agent: "reviewer".into(),
            phase: 3,
            task_id: Some("task-12".into()),
            duration_ms: 1500,
            tokens: 900,
            input_tokens: Some(700),
            output_tokens: Some(200),
            cached_tokens: Some(300),
            cost: 0.0125,
            exit_code: 2,
            success: false,
            attempt: 2,
            output_parsed: false,
            model: Some("model-large".into()),
            tier: Some("premium".into()),
            timestamp: "2026-11-25T10:00:00.123+02:00".parse().unwrap(),
            error_class: Some("rate-limit".into()),
        }
    }

    /// Regression: values the aggregate cannot represent exactly were accepted and then
    /// capped (a cost of 1e308 summed to 1.7e26) or printed as nonsense (times past year
    /// 9999, a year-0 start with a positive offset printed as year -1).
    #[test]
    fn values_past_what_the_aggregate_holds_exactly_are_refused_naming_the_bound() {
        let refused = |change: &dyn Fn(&mut InvocationMetric)| {
            let mut m = sample();
            change(&mut m);
            m.validate().unwrap_err()
        };
        let e = refused(&|m| m.cost = 1e308);
        assert_eq!(e.field, "cost");
        assert!(e.reason.contains("at most 1e12"), "{e}");
        let e = refused(&|m| m.tokens = MAX_TOKENS + 1);
        assert_eq!(e.field, "tokens");
        assert!(e.reason.contains("at most 10000000000"), "{e}");
        assert_eq!(
            refused(&|m| m.cached_tokens = Some(u64::MAX)).field,
            "cachedTokens"
        );
        assert_eq!(refused(&|m| m.duration_ms = u64::MAX).field, "durationMs");
        let e = refused(&|m| m.timestamp = "9999-12-31T23:59:59.999-01:00".parse().unwrap());
        assert_eq!(e.field, "timestamp");
        assert!(e.reason.contains("outside 0000-01-01"), "{e}");
        assert_eq!(
            refused(&|m| m.timestamp = "0000-01-01T00:30:00+01:00".parse().unwrap()).field,
            "timestamp"
        );
        let e = refused(&|m| {
            m.timestamp = "9999-12-31T23:00:00Z".parse().unwrap();
            m.duration_ms = 3_600_000;
        });
        assert_eq!(e.field, "durationMs");

        // The bounds themselves are accepted.
        let mut m = sample();
        m.cost = MAX_COST_USD;
        m.tokens = MAX_TOKENS;
        m.duration_ms = 999;
        m.timestamp = "9999-12-31T23:59:59Z".parse().unwrap();
        m.validate().unwrap();
        m.timestamp = "0000-01-01T00:00:00Z".parse().unwrap();
        m.duration_ms = MAX_DURATION_MS;
        m.validate().unwrap();
    }

    #[test]
    fn every_field_round_trips_with_the_seed_json_names() {
        let m = sample();
        let line = m.to_json_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "agent",
                "attempt",
                "cachedTokens",
                "cost",
                "durationMs",
                "errorClass",
                "exitCode",
                "inputTokens",
                "invocationId",
                "model",
                "outputParsed",
                "outputTokens",
                "phase",
                "success",
                "taskId",
                "tier",
                "timestamp",
                "tokens"
            ]
        );
        assert_eq!(value["timestamp"], "2026-11-25T10:00:00.123+02:00");
        let back: InvocationMetric = serde_json::from_str(&line).unwrap();
        assert_eq!(back, m);
    }

    /// Found by proptest: without serde_json's `float_roundtrip`, 916288.4271030256 read
    /// back as …255, so a cost changed on every load.
    #[test]
    fn regression_cost_round_trips_bit_for_bit() {
        let mut m = sample();
        m.cost = 916_288.427_103_025_6;
        let back: InvocationMetric = serde_json::from_str(&m.to_json_line()).unwrap();
        assert_eq!(back.cost.to_bits(), m.cost.to_bits());
    }

    #[test]
    fn absent_optional_fields_are_omitted_and_unknown_fields_ignored() {
        let m = InvocationMetric::new("a", "b", 1, "2026-01-01T00:00:00Z".parse().unwrap());
        let line = m.to_json_line();
        assert!(!line.contains("taskId") && !line.contains("model"));
        let with_extra = line.replacen('{', "{\"somethingNew\":[1,2],", 1);
        let back: InvocationMetric = serde_json::from_str(&with_extra).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn validation_names_the_field() {
        type Breaker = fn(&mut InvocationMetric);
        let cases: [(Breaker, &str); 6] = [
            (|m| m.invocation_id.clear(), "invocationId"),
            (|m| m.agent.clear(), "agent"),
            (|m| m.attempt = 0, "attempt"),
            (|m| m.cost = -0.5, "cost"),
            (|m| m.cost = f64::NAN, "cost"),
            (|m| m.cost = f64::INFINITY, "cost"),
        ];
        for (break_it, field) in cases {
            let mut m = sample();
            break_it(&mut m);
            let err = m.validate().unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.to_string().contains(field), "{err}");
        }
        sample().validate().unwrap();
    }

    #[test]
    fn timestamps_without_offset_are_refused() {
        for bad in [
            "2026-11-25T10:00:00",
            "2026-11-25",
            "yesterday",
            "",
            "2026-13-01T00:00:00Z",
        ] {
            let err = bad.parse::<Timestamp>().unwrap_err();
            assert_eq!(err.field, "timestamp", "{bad}");
        }
        let line = sample()
            .to_json_line()
            .replace("2026-11-25T10:00:00.123+02:00", "2026-11-25T10:00:00");
        let err = serde_json::from_str::<InvocationMetric>(&line).unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
    }

    #[test]
    fn unix_ms_is_the_nanoseconds_rounded_down() {
        for text in [
            "2026-11-25T10:00:00.123456789+05:30",
            "2026-11-25T10:00:00.999999999-09:59",
            "1969-12-31T23:59:59.000000001Z",
            "1900-01-01T00:00:00.5+01:00",
            "9999-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
        ] {
            let t: Timestamp = text.parse().unwrap();
            let nanos = t.as_offset_date_time().unix_timestamp_nanos();
            assert_eq!(
                i128::from(t.unix_ms()),
                nanos.div_euclid(1_000_000),
                "{text}"
            );
        }
    }

    #[test]
    fn unix_ms_rounds_down_before_the_epoch() {
        let t: Timestamp = "1969-12-31T23:59:59.9995Z".parse().unwrap();
        assert_eq!(t.unix_ms(), -1);
        assert_eq!(
            Timestamp::from_unix_ms(1500)
                .unwrap()
                .to_utc_millis_string(),
            "1970-01-01T00:00:01.500Z"
        );
    }

    /// The text as `format!` writes it: what the digit-by-digit writer must match.
    fn reference_text(t: time::OffsetDateTime) -> String {
        let nanos = t.nanosecond();
        let fraction = if nanos.is_multiple_of(1_000_000) {
            format!("{:03}", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{:06}", nanos / 1_000)
        } else {
            format!("{nanos:09}")
        };
        let offset = t.offset();
        let zone = if offset.is_utc() {
            "Z".to_owned()
        } else {
            let (h, m, _) = offset.as_hms();
            let sign = if offset.is_negative() { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction}{zone}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    proptest::proptest! {
        #[test]
        fn timestamps_are_written_as_format_would_write_them(
            seconds in -62_135_596_800i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            granularity in 0usize..3,
            offset_minutes in -1439i32..=1439,
        ) {
            let nanos = nanos - nanos % [1_000_000, 1_000, 1][granularity];
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
            let t = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(offset);
            proptest::prop_assume!((0..=9999).contains(&t.year()));
            let written = Timestamp::from(t).to_string();
            proptest::prop_assert_eq!(&written, &reference_text(t));
            proptest::prop_assert_eq!(
                serde_json::to_string(&Timestamp::from(t)).unwrap(),
                format!("\"{written}\"")
            );
            let back: Timestamp = written.parse().unwrap();
            proptest::prop_assert_eq!(back.as_offset_date_time(), t);
        }
    }
    /// Any text, weighted towards what needs escaping in JSON.
    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(r#"([a-z0-9\-]|["\\/\x00-\x1f\x7f]|é|\u{1F600}){0,12}"#)
            .unwrap()
    }

    proptest::proptest! {
        #[test]
        fn records_are_written_as_serde_json_writes_them(
            (invocation_id, agent, task_id, model, tier, error_class) in
                (text(), text(), proptest::option::of(text()), proptest::option::of(text()),
                 proptest::option::of(text()), proptest::option::of(text())),
            (phase, attempt, exit_code) in (proptest::num::u32::ANY, proptest::num::u32::ANY, proptest::num::i32::ANY),
            (duration_ms, tokens) in (proptest::num::u64::ANY, proptest::num::u64::ANY),
            counts in proptest::array::uniform3(proptest::option::of(proptest::num::u64::ANY)),
            cost in proptest::num::f64::ANY,
            (success, output_parsed) in (proptest::bool::ANY, proptest::bool::ANY),
            seconds in -62_135_596_800i64..253_402_300_799,
        ) {
            let metric = InvocationMetric {
                invocation_id, agent, phase, task_id, duration_ms, tokens,
                input_tokens: counts[0], output_tokens: counts[1], cached_tokens: counts[2],
                cost, exit_code, success, attempt, output_parsed, model, tier,
                timestamp: time::OffsetDateTime::from_unix_timestamp(seconds).unwrap().into(),
                error_class,
            };
            let mut written = Vec::new();
            metric.write_json(&mut written);
            proptest::prop_assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&metric).unwrap()
            );
        }
    }

    #[test]
    fn a_full_record_is_written_as_serde_json_writes_it() {
        let mut written = Vec::new();
        sample().write_json(&mut written);
        assert_eq!(written, serde_json::to_vec(&sample()).unwrap());
    }

    #[test]
    fn a_year_outside_0000_9999_in_its_own_offset_is_refused_and_never_panics() {
        // 00:30 UTC on the first day of year 0 is 23:30 of year -1 at -01:00: in range in UTC,
        // not writable in its offset. Only code can build it (such text does not parse).
        let utc = time::OffsetDateTime::from_unix_timestamp(MIN_TIME_MS / 1000 + 1800).unwrap();
        let local = utc.to_offset(time::UtcOffset::from_hms(-1, 0, 0).unwrap());
        assert_eq!(local.year(), -1);
        let mut metric = sample();
        metric.timestamp = local.into();
        assert_eq!(metric.validate().unwrap_err().field, "timestamp");
        let mut written = Vec::new();
        metric.write_json(&mut written);
        let text = String::from_utf8(written).unwrap();
        assert!(
            text.contains(r#""timestamp":"0000-01-01T00:30:00.000Z""#),
            "{text}"
        );
    }
}
