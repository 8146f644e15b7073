//! Charts as inline SVG, drawn with plotters (which escapes every text it draws).

use anyhow::{Result, anyhow};
use invocation_metrics::{GroupSummary, InvocationMetric, MetricsAggregate, Timestamp};
use plotters::coord::Shift;
use plotters::prelude::*;

const WIDTH: u32 = 960;
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
    Ok(svg)
}

/// "HH:MM:SS" (UTC) of a millisecond timestamp.
fn clock(ms: i64) -> String {
    Timestamp::from_unix_ms(ms)
        .map(|t| t.to_utc_millis_string()[11..19].to_owned())
        .unwrap_or_default()
}

/// Axis labels only at whole numbers (counts have no fractions).
fn whole_numbers(y: &f64) -> String {
    if (y - y.round()).abs() < 1e-9 {
        format!("{y:.0}")
    } else {
        String::new()
    }
}

/// Shortens long labels so they fit beside the axis.
fn label(s: &str) -> String {
    if s.chars().count() > 24 {
        s.chars().take(23).chain(['…']).collect()
    } else {
        s.to_owned()
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

    render_svg((WIDTH, 280), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(8)
            .x_label_formatter(&|x| clock(first + *x as i64))
            .y_label_formatter(&whole_numbers)
            .y_desc("running at once")
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(AreaSeries::new(points, 0.0, ACCENT.mix(0.25)).border_style(ACCENT))
            .map_err(draw_err)?;
        Ok(())
    })
}

/// Horizontal bars, one per named value, the first at the top.
pub fn bars(items: &[(String, f64)], value_label: fn(f64) -> String) -> Result<String> {
    let n = items.len().max(1);
    // Plotters counts rows from the bottom (and may ask for a label past the last row).
    let row = |i: usize| n.checked_sub(i + 1);
    let max = items
        .iter()
        .map(|i| i.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let names: Vec<String> = items.iter().map(|(name, _)| label(name)).collect();
    let height = 50 + 26 * n as u32;
    render_svg((WIDTH / 2 - 10, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(24)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..max, (0usize..n).into_segmented())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(4)
            .x_label_formatter(&|v| value_label(*v))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(r) => row(*r)
                    .and_then(|i| names.get(i).cloned())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(
                // Rectangles, not plotters' Histogram: that one keeps its bars in a hash map,
                // so the SVG came out in a different order on every run.
                items.iter().enumerate().map(|(i, (_, v))| {
                    let r = row(i).unwrap_or_default();
                    let mut bar = Rectangle::new(
                        [
                            (0.0, SegmentValue::Exact(r)),
                            (*v, SegmentValue::Exact(r + 1)),
                        ],
                        ACCENT.mix(0.8).filled(),
                    );
                    bar.set_margin(5, 5, 0, 0);
                    bar
                }),
            )
            .map_err(draw_err)?;
        Ok(())
    })
}

/// One box per agent: the quartiles of its durations, whiskers 1.5 interquartile ranges
/// out (log scale). Quartiles come from the aggregate (nearest rank, within 0.1%), so the
/// chart needs no records.
pub fn durations(agg: &MetricsAggregate) -> Result<String> {
    let groups: Vec<(String, &GroupSummary)> =
        agg.agents.iter().map(|(k, g)| (k.clone(), g)).collect();
    let (groups, _) = super::largest_groups(groups, super::CHART_GROUPS);
    let names: Vec<String> = groups.iter().map(|(n, _)| label(n)).collect();
    let boxes: Vec<Quartiles> = groups
        .iter()
        .map(|(_, g)| {
            // Five values whose quartiles, as plotters interpolates them, are exactly the
            // aggregate's.
            let (q1, q2, q3) = (
                g.p25_duration_ms.max(1) as f64,
                g.p50_duration_ms.max(1) as f64,
                g.p75_duration_ms.max(1) as f64,
            );
            Quartiles::new(&[q1, q1, q2, q3, q3])
        })
        .collect();
    let n = names.len().max(1);
    let max = groups
        .iter()
        .map(|(_, g)| g.max_duration_ms as f64)
        .chain(boxes.iter().map(|q| f64::from(q.values()[4])))
        .fold(1.0, f64::max)
        * 1.5;
    // The lower whisker often reaches below zero; start the axis just under the shortest
    // duration (or the lowest whisker above it) instead of letting it stretch to 1 ms.
    let min = groups
        .iter()
        .map(|(_, g)| g.min_duration_ms.max(1) as f64)
        .fold(f64::MAX, f64::min)
        .min(max)
        / 1.5;
    let height = 60 + 30 * n as u32;
    render_svg((WIDTH, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(150)
            .build_cartesian_2d(
                (min.max(1.0) as f32..max as f32).log_scale(),
                (0usize..n).into_segmented(),
            )
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("duration (log scale)")
            .x_label_formatter(&|v| crate::format::duration_ms(f64::from(*v)))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(r) => n
                    .checked_sub(r + 1)
                    .and_then(|i| names.get(i).cloned())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(boxes.iter().enumerate().map(|(i, quartiles)| {
                // The first agent at the top: plotters counts rows from the bottom.
                Boxplot::new_horizontal(SegmentValue::CenterOf(n.saturating_sub(i + 1)), quartiles)
                    .width(16)
                    .whisker_width(0.6)
                    .style(ACCENT)
            }))
            .map_err(draw_err)?;
        Ok(())
    })
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
    render_svg((WIDTH, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..max_x, 0f64..lanes as f64)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(8)
            .x_label_formatter(&|x| clock(first + *x as i64))
            .y_label_formatter(&whole_numbers)
            .y_desc("lane")
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(bars.iter().map(|(x0, x1, lane, color)| {
                let y = *lane as f64;
                Rectangle::new([(*x0, y + 0.12), (*x1, y + 0.88)], color.mix(0.85).filled())
            }))
            .map_err(draw_err)?;
        Ok(())
    })
}
