//! `report`: the same summary as a self-contained HTML page, GitHub Markdown, or JSON.

mod charts;
mod data;
mod html;
mod json;
mod markdown;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use invocation_metrics::{
    AggregateOptions, GroupSummary, Input, RecordFilter, resolve_inputs, write_file_atomically,
    write_file_atomically_with,
};

use crate::UsageError;
use crate::args::{InputArgs, ReportArgs, ReportFormat};
use crate::input;
use data::{FirstPass, ReportData};

/// `invmetrics report`.
pub fn run(args: &ReportArgs, out: &mut impl Write) -> Result<ExitCode> {
    let options = args.aggregate.options();
    let to_stdout = args.output.as_os_str() == "-";
    let format = args.format()?;
    if !to_stdout {
        refuse_overwriting_an_input(&args.input, &args.output)?;
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
    if !to_stdout {
        eprintln!("wrote {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses an output file that is one of the inputs (the same file, also through a link or
/// another path): writing the report would replace the metrics it reads.
fn refuse_overwriting_an_input(inputs: &InputArgs, output: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(output) else {
        return Ok(()); // A file that does not exist yet is no input.
    };
    for input in resolve_inputs(&inputs.paths, inputs.recursive)? {
        if let Input::File(path) = &input
            && let Ok(meta) = std::fs::metadata(path)
            && (meta.dev(), meta.ino()) == (target.dev(), target.ino())
        {
            return Err(UsageError(format!(
                "the output {} is the input {}: writing the report would destroy the metrics; choose another -o",
                output.display(),
                path.display()
            ))
            .into());
        }
    }
    Ok(())
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
    if let Some(template) = first.chains_to_fill() {
        let chunk_template = template.clone();
        let attempts = again.fold(filter, || template.clone(), move || chunk_template.clone())?;
        first.fill_chains(attempts);
    }
    first
        .finish(options)
        .context("cannot compute the aggregate")
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
