"""TCP metrics' per-socket counting in C (l7scope/dataplane/_sockbytesmodule.c): exact counts,
the bound and its evictions, hostile values counted as dropped, reference counts; and the same
records and counters as the Python counting it replaced (sockbytes_reference.py) on random
event sequences."""
from __future__ import annotations

import gc
import sys
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk, Role
from l7scope.capture.tcp_summary import TcpOpen, TcpSummary
from l7scope.dataplane._sockbytes import SocketBytes
from l7scope.tcpmetrics import TcpMetrics, _Bytes

from .sockbytes_reference import ReferenceSocketBytes

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 8080)


def chunk(local=C, remote=S, egress=True, n=100, tid=7, enter=1000, exit_=1500, pid=7,
          comm="curl", role=Role.CLIENT, tls=False):
    return DataChunk(1, egress, enter, b"", n, 0, role, local, remote, pid, tid, comm, 3,
                     "write", enter, exit_, tls)


def summary(local=C, remote=S, role=Role.CLIENT, pid=7, comm="curl"):
    return TcpSummary(ts=2, first_ts=1, role=role, local=local, remote=remote, pid=pid,
                      comm=comm, outcome="established", connect_ns=0, srtt_us=0, rttvar_us=0,
                      retransmits=0, resets_sent=0, resets_received=0, drops=(), drops_other=0,
                      sk_err=0)


def table(max_sockets=8, counters=None):
    counters = Counter(tcp_sockets_evicted=0) if counters is None else counters
    return SocketBytes(max_sockets, counters, DataChunk, ConnectionOpened, TcpSummary,
                       Role.UNKNOWN, _Bytes), counters


def test_counts_bytes_calls_and_write_time_once_per_syscall():
    t, _ = table()
    t.feed([chunk(n=300), chunk(n=200),  # one writev in two chunks: one call, 500 ns once
            chunk(n=50, enter=2000, exit_=2100),
            chunk(egress=False, n=4000, enter=3000, exit_=3400),
            chunk(egress=False, n=96, enter=3000, exit_=3400),
            chunk(egress=False, n=7, tid=8, enter=3000, exit_=3400),  # another thread's read
            chunk(n=999, tls=True)], None)  # TLS plaintext: its socket counts the record
    assert t.get((C, S)) == _Bytes(7, "curl", Role.CLIENT, 550, 4103, 2, 2, 600)
    assert len(t) == 1 and (C, S) in t and (S, C) not in t and t.get((S, C)) is None


def test_owner_and_role_first_seen_opened_overrides():
    t, _ = table()
    t.feed([chunk(pid=None, comm=None, role=Role.UNKNOWN), chunk(pid=9, comm="a", role=Role.SERVER),
            chunk(pid=10, comm="b", role=Role.CLIENT)], None)
    b = t.get((C, S))
    assert (b.pid, b.comm, b.role) == (9, "a", Role.SERVER)
    t.feed([ConnectionOpened(1, 0, Role.CLIENT, C, S, pid=11, comm="c")], None)
    b = t.get((C, S))
    assert (b.pid, b.comm, b.role, b.sent) == (11, "c", Role.CLIENT, 300)


def test_summaries_reach_python_in_their_place_in_the_batch():
    t, _ = table()
    seen = []

    def on_summary(s):
        seen.append((s.local, t.pop((s.local, s.remote), None)))
    t.feed([chunk(n=10), summary(), chunk(n=20, enter=5000, exit_=5001)], on_summary)
    assert seen == [(C, _Bytes(7, "curl", Role.CLIENT, 10, 0, 1, 0, 500))]
    assert t.get((C, S)).sent == 20  # the chunk after the close: a new socket of those ends


def test_full_table_evicts_the_oldest_inserted_and_counts_it():
    t, counters = table(max_sockets=3)
    keys = [(("10.0.0.1", p), S) for p in range(1, 6)]
    t.feed([chunk(*keys[0]), chunk(*keys[1]), chunk(*keys[2]), chunk(*keys[0], enter=9)], None)
    t.feed([chunk(*keys[3]), chunk(*keys[4])], None)  # 0 then 1 go, though 0 moved last
    assert counters["tcp_sockets_evicted"] == 2 and len(t) == 3
    assert [k in t for k in keys] == [False, False, True, True, True]
    assert t.take_moved() == keys[2:] and t.take_moved() == []


def test_reset_zeroes_counts_but_keeps_owner_and_the_last_call():
    t, _ = table()
    t.feed([chunk(n=5)], None)
    t.reset((C, S))
    t.feed([chunk(n=6)], None)  # the same syscall's next chunk: no new call
    assert t.get((C, S)) == _Bytes(7, "curl", Role.CLIENT, 6, 0, 0, 0, 0)


def test_hostile_values_are_dropped_and_counted():
    t, counters = table()
    bad = [chunk(n=-1), chunk(n=1 << 63), chunk(n="5"), chunk(n=None), chunk(tid=-3),
           chunk(enter=1 << 64), chunk(exit_=1.5), chunk(enter=0, exit_=1 << 63),
           chunk(local=[1]), DataChunk(*chunk()[:3], b"", 5, 0, Role.CLIENT, {}, S)]
    t.feed(bad + [None, 7, ConnectionClosed(1, 2)], None)
    assert counters["tcp_events_malformed"] == len(bad) and len(t) == 0
    t.feed([chunk(n=(1 << 63) - 1), chunk(n=1, enter=5)], None)  # the sum would pass 2**63 - 1
    assert t.get((C, S)).sent == (1 << 63) - 1 and counters["tcp_events_malformed"] == 11
    t.feed([ConnectionOpened(1, 0, Role.CLIENT, [C], S)], None)
    assert counters["tcp_events_malformed"] == 12
    assert "tcp_events_malformed" not in table()[1]  # the key comes with the first count


def test_no_reference_is_kept_once_a_socket_is_gone():
    local, comm = ("10.0.0.%d" % 1, 40000), "".join(["cu", "rl"])
    before = (sys.getrefcount(local), sys.getrefcount(comm))
    t, _ = table(max_sockets=1)
    t.feed([chunk(local=local, comm=comm)] * 3, None)
    assert sys.getrefcount(local) > before[0]
    t.feed([chunk(local=("x", 1))], None)  # evicts it
    assert (sys.getrefcount(local), sys.getrefcount(comm)) == before
    t.feed([chunk(local=local, comm=comm)], None)
    del t
    gc.collect()
    assert (sys.getrefcount(local), sys.getrefcount(comm)) == before


# ---- the same records as the Python counting -------------------------------------------------

ENDS = [C, S, ("10.0.0.1", 40001), ("fd00::2", 443), ("10.0.0.2", 8080)]  # S twice, as equal
NUMBER = st.one_of(st.integers(0, 5000), st.integers(0, 5000), st.sampled_from(
    [None, -1, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 64, 1.5, "7", True]))


@st.composite
def event(draw):
    kind = draw(st.integers(0, 9))
    local, remote = draw(st.sampled_from(ENDS)), draw(st.sampled_from(ENDS))
    role = draw(st.sampled_from([Role.UNKNOWN, Role.CLIENT, Role.SERVER, 0, None]))
    pid = draw(st.sampled_from([None, 7, 17]))
    comm = None if pid is None else f"p{pid}"
    if kind == 0:
        return ConnectionOpened(1, 0, role, local, remote, pid=pid, comm=comm)
    if kind == 1:
        return summary(local, remote, draw(st.sampled_from([Role.CLIENT, Role.SERVER])),
                       pid, comm)
    if kind == 2:
        return draw(st.sampled_from([None, 3, ConnectionClosed(1, 2)]))
    call = draw(st.integers(0, 3))  # few distinct calls: chunks of one syscall are common
    tid, enter, exit_ = (draw(NUMBER) for _ in range(3)) if call == 3 else (7, call, call * 9)
    return chunk(local, remote, draw(st.booleans()), draw(NUMBER), tid, enter, exit_, pid,
                 comm, role, draw(st.integers(0, 15)) == 0)


def _pair(max_sockets, live):
    compiled = TcpMetrics(max_sockets=max_sockets, reasons={}, live=lambda: live)
    reference = TcpMetrics(max_sockets=max_sockets, reasons={}, live=lambda: live)
    reference._open = ReferenceSocketBytes(max_sockets, reference.counters, _Bytes)
    return compiled, reference


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4), st.lists(st.tuples(st.lists(event(), max_size=12), st.booleans(),
                                             st.booleans()), max_size=8))
def test_same_records_and_counters_as_the_python_counting(max_sockets, steps):
    live: list = []
    compiled, reference = _pair(max_sockets, live)
    for i, (batch, interval, with_live) in enumerate(steps):
        compiled.feed(batch)
        reference.feed(batch)
        for key in [(a, b) for a in ENDS for b in ENDS]:
            assert compiled._open.get(key) == reference._open.get(key)
        assert compiled._closed == reference._closed
        if interval:
            live[:] = [TcpOpen(Role.CLIENT, C, S, i, 0, 0, (), 0)] if with_live else []
            assert compiled.snapshot(i, i + 1) == reference.snapshot(i, i + 1)
        assert compiled.counters == reference.counters
        assert len(compiled._open) == len(reference._open)
