//! Reading the inputs of a reading subcommand, with a progress bar for big files.

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use invocation_metrics::{
    AggregateOptions, Input, InvocationMetric, MetricsAccumulator, MetricsAggregate, MetricsScan,
    RecordFilter, ScanReport, resolve_inputs,
};

use crate::args::InputArgs;

/// Files larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD_BYTES: u64 = 50 * 1024 * 1024;

/// Reads every input, handing each unique record that passes `filter` to `on_record`, and
/// remembers what was read so that [`ReadAgain::scan`] can go over exactly the same bytes a
/// second time: each file up to the length read (a live file may have grown
/// since), stdin from a copy made in a temporary file while it was read.
pub fn scan_remembering(
    args: &InputArgs,
    filter: RecordFilter,
    quiet: bool,
    mut on_record: impl FnMut(&InvocationMetric),
) -> Result<(ScanReport, ReadAgain)> {
    let inputs = resolve_inputs(&args.paths, args.recursive)?;
    let mut scan = MetricsScan::new(filter);
    let mut again = ReadAgain {
        sources: Vec::new(),
    };
    for input in &inputs {
        let name = input.to_string();
        let reader = open_with_progress(input, quiet)?;
        let source = match input {
            Input::Stdin => {
                let copy = tempfile::tempfile().context("cannot make a temporary copy of stdin")?;
                let mut tee = Tee { reader, copy };
                scan.visit(&name, &mut tee, &mut on_record)
                    .with_context(|| format!("cannot read {name}"))?;
                let mut copy = tee.copy;
                copy.rewind()
                    .context("cannot read back the temporary copy of stdin")?;
                Again::Copy(copy)
            }
            Input::File(path) => {
                let mut counted = Counted { reader, bytes: 0 };
                scan.visit(&name, &mut counted, &mut on_record)
                    .with_context(|| format!("cannot read {name}"))?;
                Again::File {
                    path: path.clone(),
                    len: counted.bytes,
                }
            }
        };
        again.sources.push((name, source));
    }
    let report = scan.finish();
    report_damage(&report);
    Ok((report, again))
}

/// The inputs a [`scan_remembering`] read, to read them again.
pub struct ReadAgain {
    sources: Vec<(String, Again)>,
}

enum Again {
    File { path: PathBuf, len: u64 },
    Copy(File),
}

impl ReadAgain {
    /// Reads the same bytes again, with the same filter and de-duplication, so `on_record`
    /// sees the same records in the same order as the first pass did. Damage was reported
    /// then and is not again.
    pub fn scan(
        self,
        filter: RecordFilter,
        mut on_record: impl FnMut(&InvocationMetric),
    ) -> Result<()> {
        let mut scan = MetricsScan::new(filter);
        for (name, source) in self.sources {
            let reader: Box<dyn Read> = match source {
                Again::File { path, len } => Box::new(
                    File::open(&path)
                        .with_context(|| format!("cannot read {name} again"))?
                        .take(len),
                ),
                Again::Copy(copy) => Box::new(copy),
            };
            scan.visit(&name, reader, &mut on_record)
                .with_context(|| format!("cannot read {name} again"))?;
        }
        Ok(())
    }
}

/// Copies what it reads into a file.
struct Tee<R> {
    reader: R,
    copy: File,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Counts the bytes it reads.
struct Counted<R> {
    reader: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Like [`scan_remembering`], aggregating on every core and in bounded memory.
pub fn aggregate(
    args: &InputArgs,
    filter: RecordFilter,
    quiet: bool,
) -> Result<(MetricsAccumulator, ScanReport)> {
    let inputs = resolve_inputs(&args.paths, args.recursive)?;
    let mut scan = MetricsScan::new(filter);
    let accumulator = scan.aggregate_inputs(&inputs, |input| open_with_progress(input, quiet))?;
    let report = scan.finish();
    report_damage(&report);
    Ok((accumulator, report))
}

/// Opens an input, behind a progress bar when it is big and stderr is a terminal.
fn open_with_progress(input: &Input, quiet: bool) -> invocation_metrics::Result<Box<dyn Read>> {
    let (reader, size) = input.open()?;
    let show_progress = !quiet
        && std::io::stderr().is_terminal()
        && size.is_some_and(|s| s > PROGRESS_THRESHOLD_BYTES);
    if !show_progress {
        return Ok(reader);
    }
    let bar = ProgressBar::new(size.unwrap_or(0)).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(input.to_string());
    Ok(Box::new(FinishOnDrop(bar.wrap_read(reader))))
}

/// Clears the progress bar once its input has been read.
struct FinishOnDrop<R>(indicatif::ProgressBarIter<R>);

impl<R: Read> Read for FinishOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Drop for FinishOnDrop<R> {
    fn drop(&mut self) {
        self.0.progress.finish_and_clear();
    }
}

/// Prints one line per damaged input on stderr.
pub fn report_damage(report: &ScanReport) {
    for input in &report.inputs {
        let (torn, damaged): (Vec<_>, Vec<_>) = input.problems.iter().partition(|p| p.torn_tail);
        if let Some(first) = damaged.first() {
            eprintln!(
                "warning: {}: skipped {} damaged line(s), first at {first} (run `invmetrics check` for all)",
                input.name,
                damaged.len(),
            );
        }
        if let Some(tail) = torn.first() {
            eprintln!(
                "note: {}: ignored the incomplete last line {} (a torn write, or a writer still appending)",
                input.name, tail.line
            );
        }
    }
    if report.duplicates > 0 {
        eprintln!(
            "note: ignored {} record(s) whose invocationId appeared earlier",
            report.duplicates
        );
    }
}

/// Says on stderr when the aggregate used wider parallelism buckets than asked for (the span
/// needed more than the library's bucket limit).
pub fn warn_if_buckets_widened(options: &AggregateOptions, aggregate: &MetricsAggregate) {
    if aggregate.bucket_width_ms != options.bucket_width_ms.max(1) {
        eprintln!(
            "note: {} → {} would take more than {} parallelism buckets of {} ms; used {} ms buckets (choose with --bucket)",
            aggregate.first_start.as_deref().unwrap_or("?"),
            aggregate.last_end.as_deref().unwrap_or("the far future"),
            invocation_metrics::MAX_PARALLELISM_BUCKETS,
            options.bucket_width_ms,
            aggregate.bucket_width_ms
        );
    }
}

/// Fails when nothing valid was read, naming why; warns when the filters left nothing.
pub fn require_records(report: &ScanReport) -> Result<()> {
    if report.valid_records() > 0 {
        if report.kept == 0 {
            eprintln!(
                "warning: none of the {} record(s) read match the filters (--since, --until, --agent, --phase)",
                report.valid_records()
            );
        }
        return Ok(());
    }
    let names: Vec<&str> = report.inputs.iter().map(|i| i.name.as_str()).collect();
    let names = names.join(", ");
    match report.problem_count() {
        0 => bail!("no records in {names}: the input is empty"),
        n => bail!(
            "no valid records in {names}: all {n} non-blank line(s) are damaged (is this a metrics file?)"
        ),
    }
}
