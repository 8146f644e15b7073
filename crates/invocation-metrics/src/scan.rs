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

/// Reads a line into the fields every dialect may carry; `None` when the line needs the
/// general parser (see the module's docs).
pub(crate) fn scan_line(line: &[u8]) -> Option<RawLine<'_>> {
    // One UTF-8 check for the whole line; strings are then sliced out of it at quotes, which
    // are always character boundaries.
    let text = std::str::from_utf8(line).ok()?;
    let mut r = Reader { line, text, at: 0 };
    let mut raw = RawLine::default();
    let mut seen = Seen(0);
    r.space();
    r.literal(b"{")?;
    r.space();
    if r.literal(b"}").is_none() {
        loop {
            let key = r.string()?;
            r.space();
            r.literal(b":")?;
            r.space();
            r.field(key, &mut raw, &mut seen)?;
            r.space();
            if r.literal(b",").is_some() {
                r.space();
                continue;
            }
            r.literal(b"}")?;
            break;
        }
    }
    r.space();
    (r.at == line.len()).then_some(raw)
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

    /// JSON's insignificant whitespace.
    fn space(&mut self) {
        while matches!(self.line.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let start = self.at;
        // Keys and values are short: eight bytes at a time, looking for the closing quote and
        // for what declines in one pass, beats a vectorised quote search and a second pass.
        let mut end = start;
        while let Some(word) = self.line.get(end..end + 8) {
            let word = u64::from_le_bytes(word.try_into().ok()?);
            let hits = special_bytes(word);
            if hits != 0 {
                end += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
        }
        loop {
            match *self.line.get(end)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => end += 1,
            }
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    fn borrowed(&mut self) -> Option<Cow<'a, str>> {
        self.string().map(Cow::Borrowed)
    }

    fn small(&mut self) -> Option<u32> {
        u32::try_from(self.unsigned()?).ok()
    }

    /// One known field's value into its slot: `null` leaves it absent, as serde's `Option`
    /// does; a second occurrence declines.
    fn value<T>(
        &mut self,
        slot: &mut Option<T>,
        seen: &mut Seen,
        bit: u32,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<()> {
        seen.first(bit)?;
        if self.literal(b"null").is_none() {
            *slot = Some(read(self)?);
        }
        Some(())
    }

    fn field(&mut self, key: &str, raw: &mut RawLine<'a>, seen: &mut Seen) -> Option<()> {
        match key {
            "invocationId" => self.value(&mut raw.invocation_id, seen, 0, Self::borrowed),
            "agent" => self.value(&mut raw.agent, seen, 1, Self::borrowed),
            "agentType" => self.value(&mut raw.agent_type, seen, 2, Self::borrowed),
            "phase" => self.value(&mut raw.phase, seen, 3, Self::small),
            "taskId" => self.value(&mut raw.task_id, seen, 4, Self::borrowed),
            "durationMs" => self.value(&mut raw.duration_ms, seen, 5, Self::unsigned),
            "duration" => self.value(&mut raw.duration, seen, 6, Self::unsigned),
            "tokens" => self.value(&mut raw.tokens, seen, 7, Self::unsigned),
            "tokensTotal" => self.value(&mut raw.tokens_total, seen, 8, Self::unsigned),
            "inputTokens" => self.value(&mut raw.input_tokens, seen, 9, Self::unsigned),
            "tokensPrompt" => self.value(&mut raw.tokens_prompt, seen, 10, Self::unsigned),
            "outputTokens" => self.value(&mut raw.output_tokens, seen, 11, Self::unsigned),
            "tokensCompletion" => self.value(&mut raw.tokens_completion, seen, 12, Self::unsigned),
            "cachedTokens" => self.value(&mut raw.cached_tokens, seen, 13, Self::unsigned),
            "cost" => self.value(&mut raw.cost, seen, 14, Self::float),
            "costUsd" => self.value(&mut raw.cost_usd, seen, 15, Self::float),
            "exitCode" => self.value(&mut raw.exit_code, seen, 16, Self::signed),
            "success" => self.value(&mut raw.success, seen, 17, Self::boolean),
            "status" => self.value(&mut raw.status, seen, 18, Self::borrowed),
            "attempt" => self.value(&mut raw.attempt, seen, 19, Self::small),
            "attemptNumber" => self.value(&mut raw.attempt_number, seen, 20, Self::small),
            "outputParsed" => self.value(&mut raw.output_parsed, seen, 21, Self::boolean),
            "model" => self.value(&mut raw.model, seen, 22, Self::borrowed),
            "tier" => self.value(&mut raw.tier, seen, 23, Self::borrowed),
            "routingTier" => self.value(&mut raw.routing_tier, seen, 24, Self::borrowed),
            "timestamp" => self.value(&mut raw.timestamp, seen, 25, Self::borrowed),
            "startTime" => self.value(&mut raw.start_time, seen, 26, Self::borrowed),
            "errorClass" => self.value(&mut raw.error_class, seen, 27, Self::borrowed),
            _ => self.skip_scalar(),
        }
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
