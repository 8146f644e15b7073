//! `repair`: a damaged metrics file made whole, its bad lines kept aside.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use invocation_metrics::repair_metrics_file;

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
