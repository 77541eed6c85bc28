"""A fixed replay of raw ring-buffer records and the JSON Lines the agent's path writes for it.

Used by test_jsonl_golden.py; golden/replay.jsonl was written by this module against the code
before the compiled decoder and JSON Lines encoder (main at b26aa7c):

    PYTHONPATH=/path/to/that/checkout python -m tests.outputs.replay_records > golden/replay.jsonl

The records cover what the per-record path and the record builder treat differently: keep-
alive exchanges both ends traced, pipelining, a hole in the stream (a partial record with
notes), a response that never comes (closed: partial), trace headers and x-request-id, a path
with escapes and non-ASCII text, a secret query parameter (redacted), 4xx and 5xx statuses, a
gRPC-status header over HTTP/1, IPv6 endpoints and a connection seen only from its middle.
"""
from __future__ import annotations

import ipaddress
import os
import struct
import sys
import tempfile

from l7scope.capture import wire_layout as L

HEADER = struct.Struct(L.L7_EVENT_FORMAT[: -len("4096s")])
DATA, OPEN, CLOSE = (L.ENUMS["l7_kind"][f"L7_KIND_{k}"] for k in ("DATA", "OPEN", "CLOSE"))
EGRESS, INGRESS = L.ENUMS["l7_direction"]["L7_DIR_EGRESS"], L.ENUMS["l7_direction"]["L7_DIR_INGRESS"]
WALL_OFFSET = 1_764_540_000 * 10**9


class Sock:
    def __init__(self, conn_id, pid, comm, role, laddr, lport, raddr, rport, family=2):
        self.conn_id, self.pid, self.comm, self.role = conn_id, pid, comm.ljust(16, b"\0"), role
        self.family, self.lport, self.rport = family, lport, rport
        self.laddr = ipaddress.ip_address(laddr).packed.ljust(16, b"\0")
        self.raddr = ipaddress.ip_address(raddr).packed.ljust(16, b"\0")
        self.seq = {EGRESS: 100, INGRESS: 7000}

    def rec(self, kind, direction=0, ts=0, payload=b"", skip=0) -> bytes:
        seq = (self.seq.get(direction, 0) + skip) & 0xFFFFFFFF
        if kind == DATA:
            self.seq[direction] = (seq + len(payload)) & 0xFFFFFFFF
        return HEADER.pack(ts, ts + 700, self.conn_id, self.pid, self.pid + 1, 9, seq,
                           len(payload), 0, len(payload), len(payload), kind, direction,
                           4 if direction == EGRESS else 1, self.role, self.family, 0,
                           self.lport, self.rport, self.laddr, self.raddr, self.comm) + payload


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: svc:8080\r\n" + extra + b"\r\n"


def ok(status: int = 200, body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n" % (status, len(body))) + extra + \
        b"\r\n" + body


def exchange(client: Sock, server: Sock, ts: int, req: bytes, resp: bytes) -> list[bytes]:
    return [client.rec(DATA, EGRESS, ts, req), server.rec(DATA, INGRESS, ts + 1000, req),
            server.rec(DATA, EGRESS, ts + 3000, resp), client.rec(DATA, INGRESS, ts + 4000, resp)]


def records() -> list[bytes]:
    c = Sock(11, 500, b"curl", 1, "10.1.0.1", 41000, "10.1.0.2", 8080)
    s = Sock(12, 600, b"nginx", 2, "10.1.0.2", 8080, "10.1.0.1", 41000)
    v6c = Sock(21, 700, b"client6", 1, "fd00::1", 42000, "fd00::2", 9090, family=10)
    mid = Sock(31, 800, b"late", 0, "10.1.0.9", 50000, "10.1.0.8", 80)
    out = [c.rec(OPEN, ts=10), s.rec(OPEN, ts=20), v6c.rec(OPEN, ts=30)]
    ts = 1_000_000
    steps = [
        (get("/"), ok()),
        (get("/a?token=s3cret&x=1"), ok(404, b"nope")),
        (get('/q?x="\\\u00e9'), ok(500, b"err")),
        (get("/t", b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
             b"x-request-id: r-42\r\n"), ok(200, b"", b"grpc-status: 7\r\n")),
        (get("/b3", b"b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n"), ok()),
    ]
    for req, resp in steps:
        out += exchange(c, s, ts, req, resp)
        ts += 10_000
    pipelined = get("/p1") + get("/p2")
    out += [c.rec(DATA, EGRESS, ts, pipelined), s.rec(DATA, INGRESS, ts + 500, pipelined),
            s.rec(DATA, EGRESS, ts + 900, ok() + ok(201)), c.rec(DATA, INGRESS, ts + 950, ok() + ok(201))]
    ts += 10_000
    out += [c.rec(DATA, EGRESS, ts, get("/gap")), c.rec(DATA, INGRESS, ts + 100, ok()[:10]),
            c.rec(DATA, INGRESS, ts + 200, ok()[20:], skip=10)]  # a hole inside the response
    ts += 10_000
    out += exchange(v6c, Sock(22, 900, b"server6", 2, "fd00::2", 9090, "fd00::1", 42000, 10),
                    ts, get("/six"), ok())
    out += [mid.rec(DATA, EGRESS, ts + 10, get("/mid")), mid.rec(DATA, INGRESS, ts + 20, ok())]
    out += [c.rec(DATA, EGRESS, ts + 5000, get("/never")), c.rec(CLOSE, ts=ts + 9000),
            s.rec(CLOSE, ts=ts + 9100)]
    return out


def replay_lines() -> str:
    """The JSON Lines file the agent's path writes for records() (no process table)."""
    from l7scope.capture.wire import WireDecoder
    from l7scope.conn.table import ConnectionTable
    from l7scope.exchange import WallClock
    from l7scope.outputs.jsonl import JsonlSink
    from l7scope.pipeline import Pipeline
    from l7scope.redact import Redactor

    decoder = WireDecoder()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.jsonl")
        sink = JsonlSink(path)
        pipe = Pipeline(table=ConnectionTable(), clock=WallClock(offset_ns=WALL_OFFSET),
                        batch_observers=[sink.write_exchanges],
                        redact_path=Redactor().redact_path)
        pipe.feed([ev for ev in map(decoder.decode, records()) if ev is not None])
        pipe.finish()
        sink.close()
        with open(path, encoding="ascii") as f:
            return f.read()


if __name__ == "__main__":
    sys.stdout.write(replay_lines())
