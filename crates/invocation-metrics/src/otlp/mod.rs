//! Export to OpenTelemetry: each record becomes one span, and the records add up to the
//! GenAI metrics, sent over OTLP/HTTP (protobuf or JSON) to any receiver — the Collector, or
//! a backend that speaks OTLP (feature `otlp`).
//!
//! # The mapping
//!
//! One span per invocation, named `invoke_agent {agent}` (kind CLIENT), from `timestamp` to
//! `timestamp + durationMs`, with status ERROR when `success` is false, and the attributes of
//! the OpenTelemetry GenAI semantic conventions where they name a field:
//!
//! | attribute | from |
//! |---|---|
//! | `gen_ai.operation.name` | `"invoke_agent"` |
//! | `gen_ai.agent.name` | `agent` |
//! | `gen_ai.request.model` | `model` (when set) |
//! | `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens` | `inputTokens`, `outputTokens` (when set) |
//! | `gen_ai.usage.cache_read.input_tokens` | `cachedTokens` (when set) |
//! | `error.type` | `errorClass` (when set) |
//! | `invocation_metrics.*` | `invocation_id`, `phase`, `task_id`, `attempt`, `tier`, `cost_usd`, `exit_code`, `output_parsed`, `success`, `tokens` |
//!
//! Identities are derived from the record, so a batch sent twice (after a crash, or a retry
//! whose answer was lost) is the same spans, not new ones: the trace is the task's
//! (`agent`, `phase`, `taskId` — the attempts of one task share a trace), or the invocation's
//! own when it has no `taskId`; the span id comes from `invocationId`. Both are FNV-1a hashes
//! — specified, so the same on every machine and in every version; the project's in-memory
//! hash may change between versions, these may not.
//!
//! # Metrics
//!
//! Cumulative, timestamped from the records (a series starts at its first record's start;
//! each point's time is the latest end among its records), so a point sent twice is the same
//! point, and a restarted [`follow`] rebuilds its totals by reading the file up to the cursor:
//!
//! | metric | kind, unit | attributes |
//! |---|---|---|
//! | `gen_ai.client.token.usage` | histogram, `{token}`, the conventions' buckets (1, 4, 16, … 67,108,864) | `gen_ai.operation.name`, `gen_ai.agent.name`, `gen_ai.request.model`, `gen_ai.token.type` (`input`/`output`) |
//! | `gen_ai.client.operation.duration` | histogram, `s`, the conventions' buckets (0.01 … 81.92) | the same, and `error.type` for a failure (`errorClass`, or `_OTHER`) |
//! | `invocation_metrics.invocations` | monotonic sum, `{invocation}` | `gen_ai.agent.name`, `gen_ai.request.model`, `invocation_metrics.phase`, `invocation_metrics.outcome` (`success`/`failure`) |
//! | `invocation_metrics.cost` | monotonic sum, `USD` | the same |
//!
//! After each batch of spans, the series that batch changed are sent.

use std::fs;
use std::io::Read;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use prost::Message;

use crate::atomic_file::write_file_atomically;
use crate::collector::METRICS_FILE_NAME;
use crate::parse::parse_line;
use crate::record::InvocationMetric;
use crate::tail::{FileTail, NewLines};

mod metrics;
mod protobuf;
pub mod wire;

pub use metrics::{DURATION_BOUNDS, TOKEN_BOUNDS};
use metrics::{MetricState, end_ns, start_ns};
use protobuf::TracesEncoder;
use wire::{KeyValue, Resource, Scope};

/// The file beside `invocations.jsonl` where [`follow`] keeps its position.
pub const CURSOR_FILE_NAME: &str = "export-otlp.cursor";

/// Spans per request unless told otherwise (the OpenTelemetry SDKs' default batch).
pub const DEFAULT_BATCH_SPANS: usize = 512;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The options cannot work (a URL without `http://`, say).
    #[error("{0}")]
    Usage(String),
    /// The receiver refused a batch with a status that retrying cannot change.
    #[error("{url} refused the batch: HTTP {status}: {body}")]
    Refused {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The receiver could not be reached, or kept answering "try later", for the whole
    /// retry budget.
    #[error(
        "{url} did not take the batch: {tries} tries in {:.1} s, and waiting for the next would pass the {budget:?} budget: {last}",
        elapsed.as_secs_f64()
    )]
    GaveUp {
        /// The request's URL.
        url: String,
        /// The retry budget.
        budget: Duration,
        /// How long the tries took.
        elapsed: Duration,
        /// Attempts made.
        tries: u32,
        /// The last failure.
        last: String,
    },
    /// Reading the metrics or writing the cursor failed.
    #[error(transparent)]
    Io(#[from] crate::Error),
}

/// How requests are encoded (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `http/protobuf`: the OpenTelemetry default, and the smaller body.
    #[default]
    HttpProtobuf,
    /// `http/json`: OTLP/JSON.
    HttpJson,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Ok(Self::HttpJson),
            "grpc" => Err("protocol \"grpc\" is not built in: use http/protobuf or http/json (a Collector takes both on port 4318)".into()),
            other => Err(format!("unknown protocol {other:?}: use http/protobuf or http/json")),
        }
    }
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// The traces URL, e.g. `http://localhost:4318/v1/traces`; `None` sends no spans.
    pub traces_url: Option<String>,
    /// The metrics URL, e.g. `http://localhost:4318/v1/metrics`; `None` sends no metrics.
    pub metrics_url: Option<String>,
    /// The encoding.
    pub protocol: Protocol,
    /// Extra request headers (authentication, tenant…).
    pub headers: Vec<(String, String)>,
    /// Resource attributes (`service.name` among them).
    pub resource: Vec<(String, String)>,
    /// How long sending one batch may take, retries included: each attempt is bounded by it
    /// (and by 30 s), and no pause before a retry reaches past it.
    pub timeout: Duration,
}

/// What an exporter has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Records exported (each a span, when spans are sent).
    pub records: u64,
    /// Spans the receiver acknowledged.
    pub spans: u64,
    /// Metric data points the receiver acknowledged.
    pub points: u64,
    /// Requests it acknowledged.
    pub batches: u64,
    /// Requests sent again after a failure or a "try later".
    pub retries: u64,
    /// Spans and data points the receiver said it accepted the request but dropped (an
    /// OTLP partial success).
    pub rejected: u64,
}

/// Sends batches of records as spans and metrics, retrying with back-off until the receiver
/// takes each.
#[derive(Debug)]
pub struct OtlpExporter {
    agent: ureq::Agent,
    options: OtlpOptions,
    resource: Resource,
    /// The last batch's spans for JSON, refilled for the next (see [`wire::Attributes`]).
    spans: Vec<wire::Span>,
    /// Protobuf spans, written straight from the records.
    traces: TracesEncoder,
    /// Request bodies, reused.
    body: Vec<u8>,
    metrics: MetricState,
    stats: ExportStats,
}

/// How much of a request ureq writes to the socket at once.
const SEND_BUFFER_BYTES: usize = 1 << 20;

/// How much of a refusal's body an error quotes.
const EXCERPT_BYTES: usize = 500;

/// Looks the receiver's host name up on the calling thread. ureq's own resolver, when a
/// request has a time limit, starts a thread for every lookup so that it can give up on a
/// hung one: a thread per request (an eighth of the exporter's CPU). The system resolver
/// has time limits of its own, and the request's limit covers the rest.
#[derive(Debug)]
struct LookupInline;

impl Resolver for LookupInline {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        DefaultResolver::default().resolve(uri, config, NextTimeout::default())
    }
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
fn head_of(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// First pause before a retry; doubles (with jitter) up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl OtlpExporter {
    /// An exporter for `options`; refuses a URL it cannot send to.
    pub fn new(options: OtlpOptions) -> Result<Self, ExportError> {
        for url in [&options.traces_url, &options.metrics_url]
            .into_iter()
            .flatten()
        {
            if !url.starts_with("http://") {
                return Err(ExportError::Usage(format!(
                    "the OTLP endpoint must be an http:// URL, got {url:?}{}",
                    if url.starts_with("https://") {
                        " (TLS is not built in: send to a local Collector, which forwards over TLS)"
                    } else {
                        ""
                    }
                )));
            }
        }
        if options.traces_url.is_none() && options.metrics_url.is_none() {
            return Err(ExportError::Usage("no signal to send".into()));
        }
        let resource = Resource {
            attributes: options
                .resource
                .iter()
                .map(|(k, v)| KeyValue::string(k, v))
                .collect(),
        };
        let config = ureq::Agent::config_builder()
            // One attempt, from the lookup to the last byte of the answer.
            .timeout_global(Some(options.timeout.min(Duration::from_secs(30))))
            // Every status is looked at here: some are retried, some refuse the batch.
            .http_status_as_error(false)
            // A request goes out in writes this large: a batch is one or two (with small
            // writes, a third of the exporter's CPU went on sending).
            .output_buffer_size(SEND_BUFFER_BYTES)
            // As before ureq 3: no proxy from the environment (`HTTP_PROXY`…), which would
            // send even a local Collector's traffic elsewhere, and no TLS to reach most.
            .proxy(None)
            .build();
        Ok(Self {
            agent: ureq::Agent::with_parts(config, DefaultConnector::default(), LookupInline),
            spans: Vec::new(),
            body: Vec::new(),
            traces: TracesEncoder::default(),
            resource,
            options,
            metrics: MetricState::default(),
            stats: ExportStats::default(),
        })
    }

    /// What was sent so far.
    pub fn stats(&self) -> ExportStats {
        self.stats
    }

    /// Sends `records` as one request of spans, then the metric series they changed as
    /// another, and returns once the receiver acknowledged both.
    ///
    /// A 429, 502, 503 or 504 and a failed connection are retried, waiting as `Retry-After`
    /// says or backing off with jitter, until the timeout; any other refusal is final. After
    /// an error the metric totals include the failed batch: make a new exporter (and, with
    /// [`follow`], start again from the cursor) rather than sending the batch again.
    pub fn export(&mut self, records: &[InvocationMetric]) -> Result<(), ExportError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(url) = self.options.traces_url.clone() {
            let mut body = std::mem::take(&mut self.body);
            // Where the request starts in `body`.
            let mut start = 0;
            match self.options.protocol {
                Protocol::HttpProtobuf => {
                    start = self
                        .traces
                        .encode(&self.resource, &scope(), records, &mut body);
                }
                Protocol::HttpJson => {
                    self.spans.truncate(records.len());
                    self.spans.resize_with(records.len(), wire::Span::default);
                    for (span, m) in self.spans.iter_mut().zip(records) {
                        fill_span(span, m);
                    }
                    let request = wire::TracesRequest {
                        resource_spans: vec![wire::ResourceSpans {
                            resource: Some(self.resource.clone()),
                            scope_spans: vec![wire::ScopeSpans {
                                scope: Some(scope()),
                                spans: std::mem::take(&mut self.spans),
                            }],
                        }],
                    };
                    self.encode(&request, &mut body);
                    self.spans = request
                        .resource_spans
                        .into_iter()
                        .flat_map(|r| r.scope_spans)
                        .flat_map(|s| s.spans)
                        .collect();
                }
            }
            let sent = self.send(&url, &body[start..]);
            self.body = body;
            sent?;
            self.stats.spans += records.len() as u64;
        }
        if let Some(url) = self.options.metrics_url.clone() {
            self.replay(records);
            let metrics = self.metrics.take_changed();
            let points = metrics.iter().map(point_count).sum::<usize>();
            let request = wire::MetricsRequest {
                resource_metrics: vec![wire::ResourceMetrics {
                    resource: Some(self.resource.clone()),
                    scope_metrics: vec![wire::ScopeMetrics {
                        scope: Some(scope()),
                        metrics,
                    }],
                }],
            };
            let mut body = Vec::new();
            self.encode(&request, &mut body);
            match self.send(&url, &body) {
                Ok(()) => self.stats.points += points as u64,
                // A receiver for traces only (no /v1/metrics): the spans still go.
                Err(ExportError::Refused {
                    status: 404 | 405 | 501,
                    ..
                }) if self.stats.points == 0 => {
                    tracing::warn!(
                        url = %url,
                        "the receiver takes no metrics there: sending spans only (--signals traces says so)"
                    );
                    self.options.metrics_url = None;
                }
                Err(e) => return Err(e),
            }
        }
        self.stats.records += records.len() as u64;
        Ok(())
    }

    /// Whether metrics are sent (and so kept).
    pub fn sends_metrics(&self) -> bool {
        self.options.metrics_url.is_some()
    }

    /// Adds records to the metric totals without sending anything: what was exported before
    /// a restart.
    pub fn replay(&mut self, records: &[InvocationMetric]) {
        if self.options.metrics_url.is_some() {
            for m in records {
                self.metrics.add(m);
            }
        }
    }

    /// Encodes `message` into `body` (cleared first), as the protocol says.
    fn encode(&self, message: &(impl Message + serde::Serialize), body: &mut Vec<u8>) {
        body.clear();
        match self.options.protocol {
            // A Vec grows as needed: encoding into it cannot fail.
            Protocol::HttpProtobuf => drop(message.encode(body)),
            // Serialising plain structs of strings and numbers cannot fail.
            Protocol::HttpJson => drop(serde_json::to_writer(body, message)),
        }
    }

    fn send(&mut self, url: &str, body: &[u8]) -> Result<(), ExportError> {
        let content_type = match self.options.protocol {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
        };
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let mut request = self.agent.post(url).header("Content-Type", content_type);
            for (name, value) in &self.options.headers {
                request = request.header(name, value);
            }
            let (wait, last) = match request.send(body) {
                Ok(response) => match response.status().as_u16() {
                    200..=299 => {
                        self.stats.batches += 1;
                        self.note_partial_success(url, response);
                        return Ok(());
                    }
                    status @ (429 | 502 | 503 | 504) => {
                        let retry_after = response
                            .headers()
                            .get("Retry-After")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|s| s.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        (retry_after, format!("HTTP {status}"))
                    }
                    status => {
                        // The start of what the receiver said, however long it is.
                        let mut start = Vec::new();
                        let _ = response
                            .into_body()
                            .into_reader()
                            .take(EXCERPT_BYTES as u64)
                            .read_to_end(&mut start);
                        return Err(ExportError::Refused {
                            url: url.to_owned(),
                            status,
                            body: head_of(&String::from_utf8_lossy(&start), EXCERPT_BYTES)
                                .to_owned(),
                        });
                    }
                },
                Err(e) => (None, e.to_string()),
            };
            let pause = wait.unwrap_or_else(|| jittered(backoff));
            if started.elapsed() + pause > self.options.timeout {
                return Err(ExportError::GaveUp {
                    url: url.to_owned(),
                    budget: self.options.timeout,
                    elapsed: started.elapsed(),
                    tries,
                    last,
                });
            }
            self.stats.retries += 1;
            std::thread::sleep(pause);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

impl OtlpExporter {
    /// A 2xx answer may still say that part of the request was dropped (`partial_success`
    /// with a count of rejected spans or points): counted, and said once per request.
    fn note_partial_success(&mut self, url: &str, response: ureq::http::Response<ureq::Body>) {
        let body = response
            .into_body()
            .into_with_config()
            .limit(1 << 16)
            .read_to_vec()
            .unwrap_or_default();
        if body.is_empty() {
            return;
        }
        let (rejected, message) = match self.options.protocol {
            Protocol::HttpProtobuf => match wire::ExportResponse::decode(&body[..]) {
                Ok(r) => r
                    .partial_success
                    .map_or((0, String::new()), |p| (p.rejected, p.error_message)),
                Err(_) => return,
            },
            Protocol::HttpJson => {
                let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
                    return;
                };
                let partial = &json["partialSuccess"];
                let count = |v: &serde_json::Value| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .unwrap_or(0)
                };
                (
                    count(&partial["rejectedSpans"]) + count(&partial["rejectedDataPoints"]),
                    partial["errorMessage"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            }
        };
        if rejected > 0 {
            self.stats.rejected += rejected.unsigned_abs();
            tracing::warn!(%url, rejected, message = %message, "the receiver dropped part of a request");
        }
    }
}

fn scope() -> Scope {
    Scope {
        name: "invocation-metrics".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

fn point_count(metric: &wire::Metric) -> usize {
    match &metric.data {
        Some(wire::Data::Sum(sum)) => sum.data_points.len(),
        Some(wire::Data::Histogram(h)) => h.data_points.len(),
        None => 0,
    }
}

/// `pause` ± 25 %, so that exporters that failed together do not retry together.
fn jittered(pause: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    pause.mul_f64(0.75 + f64::from(nanos % 1000) / 2000.0)
}

/// The span of one record (see [the mapping](self)).
pub fn span(m: &InvocationMetric) -> wire::Span {
    let mut span = wire::Span::default();
    fill_span(&mut span, m);
    span
}

/// Makes `span` the span of `m`, reusing its strings and attribute list.
fn fill_span(span: &mut wire::Span, m: &InvocationMetric) {
    let mut a = wire::Attributes::over(&mut span.attributes);
    attributes(m, |key, value| a.put(key, value));
    drop(a);
    let status = span.status.get_or_insert_with(wire::Status::default);
    status.code = status_code(m);
    status_message(m, &mut status.message);
    span.trace_id.clear();
    span.trace_id.extend_from_slice(&trace_id(m).to_be_bytes());
    span.span_id.clear();
    span.span_id.extend_from_slice(&span_id(m).to_be_bytes());
    span.name.clear();
    span.name.push_str(SPAN_NAME_PREFIX);
    span.name.push_str(&m.agent);
    span.kind = SPAN_KIND_CLIENT;
    span.start_time_unix_nano = start_ns(m);
    span.end_time_unix_nano = end_ns(m);
}

/// A span's name is this followed by the agent.
const SPAN_NAME_PREFIX: &str = "invoke_agent ";
/// `SpanKind` CLIENT.
const SPAN_KIND_CLIENT: i32 = 3;

/// The span's attributes, in order: the one list both encodings (protobuf straight from the
/// record, and [`wire::Span`] for JSON) are written from.
fn attributes<'m>(m: &'m InvocationMetric, mut put: impl FnMut(&'static str, wire::Scalar<'m>)) {
    use wire::Scalar::{Bool, Double, Int, Str};
    let count = |n: u64| Int(i64::try_from(n).unwrap_or(i64::MAX));
    put("gen_ai.operation.name", Str("invoke_agent"));
    put("gen_ai.agent.name", Str(&m.agent));
    if let Some(model) = &m.model {
        put("gen_ai.request.model", Str(model));
    }
    if let Some(n) = m.input_tokens {
        put("gen_ai.usage.input_tokens", count(n));
    }
    if let Some(n) = m.output_tokens {
        put("gen_ai.usage.output_tokens", count(n));
    }
    if let Some(n) = m.cached_tokens {
        put("gen_ai.usage.cache_read.input_tokens", count(n));
    }
    if let Some(class) = &m.error_class {
        put("error.type", Str(class));
    }
    put("invocation_metrics.invocation_id", Str(&m.invocation_id));
    put("invocation_metrics.phase", Int(m.phase.into()));
    if let Some(task) = &m.task_id {
        put("invocation_metrics.task_id", Str(task));
    }
    put("invocation_metrics.attempt", Int(m.attempt.into()));
    if let Some(tier) = &m.tier {
        put("invocation_metrics.tier", Str(tier));
    }
    put("invocation_metrics.cost_usd", Double(m.cost));
    put("invocation_metrics.exit_code", Int(m.exit_code.into()));
    put("invocation_metrics.output_parsed", Bool(m.output_parsed));
    put("invocation_metrics.success", Bool(m.success));
    put("invocation_metrics.tokens", count(m.tokens));
}

/// `StatusCode`: UNSET (0) for a success, ERROR (2) otherwise.
fn status_code(m: &InvocationMetric) -> i32 {
    if m.success { 0 } else { 2 }
}

/// The status message (empty for a success) into `message`, cleared first.
fn status_message(m: &InvocationMetric, message: &mut String) {
    use std::fmt::Write;
    message.clear();
    if !m.success {
        let _ = write!(message, "exit code {}", m.exit_code);
    }
}

/// The record's trace: its task's, so that the attempts of one task share it.
pub fn trace_id(m: &InvocationMetric) -> u128 {
    let hash = match &m.task_id {
        // The hash of "task\0{agent}\0{phase}\0{taskId}", fed in pieces.
        Some(task) => {
            let mut digits = [0u8; 10];
            let phase = decimal(m.phase, &mut digits);
            [
                &b"task\0"[..],
                m.agent.as_bytes(),
                b"\0",
                phase,
                b"\0",
                task.as_bytes(),
            ]
            .into_iter()
            .fold(FNV_OFFSET, fnv1a_128_feed)
        }
        None => [&b"invocation\0"[..], m.invocation_id.as_bytes()]
            .into_iter()
            .fold(FNV_OFFSET, fnv1a_128_feed),
    };
    hash.max(1)
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: u32, digits: &mut [u8; 10]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

/// The record's span id, from its `invocationId`.
pub fn span_id(m: &InvocationMetric) -> u64 {
    let h = fnv1a_128(m.invocation_id.as_bytes());
    ((h >> 64) as u64 ^ h as u64).max(1)
}

/// FNV-1a, 128-bit: a specified hash, the same everywhere and in every version (what a
/// span's identity needs), in a few lines rather than a dependency.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    fnv1a_128_feed(FNV_OFFSET, bytes)
}

const FNV_OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;

/// FNV-1a, 128-bit, continued over `bytes` from the hash `h` of what came before.
fn fnv1a_128_feed(h: u128, bytes: &[u8]) -> u128 {
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// Where [`follow`] is in the metrics file: saved only after the receiver acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Bytes of the file exported (always at a line boundary).
    pub offset: u64,
    /// Records exported.
    pub records: u64,
    /// The device and inode of the file the offset is in: another file at the path (a
    /// repair renames a clean copy over it) makes the offset meaningless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<(u64, u64)>,
}

impl Cursor {
    /// The cursor saved in `dir`, or the start of the file.
    pub fn load(dir: &Path) -> Result<Self, ExportError> {
        let path = dir.join(CURSOR_FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ExportError::Usage(format!(
                    "{} is not a cursor ({e}); remove it to export from the start",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(crate::Error::io("read", &path, e).into()),
        }
    }

    fn save(&self, dir: &Path) -> Result<(), ExportError> {
        let mut json = serde_json::to_vec(self).unwrap_or_default();
        json.push(b'\n');
        write_file_atomically(&dir.join(CURSOR_FILE_NAME), &json)?;
        Ok(())
    }
}

/// How [`follow`] runs.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Most records per request.
    pub batch: usize,
    /// How often to look for new lines once the file is read to its end.
    pub poll: Duration,
    /// Return after the file has had no new complete line this long (`None`: never).
    pub idle_exit: Option<Duration>,
}

/// Exports the records of `dir/invocations.jsonl` as a writer appends them, from the
/// cursor in `dir/export-otlp.cursor` on, saving the cursor (atomically) after each batch
/// the receiver acknowledged — so a restart, even after `kill -9`, resends at most the
/// batch in flight (the same spans: identities come from the records) and loses nothing.
/// The file is the queue: memory holds one batch. A line still being written waits for its
/// newline; a damaged complete line is skipped with a warning. Returns the final cursor
/// when idle for `idle_exit`.
pub fn follow(
    dir: &Path,
    exporter: &mut OtlpExporter,
    options: &FollowOptions,
) -> Result<Cursor, ExportError> {
    let path: PathBuf = dir.join(METRICS_FILE_NAME);
    let mut cursor = Cursor::load(dir)?;
    if exporter.sends_metrics() && cursor.offset > 0 {
        // The metric totals of what was exported before: the file up to the cursor.
        let file = fs::File::open(&path).map_err(|e| crate::Error::io("read", &path, e))?;
        crate::read_records(
            file.take(cursor.offset),
            |_, m| exporter.replay(std::slice::from_ref(&m)),
            |_| {},
        )
        .map_err(|e| crate::Error::io("read", &path, e))?;
    }
    let mut idle_since = Instant::now();
    let mut tail = FileTail::new(&path);
    loop {
        // What is there past the cursor, at most a window's worth of whole lines.
        let read = tail
            .read_from(cursor.offset, READ_WINDOW)
            .map_err(|e| crate::Error::io("read", &path, e))?;
        let replaced = matches!(read, NewLines::Replaced)
            || (cursor.offset > 0
                && cursor.file.is_some()
                && tail.identity().is_some()
                && cursor.file != tail.identity());
        if replaced {
            return Err(ExportError::Usage(format!(
                "{} is another file than the one the cursor is in (repaired or replaced?): remove {} to export it from the start",
                path.display(),
                dir.join(CURSOR_FILE_NAME).display()
            )));
        }
        if tail.identity().is_some() {
            cursor.file = tail.identity();
        }
        let next = match read {
            NewLines::Replaced => unreachable!("handled above"),
            NewLines::Shrunk { .. } => {
                return Err(ExportError::Usage(format!(
                    "{} is shorter than the cursor's {} bytes (repaired or replaced?): remove {} to export it from the start",
                    path.display(),
                    cursor.offset,
                    dir.join(CURSOR_FILE_NAME).display()
                )));
            }
            NewLines::NoNewline { next } => {
                // 64 MiB without a newline is no line a writer of ours is finishing.
                tracing::warn!(path = %path.display(), offset = cursor.offset, "skipping 64 MiB without a newline");
                cursor.offset = next;
                cursor.save(dir)?;
                continue;
            }
            NewLines::Nothing => {
                if options
                    .idle_exit
                    .is_some_and(|limit| idle_since.elapsed() >= limit)
                {
                    return Ok(cursor);
                }
                std::thread::sleep(options.poll);
                continue;
            }
            NewLines::Lines { next } => next,
        };
        idle_since = Instant::now();
        // Batches of whole lines; the cursor moves past each once it is acknowledged.
        let base = cursor.offset + tail.lines_offset();
        let buffer = tail.lines();
        let mut batch = Vec::with_capacity(options.batch);
        let mut line_start = 0usize;
        for line_end in memchr::memchr_iter(b'\n', buffer) {
            let at = base + line_start as u64;
            let line = &buffer[line_start..line_end];
            line_start = line_end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !crate::journal::is_blank(line) {
                match parse_line(line) {
                    Ok(m) => batch.push(m),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), offset = at, "skipping a damaged line: {e}");
                    }
                }
            }
            if batch.len() >= options.batch {
                exporter.export(&batch)?;
                cursor = Cursor {
                    offset: base + line_start as u64,
                    records: cursor.records + batch.len() as u64,
                    file: cursor.file,
                };
                cursor.save(dir)?;
                batch.clear();
            }
        }
        exporter.export(&batch)?;
        cursor = Cursor {
            offset: next,
            records: cursor.records + batch.len() as u64,
            file: cursor.file,
        };
        cursor.save(dir)?;
    }
}

/// Most bytes [`follow`] reads at a time.
const READ_WINDOW: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(id: &str, task: Option<&str>) -> InvocationMetric {
        let mut m =
            InvocationMetric::new(id, "coder", 2, "2026-11-27T10:00:00.125Z".parse().unwrap());
        m.task_id = task.map(str::to_owned);
        m.duration_ms = 1500;
        m.input_tokens = Some(100);
        m.cached_tokens = Some(40);
        m.model = Some("model-a".into());
        m.success = false;
        m.exit_code = 3;
        m.error_class = Some("timeout".into());
        m
    }

    #[test]
    fn identities_come_from_the_record_and_attempts_of_a_task_share_a_trace() {
        let first = metric("t1-a1", Some("t1"));
        let retry = metric("t1-a2", Some("t1"));
        assert_eq!(trace_id(&first), trace_id(&retry));
        assert_ne!(span_id(&first), span_id(&retry));
        assert_eq!(span_id(&first), span_id(&metric("t1-a1", Some("t1"))));
        assert_ne!(trace_id(&metric("x", None)), trace_id(&metric("y", None)));
        // Fixed by the specification of FNV-1a, not by this build.
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn spans_written_from_the_records_are_what_prost_writes_of_their_wire_spans() {
        let resource = Resource {
            attributes: vec![KeyValue::string("service.name", "s")],
        };
        let mut bare =
            InvocationMetric::new("bare", "a", 0, "1970-01-01T00:00:00Z".parse().unwrap());
        bare.cost = -0.0;
        let mut odd = metric("t1-a2", Some("t1"));
        (odd.exit_code, odd.attempt, odd.phase, odd.tokens) = (-1, 0, u32::MAX, u64::MAX);
        (odd.tier, odd.output_tokens, odd.model) =
            (Some(String::new()), Some(0), Some("é\"\n".into()));
        // A span longer than the two bytes its length is given up front can say.
        let mut long = metric("long", None);
        long.agent = "a".repeat(20_000);
        let records = [
            metric("t1-a1", Some("t1")),
            odd,
            metric("x", None),
            bare,
            long,
        ];
        let mut spans: Vec<wire::Span> = records.iter().map(span).collect();
        // Refilling a span left from another record gives that record's span exactly.
        fill_span(&mut spans[2], &records[0]);
        assert_eq!(spans[2], span(&records[0]));
        spans[2] = span(&records[2]);
        let mut body = Vec::new();
        let start = TracesEncoder::default().encode(&resource, &scope(), &records, &mut body);
        let whole = wire::TracesRequest {
            resource_spans: vec![wire::ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![wire::ScopeSpans {
                    scope: Some(scope()),
                    spans,
                }],
            }],
        };
        assert_eq!(body[start..], whole.encode_to_vec());
    }

    #[test]
    fn trace_ids_hash_the_task_as_before() {
        let m = metric("t1-a1", Some("t1"));
        assert_eq!(trace_id(&m), fnv1a_128(b"task\0coder\x002\0t1"));
        for phase in [0, 10, 4_294_967_295] {
            let m = InvocationMetric { phase, ..m.clone() };
            let key = format!("task\0coder\0{phase}\0t1");
            assert_eq!(trace_id(&m), fnv1a_128(key.as_bytes()));
        }
        assert_eq!(trace_id(&metric("x", None)), fnv1a_128(b"invocation\0x"));
    }

    #[test]
    fn a_span_carries_the_genai_attributes_and_the_records_times() {
        let s = serde_json::to_value(span(&metric("t1-a1", Some("t1")))).unwrap();
        assert_eq!(s["name"], "invoke_agent coder");
        assert_eq!(s["startTimeUnixNano"], "1795773600125000000");
        assert_eq!(s["endTimeUnixNano"], "1795773601625000000");
        assert_eq!(s["status"]["code"], 2);
        let attrs: std::collections::BTreeMap<String, serde_json::Value> = s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
            .collect();
        assert_eq!(attrs["gen_ai.agent.name"]["stringValue"], "coder");
        assert_eq!(attrs["gen_ai.request.model"]["stringValue"], "model-a");
        assert_eq!(attrs["gen_ai.usage.input_tokens"]["intValue"], "100");
        assert_eq!(
            attrs["gen_ai.usage.cache_read.input_tokens"]["intValue"],
            "40"
        );
        assert_eq!(attrs["error.type"]["stringValue"], "timeout");
        assert_eq!(attrs["invocation_metrics.phase"]["intValue"], "2");
        assert!(!attrs.contains_key("gen_ai.usage.output_tokens"));
    }
}
