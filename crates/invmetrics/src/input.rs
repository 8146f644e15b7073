//! Reading the inputs of a reading subcommand, with a progress bar for big files.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use invocation_metrics::{
    AggregateOptions, Input, InvocationMetric, MetricsAccumulator, MetricsAggregate, MetricsScan,
    RecordFilter, RecordFold, ScanReport, resolve_inputs,
};

use crate::args::InputArgs;

/// Files larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD_BYTES: u64 = 50 * 1024 * 1024;

/// Folds every input on all cores ([`MetricsScan::fold_inputs`]) and remembers what was read,
/// so that [`ReadAgain`] can go over exactly the same bytes a second time: each file up to
/// the length read (a live file may have grown since), stdin from a copy made in a temporary
/// file while it was read.
pub fn fold_remembering<F: RecordFold>(
    args: &InputArgs,
    filter: RecordFilter,
    quiet: bool,
    new_total: impl Fn() -> F,
    new_chunk: impl Fn() -> F + Send + Sync + 'static,
) -> Result<(F, ScanReport, ReadAgain)> {
    let inputs = resolve_inputs(&args.paths, args.recursive)?;
    let mut stdin_copy = match inputs.contains(&Input::Stdin) {
        true => Some(tempfile::tempfile().context("cannot make a temporary copy of stdin")?),
        false => None,
    };
    let mut tee_into = match &stdin_copy {
        Some(copy) => Some(
            copy.try_clone()
                .context("cannot make a temporary copy of stdin")?,
        ),
        None => None,
    };
    // Bytes read from each input, in the order they were opened (files may be opened a
    // second time, to leave out repeated ids; the first opening comes first).
    let read = RefCell::new(Vec::new());
    let mut scan = args.scan(filter);
    let total = scan.fold_inputs(
        &inputs,
        |input| {
            let reader = open_with_progress(input, quiet)?;
            let bytes = Rc::new(Cell::new(0));
            read.borrow_mut().push(Rc::clone(&bytes));
            let counted = Counted { reader, bytes };
            let tee = match input {
                Input::Stdin => tee_into.take(),
                Input::File(_) => None,
            };
            Ok(match tee {
                Some(copy) => Box::new(Tee {
                    reader: counted,
                    copy,
                }),
                None => Box::new(counted),
            })
        },
        new_total,
        new_chunk,
    )?;
    let report = scan.finish();
    report_damage(&report);
    let read = read.into_inner();
    let mut sources = Vec::with_capacity(inputs.len());
    for (input, bytes) in inputs.into_iter().zip(read) {
        let again = match &input {
            // `-` given twice read everything the first time and nothing the second.
            Input::Stdin => match stdin_copy.take() {
                Some(mut copy) => {
                    copy.rewind()
                        .context("cannot read back the temporary copy of stdin")?;
                    Again::Copy(Some(copy))
                }
                None => Again::Copy(None),
            },
            Input::File(path) => Again::File {
                path: path.clone(),
                len: bytes.get(),
            },
        };
        sources.push((input, again));
    }
    let no_dedup = args.no_dedup;
    Ok((total, report, ReadAgain { sources, no_dedup }))
}

/// The inputs a [`fold_remembering`] read, to read them again.
pub struct ReadAgain {
    sources: Vec<(Input, Again)>,
    no_dedup: bool,
}

enum Again {
    File { path: PathBuf, len: u64 },
    Copy(Option<File>),
}

impl ReadAgain {
    /// Reads the same bytes again, one record after another, with the same filter and
    /// de-duplication, so `on_record` sees the same records in the same order as the first
    /// pass did. Damage was reported then and is not again.
    pub fn scan(
        self,
        filter: RecordFilter,
        mut on_record: impl FnMut(&InvocationMetric),
    ) -> Result<()> {
        let mut scan = MetricsScan::new(filter).keep_duplicates(self.no_dedup);
        for (input, mut source) in self.sources {
            let name = input.to_string();
            let reader = source
                .open()
                .with_context(|| format!("cannot read {name} again"))?;
            scan.visit(&name, reader, &mut on_record)
                .with_context(|| format!("cannot read {name} again"))?;
        }
        Ok(())
    }

    /// Folds the same bytes again on all cores, with the same filter and de-duplication.
    pub fn fold<F: RecordFold>(
        self,
        filter: RecordFilter,
        new_total: impl Fn() -> F,
        new_chunk: impl Fn() -> F + Send + Sync + 'static,
    ) -> Result<F> {
        let mut scan = MetricsScan::new(filter).keep_duplicates(self.no_dedup);
        let (inputs, mut sources): (Vec<Input>, Vec<Again>) = self.sources.into_iter().unzip();
        // `fold_inputs` opens the inputs in order, once more in order if ids repeat.
        let mut next = 0;
        let total = scan.fold_inputs(
            &inputs,
            |input| {
                let source = &mut sources[next % inputs.len()];
                next += 1;
                source
                    .open()
                    .map_err(|source| invocation_metrics::Error::Io {
                        action: "read again",
                        path: input.to_string().into(),
                        source,
                    })
            },
            new_total,
            new_chunk,
        )?;
        Ok(total)
    }
}

impl Again {
    fn open(&mut self) -> std::io::Result<Box<dyn Read>> {
        match self {
            Again::File { path, len } => Ok(Box::new(File::open(path)?.take(*len))),
            // Read once; a `-` given twice is empty the second time, as it was in the first
            // pass.
            Again::Copy(copy) => Ok(match copy.take() {
                Some(copy) => Box::new(copy),
                None => Box::new(std::io::empty()),
            }),
        }
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

/// Counts the bytes it reads, where its opener can see them.
struct Counted<R> {
    reader: R,
    bytes: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.bytes.set(self.bytes.get() + n as u64);
        Ok(n)
    }
}

/// Aggregates every input on every core in bounded memory, for a single pass (unlike
/// [`fold_remembering`], it keeps no copy of stdin).
pub fn aggregate(
    args: &InputArgs,
    filter: RecordFilter,
    quiet: bool,
) -> Result<(MetricsAccumulator, ScanReport)> {
    let inputs = resolve_inputs(&args.paths, args.recursive)?;
    let mut scan = args.scan(filter);
    let accumulator = scan.aggregate_inputs(&inputs, |input| open_with_progress(input, quiet))?;
    let report = scan.finish();
    report_damage(&report);
    Ok((accumulator, report))
}

/// Opens an input, behind a progress bar when it is big and stderr is a terminal.
pub fn open_with_progress(input: &Input, quiet: bool) -> invocation_metrics::Result<Box<dyn Read>> {
    let (reader, size) = input.open()?;
    let show_progress = !quiet
        && !crate::quiet()
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
    if crate::quiet() {
        return;
    }
    for input in &report.inputs {
        let (torn, damaged): (Vec<_>, Vec<_>) = input.problems.iter().partition(|p| p.torn_tail);
        if let Some(first) = damaged.first() {
            eprintln!(
                "{} {}: skipped {} damaged line(s), first at {first} (run `invmetrics check` for all)",
                crate::style::label("warning"),
                input.name,
                damaged.len(),
            );
        }
        if let Some(tail) = torn.first() {
            eprintln!(
                "{} {}: ignored the incomplete last line {} (a torn write, or a writer still appending)",
                crate::style::label("note"),
                input.name,
                tail.line
            );
        }
    }
    if report.duplicates > 0 {
        eprintln!(
            "{} ignored {} record(s) whose invocationId appeared earlier (--no-dedup keeps them)",
            crate::style::label("note"),
            crate::format::count(report.duplicates)
        );
    }
}

/// Says on stderr when the aggregate used wider parallelism buckets than asked for (the span
/// needed more than the library's bucket limit).
pub fn warn_if_buckets_widened(options: &AggregateOptions, aggregate: &MetricsAggregate) {
    if aggregate.bucket_width_ms != options.bucket_width_ms.max(1) && !crate::quiet() {
        eprintln!(
            "{} {} → {} would take more than {} parallelism buckets of {} ms; used {} ms buckets (choose with --bucket)",
            crate::style::label("note"),
            aggregate.first_start.as_deref().unwrap_or("?"),
            aggregate.last_end.as_deref().unwrap_or("the far future"),
            invocation_metrics::MAX_PARALLELISM_BUCKETS,
            options.bucket_width_ms,
            aggregate.bucket_width_ms
        );
    }
}

/// Agent names in the inputs, at most [`AGENT_NAMES_LIMIT`]: what `--agent` could have named.
#[derive(Debug, Default)]
struct AgentNames(std::collections::BTreeSet<String>);

/// Most agent names [`unknown_agents`] collects.
const AGENT_NAMES_LIMIT: usize = 100_000;

impl RecordFold for AgentNames {
    fn add(&mut self, m: &InvocationMetric, _: u64) {
        if self.0.len() < AGENT_NAMES_LIMIT && !self.0.contains(&m.agent) {
            self.0.insert(m.agent.clone());
        }
    }

    fn merge(&mut self, later: Self, _: u64) {
        for name in later.0 {
            if self.0.len() >= AGENT_NAMES_LIMIT {
                break;
            }
            self.0.insert(name);
        }
    }
}

/// When an `--agent` matched no record: fails if nothing matched at all, warns otherwise,
/// naming the agents the inputs do have, closest to the name given first (read again for
/// that, so only when a name was wrong; not for stdin, which cannot be read twice).
pub fn unknown_agents(
    args: &InputArgs,
    filter: &RecordFilter,
    matched: impl Fn(&str) -> bool,
    kept: u64,
) -> Result<()> {
    let unknown: Vec<&String> = filter.agents.iter().filter(|a| !matched(a)).collect();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let names: Vec<String> = unknown.iter().map(|a| format!("{a:?}")).collect();
    let mut message = format!("no record has agent {}", names.join(", "));
    let inputs = resolve_inputs(&args.paths, args.recursive)?;
    if !inputs.contains(&Input::Stdin) {
        let mut scan = args.scan(RecordFilter::default());
        let AgentNames(known) = scan.fold_inputs(
            &inputs,
            |input| Ok(input.open()?.0),
            AgentNames::default,
            AgentNames::default,
        )?;
        let mut known: Vec<String> = known.into_iter().collect();
        known.sort_by_key(|k| (strsim::levenshtein(k, first), k.clone()));
        let shown: Vec<&str> = known.iter().take(10).map(String::as_str).collect();
        message.push_str(&format!(
            "; agents in the input, closest first: {}{}",
            shown.join(", "),
            match known.len().saturating_sub(10) {
                0 => String::new(),
                more => format!(" (and {more} more)"),
            }
        ));
    }
    if kept == 0 {
        bail!("{message}");
    }
    if !crate::quiet() {
        eprintln!("{} {message}", crate::style::label("warning"));
    }
    Ok(())
}

/// Reads `inputs` through `scan`, parsed on every core, for its report alone (counts,
/// damaged lines, repeated ids): no record is kept.
pub fn scan_report(mut scan: MetricsScan, inputs: &[Input]) -> Result<ScanReport> {
    scan.fold_inputs(inputs, |input| Ok(input.open()?.0), || (), || ())?;
    Ok(scan.finish())
}

/// Fails when nothing valid was read, naming why; warns when the filters left nothing.
pub fn require_records(report: &ScanReport) -> Result<()> {
    if report.valid_records() > 0 {
        if report.kept == 0 && !crate::quiet() {
            eprintln!(
                "{} none of the {} record(s) read match the filters given",
                crate::style::label("warning"),
                crate::format::count(report.valid_records())
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

/// Refuses, before anything is read, an output that is a directory or one of the inputs
/// (the same file, also through a link or another path): writing a report or summary there
/// would replace the metrics it reads.
pub fn refuse_unusable_output(inputs: &InputArgs, output: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(output) else {
        return Ok(()); // A file that does not exist yet is no input.
    };
    if target.is_dir() {
        return Err(crate::UsageError(format!(
            "the output {} is a directory: name a file with -o",
            output.display()
        ))
        .into());
    }
    for input in resolve_inputs(&inputs.paths, inputs.recursive)? {
        // Standard input redirected from a file (`< invocations.jsonl`) is that file:
        // /dev/stdin leads to it.
        let path = match &input {
            Input::File(path) => path.clone(),
            Input::Stdin => PathBuf::from("/dev/stdin"),
        };
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.is_file()
            && (meta.dev(), meta.ino()) == (target.dev(), target.ino())
        {
            return Err(crate::UsageError(format!(
                "the output {} is the input {}: writing there would destroy the metrics; choose another -o",
                output.display(),
                input
            ))
            .into());
        }
    }
    Ok(())
}
