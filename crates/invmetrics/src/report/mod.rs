//! `report`: the same summary as a self-contained HTML page, GitHub Markdown, or JSON.

mod chains;
mod charts;
mod data;
mod html;
mod json;
mod markdown;
mod svg;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use invocation_metrics::{
    AggregateOptions, RecordFilter, write_file_atomically, write_file_atomically_with,
};

use crate::args::{InputArgs, ReportArgs, ReportFormat};
use crate::input;
use data::{Coverage, FirstPass, ReportData};

/// `invmetrics report`.
pub fn run(args: &ReportArgs, out: &mut impl Write) -> Result<ExitCode> {
    let options = args.aggregate.options();
    let to_stdout = args.output.as_os_str() == "-";
    let format = args.format()?;
    if !to_stdout {
        input::refuse_unusable_output(&args.input, &args.output)?;
    }
    match format {
        ReportFormat::Json => {
            // Streamed: the records go from the input to the output one by one.
            if to_stdout {
                json::write(args, &options, out)?;
            } else {
                write_file_atomically_with(&args.output, |file| json::write(args, &options, file))?;
            }
        }
        format => {
            let data = gather(&args.input, args.aggregate.filter(), &options)?;
            let page = match format {
                ReportFormat::Html => {
                    // Only the HTML charts the buckets.
                    input::warn_if_buckets_widened(&options, &data.aggregate);
                    html::render(&data)?
                }
                _ => markdown::render(&data),
            };
            if to_stdout {
                out.write_all(page.as_bytes())?;
            } else {
                write_file_atomically(&args.output, page.as_bytes())?;
            }
        }
    }
    if !to_stdout && !crate::quiet() {
        eprintln!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What the HTML and Markdown reports show, in bounded memory: one pass over the inputs,
/// and a second for the retry chains' attempts when there are any, both on every core.
fn gather(
    inputs: &InputArgs,
    filter: RecordFilter,
    options: &AggregateOptions,
) -> Result<ReportData> {
    let (mut first, scan, again) = input::fold_remembering(
        inputs,
        filter.clone(),
        false,
        FirstPass::total,
        FirstPass::chunk,
    )?;
    input::require_records(&scan)?;
    let coverage = Coverage {
        inputs: scan
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.records, i.problems.len() as u64))
            .collect(),
        filters: describe(&filter),
        duplicates: scan.duplicates,
        filtered_out: scan.filtered_out,
        generated_at: crate::format::utc_time(&generation_time()),
        tool: format!("invmetrics {}", env!("CARGO_PKG_VERSION")),
    };
    if let Some(template) = first.chains_to_fill() {
        let chunk_template = template.clone();
        let attempts = again.fold(
            filter.clone(),
            || template.clone(),
            move || chunk_template.clone(),
        )?;
        first.fill_chains(attempts);
    }
    let data = first
        .finish(options, coverage)
        .context("cannot compute the aggregate")?;
    input::unknown_agents(
        inputs,
        &filter,
        |a| data.aggregate.agents.contains_key(a),
        scan.kept,
    )?;
    Ok(data)
}

/// What a report says about what it covers, one plain-text line each (the renderers escape
/// them).
pub fn coverage_lines(c: &data::Coverage) -> Vec<String> {
    use crate::format::count;
    let inputs: Vec<String> = c
        .inputs
        .iter()
        .map(|(name, records, damaged)| match damaged {
            0 => format!("{name} ({} records)", count(*records)),
            n => format!(
                "{name} ({} records, {} damaged lines skipped)",
                count(*records),
                count(*n)
            ),
        })
        .collect();
    let mut lines = vec![format!("Read: {}", inputs.join("; "))];
    if !c.filters.is_empty() {
        lines.push(format!(
            "Filters: {} ({} records left out)",
            c.filters.join(" "),
            count(c.filtered_out)
        ));
    }
    if c.duplicates > 0 {
        lines.push(format!(
            "Left out: {} records repeating an earlier invocationId",
            count(c.duplicates)
        ));
    }
    lines.push(format!("Generated {} by {}", c.generated_at, c.tool));
    lines
}

/// The cost of failed invocations and its share of all cost.
pub fn failed_cost_line(data: &ReportData) -> String {
    let total = data.aggregate.total_cost;
    let share = if total > 0.0 {
        data.failed_cost / total
    } else {
        0.0
    };
    format!(
        "{} ({} of all cost)",
        crate::format::usd(data.failed_cost),
        crate::format::percent(share)
    )
}

/// Now, or `SOURCE_DATE_EPOCH` (seconds) when set: the reproducible-builds convention, so
/// the same inputs can give the same report byte for byte.
fn generation_time() -> invocation_metrics::Timestamp {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| s.checked_mul(1000))
        .and_then(invocation_metrics::Timestamp::from_unix_ms)
        .unwrap_or_else(invocation_metrics::Timestamp::now)
}

/// The filters as a person typed them.
fn describe(filter: &RecordFilter) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(since) = &filter.since {
        out.push(format!("--since {}", crate::format::utc_time(since)));
    }
    if let Some(until) = &filter.until {
        out.push(format!("--until {}", crate::format::utc_time(until)));
    }
    out.extend(filter.agents.iter().map(|a| format!("--agent {a}")));
    out.extend(filter.phases.iter().map(|p| format!("--phase {p}")));
    out
}

/// Writes the HTML report of the metrics file `metrics` to `path`, with the default
/// aggregate options and no filter (used by `demo`, on the run it just recorded).
pub fn write_html_of(metrics: &Path, path: &Path) -> Result<()> {
    let input = InputArgs {
        paths: vec![metrics.to_path_buf()],
        recursive: false,
        no_dedup: false,
    };
    let data = gather(
        &input,
        RecordFilter::default(),
        &AggregateOptions::default(),
    )?;
    write_file_atomically(path, html::render(&data)?.as_bytes())?;
    Ok(())
}

/// Most groups a chart draws: the rest become one "others" bar. Agent names with ids in them
/// can make thousands of groups, and a bar each made charts hundreds of thousands of pixels
/// tall.
pub const CHART_GROUPS: usize = 25;

/// "succeeded", "succeeded on attempt N", or "failed (exit code N)".
fn outcome(m: &invocation_metrics::InvocationMetric) -> String {
    match (m.success, m.attempt) {
        (true, 1) => "succeeded".into(),
        (true, n) => format!("succeeded on attempt {n}"),
        (false, _) => format!("failed (exit code {})", m.exit_code),
    }
}
