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

and the ``tcp_metrics`` records of those connections (``tcp_records``), per 10 s interval:

    curl -> nginx      at 10: 5 connects (0.2, 0.3, 0.4, 0.6, 3 ms), 1,000 B sent, 5,000 B
                       received, RTT 40, 60, 60, 120, 120, 2,000 us, 2 retransmits,
                       1 TCP_OFO_DROP;  at 30: 3 connects (0.4 ms each), 1 refused, 600 / 1,400 B,
                       RTT 80 x 3, 1 retransmit, 1 reset received, 2 NETFILTER_DROP
    nginx -> python3   at 10 (the record names the server by its service, "python3 app.py"):
                       2 connects (0.1 ms), 300 / 900 B, RTT 30, 30, 45, 45
    192.168.1.5 -> nginx   at 100: 2 accepts, 200 / 400 B, 1 reset sent, RTT 900, 1,100 us
    nginx -> 10.9.9.9:5432 at 50: no protocol, 1 connect timed out (a pair the topology lacks)
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


def tcp_record(client, server, cpid, spid, t_s, *, connect_ms=(), rtt_us=(), failures=None,
               drops=None, **counts) -> dict:
    """A tcp_metrics record as l7scope/tcpmetrics.py builds one for the interval at t_s."""
    from l7scope.metrics_types import DURATION_MS_BOUNDS
    from l7scope.tcpmetrics import RTT_US_BOUNDS, _histogram

    rec = {"kind": "tcp_metrics", "client": client, "server": server,
           "client_pid": cpid, "server_pid": spid,
           "interval_start_ns": T0 + t_s * S, "interval_end_ns": T0 + (t_s + 10) * S,
           "connects": len(connect_ms), "accepts": 0,
           "connect_failures": sum((failures or {}).values()),
           "connect_failures_by_reason": dict(failures or {}),
           "connect_ms": _histogram(list(connect_ms), DURATION_MS_BOUNDS).to_dict(),
           "bytes_sent": 0, "bytes_received": 0, "write_calls": 0, "read_calls": 0,
           "write_ms": 0.0, "rtt_us": _histogram(list(rtt_us), RTT_US_BOUNDS).to_dict(),
           "retransmits": 0, "resets_sent": 0, "resets_received": 0, "drops": dict(drops or {})}
    rec.update(counts)
    return rec


def tcp_records() -> list[dict]:
    return [
        tcp_record("curl", "nginx", 100, 200, 10, connect_ms=(0.2, 0.3, 0.4, 0.6, 3.0),
                   accepts=5, bytes_sent=1000, bytes_received=5000, write_calls=10,
                   read_calls=12, write_ms=0.25, rtt_us=(40, 60, 60, 120, 120, 2000),
                   retransmits=2, drops={"TCP_OFO_DROP": 1}),
        tcp_record("curl", "nginx", 100, 200, 30, connect_ms=(0.4, 0.4, 0.4), accepts=3,
                   failures={"refused": 1}, bytes_sent=600, bytes_received=1400,
                   rtt_us=(80, 80, 80), retransmits=1, resets_received=1,
                   drops={"NETFILTER_DROP": 2}),
        tcp_record("nginx", "python3 app.py", 201, 300, 10, connect_ms=(0.1, 0.1), accepts=2,
                   bytes_sent=300, bytes_received=900, rtt_us=(30, 30, 45, 45)),
        tcp_record("192.168.1.5", "nginx", None, 200, 100, accepts=2, bytes_sent=200,
                   bytes_received=400, resets_sent=1, rtt_us=(900, 1100)),
        tcp_record("nginx", "10.9.9.9:5432", 200, None, 50, failures={"timed_out": 1}),
    ]


def sampled(exchanges: list[Exchange]) -> dict:
    """The default sampling rules (slow >= 500 ms, 4xx, 5xx) over the records: top-N lists."""
    sampler = Sampler(SamplingConfig(),
                      pair_key=lambda ex: pair_of(ex, peer_name(ex))[:2] + (ex.protocol,))
    for ex in exchanges:
        sampler.offer(ex)
    return sampler.drain()


def fill(store):
    """The scripted run written through the store sink as the agent writes it: every record,
    one interval of pair metrics and samples, the tcp_metrics records, and a counters
    snapshot; returns the sink with everything flushed (still open)."""
    from l7scope.metrics import MetricsAggregator
    from l7scope.outputs.store import StoreSink

    sink = StoreSink(store, node="host-a", peer_name=peer_name, to_wall_ns=lambda ns: ns,
                     now_ns=lambda: NOW, process_name=NAMES.get)
    recs = records()
    agg = MetricsAggregator()
    for ex in recs:
        sink(ex)
        agg.record(ex, peer_name(ex))
    sink.on_tcp_metrics(tcp_records())
    # written before the snapshot, so its store counters are the same on every backend
    assert sink.flush()
    sink.on_interval(agg.snapshot(T0, NOW), sampled(recs),
                     {"exchanges": len(recs), "ringbuf_dropped": 2, "parse_error_bad_start": 1})
    assert sink.flush()
    return sink
