"""The Python per-socket counting that TcpMetrics.feed did before dataplane/_sockbytesmodule.c
(tcpmetrics.py at 29cd2ec: feed, _socket, _data and the _moved set), with SocketBytes' API, kept
here only as the reference of tests/dataplane/test_sockbytes.py.

One rule is added, the compiled type's: a chunk whose numbers it cannot take (length, tid or
times not ints in 0 .. 2**64 - 1, length at most 2**63 - 1, a sum past 2**63 - 1, ends that
cannot be hashed) changes nothing and is counted as ``tcp_events_malformed``; the old code added
such values as Python did or raised.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from l7scope.capture.events import ConnectionOpened, DataChunk, Role
from l7scope.capture.tcp_summary import TcpSummary

I64 = (1 << 63) - 1
U64 = (1 << 64) - 1


@dataclass(slots=True)
class _Socket:
    pid: object = None
    comm: object = None
    role: object = Role.UNKNOWN
    sent: int = 0
    received: int = 0
    writes: int = 0
    reads: int = 0
    write_ns: int = 0
    last_call: tuple = ()


def _number(v, top: int, none_ok: bool) -> bool:
    if v is None:
        return none_ok
    return isinstance(v, int) and 0 <= v <= top


def _readable(ev: DataChunk) -> bool:
    if not _number(ev.length, I64, False):
        return False
    if not all(_number(v, U64, True) for v in (ev.tid, ev.ts_enter, ev.ts_exit)):
        return False
    try:
        hash((ev.local, ev.remote))
    except TypeError:
        return False
    return max(0, (ev.ts_exit or 0) - (ev.ts_enter or 0)) <= I64


class ReferenceSocketBytes:
    def __init__(self, max_sockets, counters, bytes_type):
        self.max_sockets, self.counters, self.bytes_type = max_sockets, counters, bytes_type
        self._open: OrderedDict[tuple, _Socket] = OrderedDict()
        self._moved: set[tuple] = set()

    def feed(self, events, on_summary) -> None:
        for ev in events:
            t = type(ev)
            if t is DataChunk:
                if not ev.tls:
                    self._data(ev)
            elif t is TcpSummary:
                on_summary(ev)
            elif t is ConnectionOpened:
                b = self._socket((ev.local, ev.remote))
                b.pid, b.comm, b.role = ev.pid, ev.comm, ev.role

    def _socket(self, key: tuple) -> _Socket:
        b = self._open.get(key)
        if b is None:
            if len(self._open) >= self.max_sockets:
                self._open.popitem(last=False)
                self.counters["tcp_sockets_evicted"] += 1
            b = self._open[key] = _Socket()
        return b

    def _data(self, ev: DataChunk) -> None:
        key = (ev.local, ev.remote)
        if not _readable(ev) or not self._fits(key, ev):
            self.counters["tcp_events_malformed"] += 1
            return
        self._moved.add(key)
        b = self._socket(key)
        if b.pid is None:
            b.pid, b.comm = ev.pid, ev.comm
        if b.role == Role.UNKNOWN:
            b.role = ev.role
        call = (ev.tid, ev.ts_enter, ev.ts_exit)
        new_call = call != b.last_call  # the chunks of one syscall share its times
        b.last_call = call
        if ev.egress:
            b.sent += ev.length
            if new_call:
                b.writes += 1
                b.write_ns += max(0, (ev.ts_exit or 0) - (ev.ts_enter or 0))
        else:
            b.received += ev.length
            b.reads += new_call

    def _fits(self, key, ev) -> bool:
        b = self._open.get(key) or _Socket()
        new_call = (ev.tid, ev.ts_enter, ev.ts_exit) != b.last_call
        if ev.egress:
            ns = b.write_ns + (max(0, (ev.ts_exit or 0) - (ev.ts_enter or 0)) if new_call else 0)
            return b.sent + ev.length <= I64 and b.writes + new_call <= I64 and ns <= I64
        return b.received + ev.length <= I64 and b.reads + new_call <= I64

    def _out(self, b: _Socket):
        return self.bytes_type(b.pid, b.comm, b.role, b.sent, b.received, b.writes, b.reads,
                               b.write_ns)

    def get(self, key):
        b = self._open.get(key)
        return None if b is None else self._out(b)

    def pop(self, key, default=None):
        b = self._open.pop(key, None)
        return default if b is None else self._out(b)

    def reset(self, key) -> None:
        b = self._open.get(key)
        if b is not None:
            b.sent = b.received = b.writes = b.reads = b.write_ns = 0

    def take_moved(self) -> list:
        moved, self._moved = self._moved, set()
        return [k for k in self._open if k in moved]  # oldest first, as the compiled one

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, key) -> bool:
        return key in self._open
