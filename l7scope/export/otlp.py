"""OTLP/HTTP exporter: sampled exchanges as spans, exchange durations as OTLP metrics, both
named by OpenTelemetry's HTTP and RPC semantic conventions.

Theory of operation
-------------------
Two BatchingQueues, one per signal, each POSTing a protobuf request (Content-Type
application/x-protobuf) built with the official opentelemetry-proto messages:

* ``{endpoint}/v1/traces``: ExportTraceServiceRequest. One span per sampled exchange with the
  captured trace id (W3C: 16 bytes; B3 64-bit ids are left-padded with zeros to 16 bytes, as
  the OpenTelemetry B3 propagator does) and span id (8 bytes), kind SERVER/CLIENT from the
  observing side, named and attributed by the conventions (l7scope.export.semconv: ``GET``,
  ``pkg.Service/Method``; http.request.method, url.path and url.query with secret parameters
  redacted, http.response.status_code, server.*, client.address, rpc.*, error.type), status
  ERROR when error.type is set. The span-attached events become span events at their start
  time; their end time is the ``end_time_unix_nano`` attribute. Spans are grouped by observing
  process (resource service.name = comm, process.pid). Only B3 and W3C contexts are exported;
  SkyWalking contexts go to the SkyWalking exporter.
* ``{endpoint}/v1/metrics``: ExportMetricsServiceRequest with CUMULATIVE histograms
  ``http.server.request.duration`` and ``http.client.request.duration`` (unit ``s``, the
  conventions' advisory bucket boundaries). ``ExchangeMetrics`` is fed every exchange by
  ``observe(ex, peer_comm)`` (a pipeline observer) and keeps one series per attribute set:
  http.request.method, http.response.status_code, url.scheme, network.protocol.name/version,
  server.address/port, error.type, rpc.system/service/method and rpc.grpc.status_code for
  gRPC, and the service names ``l7scope.client``/``l7scope.server`` (command names, never
  pids). Series are bounded (``max_series``); exchanges past the bound go to one series with
  ``otel.metric.overflow=true`` (the SDK's convention) and are counted. Records from packet
  captures (no side) count as server records. ``export_metrics`` (each metrics interval)
  freezes every series and queues the frozen points; the worker only serialises them.
  Until anything calls ``observe``, the interval's PairMetrics are exported instead, by the
  same names and units (DELTA, without method or status attributes).
* TCP health: ``tcp_metrics(records)`` adds the interval's ``tcp_metrics`` records (deltas,
  tcpmetrics.py) to CUMULATIVE monotonic sums ``l7scope.tcp.*`` and histograms
  ``l7scope.tcp.connect.duration`` and ``l7scope.tcp.rtt`` (unit ``s``), attributed
  ``l7scope.client``/``l7scope.server`` (and ``l7scope.reason`` for failures and drops), with
  their own ``max_series`` bound and overflow series; they go out with the next
  ``export_metrics``.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from l7scope.config import OtlpConfig
from l7scope.exchange import Exchange
from l7scope.export import semconv
from l7scope.export.queue import BatchingQueue, http_post, put_with_context
from l7scope.metrics import pair_of
from l7scope.metrics_types import Histogram, PairMetrics
from l7scope.redact import Redactor
from l7scope.sampling import SampledExchange
from l7scope.spanevents import build_span_events

SUPPORTED_PROVIDERS = ("zipkin", "w3c")
SCOPE = InstrumentationScope(name="l7scope", version="0.1.0")
_KIND = {"server": trace_pb2.Span.SPAN_KIND_SERVER, "client": trace_pb2.Span.SPAN_KIND_CLIENT}
_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
SERVER_DURATION = "http.server.request.duration"
CLIENT_DURATION = "http.client.request.duration"
DESCRIPTIONS = {SERVER_DURATION: "Duration of HTTP server requests.",
                CLIENT_DURATION: "Duration of HTTP client requests."}
# The conventions' advisory explicit bucket boundaries for the request durations, in seconds.
SECONDS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                  10.0)
OVERFLOW_ATTRS = (("otel.metric.overflow", True),)
_PID_SUFFIX = re.compile(r"\(\d+\)$")

Attrs = tuple[tuple[str, "str | int | bool"], ...]


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_id_bytes(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.rjust(32, "0"))


def _carried(trace) -> bool:
    """B3 and W3C contexts with a span id become OTLP spans."""
    return trace.provider in SUPPORTED_PROVIDERS and trace.span_id is not None


def _service(comm: str | None, pid: int | None) -> str:
    return comm or "?"


def exchange_attributes(ex: Exchange, peer_comm: str | None = None, names=_service) -> Attrs:
    """The metric attribute set of one exchange (no pids, nothing with unbounded text)."""
    client, server, _, _ = pair_of(ex, peer_comm, names)
    attrs: list = [("http.request.method", semconv.method(ex))]
    if ex.status is not None:
        attrs.append(("http.response.status_code", ex.status))
    attrs += [("url.scheme", "https" if ex.tls else "http"), ("network.protocol.name", "http")]
    version = semconv.protocol_version(ex)
    if version:
        attrs.append(("network.protocol.version", version))
    address, port = semconv.server_endpoint(ex)
    attrs += [("server.address", address)] if address else []
    attrs += [("server.port", port)] if port else []
    attrs += _rpc_attributes(ex)
    error = semconv.error_type(ex)
    attrs += [("error.type", error)] if error else []
    return tuple(attrs) + (("l7scope.client", client), ("l7scope.server", server))


def _rpc_attributes(ex: Exchange) -> list:
    if ex.protocol != "grpc":
        return []
    attrs: list = [("rpc.system", "grpc")]
    route = semconv.grpc_route(ex)
    if route is not None:
        attrs += [("rpc.service", route[0]), ("rpc.method", route[1])]
    if ex.grpc_status is not None:
        attrs.append(("rpc.grpc.status_code", ex.grpc_status))
    return attrs


class MetricPoint(NamedTuple):
    """One frozen histogram data point (seconds)."""

    metric: str
    attrs: Attrs
    start_ns: int
    time_ns: int
    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int
    min: float | None
    max: float | None
    temporality: int = _CUMULATIVE


@dataclass(slots=True)
class _Series:
    start_ns: int
    last_ns: int
    counts: list
    sum: float = 0.0
    count: int = 0
    min: float = float("inf")
    max: float = float("-inf")

    def observe(self, seconds: float, index: int, end_ns: int) -> None:
        self.counts[index] += 1
        self.sum += seconds
        self.count += 1
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)
        self.last_ns = max(self.last_ns, end_ns)


class ExchangeMetrics:
    """Cumulative duration histograms per (metric, attribute set), at most ``max_series``."""

    def __init__(self, mono_to_wall_ns: Callable[[int], int], max_series: int = 2000,
                 names=_service):
        self._to_wall = mono_to_wall_ns
        self._names = names  # (comm, pid) -> a local process's name (metrics.service_names)
        self.max_series = max_series
        self.overflow_records = 0
        self.observed = 0
        self._series: dict[tuple[str, Attrs], _Series] = {}

    def observe(self, ex: Exchange, peer_comm: str | None = None) -> None:
        self.observed += 1
        metric = CLIENT_DURATION if ex.side == "client" else SERVER_DURATION
        key = (metric, exchange_attributes(ex, peer_comm, self._names))
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= self.max_series:
                self.overflow_records += 1
                key = (metric, OVERFLOW_ATTRS)
                series = self._series.get(key)
            if series is None:
                start = self._to_wall(ex.start_ns)
                series = self._series[key] = _Series(start, start, [0] * (len(SECONDS_BOUNDS) + 1))
        seconds = ex.duration_ns / 1e9
        series.observe(seconds, _bucket(seconds), self._to_wall(ex.end_ns))

    def points(self, now_wall_ns: int | None = None) -> tuple[MetricPoint, ...]:
        """Every series as it stands (cumulative since its first exchange)."""
        out = []
        for (metric, attrs), s in self._series.items():
            time_ns = max(s.last_ns, now_wall_ns or 0)
            out.append(MetricPoint(metric, attrs, s.start_ns, time_ns, SECONDS_BOUNDS,
                                   tuple(s.counts), s.sum, s.count, s.min, s.max))
        return tuple(out)


def _bucket(seconds: float) -> int:
    """Index of the bucket (bounds[i-1], bounds[i]] holding ``seconds`` (OTLP: upper
    bounds inclusive); the last index is the overflow bucket."""
    for i, bound in enumerate(SECONDS_BOUNDS):
        if seconds <= bound:
            return i
    return len(SECONDS_BOUNDS)


def pair_points(pm: PairMetrics) -> list[MetricPoint]:
    """The fallback: a PairMetrics interval as DELTA points by the same names, in seconds."""
    version = "2" if pm.protocol in ("http2", "grpc") else None
    attrs: list = [("network.protocol.name", "http")]
    attrs += [("network.protocol.version", version)] if version else []
    attrs += [("rpc.system", "grpc")] if pm.protocol == "grpc" else []
    attrs += [("l7scope.client", _PID_SUFFIX.sub("", pm.client)),
              ("l7scope.server", _PID_SUFFIX.sub("", pm.server))]
    out = []
    for metric, hist in ((SERVER_DURATION, pm.server_duration_ms),
                         (CLIENT_DURATION, pm.client_duration_ms)):
        if hist.count:
            out.append(_ms_point(metric, tuple(attrs), hist, pm))
    return out


def _ms_point(metric: str, attrs: Attrs, hist: Histogram, pm: PairMetrics) -> MetricPoint:
    return MetricPoint(metric, attrs, pm.interval_start_ns, pm.interval_end_ns,
                       tuple(b / 1000 for b in hist.bounds), hist.counts, hist.sum / 1000,
                       hist.count, None, None, _DELTA)


class SumPoint(NamedTuple):
    """One frozen monotonic cumulative sum data point."""

    metric: str
    attrs: Attrs
    start_ns: int
    time_ns: int
    value: int


# (metric, record field, unit, description); a dict field is counted by key as l7scope.reason.
TCP_SUMS = (
    ("l7scope.tcp.connects", "connects", "{connection}",
     "TCP connections established by the client."),
    ("l7scope.tcp.accepts", "accepts", "{connection}",
     "TCP connections accepted by a traced server socket."),
    ("l7scope.tcp.connect_failures", "connect_failures_by_reason", "{connection}",
     "TCP connects never established, by reason (refused, timed_out, aborted)."),
    ("l7scope.tcp.sent", "bytes_sent", "By", "Payload bytes sent client -> server."),
    ("l7scope.tcp.received", "bytes_received", "By", "Payload bytes sent server -> client."),
    ("l7scope.tcp.retransmits", "retransmits", "{segment}",
     "TCP segments retransmitted by either end."),
    ("l7scope.tcp.resets_sent", "resets_sent", "{reset}", "TCP resets the client sent."),
    ("l7scope.tcp.resets_received", "resets_received", "{reset}",
     "TCP resets the client received."),
    ("l7scope.tcp.drops", "drops", "{packet}",
     "Packets of the pair's sockets the kernel dropped, by skb drop reason."),
)
# (metric, record field, the record's units per second, description)
TCP_HISTOGRAMS = (
    ("l7scope.tcp.connect.duration", "connect_ms", 1e3,
     "TCP connect latency (SYN_SENT to ESTABLISHED), client side."),
    ("l7scope.tcp.rtt", "rtt_us", 1e6,
     "The kernel's smoothed TCP RTT, one sample per socket when it closes."),
)
UNITS = {m: u for m, _, u, _ in TCP_SUMS} | {m: "s" for m, *_ in TCP_HISTOGRAMS}
DESCRIPTIONS.update({m: d for m, _, _, d in TCP_SUMS})
DESCRIPTIONS.update({m: d for m, _, _, d in TCP_HISTOGRAMS})


class TcpPairMetrics:
    """Cumulative TCP health per (metric, attribute set) from tcp_metrics records, at most
    ``max_series``; records past the bound go to the overflow series and are counted."""

    def __init__(self, max_series: int = 2000):
        self.max_series = max_series
        self.overflow_records = 0
        self._sums: dict[tuple[str, Attrs], list] = {}  # [start_ns, time_ns, value]
        self._hists: dict[tuple[str, Attrs], list] = {}  # [start, time, bounds, counts, sum, n]
        self._overflowed = False

    def _key(self, table: dict, metric: str, attrs: Attrs) -> tuple[str, Attrs]:
        key = (metric, attrs)
        if key in table or len(self._sums) + len(self._hists) < self.max_series:
            return key
        self._overflowed = True
        return metric, OVERFLOW_ATTRS

    def add(self, r: dict) -> None:
        pair = (("l7scope.client", str(r.get("client") or "?")),
                ("l7scope.server", str(r.get("server") or "?")))
        start, end = int(r.get("interval_start_ns") or 0), int(r.get("interval_end_ns") or 0)
        for metric, field, _, _ in TCP_SUMS:
            value = r.get(field)
            for reason, n in value.items() if isinstance(value, dict) else [(None, value)]:
                if isinstance(n, int) and n > 0:
                    attrs = pair if reason is None else (*pair, ("l7scope.reason", str(reason)))
                    s = self._sums.setdefault(self._key(self._sums, metric, attrs),
                                              [start, end, 0])
                    s[1], s[2] = max(s[1], end), s[2] + n
        for metric, field, per_second, _ in TCP_HISTOGRAMS:
            self._add_hist(metric, pair, r.get(field), per_second, start, end)
        if self._overflowed:
            self._overflowed = False
            self.overflow_records += 1

    def _add_hist(self, metric, pair, hist, per_second, start, end) -> None:
        if not isinstance(hist, dict) or not hist.get("count"):
            return
        bounds = tuple(b / per_second for b in hist["bounds"])
        h = self._hists.setdefault(self._key(self._hists, metric, pair),
                                   [start, end, bounds, [0] * (len(bounds) + 1), 0.0, 0])
        if h[2] != bounds or len(hist["counts"]) != len(h[3]):
            return  # another bucket layout: not addable (never from one aggregator)
        h[1] = max(h[1], end)
        h[3] = [a + b for a, b in zip(h[3], hist["counts"])]
        h[4] += hist["sum"] / per_second
        h[5] += hist["count"]

    def points(self) -> tuple:
        out: list = [SumPoint(m, a, s[0], s[1], s[2]) for (m, a), s in self._sums.items()]
        out += [MetricPoint(m, a, h[0], h[1], h[2], tuple(h[3]), h[4], h[5], None, None)
                for (m, a), h in self._hists.items()]
        return tuple(out)


class OtlpExporter:
    def __init__(self, config: OtlpConfig, mono_to_wall_ns: Callable[[int], int], *,
                 service_name: str = "l7scope", redactor: Redactor | None = None,
                 flush_interval_s: float = 1.0, backoff_initial_s: float = 0.5,
                 max_series: int = 2000, names=_service):
        self._endpoint = config.endpoint.rstrip("/")
        self._timeout_s = config.queue.timeout_s
        self._mono_to_wall_ns = mono_to_wall_ns
        self._service_name = service_name
        self._redactor = redactor or Redactor()
        self.exchange_metrics = ExchangeMetrics(mono_to_wall_ns, max_series, names)
        q = config.queue
        common = dict(queue_size=q.queue_size, batch_size=q.batch_size,
                      flush_interval_s=flush_interval_s, max_retries=q.max_retries,
                      backoff_initial_s=backoff_initial_s)
        self._spans: BatchingQueue[SampledExchange] = BatchingQueue(
            self._send_spans, name="otlp-traces", **common)
        self._metrics: BatchingQueue[tuple[MetricPoint, ...]] = BatchingQueue(
            self._send_metrics, name="otlp-metrics", **common)
        self._skipped = {"skipped_no_context": 0, "skipped_unsupported_context": 0}
        self.tcp = TcpPairMetrics(max_series)  # fed by tcp_metrics(), sent by export_metrics()

    def start(self) -> None:
        self._spans.start()
        self._metrics.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._spans.stop(timeout_s / 2)
        self._metrics.stop(timeout_s / 2)

    def stats(self) -> dict[str, int]:
        out = dict(self._skipped)
        for prefix, q in (("traces_", self._spans), ("metrics_", self._metrics)):
            out.update({prefix + k: v for k, v in q.stats().items()})
        out["metrics_series_overflow_records"] = self.exchange_metrics.overflow_records
        out["metrics_tcp_series_overflow_records"] = self.tcp.overflow_records
        return out

    def observe(self, ex: Exchange, peer_comm: str | None = None) -> None:
        """A pipeline observer: every exchange feeds the duration histograms."""
        self.exchange_metrics.observe(ex, peer_comm)

    def tcp_metrics(self, records: list[dict]) -> None:
        """The interval's ``tcp_metrics`` records, sent with the next ``export_metrics``."""
        for r in records:
            self.tcp.add(r)

    def export_events(self, sampled: list[SampledExchange]) -> None:
        put_with_context(self._spans, sampled, self._skipped, _carried)

    def export_metrics(self, metrics: list[PairMetrics]) -> None:
        """Called once per metrics interval: queues the interval's frozen points (the
        exchange histograms; the pair metrics while nothing feeds ``observe``)."""
        if self.exchange_metrics.observed:
            now = max((pm.interval_end_ns for pm in metrics), default=None)
            points = self.exchange_metrics.points(now)
        else:
            points = tuple(p for pm in metrics for p in pair_points(pm))
        points += self.tcp.points()
        if points:
            self._metrics.put(points)

    # --- traces --------------------------------------------------------------------------

    def _send_spans(self, batch: list[SampledExchange]) -> None:
        body = self.trace_request(batch).SerializeToString()
        http_post(self._endpoint + "/v1/traces", body, "application/x-protobuf", self._timeout_s)

    def trace_request(self, batch: list[SampledExchange]) -> ExportTraceServiceRequest:
        by_process: dict[tuple, list[trace_pb2.Span]] = {}
        for s in batch:
            ex = s.exchange
            by_process.setdefault((ex.comm, ex.pid), []).append(self.to_span(s))
        request = ExportTraceServiceRequest()
        for (comm, pid), spans in by_process.items():
            attrs = [_kv("service.name", comm or self._service_name)]
            if pid is not None:
                attrs.append(_kv("process.pid", pid))
            request.resource_spans.add(
                resource=Resource(attributes=attrs),
                scope_spans=[trace_pb2.ScopeSpans(scope=SCOPE, spans=spans)])
        return request

    def to_span(self, sampled: SampledExchange) -> trace_pb2.Span:
        ex = sampled.exchange
        trace = ex.trace
        assert trace is not None and trace.span_id is not None
        span = trace_pb2.Span(
            trace_id=trace_id_bytes(trace.trace_id), span_id=bytes.fromhex(trace.span_id),
            name=semconv.span_name(ex),
            kind=_KIND.get(ex.side or "", trace_pb2.Span.SPAN_KIND_UNSPECIFIED),
            start_time_unix_nano=self._mono_to_wall_ns(ex.start_ns),
            end_time_unix_nano=self._mono_to_wall_ns(max(ex.end_ns, ex.start_ns)))
        if trace.parent_span_id:
            span.parent_span_id = bytes.fromhex(trace.parent_span_id)
        if trace.sampled is not None:
            span.flags = 1 if trace.sampled else 0  # W3C trace-flags in bits 0-7: sampled
        for key, value in dict(trace.extra).items():
            if key == "tracestate":
                span.trace_state = value
        span.attributes.extend(_kv(k, v) for k, v in self.span_attributes(sampled))
        if semconv.error_type(ex) is not None:
            span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        for ev in build_span_events(sampled, self._mono_to_wall_ns, self._redactor):
            attrs = [_kv(k, v) for k, v in ev.tags] + [_kv("end_time_unix_nano", ev.end_ns_wall)]
            span.events.add(time_unix_nano=ev.start_ns_wall, name=ev.name, attributes=attrs)
        return span

    def span_attributes(self, sampled: SampledExchange) -> list[tuple[str, str | int]]:
        ex = sampled.exchange
        attrs: list = [("http.request.method", semconv.method(ex))]
        if ex.method and attrs[0][1] == semconv.OTHER_METHOD:
            attrs.append(("http.request.method_original", ex.method[:64]))
        if ex.path is not None:
            path, _, query = self._redactor.redact_path(ex.path).split("#", 1)[0].partition("?")
            attrs += [("url.path", path)] + ([("url.query", query)] if query else [])
        attrs.append(("url.scheme", "https" if ex.tls else "http"))
        if ex.status is not None:
            attrs.append(("http.response.status_code", ex.status))
        attrs.append(("network.protocol.name", "http"))
        version = semconv.protocol_version(ex)
        attrs += [("network.protocol.version", version)] if version else []
        address, port = semconv.server_endpoint(ex)
        attrs += [("server.address", address)] if address else []
        attrs += [("server.port", port)] if port else []
        client = semconv.client_address(ex)
        attrs += [("client.address", client)] if client else []
        attrs += _rpc_attributes(ex)
        error = semconv.error_type(ex)
        attrs += [("error.type", error)] if error else []
        return attrs + [("l7scope.protocol", ex.protocol),
                        ("l7scope.sampling_reason", sampled.reason)]

    # --- metrics -------------------------------------------------------------------------

    def _send_metrics(self, batch: list[tuple[MetricPoint, ...]]) -> None:
        body = self.metrics_request([p for points in batch for p in points]).SerializeToString()
        http_post(self._endpoint + "/v1/metrics", body, "application/x-protobuf",
                  self._timeout_s)

    def metrics_request(self, points: list) -> ExportMetricsServiceRequest:
        metrics: dict[str, metrics_pb2.Metric] = {}
        for p in points:
            metric = metrics.get(p.metric)
            if metric is None:
                metric = metrics[p.metric] = metrics_pb2.Metric(
                    name=p.metric, unit=UNITS.get(p.metric, "s"),
                    description=DESCRIPTIONS[p.metric])
                if isinstance(p, SumPoint):
                    metric.sum.aggregation_temporality = _CUMULATIVE
                    metric.sum.is_monotonic = True
                else:
                    metric.histogram.aggregation_temporality = p.temporality
            if isinstance(p, SumPoint):
                metric.sum.data_points.add(
                    attributes=[_kv(k, v) for k, v in p.attrs], as_int=p.value,
                    start_time_unix_nano=p.start_ns, time_unix_nano=p.time_ns)
            else:
                metric.histogram.data_points.append(_histogram_point(p))
        request = ExportMetricsServiceRequest()
        request.resource_metrics.add(
            resource=Resource(attributes=[_kv("service.name", self._service_name)]),
            scope_metrics=[metrics_pb2.ScopeMetrics(scope=SCOPE, metrics=list(metrics.values()))])
        return request


def _histogram_point(p: MetricPoint) -> metrics_pb2.HistogramDataPoint:
    point = metrics_pb2.HistogramDataPoint(
        attributes=[_kv(k, v) for k, v in p.attrs], count=p.count, sum=p.sum,
        bucket_counts=list(p.counts), explicit_bounds=list(p.bounds),
        start_time_unix_nano=p.start_ns, time_unix_nano=p.time_ns)
    if p.min is not None and p.count:
        point.min, point.max = p.min, p.max
    return point
