//! `report`: the same summary as a self-contained HTML page, GitHub Markdown, or JSON.

mod charts;
mod html;
mod markdown;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use invocation_metrics::{
    InvocationMetric, MetricsAccumulator, MetricsAggregate, write_file_atomically,
};
use serde::Serialize;

use crate::args::{ReportArgs, ReportFormat};
use crate::input;

/// `invmetrics report`.
pub fn run(args: &ReportArgs, out: &mut impl Write) -> Result<ExitCode> {
    let mut records = Vec::new();
    let scan = input::scan(&args.input, args.aggregate.filter(), false, |m| {
        records.push(m)
    })?;
    input::require_records(&scan)?;
    let options = args.aggregate.options();
    let aggregate = records
        .iter()
        .collect::<MetricsAccumulator>()
        .finish(&options);
    input::warn_if_buckets_widened(&options, &aggregate);
    let bytes = match args.format {
        ReportFormat::Html => html::render(&records, &aggregate)?.into_bytes(),
        ReportFormat::Md => markdown::render(&records, &aggregate).into_bytes(),
        ReportFormat::Json => {
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
            json
        }
    };
    if args.output.as_os_str() == "-" {
        out.write_all(&bytes)?;
    } else {
        write_file_atomically(&args.output, &bytes)?;
        eprintln!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the HTML report of `records` to `path` (used by `demo`).
pub fn write_html(
    path: &Path,
    records: &[InvocationMetric],
    aggregate: &MetricsAggregate,
) -> Result<()> {
    let page = html::render(records, aggregate)?;
    write_file_atomically(path, page.as_bytes())?;
    Ok(())
}

/// The `limit` records with the smallest `key`, in key order (ties in record order): a
/// selection, then a sort of the few selected, each key computed once.
pub fn earliest<'a, K: Ord>(
    records: &'a [InvocationMetric],
    limit: usize,
    key: impl Fn(&'a InvocationMetric) -> K,
) -> Vec<&'a InvocationMetric> {
    let mut keyed: Vec<(K, usize)> = records
        .iter()
        .enumerate()
        .map(|(i, m)| (key(m), i))
        .collect();
    if keyed.len() > limit && limit > 0 {
        keyed.select_nth_unstable(limit - 1);
    }
    keyed.truncate(limit);
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| &records[i]).collect()
}
