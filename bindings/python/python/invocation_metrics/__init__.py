"""Crash-safe per-invocation metrics for multi-agent LLM systems, on a Rust core.

An orchestrator records one metric per agent invocation::

    from invocation_metrics import InvocationMetricsCollector, CheckpointStore

    with InvocationMetricsCollector("run/metrics") as collector:
        collector.record({"invocationId": "p1-t0-a1", "agent": "planner", "phase": 1,
                          "durationMs": 1200, "tokens": 3000, "cost": 0.018, "exitCode": 0,
                          "success": True, "attempt": 1, "outputParsed": True,
                          "timestamp": datetime.now(timezone.utc)})
        collector.save_checkpoint(CheckpointStore("run/checkpoint"), {"completedPhase": 1})
        summary = collector.compute_aggregate()

Every check, every write and the aggregate are the Rust library's; this module converts
values (records cross as JSON) and keeps Python's habits: exceptions, ``len()``, ``with``,
a logger, callbacks on a thread.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from ._native import LockedError, NativeCheckpointStore, NativeCollector

__all__ = [
    "CheckpointStore",
    "InvocationMetricsCollector",
    "LineProblem",
    "LoadReport",
    "LockedError",
    "Subscription",
]

_DEFAULT_LOGGER = logging.getLogger("invocation_metrics")


@dataclass(frozen=True)
class LineProblem:
    """A line of the metrics file that is not a valid record."""

    line: int
    reason: str
    torn_tail: bool


@dataclass(frozen=True)
class LoadReport:
    """What :meth:`InvocationMetricsCollector.load_from_disk` did."""

    path: str
    loaded: int
    skipped: int
    duplicates: int
    malformed: int
    torn_tail: bool
    #: How many more records ``skip_count`` asked to skip than the file holds (0 normally).
    missing: int
    problems: List[LineProblem] = field(default_factory=list)


class Subscription:
    """Calls ``callback(metric)`` once per record, in record order, from a thread of its own.

    A callback that falls far behind loses the oldest events; how many is logged as a
    warning. Exceptions from the callback are logged and do not stop the subscription.
    """

    def __init__(self, native: Any, callback: Callable[[Dict[str, Any]], Any], logger: logging.Logger):
        self._native = native
        self._callback = callback
        self._logger = logger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="invocation-metrics-subscription", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._native.next(0.1)
            if event is None:
                return
            kind, payload = event
            if kind == "metric":
                try:
                    self._callback(json.loads(payload))
                except Exception:  # noqa: BLE001 - a callback's bug must not end the subscription
                    self._logger.exception("an invocation_metrics subscriber raised")
            elif kind == "lagged":
                self._logger.warning("a subscriber fell behind and missed %s record event(s)", payload)

    def close(self, timeout: Optional[float] = None) -> None:
        """Stops the callbacks (those already running finish)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json(value: Mapping[str, Any], what: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
    return json.dumps(dict(value), allow_nan=False, default=_encode)


def _encode(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class InvocationMetricsCollector:
    """Records one metric per agent invocation, in memory and in ``metrics_dir/invocations.jsonl``.

    Opening takes the directory's lock: :class:`LockedError` (an ``OSError``) when another
    collector, in this process or another, holds it. ``durability`` says what
    :meth:`flush` waits for: ``"always"`` (synced), ``"periodic"`` (default; written, synced
    every second) or ``"buffered"`` (written).
    """

    def __init__(
        self,
        metrics_dir: Union[str, "PathLike[str]"],
        logger: Optional[logging.Logger] = None,
        durability: str = "periodic",
        bucket_width_ms: int = 1000,
        base_tier: str = "normal",
    ) -> None:
        self._logger = logger if logger is not None else _DEFAULT_LOGGER
        self._native = NativeCollector(metrics_dir, durability, bucket_width_ms, base_tier)
        # The native method itself, with no Python frame around it: the frame was a tenth of
        # record()'s cost. Not where a subclass overrides record() or a test patched it.
        if type(self).record is _RECORD:
            self.record = self._native.record  # type: ignore[method-assign]

    def record(self, metric: Mapping[str, Any]) -> None:
        """Validates ``metric`` (the seed's camelCase keys) and records it.

        Raises ValueError naming the field on bad input (and records nothing). ``timestamp``
        is an ISO string with an offset or an aware ``datetime``. Never waits for the disk.
        """
        self._native.record(metric)

    def get_all(self) -> List[Dict[str, Any]]:
        """Every record, in record order; optional fields absent when unset."""
        return json.loads(self._native.get_all())

    def get_count(self) -> int:
        """How many records the collector holds: the checkpoint's ``metricsCount``."""
        return self._native.get_count()

    def __len__(self) -> int:
        return self.get_count()

    def load_from_disk(self, skip_count: int = 0) -> LoadReport:
        """Reads the metrics file into memory, skipping its first ``skip_count`` valid records.

        The skipped records' ids stay taken: ``record`` refuses a record repeating one. Each
        damaged line is reported through ``logger.warning`` with its line number.
        """
        if isinstance(skip_count, bool) or not isinstance(skip_count, int) or skip_count < 0:
            raise ValueError(f"skip_count must be a whole number >= 0, got {skip_count!r}")
        raw = json.loads(self._native.load_from_disk(skip_count))
        problems = [LineProblem(p["line"], p["reason"], p["torn_tail"]) for p in raw.pop("problems")]
        report = LoadReport(problems=problems, **raw)
        for problem in problems:
            self._logger.warning("%s:%d: skipped: %s", report.path, problem.line, problem.reason)
        if report.missing:
            self._logger.warning(
                "%s holds %d fewer valid record(s) than skip_count %d: the checkpoint is ahead of the metrics file",
                report.path,
                report.missing,
                skip_count,
            )
        return report

    def compute_aggregate(self) -> Dict[str, Any]:
        """The aggregate: exactly the object ``invmetrics summary --json`` prints."""
        return json.loads(self._native.compute_aggregate())

    def flush(self) -> None:
        """Returns once everything recorded so far is durable per ``durability``."""
        self._native.flush()

    def sync(self) -> None:
        """Returns once everything recorded so far is written and synced, whatever ``durability``."""
        self._native.sync()

    def save_checkpoint(self, store: "CheckpointStore", state: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Syncs the metrics file, then saves ``state`` in ``store`` with ``metricsCount``
        set to the count: the checkpoint never counts records a power cut could take away.
        Returns what was saved."""
        if not isinstance(store, CheckpointStore):
            raise TypeError("store must be a CheckpointStore")
        return json.loads(self._native.save_checkpoint(store.dir, _json(state or {}, "state")))

    def subscribe(self, callback: Callable[[Dict[str, Any]], Any]) -> Subscription:
        """Calls ``callback(metric)`` once per record from now on, in record order, from a
        background thread. Stop it with ``.close()``."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        return Subscription(self._native.subscribe(), callback, self._logger)

    def close(self) -> None:
        """Flushes, stops the writer and releases the lock; later calls raise ValueError."""
        self._native.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.is_closed()

    def __enter__(self) -> "InvocationMetricsCollector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The method record() is, to tell whether an instance may bind the native one directly.
_RECORD = InvocationMetricsCollector.record


class CheckpointStore:
    """Saves and loads ``checkpoint.json`` in a directory (created if missing), atomically."""

    def __init__(self, dir: Union[str, "PathLike[str]"]) -> None:
        self.dir = dir
        self._native = NativeCheckpointStore(dir)

    @property
    def path(self) -> str:
        """The checkpoint file."""
        return str(self._native.path)

    def save(self, state: Mapping[str, Any]) -> None:
        """Replaces the checkpoint: after a crash, :meth:`load` gives the old one or this one."""
        self._native.save(_json(state, "state"))

    def load(self) -> Optional[Dict[str, Any]]:
        """The saved checkpoint, or None when there is none.

        Raises ValueError when the file holds no valid checkpoint (the message names it),
        and OSError (with ``errno``) when it cannot be read.
        """
        saved = self._native.load()
        return None if saved is None else json.loads(saved)
