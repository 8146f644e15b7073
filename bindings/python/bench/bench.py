"""The Python package against a plain Python implementation of the seed (seed_collector.py),
side by side in one run:

    python bindings/python/bench/bench.py [records for record()] [records for load]

record() from one thread, then flush; load_from_disk() and compute_aggregate() over the
same file.
"""

from __future__ import annotations

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


def timed(action):
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def record_all(collector):
    metrics = [metric(i) for i in range(record_count)]
    start = time.perf_counter()
    for m in metrics:
        collector.record(m)
    recorded = time.perf_counter() - start
    collector.flush()
    return recorded, time.perf_counter() - start


with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as seed_dir:
    ours = InvocationMetricsCollector(ours_dir)
    ours_times = record_all(ours)
    ours.close()
    seed = SeedCollector(seed_dir)
    seed_times = record_all(seed)
    seed.close()

rate = lambda s: f"{record_count / s:,.0f}/s"  # noqa: E731
print(f"record(), {record_count:,} calls from one thread:")
print(f"  invocation_metrics  {rate(ours_times[0])} ({rate(ours_times[1])} until flushed)")
print(f"  plain Python        {rate(seed_times[0])} ({rate(seed_times[1])} until flushed)")
print(f"  ratio               {seed_times[0] / ours_times[0]:.2f}x ({seed_times[1] / ours_times[1]:.2f}x until flushed)")

with tempfile.TemporaryDirectory() as directory:
    with InvocationMetricsCollector(directory, durability="buffered") as writer:
        for i in range(load_count):
            writer.record(metric(i))
    size = (Path(directory) / "invocations.jsonl").stat().st_size
    print(f"\n{load_count:,} records, {size / 1e6:.0f} MB:")

    ours = InvocationMetricsCollector(directory)
    ours_load, _ = timed(ours.load_from_disk)
    ours_aggregate, ours_result = timed(ours.compute_aggregate)
    ours.close()
    seed = SeedCollector(directory)
    seed_load, _ = timed(seed.load_from_disk)
    seed_aggregate, seed_result = timed(seed.compute_aggregate)
    seed.close()
    assert ours_result["totalInvocations"] == seed_result["totalInvocations"] == load_count
    assert ours_result["totalTokens"] == seed_result["totalTokens"]
    print(f"  load_from_disk()    {ours_load:.3f} s vs {seed_load:.3f} s: {seed_load / ours_load:.1f}x")
    print(f"  compute_aggregate() {ours_aggregate:.3f} s vs {seed_aggregate:.3f} s: {seed_aggregate / ours_aggregate:.1f}x")
