//! Charts over time as inline SVG, drawn with plotters (which escapes every text it draws);
//! the bar and box charts are in `svg.rs`.

use anyhow::{Result, anyhow};
use invocation_metrics::{InvocationMetric, MetricsAggregate, Timestamp};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 760;
const FONT: &str = "sans-serif";
const ACCENT: RGBColor = RGBColor(0x2f, 0x6f, 0xeb);
const SUCCESS: RGBColor = RGBColor(0x2e, 0x9e, 0x5b);
const RETRIED: RGBColor = RGBColor(0xe0, 0x8a, 0x1e);
const FAILED: RGBColor = RGBColor(0xd6, 0x3c, 0x3c);

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw chart: {e:?}")
}

/// Draws one chart on a white SVG canvas of `size` and returns the SVG text.
fn render_svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    // Scale to the panel (the viewBox keeps the proportions) instead of a fixed pixel size.
    let fixed = format!("<svg width=\"{}\" height=\"{}\" ", size.0, size.1);
    Ok(svg.replacen(&fixed, "<svg width=\"100%\" ", 1))
}

/// Ticks for a time axis from `first` over `span` ms (absolute Unix ms): at a human step
/// (seconds, 1/5/15/30 minutes, 1/3/6/12 hours, days, weeks) aligned to it in UTC, at most
/// eight, as offsets from `first`; and their labels — the time of day, with the date when the
/// span crosses days, or the date alone for steps of a day or more.
pub fn time_ticks(first: i64, span: i64) -> (Vec<f64>, Vec<String>) {
    const SECOND: i64 = 1000;
    const MINUTE: i64 = 60 * SECOND;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const STEPS: [i64; 17] = [
        SECOND,
        5 * SECOND,
        15 * SECOND,
        30 * SECOND,
        MINUTE,
        5 * MINUTE,
        15 * MINUTE,
        30 * MINUTE,
        HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        DAY,
        2 * DAY,
        7 * DAY,
        30 * DAY,
        365 * DAY,
    ];
    let span = span.max(1);
    let step = STEPS
        .into_iter()
        .find(|step| span / step <= 8)
        .unwrap_or(365 * DAY);
    let day = |ms: i64| ms.div_euclid(DAY);
    let crosses_days = day(first) != day(first + span);
    let text = |ms: i64| {
        Timestamp::from_unix_ms(ms)
            .map(|t| t.to_utc_millis_string())
            .unwrap_or_default()
    };
    let label = |ms: i64| {
        let iso = text(ms);
        match (step >= DAY, crosses_days, step < MINUTE) {
            (true, _, _) => iso.get(..10).unwrap_or_default().to_owned(),
            (false, true, seconds) => format!(
                "{} {}",
                iso.get(5..10).unwrap_or_default(),
                iso.get(11..if seconds { 19 } else { 16 })
                    .unwrap_or_default()
            ),
            (false, false, true) => iso.get(11..19).unwrap_or_default().to_owned(),
            (false, false, false) => iso.get(11..16).unwrap_or_default().to_owned(),
        }
    };
    let mut at = first.div_euclid(step) * step;
    if at < first {
        at += step;
    }
    let (mut offsets, mut labels) = (Vec::new(), Vec::new());
    while at <= first + span {
        offsets.push((at - first) as f64);
        labels.push(label(at));
        at += step;
    }
    (offsets, labels)
}

/// Draws a time axis's ticks (as grid lines up to `top`) and their labels under the plot:
/// plotters would place ticks at round numbers of milliseconds.
fn draw_time_axis<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    ticks: &[f64],
    labels: &[String],
    top: f64,
) -> Result<()> {
    let grid = RGBColor(0xe6, 0xe8, 0xec);
    chart
        .draw_series(
            ticks
                .iter()
                .map(|t| PathElement::new(vec![(*t, 0.0), (*t, top)], grid)),
        )
        .map_err(draw_err)?;
    let style = TextStyle::from((FONT, 12)).pos(Pos::new(HPos::Center, VPos::Top));
    for (t, label) in ticks.iter().zip(labels) {
        let (x, y) = chart.backend_coord(&(*t, 0.0));
        root.draw(&Text::new(label.clone(), (x, y + 6), style.clone()))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Axis labels only at whole numbers (counts have no fractions).
fn whole_numbers(y: &f64) -> String {
    if (y - y.round()).abs() < 1e-9 {
        format!("{y:.0}")
    } else {
        String::new()
    }
}

/// Invocations running at once, per bucket.
pub fn parallelism(agg: &MetricsAggregate) -> Result<String> {
    let first = agg
        .parallelism_over_time
        .first()
        .and_then(|b| b.bucket_start.parse::<Timestamp>().ok())
        .map_or(0, |t| t.unix_ms());
    let width = agg.bucket_width_ms as f64;
    let points: Vec<(f64, f64)> = agg
        .parallelism_over_time
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            let x = i as f64 * width;
            [(x, b.concurrent as f64), (x + width, b.concurrent as f64)]
        })
        .collect();
    let max_x = points.last().map_or(1.0, |p| p.0).max(1.0);
    let max_y = (agg.peak_parallel_invocations as f64 * 1.15).max(1.0);
    let (ticks, labels) = time_ticks(first, max_x as i64);
    let buckets = &agg.parallelism_over_time;
    let per = buckets.len().div_ceil(HOVER_SEGMENTS).max(1);
    let dated = (max_x as i64) >= 86_400_000;
    let segments: Vec<(f64, f64, String)> = buckets
        .chunks(per)
        .enumerate()
        .map(|(i, group)| {
            let from = (i * per) as f64 * width;
            let to = from + group.len() as f64 * width;
            let most = group.iter().map(|b| b.concurrent).max().unwrap_or(0);
            let text = format!(
                "{} – {} UTC: at most {most} running",
                clock_at(first + from as i64, dated),
                clock_at(first + to as i64, dated)
            );
            (from, to, text)
        })
        .collect();
    let mut overlay = String::new();

    let svg = render_svg((WIDTH, 280), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_right(28)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&whole_numbers)
            .y_desc("running at once")
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        draw_time_axis(root, &mut chart, &ticks, &labels, max_y)?;
        chart
            .draw_series(AreaSeries::new(points, 0.0, ACCENT.mix(0.25)).border_style(ACCENT))
            .map_err(draw_err)?;
        overlay = hover_strips(&chart, &segments, max_y);
        Ok(())
    })?;
    Ok(with_overlay(svg, &overlay))
}

/// Tooltips for a time chart (plotters draws no `<title>`): the plot split into at most
/// [`HOVER_SEGMENTS`] transparent strips, each with its text. `segments`: (from, to) in the
/// chart's x values and the text; `top`: the y value of the plot's top.
fn hover_strips(
    chart: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    segments: &[(f64, f64, String)],
    top: f64,
) -> String {
    let mut out = String::new();
    for (from, to, text) in segments {
        let (x0, y0) = chart.backend_coord(&(*from, top));
        let (x1, y1) = chart.backend_coord(&(*to, 0.0));
        out.push_str(&format!(
            r#"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="transparent"><title>{}</title></rect>"#,
            (x1 - x0).max(1),
            (y1 - y0).max(1),
            super::svg::escape(text)
        ));
    }
    out
}

/// Most hover strips on a time chart.
const HOVER_SEGMENTS: usize = 60;

/// "HH:MM" (UTC; with the date when `with_date`) of a Unix ms time.
fn clock_at(ms: i64, with_date: bool) -> String {
    let iso = Timestamp::from_unix_ms(ms)
        .map(|t| t.to_utc_millis_string())
        .unwrap_or_default();
    match with_date {
        true => format!(
            "{} {}",
            iso.get(..10).unwrap_or_default(),
            iso.get(11..19).unwrap_or_default()
        ),
        false => iso.get(11..19).unwrap_or_default().to_owned(),
    }
}

/// Inserts `overlay` as the last thing drawn in `svg`.
fn with_overlay(svg: String, overlay: &str) -> String {
    match svg.rfind("</svg>") {
        Some(at) => format!("{}{overlay}{}", &svg[..at], &svg[at..]),
        None => svg,
    }
}

/// Cost so far over time: a step for each bucket's end (`points`: Unix ms and USD so far).
pub fn cumulative_cost(points: &[(i64, f64)]) -> Result<String> {
    let first = points.first().map_or(0, |p| p.0);
    let series: Vec<(f64, f64)> = points
        .iter()
        .map(|(t, cost)| ((t - first) as f64, *cost))
        .collect();
    let max_x = series.last().map_or(1.0, |p| p.0).max(1.0);
    let max_y = series.last().map_or(1.0, |p| p.1).max(1e-9) * 1.1;
    let (ticks, labels) = time_ticks(first, max_x as i64);
    let per = points.len().div_ceil(HOVER_SEGMENTS).max(1);
    let dated = (max_x as i64) >= 86_400_000;
    let segments: Vec<(f64, f64, String)> = series
        .chunks(per)
        .enumerate()
        .map(|(i, group)| {
            let from = if i == 0 { 0.0 } else { series[i * per - 1].0 };
            let (to, so_far) = group.last().copied().unwrap_or((from, 0.0));
            let text = format!(
                "by {} UTC: {} so far",
                clock_at(first + to as i64, dated),
                crate::format::usd(so_far)
            );
            (from, to, text)
        })
        .collect();
    let mut overlay = String::new();
    let svg = render_svg((WIDTH, 240), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_right(28)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(5)
            .y_label_formatter(&|v| crate::format::usd_tick(*v))
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        draw_time_axis(root, &mut chart, &ticks, &labels, max_y)?;
        chart
            .draw_series(
                AreaSeries::new(series.iter().copied(), 0.0, ACCENT.mix(0.15)).border_style(ACCENT),
            )
            .map_err(draw_err)?;
        overlay = hover_strips(&chart, &segments, max_y);
        Ok(())
    })?;
    Ok(with_overlay(svg, &overlay))
}

/// A Gantt chart: every invocation a bar on the lane it ran in (lanes packed so bars never
/// overlap), green when it succeeded first time, orange for a successful retry, red when it
/// failed. `by_start`: the invocations to draw, earliest first.
pub fn timeline(by_start: &[InvocationMetric]) -> Result<String> {
    let first = by_start.first().map_or(0, |m| m.start_ms());

    let mut lane_ends: Vec<i64> = Vec::new();
    let mut bars = Vec::with_capacity(by_start.len());
    for m in by_start {
        let (start, end) = (m.start_ms(), m.end_ms().max(m.start_ms() + 1));
        let lane = match lane_ends.iter().position(|e| *e <= start) {
            Some(lane) => lane,
            None => {
                lane_ends.push(i64::MIN);
                lane_ends.len() - 1
            }
        };
        lane_ends[lane] = end;
        let color = match (m.success, m.attempt > 1) {
            (false, _) => FAILED,
            (true, true) => RETRIED,
            (true, false) => SUCCESS,
        };
        bars.push(((start - first) as f64, (end - first) as f64, lane, color));
    }
    let lanes = lane_ends.len().max(1);
    let max_x = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let height = (80 + 9 * lanes as u32).min(900);
    let (ticks, labels) = time_ticks(first, max_x as i64);
    render_svg((WIDTH, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_right(28)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..max_x, 0f64..lanes as f64)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(0)
            .y_label_formatter(&whole_numbers)
            .y_desc("lane")
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        draw_time_axis(root, &mut chart, &ticks, &labels, lanes as f64)?;
        chart
            .draw_series(bars.iter().map(|(x0, x1, lane, color)| {
                let y = *lane as f64;
                Rectangle::new([(*x0, y + 0.12), (*x1, y + 0.88)], color.mix(0.85).filled())
            }))
            .map_err(draw_err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ticks_fall_on_human_steps_with_dates_when_days_change() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap().unix_ms();
        // Six days: a tick a day, at midnight UTC, labelled with the date.
        let first = at("2026-11-24T09:00:00.048Z");
        let (ticks, labels) = time_ticks(first, at("2026-11-30T06:14:06Z") - first);
        assert_eq!(labels.first().map(String::as_str), Some("2026-11-25"));
        assert_eq!(labels.len(), 6);
        assert_eq!(ticks[1] - ticks[0], 86_400_000.0);
        // Two hours within a day: every 15 minutes, the time of day only.
        let first = at("2026-11-24T09:07:00Z");
        let (_, labels) = time_ticks(first, 2 * 3_600_000);
        assert_eq!(labels[..2], ["09:15", "09:30"]);
        // Across midnight: the date with the time.
        let first = at("2026-11-24T22:00:00Z");
        let (_, labels) = time_ticks(first, 4 * 3_600_000);
        assert!(labels.contains(&"11-25 00:00".to_owned()), "{labels:?}");
        // Seconds across midnight: the date and the seconds.
        let (_, labels) = time_ticks(at("2026-11-24T23:59:50Z"), 20_000);
        assert_eq!(labels[..2], ["11-24 23:59:50", "11-24 23:59:55"]);
        // Seconds: the seconds shown.
        let (_, labels) = time_ticks(at("2026-11-24T09:00:00Z"), 18_000);
        assert_eq!(labels[..2], ["09:00:00", "09:00:05"]);
    }
}
