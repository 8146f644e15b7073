"""The Python package against a plain Python implementation of the seed (seed_collector.py),
side by side in one run:

    ROUNDS=5 python bindings/python/bench/bench.py [records for record()] [records for load]

record() from one thread, then flush; load_from_disk() and compute_aggregate() over the
same file. The two implementations alternate for ROUNDS rounds (default 3), so that the
machine's drift hits both alike; the figures are medians.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from conftest import metric  # noqa: E402
from invocation_metrics import InvocationMetricsCollector  # noqa: E402
from seed_collector import SeedCollector  # noqa: E402

record_count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
load_count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rounds = int(os.environ.get("ROUNDS", "3"))


def timed(action):
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


metrics = [metric(i) for i in range(record_count)]


def record_all(make):
    """Seconds to record every metric, and until they are flushed."""
    with tempfile.TemporaryDirectory() as directory:
        collector = make(directory)
        start = time.perf_counter()
        for m in metrics:
            collector.record(m)
        recorded = time.perf_counter() - start
        collector.flush()
        flushed = time.perf_counter() - start
        collector.close()
    return recorded, flushed


ours_times, seed_times = [], []
for _ in range(rounds):
    ours_times.append(record_all(InvocationMetricsCollector))
    seed_times.append(record_all(SeedCollector))
ours_call, ours_flushed = (statistics.median(t[k] for t in ours_times) for k in (0, 1))
seed_call, seed_flushed = (statistics.median(t[k] for t in seed_times) for k in (0, 1))

rate = lambda s: f"{record_count / s:,.0f}/s"  # noqa: E731
print(f"record(), {record_count:,} calls from one thread, medians of {rounds} alternating rounds:")
print(f"  invocation_metrics  {rate(ours_call)} ({rate(ours_flushed)} until flushed)")
print(f"  plain Python        {rate(seed_call)} ({rate(seed_flushed)} until flushed)")
print(f"  ratio               {seed_call / ours_call:.2f}x ({seed_flushed / ours_flushed:.2f}x until flushed)")
del metrics

with tempfile.TemporaryDirectory() as directory:
    with InvocationMetricsCollector(directory, durability="buffered") as writer:
        for i in range(load_count):
            writer.record(metric(i))
    size = (Path(directory) / "invocations.jsonl").stat().st_size
    print(f"\n{load_count:,} records, {size / 1e6:.0f} MB, medians of {rounds} alternating rounds:")

    times = {"ours": ([], []), "seed": ([], [])}
    for _ in range(rounds):
        for name, make in (("ours", InvocationMetricsCollector), ("seed", SeedCollector)):
            collector = make(directory)
            load, _ = timed(collector.load_from_disk)
            aggregate, result = timed(collector.compute_aggregate)
            collector.close()
            assert result["totalInvocations"] == load_count
            times[name][0].append(load)
            times[name][1].append(aggregate)
            del collector
    (ours_load, ours_aggregate), (seed_load, seed_aggregate) = (
        [statistics.median(t) for t in times[name]] for name in ("ours", "seed")
    )
    print(f"  load_from_disk()    {ours_load:.3f} s vs {seed_load:.3f} s: {seed_load / ours_load:.1f}x")
    print(f"  compute_aggregate() {ours_aggregate:.3f} s vs {seed_aggregate:.3f} s: {seed_aggregate / ours_aggregate:.1f}x")
