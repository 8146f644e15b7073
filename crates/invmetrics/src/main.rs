//! `invmetrics`: the command-line face of the invocation-metrics library.

mod args;
mod check;
mod demo;
mod export;
mod format;
mod ingest;
mod input;
mod repair;
mod report;
mod style;
mod summary;
mod tables;
mod watch;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use args::{Cli, Command};

/// Whether `-q` asked for errors only.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether warnings, notes and progress bars are to be left out (`-q`).
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    style::set(cli.color);
    let level = if cli.quiet { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INVMETRICS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_ansi(false)
        .event_format(PlainEvents)
        .init();

    match run(cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{} {}", style::label("error"), describe(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The library's log events in the CLI's own style, without colour: `warning: <message>
/// key=value…`, like the `warning:` and `note:` lines the commands print themselves.
struct PlainEvents;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PlainEvents
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let prefix = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "note",
            _ => "debug",
        };
        write!(writer, "{} ", style::label(prefix))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The error and its causes on one line, like `{:#}`, leaving out a cause whose text the
/// message already holds: the library's I/O errors name the operating system's error
/// themselves (for callers who print only the top error) and return it as their source too.
fn describe(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn run(mut cli: Cli) -> Result<ExitCode> {
    match &mut cli.command {
        Command::Summary(args) => args.input.default_to_stdin()?,
        Command::Report(args) => args.input.default_to_stdin()?,
        Command::Check(args) => args.input.default_to_stdin()?,
        Command::Export(args::ExportTarget::Otlp(args)) if !args.follow => {
            args.input.default_to_stdin()?
        }
        _ => {}
    }
    let filters = match &cli.command {
        Command::Summary(args) => Some(&args.aggregate.filter),
        Command::Report(args) => Some(&args.aggregate.filter),
        Command::Export(args::ExportTarget::Otlp(args)) => Some(&args.filter),
        _ => None,
    };
    if let Some(filters) = filters {
        filters.refuse_empty_window()?;
    }
    // Ingest prints acknowledgements from its flusher thread, so it must not find stdout
    // locked here.
    if let Command::Ingest(args) = &cli.command {
        return ingest::run(args);
    }
    // Watch draws on the terminal itself, frame by frame.
    if let Command::Watch(args) = &cli.command {
        return watch::run(args);
    }
    // Buffered: stdout alone flushes at every newline, a system call per line of a summary
    // of a million groups.
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let code = match cli.command {
        Command::Summary(args) => summary::run(&args, &mut out)?,
        Command::Report(args) => report::run(&args, &mut out)?,
        Command::Check(args) => check::check(&args, &mut out)?,
        Command::Repair(args) => repair::repair(&args, &mut out)?,
        Command::Ingest(_) | Command::Watch(_) => unreachable!("handled above"),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "invmetrics", &mut out);
            ExitCode::SUCCESS
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            ExitCode::SUCCESS
        }
        Command::Demo(args) => demo::run(&args, &mut out)?,
        Command::Export(args::ExportTarget::Otlp(args)) => export::otlp(&args, &mut out)?,
    };
    out.flush()?;
    Ok(code)
}

/// A closed stdout (`| head`) is the reader saying it has seen enough.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let kind = match (
            cause.downcast_ref::<io::Error>(),
            cause.downcast_ref::<serde_json::Error>(),
        ) {
            (Some(e), _) => Some(e.kind()),
            (None, Some(e)) => e.io_error_kind(),
            (None, None) => None,
        };
        kind == Some(io::ErrorKind::BrokenPipe)
    })
}

/// A command line that asks for something it must not: reported like clap's own usage
/// errors, with exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// 2 for what the user asked wrongly (a path that does not exist), 1 for bad data or I/O.
fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        return 2;
    }
    let usage = err.chain().any(|cause| match cause.downcast_ref() {
        Some(
            invocation_metrics::Error::NoMetrics { .. }
            | invocation_metrics::Error::NotAFile { .. },
        ) => true,
        Some(invocation_metrics::Error::Io { source, .. }) => {
            source.kind() == io::ErrorKind::NotFound
        }
        _ => false,
    });
    if usage { 2 } else { 1 }
}
