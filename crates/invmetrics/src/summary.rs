//! `summary`: the terminal view of a metrics file.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use comfy_table::{
    Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width, presets,
};
use invocation_metrics::{GroupSummary, MetricsAggregate, ScanReport};

use crate::args::{SummaryArgs, SummaryFormat};
use crate::format::{count, duration_ms, shorten_for_terminal, usd_places_for};
use crate::input;
use crate::tables::{GROUP_COLUMNS, group_cells, largest_groups, totals_rows};

/// `invmetrics summary`.
pub fn run(args: &SummaryArgs, out: &mut impl Write) -> Result<ExitCode> {
    let format = args.format();
    // `-` is stdout.
    let output_file = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    if let Some(path) = output_file {
        input::refuse_unusable_output(&args.input, path)?;
    }
    let (accumulator, report) = input::aggregate(
        &args.input,
        args.aggregate.filter(),
        format != SummaryFormat::Table,
    )?;
    input::require_records(&report)?;
    let options = args.aggregate.options();
    let aggregate = accumulator
        .try_into_aggregate(&options)
        .context("cannot compute the aggregate")?;
    input::unknown_agents(
        &args.input,
        &args.aggregate.filter(),
        |a| aggregate.agents.contains_key(a),
        report.kept,
    )?;
    let write = |out: &mut dyn Write| -> Result<()> {
        match format {
            SummaryFormat::Json => {
                // Only the JSON shows the buckets.
                input::warn_if_buckets_widened(&options, &aggregate);
                // serde writes a few bytes at a time: into a buffer whose type it sees, not
                // through `dyn Write`, a call each (writing the 20 MB summary of 30,000 agents
                // took 44 ms, now 28).
                let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut *out);
                serde_json::to_writer_pretty(&mut buffered, &aggregate)?;
                writeln!(buffered)?;
                buffered.flush()?;
            }
            SummaryFormat::Table => write_tables(out, &aggregate, &report, args.top)?,
            SummaryFormat::Csv => write_csv(out, &aggregate, args.top)?,
            SummaryFormat::Md => {
                let mut md = String::new();
                // Writing to a String cannot fail.
                let _ = crate::tables::markdown_totals(&mut md, &aggregate);
                let _ = crate::tables::markdown_breakdowns(
                    &mut md,
                    &aggregate,
                    args.top.unwrap_or(usize::MAX),
                );
                out.write_all(crate::format::neutralize_bidi(md).as_bytes())?;
            }
        }
        Ok(())
    };
    match output_file {
        Some(path) => {
            invocation_metrics::write_file_atomically_with(path, |file| write(file))?;
            if !crate::quiet() {
                eprintln!("wrote {}", path.display());
            }
        }
        None => write(out)?,
    }
    // The process ends next, and with it every allocation: freeing a large aggregate's maps
    // one by one first (10 ms for 30,000 agents) would only delay the exit.
    std::mem::forget(aggregate);
    Ok(ExitCode::SUCCESS)
}

/// One CSV row per group of every breakdown: `dimension,group,` then the numbers, unformatted
/// (durations in milliseconds, cost in USD), for a spreadsheet.
fn write_csv(out: &mut dyn Write, agg: &MetricsAggregate, top: Option<usize>) -> Result<()> {
    writeln!(
        out,
        "dimension,group,invocations,retries,success_rate,tokens,cost_usd,mean_ms,p50_ms,p95_ms,p99_ms,max_ms"
    )?;
    for breakdown in agg.breakdowns() {
        let (groups, _) = largest_groups(breakdown.groups, top.unwrap_or(usize::MAX));
        for (name, g) in groups {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(breakdown.dimension),
                csv_field(name.as_ref()),
                g.invocations,
                g.retries,
                g.success_rate,
                g.tokens,
                g.cost,
                g.mean_duration_ms,
                g.p50_duration_ms,
                g.p95_duration_ms,
                g.p99_duration_ms,
                g.max_duration_ms
            )?;
        }
    }
    Ok(())
}

/// A CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, a quote or a
/// line break. A formula-looking name (`=`, `+`, `-`, `@` first) gets a leading `'` so a
/// spreadsheet shows it instead of running it.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    let formula = s.starts_with(['=', '+', '-', '@']);
    if !formula && !s.contains([',', '"', '\n', '\r']) {
        return s.into();
    }
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\"")).into()
}

/// Groups in a table past which a note says how to shorten it.
const LONG_TABLE: usize = 100;

/// Every table of the summary, in reading order; with `top`, each breakdown lists only that
/// many groups, those with the most invocations.
pub fn write_tables(
    out: &mut (impl Write + ?Sized),
    agg: &MetricsAggregate,
    scan: &ScanReport,
    top: Option<usize>,
) -> Result<()> {
    writeln!(out, "{}", totals_table(agg, scan))?;
    for breakdown in agg.breakdowns() {
        let dimension = breakdown.dimension;
        let all = breakdown.groups.len();
        let (groups, left_out) = largest_groups(breakdown.groups, top.unwrap_or(usize::MAX));
        if groups.is_empty() {
            continue;
        }
        writeln!(out, "\nBy {dimension}")?;
        write_group_table(out, dimension, &groups)?;
        if left_out > 0 {
            writeln!(
                out,
                "…and {} more with fewer invocations (without --top: all {})",
                count(left_out as u64),
                count(all as u64)
            )?;
        } else if all > LONG_TABLE {
            writeln!(
                out,
                "({} {dimension} groups: --top N lists only the busiest)",
                count(all as u64)
            )?;
        }
    }
    Ok(())
}

fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if crate::style::stdout() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table
}

/// A header cell, bold when stdout is coloured.
fn header(text: &str) -> Cell {
    Cell::new(text).add_attribute(comfy_table::Attribute::Bold)
}

fn totals_table(agg: &MetricsAggregate, scan: &ScanReport) -> Table {
    let mut table = new_table();
    // Two columns cannot lose one: on a narrow terminal a long value wraps inside its cell.
    if let Some(width) = terminal_width() {
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(u16::try_from(width).unwrap_or(u16::MAX));
    }
    table.set_header([header("Total"), header("Value")]);
    for (name, value) in totals_rows(agg) {
        table.add_row([name.to_owned(), value]);
    }
    let counts: Vec<u64> = agg
        .parallelism_over_time
        .iter()
        .map(|b| b.concurrent)
        .collect();
    if counts.len() > 1 {
        // Each character is the peak of this many buckets: say the time it stands for.
        let per = buckets_per_character(counts.len(), SPARKLINE_COLUMNS);
        table.add_row([
            format!(
                "Running at once (per {})",
                duration_ms(agg.bucket_width_ms as f64 * per as f64)
            ),
            sparkline(&counts, SPARKLINE_COLUMNS),
        ]);
    }
    let damaged = scan.problem_count();
    if damaged > 0 || scan.duplicates > 0 {
        table.add_row([
            "Skipped lines".to_owned(),
            format!(
                "{} damaged, {} duplicate",
                count(damaged),
                count(scan.duplicates)
            ),
        ]);
    }
    table
}

/// Rows a table is built of at a time: a table of a million groups is printed as pages of
/// this many rows, with the same column widths, so that only one page's cells exist at once.
const TABLE_PAGE_ROWS: usize = 1_000;

/// Prints a breakdown's table, in pages of [`TABLE_PAGE_ROWS`] when it is longer.
fn write_group_table<N: AsRef<str>>(
    out: &mut (impl Write + ?Sized),
    dimension: &str,
    groups: &[(N, &GroupSummary)],
) -> Result<()> {
    let places = usd_places_for(groups.iter().map(|(_, g)| g.cost));
    // Every page gets the widest cell of its column over all pages, found without keeping
    // any cell.
    let mut widths: Vec<usize> = std::iter::once(dimension)
        .chain(GROUP_COLUMNS)
        .map(|c| c.chars().count())
        .collect();
    for (name, g) in groups {
        let cells = std::iter::once(shorten_for_terminal(name.as_ref(), 60).into_owned())
            .chain(group_cells(g, places));
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let hidden = columns_to_hide(&widths, terminal_width());
    for page in groups.chunks(TABLE_PAGE_ROWS) {
        let mut table = group_table(dimension, page, places);
        for (i, (column, width)) in table.column_iter_mut().zip(&widths).enumerate() {
            if hidden.contains(&i) {
                column.set_constraint(ColumnConstraint::Hidden);
            } else if groups.len() > TABLE_PAGE_ROWS {
                // Content plus the one space of padding on each side.
                let width = u16::try_from(width + 2).unwrap_or(u16::MAX);
                column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(width)));
            }
        }
        writeln!(out, "{table}")?;
    }
    if !hidden.is_empty() {
        let names: Vec<&str> = hidden.iter().map(|i| GROUP_COLUMNS[i - 1]).collect();
        writeln!(
            out,
            "(hidden for {} columns: {}; --format csv has all)",
            terminal_width().unwrap_or(0),
            names.join(", ")
        )?;
    }
    Ok(())
}

/// A one-line chart of `counts` at most `columns` wide (neighbouring counts merged by their
/// maximum), scaled to its peak, with the first and last bucket's and the peak's values.
pub fn sparkline(counts: &[u64], columns: usize) -> String {
    let per = buckets_per_character(counts.len(), columns);
    let merged: Vec<u64> = counts
        .chunks(per)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect();
    let peak = merged.iter().copied().max().unwrap_or(0).max(1);
    format!("{} peak {peak}", crate::format::bars(&merged))
}

/// How many characters the totals table's sparkline has at most.
const SPARKLINE_COLUMNS: usize = 48;

/// How many of `len` buckets each character of a sparkline `columns` wide stands for.
fn buckets_per_character(len: usize, columns: usize) -> usize {
    len.div_ceil(columns.max(1)).max(1)
}

/// The width of the terminal stdout is, if it is one (`COLUMNS` wins, as in other tools).
fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or_else(|| crossterm::terminal::size().ok().map(|(w, _)| w as usize))
}

/// Which columns (indices, 0 being the name) to leave out so that a table whose columns
/// are `widths` wide fits `max` characters: the least looked-at first, the name, invocations,
/// success, cost and max never.
fn columns_to_hide(widths: &[usize], max: Option<usize>) -> Vec<usize> {
    let Some(max) = max else { return Vec::new() };
    // Indices in GROUP_COLUMNS order + 1 (0 is the name): p99, Mean, p50, Retries, Tokens, p95.
    const ORDER: [usize; 6] = [9, 6, 7, 2, 4, 8];
    // Each column: its content, a space each side, one border character; plus the last border.
    let width = |hidden: &[usize]| {
        1 + widths
            .iter()
            .enumerate()
            .filter(|(i, _)| !hidden.contains(i))
            .map(|(_, w)| w + 3)
            .sum::<usize>()
    };
    let mut hidden = Vec::new();
    for column in ORDER {
        if width(&hidden) <= max {
            break;
        }
        hidden.push(column);
    }
    hidden.sort_unstable();
    hidden
}

fn group_table<N: AsRef<str>>(
    dimension: &str,
    groups: &[(N, &GroupSummary)],
    places: usize,
) -> Table {
    let mut table = new_table();
    let mut cells = vec![header(dimension)];
    cells.extend(
        GROUP_COLUMNS
            .iter()
            .map(|c| header(c).set_alignment(CellAlignment::Right)),
    );
    table.set_header(cells);
    for (name, g) in groups {
        let mut row = vec![Cell::new(shorten_for_terminal(name.as_ref(), 60))];
        row.extend(
            group_cells(g, places)
                .into_iter()
                .map(|c| Cell::new(c).set_alignment(CellAlignment::Right)),
        );
        table.add_row(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_character_stands_for_enough_buckets_to_fit() {
        // The label's time per character: 7,200 one-second buckets in 48 characters are
        // 150 s each; a short run keeps one bucket per character.
        assert_eq!(buckets_per_character(7_200, 48), 150);
        assert_eq!(buckets_per_character(100, 48), 3);
        assert_eq!(buckets_per_character(48, 48), 1);
        assert_eq!(buckets_per_character(2, 48), 1);
        assert_eq!(
            sparkline(&[1; 100], 48).chars().count(),
            34 + " peak 1".len()
        );
    }

    #[test]
    fn sparklines_merge_by_maximum_and_scale_to_the_peak() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8], 10), " ▁▂▄█ peak 8");
        assert_eq!(sparkline(&[1, 8, 2, 2, 0, 0], 3), "█▂  peak 8");
    }

    #[test]
    fn narrow_terminals_lose_the_least_looked_at_columns_first() {
        // name, Invocations, Retries, Success, Tokens, Cost, Mean, p50, p95, p99, Max
        let widths = [14, 11, 7, 7, 11, 9, 7, 7, 7, 7, 7];
        assert!(columns_to_hide(&widths, None).is_empty());
        assert!(columns_to_hide(&widths, Some(200)).is_empty());
        assert_eq!(columns_to_hide(&widths, Some(120)), [9]);
        assert_eq!(columns_to_hide(&widths, Some(110)), [6, 9]);
        assert_eq!(columns_to_hide(&widths, Some(80)), [2, 4, 6, 7, 9]);
        assert_eq!(columns_to_hide(&widths, Some(20)), [2, 4, 6, 7, 8, 9]);
    }
}
