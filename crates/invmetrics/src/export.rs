//! `export otlp`: records as OpenTelemetry spans, to the pipeline a fleet already runs.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use invocation_metrics::otlp::{FollowOptions, OtlpExporter, OtlpOptions, Protocol, follow};
use invocation_metrics::{Input, InvocationMetric, resolve_inputs};

use crate::UsageError;
use crate::args::OtlpArgs;

/// `invmetrics export otlp`.
pub fn otlp(args: &OtlpArgs, out: &mut impl Write) -> Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let protocol: Protocol = args
        .protocol
        .clone()
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into())
        .parse()
        .map_err(UsageError)?;
    let (mut traces, mut metrics) = (false, false);
    for signal in args.signals.split(',').map(str::trim) {
        match signal {
            "traces" => traces = true,
            "metrics" => metrics = true,
            other => {
                return Err(UsageError(format!(
                    "unknown signal {other:?}: --signals takes traces, metrics or traces,metrics"
                ))
                .into());
            }
        }
    }
    // A signal's own endpoint variable is its full URL; the base endpoint gets the path.
    let url = |path: &str, own: &str| match (&args.endpoint, env(own)) {
        (Some(base), _) => format!("{}/{path}", base.trim_end_matches('/')),
        (None, Some(full)) => full,
        (None, None) => format!(
            "{}/{path}",
            env("OTEL_EXPORTER_OTLP_ENDPOINT")
                .unwrap_or_else(|| "http://localhost:4318".into())
                .trim_end_matches('/')
        ),
    };
    let traces_url = traces.then(|| url("v1/traces", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    let metrics_url = metrics.then(|| url("v1/metrics", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"));
    let destination = traces_url
        .iter()
        .chain(&metrics_url)
        .cloned()
        .collect::<Vec<_>>()
        .join(" and ");
    // Headers and resource attributes: the environment's first, then the flags (which win).
    // The variables hold `k=v` pairs with percent-encoded values (the W3C baggage form the
    // OpenTelemetry specification names): `Authorization=Basic%20dXNlcjpwYXNz`.
    let pairs = |list: Option<String>| -> Vec<(String, String)> {
        list.unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| {
                let value = percent_encoding::percent_decode_str(v.trim()).decode_utf8_lossy();
                (k.trim().to_owned(), value.into_owned())
            })
            .filter(|(k, _)| !k.is_empty())
            .collect()
    };
    let merge = |mut base: Vec<(String, String)>, flags: &[(String, String)]| {
        for (k, v) in flags {
            base.retain(|(existing, _)| existing != k);
            base.push((k.clone(), v.clone()));
        }
        base
    };
    let headers = merge(pairs(env("OTEL_EXPORTER_OTLP_HEADERS")), &args.headers);
    let mut resource = pairs(env("OTEL_RESOURCE_ATTRIBUTES"));
    if let Some(name) = env("OTEL_SERVICE_NAME") {
        resource = merge(resource, &[("service.name".into(), name)]);
    }
    if !resource.iter().any(|(k, _)| k == "service.name") {
        resource.push(("service.name".into(), "invocation-metrics".into()));
    }
    let resource = merge(resource, &args.resource);
    let timeout = args.timeout.unwrap_or_else(|| {
        env("OTEL_EXPORTER_OTLP_TIMEOUT")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis)
    });
    let mut exporter = OtlpExporter::new(OtlpOptions {
        traces_url,
        metrics_url,
        protocol,
        headers,
        resource,
        timeout,
    })
    .map_err(|e| match e {
        invocation_metrics::otlp::ExportError::Usage(message) => UsageError(message).into(),
        other => anyhow::Error::new(other),
    })?;

    let started = Instant::now();
    let (records, cursor_note) = if args.follow {
        let [dir] = &args.input.paths[..] else {
            return Err(UsageError("--follow takes one metrics directory".into()).into());
        };
        if !args.filter.is_empty() {
            return Err(UsageError(
                "--follow exports every record; --since, --until, --agent and --phase are for files".into(),
            )
            .into());
        }
        if !dir.is_dir() {
            return Err(UsageError(format!(
                "--follow takes a metrics directory; {} is not one",
                dir.display()
            ))
            .into());
        }
        let cursor = follow(
            dir,
            &mut exporter,
            &FollowOptions {
                batch: args.batch,
                poll: Duration::from_millis(200),
                idle_exit: args.idle_exit,
            },
        )
        .with_context(|| format!("cannot export {}", dir.display()))?;
        (
            exporter.stats().records,
            format!("; the cursor is past record {}", cursor.records),
        )
    } else {
        (export_inputs(args, &mut exporter)?, String::new())
    };
    let stats = exporter.stats();
    writeln!(
        out,
        "exported {} record(s) as {} span(s) and {} metric point(s) in {} request(s) to {destination} ({} retr{}{}), {:.1} s{cursor_note}",
        records,
        stats.spans,
        stats.points,
        stats.batches,
        stats.retries,
        if stats.retries == 1 { "y" } else { "ies" },
        match stats.rejected {
            0 => String::new(),
            n => format!("; the receiver dropped {n}"),
        },
        started.elapsed().as_secs_f64()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Reads every input once (dialects, shards, de-duplication) and sends it in batches.
fn export_inputs(args: &OtlpArgs, exporter: &mut OtlpExporter) -> Result<u64> {
    let inputs = resolve_inputs(&args.input.paths, args.input.recursive)?;
    let mut scan = args.input.scan(args.filter.filter());
    // The batch's records are overwritten in place (`clone_from` reuses their strings).
    let mut batch: Vec<InvocationMetric> = Vec::with_capacity(args.batch);
    let mut len = 0;
    let mut failure = None;
    let mut sent = 0u64;
    for input in &inputs {
        let reader = crate::input::open_with_progress(input, false)?;
        let name = match input {
            Input::File(path) => path.display().to_string(),
            Input::Stdin => "<stdin>".into(),
        };
        scan.visit(&name, reader, |m| {
            if failure.is_some() {
                return;
            }
            match batch.get_mut(len) {
                Some(slot) => slot.clone_from(m),
                None => batch.push(m.clone()),
            }
            len += 1;
            if len >= args.batch {
                match exporter.export(&batch[..len]) {
                    Ok(()) => sent += len as u64,
                    Err(e) => failure = Some(e),
                }
                len = 0;
            }
        })
        .with_context(|| format!("cannot read {name}"))?;
        if let Some(e) = failure.take() {
            return Err(anyhow::Error::new(e)
                .context(format!("{sent} record(s) were exported before the failure")));
        }
    }
    exporter
        .export(&batch[..len])
        .with_context(|| format!("{sent} record(s) were exported before the failure"))?;
    sent += len as u64;
    let report = scan.finish();
    crate::input::report_damage(&report);
    // An empty input is "no records", as for summary and report.
    crate::input::require_records(&report)?;
    Ok(sent)
}
