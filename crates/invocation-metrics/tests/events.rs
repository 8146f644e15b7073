//! The event bus: one event per record in record order; lagging subscribers are told what
//! they missed; async subscribers work.

mod common;

use invocation_metrics::{FleetEvent, FleetEventBus, InvocationMetricsCollector, RecvError};

#[test]
fn events_arrive_in_record_order() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let mut events = collector.subscribe();
    for i in 0..100 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    for i in 0..100 {
        match events.recv_blocking().unwrap() {
            FleetEvent::MetricRecorded(m) => assert_eq!(m.invocation_id, format!("r{i}")),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(events.try_recv().unwrap_err(), RecvError::Empty);
}

#[test]
fn a_lagging_subscriber_loses_the_oldest_and_is_told_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let bus = FleetEventBus::with_capacity(8);
    let collector = InvocationMetricsCollector::builder(dir.path())
        .event_bus(bus.clone())
        .open()
        .unwrap();
    let mut slow = bus.subscribe();
    for i in 0..20 {
        collector
            .record(common::metric(format!("r{i}"), i))
            .unwrap();
    }
    assert_eq!(slow.recv_blocking().unwrap_err(), RecvError::Missed(12));
    match slow.recv_blocking().unwrap() {
        FleetEvent::MetricRecorded(m) => assert_eq!(m.invocation_id, "r12"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        collector.get_count(),
        20,
        "recording never waited for the subscriber"
    );
}

/// The receiver waits first, parked; the record comes from another task on the same
/// single thread afterwards. A `recv()` that blocked the thread would never let that task
/// run: the watchdog turns the hang into a failure.
#[test]
fn async_subscribers_receive_without_blocking_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let collector = std::sync::Arc::new(InvocationMetricsCollector::open(dir.path()).unwrap());
    let mut events = collector.subscribe();
    let (done, finished) = std::sync::mpsc::channel();
    let recorder = std::sync::Arc::clone(&collector);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let received = runtime.block_on(async move {
            let record_later = tokio::spawn(async move {
                // Let the receiver reach its await and park first.
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                recorder.record(common::metric("async", 1)).unwrap();
            });
            let received = events.recv().await;
            record_later.await.unwrap();
            received
        });
        let _ = done.send(received);
    });
    let received = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("recv() blocked the executor's only thread");
    assert!(matches!(received, Ok(FleetEvent::MetricRecorded(m)) if m.invocation_id == "async"));
}

#[test]
fn closed_bus_ends_subscriptions() {
    let bus = FleetEventBus::new();
    let mut events = bus.subscribe();
    drop(bus);
    assert_eq!(events.recv_blocking().unwrap_err(), RecvError::Closed);
}

#[test]
fn invalid_metrics_are_refused_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let collector = InvocationMetricsCollector::open(dir.path()).unwrap();
    let mut events = collector.subscribe();
    let mut bad = common::metric("bad", 1);
    bad.attempt = 0;
    let err = collector.record(bad).unwrap_err();
    assert!(err.to_string().contains("attempt"), "{err}");
    assert_eq!(collector.get_count(), 0);
    assert_eq!(events.try_recv().unwrap_err(), RecvError::Empty);
    collector.flush().unwrap();
    assert_eq!(std::fs::metadata(collector.path()).unwrap().len(), 0);
}

/// `event_bus()` is the bus the collector publishes on — the one given to the builder — so
/// a component handed the bus sees the collector's records.
#[test]
fn the_collectors_event_bus_is_the_one_it_publishes_on() {
    let dir = tempfile::tempdir().unwrap();
    let shared = FleetEventBus::default();
    let mut from_outside = shared.subscribe();
    let collector = InvocationMetricsCollector::builder(dir.path())
        .event_bus(shared)
        .open()
        .unwrap();
    let mut from_accessor = collector.event_bus().subscribe();
    collector.record(common::metric("r1", 1)).unwrap();
    for events in [&mut from_outside, &mut from_accessor] {
        match events.try_recv() {
            Ok(FleetEvent::MetricRecorded(m)) => assert_eq!(m.invocation_id, "r1"),
            other => panic!("expected the record, got {other:?}"),
        }
    }
}
