"""The seed's aggregate in DuckDB SQL, for timing against `invmetrics summary` and for
checking that both give the same numbers.

usage: duckdb_aggregate.py FILE BUCKET_MS [OURS.json]
Prints DuckDB's aggregate as JSON; with OURS.json, compares it field by field and exits 1
on any difference.
"""

import json
import sys

import duckdb

path, width = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(
    """
    CREATE TEMP TABLE m AS
    SELECT invocationId, agent, phase, taskId, durationMs, tokens, cachedTokens, cost,
           success, attempt, tier, errorClass,
           epoch_ms(CAST("timestamp" AS TIMESTAMPTZ)) AS start_ms
    FROM read_json(?, format = 'newline_delimited', columns = {
        invocationId: 'VARCHAR', agent: 'VARCHAR', phase: 'INTEGER', taskId: 'VARCHAR',
        durationMs: 'BIGINT', tokens: 'BIGINT', cachedTokens: 'BIGINT', cost: 'DOUBLE',
        success: 'BOOLEAN', attempt: 'INTEGER', tier: 'VARCHAR', errorClass: 'VARCHAR',
        "timestamp": 'VARCHAR'})
    """,
    [path],
)
totals = con.execute(
    """
    SELECT count(*), sum(CASE WHEN attempt > 1 THEN 1 ELSE 0 END), sum(tokens),
           sum(cost), coalesce(sum(cachedTokens), 0), sum(durationMs),
           sum(CASE WHEN tier IS NOT NULL AND tier <> 'normal' THEN 1 ELSE 0 END),
           avg(CASE WHEN success THEN 1.0 ELSE 0.0 END)
    FROM m
    """
).fetchone()
by_agent = con.execute(
    """
    SELECT agent, count(*), sum(CASE WHEN attempt > 1 THEN 1 ELSE 0 END), sum(tokens),
           sum(cost), avg(durationMs)
    FROM m GROUP BY agent ORDER BY agent
    """
).fetchall()
by_phase = con.execute(
    """
    SELECT phase, count(*), sum(CASE WHEN attempt > 1 THEN 1 ELSE 0 END)
    FROM m GROUP BY phase ORDER BY phase
    """
).fetchall()
infra = con.execute(
    """
    SELECT count(*) FROM m r
    WHERE r.attempt > 1 AND r.taskId IS NOT NULL AND EXISTS (
        SELECT 1 FROM m p
        WHERE p.agent = r.agent AND p.phase = r.phase AND p.taskId = r.taskId
          AND p.attempt = r.attempt - 1 AND p.errorClass IS NOT NULL)
    """
).fetchone()[0]
buckets = con.execute(
    """
    WITH changes AS (
        SELECT t, sum(d) AS d FROM (
            SELECT start_ms AS t, 1 AS d FROM m WHERE durationMs > 0
            UNION ALL SELECT start_ms + durationMs, -1 FROM m WHERE durationMs > 0)
        GROUP BY t),
    levels AS (
        SELECT t, sum(d) OVER (ORDER BY t) AS level, lead(t) OVER (ORDER BY t) AS next_t
        FROM changes),
    spans AS (
        SELECT level, unnest(range(t // $w, (next_t - 1) // $w + 1)) AS b
        FROM levels WHERE level > 0 AND next_t IS NOT NULL)
    SELECT b, max(level) FROM spans GROUP BY b ORDER BY b
    """,
    {"w": width},
).fetchall()
first_bucket = con.execute("SELECT min(start_ms) // $w FROM m", {"w": width}).fetchone()[0]

levels = dict(buckets)
last_bucket = max([first_bucket] + list(levels))
duck = {
    "totalInvocations": totals[0],
    "totalRetries": totals[1],
    "totalTokens": totals[2],
    "totalCost": totals[3],
    "totalCachedTokens": totals[4],
    "totalDurationMs": totals[5],
    "escalationCount": totals[6],
    "successRate": totals[7],
    "infraRetries": infra,
    "invocationsByAgent": {a: n for a, n, *_ in by_agent},
    "retriesByAgent": {a: r for a, _, r, *_ in by_agent},
    "tokensByAgent": {a: t for a, _, _, t, *_ in by_agent},
    "costByAgent": {a: c for a, _, _, _, c, _ in by_agent},
    "avgDurationByAgent": {a: d for a, _, _, _, _, d in by_agent},
    "invocationsByPhase": {str(p): n for p, n, _ in by_phase},
    "retriesByPhase": {str(p): r for p, _, r in by_phase},
    "peakParallelInvocations": max(levels.values(), default=0),
    "parallelismOverTime": [levels.get(b, 0) for b in range(first_bucket, last_bucket + 1)],
}

if len(sys.argv) < 4:
    print(json.dumps(duck))
    sys.exit(0)

ours = json.load(open(sys.argv[3]))
ours["parallelismOverTime"] = [b["concurrent"] for b in ours["parallelismOverTime"]]
failures = []
for key, theirs in duck.items():
    mine = ours[key]
    if isinstance(theirs, dict):
        close = theirs.keys() == mine.keys() and all(
            abs(float(theirs[k]) - float(mine[k])) <= 1e-6 * max(1.0, abs(float(theirs[k]))) for k in theirs)
    elif isinstance(theirs, float):
        close = abs(theirs - mine) <= 1e-6 * max(1.0, abs(theirs))
    else:
        close = theirs == mine
    if not close:
        failures.append(f"{key}: duckdb {str(theirs)[:120]} vs ours {str(mine)[:120]}")
for f in failures:
    print("MISMATCH", f)
print(f"checked {len(duck)} aggregate fields against DuckDB: {'all equal' if not failures else f'{len(failures)} differ'}")
sys.exit(1 if failures else 0)
