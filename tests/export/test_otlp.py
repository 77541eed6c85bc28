"""OTLP/HTTP exporter against a receiver decoding the official opentelemetry-proto messages."""
from __future__ import annotations

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from l7scope.config import OtlpConfig, QueueSettings
from l7scope.export.otlp import OtlpExporter
from l7scope.metrics_types import DURATION_MS_BOUNDS, SIZE_BYTES_BOUNDS
from tests.export import (
    B3_TRACE, SW8_TRACE, W3C_TRACE, WALL_OFFSET_NS, HttpReceiver, free_port, make_exchange,
    make_pair_metrics, mono_to_wall_ns, sample, wait_for,
)


def _value(any_value):
    return getattr(any_value, any_value.WhichOneof("value"))


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


@pytest.fixture
def receiver():
    r = HttpReceiver(status=200)
    yield r
    r.close()


def _exporter(endpoint, **queue) -> OtlpExporter:
    return OtlpExporter(OtlpConfig(endpoint=endpoint, queue=QueueSettings(**queue)),
                        mono_to_wall_ns, service_name="edge", flush_interval_s=0.01,
                        backoff_initial_s=0.001)


def test_spans_with_events_decode_with_opentelemetry_proto(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}/")
    exp.start()
    exp.export_events([sample(make_exchange(status=500, trace=W3C_TRACE)),
                       sample(make_exchange(side="client", comm="curl", pid=7, trace=B3_TRACE)),
                       sample(make_exchange(trace=SW8_TRACE))])
    exp.stop(5)
    [(path, headers, body)] = receiver.posts
    assert path == "/v1/traces" and headers["Content-Type"] == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    assert len(request.resource_spans) == 2
    by_service = {_attrs(rs.resource.attributes)["service.name"]: rs
                  for rs in request.resource_spans}
    assert _attrs(by_service["api"].resource.attributes) == {"service.name": "api",
                                                             "process.pid": 42}
    [server] = by_service["api"].scope_spans[0].spans
    assert by_service["api"].scope_spans[0].scope.name == "l7scope"
    assert server.trace_id == bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    assert server.span_id == bytes.fromhex("00f067aa0ba902b7")
    assert server.parent_span_id == b""
    assert server.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert server.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert server.start_time_unix_nano == WALL_OFFSET_NS + 5_000_000_000
    assert server.end_time_unix_nano == WALL_OFFSET_NS + 5_010_000_000
    assert _attrs(server.attributes) == {
        "l7scope.protocol": "http1", "l7scope.sampling_reason": "5xx",
        "http.request.method": "GET", "url.path": "/api/users",
        "http.response.status_code": 500}
    assert [e.name for e in server.events] == ["HTTP Request Sampling", "HTTP Response Sampling"]
    req_event, resp_event = server.events
    assert req_event.time_unix_nano == WALL_OFFSET_NS + 5_000_000_000
    req_attrs = _attrs(req_event.attributes)
    assert req_attrs["end_time_unix_nano"] == WALL_OFFSET_NS + 5_000_001_000
    assert req_attrs["data_direction"] == "request" and req_attrs["trace_provider"] == "w3c"
    assert _attrs(resp_event.attributes)["data_content"] == '{"ok":true}'
    [client] = by_service["curl"].scope_spans[0].spans
    # 128-bit B3 trace id as is; a parent span id from X-B3-ParentSpanId
    assert client.trace_id == bytes.fromhex(B3_TRACE.trace_id)
    assert client.parent_span_id == bytes.fromhex("05e3ac9a4f6e3b90")
    assert client.kind == trace_pb2.Span.SPAN_KIND_CLIENT
    s = exp.stats()
    assert (s["traces_sent_items"], s["skipped_unsupported_context"]) == (2, 1)


def test_64bit_b3_trace_id_left_padded():
    from l7scope.exchange import TraceContext

    trace = TraceContext("zipkin", "a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True)
    exp = _exporter("http://127.0.0.1:1")
    span = exp.to_span(sample(make_exchange(trace=trace)))
    assert span.trace_id == bytes(8) + bytes.fromhex("a3ce929d0e0e4736")
    assert span.flags == 1


def test_metrics_decode_with_opentelemetry_proto(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}")
    exp.start()
    exp.export_metrics([make_pair_metrics()])
    exp.stop(5)
    [(path, headers, body)] = receiver.posts
    assert path == "/v1/metrics" and headers["Content-Type"] == "application/x-protobuf"
    request = ExportMetricsServiceRequest.FromString(body)
    [rm] = request.resource_metrics
    assert _attrs(rm.resource.attributes) == {"service.name": "edge"}
    metrics = {m.name: m for m in rm.scope_metrics[0].metrics}
    # the client-side duration histogram is empty in this interval: no point, no metric
    assert sorted(metrics) == ["l7scope.request.size", "l7scope.requests",
                               "l7scope.response.size", "l7scope.responses",
                               "l7scope.server.duration"]
    pair = {"client": "curl(100)", "server": "nginx(200)", "protocol": "http1"}
    [req_point] = metrics["l7scope.requests"].sum.data_points
    assert metrics["l7scope.requests"].sum.is_monotonic
    assert metrics["l7scope.requests"].sum.aggregation_temporality == \
        metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    assert (req_point.as_int, _attrs(req_point.attributes)) == (3, pair)
    assert req_point.start_time_unix_nano == WALL_OFFSET_NS
    assert req_point.time_unix_nano == WALL_OFFSET_NS + 10_000_000_000
    responses = {_attrs(p.attributes)["status"]: p.as_int
                 for p in metrics["l7scope.responses"].sum.data_points}
    assert responses == {"200": 2, "503": 1}
    [dur] = metrics["l7scope.server.duration"].histogram.data_points
    assert metrics["l7scope.server.duration"].unit == "ms"
    assert list(dur.explicit_bounds) == list(DURATION_MS_BOUNDS)
    assert list(dur.bucket_counts) == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert (dur.count, dur.sum) == (3, 703.4)
    [size] = metrics["l7scope.request.size"].histogram.data_points
    assert list(size.explicit_bounds) == list(SIZE_BYTES_BOUNDS)
    assert list(size.bucket_counts) == [0, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    assert (size.count, size.sum) == (3, 5400.0)


def test_collector_down_counts_drops():
    exp = _exporter(f"http://127.0.0.1:{free_port()}", max_retries=0)
    exp.start()
    exp.export_metrics([make_pair_metrics(), make_pair_metrics()])
    wait_for(lambda: exp.stats()["metrics_dropped_send_failed"] == 2)
    exp.stop(5)
    assert exp.stats()["metrics_send_errors"] == 1
