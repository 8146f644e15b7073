//! Charts written as SVG by hand, where plotters cannot draw what the report needs: a
//! `<title>` tooltip on every bar and box (plotters has no way to emit one), and box plots
//! whose marks are the true minimum, percentiles and maximum instead of 1.5 × IQR whiskers.
//! Every text from the data goes through [`escape`].

use std::fmt::Write;

use invocation_metrics::GroupSummary;

use crate::format::duration_ms;

const FONT: &str = "font-family=\"sans-serif\" font-size=\"13\"";
const ACCENT: &str = "#2f6feb";
const MUTED: &str = "#5b6475";
const GRID: &str = "#e6e8ec";
/// The drawing's width in SVG units: about a half-width panel's pixels, so text stays near
/// its nominal size when the page is narrow.
const WIDTH: f64 = 480.0;
const LABELS: f64 = 130.0;
const RIGHT: f64 = 16.0;
const ROW: f64 = 24.0;
/// The box plot spans the page: wider, but not so wide that its text shrinks to nothing on a
/// narrow screen.
const BOX_WIDTH: f64 = 840.0;

/// XML-escapes text from the data.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Shortens a label so it fits beside the axis.
fn short(s: &str) -> String {
    if s.chars().count() > 18 {
        s.chars().take(17).chain(['…']).collect()
    } else {
        s.to_owned()
    }
}

/// Evenly spaced ticks from 0 to at least `max`, at 1, 2 or 5 times a power of ten.
pub fn linear_ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let rough = max / 4.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// A horizontal bar per item, the largest value's bar the longest; every bar has a tooltip
/// with its exact value, and every tick a label.
pub fn bars(items: &[(String, f64)], value_label: fn(f64) -> String) -> String {
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let ticks = linear_ticks(max);
    let top = *ticks.last().unwrap_or(&1.0);
    let plot = WIDTH - LABELS - RIGHT;
    let x = |v: f64| LABELS + plot * v / top;
    let height = 8.0 + ROW * items.len() as f64 + 26.0;
    let axis_y = 8.0 + ROW * items.len() as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img">"#
    );
    for (i, t) in ticks.iter().enumerate() {
        // The last label ends at its tick, so the edge does not clip it.
        let anchor = if i + 1 == ticks.len() {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            svg,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="4" y2="{axis_y}" stroke="{GRID}"/><text x="{0:.1}" y="{1}" text-anchor="{anchor}" fill="{MUTED}" {FONT}>{2}</text>"#,
            x(*t),
            axis_y + 18.0,
            escape(&value_label(*t))
        );
    }
    for (i, (name, value)) in items.iter().enumerate() {
        let y = 8.0 + ROW * i as f64;
        let _ = write!(
            svg,
            r#"<g><title>{name}: {value}</title><text x="{lx}" y="{ty}" text-anchor="end" {FONT}>{label}</text><rect x="{LABELS}" y="{ry}" width="{w:.1}" height="{h}" fill="{ACCENT}" rx="2"/></g>"#,
            name = escape(name),
            value = escape(&value_label(*value)),
            lx = LABELS - 6.0,
            ty = y + ROW / 2.0 + 4.0,
            label = escape(&short(name)),
            ry = y + 4.0,
            w = (x(*value) - LABELS).max(0.0),
            h = ROW - 8.0,
        );
    }
    let _ = write!(
        svg,
        r#"<line x1="{LABELS}" x2="{LABELS}" y1="4" y2="{axis_y}" stroke="{MUTED}"/></svg>"#
    );
    svg
}

/// Log-scale ticks for durations: 1, 10, 100 ms, 1 s, 10 s, 1 min, 10 min, 1 h, 10 h, 1 d…
fn duration_ticks(low: f64, high: f64) -> Vec<f64> {
    const STEPS: [f64; 11] = [
        1.0, 10.0, 100.0, 1e3, 1e4, 6e4, 6e5, 3.6e6, 3.6e7, 8.64e7, 8.64e8,
    ];
    STEPS
        .into_iter()
        .filter(|t| *t >= low / 1.0001 && *t <= high * 1.0001)
        .collect()
}

/// A log-scale tick's label: `1 ms`, `100 ms`, `1 s`, `10 s`, `1 min`, `10 min`, `1 h`, `1 d`.
fn duration_tick(ms: f64) -> String {
    match ms {
        ms if ms < 1e3 => format!("{ms:.0} ms"),
        ms if ms < 6e4 => format!("{:.0} s", ms / 1e3),
        ms if ms < 3.6e6 => format!("{:.0} min", ms / 6e4),
        ms if ms < 8.64e7 => format!("{:.0} h", ms / 3.6e6),
        ms => format!("{:.0} d", ms / 8.64e7),
    }
}

/// One row per group: a line from the fastest invocation to the 95th percentile, a box from
/// the 25th to the 75th with a bar at the median, a dotted line on to the slowest, marked
/// with a dot (log scale). Every row has a tooltip with the numbers.
pub fn duration_boxes(rows: &[(String, &GroupSummary)]) -> String {
    let floor = |ms: u64| (ms as f64).max(1.0);
    let low = rows
        .iter()
        .map(|(_, g)| floor(g.min_duration_ms))
        .fold(f64::MAX, f64::min)
        .min(1e12);
    let high = rows
        .iter()
        .map(|(_, g)| floor(g.max_duration_ms))
        .fold(1.0, f64::max);
    // Whole decades around the data, so the ends have ticks.
    let low = 10f64.powf(low.log10().floor());
    let high = 10f64.powf(high.log10().ceil()).max(low * 10.0);
    let plot = BOX_WIDTH - LABELS - RIGHT - 20.0;
    let x = |ms: f64| {
        LABELS + plot * (ms.max(low).log10() - low.log10()) / (high.log10() - low.log10())
    };
    let axis_y = 8.0 + ROW * rows.len() as f64;
    let height = axis_y + 26.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {BOX_WIDTH} {height}" role="img">"#
    );
    for t in duration_ticks(low, high) {
        let _ = write!(
            svg,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="4" y2="{axis_y}" stroke="{GRID}"/><text x="{0:.1}" y="{1}" text-anchor="middle" fill="{MUTED}" {FONT}>{2}</text>"#,
            x(t),
            axis_y + 18.0,
            duration_tick(t)
        );
    }
    for (i, (name, g)) in rows.iter().enumerate() {
        let mid = 8.0 + ROW * i as f64 + ROW / 2.0;
        let [min, p25, p50, p75, p95, max] = [
            g.min_duration_ms,
            g.p25_duration_ms,
            g.p50_duration_ms,
            g.p75_duration_ms,
            g.p95_duration_ms,
            g.max_duration_ms,
        ]
        .map(|ms| x(floor(ms)));
        let tip = format!(
            "{}: {} invocations; fastest {}, p25 {}, median {}, p75 {}, p95 {}, slowest {}",
            escape(name),
            g.invocations,
            duration_ms(g.min_duration_ms as f64),
            duration_ms(g.p25_duration_ms as f64),
            duration_ms(g.p50_duration_ms as f64),
            duration_ms(g.p75_duration_ms as f64),
            duration_ms(g.p95_duration_ms as f64),
            duration_ms(g.max_duration_ms as f64),
        );
        let _ = write!(
            svg,
            concat!(
                r#"<g><title>{tip}</title>"#,
                r#"<text x="{lx}" y="{ty}" text-anchor="end" {font}>{label}</text>"#,
                r#"<line x1="{min:.1}" x2="{p95:.1}" y1="{mid}" y2="{mid}" stroke="{accent}" stroke-width="1.5"/>"#,
                r#"<line x1="{min:.1}" x2="{min:.1}" y1="{t1}" y2="{t2}" stroke="{accent}" stroke-width="1.5"/>"#,
                r#"<line x1="{p95:.1}" x2="{max:.1}" y1="{mid}" y2="{mid}" stroke="{accent}" stroke-dasharray="2 3"/>"#,
                r#"<circle cx="{max:.1}" cy="{mid}" r="3" fill="{accent}"/>"#,
                r##"<rect x="{p25:.1}" y="{by}" width="{bw:.1}" height="12" fill="#dbe6fd" stroke="{accent}"/>"##,
                r##"<line x1="{p50:.1}" x2="{p50:.1}" y1="{by}" y2="{be}" stroke="#1d2330" stroke-width="2"/></g>"##,
            ),
            tip = tip,
            min = min,
            p25 = p25,
            p50 = p50,
            p95 = p95,
            max = max,
            mid = mid,
            lx = LABELS - 6.0,
            ty = mid + 4.0,
            font = FONT,
            label = escape(&short(name)),
            accent = ACCENT,
            t1 = mid - 5.0,
            t2 = mid + 5.0,
            by = mid - 6.0,
            be = mid + 6.0,
            bw = (p75 - p25).max(1.0),
        );
    }
    let _ = write!(
        svg,
        r#"<line x1="{LABELS}" x2="{LABELS}" y1="4" y2="{axis_y}" stroke="{MUTED}"/></svg>"#
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(linear_ticks(4200.0), vec![0.0, 2000.0, 4000.0, 6000.0]);
        assert_eq!(linear_ticks(15000.0), vec![0.0, 5000.0, 10000.0, 15000.0]);
        assert_eq!(linear_ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(duration_ticks(1000.0, 1e6), vec![1e3, 1e4, 6e4, 6e5]);
        let labels: Vec<String> = duration_ticks(1.0, 1e9)
            .into_iter()
            .map(duration_tick)
            .collect();
        assert_eq!(
            labels,
            [
                "1 ms", "10 ms", "100 ms", "1 s", "10 s", "1 min", "10 min", "1 h", "10 h", "1 d",
                "10 d"
            ]
        );
    }

    #[test]
    fn names_are_escaped_and_every_bar_has_a_tooltip() {
        let svg = bars(
            &[("<script>".into(), 2.0), ("b&c".into(), 1.0)],
            crate::format::usd_tick,
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("<title>&lt;script&gt;: $2</title>"));
        assert_eq!(svg.matches("<title>").count(), 2);
    }
}
