"""The global parser-memory budget of the connection table.

Every connection's figure (its analyzer's memory() plus bytes held undecided before detection)
adds up to ``memory_total``; over ``max_memory`` whole connections are shed, least recently
used first, their pending exchanges reported partial, and the shedding counted.
"""
from __future__ import annotations

import gc
import tracemalloc

from l7scope.capture.events import ConnectionClosed, ConnectionOpened, Role
from l7scope.conn.table import SHED_NOTE, ConnectionTable
from l7scope.exchange import WallClock
from l7scope.pipeline import Pipeline
from l7scope.protocols.http1 import Http1Analyzer
from l7scope.protocols.message import AnalyzerLimits, ExchangeParsed
from tests.conn.h2_peers import CLIENT_EP, SERVER_EP, chunk

HEAD = b"GET /upload HTTP/1.1\r\nHost: h\r\nX-Filler: "  # a head that never ends


def opened(conn_id: int, ts: int = 1, pid: int | None = 7) -> ConnectionOpened:
    return ConnectionOpened(conn_id, ts, Role.CLIENT, CLIENT_EP, SERVER_EP, pid=pid, comm="c")


def run(table: ConnectionTable, events) -> list:
    out = []
    for ev in events:
        out += table.handle(ev)
    return out


def test_memory_total_follows_each_connection_and_returns_to_zero():
    t = ConnectionTable()
    run(t, [opened(1), chunk(1, True, 10, HEAD + b"a" * 5000)])
    a = t.conns[1].analyzer
    assert t.memory_total == t.conns[1].memory == a.memory()
    assert a.memory() >= 5000 + len(HEAD)
    run(t, [opened(2), chunk(2, True, 10, HEAD + b"b" * 100)])
    assert t.memory_total == t.conns[1].memory + t.conns[2].memory
    run(t, [chunk(1, True, 20, b"\r\n\r\n")])  # the head ends: a request waiting, fields kept
    assert t.conns[1].memory == t.conns[1].analyzer.memory() > 5000
    run(t, [chunk(1, False, 30, b"HTTP/1.1 204 No Content\r\n\r\n")])  # answered: released
    assert t.conns[1].memory == Http1Analyzer().memory()
    run(t, [ConnectionClosed(1, 30), ConnectionClosed(2, 30)])
    assert t.memory_total == 0


def test_bytes_held_before_detection_count():
    t = ConnectionTable()
    # a request line not yet whole with a method token detection does not know: undecided
    start = b"FOOBAR /" + b"z" * 10000
    run(t, [chunk(3, True, 10, start, role=Role.CLIENT, local=CLIENT_EP, remote=SERVER_EP)])
    conn = t.conns[3]
    assert (conn.analyzer, len(conn.pending)) == (None, len(start))
    assert t.memory_total == conn.memory == len(start)
    run(t, [chunk(3, True, 20, b"\xff" * 10000)])  # not HTTP after all: held bytes dropped
    assert (conn.pending, t.memory_total) == (b"", 0)


def test_over_budget_the_least_recently_used_connection_is_shed_with_its_pending_exchange():
    t = ConnectionTable(max_memory=40_000)
    run(t, [opened(1), chunk(1, True, 10, HEAD + b"a" * 10_000)])
    run(t, [opened(2), chunk(2, True, 11, b"GET /waiting HTTP/1.1\r\nHost: h\r\n\r\n")])
    run(t, [opened(3), chunk(3, True, 12, HEAD + b"c" * 10_000)])
    run(t, [chunk(1, True, 13, b"a" * 10)])  # connection 1 is used again: 2 is now the oldest
    assert t.counters["connections_shed_memory"] == 0
    figure = t.conns[2].memory
    out = run(t, [opened(4), chunk(4, True, 14, HEAD + b"d" * 10_000)])
    assert sorted(t.conns) == [1, 3, 4]
    assert (t.counters["connections_shed_memory"], t.counters["bytes_shed_memory"]) == (1, figure)
    [(conn, ex)] = [(c, e) for c, e in out if type(e) is ExchangeParsed]
    assert (conn.conn_id, ex.request.path, ex.response, ex.notes) == (
        2, "/waiting", None, ("no response", SHED_NOTE))
    assert t.memory_total <= 40_000


def test_a_connection_alone_over_the_budget_is_shed_too():
    t = ConnectionTable(max_memory=8_000)
    out = run(t, [opened(1), chunk(1, True, 10, HEAD + b"a" * 9_000)])
    assert 1 not in t.conns and t.memory_total == 0
    assert t.counters["connections_shed_memory"] == 1
    [ex] = [e for _, e in out if type(e) is ExchangeParsed]
    assert (ex.request.path, ex.request.complete, ex.notes) == ("/upload", False, ("no response", SHED_NOTE))


def test_http1_memory_counts_pending_requests_with_their_headers_and_bodies():
    a = Http1Analyzer(AnalyzerLimits(max_pending=1000))
    empty = a.memory()
    req = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3000\r\n\r\n" + b"x" * 3000
    a.feed(True, req * 10, 1)
    held = a.memory() - empty
    assert 10 * 3000 < held < 10 * (3000 + 2000)  # ten captured bodies (limit 4096) and heads
    a.feed(False, b"HTTP/1.1 204 No Content\r\n\r\n" * 10, 2)
    assert a.memory() == empty


def test_http1_memory_counts_a_body_being_captured_up_to_the_capture_limit():
    a = Http1Analyzer()
    empty = a.memory()
    a.feed(True, b"POST /p HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 2000, 1)
    first = a.memory()
    a.feed(True, b"x" * 50_000, 2)  # past body_capture (4096): nothing more is kept
    assert first - empty > 2000
    assert a.memory() - first == 4096 - 2000


def test_sixteen_thousand_unterminated_heads_stay_within_the_budget():
    """16,384 connections each send 60 KB of a head that never ends (1 GB unbounded)."""
    budget = 8 << 20
    table = ConnectionTable(max_memory=budget)
    shed_exchanges = []

    def observe(ex):
        if SHED_NOTE in ex.notes:
            shed_exchanges.append(ex.conn_id)

    p = Pipeline(table=table, observers=[observe], clock=WallClock(offset_ns=0))
    filler = b"v" * 60_000
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        highest = 0
        for conn_id in range(1, 16_385):
            head = HEAD + b"%d-" % conn_id + filler  # a fresh object per connection
            # no pid: the peer index (a fixed part outside the budget, bounded by its own
            # 65,536 endpoints) learns nothing, so what is measured is the parsers' state
            p.feed([opened(conn_id, conn_id, pid=None), chunk(conn_id, True, conn_id, head)])
            highest = max(highest, table.memory_total)
            del head
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert highest <= budget
    kept = len(table.conns)
    assert 100 < kept < 140  # about 62 KB accounted each
    assert table.counters["connections_shed_memory"] == 16_384 - kept
    assert table.counters["bytes_shed_memory"] > (16_384 - kept) * 60_000
    assert sorted(shed_exchanges) == list(range(1, 16_385 - kept))
    # Python's own view (8.7 MiB measured): the budget, one connection over it before
    # shedding, transient copies; unbounded, it would be 1 GB
    assert peak - base < budget + (2 << 20)
