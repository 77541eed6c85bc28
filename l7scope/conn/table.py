"""The connection table: per-connection state between capture events and protocol analyzers.

Theory of operation
-------------------
A connection is keyed by conn_id. It is created by ConnectionOpened (connect/accept seen:
role known, seen from its start) or lazily by the first DataChunk of a connection that
predates the capture (role maybe unknown, not seen from start). Each direction has a
StreamPosition that turns chunks into ("data", bytes) and ("skip", n) pieces.

Until a protocol is known, each data piece is offered to detect(), which asks every protocol
of the registry (protocols/registry.py): an HTTP/1 start line or the HTTP/2 preface or
plausible HTTP/2 frames pick the protocol, whose registry entry makes the analyzer (and, when
the role is unknown, the bytes may tell which end is the client). Pieces before that are
dropped; after `max_undetected` unrecognised messages the connection is marked "other" and
ignored. ProtocolSwitched hands the connection to the protocol the current one's entry names
for that target (HTTP/1's "h2c": HTTP/2), or marks it "other" (tunnel, websocket).

Connection end: ConnectionClosed, a StreamEnded (the peer closed), idle expiry, LRU
eviction (max_connections) or shedding (memory budget) all call the analyzer's eof(), so
nothing pending is lost.

Memory budget: after each chunk the connection's figure is refreshed (its analyzer's memory()
plus bytes held undecided before detection) and so is the running total over all connections.
While the total is over ``max_memory``, whole connections are shed, least recently used first
(their analysis ends through eof(), so pending exchanges come out partial, noted
SHED_NOTE), counted in ``connections_shed_memory`` and ``bytes_shed_memory``.

Error boundary: an exception out of an analyzer or out of detection is our bug triggered by
captured bytes. It is caught here, once per chunk and once per eof, counted as
``internal_error_<protocol>`` with a short reason (exception type and innermost function; the
latest are kept in ``internal_errors``), and that connection's analysis ends: it is marked
FAILED and fed nothing more. Every other connection goes on.

Counters are live: analyzers add their drops to ``counters`` (shared with them) when they
happen, prefixed by protocol ("http1_dropped_pending", "http2_dropped_streams", ...).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace

from l7scope.capture.events import (
    ConnectionClosed, ConnectionOpened, DataChunk, Endpoint, Role, StreamEnded,
)
from l7scope.conn.stream import TOTALS as STREAM_TOTALS
from l7scope.conn.stream import MOD, StreamPosition
from l7scope.protocols import registry
from l7scope.protocols.base import Analyzer
from l7scope.protocols.detect import NEED_MORE, detect
from l7scope.protocols.message import AnalyzerLimits, ExchangeParsed, ProtocolSwitched

OTHER = "other"
NEED = "need_more"
FAILED = "failed"  # analysis ended by an internal error: the connection is fed nothing more
_DONE = (OTHER, FAILED)
DEFAULT_MAX_MEMORY = 64 << 20
SHED_NOTE = "shed: parser memory budget"
MAX_REASONS = 16  # latest internal error reasons kept


@dataclass(slots=True)
class Connection:
    conn_id: int
    role: Role = Role.UNKNOWN
    local: Endpoint | None = None
    remote: Endpoint | None = None
    pid: int | None = None
    comm: str | None = None
    tls: bool = False
    seen_from_start: bool = False
    last_ts: int = 0
    protocol: str | None = None
    analyzer: Analyzer | None = None
    undetected: int = 0
    pending: bytes = b""  # bytes of one direction held until detect() decides
    pending_egress: bool = False
    pending_ts: int = 0
    endpoint_text: tuple[str | None, str | None] | None = None  # formatted once, by the pipeline
    identity: tuple | None = None  # (ProcessInfo, who): the pipeline's, while the info holds
    memory: int = 0  # the figure last counted in the table's memory_total
    egress_pos: StreamPosition = field(default_factory=StreamPosition)
    ingress_pos: StreamPosition = field(default_factory=StreamPosition)

    def client_is_local(self) -> bool:
        if self.role is Role.CLIENT:
            return True
        if self.role is Role.SERVER:
            return False
        return _guess_client_is_local(self.local, self.remote)


def _protocol_name(conn: Connection) -> str:
    """The protocol an internal error is counted under ("detect" before one is known)."""
    p = conn.protocol
    return p if p not in (None, NEED, OTHER, FAILED) else "detect"


def guess_role(local: Endpoint | None, remote: Endpoint | None, listening) -> Role:
    """Role of a socket whose connect/accept was not seen: a listening local port means server."""
    if listening is not None and local and remote:
        if local[1] in listening:
            return Role.SERVER
        if remote[1] in listening:
            return Role.CLIENT
    return Role.CLIENT if _guess_client_is_local(local, remote) else Role.SERVER


def _guess_client_is_local(local: Endpoint | None, remote: Endpoint | None) -> bool:
    """Role by ports when nothing else tells: the ephemeral (higher) port is the client's."""
    if not local or not remote:
        return True
    lp, rp = local[1], remote[1]
    if (lp >= 32768) != (rp >= 32768):
        return lp >= 32768
    return lp > rp


def error_reason(exc: BaseException) -> str:
    """Exception type and the innermost function it came from: "KeyError in _read_head"."""
    tb, where = exc.__traceback__, "?"
    while tb is not None:
        where, tb = tb.tb_frame.f_code.co_name, tb.tb_next
    return f"{type(exc).__name__} in {where}"


class ConnectionTable:
    """handle(event) -> [(connection, analyzer event), ...]; bounded by max_connections."""

    def __init__(self, limits: AnalyzerLimits | None = None, max_connections: int = 16384,
                 idle_timeout_ns: int = 300 * 10**9, max_undetected: int = 16, listening=None,
                 max_memory: int = DEFAULT_MAX_MEMORY):
        self._detect = detect
        self.limits = limits or AnalyzerLimits()
        self.max_connections = max_connections
        self.max_memory = max_memory
        self.memory_total = 0  # sum of every connection's memory figure
        self.idle_timeout_ns = idle_timeout_ns
        self.max_undetected = max_undetected
        self.listening = listening  # container of local listening ports (kernel path), or None
        self.conns: OrderedDict[int, Connection] = OrderedDict()
        self.counters = {"connections_evicted": 0, "connections_expired": 0,
                         "bytes_before_detection": 0, "connections_other": 0,
                         "connections_shed_memory": 0, "bytes_shed_memory": 0,
                         **dict.fromkeys(STREAM_TOTALS, 0)}
        self.internal_errors: deque[str] = deque(maxlen=MAX_REASONS)  # "http1: KeyError in f"

    # -- events -----------------------------------------------------------------------------

    def handle(self, ev) -> list:
        if type(ev) is DataChunk:
            return self._data(ev)
        if type(ev) is ConnectionOpened:
            return self._opened(ev)
        if type(ev) is ConnectionClosed:
            conn = self.conns.pop(ev.conn_id, None)
            return self._finish(conn, ev.ts) if conn else []
        if type(ev) is StreamEnded:
            conn = self.conns.get(ev.conn_id)
            if conn is None or conn.analyzer is None:
                return []
            out = self._finish(conn, ev.ts)
            if conn.protocol != FAILED:  # a failed connection stays unfed until it closes
                conn.analyzer, conn.protocol = None, None
            return out
        return []

    def _opened(self, ev: ConnectionOpened) -> list:
        out = []
        old = self.conns.pop(ev.conn_id, None)
        if old is not None:
            out = self._finish(old, ev.ts)
        conn = Connection(ev.conn_id, role=ev.role, local=ev.local, remote=ev.remote, pid=ev.pid,
                          comm=ev.comm, seen_from_start=True, last_ts=ev.ts)
        return out + self._insert(conn, ev.ts)

    def _insert(self, conn: Connection, ts: int) -> list:
        conn.egress_pos.totals = conn.ingress_pos.totals = self.counters
        out = []
        while len(self.conns) >= self.max_connections:
            _, victim = self.conns.popitem(last=False)
            self.counters["connections_evicted"] += 1
            out += self._finish(victim, ts)
        self.conns[conn.conn_id] = conn
        return out

    def _conn_for(self, ev: DataChunk) -> tuple[Connection, list]:
        conn = self.conns.get(ev.conn_id)
        if conn is not None:
            self.conns.move_to_end(ev.conn_id)
            if conn.role is Role.UNKNOWN and ev.role is not Role.UNKNOWN:
                conn.role = ev.role
            return conn, []
        conn = Connection(ev.conn_id, role=ev.role, local=ev.local, remote=ev.remote, pid=ev.pid,
                          comm=ev.comm, tls=ev.tls, last_ts=ev.ts)
        return conn, self._insert(conn, ev.ts)

    def _data(self, ev: DataChunk) -> list:
        """The common case first: a known connection with its analyzer, the chunk in order and
        whole (what StreamPosition.place would pass on as one piece), fed at once."""
        conn = self.conns.get(ev.conn_id)
        if conn is None or conn.analyzer is None:
            conn, out = self._conn_for(ev)
            conn.last_ts = ev.ts
            return out if conn.protocol in _DONE else self._placed(conn, ev, out)
        self.conns.move_to_end(ev.conn_id)
        if conn.role is Role.UNKNOWN and ev.role is not Role.UNKNOWN:
            conn.role = ev.role
        conn.last_ts = ev.ts
        pos = conn.egress_pos if ev.egress else conn.ingress_pos
        seq, data = ev.seq, ev.data
        if seq is None or seq != pos.expected or not data or len(data) != ev.length:
            return self._placed(conn, ev, [])
        pos.expected = (seq + len(data)) % MOD
        out: list = []
        try:  # the one boundary for this chunk, as in _placed
            a = conn.analyzer
            events = a.feed(ev.egress == conn.client_is_local(), data, ev.ts)
            if events:  # most chunks complete nothing
                out = self._route(conn, events, ev.ts)
            held = conn.analyzer.memory() if conn.analyzer is not None else 0
        except Exception as exc:  # noqa: BLE001
            self.fail(conn, exc)
            held = 0
        return self._account(conn, held, ev.ts, out)

    def _placed(self, conn: Connection, ev: DataChunk, out: list) -> list:
        """A chunk through the stream position's general placement (gaps, overlaps, a
        connection still detecting its protocol)."""
        pos = conn.egress_pos if ev.egress else conn.ingress_pos
        try:  # the one boundary for this chunk: our bug, not the agent's end
            for kind, value in pos.place(ev.seq, ev.data, ev.length):
                if conn.analyzer is None:
                    if kind == "skip":
                        # a hole behind bytes held undecided: they can no longer begin a message
                        self._drop_pending(conn, value, ev.egress)
                        continue
                    for egress, data, ts in self._detect_start(conn, value, ev.egress, ev.ts):
                        events = conn.analyzer.feed(egress == conn.client_is_local(), data, ts)
                        out += self._route(conn, events, ev.ts)
                else:
                    from_client = ev.egress == conn.client_is_local()
                    a = conn.analyzer
                    events = a.feed(from_client, value, ev.ts) if kind == "data" \
                        else a.skip(from_client, value, ev.ts)
                    if events:  # most chunks complete nothing
                        out += self._route(conn, events, ev.ts)
                if conn.protocol == OTHER:
                    break
            held = conn.analyzer.memory() if conn.analyzer is not None else 0
        except Exception as exc:  # noqa: BLE001
            self.fail(conn, exc)
            held = 0
        return self._account(conn, held, ev.ts, out)

    def _account(self, conn: Connection, held: int, ts: int, out: list) -> list:
        """Refresh the connection's memory figure and the total; shed over the budget."""
        held += len(conn.pending)
        self.memory_total += held - conn.memory
        conn.memory = held
        if self.memory_total > self.max_memory:
            out += self._shed(ts)
        return out

    def fail(self, conn: Connection, exc: BaseException, protocol: str | None = None) -> None:
        """An internal error on this connection: count it, end its analysis, feed it no more."""
        self.record_internal_error(protocol or _protocol_name(conn), exc)
        conn.analyzer, conn.protocol, conn.pending = None, FAILED, b""

    def record_internal_error(self, protocol: str, exc: BaseException) -> None:
        name = f"internal_error_{protocol}"
        self.counters[name] = self.counters.get(name, 0) + 1
        self.internal_errors.append(f"{protocol}: {error_reason(exc)}")

    def _drop_pending(self, conn: Connection, hole: int, egress: bool) -> None:
        """Count a hole seen before detection; held bytes of the same direction go with it."""
        self.counters["bytes_before_detection"] += hole
        if conn.pending and conn.pending_egress == egress:
            self.counters["bytes_before_detection"] += len(conn.pending)
            conn.pending = b""

    def _detect_start(self, conn: Connection, data: bytes, egress: bool, ts: int) -> list:
        """[(egress, bytes, ts), ...] to feed once the protocol is known (held bytes first)."""
        held = []
        if conn.pending and conn.pending_egress != egress:
            # the other direction spoke: its held bytes go first if this one decides
            held = [(conn.pending_egress, conn.pending, conn.pending_ts)]
            conn.pending = b""
        if conn.pending:
            data = conn.pending + data
            ts = conn.pending_ts
        conn.pending, conn.pending_egress, conn.pending_ts = b"", egress, ts
        if self._start(conn, data, egress):
            return held + [(egress, data, ts)]
        for _, lost, _ in held:
            self.counters["bytes_before_detection"] += len(lost)
        if conn.protocol is NEED:
            conn.protocol = None
            conn.pending = data
        else:
            self.counters["bytes_before_detection"] += len(data)
        return []

    def _start(self, conn: Connection, data: bytes, egress: bool) -> bool:
        protocol, sender_is_client = self._detect(data)
        if protocol == NEED_MORE:
            conn.protocol = NEED
            return False
        if protocol is None:
            conn.undetected += 1
            if conn.undetected >= self.max_undetected:
                conn.protocol = OTHER
                self.counters["connections_other"] += 1
            return False
        if conn.role is Role.UNKNOWN:
            if sender_is_client is not None:
                conn.role = Role.CLIENT if sender_is_client == egress else Role.SERVER
            else:
                conn.role = guess_role(conn.local, conn.remote, self.listening)
        conn.protocol = protocol
        conn.analyzer = registry.new_analyzer(protocol, self.limits,
                                              seen_from_start=conn.seen_from_start,
                                              counters=self.counters)
        return True

    def _route(self, conn: Connection, events: list, ts: int) -> list:
        out = []
        for e in events:
            if type(e) is ProtocolSwitched:
                target = registry.upgrade_target(conn.protocol, e.to)
                if target is not None:
                    conn.protocol = target
                    conn.analyzer = registry.new_analyzer(target, self.limits, seen_from_start=True,
                                                          counters=self.counters)
                    if e.request is not None:
                        conn.analyzer.upgraded_from(e.request)
                    if e.remainder:
                        out.append((conn, e))
                        out += self._route(conn, conn.analyzer.feed(False, e.remainder, ts), ts)
                        continue
                else:
                    conn.protocol, conn.analyzer = OTHER, None
                    self.counters["connections_other"] += 1
            out.append((conn, e))
        return out

    def _finish(self, conn: Connection, ts: int) -> list:
        """The connection's analysis ends (it left the table, or its stream ended)."""
        self.memory_total -= conn.memory
        conn.memory = 0
        if conn.analyzer is None:
            return []
        try:
            return [(conn, e) for e in conn.analyzer.eof(ts)]
        except Exception as exc:  # noqa: BLE001 - the one boundary, as in _data
            self.fail(conn, exc)
            return []

    def _shed(self, ts: int) -> list:
        """Over the memory budget: end whole connections, least recently used first."""
        out = []
        while self.memory_total > self.max_memory and self.conns:
            _, conn = self.conns.popitem(last=False)
            self.counters["connections_shed_memory"] += 1
            self.counters["bytes_shed_memory"] += conn.memory
            for c, e in self._finish(conn, ts):
                if type(e) is ExchangeParsed:
                    e = replace(e, notes=e.notes + (SHED_NOTE,))
                out.append((c, e))
        return out

    # -- housekeeping -------------------------------------------------------------------------

    def expire(self, now_ns: int) -> list:
        out = []
        while self.conns:
            conn_id, conn = next(iter(self.conns.items()))
            if now_ns - conn.last_ts < self.idle_timeout_ns:
                break
            del self.conns[conn_id]
            self.counters["connections_expired"] += 1
            out += self._finish(conn, now_ns)
        return out

    def close_all(self, ts: int) -> list:
        out = []
        while self.conns:
            _, conn = self.conns.popitem(last=False)
            out += self._finish(conn, ts)
        return out
