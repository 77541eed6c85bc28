"""SkyWalking exporter: span-attached events streamed to the OAP over gRPC.

Theory of operation
-------------------
Uses the SkyWalking data-collect protocol as shipped in apache-skywalking
(``skywalking.protocol.language_agent.Tracing_pb2``): each span-attached event of a sampled
exchange becomes one ``SpanAttachedEvent`` and a batch is sent on one client stream of
``SpanAttachedEventReportService.collect``. The event's ``traceContext`` references the span
the event belongs to:

* sw8 contexts as ``SpanReferenceType.SKYWALKING``: traceId, traceSegmentId, spanId as
  propagated (spanId is the decimal span id of the caller's exit span);
* B3 contexts as ``SpanReferenceType.ZIPKIN``: traceId and spanId in hex, no segment.

W3C contexts have no SkyWalking reference type and are counted ``skipped_unsupported_context``.
Tags are the event's tags (KeyStringValuePair); ``summary`` carries the numeric sizes
(data_size, body_size) as KeyIntValuePair. The gRPC channel is opened by the worker thread on
first use and every call is bounded by ``timeout_s``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import grpc
from skywalking.protocol.common.Common_pb2 import Instant, KeyIntValuePair, KeyStringValuePair
from skywalking.protocol.language_agent.Tracing_pb2 import SpanAttachedEvent
from skywalking.protocol.language_agent.Tracing_pb2_grpc import (
    SpanAttachedEventReportServiceStub,
)

from l7scope.config import SkyWalkingConfig
from l7scope.exchange import TraceContext
from l7scope.export.queue import BatchingQueue, put_with_context
from l7scope.redact import Redactor
from l7scope.sampling import SampledExchange
from l7scope.spanevents import SpanEvent, build_span_events

_REFERENCE_TYPE = {"skywalking": SpanAttachedEvent.SKYWALKING,
                   "zipkin": SpanAttachedEvent.ZIPKIN}
_SUMMARY_TAGS = ("data_size", "body_size")


def _instant(wall_ns: int) -> Instant:
    seconds, nanos = divmod(wall_ns, 1_000_000_000)
    return Instant(seconds=seconds, nanos=nanos)


def span_reference(trace: TraceContext) -> SpanAttachedEvent.SpanReference:
    ref = SpanAttachedEvent.SpanReference(type=_REFERENCE_TYPE[trace.provider],
                                          traceId=trace.trace_id, spanId=trace.span_id or "")
    if trace.segment_id is not None:
        ref.traceSegmentId = trace.segment_id
    return ref


def to_attached_event(event: SpanEvent) -> SpanAttachedEvent:
    tags = [KeyStringValuePair(key=k, value=v) for k, v in event.tags
            if k not in _SUMMARY_TAGS]
    summary = [KeyIntValuePair(key=k, value=int(v)) for k, v in event.tags
               if k in _SUMMARY_TAGS]
    return SpanAttachedEvent(
        startTime=_instant(event.start_ns_wall), endTime=_instant(event.end_ns_wall),
        event=event.name, tags=tags, summary=summary,
        traceContext=span_reference(event.trace))



def _carried(trace) -> bool:
    """sw8 contexts, and B3 ones as SkyWalking's Zipkin reference type."""
    return trace.provider in _REFERENCE_TYPE

class SkyWalkingExporter:
    def __init__(self, config: SkyWalkingConfig, mono_to_wall_ns: Callable[[int], int], *,
                 redactor: Redactor | None = None, flush_interval_s: float = 1.0,
                 backoff_initial_s: float = 0.5):
        self._address = config.address
        self._timeout_s = config.queue.timeout_s
        self._mono_to_wall_ns = mono_to_wall_ns
        self._redactor = redactor or Redactor()
        q = config.queue
        self._queue: BatchingQueue[SampledExchange] = BatchingQueue(
            self._send, name="skywalking", queue_size=q.queue_size, batch_size=q.batch_size,
            flush_interval_s=flush_interval_s, max_retries=q.max_retries,
            backoff_initial_s=backoff_initial_s)
        self._channel: grpc.Channel | None = None
        self._stub: SpanAttachedEventReportServiceStub | None = None
        self._channel_lock = threading.Lock()
        self._skipped = {"skipped_no_context": 0, "skipped_unsupported_context": 0}

    def start(self) -> None:
        self._queue.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._queue.stop(timeout_s)
        with self._channel_lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None

    def stats(self) -> dict[str, int]:
        return dict(self._queue.stats(), **self._skipped)

    def export_events(self, sampled: list[SampledExchange]) -> None:
        put_with_context(self._queue, sampled, self._skipped, _carried)

    def events_of(self, batch: list[SampledExchange]) -> list[SpanAttachedEvent]:
        return [to_attached_event(ev) for s in batch
                for ev in build_span_events(s, self._mono_to_wall_ns, self._redactor)]

    def _send(self, batch: list[SampledExchange]) -> None:
        events = self.events_of(batch)
        if events:
            self._get_stub().collect(iter(events), timeout=self._timeout_s)

    def _get_stub(self) -> SpanAttachedEventReportServiceStub:
        with self._channel_lock:
            if self._stub is None:
                self._channel = grpc.insecure_channel(self._address)
                self._stub = SpanAttachedEventReportServiceStub(self._channel)
            return self._stub
