"""Shared by the tests: valid metrics and a logger that remembers."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

START = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)


def metric(i: int, **overrides):
    """A valid metric whose fields vary with `i`."""
    record = {
        "invocationId": f"inv-{i}",
        "agent": ["planner", "coder", "reviewer"][i % 3],
        "phase": i % 4 + 1,
        "taskId": f"task-{i // 3}",
        "durationMs": 100 + (i * 37) % 2000,
        "tokens": 1000 + i,
        "inputTokens": 800 + i,
        "outputTokens": 200,
        "cost": 0.001 * (i % 10),
        "exitCode": 1 if i % 5 == 0 else 0,
        "success": i % 5 != 0,
        "attempt": 1,
        "outputParsed": True,
        "model": "model-a",
        "timestamp": (START + timedelta(milliseconds=250 * i)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    record.update(overrides)
    return record


class RecordingHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def logger():
    log = logging.getLogger(f"invocation_metrics.test.{id(object())}")
    handler = RecordingHandler()
    log.addHandler(handler)
    log.propagate = False
    log.handler = handler
    return log
