"""DuckDB's load of a metrics file: every field into a typed in-memory table, the peer of
`InvocationMetricsCollector::load_from_disk`. Prints the seconds the load took.

usage: duckdb_load.py FILE
"""

import sys
import time

import duckdb

con = duckdb.connect()
start = time.perf_counter()
con.execute(
    """
    CREATE TABLE m AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {
        invocationId: 'VARCHAR', agent: 'VARCHAR', phase: 'INTEGER', taskId: 'VARCHAR',
        durationMs: 'BIGINT', tokens: 'BIGINT', inputTokens: 'BIGINT', outputTokens: 'BIGINT',
        cachedTokens: 'BIGINT', cost: 'DOUBLE', exitCode: 'INTEGER', success: 'BOOLEAN',
        attempt: 'INTEGER', outputParsed: 'BOOLEAN', model: 'VARCHAR', tier: 'VARCHAR',
        "timestamp": 'TIMESTAMPTZ', errorClass: 'VARCHAR'})
    """,
    [sys.argv[1]],
)
elapsed = time.perf_counter() - start
rows = con.execute("SELECT count(*) FROM m").fetchone()[0]
print(f"{elapsed:.3f} s for {rows} rows")
