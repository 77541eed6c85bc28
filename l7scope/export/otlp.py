"""OTLP/HTTP exporter: sampled exchanges as spans with events, pair metrics as OTLP metrics.

Theory of operation
-------------------
Two BatchingQueues, one per signal, each POSTing a protobuf request (Content-Type
application/x-protobuf) built with the official opentelemetry-proto messages:

* ``{endpoint}/v1/traces``: ExportTraceServiceRequest. One span per sampled exchange with the
  captured trace id (W3C: 16 bytes; B3 64-bit ids are left-padded with zeros to 16 bytes, as
  the OpenTelemetry B3 propagator does) and span id (8 bytes), kind SERVER/CLIENT from the
  observing side, status ERROR for 5xx and failed gRPC calls. The span-attached events become
  span events at their start time; their end time is the ``end_time_unix_nano`` attribute.
  Spans are grouped by observing process (resource service.name = comm, process.pid).
  Only B3 and W3C contexts are exported; SkyWalking contexts go to the SkyWalking exporter.
* ``{endpoint}/v1/metrics``: ExportMetricsServiceRequest with DELTA temporality (each
  PairMetrics covers one interval): sums ``l7scope.requests`` and ``l7scope.responses``
  (+ status), histograms ``l7scope.request.size``/``l7scope.response.size`` (By) and
  ``l7scope.client.duration``/``l7scope.server.duration`` (ms) with explicit bounds; attributes
  client, server, protocol.
"""
from __future__ import annotations

from collections.abc import Callable

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from l7scope.config import OtlpConfig
from l7scope.export.queue import BatchingQueue, http_post, put_with_context
from l7scope.export.zipkin import span_name
from l7scope.metrics_types import Histogram, PairMetrics
from l7scope.redact import Redactor
from l7scope.sampling import SampledExchange
from l7scope.spanevents import build_span_events

SUPPORTED_PROVIDERS = ("zipkin", "w3c")
SCOPE = InstrumentationScope(name="l7scope", version="0.1.0")
_KIND = {"server": trace_pb2.Span.SPAN_KIND_SERVER, "client": trace_pb2.Span.SPAN_KIND_CLIENT}
_DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_id_bytes(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.rjust(32, "0"))



def _carried(trace) -> bool:
    """B3 and W3C contexts with a span id become OTLP spans."""
    return trace.provider in SUPPORTED_PROVIDERS and trace.span_id is not None

class OtlpExporter:
    def __init__(self, config: OtlpConfig, mono_to_wall_ns: Callable[[int], int], *,
                 service_name: str = "l7scope", redactor: Redactor | None = None,
                 flush_interval_s: float = 1.0, backoff_initial_s: float = 0.5):
        self._endpoint = config.endpoint.rstrip("/")
        self._timeout_s = config.queue.timeout_s
        self._mono_to_wall_ns = mono_to_wall_ns
        self._service_name = service_name
        self._redactor = redactor or Redactor()
        q = config.queue
        common = dict(queue_size=q.queue_size, batch_size=q.batch_size,
                      flush_interval_s=flush_interval_s, max_retries=q.max_retries,
                      backoff_initial_s=backoff_initial_s)
        self._spans: BatchingQueue[SampledExchange] = BatchingQueue(
            self._send_spans, name="otlp-traces", **common)
        self._metrics: BatchingQueue[PairMetrics] = BatchingQueue(
            self._send_metrics, name="otlp-metrics", **common)
        self._skipped = {"skipped_no_context": 0, "skipped_unsupported_context": 0}

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
        return out

    def export_events(self, sampled: list[SampledExchange]) -> None:
        put_with_context(self._spans, sampled, self._skipped, _carried)

    def export_metrics(self, metrics: list[PairMetrics]) -> None:
        for m in metrics:
            self._metrics.put(m)

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
            name=span_name(ex, self._redactor.redact_path), kind=_KIND.get(ex.side or "", trace_pb2.Span.SPAN_KIND_UNSPECIFIED),
            start_time_unix_nano=self._mono_to_wall_ns(ex.start_ns),
            end_time_unix_nano=self._mono_to_wall_ns(max(ex.end_ns, ex.start_ns)))
        if trace.parent_span_id:
            span.parent_span_id = bytes.fromhex(trace.parent_span_id)
        if trace.sampled is not None:
            span.flags = 1 if trace.sampled else 0  # W3C trace-flags in bits 0-7: sampled
        for key, value in dict(trace.extra).items():
            if key == "tracestate":
                span.trace_state = value
        span.attributes.extend(self._span_attributes(sampled))
        if sampled.reason in ("5xx", "grpc_error"):
            span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        for ev in build_span_events(sampled, self._mono_to_wall_ns, self._redactor):
            attrs = [_kv(k, v) for k, v in ev.tags] + [_kv("end_time_unix_nano", ev.end_ns_wall)]
            span.events.add(time_unix_nano=ev.start_ns_wall, name=ev.name, attributes=attrs)
        return span

    @staticmethod
    def _span_attributes(sampled: SampledExchange) -> list[KeyValue]:
        ex = sampled.exchange
        attrs = [_kv("l7scope.protocol", ex.protocol), _kv("l7scope.sampling_reason", sampled.reason)]
        if ex.method:
            attrs.append(_kv("http.request.method", ex.method))
        if ex.path is not None:
            attrs.append(_kv("url.path", ex.path.split("?", 1)[0].split("#", 1)[0]))
        if ex.status is not None:
            attrs.append(_kv("http.response.status_code", ex.status))
        if ex.grpc_status is not None:
            attrs.append(_kv("rpc.grpc.status_code", ex.grpc_status))
        return attrs

    # --- metrics -------------------------------------------------------------------------

    def _send_metrics(self, batch: list[PairMetrics]) -> None:
        body = self.metrics_request(batch).SerializeToString()
        http_post(self._endpoint + "/v1/metrics", body, "application/x-protobuf",
                  self._timeout_s)

    def metrics_request(self, batch: list[PairMetrics]) -> ExportMetricsServiceRequest:
        requests = metrics_pb2.Metric(name="l7scope.requests", unit="{request}",
                                      description="Requests between a process pair")
        responses = metrics_pb2.Metric(name="l7scope.responses", unit="{response}",
                                       description="Responses by status")
        for metric in (requests, responses):
            metric.sum.aggregation_temporality = _DELTA
            metric.sum.is_monotonic = True
        hists = {name: metrics_pb2.Metric(name=name, unit=unit) for name, unit in (
            ("l7scope.request.size", "By"), ("l7scope.response.size", "By"),
            ("l7scope.client.duration", "ms"), ("l7scope.server.duration", "ms"))}
        for metric in hists.values():
            metric.histogram.aggregation_temporality = _DELTA
        for pm in batch:
            self._add_pair(pm, requests, responses, hists)
        metrics = [requests, responses] + [m for m in hists.values() if m.histogram.data_points]
        request = ExportMetricsServiceRequest()
        request.resource_metrics.add(
            resource=Resource(attributes=[_kv("service.name", self._service_name)]),
            scope_metrics=[metrics_pb2.ScopeMetrics(scope=SCOPE, metrics=metrics)])
        return request

    @staticmethod
    def _add_pair(pm: PairMetrics, requests, responses, hists) -> None:
        attrs = [_kv("client", pm.client), _kv("server", pm.server), _kv("protocol", pm.protocol)]
        times = dict(start_time_unix_nano=pm.interval_start_ns, time_unix_nano=pm.interval_end_ns)
        requests.sum.data_points.add(attributes=attrs, as_int=pm.requests, **times)
        for status, count in pm.status_counts:
            responses.sum.data_points.add(attributes=attrs + [_kv("status", status)],
                                          as_int=count, **times)
        for name, hist in (("l7scope.request.size", pm.request_bytes),
                           ("l7scope.response.size", pm.response_bytes),
                           ("l7scope.client.duration", pm.client_duration_ms),
                           ("l7scope.server.duration", pm.server_duration_ms)):
            if hist.count:
                hists[name].histogram.data_points.append(_histogram_point(hist, attrs, times))


def _histogram_point(hist: Histogram, attrs: list[KeyValue],
                     times: dict) -> metrics_pb2.HistogramDataPoint:
    return metrics_pb2.HistogramDataPoint(
        attributes=attrs, count=hist.count, sum=float(hist.sum),
        bucket_counts=list(hist.counts), explicit_bounds=[float(b) for b in hist.bounds],
        **times)
