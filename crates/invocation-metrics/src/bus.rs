//! The event bus: real-time notification of every recorded metric and every write failure.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::record::InvocationMetric;

/// How many events a subscriber may fall behind before it starts missing the oldest ones.
pub const DEFAULT_BUS_CAPACITY: usize = 4096;

/// Something that happened in a collector.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FleetEvent {
    /// A metric was accepted by `record()`. Published in record order.
    MetricRecorded(Arc<InvocationMetric>),
    /// The writer could not append to the metrics file. The records stay in memory and are
    /// retried; [`FleetEvent::WriteRecovered`] follows once they are written.
    WriteFailed {
        /// The metrics file.
        path: PathBuf,
        /// Records waiting to be written.
        pending: u64,
        /// The operating system's error, as text.
        error: String,
    },
    /// Writing works again after a [`FleetEvent::WriteFailed`]; nothing was lost.
    WriteRecovered {
        /// The metrics file.
        path: PathBuf,
    },
}

/// A broadcast bus for [`FleetEvent`]s, cheap to clone; clones share subscribers.
///
/// Publishing never blocks. Each subscriber has a bounded backlog: one that falls behind loses
/// the oldest events and is told how many with [`RecvError::Missed`].
///
/// ```
/// use invocation_metrics::{FleetEvent, FleetEventBus, InvocationMetric};
/// use std::sync::Arc;
///
/// let bus = FleetEventBus::new();
/// let mut events = bus.subscribe();
/// let m = InvocationMetric::new("i", "a", 1, "2026-11-25T10:00:00Z".parse()?);
/// bus.publish(FleetEvent::MetricRecorded(Arc::new(m)));
/// assert!(matches!(events.recv_blocking()?, FleetEvent::MetricRecorded(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FleetEventBus {
    sender: broadcast::Sender<FleetEvent>,
}

impl Default for FleetEventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl FleetEventBus {
    /// A bus whose subscribers may fall [`DEFAULT_BUS_CAPACITY`] events behind.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_BUS_CAPACITY)
    }

    /// A bus whose subscribers may fall `capacity` events behind (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// A new subscriber that receives every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            receiver: self.sender.subscribe(),
        }
    }

    /// Sends `event` to every current subscriber without waiting; returns how many there were.
    pub fn publish(&self, event: FleetEvent) -> usize {
        self.sender.send(event).unwrap_or(0)
    }

    /// Whether anybody is listening (lets publishers skip building events nobody reads).
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }
}

/// Why a subscriber got no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind and this many of the oldest events were dropped for it.
    /// The next receive continues with the oldest event still kept.
    #[error("fell behind and missed {0} event(s)")]
    Missed(u64),
    /// Every bus handle is gone; no more events will come.
    #[error("the event bus is closed")]
    Closed,
    /// Nothing is waiting (only from [`Subscription::try_recv`]).
    #[error("no event is waiting")]
    Empty,
}

/// One subscriber's end of a [`FleetEventBus`].
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<FleetEvent>,
}

impl Subscription {
    /// Waits for the next event, blocking the thread. Do not call it from inside an async
    /// task: use [`recv`](Self::recv) there.
    pub fn recv_blocking(&mut self) -> Result<FleetEvent, RecvError> {
        self.receiver.blocking_recv().map_err(convert)
    }

    /// Waits for the next event without blocking the executor. Works on any async runtime.
    pub async fn recv(&mut self) -> Result<FleetEvent, RecvError> {
        self.receiver.recv().await.map_err(convert)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<FleetEvent, RecvError> {
        self.receiver.try_recv().map_err(|e| match e {
            broadcast::error::TryRecvError::Empty => RecvError::Empty,
            broadcast::error::TryRecvError::Closed => RecvError::Closed,
            broadcast::error::TryRecvError::Lagged(n) => RecvError::Missed(n),
        })
    }
}

fn convert(e: broadcast::error::RecvError) -> RecvError {
    match e {
        broadcast::error::RecvError::Closed => RecvError::Closed,
        broadcast::error::RecvError::Lagged(n) => RecvError::Missed(n),
    }
}
