//! The native half of the `invocation_metrics` Python package: the library's collector,
//! checkpoint store and event subscription.
//!
//! A record crosses as JSON text, as it does for the Node package: the Python values are
//! written as JSON here (an aware `datetime` as its ISO string; a naive one refused, naming
//! `timestamp`) and the library's line parser — the one conversion both bindings share —
//! validates it and names the field a bad value is in. Records and aggregates come back as
//! JSON text that the Python half turns into dicts with `json.loads`, faster than building
//! them object by object here.
//!
//! The GIL is released for everything that waits or touches every record: flush, sync,
//! load, the aggregate, checkpoints, close, and waiting for an event.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use invocation_metrics::{
    CheckpointState, CheckpointStore, Durability, Error, FleetEvent, InvocationMetric,
    InvocationMetricsCollector, RecvError, Subscription, Timestamp, missing_field, parse_line,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBool, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

create_exception!(
    _native,
    LockedError,
    PyOSError,
    "Another collector, in this process or another, holds the metrics directory's lock."
);

/// The library's error as the Python exception a caller would expect. An error of the
/// operating system's carries its `errno` and file name, so Python raises the matching
/// subclass (`FileNotFoundError`, `PermissionError`, …) and `err.errno` is set.
fn to_py(e: Error) -> PyErr {
    let os_error = |errno: Option<i32>, path: &std::path::Path, message: String| match errno {
        Some(errno) => PyOSError::new_err((errno, message, path.to_path_buf())),
        None => PyOSError::new_err(message),
    };
    match e {
        Error::Invalid(invalid) => PyValueError::new_err(invalid.to_string()),
        Error::Locked { ref path } => {
            LockedError::new_err((EWOULDBLOCK, e.to_string(), path.to_path_buf()))
        }
        Error::Io {
            ref path,
            ref source,
            ..
        } => os_error(source.raw_os_error(), path, e.to_string()),
        Error::Write {
            ref path,
            ref source,
            ..
        } => os_error(source.raw_os_error(), path, e.to_string()),
        Error::CorruptCheckpoint { .. } => PyValueError::new_err(e.to_string()),
        Error::Unwritten { .. } | Error::NotAFile { .. } => PyOSError::new_err(e.to_string()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// `EWOULDBLOCK` on Linux: what `flock` answers for a lock another holds.
const EWOULDBLOCK: i32 = 11;

/// How deep lists and dicts may nest inside a metric (a cycle would otherwise recurse until
/// the stack runs out).
const MAX_DEPTH: usize = 64;

/// Writes a Python value as JSON; `key` names the top-level field it belongs to, for errors.
fn to_json(value: &Bound<'_, PyAny>, key: &str) -> PyResult<serde_json::Value> {
    to_json_within(value, key, 0)
}

fn to_json_within(
    value: &Bound<'_, PyAny>,
    key: &str,
    depth: usize,
) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "invalid `{key}`: nested more than {MAX_DEPTH} levels deep (or a list or dict that contains itself)"
        )));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.downcast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(n) = value.extract::<i64>() {
            return Ok(n.into());
        }
        if let Ok(n) = value.extract::<u64>() {
            return Ok(n.into());
        }
        return Err(PyValueError::new_err(format!(
            "invalid `{key}`: {value} does not fit in 64 bits"
        )));
    }
    if let Ok(f) = value.downcast::<PyFloat>() {
        // NaN and infinities have no JSON form: null, which the parser names.
        return Ok(serde_json::Number::from_f64(f.value()).map_or(Value::Null, Value::Number));
    }
    if let Ok(s) = value.downcast::<PyString>() {
        let text = s.to_str().map_err(|_| {
            PyValueError::new_err(format!(
                "invalid `{key}`: not valid Unicode text (a lone surrogate?)"
            ))
        })?;
        return Ok(Value::String(text.to_owned()));
    }
    if let Ok(t) = value.downcast::<PyDateTime>() {
        if t.getattr("tzinfo")?.is_none() || t.call_method0("utcoffset")?.is_none() {
            return Err(PyValueError::new_err(format!(
                "invalid `{key}`: a naive datetime has no offset; give an aware one (datetime.now(timezone.utc)) or an ISO string with an offset"
            )));
        }
        return Ok(Value::String(t.call_method0("isoformat")?.extract()?));
    }
    if let Ok(d) = value.downcast::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("keys of `{key}` must be strings")))?;
            let v = to_json_within(&v, &k, depth + 1)?;
            map.insert(k, v);
        }
        return Ok(Value::Object(map));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return value
            .try_iter()?
            .map(|item| to_json_within(&item?, key, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    Err(PyValueError::new_err(format!(
        "invalid `{key}`: a {} cannot be written as JSON",
        value.get_type().name()?
    )))
}

/// A metric (a mapping with the seed's camelCase keys) as one JSON line.
fn metric_json(metric: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let Ok(mapping) = metric.downcast::<pyo3::types::PyMapping>() else {
        return Err(PyTypeError::new_err(format!(
            "a metric is a mapping (a dict with the seed's camelCase keys), not a {}",
            metric.get_type().name()?
        )));
    };
    let mut map = serde_json::Map::new();
    for item in mapping.items()?.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let k: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("a metric's keys must be strings"))?;
        let v = to_json(&v, &k)?;
        map.insert(k, v);
    }
    serde_json::to_vec(&map).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("invalid `{field}`: {reason}"))
}

/// The most text the record reused for a thread's conversions keeps allocated between them.
const REUSED_TEXT_BYTES: usize = 64 << 10;

/// The seed's keys, in the seed's order (the order most dicts give them in).
const KEYS: [&str; 18] = [
    "invocationId",
    "agent",
    "phase",
    "taskId",
    "durationMs",
    "tokens",
    "inputTokens",
    "outputTokens",
    "cachedTokens",
    "cost",
    "exitCode",
    "success",
    "attempt",
    "outputParsed",
    "model",
    "tier",
    "timestamp",
    "errorClass",
];

/// [`KEYS`] as interned Python strings. A key written literally in Python source is this
/// very object, so most keys are found by comparing pointers, without reading their text.
fn interned_keys(py: Python<'_>) -> &[Py<PyString>; KEYS.len()] {
    static INTERNED: GILOnceCell<[Py<PyString>; KEYS.len()]> = GILOnceCell::new();
    INTERNED.get_or_init(py, || KEYS.map(|k| PyString::intern(py, k).unbind()))
}

/// Fills `metric` from a dict with the seed's camelCase keys (what the line parser does for
/// JSON; the record's own rules are checked by `record()` either way), reusing its strings.
/// Unknown keys are ignored, as readers ignore unknown fields; `None` is an absent field.
///
/// One pass over the dict's items, each key matched to its field, rather than a lookup per
/// field: 18 hash lookups were a third of the conversion.
fn fill_metric_from_dict(d: &Bound<'_, PyDict>, metric: &mut InvocationMetric) -> PyResult<()> {
    let interned = interned_keys(d.py());
    let mut given: [Option<Bound<'_, PyAny>>; KEYS.len()] = Default::default();
    // Where the next key is likely to be in KEYS: just after the last one.
    let mut next = 0;
    for (key, value) in d.iter() {
        let slot = if interned[next].as_ptr() == key.as_ptr() {
            Some(next)
        } else if let Some(slot) = interned.iter().position(|k| k.as_ptr() == key.as_ptr()) {
            Some(slot)
        } else {
            // A key built at run time (json.loads, a comprehension): by its text.
            key.downcast::<PyString>()
                .ok()
                .and_then(|k| k.to_str().ok())
                .and_then(|k| KEYS.iter().position(|known| *known == k))
        };
        if let Some(slot) = slot {
            given[slot] = Some(value).filter(|v| !v.is_none());
            next = (slot + 1) % KEYS.len();
        }
    }
    let [
        invocation_id,
        agent,
        phase,
        task_id,
        duration_ms,
        tokens,
        input_tokens,
        output_tokens,
        cached_tokens,
        cost,
        exit_code,
        success,
        attempt,
        output_parsed,
        model,
        tier,
        timestamp,
        error_class,
    ] = given;
    // "is missing", with a hint when the dict names the field in snake_case.
    let missing = |name: &'static str| {
        let error = missing_field(name, |key| d.contains(key).unwrap_or(false));
        invalid(name, error.reason)
    };
    let required = |name: &'static str| move || missing(name);

    metric.timestamp = match timestamp {
        None => return Err(missing("timestamp")),
        // A string first: asking whether it is a datetime costs a walk of its type's bases.
        Some(v) => match v.downcast::<PyString>() {
            Ok(_) => text(&v, "timestamp")?.parse::<Timestamp>(),
            Err(_) if v.downcast::<PyDateTime>().is_ok() => to_json(&v, "timestamp")?
                .as_str()
                .unwrap_or_default()
                .parse::<Timestamp>(),
            Err(_) => {
                return Err(invalid(
                    "timestamp",
                    format!(
                        "must be an ISO string or an aware datetime, not {}",
                        type_name(&v)
                    ),
                ));
            }
        }
        .map_err(|e| invalid("timestamp", e.reason))?,
    };
    let phase = whole(phase, "phase")?.ok_or_else(required("phase"))?;
    metric.phase = u32::try_from(phase).map_err(|_| invalid("phase", "must fit in 32 bits"))?;
    let attempt = whole(attempt, "attempt")?.ok_or_else(required("attempt"))?;
    metric.attempt =
        u32::try_from(attempt).map_err(|_| invalid("attempt", "must fit in 32 bits"))?;
    metric.cost = match cost {
        None => return Err(missing("cost")),
        Some(v) if v.is_instance_of::<PyBool>() => {
            return Err(invalid("cost", "must be a number, not bool"));
        }
        Some(v) => v
            .extract::<f64>()
            .map_err(|_| invalid("cost", format!("must be a number, not {}", type_name(&v))))?,
    };
    metric.exit_code = match exit_code {
        None => return Err(missing("exitCode")),
        Some(v) if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() => {
            return Err(invalid(
                "exitCode",
                format!("must be a whole number, not {}", type_name(&v)),
            ));
        }
        Some(v) => v
            .extract::<i32>()
            .map_err(|_| invalid("exitCode", format!("must fit in 32 bits, got {v}")))?,
    };
    let invocation_id = invocation_id.ok_or_else(required("invocationId"))?;
    refill(
        &mut metric.invocation_id,
        text(&invocation_id, "invocationId")?,
    );
    let agent = agent.ok_or_else(required("agent"))?;
    refill(&mut metric.agent, text(&agent, "agent")?);
    refill_optional(&mut metric.task_id, task_id.as_ref(), "taskId")?;
    metric.duration_ms = whole(duration_ms, "durationMs")?.ok_or_else(required("durationMs"))?;
    metric.tokens = whole(tokens, "tokens")?.ok_or_else(required("tokens"))?;
    metric.input_tokens = whole(input_tokens, "inputTokens")?;
    metric.output_tokens = whole(output_tokens, "outputTokens")?;
    metric.cached_tokens = whole(cached_tokens, "cachedTokens")?;
    metric.success = flag(success, "success")?.ok_or_else(required("success"))?;
    metric.output_parsed =
        flag(output_parsed, "outputParsed")?.ok_or_else(required("outputParsed"))?;
    refill_optional(&mut metric.model, model.as_ref(), "model")?;
    refill_optional(&mut metric.tier, tier.as_ref(), "tier")?;
    refill_optional(&mut metric.error_class, error_class.as_ref(), "errorClass")?;
    Ok(())
}

/// A string field's text, borrowed from the Python string.
fn text<'a>(value: &'a Bound<'_, PyAny>, name: &str) -> PyResult<&'a str> {
    match value.downcast::<PyString>() {
        Ok(s) => s
            .to_str()
            .map_err(|_| invalid(name, "not valid Unicode text (a lone surrogate?)")),
        Err(_) => Err(invalid(
            name,
            format!("must be a string, not {}", type_name(value)),
        )),
    }
}

/// A whole number >= 0 (a bool is refused, though Python counts it an int).
fn whole(value: Option<Bound<'_, PyAny>>, name: &str) -> PyResult<Option<u64>> {
    value
        .map(|v| {
            if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
                return Err(invalid(
                    name,
                    format!("must be a whole number >= 0, not {}", type_name(&v)),
                ));
            }
            v.extract::<u64>()
                .map_err(|_| invalid(name, format!("must be a whole number >= 0, got {v}")))
        })
        .transpose()
}

fn flag(value: Option<Bound<'_, PyAny>>, name: &str) -> PyResult<Option<bool>> {
    value
        .map(|v| match v.downcast::<PyBool>() {
            Ok(b) => Ok(b.is_true()),
            Err(_) => Err(invalid(
                name,
                format!("must be true or false, not {}", type_name(&v)),
            )),
        })
        .transpose()
}

/// Replaces `field`'s text with `value`, keeping its buffer.
fn refill(field: &mut String, value: &str) {
    field.clear();
    field.push_str(value);
}

/// Like [`refill`], for an optional string field given as a Python value (or not at all).
fn refill_optional(
    field: &mut Option<String>,
    value: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<()> {
    match value {
        Some(value) => refill(field.get_or_insert_with(String::new), text(value, name)?),
        None => *field = None,
    }
    Ok(())
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The collector behind `InvocationMetricsCollector`.
#[pyclass(module = "invocation_metrics._native", frozen)]
struct NativeCollector {
    /// `None` once closed.
    inner: Mutex<Option<Arc<InvocationMetricsCollector>>>,
}

impl NativeCollector {
    fn collector(&self) -> PyResult<Arc<InvocationMetricsCollector>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("the collector is closed"))
    }
}

#[pymethods]
impl NativeCollector {
    #[new]
    #[pyo3(signature = (metrics_dir, durability, bucket_width_ms, base_tier))]
    fn new(
        py: Python<'_>,
        metrics_dir: std::path::PathBuf,
        durability: &str,
        bucket_width_ms: i64,
        base_tier: String,
    ) -> PyResult<Self> {
        let durability = match durability {
            "periodic" => Durability::default(),
            "always" => Durability::Always,
            "buffered" => Durability::Buffered,
            other => {
                return Err(PyValueError::new_err(format!(
                    "durability must be 'always', 'periodic' or 'buffered', got {other:?}"
                )));
            }
        };
        let bucket_width_ms = u64::try_from(bucket_width_ms)
            .ok()
            .filter(|w| *w >= 1)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "bucket_width_ms must be at least 1, got {bucket_width_ms}"
                ))
            })?;
        let collector = py
            .allow_threads(|| {
                InvocationMetricsCollector::builder(&metrics_dir)
                    .durability(durability)
                    .bucket_width_ms(bucket_width_ms)
                    .base_tier(base_tier)
                    .open()
            })
            .map_err(to_py)?;
        Ok(Self {
            inner: Mutex::new(Some(Arc::new(collector))),
        })
    }

    /// Validates and records one metric; ValueError naming the field.
    fn record(&self, metric: &Bound<'_, PyAny>) -> PyResult<()> {
        thread_local! {
            /// The last metric converted on this thread, its strings reused for the next.
            static CONVERTED: RefCell<InvocationMetric> =
                RefCell::new(InvocationMetric::blank());
        }
        match metric.downcast::<PyDict>() {
            // A dict's fields are read directly: through JSON, the conversion cost twice
            // what the collector's own work does.
            Ok(dict) => CONVERTED.with(|cell| {
                // Python code can run during a conversion (a `__float__`, a tzinfo's
                // `utcoffset`, a finaliser) and record on this thread again: that inner
                // call converts into a record of its own.
                let mut fresh = None;
                let mut reused = cell.try_borrow_mut().ok();
                let converted = match reused.as_deref_mut() {
                    Some(converted) => converted,
                    None => fresh.insert(InvocationMetric::blank()),
                };
                let recorded = fill_metric_from_dict(dict, converted)
                    .and_then(|()| self.collector()?.record_ref(converted).map_err(to_py));
                // One very long value would otherwise stay allocated for the thread's life.
                if converted.text_capacity() > REUSED_TEXT_BYTES {
                    *converted = InvocationMetric::blank();
                }
                recorded
            }),
            // Any other mapping goes the general way, through the library's line parser.
            Err(_) => {
                let metric = parse_line(&metric_json(metric)?)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?;
                self.collector()?.record(metric).map_err(to_py)
            }
        }
    }

    /// Every record in memory, as a JSON array.
    fn get_all(&self, py: Python<'_>) -> PyResult<String> {
        let collector = self.collector()?;
        py.allow_threads(|| serde_json::to_string(&collector.get_all()))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    fn get_count(&self) -> PyResult<usize> {
        Ok(self.collector()?.get_count())
    }

    /// The aggregate, as JSON.
    fn compute_aggregate(&self, py: Python<'_>) -> PyResult<String> {
        let collector = self.collector()?;
        py.allow_threads(|| serde_json::to_string(&collector.compute_aggregate()))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Loads the file, skipping the first `skip_count` valid records; the report as JSON.
    fn load_from_disk(&self, py: Python<'_>, skip_count: usize) -> PyResult<String> {
        let collector = self.collector()?;
        let report = py
            .allow_threads(|| collector.load_from_disk(skip_count))
            .map_err(to_py)?;
        let problems: Vec<serde_json::Value> = report
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "line": p.line, "reason": p.error.to_string(), "torn_tail": p.torn_tail,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "path": collector.path().display().to_string(),
            "loaded": report.loaded,
            "skipped": report.skipped,
            "duplicates": report.duplicates,
            "malformed": report.malformed,
            "torn_tail": report.torn_tail,
            "missing": report.missing,
            "problems": problems,
        })
        .to_string())
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let collector = self.collector()?;
        py.allow_threads(|| collector.flush()).map_err(to_py)
    }

    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let collector = self.collector()?;
        py.allow_threads(|| collector.sync()).map_err(to_py)
    }

    /// Syncs the file, then saves `state_json` with `metricsCount` in the store at
    /// `checkpoint_dir`; the saved state as JSON.
    fn save_checkpoint(
        &self,
        py: Python<'_>,
        checkpoint_dir: std::path::PathBuf,
        state_json: &str,
    ) -> PyResult<String> {
        let state: CheckpointState = serde_json::from_str(state_json).map_err(|e| {
            PyValueError::new_err(format!("the checkpoint state is not valid: {e}"))
        })?;
        let collector = self.collector()?;
        let saved = py
            .allow_threads(|| {
                let store = CheckpointStore::new(&checkpoint_dir)?;
                collector.checkpoint(&store, state)
            })
            .map_err(to_py)?;
        serde_json::to_string(&saved).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// A new subscription to this collector's records.
    fn subscribe(&self) -> PyResult<NativeSubscription> {
        Ok(NativeSubscription {
            inner: Mutex::new(self.collector()?.subscribe()),
        })
    }

    /// Flushes, stops the writer and releases the lock; every later call fails.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(mut shared) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        py.allow_threads(|| {
            // Another thread still inside a call holds the collector for a moment.
            loop {
                match Arc::try_unwrap(shared) {
                    Ok(collector) => return collector.close(),
                    Err(still_shared) => {
                        shared = still_shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        })
        .map_err(to_py)
    }

    fn is_closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

/// A subscription to a collector's records, read from a Python thread.
#[pyclass(module = "invocation_metrics._native", frozen)]
struct NativeSubscription {
    inner: Mutex<Subscription>,
}

#[pymethods]
impl NativeSubscription {
    /// The next event, waiting without the GIL: `("metric", json)`, `("lagged", n)` when
    /// `n` events were lost to a subscriber that fell behind, or `None` once the collector
    /// is gone. Waits at most `timeout` seconds, then returns `("timeout", 0)`.
    fn next(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<(String, String)>> {
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
        py.allow_threads(|| {
            let mut subscription = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            // Polled, so that the wait can end at the deadline (the bus's blocking receive
            // cannot); the pause grows while nothing comes, to cost nothing when idle.
            let mut pause = Duration::from_micros(20);
            loop {
                match subscription.try_recv() {
                    Ok(FleetEvent::MetricRecorded(metric)) => {
                        pause = Duration::from_micros(20);
                        let _ = pause;
                        let json = serde_json::to_string(&*metric)
                            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
                        return Ok(Some(("metric".to_owned(), json)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Missed(n)) => {
                        return Ok(Some(("lagged".to_owned(), n.to_string())));
                    }
                    Err(RecvError::Closed) => return Ok(None),
                    Err(RecvError::Empty) => {
                        if std::time::Instant::now() >= deadline {
                            return Ok(Some(("timeout".to_owned(), String::new())));
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(10));
                    }
                    Err(_) => return Ok(None),
                }
            }
        })
    }
}

/// The checkpoint store behind `CheckpointStore`.
#[pyclass(module = "invocation_metrics._native", frozen)]
struct NativeCheckpointStore {
    store: CheckpointStore,
}

#[pymethods]
impl NativeCheckpointStore {
    #[new]
    fn new(checkpoint_dir: std::path::PathBuf) -> PyResult<Self> {
        Ok(Self {
            store: CheckpointStore::new(checkpoint_dir).map_err(to_py)?,
        })
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.store.path().to_path_buf()
    }

    fn save(&self, py: Python<'_>, state_json: &str) -> PyResult<()> {
        let state: CheckpointState = serde_json::from_str(state_json).map_err(|e| {
            PyValueError::new_err(format!("the checkpoint state is not valid: {e}"))
        })?;
        py.allow_threads(|| self.store.save(&state)).map_err(to_py)
    }

    fn load(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let state = py.allow_threads(|| self.store.load()).map_err(to_py)?;
        state
            .map(|s| serde_json::to_string(&s).map_err(|e| PyRuntimeError::new_err(e.to_string())))
            .transpose()
    }
}

/// The module `invocation_metrics._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeCollector>()?;
    m.add_class::<NativeSubscription>()?;
    m.add_class::<NativeCheckpointStore>()?;
    let locked = m.py().get_type::<LockedError>();
    // Where Python finds it again (pickling it, as multiprocessing does, imports this).
    locked.setattr("__module__", "invocation_metrics._native")?;
    m.add("LockedError", locked)?;
    Ok(())
}
