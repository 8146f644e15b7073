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

# The same records as other writers spell them (bench/spellings.py), and folded into many
# groups: `summary` on each, alternating, against the file in our own layout; DuckDB on the
# spellings that keep the seed's field names. The outputs of the same-records group must be
# byte-identical.
spellings=bench/data/spellings-$RECORDS
if [ ! -f "$spellings/many-agents.jsonl" ]; then
  python3 bench/spellings.py "$file" "$spellings"
fi
cp -f "$file" "$spellings/own.jsonl"
names=(own foreign python crlf framework launcher many-phases many-agents)
declare -A stimes dtimes
for _ in $(seq "$RUNS"); do
  for name in "${names[@]}"; do
    out=$( { /usr/bin/time -f "%e" "$bin" summary "$spellings/$name.jsonl" --json --bucket 1h \
      > "$spellings/$name.summary.json"; } 2>&1 | tail -1)
    stimes[$name]="${stimes[$name]:-} $out"
    case $name in own | foreign | python | crlf)
      out=$( { /usr/bin/time -f "%e" "$py" bench/duckdb_aggregate.py "$spellings/$name.jsonl" \
        "$BUCKET_MS" > /dev/null; } 2>&1 | tail -1)
      dtimes[$name]="${dtimes[$name]:-} $out" ;;
    esac
  done
done
for name in foreign python crlf framework launcher; do
  cmp -s "$spellings/own.summary.json" "$spellings/$name.summary.json" \
    || { echo "summary of $name.jsonl differs from own.jsonl's"; exit 1; }
done
own=$(echo "${stimes[own]}" | median)
echo
echo "| spelling | summary median s | × own layout | DuckDB median s | DuckDB ÷ summary |"
echo "|---|---|---|---|---|"
for name in "${names[@]}"; do
  t=$(echo "${stimes[$name]}" | median)
  d="" vs="—"
  if [ -n "${dtimes[$name]:-}" ]; then
    d=$(echo "${dtimes[$name]}" | median)
    vs=$(awk -v a="$d" -v b="$t" 'BEGIN {printf "%.1f", a / b}')
  fi
  echo "| $name | $t | $(awk -v a="$t" -v b="$own" 'BEGIN {printf "%.2f", a / b}') | ${d:-—} | $vs |"
done
