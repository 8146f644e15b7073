"""The collector's API, method by method, on the real native core."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from conftest import metric
from invocation_metrics import CheckpointStore, InvocationMetricsCollector, LoadReport


def test_records_counts_and_returns_every_record_in_order(tmp_path):
    with InvocationMetricsCollector(tmp_path) as collector:
        for i in range(19):
            collector.record(metric(i))
        full = metric(19, tier="premium", errorClass="rate-limit", cachedTokens=7)
        collector.record(full)
        # After a record with every field, one with only the required ones (None is absent):
        # nothing of the one before may remain in it.
        bare = metric(20, tier=None)
        for key in ("taskId", "inputTokens", "outputTokens", "model"):
            del bare[key]
        collector.record(bare)
        assert collector.get_count() == len(collector) == 21
        records = collector.get_all()
        assert [m["invocationId"] for m in records] == [f"inv-{i}" for i in range(21)]
        assert records[3] == metric(3)
        assert records[19] == full
        assert set(records[20]) == set(bare) - {"tier"}
    assert collector.closed


def test_an_aware_datetime_is_stored_as_its_iso_string_and_a_naive_one_is_refused(tmp_path):
    with InvocationMetricsCollector(tmp_path) as collector:
        collector.record(metric(1, timestamp=datetime(2026, 11, 27, 10, 30, 0, 125000, tzinfo=timezone.utc)))
        assert collector.get_all()[0]["timestamp"] == "2026-11-27T10:30:00.125Z"
        with pytest.raises(ValueError, match="`timestamp`.*naive"):
            collector.record(metric(2, timestamp=datetime(2026, 11, 27, 10, 30)))
        assert len(collector) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("invocationId", ""),
        ("invocationId", 7),
        ("agent", ""),
        ("agent", None),
        ("phase", -1),
        ("phase", 1.5),
        ("durationMs", "5"),
        ("durationMs", float("nan")),
        ("tokens", -3),
        ("inputTokens", "many"),
        ("cachedTokens", -1),
        ("cost", float("inf")),
        ("cost", -0.5),
        ("exitCode", "zero"),
        ("success", "yes"),
        ("attempt", 0),
        ("outputParsed", None),
        ("model", 42),
        ("timestamp", "yesterday"),
        ("timestamp", "2026-11-27T10:00:00"),
        ("errorClass", False),
    ],
)
def test_bad_input_raises_value_error_naming_the_field_and_records_nothing(tmp_path, field, value):
    with InvocationMetricsCollector(tmp_path) as collector:
        with pytest.raises(ValueError, match=f"`{field}`"):
            collector.record(metric(1, **{field: value}))
        assert len(collector) == 0


def test_a_missing_field_an_unwritable_value_and_a_non_mapping_are_refused(tmp_path):
    with InvocationMetricsCollector(tmp_path) as collector:
        record = metric(1)
        del record["agent"]
        with pytest.raises(ValueError, match="`agent`: is missing"):
            collector.record(record)
        # Python code often writes snake_case keys: the error says what to write instead.
        snake = metric(1)
        snake["duration_ms"] = snake.pop("durationMs")
        with pytest.raises(
            ValueError,
            match=r"`durationMs`: is missing \(`duration_ms` is given: field names are camelCase, `durationMs`\)",
        ):
            collector.record(snake)
        with pytest.raises(ValueError, match="`model`"):
            collector.record(metric(1, model=object()))
        with pytest.raises(TypeError, match="mapping"):
            collector.record([("invocationId", "x")])
        collector.record(metric(1))
        with pytest.raises(ValueError, match='`invocationId`: "inv-1" was already recorded'):
            collector.record(metric(1))
        assert len(collector) == 1


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="durability"):
        InvocationMetricsCollector("unused", durability="sometimes")
    for width in (0, -1):
        with pytest.raises(ValueError, match="bucket_width_ms"):
            InvocationMetricsCollector("unused", bucket_width_ms=width)


def test_flush_writes_every_record_as_one_json_object_per_line(tmp_path):
    with InvocationMetricsCollector(tmp_path, durability="always") as collector:
        for i in range(50):
            collector.record(metric(i))
        collector.flush()
        lines = (tmp_path / "invocations.jsonl").read_text().splitlines()
        assert len(lines) == 50
        assert json.loads(lines[49]) == metric(49)
        collector.sync()


def test_a_closed_collector_refuses_every_call(tmp_path):
    collector = InvocationMetricsCollector(tmp_path)
    collector.record(metric(1))
    collector.close()
    for call in (
        lambda: collector.record(metric(2)),
        collector.get_all,
        collector.get_count,
        collector.flush,
        collector.compute_aggregate,
        collector.load_from_disk,
        lambda: collector.subscribe(print),
    ):
        with pytest.raises(ValueError, match="the collector is closed"):
            call()
    collector.close()  # closing twice is harmless


def test_load_from_disk_reports_each_damaged_line_through_the_logger(tmp_path, logger):
    good = [json.dumps(metric(i)) for i in range(1, 4)]
    lines = [good[0], '{"invocationId":"x"', good[1], "not json", good[2], ""]
    (tmp_path / "invocations.jsonl").write_text("\n".join(lines))
    with InvocationMetricsCollector(tmp_path, logger=logger) as collector:
        report = collector.load_from_disk()
        assert isinstance(report, LoadReport)
        assert (report.loaded, report.malformed, report.torn_tail, report.missing) == (3, 2, False, 0)
        assert [p.line for p in report.problems] == [2, 4]
        warnings = [r.getMessage() for r in logger.handler.records]
        assert len(warnings) == 2 and ":2: skipped: " in warnings[0]
        assert [m["invocationId"] for m in collector.get_all()] == ["inv-1", "inv-2", "inv-3"]
        assert collector.load_from_disk(10).missing == 7


def test_subscription_calls_back_once_per_record_in_order_from_a_thread(tmp_path, logger):
    import threading

    seen, threads = [], set()
    done = threading.Event()

    def on_metric(m):
        seen.append(m["invocationId"])
        threads.add(threading.current_thread().name)
        if m["invocationId"] == "inv-2":
            raise RuntimeError("a callback bug")
        if len(seen) == 200:
            done.set()

    with InvocationMetricsCollector(tmp_path, logger=logger) as collector:
        subscription = collector.subscribe(on_metric)
        for i in range(200):
            collector.record(metric(i))
        assert done.wait(30), f"only {len(seen)} callbacks"
        subscription.close()
        collector.record(metric(200))
    assert seen == [f"inv-{i}" for i in range(200)]
    assert threads == {"invocation-metrics-subscription"}
    assert any("raised" in r.getMessage() for r in logger.handler.records)


def test_checkpoint_store_round_trip_and_save_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint")
    assert store.load() is None
    store.save({"phase": 2, "nested": {"x": [1, 2]}})
    assert store.load() == {"phase": 2, "nested": {"x": [1, 2]}}
    with InvocationMetricsCollector(tmp_path / "metrics") as collector:
        for i in range(5):
            collector.record(metric(i))
        saved = collector.save_checkpoint(store, {"completedPhase": 1})
    assert saved == {"metricsCount": 5, "completedPhase": 1}
    assert store.load() == saved
    assert store.path.endswith("checkpoint.json")


def test_self_containing_and_non_unicode_values_are_refused_naming_the_field(tmp_path):
    from types import MappingProxyType

    loop = []
    loop.append(loop)
    with InvocationMetricsCollector(tmp_path) as collector:
        # A mapping that is not a dict is read through JSON, where a cycle would recurse.
        with pytest.raises(ValueError, match="`notes`: nested more than 64 levels"):
            collector.record(MappingProxyType(metric(1, notes=loop)))
        with pytest.raises(ValueError, match="`agent`: not valid Unicode"):
            collector.record(metric(2, agent="coder\udc00"))
        with pytest.raises(ValueError, match="`agent`: not valid Unicode"):
            collector.record(MappingProxyType(metric(2, agent="coder\udc00")))
        assert len(collector) == 0
        # A dict's unknown keys are ignored, as readers ignore unknown fields.
        collector.record(metric(3, notes=loop))
        collector.record(MappingProxyType(metric(4)))
        assert [m["invocationId"] for m in collector.get_all()] == ["inv-3", "inv-4"]


def test_keys_built_at_run_time_and_any_key_order_are_read_alike(tmp_path):
    # Keys from json.loads and from joined text are not the interned literals; a reversed dict
    # gives its keys in another order. Each must read as the literal one does.
    literal = metric(1, tier="premium")
    from_json = json.loads(json.dumps(metric(2, tier="premium")))
    joined = {"".join(list(k)): v for k, v in metric(3, tier="premium").items()}
    reversed_order = dict(reversed(list(metric(4, tier="premium").items())))
    with InvocationMetricsCollector(tmp_path) as collector:
        for m in (literal, from_json, joined, reversed_order):
            collector.record(m)
        assert collector.get_all() == [literal, from_json, joined, reversed_order]


def test_python_code_run_during_a_conversion_may_record_too(tmp_path):
    # A cost given as an object whose __float__ records another metric on the same thread
    # while the first is being converted: both are recorded, the inner one first.
    with InvocationMetricsCollector(tmp_path) as collector:

        class Cost:
            def __float__(self):
                collector.record(metric(99))
                return 0.5

        collector.record(metric(1, cost=Cost()))
        records = collector.get_all()
        assert [m["invocationId"] for m in records] == ["inv-99", "inv-1"]
        assert records[1]["cost"] == 0.5


def test_a_subclass_or_a_patch_of_record_is_honoured(tmp_path):
    from unittest import mock

    seen = []

    class Counting(InvocationMetricsCollector):
        def record(self, metric):
            seen.append(metric["invocationId"])
            super().record(metric)

    with Counting(tmp_path / "sub") as collector:
        collector.record(metric(1))
        assert seen == ["inv-1"] and collector.get_count() == 1

    with mock.patch.object(InvocationMetricsCollector, "record") as patched:
        with InvocationMetricsCollector(tmp_path / "patched") as collector:
            collector.record(metric(2))
            assert patched.call_count == 1 and collector.get_count() == 0


def test_errors_of_the_system_carry_errno_and_file_and_pickle(tmp_path):
    import errno
    import pickle

    from invocation_metrics import LockedError

    # A directory that cannot be created: the matching OSError subclass, with errno.
    with pytest.raises(FileNotFoundError) as missing:
        InvocationMetricsCollector("/proc/no-such-directory/metrics")
    assert missing.value.errno == errno.ENOENT
    assert missing.value.filename == "/proc/no-such-directory/metrics"

    with InvocationMetricsCollector(tmp_path):
        with pytest.raises(LockedError) as locked:
            InvocationMetricsCollector(tmp_path)
    assert isinstance(locked.value, OSError) and locked.value.errno == errno.EWOULDBLOCK
    # multiprocessing pickles exceptions: it must come back as itself.
    again = pickle.loads(pickle.dumps(locked.value))
    assert type(again) is LockedError and str(again) == str(locked.value)


def test_a_corrupt_checkpoint_is_a_value_error_naming_the_file(tmp_path):
    (tmp_path / "checkpoint.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="checkpoint.json"):
        CheckpointStore(tmp_path).load()
