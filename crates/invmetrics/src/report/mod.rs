//! `report`: the same summary as a self-contained HTML page, GitHub Markdown, or JSON.

mod charts;
mod data;
mod html;
mod markdown;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use invocation_metrics::{
    AggregateOptions, GroupSummary, InvocationMetric, MetricsAccumulator, MetricsAggregate,
    write_file_atomically,
};
use serde::Serialize;

use crate::args::{ReportArgs, ReportFormat};
use crate::input;
use data::{ReportBuilder, ReportData};

/// `invmetrics report`.
pub fn run(args: &ReportArgs, out: &mut impl Write) -> Result<ExitCode> {
    let options = args.aggregate.options();
    let bytes = match args.format {
        ReportFormat::Html => html::render(&gather(args, &options)?)?.into_bytes(),
        ReportFormat::Md => markdown::render(&gather(args, &options)?).into_bytes(),
        ReportFormat::Json => json(args, &options)?,
    };
    if args.output.as_os_str() == "-" {
        out.write_all(&bytes)?;
    } else {
        write_file_atomically(&args.output, &bytes)?;
        eprintln!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What the HTML and Markdown reports show, in bounded memory: one pass over the inputs,
/// and a second for the retry chains' attempts when there are any.
fn gather(args: &ReportArgs, options: &AggregateOptions) -> Result<ReportData> {
    let mut builder = ReportBuilder::default();
    let (scan, inputs) =
        input::scan_remembering(&args.input, args.aggregate.filter(), false, |m| {
            builder.first_pass(m)
        })?;
    input::require_records(&scan)?;
    if builder.needs_second_pass() {
        inputs.scan(args.aggregate.filter(), |m| builder.second_pass(&m))?;
    }
    let data = builder
        .finish(options)
        .context("cannot compute the aggregate")?;
    input::warn_if_buckets_widened(options, &data.aggregate);
    Ok(data)
}

/// The JSON report: every record, then the aggregate. It holds the records by definition.
fn json(args: &ReportArgs, options: &AggregateOptions) -> Result<Vec<u8>> {
    let mut records = Vec::new();
    let scan = input::scan(&args.input, args.aggregate.filter(), false, |m| {
        records.push(m)
    })?;
    input::require_records(&scan)?;
    let aggregate = records
        .iter()
        .collect::<MetricsAccumulator>()
        .finish(options);
    input::warn_if_buckets_widened(options, &aggregate);
    #[derive(Serialize)]
    struct JsonReport<'a> {
        metrics: &'a [InvocationMetric],
        aggregate: &'a MetricsAggregate,
    }
    let mut json = serde_json::to_vec_pretty(&JsonReport {
        metrics: &records,
        aggregate: &aggregate,
    })?;
    json.push(b'\n');
    Ok(json)
}

/// Writes the HTML report of `records` to `path` (used by `demo`).
pub fn write_html(
    path: &Path,
    records: &[InvocationMetric],
    aggregate: &MetricsAggregate,
) -> Result<()> {
    let page = html::render(&ReportData::from_records(records, aggregate.clone()))?;
    write_file_atomically(path, page.as_bytes())?;
    Ok(())
}

/// Most groups a chart draws: the rest become one "others" bar. Agent names with ids in them
/// can make thousands of groups, and a bar each made charts hundreds of thousands of pixels
/// tall.
pub const CHART_GROUPS: usize = 25;

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
pub fn largest_groups(
    groups: Vec<(String, &GroupSummary)>,
    limit: usize,
) -> (Vec<(String, &GroupSummary)>, usize) {
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
