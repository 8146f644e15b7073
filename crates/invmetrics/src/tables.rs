//! What every output shows in its tables — the headline numbers, the breakdown columns,
//! which groups make the cut — so that `summary` and `report` share it without importing
//! each other.

use std::fmt::Write as _;

use invocation_metrics::{GroupSummary, MetricsAggregate};

use crate::format::{count, duration_ms, percent, span_length, usd, usd_places, utc_time};

/// The headline numbers.
pub fn totals_rows(agg: &MetricsAggregate) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Invocations", count(agg.total_invocations)),
        (
            "Succeeded",
            format!(
                "{} ({})",
                count(agg.success_count),
                percent(agg.success_rate)
            ),
        ),
        (
            "Retries",
            format!(
                "{} ({} after infrastructure errors)",
                count(agg.total_retries),
                count(agg.infra_retries)
            ),
        ),
        (
            "Escalations",
            format!(
                "{} (base tier {:?})",
                count(agg.escalation_count),
                agg.base_tier
            ),
        ),
        ("Tokens", count(agg.total_tokens)),
        (
            "Input / output / cached",
            format!(
                "{} / {} / {} (cache hit {})",
                count(agg.total_input_tokens),
                count(agg.total_output_tokens),
                count(agg.total_cached_tokens),
                percent(agg.cache_hit_ratio)
            ),
        ),
        ("Cost", usd(agg.total_cost)),
        (
            "Invocation time (sum)",
            duration_ms(agg.total_duration_ms as f64),
        ),
    ];
    // The aggregate keeps its times as RFC 3339 text; shown to people in UTC to the second.
    let time = |text: &str| text.parse::<invocation_metrics::Timestamp>().ok();
    if let (Some(first), Some(last)) = (&agg.first_start, &agg.last_end) {
        rows.push((
            "Span",
            match (time(first), time(last)) {
                (Some(a), Some(b)) => format!(
                    "{} → {} ({})",
                    utc_time(&a),
                    utc_time(&b),
                    span_length(b.unix_ms() - a.unix_ms())
                ),
                _ => format!("{first} → {last}"),
            },
        ));
    }
    rows.push((
        "Peak parallelism",
        match &agg.peak_parallel_at {
            Some(at) => format!(
                "{} at {}",
                agg.peak_parallel_invocations,
                time(at).map_or_else(|| at.clone(), |t| utc_time(&t))
            ),
            None => "0".into(),
        },
    ));
    rows
}

/// The columns of every breakdown table.
pub const GROUP_COLUMNS: [&str; 10] = [
    "Invocations",
    "Retries",
    "Success",
    "Tokens",
    "Cost",
    "Mean",
    "p50",
    "p95",
    "p99",
    "Max",
];

/// One breakdown row's cells, in [`GROUP_COLUMNS`] order, costs with `cost_places`
/// decimals (the same for the whole table: [`crate::format::usd_places_for`]).
pub fn group_cells(g: &GroupSummary, cost_places: usize) -> [String; 10] {
    [
        count(g.invocations),
        count(g.retries),
        percent(g.success_rate),
        count(g.tokens),
        usd_places(g.cost, cost_places),
        duration_ms(g.mean_duration_ms),
        duration_ms(g.p50_duration_ms as f64),
        duration_ms(g.p95_duration_ms as f64),
        duration_ms(g.p99_duration_ms as f64),
        duration_ms(g.max_duration_ms as f64),
    ]
}

/// `items` if there are at most `limit`; otherwise the `limit - 1` largest (in their order)
/// and one more item summing the rest.
pub fn largest_with_rest(items: Vec<(String, f64)>, limit: usize) -> Vec<(String, f64)> {
    if items.len() <= limit {
        return items;
    }
    let keep = largest_positions(&items, limit.saturating_sub(1), |(_, v)| *v);
    let (mut kept, mut rest, mut others) = (Vec::new(), 0.0, 0);
    for (i, item) in items.into_iter().enumerate() {
        if keep.contains(&i) {
            kept.push(item);
        } else {
            rest += item.1;
            others += 1;
        }
    }
    kept.push((format!("({others} others)"), rest));
    kept
}

/// The `limit` groups with the most invocations, in their order, and how many were left out.
pub fn largest_groups<N>(
    groups: Vec<(N, &GroupSummary)>,
    limit: usize,
) -> (Vec<(N, &GroupSummary)>, usize) {
    if groups.len() <= limit {
        return (groups, 0);
    }
    let keep = largest_positions(&groups, limit, |(_, g)| g.invocations as f64);
    let left_out = groups.len() - keep.len();
    let kept = groups
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, group)| group)
        .collect();
    (kept, left_out)
}

/// Positions of the `limit` items with the largest `value` (ties: the earlier).
fn largest_positions<T>(
    items: &[T],
    limit: usize,
    value: impl Fn(&T) -> f64,
) -> std::collections::BTreeSet<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        value(&items[b])
            .total_cmp(&value(&items[a]))
            .then(a.cmp(&b))
    });
    order.into_iter().take(limit).collect()
}

/// The breakdown tables (by agent, phase, …), each of at most `limit` groups, those with the
/// most invocations.
pub fn markdown_breakdowns(
    md: &mut String,
    agg: &MetricsAggregate,
    limit: usize,
) -> std::fmt::Result {
    for breakdown in agg.breakdowns() {
        let key = breakdown.dimension;
        let (groups, left_out) = largest_groups(breakdown.groups, limit);
        if groups.is_empty() {
            continue;
        }
        let places = crate::format::usd_places_for(groups.iter().map(|(_, g)| g.cost));
        writeln!(md, "\n## By {key}\n")?;
        writeln!(md, "| {key} | {} |", GROUP_COLUMNS.join(" | "))?;
        writeln!(md, "|---|{}", "---:|".repeat(GROUP_COLUMNS.len()))?;
        for (name, g) in groups {
            writeln!(
                md,
                "| {} | {} |",
                markdown_cell(&name),
                group_cells(g, places).join(" | ")
            )?;
        }
        if left_out > 0 {
            writeln!(
                md,
                "\n…and {left_out} more, with fewer invocations (every one in `invmetrics summary`)."
            )?;
        }
    }
    Ok(())
}

/// Summary totals as a Markdown table.
pub fn markdown_totals(md: &mut String, agg: &MetricsAggregate) -> std::fmt::Result {
    writeln!(md, "| Total | Value |\n|---|---|")?;
    for (name, value) in totals_rows(agg) {
        writeln!(md, "| {name} | {} |", markdown_cell(&value))?;
    }
    Ok(())
}

/// Escapes a value for a Markdown table cell (HTML is inert, pipes do not split cells).
pub fn markdown_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' | '*' | '_' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_items_keep_the_largest_in_order_and_sum_the_rest() {
        let items: Vec<(String, f64)> = [5.0, 1.0, 9.0, 2.0, 7.0]
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("g{i}"), *v))
            .collect();
        assert_eq!(largest_with_rest(items.clone(), 5), items);
        assert_eq!(
            largest_with_rest(items, 3),
            [
                ("g2".to_owned(), 9.0),
                ("g4".to_owned(), 7.0),
                ("(3 others)".to_owned(), 8.0)
            ]
        );
    }
}
