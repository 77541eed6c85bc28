"""A scripted run for the store and API tests: Exchange records as the pipeline builds them,
with the exact counts a user would check.

Times are wall-clock ns (as in a capture file: the sink's to_wall_ns is the identity);
``NOW`` is 120 s after ``T0``.

    curl(100) -> nginx(200)       10.0.0.1:45000 -> 10.0.0.2:80, both sides traced, 9 requests:
                                  5 x /fast 200 (server 10 ms, client 11 ms) at t=10..14 s,
                                  /slow 200 (600 / 601 ms) at 20, 2 x /missing 404 (5 / 6 ms)
                                  at 30, 31, /boom?token=abc 500 (20 / 21 ms) at 40
    nginx(201) -> python3(300)    127.0.0.1:50000 -> 127.0.0.1:8000, both sides, 3 requests:
                                  /fast 200 (8 / 9 ms) at 10, /slow 200 (590 / 591) at 20,
                                  /boom 500 (18 / 19) at 40
    192.168.1.5 -> nginx(200)     server side only, 2 x /fast 200, 30 ms, at 100, 101
    nginx(200) -> 93.184.216.34:443   client side only, no response, at 50
    app(400) -> 10.1.1.1:50051    gRPC, client side only, status 200, grpc-status 14, 40 ms, at 60
"""
from __future__ import annotations

from l7scope.config import SamplingConfig
from l7scope.exchange import Exchange, TraceContext
from l7scope.metrics import pair_of
from l7scope.protocols.message import HttpMessage
from l7scope.sampling import Sampler

S = 10**9
MS = 10**6
T0 = 1_700_000_000 * S
NOW = T0 + 120 * S
NAMES = {100: "curl", 200: "nginx", 201: "nginx", 300: "python3", 400: "app"}
TRACE = TraceContext("w3c", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", None, True)
SECRET = "Bearer s3cret"


def peer_name(ex: Exchange) -> str | None:
    return NAMES.get(ex.peer_pid)


def make(side, pid, local, remote, peer_pid, status, dur_ms, t_s, path="/", *, protocol="http1",
         grpc_status=None, conn_id=1, trace=None, raw=False) -> Exchange:
    start = T0 + int(t_s * S)
    end = start + int(dur_ms * MS) if status is not None else start
    req = resp = None
    if raw:
        req = HttpMessage(True, start, start, 100, (("host", "shop.test"), ("authorization", SECRET)),
                          method="GET", path=path, authority="shop.test", version="HTTP/1.1")
        resp = HttpMessage(False, end, end, 200, (("content-length", "0"),), status=status,
                           version="HTTP/1.1")
    return Exchange(
        protocol=protocol, side=side, pid=pid, comm=NAMES.get(pid), local=local, remote=remote,
        peer_pid=peer_pid, conn_id=conn_id, stream_id=1 if protocol == "grpc" else None,
        method="GET" if protocol == "http1" else "POST", path=path, authority="shop.test",
        status=status, grpc_status=grpc_status, request_bytes=100,
        response_bytes=200 if status is not None else 0, start_ns=start, end_ns=end,
        time=f"t+{t_s}", trace=trace, request_id=None, tls=False,
        partial=status is None, notes=("no response",) if status is None else (),
        request=req, response=resp)


def both_sides(client, server, cpid, spid, status, server_ms, t_s, path, **kw) -> list[Exchange]:
    """The server's record, then the client's (1 ms longer), as a traced pair produces them."""
    return [make("server", spid, server, client, cpid, status, server_ms, t_s, path, conn_id=2, **kw),
            make("client", cpid, client, server, spid, status, server_ms + 1, t_s, path, conn_id=1, **kw)]


def records() -> list[Exchange]:
    c, s = "10.0.0.1:45000", "10.0.0.2:80"
    out = []
    for i in range(5):
        out += both_sides(c, s, 100, 200, 200, 10, 10 + i, "/fast")
    out += both_sides(c, s, 100, 200, 200, 600, 20, "/slow", raw=True)
    out += both_sides(c, s, 100, 200, 404, 5, 30, "/missing", raw=True)
    out += both_sides(c, s, 100, 200, 404, 5, 31, "/missing", raw=True)
    out += both_sides(c, s, 100, 200, 500, 20, 40, "/boom?token=abc", raw=True, trace=TRACE)
    pc, ps = "127.0.0.1:50000", "127.0.0.1:8000"
    out += both_sides(pc, ps, 201, 300, 200, 8, 10, "/fast")
    out += both_sides(pc, ps, 201, 300, 200, 590, 20, "/slow", raw=True)
    out += both_sides(pc, ps, 201, 300, 500, 18, 40, "/boom", raw=True)
    for t in (100, 101):
        out.append(make("server", 200, s, "192.168.1.5:51000", None, 200, 30, t, "/fast", conn_id=5))
    out.append(make("client", 200, "10.0.0.2:40000", "93.184.216.34:443", None, None, 0, 50,
                    "/upstream", conn_id=6))
    out.append(make("client", 400, "10.0.0.3:40001", "10.1.1.1:50051", None, 200, 40, 60,
                    "/shop.Cart/Add", protocol="grpc", grpc_status=14, conn_id=7))
    return out


def sampled(exchanges: list[Exchange]) -> dict:
    """The default sampling rules (slow >= 500 ms, 4xx, 5xx) over the records: top-N lists."""
    sampler = Sampler(SamplingConfig(),
                      pair_key=lambda ex: pair_of(ex, peer_name(ex))[:2] + (ex.protocol,))
    for ex in exchanges:
        sampler.offer(ex)
    return sampler.drain()


def fill(store):
    """The scripted run written through the store sink as the agent writes it: every record,
    one interval of pair metrics and samples, and a counters snapshot; returns the sink with
    everything flushed (still open)."""
    from l7scope.metrics import MetricsAggregator
    from l7scope.outputs.store import StoreSink

    sink = StoreSink(store, node="host-a", peer_name=peer_name, to_wall_ns=lambda ns: ns,
                     now_ns=lambda: NOW)
    recs = records()
    agg = MetricsAggregator()
    for ex in recs:
        sink(ex)
        agg.record(ex, peer_name(ex))
    sink.on_interval(agg.snapshot(T0, NOW), sampled(recs),
                     {"exchanges": len(recs), "ringbuf_dropped": 2, "parse_error_bad_start": 1})
    assert sink.flush()
    return sink
