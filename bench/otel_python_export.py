"""The OpenTelemetry Python SDK sending the same spans as `invmetrics export otlp`, for
bench/otlp_export.sh: one span per record, the same name, times, status and attributes,
through a BatchSpanProcessor and the OTLP/HTTP protobuf exporter (the SDK's usual setup).

usage: otel_python_export.py FILE ENDPOINT [LIMIT]
Prints "<records> records in <seconds> s".
"""

import json
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def start_ns(timestamp):
    # RFC 3339 with milliseconds, as the demo writes it ("2026-11-24T09:00:00.705Z").
    from datetime import datetime

    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1e9)


def main():
    path, endpoint = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    provider = TracerProvider(resource=Resource.create({"service.name": "invocation-metrics"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"),
            max_queue_size=10_000_000,  # never drop a span: every one is sent
            max_export_batch_size=512,
        )
    )
    tracer = provider.get_tracer("invocation-metrics")
    started = time.perf_counter()
    n = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if limit is not None and n >= limit:
                break
            r = json.loads(line)
            start = start_ns(r["timestamp"])
            attributes = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": r["agent"],
                "invocation_metrics.invocation_id": r["invocationId"],
                "invocation_metrics.phase": r["phase"],
                "invocation_metrics.attempt": r["attempt"],
                "invocation_metrics.cost_usd": r["cost"],
                "invocation_metrics.exit_code": r["exitCode"],
                "invocation_metrics.output_parsed": r["outputParsed"],
                "invocation_metrics.success": r["success"],
                "invocation_metrics.tokens": r["tokens"],
            }
            for ours, theirs in [
                ("model", "gen_ai.request.model"),
                ("inputTokens", "gen_ai.usage.input_tokens"),
                ("outputTokens", "gen_ai.usage.output_tokens"),
                ("cachedTokens", "gen_ai.usage.cache_read.input_tokens"),
                ("errorClass", "error.type"),
                ("taskId", "invocation_metrics.task_id"),
                ("tier", "invocation_metrics.tier"),
            ]:
                if ours in r:
                    attributes[theirs] = r[ours]
            span = tracer.start_span(
                "invoke_agent " + r["agent"],
                kind=SpanKind.CLIENT,
                start_time=start,
                attributes=attributes,
            )
            if not r["success"]:
                span.set_status(Status(StatusCode.ERROR, f"exit code {r['exitCode']}"))
            span.end(end_time=start + r["durationMs"] * 1_000_000)
            n += 1
    provider.force_flush()
    provider.shutdown()
    print(f"{n} records in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
