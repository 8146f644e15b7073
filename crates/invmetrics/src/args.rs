//! Command-line arguments, as clap parses them.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use invocation_metrics::{DEFAULT_BASE_TIER, Durability, MetricsScan, RecordFilter, Timestamp};

use crate::UsageError;

/// Summaries, reports, checks, repair and ingest for invocation metrics files.
#[derive(Debug, Parser)]
#[command(
    name = "invmetrics",
    version,
    about,
    propagate_version = true,
    after_help = "Exit status: 0 success; 1 a data or I/O error (for check: damage found; for ingest: lines refused); 2 a usage error (a path that does not exist included).\nWithout a PATH, commands that read records read stdin when it is not a terminal."
)]
pub struct Cli {
    /// Print errors only: no warnings, notes or progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour labels and table headers: auto (on a terminal, unless NO_COLOR is set),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print totals and breakdowns (by agent, phase, model, tier, error class) as tables or JSON.
    #[command(
        after_help = "Examples:\n  invmetrics summary demo-run\n  invmetrics summary -r runs/ --json --bucket 1h\n  cat invocations.jsonl | invmetrics summary - --agent coder"
    )]
    Summary(SummaryArgs),
    /// Write a report: self-contained HTML with charts, Markdown for a PR comment, or JSON.
    #[command(
        after_help = "Examples:\n  invmetrics report demo-run -o report.html\n  invmetrics report demo-run -o report.md\n  invmetrics report demo-run --format json -o -"
    )]
    Report(ReportArgs),
    /// Validate every line; print each problem with file, line number and reason.
    ///
    /// Exit status: 0 when every input is clean, 1 when any line is damaged.
    #[command(after_help = "Example:\n  invmetrics check demo-run/invocations.jsonl")]
    Check(CheckArgs),
    /// Make a damaged metrics file clean without losing a valid record.
    ///
    /// The torn tail and malformed lines move to invocations.rejected.jsonl (NAME.rejected.jsonl
    /// for a file NAME.jsonl), the original is kept as invocations.jsonl.bak-MS (MS: Unix
    /// milliseconds), and the clean file replaces it atomically. Refuses while a collector
    /// holds the directory; holds it meanwhile (its lock file, invocations.lock, is made
    /// if the directory had none).
    #[command(after_help = "Example:\n  invmetrics repair demo-run")]
    Repair(RepairArgs),
    /// Record JSON lines from stdin (any dialect) through the collector, acknowledging
    /// durable records on stdout as {"acked": N}.
    #[command(
        after_help = "Example:\n  my-orchestrator | invmetrics ingest metrics/ --durability always"
    )]
    Ingest(IngestArgs),
    /// Send records to an observability pipeline.
    #[command(subcommand)]
    Export(ExportTarget),
    /// Simulate a realistic multi-agent fleet, record its metrics, print the summary and write
    /// DIR/report.html.
    #[command(
        after_help = "Examples:\n  invmetrics demo\n  invmetrics demo big-run --records 1000000 --no-report --seed 7"
    )]
    Demo(DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  invmetrics completions bash > ~/.local/share/bash-completion/completions/invmetrics"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  invmetrics man > invmetrics.1 && man ./invmetrics.1")]
    Man,
    /// Watch a live fleet: a dashboard of DIR/invocations.jsonl that redraws as a collector
    /// appends to it (q quits).
    #[command(
        after_help = "Example:\n  invmetrics watch demo-run\n  invmetrics watch demo-run --once   # one frame, for scripts"
    )]
    Watch(WatchArgs),
}

/// Where records come from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Metrics files, metrics directories, or `-` for stdin (the default when stdin is not a
    /// terminal).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Read every invocations.jsonl in the directory trees given (shards).
    #[arg(short, long)]
    pub recursive: bool,
    /// Keep records whose invocationId appeared earlier (by default the first one wins and
    /// the rest are counted and left out).
    #[arg(long)]
    pub no_dedup: bool,
}

impl InputArgs {
    /// No path given: stdin when it is not a terminal (a pipe, a redirected file), a usage
    /// error when it is one (nothing would ever arrive).
    pub fn default_to_stdin(&mut self) -> Result<(), UsageError> {
        use std::io::IsTerminal;
        if self.paths.is_empty() {
            if std::io::stdin().is_terminal() {
                return Err(UsageError(
                    "give a metrics file or directory (or pipe records on stdin)".into(),
                ));
            }
            self.paths.push(PathBuf::from("-"));
        }
        Ok(())
    }

    /// A scan with these inputs' de-duplication and `filter`.
    pub fn scan(&self, filter: RecordFilter) -> MetricsScan {
        MetricsScan::new(filter).keep_duplicates(self.no_dedup)
    }
}

/// Which records to keep and how to aggregate them.
#[derive(Debug, Args)]
pub struct AggregateArgs {
    /// Width of the parallelism-over-time buckets: a number and ms, s, m, h or d.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub bucket: Duration,
    /// The tier that does not count as an escalation.
    #[arg(long, default_value = DEFAULT_BASE_TIER, value_parser = NonEmptyStringValueParser::new())]
    pub base_tier: String,
    /// Which records count.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Which records to keep.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Keep records that started at or after this time: 2026-11-24, 2026-11-24T10:00 (UTC),
    /// RFC 3339, 90m/1h/2d before now, or epoch milliseconds.
    #[arg(long, value_parser = parse_timestamp)]
    pub since: Option<Timestamp>,
    /// Keep records that started before this time (the same forms as --since).
    #[arg(long, value_parser = parse_timestamp)]
    pub until: Option<Timestamp>,
    /// Keep only this agent (repeatable).
    #[arg(long)]
    pub agent: Vec<String>,
    /// Keep only this phase (repeatable).
    #[arg(long)]
    pub phase: Vec<u32>,
}

impl FilterArgs {
    /// Whether no filter is given.
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.agent.is_empty()
            && self.phase.is_empty()
    }

    /// Refuses a window no record can fall in: `--since` at or after `--until`.
    pub fn refuse_empty_window(&self) -> Result<(), crate::UsageError> {
        match (self.since, self.until) {
            (Some(since), Some(until)) if since >= until => Err(crate::UsageError(format!(
                "--since {} is not before --until {}: no record can match",
                crate::format::utc_time(&since),
                crate::format::utc_time(&until)
            ))),
            _ => Ok(()),
        }
    }

    /// The record filter these options describe.
    pub fn filter(&self) -> RecordFilter {
        RecordFilter {
            since: self.since,
            until: self.until,
            agents: self.agent.clone(),
            phases: self.phase.clone(),
        }
    }
}

impl AggregateArgs {
    /// The record filter these options describe.
    pub fn filter(&self) -> RecordFilter {
        self.filter.filter()
    }

    /// The aggregate options these options describe.
    pub fn options(&self) -> invocation_metrics::AggregateOptions {
        invocation_metrics::AggregateOptions {
            bucket_width_ms: u64::try_from(self.bucket.as_millis()).unwrap_or(u64::MAX),
            base_tier: self.base_tier.clone(),
        }
    }
}

/// `summary` arguments.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Aggregation and filters.
    #[command(flatten)]
    pub aggregate: AggregateArgs,
    /// Output format: table (the default), json (the aggregate), csv (one row per group),
    /// md (GitHub Markdown tables).
    #[arg(long, value_enum, conflicts_with = "json")]
    pub format: Option<SummaryFormat>,
    /// The same as --format json.
    #[arg(long)]
    pub json: bool,
    /// Write to FILE (atomically) instead of stdout; `-` is stdout. Never one of the inputs.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// In each table, only the N groups with the most invocations (all by default).
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    pub top: Option<usize>,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Summary formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// Tables for a terminal.
    Table,
    /// The aggregate as JSON.
    Json,
    /// One CSV row per group of every breakdown.
    Csv,
    /// GitHub-flavoured Markdown tables.
    Md,
}

impl SummaryArgs {
    /// The format asked for (`--json` is `--format json`).
    pub fn format(&self) -> SummaryFormat {
        match (self.json, self.format) {
            (true, _) => SummaryFormat::Json,
            (false, Some(format)) => format,
            (false, None) => SummaryFormat::Table,
        }
    }
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML file with charts.
    Html,
    /// GitHub-flavoured Markdown with tables and a Mermaid gantt.
    Md,
    /// `{"metrics": [...], "aggregate": {...}}`.
    Json,
}

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Aggregation and filters.
    #[command(flatten)]
    pub aggregate: AggregateArgs,
    /// Output file; `-` writes to stdout. Never one of the inputs.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Output format [default: from FILE's extension: .html/.htm, .md/.markdown, .json; html
    /// for `-`].
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
}

impl ReportArgs {
    /// The format asked for, else the one the output file's extension names (HTML for
    /// stdout). An output file whose extension names no format is refused rather than
    /// guessed: `-o run.jsonl` is far more likely a slip than a wish for HTML.
    pub fn format(&self) -> Result<ReportFormat, UsageError> {
        if let Some(format) = self.format {
            return Ok(format);
        }
        if self.output.as_os_str() == "-" {
            return Ok(ReportFormat::Html);
        }
        let extension = self.output.extension().and_then(|e| e.to_str());
        match extension.map(str::to_ascii_lowercase).as_deref() {
            Some("html" | "htm") => Ok(ReportFormat::Html),
            Some("md" | "markdown") => Ok(ReportFormat::Md),
            Some("json") => Ok(ReportFormat::Json),
            _ => Err(UsageError(format!(
                "cannot tell the report format from {:?}: name the file .html, .md or .json, or give --format html|md|json",
                self.output.display().to_string()
            ))),
        }
    }
}

/// `check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
}

/// `repair` arguments.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The metrics file or its directory.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// Durability choices on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Written to the OS; survives a process crash, not power loss.
    Buffered,
    /// Written to the OS, synced every second.
    Periodic,
    /// Synced before each acknowledgement; survives power loss.
    Always,
}

impl From<DurabilityArg> for Durability {
    fn from(value: DurabilityArg) -> Self {
        match value {
            DurabilityArg::Buffered => Durability::Buffered,
            DurabilityArg::Periodic => Durability::default(),
            DurabilityArg::Always => Durability::Always,
        }
    }
}

/// `ingest` arguments.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The metrics directory to record into.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// What an acknowledgement promises.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Always)]
    pub durability: DurabilityArg,
    /// Flush and acknowledge at least this often.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub flush_every: Duration,
}

/// Where `export` sends records.
#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// Sends the records as OpenTelemetry spans and metrics (GenAI semantic conventions) over OTLP/HTTP to any receiver.
    ///
    /// The standard OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    /// OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_PROTOCOL,
    /// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured; flags win.
    #[command(
        after_help = "Examples:\n  invmetrics export otlp run/ --endpoint http://collector:4318\n  invmetrics export otlp --follow run/ --header x-tenant=team-a"
    )]
    Otlp(OtlpArgs),
}

/// `export otlp` arguments.
#[derive(Debug, Args)]
pub struct OtlpArgs {
    /// Inputs (with --follow: the one metrics directory to follow).
    #[command(flatten)]
    pub input: InputArgs,
    /// Which records to send (not with --follow).
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Base URL of the receiver; /v1/traces and /v1/metrics are appended [default:
    /// OTEL_EXPORTER_OTLP_ENDPOINT, or http://localhost:4318].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Wire format: http/protobuf or http/json [default: OTEL_EXPORTER_OTLP_PROTOCOL, or
    /// http/protobuf].
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,
    /// Signals to send: traces, metrics, or both.
    #[arg(long, value_name = "LIST", default_value = "traces,metrics")]
    pub signals: String,
    /// A request header, K=V (repeatable).
    #[arg(long = "header", value_name = "K=V", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// A resource attribute, K=V (repeatable); service.name defaults to invocation-metrics.
    #[arg(long = "resource", value_name = "K=V", value_parser = key_value)]
    pub resource: Vec<(String, String)>,
    /// Most spans per request.
    #[arg(long, default_value_t = invocation_metrics::otlp::DEFAULT_BATCH_SPANS, value_parser = at_least_one::<usize>)]
    pub batch: usize,
    /// How long sending one batch may take, retries included: each try is bounded by it, and no retry is waited for past it [default: 10s, or OTEL_EXPORTER_OTLP_TIMEOUT].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Keep exporting the directory's records as a collector appends them; the position is
    /// kept in DIR/export-otlp.cursor, saved after each acknowledged batch.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: stop once no new record has come for this long.
    #[arg(long, value_parser = parse_duration, requires = "follow")]
    pub idle_exit: Option<Duration>,
}

/// Parses `K=V`.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{s:?} is not K=V")),
    }
}

/// `watch` arguments.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The metrics directory (or file) to follow.
    #[arg(value_name = "DIR")]
    pub path: PathBuf,
    /// Print one frame of what the file holds now and exit.
    #[arg(long)]
    pub once: bool,
    /// How often to look for new records and redraw.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub every: Duration,
    /// How far back the parallelism curve and the slowest recent invocations look.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub window: Duration,
}

/// `demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to record the run.
    #[arg(value_name = "DIR", default_value = "demo-run")]
    pub dir: PathBuf,
    /// How many invocations to simulate (at least 1).
    #[arg(long, default_value_t = 2000, value_parser = at_least_one::<u64>)]
    pub records: u64,
    /// Seed of the simulation; the same seed gives the same run.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Agent threads recording in parallel (at least 1).
    #[arg(long, default_value_t = 12, value_parser = at_least_one::<usize>)]
    pub threads: usize,
    /// Skip the summary and the HTML report (to generate big files quickly).
    #[arg(long)]
    pub no_report: bool,
}

/// Parses a whole number of at least 1.
fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// Longest duration a flag takes: ten years, as long as a record may last (longer buckets
/// or flush periods mean nothing, and past 2^64 ms they cannot even be added up).
const MAX_FLAG_DURATION_MS: u64 = invocation_metrics::MAX_DURATION_MS;

/// Parses `500ms`, `1s`, `30s`, `5m`, `1h`, `1d`, up to ten years.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} should be a whole number and a unit, e.g. 30s"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use ms, s, m, h or d"
            ));
        }
    };
    match n.checked_mul(ms) {
        Some(0) => Err("must be more than zero".into()),
        Some(total) if total <= MAX_FLAG_DURATION_MS => Ok(Duration::from_millis(total)),
        _ => Err(format!("{s:?} is too long: at most 3652d (ten years)")),
    }
}

/// A time as a person types it: RFC 3339 (`2026-11-24T10:00:00Z`, any offset), a date
/// (`2026-11-24`, midnight UTC), a date and minutes (`2026-11-24T10:00`, UTC), a span before
/// now (`90m`, `1h`, `2d`), or epoch milliseconds (`1795510800000`).
fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    parse_time_at(s, Timestamp::now()).ok_or_else(|| {
        // Ten digits are epoch seconds from 2001 to 2286.
        if s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit()) {
            return format!(
                "{s:?} looks like epoch seconds; times as numbers are epoch milliseconds: {s}000"
            );
        }
        format!(
            "cannot read {s:?} as a time; use 2026-11-24, 2026-11-24T10:00 (UTC), \
             2026-11-24T10:00:00+01:00, a span before now such as 90m, 1h or 2d, \
             or epoch milliseconds"
        )
    })
}

fn parse_time_at(s: &str, now: Timestamp) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    // Epoch milliseconds have 13 digits from 2001 on; fewer digits are more likely a compact
    // date (202611241000), which is refused rather than read as 1976.
    if s.len() >= 13 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Timestamp::from_unix_ms(s.parse().ok()?);
    }
    if let Ok(ago) = parse_duration(s) {
        let ago = i64::try_from(ago.as_millis()).ok()?;
        return Timestamp::from_unix_ms(now.unix_ms().checked_sub(ago)?);
    }
    let full = match s.len() {
        10 => format!("{s}T00:00:00Z"), // a date
        16 => format!("{s}:00Z"),       // date, hours and minutes
        19 => format!("{s}Z"),          // date and seconds, no offset
        _ => return None,
    };
    full.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_are_refused_with_their_milliseconds() {
        let error = parse_timestamp("1795510806").unwrap_err();
        assert!(error.contains("looks like epoch seconds"), "{error}");
        assert!(error.ends_with("1795510806000"), "{error}");
        assert!(parse_timestamp("1795510806000").is_ok());
        // Nine digits are no plausible time at all: the general message.
        let error = parse_timestamp("179551080").unwrap_err();
        assert!(error.contains("cannot read"), "{error}");
    }

    #[test]
    fn times_as_people_type_them() {
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let at = |s: &str| parse_time_at(s, now).map(|t| t.to_utc_millis_string());
        assert_eq!(
            at("2026-11-24").as_deref(),
            Some("2026-11-24T00:00:00.000Z")
        );
        assert_eq!(
            at("2026-11-24T10:00").as_deref(),
            Some("2026-11-24T10:00:00.000Z")
        );
        assert_eq!(
            at("2026-11-24T10:00:05").as_deref(),
            Some("2026-11-24T10:00:05.000Z")
        );
        assert_eq!(
            at("2026-11-24T10:00:00+01:00").as_deref(),
            Some("2026-11-24T09:00:00.000Z")
        );
        assert_eq!(at("1h").as_deref(), Some("2026-11-27T11:00:00.000Z"));
        assert_eq!(at("2d").as_deref(), Some("2026-11-25T12:00:00.000Z"));
        assert_eq!(
            at("1795510800000").as_deref(),
            Some("2026-11-24T09:00:00.000Z")
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "24/11/2026",
            "1w",
            "",
            "202611241000",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
        let error = parse_timestamp("yesterday").unwrap_err();
        assert!(
            error.contains("2026-11-24T10:00") && error.contains("2d"),
            "{error}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("1w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(
            parse_duration("3652d"),
            Ok(Duration::from_secs(3652 * 86_400))
        );
        assert!(
            parse_duration("18446744073709551615ms")
                .unwrap_err()
                .contains("at most 3652d")
        );
        assert!(parse_duration("99999999d").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
