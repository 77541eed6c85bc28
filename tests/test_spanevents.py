"""Span-attached events built from sampled exchanges."""
from __future__ import annotations

from l7scope.config import CaptureSettings, SamplingRule
from l7scope.redact import Redactor
from l7scope.spanevents import REQUEST_EVENT, RESPONSE_EVENT, build_span_events
from tests.export import SW8_TRACE, WALL_OFFSET_NS, make_exchange, mono_to_wall_ns, sample


def test_request_and_response_events_with_times_and_tags():
    ex = make_exchange(status=503, duration_ms=20, trace=SW8_TRACE,
                       request_body=b'{"password":"p","q":1}',
                       request_headers=(("Content-Type", "application/json"),))
    events = build_span_events(sample(ex), mono_to_wall_ns, Redactor(json_fields=["password"]))
    assert [e.name for e in events] == [REQUEST_EVENT, RESPONSE_EVENT]
    req, resp = events
    assert (req.start_ns_wall, req.end_ns_wall) == (
        WALL_OFFSET_NS + 5_000_000_000, WALL_OFFSET_NS + 5_000_001_000)
    assert (resp.start_ns_wall, resp.end_ns_wall) == (
        WALL_OFFSET_NS + 5_019_998_000, WALL_OFFSET_NS + 5_020_000_000)
    assert dict(req.tags) == {
        "data_size": "120", "body_size": "22", "data_content": '{"password":"[REDACTED]","q":1}',
        "data_direction": "request", "data_type": "HTTP", "complete": "true",
        "connection_role": "server", "process": "api(42)", "process_id": "42",
        "http.method": "GET", "http.path": "/api/users?id=1",
        "trace_provider": "skywalking", "trace_id": "trace-1.2.3", "segment_id": "segment-9",
        "span_id": "2", "sampling_reason": "5xx"}
    assert resp.tag("http.status_code") == "503"
    assert resp.tag("data_direction") == "response"
    assert resp.tag("data_content") == '{"ok":true}'
    assert req.trace is SW8_TRACE


def test_binary_body_summarised_and_content_bounded_by_rule():
    rule = SamplingRule(min_duration_ms=0, settings=CaptureSettings(max_request_bytes=5))
    ex = make_exchange(request_body=b"hello world",
                       response_headers=(("Content-Type", "application/octet-stream"),),
                       response_body=b"\x00\x01\x02\x03", protocol="grpc", grpc_status=2)
    req, resp = build_span_events(sample(ex, rule), mono_to_wall_ns)
    assert req.tag("data_content") == "hello"
    assert resp.tag("data_content") == "<binary 4 bytes>"
    assert resp.tag("data_type") == "gRPC"
    assert resp.tag("grpc.status_code") == "2"


def test_no_trace_or_not_captured_gives_fewer_events():
    assert build_span_events(sample(make_exchange(trace=None)), mono_to_wall_ns) == []
    rule = SamplingRule(min_duration_ms=0, settings=CaptureSettings(capture_response=False))
    events = build_span_events(sample(make_exchange(), rule), mono_to_wall_ns)
    assert [e.name for e in events] == [REQUEST_EVENT]


def test_path_tag_and_body_secrets_redacted_by_default():
    ex = make_exchange(path="/a?api_key=SEKRIT1&page=2", request_body=b'{"Password":"SEKRIT2"}',
                       request_headers=(("Content-Type", "text/plain"),))
    req, resp = build_span_events(sample(ex), mono_to_wall_ns)
    assert req.tag("http.path") == "/a?api_key=[REDACTED]&page=2"
    assert req.tag("data_content") == '{"Password":"[REDACTED]"}'
    assert "SEKRIT" not in repr(req.tags) + repr(resp.tags)
