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
    AggregateOptions, InvocationMetric, MetricsAccumulator, MetricsAggregate, write_file_atomically,
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
