"""Shared builders for the sampling, span-event and exporter tests."""
from __future__ import annotations

import contextlib
import threading
from concurrent import futures

import grpc
from skywalking.protocol.common.Command_pb2 import Commands
from skywalking.protocol.language_agent.Tracing_pb2 import SpanAttachedEvent
from skywalking.protocol.language_agent.Tracing_pb2_grpc import (
    SpanAttachedEventReportServiceServicer, add_SpanAttachedEventReportServiceServicer_to_server,
)

from l7scope.config import SamplingConfig, SamplingRule
from l7scope.exchange import Exchange, TraceContext
from l7scope.metrics_types import DURATION_MS_BOUNDS, SIZE_BYTES_BOUNDS, Histogram, PairMetrics
from l7scope.protocols.message import HttpMessage
from l7scope.sampling import Sampler

WALL_OFFSET_NS = 1_700_000_000_000_000_000  # wall = mono + offset in these tests
B3_TRACE = TraceContext(provider="zipkin", trace_id="80f198ee56343ba864fe8b2a57d3eff7",
                        span_id="e457b5a2e4d86bd1", parent_span_id="05e3ac9a4f6e3b90",
                        sampled=True)
W3C_TRACE = TraceContext(provider="w3c", trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                         span_id="00f067aa0ba902b7", sampled=True)
SW8_TRACE = TraceContext(provider="skywalking", trace_id="trace-1.2.3", span_id="2",
                         sampled=True, segment_id="segment-9")


def mono_to_wall_ns(mono_ns: int) -> int:
    return mono_ns + WALL_OFFSET_NS


def make_exchange(*, path="/api/users?id=1", status=200, duration_ms=10.0, side="server",
                  trace=B3_TRACE, grpc_status=None, start_ns=5_000_000_000,
                  request_body=b"", response_body=b'{"ok":true}',
                  request_headers=(("Host", "svc"), ("Authorization", "Bearer s3cret")),
                  response_headers=(("Content-Type", "application/json"),),
                  response_complete=True, protocol="http1", pid=42, comm="api",
                  peer_pid=None) -> Exchange:
    end_ns = start_ns + int(duration_ms * 1_000_000)
    request = HttpMessage(is_request=True, start_ns=start_ns, end_ns=start_ns + 1000,
                          wire_bytes=120, headers=tuple(request_headers), method="GET",
                          path=path, authority="svc", version="HTTP/1.1", body=request_body,
                          body_len=len(request_body))
    response = HttpMessage(is_request=False, start_ns=end_ns - 2000, end_ns=end_ns,
                           wire_bytes=80, headers=tuple(response_headers), status=status,
                           version="HTTP/1.1", body=response_body,
                           body_len=len(response_body), complete=response_complete)
    return Exchange(
        protocol=protocol, side=side, pid=pid, comm=comm, local="10.1.0.2:8080",
        remote="10.1.0.3:51234", peer_pid=peer_pid, conn_id=7, stream_id=None, method="GET",
        path=path, authority="svc", status=status, grpc_status=grpc_status,
        request_bytes=120, response_bytes=80, start_ns=start_ns, end_ns=end_ns,
        time="2023-11-14T22:13:25.000000Z", trace=trace, request_id=None, tls=False,
        partial=False, notes=(), request=request, response=response)


def sample(ex: Exchange, rule: SamplingRule | None = None):
    """The SampledExchange the default-configured sampler makes of ``ex``."""
    config = SamplingConfig(rules=(rule or SamplingRule(min_duration_ms=0),))
    sampled = Sampler(config).offer(ex)
    assert sampled is not None
    return sampled


def histogram(bounds, values) -> Histogram:
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
    return Histogram(tuple(bounds), tuple(counts), float(sum(values)), len(values))


def make_pair_metrics(*, client="curl(100)", server="nginx(200)", requests=3,
                      statuses=(("200", 2), ("503", 1)), sizes=(100, 300, 5000),
                      durations_ms=(0.4, 3, 700), start_ns=WALL_OFFSET_NS,
                      end_ns=WALL_OFFSET_NS + 10_000_000_000) -> PairMetrics:
    return PairMetrics(
        protocol="http1", client=client, server=server, client_pid=100, server_pid=200,
        interval_start_ns=start_ns, interval_end_ns=end_ns, requests=requests,
        status_counts=tuple(statuses), errors=1,
        request_bytes=histogram(SIZE_BYTES_BOUNDS, sizes),
        response_bytes=histogram(SIZE_BYTES_BOUNDS, [s * 2 for s in sizes]),
        client_duration_ms=histogram(DURATION_MS_BOUNDS, ()),
        server_duration_ms=histogram(DURATION_MS_BOUNDS, durations_ms))


# --- receivers and waiting ---------------------------------------------------------------

import socket  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


def wait_for(predicate, timeout_s: float = 10.0) -> None:
    """Poll until predicate() is true; fail the test when it never becomes true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpReceiver:
    """Records POSTs on 127.0.0.1:<ephemeral>; ``hold`` blocks handlers until released."""

    def __init__(self, status: int = 202):
        self.posts: list[tuple[str, dict, bytes]] = []
        self.status = status
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrived.set()
                receiver.hold.wait(30)
                receiver.posts.append((self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


# --- a SkyWalking OAP stand-in: the real gRPC service from the protocol modules -------------

class SkyWalkingCollector(SpanAttachedEventReportServiceServicer):
    """Receives SpanAttachedEvent streams; `hold` cleared makes it hang (a slow collector)."""

    def __init__(self):
        self.streams: list[list[SpanAttachedEvent]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()

    def collect(self, request_iterator, context):
        events = list(request_iterator)
        self.arrived.set()
        self.hold.wait(30)
        self.streams.append(events)
        return Commands()


@contextlib.contextmanager
def skywalking_collector():
    """(collector, "127.0.0.1:port") of a running gRPC server."""
    collector = SkyWalkingCollector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_SpanAttachedEventReportServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield collector, f"127.0.0.1:{port}"
    finally:
        collector.hold.set()
        server.stop(0)


def tcp_record(client: str = "curl", server: str = "nginx", **fields) -> dict:
    """A tcp_metrics record as l7scope/tcpmetrics.py builds one: the deltas of one interval,
    zero but for ``fields``."""
    record = {"kind": "tcp_metrics", "client": client, "server": server,
              "connects": 0, "accepts": 0, "connect_failures": 0,
              "connect_failures_by_reason": {},
              "connect_ms": {"bounds": [0.5, 1.0, 2.5], "counts": [0, 0, 0, 0], "sum": 0.0,
                             "count": 0},
              "bytes_sent": 0, "bytes_received": 0,
              "rtt_us": {"bounds": [50, 100, 250], "counts": [0, 0, 0, 0], "sum": 0.0,
                         "count": 0},
              "retransmits": 0, "resets_sent": 0, "resets_received": 0, "drops": {}}
    record.update(fields)
    return record
