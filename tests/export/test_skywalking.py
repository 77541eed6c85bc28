"""SkyWalking exporter against a real gRPC SpanAttachedEventReportService."""
from __future__ import annotations

import pytest
from skywalking.protocol.language_agent.Tracing_pb2 import SpanAttachedEvent

from l7scope.config import QueueSettings, SkyWalkingConfig
from l7scope.export.skywalking import SkyWalkingExporter
from tests.export import (
    B3_TRACE, SW8_TRACE, W3C_TRACE, WALL_OFFSET_NS, free_port, make_exchange, mono_to_wall_ns,
    sample, skywalking_collector, wait_for,
)


@pytest.fixture
def oap():
    with skywalking_collector() as (collector, address):
        yield collector, address


def _exporter(address, **queue) -> SkyWalkingExporter:
    return SkyWalkingExporter(SkyWalkingConfig(address=address, queue=QueueSettings(**queue)),
                              mono_to_wall_ns, flush_interval_s=0.01, backoff_initial_s=0.001)


def _tags(event) -> dict:
    return {t.key: t.value for t in event.tags}


def test_span_attached_events_received(oap):
    collector, address = oap
    exp = _exporter(address)
    exp.start()
    exp.export_events([sample(make_exchange(status=502, trace=SW8_TRACE)),
                       sample(make_exchange(side="client", trace=B3_TRACE)),
                       sample(make_exchange(trace=W3C_TRACE))])
    exp.stop(10)
    [events] = collector.streams
    assert [e.event for e in events] == ["HTTP Request Sampling", "HTTP Response Sampling"] * 2
    sw_req, sw_resp, b3_req, _ = events
    ref = sw_req.traceContext
    assert (ref.type, ref.traceId, ref.traceSegmentId, ref.spanId) == (
        SpanAttachedEvent.SKYWALKING, "trace-1.2.3", "segment-9", "2")
    wall = WALL_OFFSET_NS + 5_000_000_000
    assert (sw_req.startTime.seconds, sw_req.startTime.nanos) == divmod(wall, 1_000_000_000)
    assert (sw_req.endTime.seconds, sw_req.endTime.nanos) == divmod(wall + 1000, 1_000_000_000)
    assert {s.key: s.value for s in sw_req.summary} == {"data_size": 120, "body_size": 0}
    assert _tags(sw_req)["data_direction"] == "request"
    assert _tags(sw_req)["connection_role"] == "server"
    assert _tags(sw_resp)["http.status_code"] == "502"
    assert _tags(sw_resp)["data_content"] == '{"ok":true}'
    b3_ref = b3_req.traceContext
    assert (b3_ref.type, b3_ref.traceId, b3_ref.traceSegmentId, b3_ref.spanId) == (
        SpanAttachedEvent.ZIPKIN, B3_TRACE.trace_id, "", B3_TRACE.span_id)
    assert _tags(b3_req)["connection_role"] == "client"
    s = exp.stats()
    assert (s["sent_items"], s["sent_batches"], s["skipped_unsupported_context"]) == (2, 1, 1)


def test_oap_down_counts_drops():
    exp = _exporter(f"127.0.0.1:{free_port()}", max_retries=1, timeout_s=2)
    exp.start()
    exp.export_events([sample(make_exchange(trace=SW8_TRACE))])
    wait_for(lambda: exp.stats()["dropped_send_failed"] == 1)
    exp.stop(5)
    assert (exp.stats()["send_errors"], exp.stats()["retries"]) == (2, 1)


def test_slow_oap_never_blocks_the_caller(oap):
    collector, address = oap
    collector.hold.clear()
    exp = _exporter(address, queue_size=2, batch_size=1, timeout_s=30)
    exp.start()
    exp.export_events([sample(make_exchange(trace=SW8_TRACE))])
    wait_for(collector.arrived.is_set)
    exp.export_events([sample(make_exchange(trace=SW8_TRACE)) for _ in range(5)])
    assert (exp.stats()["dropped_queue_full"], exp.stats()["pending"]) == (3, 3)
    collector.hold.set()
    exp.stop(10)
    assert len(collector.streams) == 3
