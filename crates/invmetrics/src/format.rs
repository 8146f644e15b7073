//! How numbers and strings from the data are shown to people, in every output format.

use std::borrow::Cow;

/// A duration in milliseconds, readable: `850 ms`, `12.3 s`, `4m 05s`, `2h 10m`.
pub fn duration_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms < 3_600_000.0 {
        let s = (ms / 1000.0).round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        let m = (ms / 60_000.0).round() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    }
}

/// A cost in USD, with thousands separators: cents from a dollar up (`$20,260.12`), four
/// decimals below (`$0.0120`), where cents would hide a single invocation's cost.
pub fn usd(cost: f64) -> String {
    usd_places(cost, if cost.abs() >= 1.0 { 2 } else { 4 })
}

/// How many decimals a column of costs needs so that every row has the same: two when no
/// cost in it is a fraction of a dollar (zero aside), four otherwise.
pub fn usd_places_for(costs: impl IntoIterator<Item = f64>) -> usize {
    let fractional = costs.into_iter().any(|c| c != 0.0 && c.abs() < 1.0);
    if fractional { 4 } else { 2 }
}

/// A cost in USD with `places` decimals and thousands separators.
pub fn usd_places(cost: f64, places: usize) -> String {
    let text = format!("{:.places$}", cost.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole = whole
        .parse::<u64>()
        .map_or_else(|_| whole.to_owned(), count);
    let sign = if cost < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        "-"
    } else {
        ""
    };
    match fraction {
        "" => format!("{sign}${whole}"),
        fraction => format!("{sign}${whole}.{fraction}"),
    }
}

/// A cost on a chart's axis: no more digits than the tick needs (`$0`, `$20`, `$0.5`,
/// `$0.002`, `$15,000`).
pub fn usd_tick(cost: f64) -> String {
    let digits = format!("{cost:.4}");
    let digits = digits.trim_end_matches('0').trim_end_matches('.');
    let places = digits.split_once('.').map_or(0, |(_, f)| f.len());
    usd_places(cost, places)
}

/// A count on a chart's axis, short: `950`, `20k`, `1.5M`, `3B`.
pub fn count_tick(n: f64) -> String {
    let (scaled, unit) = match n.abs() {
        v if v >= 1e9 => (n / 1e9, "B"),
        v if v >= 1e6 => (n / 1e6, "M"),
        v if v >= 1e3 => (n / 1e3, "k"),
        _ => (n, ""),
    };
    let digits = format!("{scaled:.1}");
    let digits = digits.trim_end_matches('0').trim_end_matches('.');
    format!("{digits}{unit}")
}

/// A time for people, in UTC to the second: `2026-11-24 09:00:00 UTC` (the space lets it
/// wrap between date and time; ISO's `T` made a browser break it mid-word).
pub fn utc_time(t: &invocation_metrics::Timestamp) -> String {
    let iso = t.to_utc_millis_string();
    match (iso.get(..10), iso.get(11..19)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => iso,
    }
}

/// The length of a span of time, to the unit that matters: `45 s`, `12m 05s`, `5h 10m`,
/// `5d 21h`.
pub fn span_length(ms: i64) -> String {
    let ms = ms.max(0);
    if ms >= 86_400_000 {
        let h = ms / 3_600_000;
        format!("{}d {:02}h", h / 24, h % 24)
    } else {
        duration_ms(ms as f64)
    }
}

/// One block character per count, its height scaled to the largest count; a blank for 0.
/// The sparklines of `summary` and `watch`.
pub fn bars(counts: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let peak = counts.iter().copied().max().unwrap_or(0).max(1);
    counts
        .iter()
        .map(|c| match c {
            0 => ' ',
            c => BARS[((c * 7) / peak) as usize],
        })
        .collect()
}

/// A ratio as a percentage.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count and its noun, singular for one: `counted(1, "retried task")` is "1 retried
/// task", `counted(2_000, …)` "2,000 retried tasks".
pub fn counted(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{} {noun}s", count(n)),
    }
}

/// Makes a string from the data safe for a terminal: control characters (ANSI escape
/// sequences included) are shown as `\u{..}` escapes.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    // (Bidirectional controls are escaped too: see `is_bidi_control`.)
    shorten_for_terminal(s, usize::MAX)
}

/// Like [`terminal_safe`], also cutting names longer than `max_chars` (table cells).
pub fn shorten_for_terminal(s: &str, max_chars: usize) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || is_bidi_control(c);
    if !s.chars().any(unsafe_char) && s.chars().count() <= max_chars {
        return Cow::Borrowed(s);
    }
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Unicode's bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE and its kin): invisible,
/// they reorder the text around them, so a name holding one can make a report read
/// differently from what it says ("Trojan Source").
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every bidirectional control shown as its escape (`\u{202e}`) instead of
/// acting on the text around it. Reports run it over the whole page: their own text never
/// holds one.
pub fn neutralize_bidi(text: String) -> String {
    if !text.chars().any(is_bidi_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_bidi_control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_for_people() {
        let t: invocation_metrics::Timestamp = "2026-11-24T10:00:00.048+01:00".parse().unwrap();
        assert_eq!(utc_time(&t), "2026-11-24 09:00:00 UTC");
        assert_eq!(span_length(45_000), "45.0 s");
        assert_eq!(
            span_length(5 * 86_400_000 + 21 * 3_600_000 + 60_000),
            "5d 21h"
        );
    }

    #[test]
    fn costs_have_separators_and_one_precision_per_column() {
        assert_eq!(usd(20260.1249), "$20,260.12");
        assert_eq!(usd(0.012), "$0.0120");
        assert_eq!(usd(0.0), "$0.0000");
        assert_eq!(usd_places(1234567.5, 2), "$1,234,567.50");
        assert_eq!(usd_places(-0.00001, 2), "$0.00");
        assert_eq!(usd_places(-12.5, 2), "-$12.50");
        assert_eq!(usd_tick(15000.0), "$15,000");
        assert_eq!(usd_tick(0.5), "$0.5");
        assert_eq!(usd_places_for([0.0, 12.0, 3000.0]), 2);
        assert_eq!(usd_places_for([0.5, 12.0]), 4);
    }

    #[test]
    fn human_numbers() {
        assert_eq!(duration_ms(850.0), "850 ms");
        assert_eq!(duration_ms(12_345.0), "12.3 s");
        assert_eq!(duration_ms(245_000.0), "4m 05s");
        assert_eq!(duration_ms(7_800_000.0), "2h 10m");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(counted(1, "retried task"), "1 retried task");
        assert_eq!(counted(0, "retried task"), "0 retried tasks");
        assert_eq!(counted(2_000, "retried task"), "2,000 retried tasks");
        assert_eq!(usd(0.5), "$0.5000");
        assert_eq!(
            [0.0, 20.0, 150.0, 0.5, 0.002, 0.123456].map(usd_tick),
            ["$0", "$20", "$150", "$0.5", "$0.002", "$0.1235"]
        );
        assert_eq!(
            [0.0, 950.0, 20_000.0, 1_500_000.0, 10_000_000.0, 3e9].map(count_tick),
            ["0", "950", "20k", "1.5M", "10M", "3B"]
        );
        assert_eq!(percent(0.25), "25.0%");
    }

    #[test]
    fn hostile_strings_cannot_drive_the_terminal() {
        let s = terminal_safe("evil\x1b[2J\x07name");
        assert!(!s.contains('\x1b') && !s.contains('\x07'));
        assert!(s.contains("\\u{1b}"));
        assert_eq!(
            shorten_for_terminal(&"x".repeat(500), 60).chars().count(),
            61
        );
        assert_eq!(terminal_safe(&"x".repeat(500)).chars().count(), 500);
        assert!(matches!(terminal_safe("coder"), Cow::Borrowed(_)));
        assert_eq!(
            terminal_safe("admin\u{202e}txt.exe"),
            "admin\\u{202e}txt.exe"
        );
        assert_eq!(
            neutralize_bidi("<td>a\u{2067}b</td>".into()),
            "<td>a\\u{2067}b</td>"
        );
    }
}
