"""Zipkin exporter against a receiver that validates the zipkin2 v2 JSON model."""
from __future__ import annotations

import json
import re

import pytest

from l7scope.config import QueueSettings, ZipkinConfig
from l7scope.export.zipkin import ZipkinExporter
from l7scope.redact import Redactor
from tests.export import (
    B3_TRACE, SW8_TRACE, W3C_TRACE, WALL_OFFSET_NS, HttpReceiver, free_port, make_exchange,
    mono_to_wall_ns, sample, wait_for,
)

_HEX = re.compile(r"[0-9a-f]+")
SPAN_FIELDS = {"traceId", "name", "parentId", "id", "kind", "timestamp", "duration", "debug",
               "shared", "localEndpoint", "remoteEndpoint", "annotations", "tags"}
ENDPOINT_FIELDS = {"serviceName", "ipv4", "ipv6", "port"}


def _lower_hex(value, lengths) -> bool:
    return isinstance(value, str) and len(value) in lengths and bool(_HEX.fullmatch(value))


def validate_zipkin_span(span: dict) -> None:
    """The zipkin2-api.yaml Span definition: names, types, id encodings, enums, units."""
    assert set(span) <= SPAN_FIELDS, set(span) - SPAN_FIELDS
    assert _lower_hex(span["traceId"], (16, 32))
    assert _lower_hex(span["id"], (16,))
    if "parentId" in span:
        assert _lower_hex(span["parentId"], (16,))
    if "kind" in span:
        assert span["kind"] in ("CLIENT", "SERVER", "PRODUCER", "CONSUMER")
    for key in ("timestamp", "duration"):
        assert type(span[key]) is int and span[key] >= 1
    for key in ("debug", "shared"):
        assert type(span.get(key, False)) is bool
    assert isinstance(span.get("name", ""), str)
    for key in ("localEndpoint", "remoteEndpoint"):
        ep = span.get(key, {})
        assert set(ep) <= ENDPOINT_FIELDS
        assert type(ep.get("port", 1)) is int
        assert all(isinstance(ep[k], str) for k in ep if k != "port")
    for ann in span.get("annotations", []):
        assert set(ann) == {"timestamp", "value"}
        assert type(ann["timestamp"]) is int and isinstance(ann["value"], str)
    tags = span.get("tags", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())


@pytest.fixture
def receiver():
    r = HttpReceiver()
    yield r
    r.close()


def _exporter(url, **queue) -> ZipkinExporter:
    config = ZipkinConfig(url=url, queue=QueueSettings(**queue))
    return ZipkinExporter(config, mono_to_wall_ns, redactor=Redactor(json_fields=["token"]),
                          flush_interval_s=0.01, backoff_initial_s=0.001)


def test_spans_posted_validate_against_zipkin_v2(receiver):
    exp = _exporter(f"http://127.0.0.1:{receiver.port}/api/v2/spans")
    exp.start()
    b3 = sample(make_exchange(status=503, duration_ms=12.3456, trace=B3_TRACE))
    w3c = sample(make_exchange(side="client", trace=W3C_TRACE, duration_ms=0.0004))
    exp.export_events([b3, w3c, sample(make_exchange(trace=SW8_TRACE)),
                       sample(make_exchange(trace=None))])
    exp.stop(5)
    assert len(receiver.posts) == 1
    path, headers, body = receiver.posts[0]
    assert path == "/api/v2/spans" and headers["Content-Type"] == "application/json"
    spans = json.loads(body)
    for span in spans:
        validate_zipkin_span(span)
    server, client = spans
    start_us = (5_000_000_000 + WALL_OFFSET_NS) // 1000
    assert server == {
        "traceId": "80f198ee56343ba864fe8b2a57d3eff7", "id": "e457b5a2e4d86bd1",
        "parentId": "05e3ac9a4f6e3b90", "kind": "SERVER", "shared": True, "name": "GET",
        "timestamp": start_us, "duration": 12345,
        "localEndpoint": {"serviceName": "api", "ipv4": "10.1.0.2", "port": 8080},
        "remoteEndpoint": {"ipv4": "10.1.0.3", "port": 51234},
        "annotations": [
            {"timestamp": start_us, "value": "Start HTTP Request Sampling"},
            {"timestamp": start_us + 1, "value": "Finished HTTP Request Sampling"},
            {"timestamp": start_us + 12343, "value": "Start HTTP Response Sampling"},
            {"timestamp": start_us + 12345, "value": "Finished HTTP Response Sampling"}],
        "tags": server["tags"]}
    tags = server["tags"]
    assert tags["http.status_code"] == "503" and tags["error"] == "503"
    assert tags["http.path"] == "/api/users?id=1" and tags["http.method"] == "GET"
    assert tags["response.data_content"] == '{"ok":true}'
    assert tags["request.data_size"] == "120" and tags["request.connection_role"] == "server"
    assert (client["kind"], client["traceId"], client["id"]) == (
        "CLIENT", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert "parentId" not in client and "shared" not in client
    assert client["duration"] == 1  # under a microsecond rounds up
    s = exp.stats()
    assert (s["sent_items"], s["skipped_unsupported_context"], s["skipped_no_context"]) == (2, 1, 1)


def test_repeated_annotation_values_get_suffixes():
    from l7scope.export.zipkin import _annotations
    from l7scope.spanevents import SpanEvent

    ev = SpanEvent("HTTP Request Sampling", 1000, 2000, (), B3_TRACE)
    values = [a["value"] for a in _annotations([ev, ev, ev])]
    assert values == ["Start HTTP Request Sampling", "Finished HTTP Request Sampling",
                      "Start HTTP Request Sampling-2", "Finished HTTP Request Sampling-2",
                      "Start HTTP Request Sampling-3", "Finished HTTP Request Sampling-3"]


def test_collector_down_drops_and_counts_without_blocking():
    exp = _exporter(f"http://127.0.0.1:{free_port()}/api/v2/spans", max_retries=1)
    exp.start()
    exp.export_events([sample(make_exchange()) for _ in range(3)])
    wait_for(lambda: exp.stats()["dropped_send_failed"] == 3)
    exp.stop(5)
    s = exp.stats()
    assert (s["send_errors"], s["retries"], s["sent_items"]) == (2, 1, 0)


def test_slow_collector_queue_bounded_and_drops_counted(receiver):
    receiver.hold.clear()  # the collector accepts the POST and then does not answer
    exp = _exporter(f"http://127.0.0.1:{receiver.port}/api/v2/spans", queue_size=4,
                    batch_size=1, timeout_s=30)
    exp.start()
    exp.export_events([sample(make_exchange())])
    wait_for(receiver.arrived.is_set)
    exp.export_events([sample(make_exchange()) for _ in range(10)])
    s = exp.stats()
    assert (s["queued"], s["dropped_queue_full"], s["pending"]) == (5, 6, 5)
    receiver.hold.set()
    exp.stop(10)
    assert exp.stats()["sent_items"] == 5
    assert len(receiver.posts) == 5


def test_rejected_payload_is_not_retried():
    r = HttpReceiver(status=400)
    try:
        exp = _exporter(f"http://127.0.0.1:{r.port}/api/v2/spans", max_retries=3)
        exp.start()
        exp.export_events([sample(make_exchange())])
        wait_for(lambda: exp.stats()["dropped_send_failed"] == 1)
        exp.stop(5)
        assert exp.stats()["retries"] == 0 and len(r.posts) == 1
    finally:
        r.close()


def test_paths_in_tags_and_span_names_have_no_secrets():
    exp = ZipkinExporter(ZipkinConfig(url="http://127.0.0.1:1/"), mono_to_wall_ns)
    span = exp.to_span(sample(make_exchange(path="/a?token=SEKRIT1&x=1")))
    assert span["name"] == "GET"
    assert span["tags"]["http.path"] == "/a?token=[REDACTED]&x=1"
    assert span["tags"]["request.http.path"] == "/a?token=[REDACTED]&x=1"
    grpc_span = exp.to_span(sample(make_exchange(path="/pkg.Svc/Call", protocol="grpc",
                                                 grpc_status=0)._replace(method="POST")))
    assert grpc_span["name"] == "pkg.Svc/Call"  # OpenTelemetry: package.Service/Method
    # not a gRPC method path (a query): named by its method, the path only in the tag
    odd = exp.to_span(sample(make_exchange(path="/pkg.Svc/Call?sig=SEKRIT2", protocol="grpc",
                                           grpc_status=0)._replace(method="POST")))
    assert odd["name"] == "POST" and odd["tags"]["http.path"] == "/pkg.Svc/Call?sig=[REDACTED]"
    assert "SEKRIT" not in json.dumps([span, grpc_span, odd])
