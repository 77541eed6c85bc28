"""OTLP/HTTP exporter against a receiver decoding the official opentelemetry-proto messages:
names, units, attributes and bucket boundaries by OpenTelemetry's HTTP/RPC conventions."""
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
from tests.export import (
    B3_TRACE, SW8_TRACE, W3C_TRACE, WALL_OFFSET_NS, HttpReceiver, free_port, make_exchange,
    make_pair_metrics, mono_to_wall_ns, sample, tcp_record, wait_for,
)

# https://opentelemetry.io/docs/specs/semconv/http/http-metrics/ : advisory boundaries
SEMCONV_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


def _value(any_value):
    return getattr(any_value, any_value.WhichOneof("value"))


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


@pytest.fixture
def receiver():
    r = HttpReceiver(status=200)
    yield r
    r.close()


def _exporter(endpoint, max_series=2000, **queue) -> OtlpExporter:
    return OtlpExporter(OtlpConfig(endpoint=endpoint, queue=QueueSettings(**queue)),
                        mono_to_wall_ns, service_name="edge", flush_interval_s=0.01,
                        backoff_initial_s=0.001, max_series=max_series)


def _posted(receiver, path, message):
    bodies = [body for p, headers, body in receiver.posts if p == path]
    assert all(h["Content-Type"] == "application/x-protobuf"
               for p, h, _ in receiver.posts if p == path)
    return [message.FromString(b) for b in bodies]


def test_spans_with_events_decode_with_opentelemetry_proto(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}/")
    exp.start()
    exp.export_events([sample(make_exchange(status=500, trace=W3C_TRACE)),
                       sample(make_exchange(side="client", comm="curl", pid=7, trace=B3_TRACE,
                                            status=404)),
                       sample(make_exchange(trace=SW8_TRACE))])
    exp.stop(5)
    [request] = _posted(receiver, "/v1/traces", ExportTraceServiceRequest)
    assert len(request.resource_spans) == 2
    by_service = {_attrs(rs.resource.attributes)["service.name"]: rs
                  for rs in request.resource_spans}
    assert _attrs(by_service["api"].resource.attributes) == {"service.name": "api",
                                                             "process.pid": 42}
    [server] = by_service["api"].scope_spans[0].spans
    assert by_service["api"].scope_spans[0].scope.name == "l7scope"
    assert server.name == "GET"
    assert server.trace_id == bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    assert server.span_id == bytes.fromhex("00f067aa0ba902b7")
    assert server.parent_span_id == b""
    assert server.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert server.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert server.start_time_unix_nano == WALL_OFFSET_NS + 5_000_000_000
    assert server.end_time_unix_nano == WALL_OFFSET_NS + 5_010_000_000
    assert _attrs(server.attributes) == {
        "http.request.method": "GET", "url.path": "/api/users", "url.query": "id=1",
        "url.scheme": "http", "http.response.status_code": 500,
        "network.protocol.name": "http", "network.protocol.version": "1.1",
        "server.address": "10.1.0.2", "server.port": 8080, "client.address": "10.1.0.3",
        "error.type": "500", "l7scope.protocol": "http1", "l7scope.sampling_reason": "5xx"}
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
    client_attrs = _attrs(client.attributes)
    # a client span: the server is the remote end; a 4xx is a client-side error
    assert (client_attrs["server.address"], client_attrs["server.port"]) == ("10.1.0.3", 51234)
    assert client_attrs["client.address"] == "10.1.0.2" and client_attrs["error.type"] == "404"
    assert client.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    s = exp.stats()
    assert (s["traces_sent_items"], s["skipped_unsupported_context"]) == (2, 1)


def test_grpc_span_named_by_service_and_method_with_rpc_attributes():
    exp = _exporter("http://127.0.0.1:1")
    span = exp.to_span(sample(make_exchange(protocol="grpc", path="/shop.v1.Cart/AddItem",
                                            grpc_status=5)))
    assert span.name == "shop.v1.Cart/AddItem"
    attrs = _attrs(span.attributes)
    assert {k: attrs[k] for k in attrs if k.startswith(("rpc.", "error", "network"))} == {
        "rpc.system": "grpc", "rpc.service": "shop.v1.Cart", "rpc.method": "AddItem",
        "rpc.grpc.status_code": 5, "error.type": "NOT_FOUND",
        "network.protocol.name": "http", "network.protocol.version": "2"}
    assert span.status.code == trace_pb2.Status.STATUS_CODE_ERROR


def test_unknown_method_and_query_secret():
    exp = _exporter("http://127.0.0.1:1")
    ex = make_exchange(path="/cb?access_token=SEKRIT&x=2", status=200)._replace(method="PURGE")
    span = exp.to_span(sample(ex))
    attrs = _attrs(span.attributes)
    assert span.name == "HTTP"
    assert (attrs["http.request.method"], attrs["http.request.method_original"]) == (
        "_OTHER", "PURGE")
    assert (attrs["url.path"], attrs["url.query"]) == ("/cb", "access_token=[REDACTED]&x=2")
    assert "error.type" not in attrs and span.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    assert b"SEKRIT" not in span.SerializeToString()


def test_64bit_b3_trace_id_left_padded():
    from l7scope.exchange import TraceContext

    trace = TraceContext("zipkin", "a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True)
    exp = _exporter("http://127.0.0.1:1")
    span = exp.to_span(sample(make_exchange(trace=trace)))
    assert span.trace_id == bytes(8) + bytes.fromhex("a3ce929d0e0e4736")
    assert span.flags == 1


def _observed(exp: OtlpExporter) -> None:
    """Two 200s (3 ms, 80 ms) and a 503 (2 s) at the server nginx, called by a traced curl;
    the client records of the same calls; a gRPC NOT_FOUND and a response never seen."""
    for ms, status in ((3, 200), (80, 200), (2000, 503)):
        ex = make_exchange(duration_ms=ms, status=status, comm="nginx", pid=200, peer_pid=100)
        exp.observe(ex, peer_comm="curl")
        exp.observe(ex._replace(side="client", comm="curl", pid=100, peer_pid=200,
                                local="10.1.0.3:51234", remote="10.1.0.2:8080"), "nginx")
    exp.observe(make_exchange(protocol="grpc", path="/shop.v1.Cart/AddItem", grpc_status=5,
                              duration_ms=7.5, comm="cart", pid=300)._replace(method="POST"))
    exp.observe(make_exchange(comm="nginx", pid=201, peer_pid=101)._replace(
        status=None, notes=("no response",)), "curl")


def test_duration_metrics_by_semantic_conventions(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}")
    exp.start()
    _observed(exp)
    exp.export_metrics([make_pair_metrics(end_ns=WALL_OFFSET_NS + 10_000_000_000)])
    exp.stop(5)
    [request] = _posted(receiver, "/v1/metrics", ExportMetricsServiceRequest)
    [rm] = request.resource_metrics
    assert _attrs(rm.resource.attributes) == {"service.name": "edge"}
    metrics = {m.name: m for m in rm.scope_metrics[0].metrics}
    assert sorted(metrics) == ["http.client.request.duration", "http.server.request.duration"]
    for m in metrics.values():
        assert (m.unit, m.histogram.aggregation_temporality) == (
            "s", metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE)
        assert all(list(p.explicit_bounds) == SEMCONV_BOUNDS for p in m.histogram.data_points)
    server = {(_attrs(p.attributes)["http.request.method"],
               _attrs(p.attributes).get("http.response.status_code")): p
              for p in metrics["http.server.request.duration"].histogram.data_points}
    assert sorted(server, key=str) == [("GET", 200), ("GET", 503), ("GET", None), ("POST", 200)]
    ok = server["GET", 200]
    assert _attrs(ok.attributes) == {
        "http.request.method": "GET", "http.response.status_code": 200, "url.scheme": "http",
        "network.protocol.name": "http", "network.protocol.version": "1.1",
        "server.address": "10.1.0.2", "server.port": 8080,
        "l7scope.client": "curl", "l7scope.server": "nginx"}
    # 3 ms in (0, 0.005], 80 ms in (0.075, 0.1]
    assert list(ok.bucket_counts) == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert (ok.count, round(ok.sum, 6), ok.min, ok.max) == (2, 0.083, 0.003, 0.08)
    assert ok.start_time_unix_nano == WALL_OFFSET_NS + 5_000_000_000
    assert ok.time_unix_nano == WALL_OFFSET_NS + 10_000_000_000
    failed = _attrs(server["GET", 503].attributes)
    assert failed["error.type"] == "503" and list(server["GET", 503].bucket_counts)[10] == 1
    assert _attrs(server["GET", None].attributes)["error.type"] == "incomplete"
    grpc = _attrs(server["POST", 200].attributes)
    assert {k: v for k, v in grpc.items() if k.startswith(("rpc.", "error."))} == {
        "rpc.system": "grpc", "rpc.service": "shop.v1.Cart", "rpc.method": "AddItem",
        "rpc.grpc.status_code": 5, "error.type": "NOT_FOUND"}
    assert grpc["network.protocol.version"] == "2" and grpc["l7scope.client"] == "10.1.0.3"
    [client] = metrics["http.client.request.duration"].histogram.data_points[:1]
    client_attrs = _attrs(client.attributes)
    assert (client_attrs["server.address"], client_attrs["server.port"]) == ("10.1.0.2", 8080)
    assert (client_attrs["l7scope.client"], client_attrs["l7scope.server"]) == ("curl", "nginx")
    every = [_attrs(p.attributes) for m in metrics.values() for p in m.histogram.data_points]
    assert not [k for a in every for k in a if "pid" in k]
    assert not [v for a in every for v in a.values() if "(" in str(v)]


def test_cumulative_across_intervals_and_series_bounded(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}", max_series=2)
    exp.start()
    for status in (200, 201, 202, 203):
        exp.observe(make_exchange(status=status, duration_ms=1))
    exp.export_metrics([])
    wait_for(lambda: len(receiver.posts) == 1)
    exp.observe(make_exchange(status=200, duration_ms=1))
    exp.export_metrics([])
    exp.stop(5)
    first, second = _posted(receiver, "/v1/metrics", ExportMetricsServiceRequest)

    def counts(request):
        [metric] = request.resource_metrics[0].scope_metrics[0].metrics
        return {_attrs(p.attributes).get("http.response.status_code",
                                         _attrs(p.attributes).get("otel.metric.overflow")): p.count
                for p in metric.histogram.data_points}

    assert counts(first) == {200: 1, 201: 1, True: 2}
    assert counts(second) == {200: 2, 201: 1, True: 2}
    assert exp.stats()["metrics_series_overflow_records"] == 2


def test_pair_metrics_exported_until_exchanges_are_observed(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}")
    exp.start()
    exp.export_metrics([make_pair_metrics()])
    exp.stop(5)
    [request] = _posted(receiver, "/v1/metrics", ExportMetricsServiceRequest)
    [metric] = request.resource_metrics[0].scope_metrics[0].metrics
    assert (metric.name, metric.unit) == ("http.server.request.duration", "s")
    assert metric.histogram.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    [point] = metric.histogram.data_points
    assert _attrs(point.attributes) == {"network.protocol.name": "http",
                                        "l7scope.client": "curl", "l7scope.server": "nginx"}
    assert (point.count, round(point.sum, 6)) == (3, 0.7034)
    assert list(point.explicit_bounds)[:3] == [0.0005, 0.001, 0.0025]


def test_collector_down_counts_drops():
    exp = _exporter(f"http://127.0.0.1:{free_port()}", max_retries=0)
    exp.start()
    exp.observe(make_exchange())
    exp.export_metrics([])
    exp.export_metrics([])
    wait_for(lambda: exp.stats()["metrics_dropped_send_failed"] == 2)
    exp.stop(5)
    assert exp.stats()["metrics_send_errors"] >= 1


def _tcp_record(interval: int, **fields) -> dict:
    """A tcp_metrics record of 10 s interval ``interval`` (deltas)."""
    start = WALL_OFFSET_NS + interval * 10_000_000_000
    return tcp_record(interval_start_ns=start, interval_end_ns=start + 10_000_000_000, **fields)


def test_tcp_metrics_as_cumulative_sums_and_histograms(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}")
    exp.start()
    exp.tcp_metrics([_tcp_record(
        0, connects=3, connect_failures=1, connect_failures_by_reason={"refused": 1},
        connect_ms={"bounds": [0.5, 1.0, 2.5], "counts": [2, 1, 0, 0], "sum": 1.5, "count": 3},
        bytes_sent=100, bytes_received=2000,
        rtt_us={"bounds": [50, 100, 250], "counts": [0, 1, 1, 0], "sum": 280.0, "count": 2},
        retransmits=4, drops={"NETFILTER_DROP": 2})])
    exp.export_metrics([])
    wait_for(lambda: len(receiver.posts) == 1)
    exp.tcp_metrics([_tcp_record(
        1, connects=1, bytes_sent=50, retransmits=1, resets_received=1,
        rtt_us={"bounds": [50, 100, 250], "counts": [0, 0, 0, 1], "sum": 300.0, "count": 1},
        drops={"NETFILTER_DROP": 1, "TCP_OFO_DROP": 3})])
    exp.export_metrics([])
    exp.stop(5)
    first, second = _posted(receiver, "/v1/metrics", ExportMetricsServiceRequest)
    pair = {"l7scope.client": "curl", "l7scope.server": "nginx"}
    new_in_second = {("l7scope.tcp.resets_received", None, "{reset}"),
                     ("l7scope.tcp.drops", "TCP_OFO_DROP", "{packet}")}

    def sums(request):
        out = {}
        for m in request.resource_metrics[0].scope_metrics[0].metrics:
            if m.WhichOneof("data") != "sum":
                continue
            assert (m.sum.is_monotonic, m.sum.aggregation_temporality) == (
                True, metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE)
            for p in m.sum.data_points:
                attrs = _attrs(p.attributes)
                assert {k: attrs[k] for k in pair} == pair
                key = (m.name, attrs.get("l7scope.reason"), m.unit)
                first_seen = 1 if key in new_in_second else 0
                assert p.start_time_unix_nano == WALL_OFFSET_NS + first_seen * 10_000_000_000
                out[key] = p.as_int
        return out

    assert sums(first) == {
        ("l7scope.tcp.connects", None, "{connection}"): 3,
        ("l7scope.tcp.connect_failures", "refused", "{connection}"): 1,
        ("l7scope.tcp.sent", None, "By"): 100, ("l7scope.tcp.received", None, "By"): 2000,
        ("l7scope.tcp.retransmits", None, "{segment}"): 4,
        ("l7scope.tcp.drops", "NETFILTER_DROP", "{packet}"): 2}
    assert sums(second) == {
        ("l7scope.tcp.connects", None, "{connection}"): 4,
        ("l7scope.tcp.connect_failures", "refused", "{connection}"): 1,
        ("l7scope.tcp.sent", None, "By"): 150, ("l7scope.tcp.received", None, "By"): 2000,
        ("l7scope.tcp.retransmits", None, "{segment}"): 5,
        ("l7scope.tcp.resets_received", None, "{reset}"): 1,
        ("l7scope.tcp.drops", "NETFILTER_DROP", "{packet}"): 3,
        ("l7scope.tcp.drops", "TCP_OFO_DROP", "{packet}"): 3}
    metrics = {m.name: m for m in second.resource_metrics[0].scope_metrics[0].metrics}
    rtt = metrics["l7scope.tcp.rtt"]
    assert (rtt.unit, rtt.histogram.aggregation_temporality) == (
        "s", metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE)
    [point] = rtt.histogram.data_points
    assert _attrs(point.attributes) == pair
    assert list(point.explicit_bounds) == [50e-6, 100e-6, 250e-6]
    assert list(point.bucket_counts) == [0, 1, 1, 1]
    assert (point.count, round(point.sum, 9)) == (3, 580e-6)
    assert point.start_time_unix_nano == WALL_OFFSET_NS
    assert point.time_unix_nano == WALL_OFFSET_NS + 20_000_000_000
    [connect] = metrics["l7scope.tcp.connect.duration"].histogram.data_points
    assert list(connect.explicit_bounds) == [0.0005, 0.001, 0.0025]
    assert (list(connect.bucket_counts), connect.count, connect.sum) == ([2, 1, 0, 0], 3, 0.0015)
    assert metrics["l7scope.tcp.connect.duration"].unit == "s"


def test_tcp_metrics_series_bounded_with_overflow_counted(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}", max_series=1)
    exp.start()
    exp.tcp_metrics([_tcp_record(0, client=f"c{i}", connects=2) for i in range(3)])
    exp.export_metrics([])
    exp.stop(5)
    [request] = _posted(receiver, "/v1/metrics", ExportMetricsServiceRequest)
    [metric] = request.resource_metrics[0].scope_metrics[0].metrics
    points = {_attrs(p.attributes).get("l7scope.client", "overflow"): p.as_int
              for p in metric.sum.data_points}
    assert points == {"c0": 2, "overflow": 4}
    assert exp.stats()["metrics_tcp_series_overflow_records"] == 2
