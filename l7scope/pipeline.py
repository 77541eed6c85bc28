"""The user-space pipeline: capture events -> connections -> analyzers -> Exchange records.

One direction only: Pipeline.feed(events) pushes capture events through the connection table,
turns each ExchangeParsed into an Exchange (naming the local peer process when the other end
is traced too) and hands it to the observers (sinks, metrics, sampler, exporters). Nothing
downstream reaches back.
"""
from __future__ import annotations

from collections import Counter, OrderedDict

from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk, format_endpoint
from l7scope.conn.table import Connection, ConnectionTable
from l7scope.exchange import Exchange, WallClock
from l7scope.protocols.message import ExchangeParsed, HttpMessage, ParseError
from l7scope.tracecontext import extract as extract_trace

PEER_GRACE_NS = 5 * 10**9
MAX_ENDPOINTS = 65536


def _grpc_status(resp: HttpMessage | None) -> int | None:
    if resp is None:
        return None
    value = resp.header("grpc-status")
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())




class PeerIndex:
    """(local, remote) endpoint text -> (pid, comm) of traced sockets, kept a little past close.

    Each entry remembers the connection that made it, so a closing connection removes only its
    own entry (a newer connection on the same 4-tuple keeps its own). Bounded: MAX_ENDPOINTS.
    """

    def __init__(self):
        self._by_tuple: OrderedDict[tuple[str, str], tuple[int, int | None, str | None]] = \
            OrderedDict()
        self._by_conn: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self._closing: list[tuple[int, int]] = []

    def learn(self, conn_id: int, local, remote, pid, comm) -> None:
        if conn_id in self._by_conn or local is None or remote is None or pid is None:
            return
        key = (format_endpoint(local), format_endpoint(remote))
        self._by_conn[conn_id] = key
        self._by_tuple[key] = (conn_id, pid, comm)
        self._by_tuple.move_to_end(key)
        while len(self._by_tuple) > MAX_ENDPOINTS:
            self._by_tuple.popitem(last=False)
        while len(self._by_conn) > MAX_ENDPOINTS:  # connections never closed
            self._by_conn.popitem(last=False)

    def closed(self, conn_id: int, ts: int) -> None:
        if conn_id in self._by_conn:
            self._closing.append((ts + PEER_GRACE_NS, conn_id))

    def peer(self, local: str | None, remote: str | None) -> tuple[int | None, str | None]:
        entry = self._by_tuple.get((remote, local))
        return (entry[1], entry[2]) if entry is not None else (None, None)

    def expire(self, now: int) -> None:
        if not self._closing or self._closing[0][0] > now:
            return
        keep = []
        for deadline, conn_id in self._closing:
            if deadline > now:
                keep.append((deadline, conn_id))
                continue
            key = self._by_conn.pop(conn_id, None)
            entry = self._by_tuple.get(key) if key is not None else None
            if entry is not None and entry[0] == conn_id:
                del self._by_tuple[key]
        self._closing = keep


class Pipeline:
    def __init__(self, table: ConnectionTable | None = None, clock: WallClock | None = None,
                 observers=(), capture_mode: bool = False):
        self.table = table or ConnectionTable()
        self.clock = clock or WallClock()
        self.observers = list(observers)
        self.capture_mode = capture_mode
        self.peers = PeerIndex()
        self.parse_errors: Counter = Counter()
        self.trace_errors: Counter = Counter()
        self.exchanges = 0
        self.last_ts = 0

    def feed(self, events) -> None:
        handle, learn = self.table.handle, self.peers.learn
        for ev in events:
            t = type(ev)
            if t is DataChunk or t is ConnectionOpened:
                learn(ev.conn_id, ev.local, ev.remote, ev.pid, ev.comm)
            elif t is ConnectionClosed:
                self.peers.closed(ev.conn_id, ev.ts)
            self.last_ts = max(self.last_ts, ev.ts)
            for conn, out in handle(ev):
                self._analyzer_event(conn, out)

    def tick(self, now_ns: int) -> None:
        for conn, out in self.table.expire(now_ns):
            self._analyzer_event(conn, out)
        self.peers.expire(now_ns)

    def finish(self, ts: int | None = None) -> None:
        for conn, out in self.table.close_all(ts if ts is not None else self.last_ts):
            self._analyzer_event(conn, out)

    def _analyzer_event(self, conn: Connection, out) -> None:
        if type(out) is ExchangeParsed:
            ex = self.build(conn, out)
            self.exchanges += 1
            for observe in self.observers:
                observe(ex)
        elif type(out) is ParseError:
            self.parse_errors[out.code] += 1

    def build(self, conn: Connection, ep: ExchangeParsed) -> Exchange:
        req, resp = ep.request, ep.response
        notes = list(ep.notes)
        for m in (req, resp):
            if m is not None and m.notes:
                notes.extend(n for n in m.notes if n not in notes)
        partial = bool(notes) or any(m is not None and not m.complete for m in (req, resp))
        if conn.endpoint_text is None:
            conn.endpoint_text = (format_endpoint(conn.local), format_endpoint(conn.remote))
        local, remote = conn.endpoint_text
        if self.capture_mode:
            side, pid, comm, peer_pid = None, None, None, None
        else:
            side = "client" if conn.client_is_local() else "server"
            pid, comm = conn.pid, conn.comm
            peer_pid, _ = self.peers.peer(local, remote)
        first = req or resp
        last = resp or req
        trace, request_id = extract_trace(req.headers, self.trace_errors) if req else (None, None)
        return Exchange(
            protocol=ep.protocol, side=side, pid=pid, comm=comm, local=local, remote=remote,
            peer_pid=peer_pid, conn_id=conn.conn_id, stream_id=ep.stream_id,
            method=req.method if req else None, path=req.path if req else None,
            authority=req.authority if req else None, status=resp.status if resp else None,
            grpc_status=_grpc_status(resp), request_bytes=req.wire_bytes if req else 0,
            response_bytes=resp.wire_bytes if resp else 0, start_ns=first.start_ns,
            end_ns=last.end_ns, time=self.clock.rfc3339(first.start_ns), trace=trace,
            request_id=request_id, tls=conn.tls, partial=partial, notes=tuple(notes),
            request=req, response=resp)

    def peer_comm(self, ex: Exchange) -> str | None:
        return self.peers.peer(ex.local, ex.remote)[1] if ex.peer_pid is not None else None
