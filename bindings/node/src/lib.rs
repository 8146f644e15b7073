//! The native half of the `invocation-metrics` npm package: the library's collector and
//! checkpoint store, with values crossing as JSON text.
//!
//! JSON, because it is what the records are: `JSON.stringify` turns a `Date` into its ISO
//! string and leaves optional fields out, the library's line parser names the field a bad
//! value is in, and `JSON.parse` builds the objects `getAll` and `computeAggregate` return
//! faster than property-by-property conversion would. The JavaScript half (`index.js`)
//! keeps the seed's API: promises, the `metric-recorded` event, the logger.
//!
//! Work that touches the disk or every record — loading, flushing, syncing, checkpointing,
//! closing — runs on libuv's thread pool, never on the JavaScript thread.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use invocation_metrics::{
    CheckpointState, CheckpointStore, Durability, InvocationMetricsCollector, LoadReport,
};
use napi::bindgen_prelude::{AsyncTask, Env, Error, External, Result};
use napi::{Status, Task};
use napi_derive::napi;

/// A JavaScript `Error` with the library's message (which names the field, the file, the
/// lock…).
fn error(e: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}

/// The `code` of an error the constructor throws: `ELOCKED` when another collector holds
/// the directory (Python raises `LockedError` then), so that callers need not match on the
/// message; napi's usual `GenericFailure` otherwise.
pub enum OpenFailure {
    /// Another collector holds the directory.
    Locked,
    /// Any other failure to open.
    Other,
}

impl AsRef<str> for OpenFailure {
    fn as_ref(&self) -> &str {
        match self {
            Self::Locked => "ELOCKED",
            Self::Other => Status::GenericFailure.as_ref(),
        }
    }
}

/// The open collector, shared by [`NativeCollector`] and the handle [`record`] takes;
/// `None` once closed.
type Shared = Arc<RwLock<Option<Arc<InvocationMetricsCollector>>>>;

/// The collector behind `InvocationMetricsCollector`.
#[napi]
pub struct NativeCollector {
    inner: Shared,
}

/// Validates and records one metric given as JSON through the collector's
/// [`handle`](NativeCollector::handle); throws naming the field.
///
/// A plain function rather than a method because it is the one call made per record, and
/// a napi-rs class method costs about 0.2 µs more per call than a function given a handle.
#[napi]
pub fn record(handle: &External<Shared>, metric_json: String) -> Result<()> {
    let open = handle.read().unwrap_or_else(|e| e.into_inner());
    let collector = open
        .as_ref()
        .ok_or_else(|| error("the collector is closed"))?;
    collector.record_json(metric_json.as_bytes()).map_err(error)
}

#[napi]
impl NativeCollector {
    /// Opens (and locks) `metrics_dir`. `durability`: "always", "periodic" (default) or
    /// "buffered".
    #[napi(constructor)]
    pub fn new(
        metrics_dir: String,
        durability: Option<String>,
        bucket_width_ms: Option<f64>,
        base_tier: Option<String>,
    ) -> Result<Self, OpenFailure> {
        let failure = |message: String| Error::new(OpenFailure::Other, message);
        let mut builder = InvocationMetricsCollector::builder(&metrics_dir);
        builder = builder.durability(match durability.as_deref() {
            None | Some("periodic") => Durability::default(),
            Some("always") => Durability::Always,
            Some("buffered") => Durability::Buffered,
            Some(other) => {
                return Err(failure(format!(
                    "options.durability must be 'always', 'periodic' or 'buffered', got {other:?}"
                )));
            }
        });
        if let Some(width) = bucket_width_ms {
            if !(width.is_finite() && width >= 1.0 && width.fract() == 0.0) {
                return Err(failure(format!(
                    "options.bucketWidthMs must be a whole number of at least 1, got {width}"
                )));
            }
            builder = builder.bucket_width_ms(width as u64);
        }
        if let Some(tier) = base_tier {
            builder = builder.base_tier(tier);
        }
        let collector = builder.open().map_err(|e| match e {
            invocation_metrics::Error::Locked { .. } => {
                Error::new(OpenFailure::Locked, e.to_string())
            }
            other => failure(other.to_string()),
        })?;
        Ok(Self {
            inner: Arc::new(RwLock::new(Some(Arc::new(collector)))),
        })
    }

    /// The handle [`record`] takes.
    #[napi(ts_return_type = "ExternalObject<unknown>")]
    pub fn handle(&self) -> External<Shared> {
        External::new(Arc::clone(&self.inner))
    }

    fn collector(&self) -> Result<Arc<InvocationMetricsCollector>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| error("the collector is closed"))
    }

    /// Every record in memory, as a JSON array.
    #[napi]
    pub fn get_all(&self) -> Result<String> {
        serde_json::to_string(&self.collector()?.get_all()).map_err(error)
    }

    /// How many records the collector holds.
    #[napi]
    pub fn get_count(&self) -> Result<f64> {
        Ok(self.collector()?.get_count() as f64)
    }

    /// The aggregate, as JSON.
    #[napi]
    pub fn compute_aggregate(&self) -> Result<String> {
        serde_json::to_string(&self.collector()?.compute_aggregate()).map_err(error)
    }

    /// Loads the file, skipping the first `skip_count` valid records; resolves to the
    /// report as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn load_from_disk(&self, skip_count: f64) -> Result<AsyncTask<Load>> {
        if !(skip_count.is_finite() && skip_count >= 0.0 && skip_count.fract() == 0.0) {
            return Err(error(format!(
                "skipCount must be a whole number >= 0, got {skip_count}"
            )));
        }
        Ok(AsyncTask::new(Load {
            collector: self.collector()?,
            skip: skip_count as usize,
        }))
    }

    /// Resolves once everything recorded is written (and synced, per the durability).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush(&self) -> Result<AsyncTask<Flush>> {
        Ok(AsyncTask::new(Flush {
            collector: self.collector()?,
            sync: false,
        }))
    }

    /// Resolves once everything recorded is written and synced, whatever the durability.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn sync(&self) -> Result<AsyncTask<Flush>> {
        Ok(AsyncTask::new(Flush {
            collector: self.collector()?,
            sync: true,
        }))
    }

    /// Syncs the metrics file, then saves `state_json` with `metricsCount` in the store at
    /// `checkpoint_dir`; resolves to the saved state as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn save_checkpoint(
        &self,
        checkpoint_dir: String,
        state_json: String,
    ) -> Result<AsyncTask<Checkpoint>> {
        let state: CheckpointState = serde_json::from_str(&state_json)
            .map_err(|e| error(format!("the checkpoint state is not valid: {e}")))?;
        Ok(AsyncTask::new(Checkpoint {
            collector: self.collector()?,
            checkpoint_dir,
            state: Some(state),
        }))
    }

    /// Flushes, stops the writer and releases the lock; every later call fails.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> Result<AsyncTask<Close>> {
        let collector = self
            .inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| error("the collector is closed"))?;
        Ok(AsyncTask::new(Close {
            collector: Some(collector),
        }))
    }
}

/// `loadFromDisk` on the thread pool.
pub struct Load {
    collector: Arc<InvocationMetricsCollector>,
    skip: usize,
}

impl Task for Load {
    type Output = LoadReport;
    type JsValue = String;

    fn compute(&mut self) -> Result<LoadReport> {
        self.collector.load_from_disk(self.skip).map_err(error)
    }

    fn resolve(&mut self, _: Env, report: LoadReport) -> Result<String> {
        let problems: Vec<serde_json::Value> = report
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "line": p.line,
                    "reason": p.error.to_string(),
                    "tornTail": p.torn_tail,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "path": self.collector.path().display().to_string(),
            "loaded": report.loaded,
            "skipped": report.skipped,
            "duplicates": report.duplicates,
            "malformed": report.malformed,
            "tornTail": report.torn_tail,
            "missing": report.missing,
            "problems": problems,
        })
        .to_string())
    }
}

/// `flush` and `sync` on the thread pool.
pub struct Flush {
    collector: Arc<InvocationMetricsCollector>,
    sync: bool,
}

impl Task for Flush {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match self.sync {
            true => self.collector.sync(),
            false => self.collector.flush(),
        }
        .map_err(error)
    }

    fn resolve(&mut self, _: Env, (): ()) -> Result<()> {
        Ok(())
    }
}

/// `saveCheckpoint` on the thread pool.
pub struct Checkpoint {
    collector: Arc<InvocationMetricsCollector>,
    checkpoint_dir: String,
    state: Option<CheckpointState>,
}

impl Task for Checkpoint {
    type Output = CheckpointState;
    type JsValue = String;

    fn compute(&mut self) -> Result<CheckpointState> {
        let store = CheckpointStore::new(&self.checkpoint_dir).map_err(error)?;
        let state = self.state.take().unwrap_or_default();
        self.collector.checkpoint(&store, state).map_err(error)
    }

    fn resolve(&mut self, _: Env, state: CheckpointState) -> Result<String> {
        serde_json::to_string(&state).map_err(error)
    }
}

/// `close` on the thread pool.
pub struct Close {
    collector: Option<Arc<InvocationMetricsCollector>>,
}

impl Task for Close {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let Some(mut shared) = self.collector.take() else {
            return Ok(());
        };
        // A load or flush still running holds the collector for a moment: wait for it, so
        // that the lock is released when the promise resolves.
        loop {
            match Arc::try_unwrap(shared) {
                Ok(collector) => return collector.close().map_err(error),
                Err(still_shared) => {
                    shared = still_shared;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    fn resolve(&mut self, _: Env, (): ()) -> Result<()> {
        Ok(())
    }
}

/// The checkpoint store behind `CheckpointStore`.
#[napi]
pub struct NativeCheckpointStore {
    store: CheckpointStore,
}

#[napi]
impl NativeCheckpointStore {
    /// A store in `checkpoint_dir` (created if missing).
    #[napi(constructor)]
    pub fn new(checkpoint_dir: String) -> Result<Self> {
        Ok(Self {
            store: CheckpointStore::new(checkpoint_dir).map_err(error)?,
        })
    }

    /// The checkpoint directory's `checkpoint.json`.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.store.path().display().to_string()
    }

    /// Replaces the checkpoint atomically with `state_json`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save(&self, state_json: String) -> Result<AsyncTask<SaveCheckpoint>> {
        let state: CheckpointState = serde_json::from_str(&state_json)
            .map_err(|e| error(format!("the checkpoint state is not valid: {e}")))?;
        Ok(AsyncTask::new(SaveCheckpoint {
            store: self.store.clone(),
            state,
        }))
    }

    /// The saved checkpoint as JSON, or `null` when there is none.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn load(&self) -> AsyncTask<LoadCheckpoint> {
        AsyncTask::new(LoadCheckpoint {
            store: self.store.clone(),
        })
    }
}

/// `CheckpointStore.save` on the thread pool.
pub struct SaveCheckpoint {
    store: CheckpointStore,
    state: CheckpointState,
}

impl Task for SaveCheckpoint {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.store.save(&self.state).map_err(error)
    }

    fn resolve(&mut self, _: Env, (): ()) -> Result<()> {
        Ok(())
    }
}

/// `CheckpointStore.load` on the thread pool.
pub struct LoadCheckpoint {
    store: CheckpointStore,
}

impl Task for LoadCheckpoint {
    type Output = Option<CheckpointState>;
    type JsValue = Option<String>;

    fn compute(&mut self) -> Result<Option<CheckpointState>> {
        self.store.load().map_err(error)
    }

    fn resolve(&mut self, _: Env, state: Option<CheckpointState>) -> Result<Option<String>> {
        state
            .map(|s| serde_json::to_string(&s).map_err(error))
            .transpose()
    }
}
