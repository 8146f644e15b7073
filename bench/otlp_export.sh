#!/usr/bin/env bash
# Times `invmetrics export otlp` (spans, http/protobuf) against the OpenTelemetry Python SDK
# sending the same spans (bench/otel_python_export.py), both to a receiver that discards
# them (rotel's agent, `--exporter blackhole`), alternating RUNS times (default 3). Ours
# sends RECORDS records (default 1,000,000); the SDK, being slower, the first SDK_RECORDS
# (default 100,000): compared as records per second. Also prints our CPU time (user + sys)
# per record. Installs rotel and the SDK from PyPI into bench/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
SDK_RECORDS=${SDK_RECORDS:-100000}
RUNS=${RUNS:-3}
data=bench/data/run-$RECORDS
file=$data/invocations.jsonl

cargo build --release -q -p invmetrics
bin=target/release/invmetrics
if [ ! -f "$file" ]; then
  "$bin" demo "$data" --records "$RECORDS" --seed 1 --no-report
fi
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
fi
py=bench/.venv/bin/python
"$py" -c 'import rotel, opentelemetry.exporter.otlp.proto.http' 2>/dev/null \
  || bench/.venv/bin/pip install -q rotel==0.0.1a15 opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
agent=$("$py" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$agent" start --exporter blackhole --otlp-http-endpoint "127.0.0.1:$port" \
  --otlp-grpc-endpoint "127.0.0.1:$((port + 1))" > /dev/null 2>&1 &
receiver=$!
trap 'kill $receiver 2>/dev/null' EXIT
until (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
endpoint=http://127.0.0.1:$port

echo "| run | invmetrics: records/s | CPU µs/record | Python SDK: records/s | ratio |"
echo "|---|---|---|---|---|"
for run in $(seq "$RUNS"); do
  ours=$( { /usr/bin/time -f "%e %U %S" "$bin" export otlp "$file" --signals traces \
    --endpoint "$endpoint" > /dev/null; } 2>&1 | tail -1)
  read -r wall user sys <<< "$ours"
  sdk=$("$py" bench/otel_python_export.py "$file" "$endpoint" "$SDK_RECORDS" | awk '{print $4}')
  awk -v n="$RECORDS" -v w="$wall" -v u="$user" -v s="$sys" -v m="$SDK_RECORDS" -v p="$sdk" -v r="$run" \
    'BEGIN {printf "| %d | %.0f | %.2f | %.0f | %.1f× |\n", r, n / w, (u + s) * 1e6 / n, m / p, (n / w) / (m / p)}'
done
