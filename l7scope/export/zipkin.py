"""Zipkin exporter: one v2 JSON span per sampled exchange, POSTed to a Zipkin collector.

Theory of operation
-------------------
``export_events`` keeps the sampled exchanges whose trace context Zipkin can join (B3, and
W3C whose 128-bit trace ids and 64-bit span ids Zipkin accepts) and queues them; others are
counted (``skipped_no_context``, ``skipped_unsupported_context``) and not sent. The worker of
the BatchingQueue turns a batch into a JSON list of spans (zipkin2 ``Span`` model) and POSTs
it to ``url`` (Content-Type application/json).

A span uses the captured ids: ``traceId``, ``id`` = the captured span id, ``parentId`` when
the header carried one. ``name`` follows OpenTelemetry's conventions (export.semconv): the
method ("GET"; the agent does not know route templates), gRPC ``package.Service/Method``.
``kind`` is CLIENT or SERVER from the side that observed the call; a SERVER span is marked
``shared`` since it reuses the caller's span id. ``timestamp`` is microseconds since the
epoch and ``duration`` microseconds (at least 1). Each span-attached event
becomes two annotations, "Start <event>" and "Finished <event>"; a value that repeats in one
span gets a "-2", "-3"... suffix. The event tags become span tags prefixed by the direction
("request.data_content"), next to http.method, http.path, http.status_code. Paths are shown
with their secret query parameters redacted (the exporter's Redactor, even when the record
was built without one).
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from l7scope.config import QueueSettings, ZipkinConfig
from l7scope.export import semconv
from l7scope.export.queue import BatchingQueue, http_post, put_with_context
from l7scope.redact import Redactor
from l7scope.sampling import SampledExchange
from l7scope.spanevents import SpanEvent, build_span_events

SUPPORTED_PROVIDERS = ("zipkin", "w3c")
_KIND = {"client": "CLIENT", "server": "SERVER"}



def _carried(trace) -> bool:
    """B3 and W3C contexts with a span id become Zipkin spans."""
    return trace.provider in SUPPORTED_PROVIDERS and trace.span_id is not None

class ZipkinExporter:
    def __init__(self, config: ZipkinConfig, mono_to_wall_ns: Callable[[int], int], *,
                 redactor: Redactor | None = None, flush_interval_s: float = 1.0,
                 backoff_initial_s: float = 0.5):
        self._config = config
        self._mono_to_wall_ns = mono_to_wall_ns
        self._redactor = redactor or Redactor()
        q: QueueSettings = config.queue
        self._queue: BatchingQueue[SampledExchange] = BatchingQueue(
            self._send, name="zipkin", queue_size=q.queue_size, batch_size=q.batch_size,
            flush_interval_s=flush_interval_s, max_retries=q.max_retries,
            backoff_initial_s=backoff_initial_s)
        self._skipped = {"skipped_no_context": 0, "skipped_unsupported_context": 0}

    def start(self) -> None:
        self._queue.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._queue.stop(timeout_s)

    def stats(self) -> dict[str, int]:
        return dict(self._queue.stats(), **self._skipped)

    def export_events(self, sampled: list[SampledExchange]) -> None:
        put_with_context(self._queue, sampled, self._skipped, _carried)

    def _send(self, batch: list[SampledExchange]) -> None:
        spans = [self.to_span(s) for s in batch]
        body = json.dumps(spans, separators=(",", ":")).encode("utf-8")
        http_post(self._config.url, body, "application/json", self._config.queue.timeout_s)

    def to_span(self, sampled: SampledExchange) -> dict:
        """The zipkin2 v2 JSON span of one sampled exchange."""
        ex = sampled.exchange
        trace = ex.trace
        assert trace is not None and trace.span_id is not None
        start_us = self._mono_to_wall_ns(ex.start_ns) // 1000
        span: dict = {"traceId": trace.trace_id, "id": trace.span_id}
        if trace.parent_span_id:
            span["parentId"] = trace.parent_span_id
        if ex.side in _KIND:
            span["kind"] = _KIND[ex.side]
            if ex.side == "server":
                span["shared"] = True
        span["name"] = semconv.span_name(ex)
        span["timestamp"] = start_us
        span["duration"] = max(1, ex.duration_ns // 1000)
        span["localEndpoint"] = _endpoint(ex.local, ex.comm)
        remote = _endpoint(ex.remote, None)
        if remote:
            span["remoteEndpoint"] = remote
        events = build_span_events(sampled, self._mono_to_wall_ns, self._redactor)
        span["annotations"] = _annotations(events)
        span["tags"] = _tags(sampled, events, self._redactor.redact_path)
        return span


def _endpoint(addr: str | None, service: str | None) -> dict:
    ep: dict = {}
    if service:
        ep["serviceName"] = service
    if not addr or ":" not in addr:
        return ep
    host, _, port = addr.rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        ep["ipv4" if ip.version == 4 else "ipv6"] = str(ip)
        if port.isdigit() and 0 < int(port) < 65536:
            ep["port"] = int(port)
    except ValueError:
        pass
    return ep


def _annotations(events: list[SpanEvent]) -> list[dict]:
    seen: dict[str, int] = {}
    out = []
    for ev in events:
        for value, ts_ns in ((f"Start {ev.name}", ev.start_ns_wall),
                             (f"Finished {ev.name}", ev.end_ns_wall)):
            n = seen[value] = seen.get(value, 0) + 1
            out.append({"timestamp": ts_ns // 1000,
                        "value": value if n == 1 else f"{value}-{n}"})
    return out


def _tags(sampled: SampledExchange, events: list[SpanEvent],
          redact_path: Callable[[str], str]) -> dict[str, str]:
    ex = sampled.exchange
    tags = {"l7scope.protocol": ex.protocol, "l7scope.sampling_reason": sampled.reason}
    if ex.method:
        tags["http.method"] = ex.method
    if ex.path is not None:
        tags["http.path"] = redact_path(ex.path)
    if ex.status is not None:
        tags["http.status_code"] = str(ex.status)
    if ex.grpc_status is not None:
        tags["grpc.status_code"] = str(ex.grpc_status)
    if sampled.reason in ("5xx", "grpc_error"):
        tags["error"] = str(ex.status if sampled.reason == "5xx" else ex.grpc_status)
    if ex.pid is not None:
        tags["process.pid"] = str(ex.pid)
    for ev in events:
        direction = ev.tag("data_direction") or ev.name
        for key, value in ev.tags:
            if key in ("data_direction", "trace_provider", "trace_id", "span_id",
                       "segment_id", "sampling_reason"):
                continue
            tags[f"{direction}.{key}"] = value
    return tags
