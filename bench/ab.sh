#!/usr/bin/env bash
# Times `summary --json --bucket 1h` of two or more builds, alternating, on the spellings
# bench/compare.sh writes: `bash bench/ab.sh OLD_BINARY NEW_BINARY [NAME…]` (default names:
# own many-phases many-agents), ROUNDS rounds (default 3). Prints wall and user seconds and
# peak RSS per run, and checks the builds' outputs are byte-identical.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bash bench/ab.sh OLD_BINARY NEW_BINARY [NAME…]" >&2; exit 2; }
bins=("$1" "$2")
shift 2
if [ $# -gt 0 ]; then names=("$@"); else names=(own many-phases many-agents); fi
dir=bench/data/spellings-1000000
[ -f "$dir/own.jsonl" ] || { echo "run bench/compare.sh first (it writes $dir)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| round | file | build | wall s | user s | peak RSS MB |"
echo "|---|---|---|---|---|---|"
for round in $(seq "${ROUNDS:-3}"); do
  for name in "${names[@]}"; do
    for i in 0 1; do
      t=$( { /usr/bin/time -f "%e %U %M" "${bins[$i]}" summary "$dir/$name.jsonl" --json --bucket 1h \
        > "$out/$name.$i.json"; } 2>&1 | tail -1)
      read -r wall user rss <<< "$t"
      echo "| $round | $name | ${bins[$i]} | $wall | $user | $((rss / 1024)) |"
    done
    cmp -s "$out/$name.0.json" "$out/$name.1.json" || { echo "outputs differ on $name" >&2; exit 1; }
  done
done
