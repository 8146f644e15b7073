//! `repair`: a damaged metrics file made whole, its bad lines kept aside.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use invocation_metrics::{Input, MetricsScan, RecordFilter, repair_metrics_file};

use crate::args::RepairArgs;
use crate::format::count;

/// `invmetrics repair`.
pub fn repair(args: &RepairArgs, out: &mut impl Write) -> Result<ExitCode> {
    let report = repair_metrics_file(&args.path).map_err(|e| match e {
        invocation_metrics::Error::Locked { .. } => anyhow::Error::new(e).context(
            "a collector is writing to this directory: stop the writer first, then repair",
        ),
        other => other.into(),
    })?;
    let path = report.path.display();
    // Repeated ids are not damage a rewrite could mend (which record is right?): counted by
    // a second read, so that a file with some is not called clean. The repair is done by
    // now, so a failure of that read is only a warning.
    let repeated = match count_repeated_ids(&report.path) {
        Ok(n) => Some(n),
        Err(e) => {
            if !crate::quiet() {
                eprintln!(
                    "{} cannot count repeated ids in {path}: {e:#}",
                    crate::style::label("warning")
                );
            }
            None
        }
    };
    let repeated_note = |out: &mut dyn Write| -> std::io::Result<()> {
        match repeated {
            Some(n) if n > 0 => writeln!(
                out,
                "{} repeated id(s) left as they are: readers keep each id's first record; \
                 `invmetrics check` lists them",
                count(n)
            ),
            _ => Ok(()),
        }
    };
    if report.was_clean() {
        let verdict = match repeated {
            Some(0) => "clean",
            _ => "no damaged lines",
        };
        writeln!(
            out,
            "{path}: {verdict}, {} record(s); nothing to do",
            count(report.kept)
        )?;
        repeated_note(out)?;
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
    repeated_note(out)?;
    Ok(ExitCode::SUCCESS)
}

/// How many records of the file at `path` repeat an earlier record's id.
fn count_repeated_ids(path: &std::path::Path) -> Result<u64> {
    let scan = MetricsScan::new(RecordFilter::default());
    let report = crate::input::scan_report(scan, &[Input::File(path.to_path_buf())])?;
    Ok(report.duplicates)
}
