"""A minimal OTLP/HTTP trace receiver: vLLM's per-request spans as JSON lines, for validate_cpu.py.

vLLM with ``--otlp-traces-endpoint`` (and OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf) exports one
``llm_request`` span per finished request from its API server (vllm/v1/engine/output_processor.py, do_tracing). The
span starts at the request's arrival in the API server and carries its time to first token, end-to-end latency,
waiting-queue and prefill times, and token counts, all on the server's clock: the request as the engine saw it,
without the load client's or HTTP's delays in front of it.

Run it with the vLLM virtualenv's Python (it has opentelemetry-proto; the project's own environment does not):

    python bench/autoscaling/otlp_receiver.py --port PORT --out spans.jsonl

Only the standard library is imported at module level, so that span_records can be tested without OpenTelemetry.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPAN_NAME = "llm_request"
# span attribute (vllm/tracing/utils.py SpanAttributes) -> record field
ATTRIBUTES = {
    "gen_ai.latency.time_to_first_token": "ttft",
    "gen_ai.latency.e2e": "e2e",
    "gen_ai.latency.time_in_queue": "queue",
    "gen_ai.latency.time_in_model_prefill": "prefill",
    "gen_ai.usage.prompt_tokens": "prompt",
    "gen_ai.usage.completion_tokens": "output",
    "gen_ai.request.id": "id",
}


def _value(v: dict[str, Any]) -> float | int | str | bool | None:
    """An OTLP AnyValue in protobuf's JSON mapping (int64 travels as a string)."""
    if "intValue" in v:
        return int(v["intValue"])
    for k in ("doubleValue", "stringValue", "boolValue"):
        if k in v:
            return v[k]  # type: ignore[no-any-return]
    return None


def span_records(export: dict[str, Any]) -> list[dict[str, Any]]:
    """The llm_request spans of an ExportTraceServiceRequest, as protobuf's MessageToDict gives it: one flat record
    each, ``start`` (seconds, wall clock: the request's arrival in the API server) plus the fields of ATTRIBUTES."""
    out = []
    for resource in export.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                if span.get("name") != SPAN_NAME:
                    continue
                rec: dict[str, Any] = {"start": int(span["startTimeUnixNano"]) / 1e9}
                for attr in span.get("attributes", []):
                    if attr.get("key") in ATTRIBUTES:
                        rec[ATTRIBUTES[attr["key"]]] = _value(attr.get("value", {}))
                out.append(rec)
    return out


def serve(port: int, out_path: str) -> None:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    lock = threading.Lock()
    reply = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            records = span_records(MessageToDict(req))
            with lock, open(out_path, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per batch would only add to the shared core's work

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    serve(a.port, a.out)


if __name__ == "__main__":
    main()
