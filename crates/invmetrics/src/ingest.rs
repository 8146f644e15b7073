//! `ingest`: records from any program, one JSON line at a time on stdin, through the
//! collector — with acknowledgements a writer in another language can rely on.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use invocation_metrics::{
    InvocationMetricsCollector, MAX_LINE_BYTES, for_each_line, is_blank, parse_line,
};

use crate::args::IngestArgs;
use crate::format::terminal_safe;

/// `invmetrics ingest`.
pub fn run(args: &IngestArgs) -> Result<ExitCode> {
    let collector = Arc::new(
        InvocationMetricsCollector::builder(&args.dir)
            .durability(args.durability.into())
            .open()?,
    );
    let recorded = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(0u64));
    let done = Arc::new(AtomicBool::new(false));

    // The flusher acknowledges on a clock, so a quiet writer still hears back promptly.
    let flusher = {
        let (collector, recorded, acked, done) = (
            Arc::clone(&collector),
            Arc::clone(&recorded),
            Arc::clone(&acked),
            Arc::clone(&done),
        );
        let every = args.flush_every;
        std::thread::spawn(move || -> Result<()> {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(every);
                acknowledge(&collector, &recorded, &acked)?;
            }
            Ok(())
        })
    };

    let mut rejected = 0u64;
    let stdin = io::stdin();
    let read = for_each_line(stdin.lock(), |line| {
        let parsed = match line.bytes {
            Ok(bytes) if is_blank(bytes) => return,
            Ok(bytes) => parse_line(bytes).map_err(|e| e.to_string()),
            Err(len) => Err(format!(
                "line is {len} bytes, longer than the {MAX_LINE_BYTES}-byte limit"
            )),
        };
        let result = parsed.and_then(|metric| collector.record(metric).map_err(|e| e.to_string()));
        match result {
            Ok(()) => {
                recorded.fetch_add(1, Ordering::Release);
            }
            Err(reason) => {
                rejected += 1;
                eprintln!("rejected line {}: {}", line.number, terminal_safe(&reason));
            }
        }
    });
    done.store(true, Ordering::Release);
    let flushed = flusher
        .join()
        .map_err(|_| anyhow::anyhow!("the flusher thread panicked"))?;
    read.context("cannot read stdin")?;
    flushed?;
    acknowledge(&collector, &recorded, &acked)?;
    Arc::try_unwrap(collector)
        .map_err(|_| anyhow::anyhow!("collector still shared at exit"))?
        .close()?;
    if rejected > 0 {
        eprintln!("ingest: {rejected} line(s) rejected");
    }
    Ok(ExitCode::SUCCESS)
}

/// Flushes, then prints `{"acked": N}` if N grew: every record counted before the flush
/// began is now durable.
fn acknowledge(
    collector: &InvocationMetricsCollector,
    recorded: &AtomicU64,
    acked: &Mutex<u64>,
) -> Result<()> {
    let mut acked = acked.lock().unwrap_or_else(|e| e.into_inner());
    let candidate = recorded.load(Ordering::Acquire);
    if candidate == *acked {
        return Ok(());
    }
    if let Err(e) = collector.flush() {
        // Not durable yet; the writer retries and a later flush acknowledges.
        eprintln!("warning: {e}");
        return Ok(());
    }
    *acked = candidate;
    let mut out = io::stdout().lock();
    writeln!(out, "{{\"acked\": {candidate}}}")?;
    out.flush()?;
    Ok(())
}
