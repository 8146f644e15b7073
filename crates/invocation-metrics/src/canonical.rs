//! A fast path for the lines this project writes itself: the native fields in the writer's
//! order, no whitespace, no escapes. Such a line is read with a few byte comparisons instead
//! of a general JSON parser; anything else — another order, an unknown field, an escape,
//! whitespace, a malformed number — returns `None` and goes to the serde path, which gives the
//! same record for every line this accepts (a property test and the fuzz target hold it to
//! that) and the error messages for the rest.

use crate::record::{InvocationMetric, refill, refill_optional};

/// Reads a line in the writer's exact layout into `into`, reusing its string buffers, so
/// reading many lines allocates nothing; `None` when it is not such a line, in which case
/// `into` holds a mix of old and new fields and must not be used.
pub(crate) fn parse_canonical_into(line: &[u8], into: &mut InvocationMetric) -> Option<()> {
    // One UTF-8 check for the whole line; strings are then sliced out of it at quotes, which
    // are always character boundaries.
    let line = std::str::from_utf8(line).ok()?;
    let mut r = Reader {
        line: line.as_bytes(),
        text: line,
        at: 0,
    };
    r.literal(b"{\"invocationId\":")?;
    refill(&mut into.invocation_id, r.string()?);
    r.literal(b",\"agent\":")?;
    refill(&mut into.agent, r.string()?);
    r.literal(b",\"phase\":")?;
    into.phase = u32::try_from(r.unsigned()?).ok()?;
    refill_optional(&mut into.task_id, r.optional_string(b",\"taskId\":")?);
    r.literal(b",\"durationMs\":")?;
    into.duration_ms = r.unsigned()?;
    r.literal(b",\"tokens\":")?;
    into.tokens = r.unsigned()?;
    into.input_tokens = r.optional_unsigned(b",\"inputTokens\":")?;
    into.output_tokens = r.optional_unsigned(b",\"outputTokens\":")?;
    into.cached_tokens = r.optional_unsigned(b",\"cachedTokens\":")?;
    r.literal(b",\"cost\":")?;
    into.cost = r.float()?;
    r.literal(b",\"exitCode\":")?;
    into.exit_code = r.signed()?;
    r.literal(b",\"success\":")?;
    into.success = r.boolean()?;
    r.literal(b",\"attempt\":")?;
    into.attempt = u32::try_from(r.unsigned()?).ok()?;
    r.literal(b",\"outputParsed\":")?;
    into.output_parsed = r.boolean()?;
    refill_optional(&mut into.model, r.optional_string(b",\"model\":")?);
    refill_optional(&mut into.tier, r.optional_string(b",\"tier\":")?);
    r.literal(b",\"timestamp\":")?;
    into.timestamp = r.string()?.parse().ok()?;
    refill_optional(
        &mut into.error_class,
        r.optional_string(b",\"errorClass\":")?,
    );
    r.literal(b"}")?;
    (r.at == line.len()).then_some(())
}

/// Reads a line in the writer's exact layout; `None` when it is not one.
#[cfg(test)]
fn parse_canonical(line: &[u8]) -> Option<InvocationMetric> {
    let mut m = InvocationMetric::blank();
    parse_canonical_into(line, &mut m)?;
    Some(m)
}

struct Reader<'a> {
    line: &'a [u8],
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let end = self.at + expected.len();
        (self.line.get(self.at..end)? == expected).then(|| self.at = end)
    }

    fn peek_literal(&self, expected: &[u8]) -> bool {
        self.line.get(self.at..self.at + expected.len()) == Some(expected)
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let start = self.at;
        let end = start + memchr::memchr(b'"', &self.line[start..])?;
        if self.line[start..end]
            .iter()
            .any(|b| *b == b'\\' || *b < 0x20)
        {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// `Some(None)` when the key is absent, `None` when the value is not canonical.
    fn optional_string(&mut self, key: &[u8]) -> Option<Option<&'a str>> {
        if !self.peek_literal(key) {
            return Some(None);
        }
        self.at += key.len();
        self.string().map(Some)
    }

    fn optional_unsigned(&mut self, key: &[u8]) -> Option<Option<u64>> {
        if !self.peek_literal(key) {
            return Some(None);
        }
        self.at += key.len();
        self.unsigned().map(Some)
    }

    fn digits(&mut self) -> &[u8] {
        let start = self.at;
        while self.line.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        &self.line[start..self.at]
    }

    /// A JSON unsigned integer: no sign, no leading zero, no fraction, in range.
    fn unsigned(&mut self) -> Option<u64> {
        let digits = self.digits();
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for d in digits {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        // A fraction or exponent means it is not an integer here; let serde explain.
        (!matches!(self.line.get(self.at), Some(b'.' | b'e' | b'E'))).then_some(n)
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
        let int = self.digits();
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
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

    const LINE: &str = r#"{"invocationId":"i1","agent":"a","phase":1,"taskId":"t","durationMs":5,"tokens":3,"inputTokens":2,"cachedTokens":1,"cost":0.1,"exitCode":-2,"success":false,"attempt":2,"outputParsed":true,"model":"m","timestamp":"2026-11-25T10:00:00.500+01:00","errorClass":"timeout"}"#;

    #[test]
    fn reads_what_the_writer_writes() {
        let m = parse_canonical(LINE.as_bytes()).unwrap();
        assert_eq!(m.to_json_line(), LINE);
        assert_eq!((m.exit_code, m.output_tokens, m.tier), (-2, None, None));
    }

    #[test]
    fn declines_anything_else() {
        let declined = [
            LINE.replace("\"i1\"", "\"i\\u0031\""),       // an escape
            LINE.replace(",\"agent\"", ", \"agent\""),    // whitespace
            LINE.replace("\"phase\":1", "\"phase\":01"),  // a leading zero
            LINE.replace("\"phase\":1", "\"phase\":1.0"), // a fraction
            LINE.replace("\"cost\":0.1", "\"cost\":.1"),  // not JSON
            LINE.replace("\"cost\":0.1", "\"cost\":1."),  // not JSON
            LINE.replace("\"cost\":0.1", "\"cost\":inf"), // not JSON
            LINE.replace("}", ",\"extra\":1}"),           // an unknown field
            LINE.replace("\"exitCode\":-2", "\"exitCode\":99999999999"),
            LINE.replace("\"exitCode\":-2", "\"exitCode\":-0"), // a float to serde_json
            LINE.replace("\"cost\":0.1", "\"cost\":1e400"),
            format!("{LINE} "),
        ];
        for line in declined {
            assert!(parse_canonical(line.as_bytes()).is_none(), "{line}");
        }
    }
}
