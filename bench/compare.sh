#!/usr/bin/env bash
# Times `invmetrics summary --json --bucket 1h` against DuckDB computing the same aggregate and
# against jq, on a generated run of RECORDS records (default 1,000,000), alternating the tools
# RUNS times (default 3); prints medians, ratios and peak RSS, and checks DuckDB's numbers
# equal ours. Installs DuckDB from PyPI into bench/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-3}
BUCKET_MS=3600000
data=bench/data/run-$RECORDS
file=$data/invocations.jsonl

cargo build --release -q -p invmetrics
bin=target/release/invmetrics
if [ ! -f "$file" ]; then
  "$bin" demo "$data" --records "$RECORDS" --seed 1 --no-report
fi
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q duckdb
fi
py=bench/.venv/bin/python

declare -A times rss
measure() { # name, command...
  local name=$1; shift
  local out
  out=$( { /usr/bin/time -f "%e %M" "$@" > /dev/null; } 2>&1 | tail -1)
  times[$name]="${times[$name]:-} ${out% *}"
  rss[$name]="${rss[$name]:-} ${out#* }"
}
for _ in $(seq "$RUNS"); do
  measure "wc -l" wc -l "$file"
  measure "invmetrics summary" "$bin" summary "$file" --json --bucket 1h
  measure "duckdb (same aggregate)" "$py" bench/duckdb_aggregate.py "$file" "$BUCKET_MS"
  measure "jq (totals only)" jq -n 'reduce inputs as $r ({n:0,t:0,c:0}; .n+=1 | .t+=$r.tokens | .c+=$r.cost)' "$file"
  measure "jq -s length" jq -s length "$file"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours=$(echo "${times[invmetrics summary]}" | median)
echo "| tool, $(wc -l < "$file") records, $(du -m "$file" | cut -f1) MB | median s | × invmetrics | peak RSS MB |"
echo "|---|---|---|---|"
for name in "invmetrics summary" "wc -l" "duckdb (same aggregate)" "jq (totals only)" "jq -s length"; do
  t=$(echo "${times[$name]}" | median)
  r=$(echo "${rss[$name]}" | median)
  echo "| $name | $t | $(awk -v a="$t" -v b="$ours" 'BEGIN {printf "%.2f", a / b}') | $((r / 1024)) |"
done

"$bin" summary "$file" --json --bucket 1h > bench/data/ours.json
"$py" bench/duckdb_aggregate.py "$file" "$BUCKET_MS" bench/data/ours.json

# The collector's load against DuckDB's load of the same file (every field into a table),
# alternating. The bench binary is built once, by the first run.
echo
echo "| load of the same file | run seconds |"
echo "|---|---|"
for _ in $(seq "$RUNS"); do
  ours_load=$(BENCH_LOAD_DIR="$PWD/$data" cargo bench -q -p invocation-metrics --bench collector -- load 2>/dev/null \
    | awk -F'|' '/load_from_disk/ {print $3}')
  echo "| load_from_disk | $ours_load |"
  echo "| duckdb CREATE TABLE AS read_json | $("$py" bench/duckdb_load.py "$file") |"
done
