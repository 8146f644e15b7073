//! `ingest`: records from any program, one JSON line at a time on stdin, through the
//! collector — with answers on stdout, one JSON object per line, that a writer in another
//! language can rely on:
//!
//! - `{"ready": true}` once the directory's lock is held;
//! - `{"rejected": {"line": N, "invocationId": "…" | null, "field": "…" | null, "reason": "…"}}`
//!   for each refused line, as soon as it is read;
//! - `{"acked": N, "lines": L}` at least every `--flush-every` while they grow, and at the
//!   end (`{"acked": 0, "lines": 0}` for an empty input): the first N accepted records are
//!   durable (per `--durability`), and every input line up to L is answered — durable or
//!   rejected.
//!
//! Exit status 0 when every line was accepted, 1 when any was rejected.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use invocation_metrics::{
    Error, InvocationMetricsCollector, LineError, MAX_LINE_BYTES, ValidationError, for_each_line,
    is_blank, parse_line,
};
use serde::Serialize;

use crate::args::IngestArgs;
use crate::format::terminal_safe;

/// One answer on stdout.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Answer<'a> {
    Ready(bool),
    Rejected(Rejection<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rejection<'a> {
    line: u64,
    invocation_id: Option<&'a str>,
    field: Option<&'a str>,
    reason: &'a str,
}

#[derive(Serialize)]
struct Ack {
    acked: u64,
    lines: u64,
}

/// Prints one answer as a line of its own.
fn answer(value: &impl Serialize) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Counts the acknowledgements are made of. The reader stores `recorded` before `consumed`
/// and the flusher loads them the other way round, so an ack's N covers every record of
/// its first L lines.
#[derive(Default)]
struct Progress {
    recorded: AtomicU64,
    consumed: AtomicU64,
    /// The last acknowledgement sent, if any was.
    acked: Mutex<Option<(u64, u64)>>,
}

/// `invmetrics ingest`.
pub fn run(args: &IngestArgs) -> Result<ExitCode> {
    // Only the aggregate and the ids are kept: a pipe that runs for weeks must not grow
    // with every record.
    let collector = Arc::new(
        InvocationMetricsCollector::builder(&args.dir)
            .durability(args.durability.into())
            .keep_records(false)
            .open()?,
    );
    // The ids already in the file are taken too: a line repeating one is refused now, not
    // acknowledged and then dropped by every reader. (Damaged lines are warned about.)
    collector
        .load_from_disk(0)
        .context("cannot read the ids already recorded")?;
    answer(&Answer::Ready(true))?;
    let progress = Arc::new(Progress::default());
    let (stop, stopped) = mpsc::channel::<()>();

    // The flusher acknowledges on a clock, so a quiet writer still hears back promptly.
    let flusher = {
        let (collector, progress) = (Arc::clone(&collector), Arc::clone(&progress));
        let every = args.flush_every;
        std::thread::spawn(move || -> Result<()> {
            // Wakes at once when the input ends (the sender is dropped), not a period later.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                acknowledge(&collector, &progress, AckWhen::IfGrown)?;
            }
            Ok(())
        })
    };

    let mut rejected = 0u64;
    let mut answer_error = None;
    let stdin = io::stdin();
    let read = for_each_line(stdin.lock(), |line| {
        let outcome = match line.bytes {
            Ok(bytes) if is_blank(bytes) => Ok(()),
            Ok(bytes) => match parse_line(bytes) {
                Ok(metric) => {
                    let id = metric.invocation_id.clone();
                    collector.record(metric).map_err(|e| refusal(Some(id), &e))
                }
                Err(e) => Err(line_refusal(bytes, &e)),
            },
            Err(len) => Err(Refusal {
                invocation_id: None,
                field: None,
                reason: format!("line is {len} bytes, longer than the {MAX_LINE_BYTES}-byte limit"),
            }),
        };
        match outcome {
            Ok(()) if line.bytes.is_ok_and(is_blank) => {}
            Ok(()) => {
                progress.recorded.fetch_add(1, Ordering::Release);
            }
            Err(refusal) => {
                rejected += 1;
                let what = match refusal.field {
                    Some(field) => format!("invalid `{field}`: {}", refusal.reason),
                    None => refusal.reason.clone(),
                };
                eprintln!("rejected line {}: {}", line.number, terminal_safe(&what));
                let printed = answer(&Answer::Rejected(Rejection {
                    line: line.number,
                    invocation_id: refusal.invocation_id.as_deref(),
                    field: refusal.field,
                    reason: &refusal.reason,
                }));
                if let Err(e) = printed {
                    answer_error.get_or_insert(e);
                }
            }
        }
        progress.consumed.store(line.number, Ordering::Release);
    });
    drop(stop);
    let flushed = flusher
        .join()
        .map_err(|_| anyhow::anyhow!("the flusher thread panicked"))?;
    read.context("cannot read stdin")?;
    if let Some(e) = answer_error {
        return Err(e);
    }
    flushed?;
    acknowledge(&collector, &progress, AckWhen::AtTheEnd)?;
    Arc::try_unwrap(collector)
        .map_err(|_| anyhow::anyhow!("collector still shared at exit"))?
        .close()?;
    if rejected > 0 {
        eprintln!("ingest: {rejected} line(s) rejected");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a line was refused.
struct Refusal {
    invocation_id: Option<String>,
    field: Option<&'static str>,
    reason: String,
}

impl Refusal {
    /// The field and reason of a rule a record broke, else `other`'s text.
    fn new(
        invocation_id: Option<String>,
        broken: Option<&ValidationError>,
        other: impl std::fmt::Display,
    ) -> Self {
        Self {
            invocation_id,
            field: broken.map(|invalid| invalid.field),
            reason: broken.map_or_else(|| other.to_string(), |invalid| invalid.reason.clone()),
        }
    }
}

fn refusal(invocation_id: Option<String>, e: &Error) -> Refusal {
    let broken = match e {
        Error::Invalid(invalid) => Some(invalid),
        _ => None,
    };
    Refusal::new(invocation_id, broken, e)
}

/// A line the parser refused, with its `invocationId` when the line has a readable one.
fn line_refusal(bytes: &[u8], e: &LineError) -> Refusal {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        #[serde(rename = "invocationId")]
        invocation_id: Option<serde_json::Value>,
    }
    let invocation_id = serde_json::from_slice::<IdOnly>(bytes)
        .ok()
        .and_then(|line| match line.invocation_id {
            Some(serde_json::Value::String(id)) => Some(id),
            _ => None,
        });
    let broken = match e {
        LineError::Field(invalid) => Some(invalid),
        _ => None,
    };
    Refusal::new(invocation_id, broken, e)
}

/// When [`acknowledge`] answers.
#[derive(Clone, Copy, PartialEq)]
enum AckWhen {
    /// Only if the records or lines grew since the last answer.
    IfGrown,
    /// Also if no acknowledgement was sent yet: a writer that sent nothing (or only
    /// rejected lines before the first tick) still hears how its input ended.
    AtTheEnd,
}

/// Flushes, then prints `{"acked": N, "lines": L}` (see [`AckWhen`] for when): every record
/// counted before the flush began is now durable, and every line up to L is answered.
fn acknowledge(
    collector: &InvocationMetricsCollector,
    progress: &Progress,
    when: AckWhen,
) -> Result<()> {
    let mut acked = progress.acked.lock().unwrap_or_else(|e| e.into_inner());
    let lines = progress.consumed.load(Ordering::Acquire);
    let records = progress.recorded.load(Ordering::Acquire);
    let last = acked.unwrap_or((0, 0));
    if (records, lines) == last && (acked.is_some() || when == AckWhen::IfGrown) {
        return Ok(());
    }
    if records > last.0
        && let Err(e) = collector.flush()
    {
        // Not durable yet; the writer retries and a later flush acknowledges.
        eprintln!("{} {e}", crate::style::label("warning"));
        return Ok(());
    }
    *acked = Some((records, lines));
    answer(&Ack {
        acked: records,
        lines,
    })
}
