//! The fast reader: one pass over a line that is a flat JSON object, dispatching on each key
//! as it comes, so every key order, any JSON whitespace and every dialect's field names read
//! at the same speed. Strings are borrowed from the line; numbers are read in place.
//!
//! It reads only what it can read exactly as serde_json would: a string with an escape, a
//! repeated field, `null` in an unknown field's place of a nested value, a number outside
//! its field's range — anything unusual — returns `None`, and the caller reads the line with
//! serde, which gives the same record for every line this accepts (a property test and the
//! fuzz target hold it to that) and the error messages for the rest.

use std::borrow::Cow;

use crate::parse::RawLine;

/// Reads a line into `raw` (blank, as `RawLine::default()` makes it), the fields every
/// dialect may carry; `None` when the line needs the general parser (see the module's docs),
/// `raw` then holding part of the line. Filled in place, not returned: moving the ~500-byte
/// struct out cost a copy per line.
pub(crate) fn scan_line_into<'a>(line: &'a [u8], raw: &mut RawLine<'a>) -> Option<()> {
    // One UTF-8 check for the whole line; strings are then sliced out of it at quotes, which
    // are always character boundaries.
    let text = std::str::from_utf8(line).ok()?;
    let mut r = Reader { line, text, at: 0 };
    let mut seen = Seen(0);
    r.token(b'{')?;
    let mut next = r.next_token()?;
    if next != b'}' {
        loop {
            if next != b'"' {
                return None;
            }
            let key = r.key()?;
            r.token(b':')?;
            r.space();
            r.field(key, raw, &mut seen)?;
            match r.next_token()? {
                b',' => next = r.next_token()?,
                b'}' => break,
                _ => return None,
            }
        }
    }
    r.space();
    (r.at == line.len()).then_some(())
}

/// [`scan_line_into`] a blank record, returned.
#[cfg(test)]
fn scan_line(line: &[u8]) -> Option<RawLine<'_>> {
    let mut raw = RawLine::default();
    scan_line_into(line, &mut raw).map(|()| raw)
}

/// Which known fields a line has named so far: serde refuses a repeated field, so the fast
/// reader must not take the last one silently.
struct Seen(u32);

impl Seen {
    fn first(&mut self, bit: u32) -> Option<()> {
        let mask = 1 << bit;
        (self.0 & mask == 0).then(|| self.0 |= mask)
    }
}

/// A mask with the high bit set in the lowest byte of `word` (little-endian) that is a quote,
/// a backslash or a control character; bits above that byte may be spurious (a borrow), so
/// only the lowest one is meaningful. Zero when no byte is.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// Whether ASCII `digits` are the integer part JSON allows: at least one digit, and no
/// leading zero.
fn is_json_integer(digits: &[u8]) -> bool {
    !digits.is_empty() && (digits.len() == 1 || digits[0] != b'0')
}

/// How many bytes of `word` (little-endian), from the first, are ASCII digits.
fn leading_digits(word: u64) -> usize {
    const NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    // A digit's high nibble is 3, and stays 3 when 6 is added (0x30..=0x39 only). A carry out
    // of a byte comes only from a byte that is no digit, and reaches only bytes after it.
    let not_digit = ((word & NIBBLES) ^ THREES)
        | ((word.wrapping_add(0x0606_0606_0606_0606) & NIBBLES) ^ THREES);
    (not_digit.trailing_zeros() / 8) as usize
}

/// The number the first `count` (1 to 7) bytes of `word` spell, all of them ASCII digits.
fn digits_value(word: u64, count: usize) -> u64 {
    // Digits to their values, shifted so that the first is the most significant of eight
    // (the vacated bytes are leading zeros); then pairs, fours and the eight combined with
    // three multiplications. Borrows of the subtraction start only past the digits, and
    // the shift drops those bytes.
    let digits = word.wrapping_sub(0x3030_3030_3030_3030) << (8 * (8 - count));
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let low = (pairs & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let high = ((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    low.wrapping_add(high) >> 32
}

/// A key, told from every other by its length and its first and last eight bytes (little-
/// endian, zero where the key is shorter): exact for keys of up to 16 bytes, which every
/// known key is. Comparing it with the known keys is a few integer comparisons, where
/// comparing strings was a call per candidate.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyCode {
    len: usize,
    first: u64,
    last: u64,
}

impl KeyCode {
    const fn of(key: &[u8]) -> Self {
        let mut first = [0u8; 8];
        let mut last = [0u8; 8];
        let mut i = 0;
        while i < key.len() && i < 8 {
            first[i] = key[i];
            i += 1;
        }
        if key.len() > 8 {
            let mut i = 0;
            while i < 8 {
                last[i] = key[key.len() - 8 + i];
                i += 1;
            }
        }
        Self {
            len: key.len(),
            first: u64::from_le_bytes(first),
            last: u64::from_le_bytes(last),
        }
    }

    /// Its slot in [`FIELD_SLOTS`]: a multiplicative hash, its multiplier found by a search for
    /// one that gives each known key a slot of its own.
    const fn slot(self) -> usize {
        let mixed = self.first ^ (self.last << 1) ^ self.len as u64;
        (mixed.wrapping_mul(0xba95_8810_b4eb_f4b7) >> 58) as usize
    }

    /// The code of `line[start..start + len]`, read eight bytes at a time where the line
    /// has them.
    fn read(line: &[u8], start: usize, len: usize) -> Self {
        let rest = &line[start..];
        let first = match rest.first_chunk::<8>() {
            Some(word) if len >= 8 => u64::from_le_bytes(*word),
            Some(word) => u64::from_le_bytes(*word) & ((1u64 << (8 * len)) - 1),
            None => return Self::of(&rest[..len]),
        };
        let last = match rest[..len].last_chunk::<8>() {
            Some(word) if len > 8 => u64::from_le_bytes(*word),
            _ => 0,
        };
        Self { len, first, last }
    }
}

/// Declares [`Field`], one variant per known key, and [`FIELDS`], each with its key.
macro_rules! known_fields {
    ($($field:ident = $key:literal,)*) => {
        /// A field some dialect names; its number is its bit in [`Seen`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Field {
            $($field,)*
        }

        /// Every known field with its key's code.
        const FIELDS: &[(KeyCode, Field)] = &[$((KeyCode::of($key), Field::$field),)*];
    };
}

known_fields! {
    InvocationId = b"invocationId",
    Agent = b"agent",
    AgentType = b"agentType",
    Phase = b"phase",
    TaskId = b"taskId",
    DurationMs = b"durationMs",
    Duration = b"duration",
    Tokens = b"tokens",
    TokensTotal = b"tokensTotal",
    InputTokens = b"inputTokens",
    TokensPrompt = b"tokensPrompt",
    OutputTokens = b"outputTokens",
    TokensCompletion = b"tokensCompletion",
    CachedTokens = b"cachedTokens",
    Cost = b"cost",
    CostUsd = b"costUsd",
    ExitCode = b"exitCode",
    Success = b"success",
    Status = b"status",
    Attempt = b"attempt",
    AttemptNumber = b"attemptNumber",
    OutputParsed = b"outputParsed",
    Model = b"model",
    Tier = b"tier",
    RoutingTier = b"routingTier",
    Timestamp = b"timestamp",
    StartTime = b"startTime",
    ErrorClass = b"errorClass",
}

/// The known fields by the slot of their key's code: a key is looked up with one multiply,
/// one load and one comparison of codes, whatever the key order of a line — a chain of
/// comparisons, or a branch per candidate, mispredicted on every line whose keys come in a
/// new order.
const FIELD_SLOTS: [Option<(KeyCode, Field)>; 64] = {
    let mut slots = [None; 64];
    let mut i = 0;
    while i < FIELDS.len() {
        let slot = FIELDS[i].0.slot();
        // Checked as the crate compiles: a code tells keys apart only up to 16 bytes, and a
        // new key that shares a slot needs a new multiplier.
        assert!(
            FIELDS[i].0.len <= 16,
            "a known key longer than its code tells apart"
        );
        assert!(slots[slot].is_none(), "two known keys share a slot");
        slots[slot] = Some(FIELDS[i]);
        i += 1;
    }
    slots
};

impl Field {
    /// The known field `key` names, if any.
    fn of(key: KeyCode) -> Option<Self> {
        match FIELD_SLOTS[key.slot()] {
            Some((code, field)) if code == key => Some(field),
            _ => None,
        }
    }
}

struct Reader<'a> {
    line: &'a [u8],
    text: &'a str,
    at: usize,
}

/// JSON's insignificant whitespace.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Reader<'a> {
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        self.line[self.at..]
            .starts_with(expected)
            .then(|| self.at += expected.len())
    }

    fn space(&mut self) {
        while self.line.get(self.at).copied().is_some_and(is_space) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, consumed.
    fn next_token(&mut self) -> Option<u8> {
        loop {
            let byte = *self.line.get(self.at)?;
            self.at += 1;
            if !is_space(byte) {
                return Some(byte);
            }
        }
    }

    /// `expected` after any whitespace, consumed.
    fn token(&mut self, expected: u8) -> Option<()> {
        (self.next_token()? == expected).then_some(())
    }

    /// Where the string starting at `start` (just past its opening quote) ends: the index of
    /// its closing quote, or `None` at an escape or a control character first.
    #[inline(always)]
    fn string_end(&self, start: usize) -> Option<usize> {
        // Keys and values are short: eight bytes at a time, looking for the closing quote and
        // for what declines in one pass, beats a vectorised quote search and a second pass.
        let mut end = start;
        while let Some(word) = self.line[end..].first_chunk::<8>() {
            let hits = special_bytes(u64::from_le_bytes(*word));
            if hits != 0 {
                let at = end + (hits.trailing_zeros() / 8) as usize;
                return (self.line[at] == b'"').then_some(at);
            }
            end += 8;
        }
        loop {
            match *self.line.get(end)? {
                b'"' => return Some(end),
                b'\\' | 0..0x20 => return None,
                _ => end += 1,
            }
        }
    }

    /// A key, its opening quote already consumed.
    fn key(&mut self) -> Option<KeyCode> {
        let start = self.at;
        let end = self.string_end(start)?;
        self.at = end + 1;
        Some(KeyCode::read(self.line, start, end - start))
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let start = self.at;
        let end = self.string_end(start)?;
        self.at = end + 1;
        self.text.get(start..end)
    }

    fn borrowed(&mut self) -> Option<Cow<'a, str>> {
        self.string().map(Cow::Borrowed)
    }

    fn small(&mut self) -> Option<u32> {
        u32::try_from(self.unsigned()?).ok()
    }

    fn field(&mut self, key: KeyCode, raw: &mut RawLine<'a>, seen: &mut Seen) -> Option<()> {
        let Some(field) = Field::of(key) else {
            return self.skip_scalar();
        };
        seen.first(field as u32)?;
        if self.literal(b"null").is_some() {
            // Absent, as serde's `Option` reads it.
            return Some(());
        }
        match field {
            Field::InvocationId => raw.invocation_id = Some(self.borrowed()?),
            Field::Agent => raw.agent = Some(self.borrowed()?),
            Field::AgentType => raw.agent_type = Some(self.borrowed()?),
            Field::Phase => raw.phase = Some(self.small()?),
            Field::TaskId => raw.task_id = Some(self.borrowed()?),
            Field::DurationMs => raw.duration_ms = Some(self.unsigned()?),
            Field::Duration => raw.duration = Some(self.unsigned()?),
            Field::Tokens => raw.tokens = Some(self.unsigned()?),
            Field::TokensTotal => raw.tokens_total = Some(self.unsigned()?),
            Field::InputTokens => raw.input_tokens = Some(self.unsigned()?),
            Field::TokensPrompt => raw.tokens_prompt = Some(self.unsigned()?),
            Field::OutputTokens => raw.output_tokens = Some(self.unsigned()?),
            Field::TokensCompletion => raw.tokens_completion = Some(self.unsigned()?),
            Field::CachedTokens => raw.cached_tokens = Some(self.unsigned()?),
            Field::Cost => raw.cost = Some(self.float()?),
            Field::CostUsd => raw.cost_usd = Some(self.float()?),
            Field::ExitCode => raw.exit_code = Some(self.signed()?),
            Field::Success => raw.success = Some(self.boolean()?),
            Field::Status => raw.status = Some(self.borrowed()?),
            Field::Attempt => raw.attempt = Some(self.small()?),
            Field::AttemptNumber => raw.attempt_number = Some(self.small()?),
            Field::OutputParsed => raw.output_parsed = Some(self.boolean()?),
            Field::Model => raw.model = Some(self.borrowed()?),
            Field::Tier => raw.tier = Some(self.borrowed()?),
            Field::RoutingTier => raw.routing_tier = Some(self.borrowed()?),
            Field::Timestamp => raw.timestamp = Some(self.borrowed()?),
            Field::StartTime => raw.start_time = Some(self.borrowed()?),
            Field::ErrorClass => raw.error_class = Some(self.borrowed()?),
        }
        Some(())
    }

    /// An unknown field's value, which serde ignores: a string, number, boolean or null.
    /// Arrays and objects decline (serde walks them; this reader does not).
    fn skip_scalar(&mut self) -> Option<()> {
        match self.line.get(self.at)? {
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.float().map(drop),
        }
    }

    fn digits(&mut self) -> &'a [u8] {
        let start = self.at;
        while self.line.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        &self.line[start..self.at]
    }

    /// A JSON unsigned integer: no sign, no leading zero, no fraction, in range.
    fn unsigned(&mut self) -> Option<u64> {
        // Most numbers here (tokens, durations, phases) have fewer than eight digits: read
        // eight bytes at once, count the digits and convert them together.
        if let Some(word) = self.line[self.at..].first_chunk::<8>() {
            let word = u64::from_le_bytes(*word);
            let count = leading_digits(word);
            if count < 8 {
                // `is_json_integer` on the word's bytes, without slicing them out.
                if count == 0 || (count > 1 && word as u8 == b'0') {
                    return None;
                }
                self.at += count;
                return self.integer_ends().then_some(digits_value(word, count));
            }
        }
        let digits = self.digits();
        if !is_json_integer(digits) {
            return None;
        }
        let mut n: u64 = 0;
        for d in digits {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.integer_ends().then_some(n)
    }

    /// Whether the integer just read ends there: a fraction or exponent after it means it is
    /// not an integer here, and serde explains.
    fn integer_ends(&self) -> bool {
        !matches!(self.line.get(self.at), Some(b'.' | b'e' | b'E'))
    }

    fn signed(&mut self) -> Option<i32> {
        let negative = self.literal(b"-").is_some();
        let magnitude = i64::try_from(self.unsigned()?).ok()?;
        if negative && magnitude == 0 {
            // serde_json reads `-0` as the float -0.0, which an integer field refuses: decline,
            // so both paths give the same answer.
            return None;
        }
        i32::try_from(if negative { -magnitude } else { magnitude }).ok()
    }

    /// A JSON number, checked against JSON's grammar, then read with correct rounding.
    fn float(&mut self) -> Option<f64> {
        let start = self.at;
        self.literal(b"-");
        if !is_json_integer(self.digits()) {
            return None;
        }
        if self.literal(b".").is_some() && self.digits().is_empty() {
            return None;
        }
        if matches!(self.line.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.line.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits().is_empty() {
                return None;
            }
        }
        // Out-of-range numbers parse to infinity here but are an error to serde: decline.
        let value: f64 = self.text.get(start..self.at)?.parse().ok()?;
        value.is_finite().then_some(value)
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true").is_some() {
            Some(true)
        } else {
            self.literal(b"false").map(|()| false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_line, parse_line_general};

    const LINE: &str = r#"{"invocationId":"i1","agent":"a","phase":1,"taskId":"t","durationMs":5,"tokens":3,"inputTokens":2,"cachedTokens":1,"cost":0.1,"exitCode":-2,"success":false,"attempt":2,"outputParsed":true,"model":"m","timestamp":"2026-11-25T10:00:00.500+01:00","errorClass":"timeout"}"#;

    #[test]
    fn reads_every_key_order_and_spacing() {
        let spaced = LINE
            .replace(',', " ,\t")
            .replace("\":", "\"\r\n: ")
            .replace('{', " { ");
        let reordered = r#"{"errorClass":"timeout","timestamp":"2026-11-25T10:00:00.500+01:00","model":"m","outputParsed":true,"attempt":2,"success":false,"exitCode":-2,"cost":0.1,"cachedTokens":1,"inputTokens":2,"tokens":3,"durationMs":5,"taskId":"t","phase":1,"agent":"a","invocationId":"i1"}"#;
        for line in [LINE, spaced.as_str(), reordered] {
            let raw = scan_line(line.as_bytes()).unwrap_or_else(|| panic!("declined {line}"));
            assert_eq!(
                (raw.agent.as_deref(), raw.exit_code, raw.cost),
                (Some("a"), Some(-2), Some(0.1))
            );
            assert_eq!(parse_line(line.as_bytes()).unwrap().to_json_line(), LINE);
        }
    }

    #[test]
    fn skips_unknown_scalars_and_reads_null_as_absent() {
        let line = LINE.replace(
            "}",
            r#","note":"x","n":-1.5e3,"t":true,"f":false,"z":null,"model":null}"#,
        );
        // `model` twice: serde's error, so the fast reader declines.
        assert!(scan_line(line.as_bytes()).is_none());
        let line = LINE.replace(
            "\"model\":\"m\"",
            "\"model\":null,\"note\":\"x\",\"n\":-1.5e3,\"t\":true,\"f\":false,\"z\":null",
        );
        let raw = scan_line(line.as_bytes()).unwrap();
        assert_eq!(raw.model, None);
        assert_eq!(
            parse_line(line.as_bytes()),
            parse_line_general(line.as_bytes())
        );
    }

    #[test]
    fn declines_what_serde_must_read_or_refuse() {
        let declined = [
            LINE.replace("\"i1\"", "\"i\\u0031\""), // an escape in a value
            LINE.replace("\"agent\"", "\"\\u0061gent\""), // an escape in a key
            LINE.replace("\"a\"", "\"a\u{1}\""),    // a control character
            // The same in the last few bytes of a line, read a byte at a time.
            LINE.replace("\"timeout\"}", "\"t\\\\x\"}"),
            LINE.replace("\"timeout\"}", "\"t\u{1}\"}"),
            LINE.replace("\"phase\":1", "\"phase\":01"), // a leading zero
            LINE.replace("\"phase\":1", "\"phase\":1.0"), // a fraction
            LINE.replace("\"phase\":1", "\"phase\":\"1\""), // a string for a number
            LINE.replace("\"cost\":0.1", "\"cost\":01.5"), // a leading zero
            LINE.replace("\"cost\":0.1", "\"cost\":-01.5"),
            LINE.replace("\"cost\":0.1", "\"cost\":00"),
            LINE.replace("\"cost\":0.1", "\"cost\":.1"), // not JSON
            LINE.replace("\"cost\":0.1", "\"cost\":1."), // not JSON
            LINE.replace("\"cost\":0.1", "\"cost\":inf"), // not JSON
            LINE.replace("\"cost\":0.1", "\"cost\":1e400"), // out of range
            LINE.replace("\"exitCode\":-2", "\"exitCode\":99999999999"),
            LINE.replace("\"exitCode\":-2", "\"exitCode\":-0"), // a float to serde_json
            LINE.replace("}", ",\"extra\":{\"a\":1}}"),         // a nested value
            LINE.replace("}", ",\"extra\":[1]}"),
            LINE.replace("}", ",}"),
            LINE.replace("\"tokens\":3", "\"tokens\":3,\"tokens\":3"), // a repeated field
            format!("{LINE}x"),
            format!("{LINE}{{}}"),
        ];
        for line in declined {
            assert!(scan_line(line.as_bytes()).is_none(), "{line}");
            assert_eq!(
                parse_line(line.as_bytes()),
                parse_line_general(line.as_bytes()),
                "{line}"
            );
        }
    }

    /// Every key any dialect may carry, each with a value of its own, so that a field read
    /// into the wrong slot, or not read, shows.
    const EVERY_KEY: &str = r#"{"invocationId":"i1","agent":"a","agentType":"at","phase":1,"taskId":"t","durationMs":2,"duration":3,"tokens":4,"tokensTotal":5,"inputTokens":6,"tokensPrompt":7,"outputTokens":8,"tokensCompletion":9,"cachedTokens":10,"cost":0.5,"costUsd":0.25,"exitCode":-11,"success":true,"status":"ok","attempt":12,"attemptNumber":13,"outputParsed":false,"model":"m","tier":"high","routingTier":"rt","timestamp":"2026-11-25T10:00:00Z","startTime":"2026-11-25T11:00:00Z","errorClass":"e"}"#;

    /// The keys of [`EVERY_KEY`], in its order.
    fn every_key() -> Vec<&'static str> {
        EVERY_KEY
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|part| EVERY_KEY.contains(&format!("\"{part}\":")))
            .collect()
    }

    #[test]
    fn reads_every_field_as_serde_reads_it() {
        let serde: RawLine = serde_json::from_str(EVERY_KEY).unwrap();
        assert_eq!(scan_line(EVERY_KEY.as_bytes()), Some(serde));
        assert_eq!(every_key().len(), 28);
        // Each field alone, and each one null: absent, as serde's `Option` reads it.
        for key in every_key() {
            let start = EVERY_KEY.find(&format!("\"{key}\":")).unwrap();
            let end = EVERY_KEY[start..].find([',', '}']).unwrap() + start;
            for line in [
                format!("{{{}}}", &EVERY_KEY[start..end]),
                format!("{{\"{key}\":null}}"),
            ] {
                let serde: RawLine = serde_json::from_str(&line).unwrap();
                assert_eq!(scan_line(line.as_bytes()), Some(serde), "{line}");
            }
        }
    }

    /// Every form of a JSON number is read on the fast path, to the value serde reads.
    #[test]
    fn reads_every_form_of_a_number() {
        for cost in [
            "0", "0.5", "-0.5", "12.25", "1e2", "1E2", "1.5e+2", "2.5E-3", "-3e-2", "7e0",
        ] {
            let line = LINE.replace("\"cost\":0.1", &format!("\"cost\":{cost}"));
            let raw = scan_line(line.as_bytes()).unwrap_or_else(|| panic!("declined {cost}"));
            assert_eq!(raw.cost, Some(cost.parse::<f64>().unwrap()), "{cost}");
            assert_eq!(
                parse_line(line.as_bytes()),
                parse_line_general(line.as_bytes())
            );
        }
    }

    /// Zero is the commonest value of several fields (`exitCode`, `cachedTokens`, `cost`),
    /// and a lone `0` is no leading zero: the fast reader takes it.
    #[test]
    fn reads_zeros() {
        let zeros = EVERY_KEY
            .split(',')
            .map(|field| match field.split_once(':') {
                Some((key, value))
                    if value.starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
                {
                    format!("{key}:0")
                }
                _ => field.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            zeros.contains("\"phase\":0,") && zeros.contains("\"cost\":0,"),
            "{zeros}"
        );
        let serde: RawLine = serde_json::from_str(&zeros).unwrap();
        assert_eq!(scan_line(zeros.as_bytes()), Some(serde));
    }

    /// serde refuses any known field named twice, so the fast reader must decline each one.
    #[test]
    fn declines_every_known_field_repeated() {
        for key in every_key() {
            let start = EVERY_KEY.find(&format!("\"{key}\":")).unwrap();
            let end = EVERY_KEY[start..].find([',', '}']).unwrap() + start;
            let line = EVERY_KEY.replacen('}', &format!(",{}}}", &EVERY_KEY[start..end]), 1);
            assert!(serde_json::from_str::<RawLine>(&line).is_err(), "{line}");
            assert!(scan_line(line.as_bytes()).is_none(), "{line}");
        }
    }

    /// Integers of every length, on either side of the eight bytes read at once, with every
    /// byte that may follow them, inside a line and at its end: the value serde reads, or
    /// the line declined as serde refuses it.
    #[test]
    fn reads_integers_of_every_length() {
        for len in 1..=21 {
            for first in ['1', '9', '0'] {
                let digits: String = std::iter::once(first)
                    .chain("8734019265432187650123".chars())
                    .take(len)
                    .collect();
                let in_a_line = ["", " ", ".5", "e2", "x"].map(|after| {
                    LINE.replace("\"tokens\":3,", &format!("\"tokens\":{digits}{after},"))
                });
                // At the end of a line, fewer than eight bytes follow the number's start.
                let at_the_end =
                    ["", " ", ".5", "x"].map(|after| format!("{{\"tokens\":{digits}{after}}}"));
                for line in in_a_line.iter().chain(&at_the_end) {
                    let fast = scan_line(line.as_bytes()).map(|raw| raw.tokens);
                    match serde_json::from_str::<RawLine>(line) {
                        Ok(serde) => assert_eq!(fast, Some(serde.tokens), "{line}"),
                        Err(_) => assert_eq!(fast, None, "{line}"),
                    }
                }
            }
        }
    }

    #[test]
    fn leading_digits_and_their_value() {
        for text in [
            "1234567x",
            "0\"aaaaaa",
            "9876543 ",
            "12\u{1}45678",
            "7:::::::",
        ] {
            let word = u64::from_le_bytes(text.as_bytes()[..8].try_into().unwrap());
            let count = text.bytes().take_while(u8::is_ascii_digit).count();
            assert_eq!(leading_digits(word), count, "{text}");
            assert_eq!(
                digits_value(word, count),
                text[..count].parse::<u64>().unwrap(),
                "{text}"
            );
        }
        assert_eq!(leading_digits(u64::from_le_bytes(*b"12345678")), 8);
        assert_eq!(leading_digits(u64::from_le_bytes(*b"\xfa1234567")), 0);
        assert_eq!(leading_digits(u64::from_le_bytes(*b"1\xfa/:;@0 ")), 1);
    }

    #[test]
    fn special_bytes_finds_the_first_quote_backslash_or_control_byte() {
        for (text, first) in [
            (*b"abcdefgh", None),
            (*b"abc\"efgh", Some(3)),
            (*b"\\bcdefg\"", Some(0)),
            (*b"abcdefg\x1f", Some(7)),
            (*b"\x00\"cd\xc3\xa9gh", Some(0)),
            (*b"ab\xc3\xa9\xff\x7f !", None),
        ] {
            let hits = special_bytes(u64::from_le_bytes(text));
            let found = (hits != 0).then(|| hits.trailing_zeros() / 8);
            assert_eq!(found, first, "{text:?}");
        }
    }
}
