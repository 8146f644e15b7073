"""The feature request's collector written plainly in Python — a list, one JSON line appended
to the file per record, line-by-line json.loads on load, a straightforward aggregate — for
benchmarking the Rust-backed package against. Not part of the package."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime


class SeedCollector:
    def __init__(self, metrics_dir):
        os.makedirs(metrics_dir, exist_ok=True)
        self.path = os.path.join(metrics_dir, "invocations.jsonl")
        self.metrics = []
        self._file = open(self.path, "a", encoding="utf-8")

    def record(self, metric):
        self.metrics.append(metric)
        self._file.write(json.dumps(metric) + "\n")

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()

    def get_all(self):
        return list(self.metrics)

    def get_count(self):
        return len(self.metrics)

    def load_from_disk(self, skip_count=0):
        valid = 0
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    metric = json.loads(line)
                except ValueError:
                    continue
                if valid >= skip_count:
                    self.metrics.append(metric)
                valid += 1

    def compute_aggregate(self, bucket_width_ms=1000, base_tier="normal"):
        by_agent, by_phase, retries_agent, retries_phase = {}, {}, {}, {}
        tokens_agent, cost_agent, duration_agent = {}, {}, {}
        infra_failed = set()
        totals = dict(retries=0, tokens=0, cost=0.0, cached=0, duration=0, escalations=0, successes=0)
        events = []
        for m in self.metrics:
            agent, phase = m["agent"], m["phase"]
            by_agent[agent] = by_agent.get(agent, 0) + 1
            by_phase[phase] = by_phase.get(phase, 0) + 1
            tokens_agent[agent] = tokens_agent.get(agent, 0) + m["tokens"]
            cost_agent[agent] = cost_agent.get(agent, 0.0) + m["cost"]
            duration_agent[agent] = duration_agent.get(agent, 0) + m["durationMs"]
            retries_agent.setdefault(agent, 0)
            retries_phase.setdefault(phase, 0)
            if m["attempt"] > 1:
                totals["retries"] += 1
                retries_agent[agent] += 1
                retries_phase[phase] += 1
            if m.get("errorClass"):
                infra_failed.add((agent, phase, m.get("taskId"), m["attempt"]))
            totals["tokens"] += m["tokens"]
            totals["cost"] += m["cost"]
            totals["cached"] += m.get("cachedTokens", 0)
            totals["duration"] += m["durationMs"]
            if m.get("tier") is not None and m["tier"] != base_tier:
                totals["escalations"] += 1
            if m["success"]:
                totals["successes"] += 1
            start = int(datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
            events.append((start, 1))
            events.append((start + m["durationMs"], -1))
        infra_retries = sum(
            1
            for m in self.metrics
            if m["attempt"] > 1 and (m["agent"], m["phase"], m.get("taskId"), m["attempt"] - 1) in infra_failed
        )
        events.sort()
        buckets, running, peak = {}, 0, 0
        for t, delta in events:
            running += delta
            peak = max(peak, running)
            bucket = math.floor(t / bucket_width_ms) * bucket_width_ms
            buckets[bucket] = max(buckets.get(bucket, 0), running)
        n = len(self.metrics)
        return {
            "totalInvocations": n,
            "invocationsByAgent": by_agent,
            "invocationsByPhase": by_phase,
            "totalRetries": totals["retries"],
            "retriesByAgent": retries_agent,
            "retriesByPhase": retries_phase,
            "infraRetries": infra_retries,
            "totalTokens": totals["tokens"],
            "totalCost": totals["cost"],
            "totalCachedTokens": totals["cached"],
            "tokensByAgent": tokens_agent,
            "costByAgent": cost_agent,
            "totalDurationMs": totals["duration"],
            "avgDurationByAgent": {a: duration_agent[a] / by_agent[a] for a in by_agent},
            "peakParallelInvocations": peak,
            "parallelismOverTime": [{"bucketStart": b, "concurrent": c} for b, c in sorted(buckets.items())],
            "escalationCount": totals["escalations"],
            "successRate": totals["successes"] / n if n else 0.0,
        }
