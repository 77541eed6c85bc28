"""Span-attached events: the sampled raw request/response attached to the caller's trace.

Theory of operation
-------------------
For each SampledExchange that carries a trace context, ``build_span_events`` makes up to two
events, "HTTP Request Sampling" and "HTTP Response Sampling" (a message that was not captured
or not seen makes none). Each event spans its message's first to last byte, converted from the
monotonic clock with the ``mono_to_wall_ns`` the pipeline passes, and carries tags that say
what was seen and by whom. The content tag is the rendered body (text/JSON shown, gzip and
deflate inflated with a bound, other data summarised as ``<binary N bytes>``) after redaction
(secret body fields), and the ``http.path`` tag has its secret query parameters redacted;
the exporters (Zipkin, OTLP, SkyWalking) only translate these events to their wire formats.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from l7scope.exchange import Exchange, TraceContext
from l7scope.protocols.message import HttpMessage
from l7scope.redact import Redactor
from l7scope.sampling import SampledExchange

REQUEST_EVENT = "HTTP Request Sampling"
RESPONSE_EVENT = "HTTP Response Sampling"
MAX_CONTENT_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    start_ns_wall: int
    end_ns_wall: int
    tags: tuple[tuple[str, str], ...]
    trace: TraceContext

    def tag(self, key: str) -> str | None:
        for k, v in self.tags:
            if k == key:
                return v
        return None


def build_span_events(sampled: SampledExchange, mono_to_wall_ns: Callable[[int], int],
                      redactor: Redactor | None = None) -> list[SpanEvent]:
    """The span-attached events of one sampled exchange ([] when it has no trace context)."""
    ex = sampled.exchange
    if ex.trace is None:
        return []
    redactor = redactor or Redactor()
    events = []
    settings = sampled.rule.settings
    for name, msg, wanted, limit, direction in (
            (REQUEST_EVENT, ex.request, settings.capture_request,
             settings.max_request_bytes, "request"),
            (RESPONSE_EVENT, ex.response, settings.capture_response,
             settings.max_response_bytes, "response")):
        if msg is None or not wanted:
            continue
        tags = _message_tags(ex, msg, direction, limit, redactor) + _trace_tags(ex.trace)
        events.append(SpanEvent(name, mono_to_wall_ns(msg.start_ns),
                                mono_to_wall_ns(max(msg.end_ns, msg.start_ns)),
                                tags + (("sampling_reason", sampled.reason),), ex.trace))
    return events


def _message_tags(ex: Exchange, msg: HttpMessage, direction: str, limit: int,
                  redactor: Redactor) -> tuple[tuple[str, str], ...]:
    content = redactor.render_body(msg.headers, msg.body, msg.body_len)
    content = _truncate_utf8(content, min(limit, MAX_CONTENT_CHARS))
    tags = [
        ("data_size", str(msg.wire_bytes)),
        ("body_size", str(msg.body_len)),
        ("data_content", content),
        ("data_direction", direction),
        ("data_type", _data_type(ex)),
        ("complete", "true" if msg.complete else "false"),
        ("connection_role", ex.side or "unknown"),
        ("process", f"{ex.comm or '?'}({ex.pid if ex.pid is not None else '?'})"),
    ]
    if ex.pid is not None:
        tags.append(("process_id", str(ex.pid)))
    if msg.is_request:
        tags += [("http.method", msg.method or ""),
                 ("http.path", redactor.redact_path(msg.path or ""))]
    elif msg.status is not None:
        tags.append(("http.status_code", str(msg.status)))
    if ex.grpc_status is not None and not msg.is_request:
        tags.append(("grpc.status_code", str(ex.grpc_status)))
    return tuple(tags)


def _data_type(ex: Exchange) -> str:
    return {"http1": "HTTP", "http2": "HTTP2", "grpc": "gRPC"}.get(ex.protocol, ex.protocol)


def _trace_tags(trace: TraceContext) -> tuple[tuple[str, str], ...]:
    tags = [("trace_provider", trace.provider), ("trace_id", trace.trace_id)]
    if trace.segment_id is not None:
        tags.append(("segment_id", trace.segment_id))
    if trace.span_id is not None:
        tags.append(("span_id", trace.span_id))
    return tuple(tags)


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")
