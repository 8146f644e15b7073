//! `summary`, `check` and `repair`: the terminal views of a metrics file.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use comfy_table::{
    Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width, presets,
};
use invocation_metrics::{
    GroupSummary, Input, MetricsAggregate, RecordFilter, ScanReport, read_records,
    repair_metrics_file, resolve_inputs,
};

use crate::args::{CheckArgs, RepairArgs, SummaryArgs};
use crate::format::{count, duration_ms, percent, shorten_for_terminal, terminal_safe, usd};
use crate::input;
use crate::report::largest_groups;

/// `invmetrics summary`.
pub fn run(args: &SummaryArgs, out: &mut impl Write) -> Result<ExitCode> {
    let (accumulator, report) = input::aggregate(&args.input, args.aggregate.filter(), args.json)?;
    input::require_records(&report)?;
    let options = args.aggregate.options();
    let aggregate = accumulator
        .try_into_aggregate(&options)
        .context("cannot compute the aggregate")?;
    if args.json {
        // Only the JSON shows the buckets.
        input::warn_if_buckets_widened(&options, &aggregate);
        serde_json::to_writer_pretty(&mut *out, &aggregate)?;
        writeln!(out)?;
    } else {
        write_tables(out, &aggregate, &report, args.top)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Groups in a table past which a note says how to shorten it.
const LONG_TABLE: usize = 100;

/// Every table of the summary, in reading order; with `top`, each breakdown lists only that
/// many groups, those with the most invocations.
pub fn write_tables(
    out: &mut impl Write,
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
    table
}

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
    if let (Some(first), Some(last)) = (&agg.first_start, &agg.last_end) {
        rows.push(("Span", format!("{first} → {last}")));
    }
    rows.push((
        "Peak parallelism",
        match &agg.peak_parallel_at {
            Some(at) => format!("{} at {at}", agg.peak_parallel_invocations),
            None => "0".into(),
        },
    ));
    rows
}

fn totals_table(agg: &MetricsAggregate, scan: &ScanReport) -> Table {
    let mut table = new_table();
    table.set_header(["Total", "Value"]);
    for (name, value) in totals_rows(agg) {
        table.add_row([name.to_owned(), value]);
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

/// One breakdown row's cells, in [`GROUP_COLUMNS`] order.
pub fn group_cells(g: &GroupSummary) -> [String; 10] {
    [
        count(g.invocations),
        count(g.retries),
        percent(g.success_rate),
        count(g.tokens),
        usd(g.cost),
        duration_ms(g.mean_duration_ms),
        duration_ms(g.p50_duration_ms as f64),
        duration_ms(g.p95_duration_ms as f64),
        duration_ms(g.p99_duration_ms as f64),
        duration_ms(g.max_duration_ms as f64),
    ]
}

/// Rows a table is built of at a time: a table of a million groups is printed as pages of
/// this many rows, with the same column widths, so that only one page's cells exist at once.
const TABLE_PAGE_ROWS: usize = 1_000;

/// Prints a breakdown's table, in pages of [`TABLE_PAGE_ROWS`] when it is longer.
fn write_group_table<N: AsRef<str>>(
    out: &mut impl Write,
    dimension: &str,
    groups: &[(N, &GroupSummary)],
) -> Result<()> {
    if groups.len() <= TABLE_PAGE_ROWS {
        writeln!(out, "{}", group_table(dimension, groups))?;
        return Ok(());
    }
    // Every page gets the widest cell of its column over all pages, found without keeping
    // any cell.
    let mut widths: Vec<usize> = std::iter::once(dimension)
        .chain(GROUP_COLUMNS)
        .map(|c| c.chars().count())
        .collect();
    for (name, g) in groups {
        let cells = std::iter::once(shorten_for_terminal(name.as_ref(), 60).into_owned())
            .chain(group_cells(g));
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for page in groups.chunks(TABLE_PAGE_ROWS) {
        let mut table = group_table(dimension, page);
        for (column, width) in table.column_iter_mut().zip(&widths) {
            // Content plus the one space of padding on each side.
            let width = u16::try_from(width + 2).unwrap_or(u16::MAX);
            column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(width)));
        }
        writeln!(out, "{table}")?;
    }
    Ok(())
}

fn group_table<N: AsRef<str>>(dimension: &str, groups: &[(N, &GroupSummary)]) -> Table {
    let mut table = new_table();
    let mut header = vec![Cell::new(dimension)];
    header.extend(
        GROUP_COLUMNS
            .iter()
            .map(|c| Cell::new(c).set_alignment(CellAlignment::Right)),
    );
    table.set_header(header);
    for (name, g) in groups {
        let mut row = vec![Cell::new(shorten_for_terminal(name.as_ref(), 60))];
        row.extend(
            group_cells(g)
                .into_iter()
                .map(|c| Cell::new(c).set_alignment(CellAlignment::Right)),
        );
        table.add_row(row);
    }
    table
}

/// `invmetrics check`.
pub fn check(args: &CheckArgs, out: &mut impl Write) -> Result<ExitCode> {
    let inputs = resolve_inputs(&args.input.paths, args.input.recursive)?;
    let mut scan = args.input.scan(RecordFilter::default());
    // Parsed on every core; only the counts and the damaged lines are kept.
    scan.fold_inputs(&inputs, |input| Ok(input.open()?.0), || (), || ())?;
    let report = scan.finish();
    // Rare, so found by a second, sequential read only when the first saw some.
    let duplicates = match report.duplicates {
        0 => vec![Vec::new(); inputs.len()],
        _ => find_duplicates(&inputs)?,
    };
    let mut findings = 0u64;
    for ((input, report), duplicates) in inputs.iter().zip(&report.inputs).zip(&duplicates) {
        // A writer still appending leaves its last line unterminated for a moment: that
        // is work in progress, not damage.
        let live = match input {
            Input::File(path) => path
                .parent()
                .is_some_and(invocation_metrics::has_live_writer),
            Input::Stdin => false,
        };
        let mut damaged = 0u64;
        for problem in &report.problems {
            let reason = problem.error.to_string();
            let reason = terminal_safe(&reason);
            if problem.torn_tail && live {
                writeln!(
                    out,
                    "{}:{}: in progress: a collector holds the directory and is still writing this last line",
                    report.name, problem.line
                )?;
                continue;
            }
            damaged += 1;
            let torn = if problem.torn_tail {
                " (torn last line)"
            } else {
                ""
            };
            writeln!(out, "{}:{}: {reason}{torn}", report.name, problem.line)?;
        }
        for duplicate in duplicates {
            writeln!(out, "{duplicate}")?;
        }
        findings += damaged + duplicates.len() as u64;
        let verdict = if damaged + duplicates.len() as u64 == 0 {
            "clean"
        } else if damaged == 0 {
            "DUPLICATE IDS"
        } else {
            "DAMAGED"
        };
        writeln!(
            out,
            "{}: {} record(s), {} damaged line(s), {} repeated id(s): {verdict}",
            report.name,
            count(report.records),
            count(damaged),
            count(duplicates.len() as u64)
        )?;
    }
    Ok(if findings == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Per input, a line for each record whose `invocationId` appeared earlier in the inputs,
/// naming where it first appeared. Keeps a 64-bit hash and a position per record.
fn find_duplicates(inputs: &[Input]) -> Result<Vec<Vec<String>>> {
    let mut first_seen: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut found = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let mut here = Vec::new();
        let (reader, _) = input.open()?;
        read_records(
            reader,
            |line, m| {
                let key = hash64_of(&m.invocation_id);
                match first_seen.get(&key) {
                    None => {
                        first_seen.insert(key, (index, line));
                    }
                    Some(&(first_input, first_line)) => here.push(format!(
                        "{input}:{line}: repeated invocationId {} (first at {}:{first_line}; readers keep only the first)",
                        terminal_safe(&format!("{:?}", m.invocation_id)),
                        inputs[first_input]
                    )),
                }
            },
            |_| (),
        )
        .with_context(|| format!("cannot read {input} again"))?;
        found.push(here);
    }
    Ok(found)
}

/// A 64-bit hash of an id, the same for the same id in every input.
fn hash64_of(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

/// `invmetrics repair`.
pub fn repair(args: &RepairArgs, out: &mut impl Write) -> Result<ExitCode> {
    let report = repair_metrics_file(&args.path).map_err(|e| match e {
        invocation_metrics::Error::Locked { .. } => anyhow::Error::new(e).context(
            "a collector is writing to this directory: stop the writer first, then repair",
        ),
        other => other.into(),
    })?;
    let path = report.path.display();
    if report.was_clean() {
        writeln!(
            out,
            "{path}: clean, {} record(s); nothing to do",
            count(report.kept)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{path}: kept {} record(s)", count(report.kept))?;
    if let Some(rejected) = &report.rejected_file {
        let overlong = match report.overlong {
            0 => String::new(),
            n => format!(" and {} over-long line(s)", count(n)),
        };
        writeln!(
            out,
            "moved {} damaged line(s){}{overlong} to {} (each with its line number and reason)",
            count(report.rejected),
            if report.torn_tail {
                " (one a torn tail)"
            } else {
                ""
            },
            rejected.display()
        )?;
    }
    if let Some(backup) = &report.backup {
        writeln!(out, "original kept as {}", backup.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
