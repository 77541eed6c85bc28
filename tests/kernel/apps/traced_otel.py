"""An application instrumented with the OpenTelemetry SDK (run as its own process).

    python traced_otel.py PORT FORMAT...      FORMAT: w3c | b3 | b3multi

For each FORMAT it starts a parent span "job-FORMAT" and, inside it, one CLIENT span per call:
GET /slow?ms=700, GET /status/500, GET /hello on 127.0.0.1:PORT (one keep-alive connection per
format), injecting the CLIENT span's context with that format's propagator. Prints one JSON
list on stdout: per call {"format", "path", "status", "trace_id", "span_id", "parent_id",
"headers"} with the ids in lowercase hex as the SDK made them.
"""
import http.client
import json
import sys

from opentelemetry import trace
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATORS = {"w3c": TraceContextTextMapPropagator(), "b3": B3SingleFormat(),
               "b3multi": B3MultiFormat()}
PATHS = ("/slow?ms=700", "/status/500", "/hello")


def call(conn: http.client.HTTPConnection, path: str, headers: dict) -> int:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def run_format(tracer, port: int, fmt: str) -> list[dict]:
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with tracer.start_as_current_span(f"job-{fmt}") as parent:
        for path in PATHS:
            with tracer.start_as_current_span(f"GET {path}", kind=SpanKind.CLIENT) as span:
                headers: dict[str, str] = {}
                PROPAGATORS[fmt].inject(headers)
                status = call(conn, path, headers)
                ctx = span.get_span_context()
                out.append({"format": fmt, "path": path, "status": status,
                            "trace_id": format_trace_id(ctx.trace_id),
                            "span_id": format_span_id(ctx.span_id),
                            "parent_id": format_span_id(parent.get_span_context().span_id),
                            "headers": headers})
    conn.close()
    return out


def main() -> None:
    port = int(sys.argv[1])
    tracer = TracerProvider().get_tracer("traced-otel")
    calls = [c for fmt in sys.argv[2:] for c in run_format(tracer, port, fmt)]
    print(json.dumps(calls), flush=True)


if __name__ == "__main__":
    main()
