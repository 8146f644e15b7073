//! `check`: every damaged line and repeated id, with file and line; exit 1 if any.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use invocation_metrics::{Input, RecordFilter, read_records, resolve_inputs};

use crate::args::CheckArgs;
use crate::format::{count, terminal_safe};

/// `invmetrics check`.
pub fn check(args: &CheckArgs, out: &mut impl Write) -> Result<ExitCode> {
    let inputs = resolve_inputs(&args.input.paths, args.input.recursive)?;
    let report = crate::input::scan_report(args.input.scan(RecordFilter::default()), &inputs)?;
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
