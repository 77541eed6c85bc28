"""The Exchange record: one request/response pair as seen at one side of a connection.

Its JSON field names are a contract (docs/exchange.md); outside checks depend on them. Only the
opt-in header fields (``--with-headers``) are added beyond the contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from l7scope.dataplane._build import rfc3339 as _rfc3339
from l7scope.protocols.message import HttpMessage

CONTRACT_FIELDS = (
    "protocol", "side", "pid", "comm", "local", "remote", "peer_pid", "peer_name", "conn_id",
    "stream_id",
    "method", "path", "authority", "status", "grpc_status", "request_bytes", "response_bytes",
    "start_ns", "end_ns", "duration_ns", "time", "trace", "request_id", "tls", "partial", "notes",
    "name", "exe", "container_id", "thread",
)


@dataclass(frozen=True, slots=True)
class TraceContext:
    """Distributed-trace context read from request headers."""

    provider: str  # "skywalking" | "zipkin" | "w3c"
    trace_id: str
    span_id: str | None
    parent_span_id: str | None = None
    sampled: bool | None = None
    segment_id: str | None = None  # sw8 only
    extra: tuple[tuple[str, str], ...] = ()  # provider-specific fields (sw8 service, tracestate...)

    def to_dict(self) -> dict:
        return {
            "provider": self.provider,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "sampled": self.sampled,
            "segment_id": self.segment_id,
        }


class Exchange(NamedTuple):
    """One request/response pair at one side. A NamedTuple (immutable, built per exchange on
    the hot path: six times cheaper than a frozen dataclass)."""

    protocol: str
    side: str | None  # "client" | "server" | None (packet capture)
    pid: int | None
    comm: str | None  # the process's name (thread-group leader's), never a worker thread's
    local: str | None
    remote: str | None
    peer_pid: int | None
    conn_id: int
    stream_id: int | None
    method: str | None
    path: str | None  # secret query parameters already redacted (Pipeline's redact_path)
    authority: str | None
    status: int | None
    grpc_status: int | None
    request_bytes: int
    response_bytes: int
    start_ns: int
    end_ns: int
    time: str
    trace: TraceContext | None
    request_id: str | None
    tls: bool
    partial: bool
    notes: tuple[str, ...]
    request: HttpMessage | None = None
    response: HttpMessage | None = None
    peer_name: str | None = None  # the local peer process's name (peer_pid's), else None
    name: str | None = None  # the observing process's name (from the process table)
    exe: str | None = None  # its executable's path
    container_id: str | None = None  # its container (64 hex digits), else None
    thread: str | None = None  # the name of the thread that made the syscalls

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    def to_dict(self, with_headers: bool = False, redact=None) -> dict:
        d = {
            "protocol": self.protocol, "side": self.side, "pid": self.pid, "comm": self.comm,
            "local": self.local, "remote": self.remote, "peer_pid": self.peer_pid,
            "peer_name": self.peer_name, "conn_id": self.conn_id, "stream_id": self.stream_id,
            "method": self.method,
            "path": self.path, "authority": self.authority, "status": self.status,
            "grpc_status": self.grpc_status, "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes, "start_ns": self.start_ns,
            "end_ns": self.end_ns, "duration_ns": self.duration_ns, "time": self.time,
            "trace": self.trace.to_dict() if self.trace else None,
            "request_id": self.request_id, "tls": self.tls, "partial": self.partial,
            "notes": list(self.notes), "name": self.name, "exe": self.exe,
            "container_id": self.container_id, "thread": self.thread,
        }
        if with_headers:
            for key, msg in (("request_headers", self.request), ("response_headers", self.response)):
                hdrs = list(msg.headers) + list(msg.trailers) if msg else []
                if redact is not None:
                    hdrs = redact(hdrs)
                d[key] = [[k, v] for k, v in hdrs]
        return d


class WallClock:
    """Converts monotonic nanoseconds to RFC 3339 UTC wall-clock text.

    The offset between CLOCK_REALTIME and CLOCK_MONOTONIC is taken once at start; packet
    captures carry wall-clock times already and use ``offset_ns=0``.
    """

    def __init__(self, offset_ns: int | None = None):
        if offset_ns is None:
            import time

            offset_ns = time.time_ns() - time.monotonic_ns()
        self.offset_ns = offset_ns

    def rfc3339(self, mono_ns: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of ``mono_ns + offset_ns``: microseconds truncated,
        a capture file's times (anyone's) held to 1970-9999 (RFC 3339, four-digit years).
        Made in C (dataplane/_buildmodule.c), the same text the record builder writes."""
        return _rfc3339(mono_ns, self.offset_ns)
