"""The user-space pipeline: capture events -> connections -> analyzers -> Exchange records.

One direction only: Pipeline.feed(events) pushes capture events through the connection table,
turns each ExchangeParsed into an Exchange (naming the local peer process, ``peer_pid`` and
``peer_name``, when the other end is traced too) and collects it in the current batch. Nothing
downstream reaches back: what an output needs travels on the record.

Batches: the exchanges of one ``feed()`` call (one ring-buffer batch; at most MAX_BATCH, a longer
feed hands over every MAX_BATCH), of one ``tick()`` (expired connections) and of ``finish()``
are handed over at the end of that call, in the order they were built: each batch observer
(the sinks' ``on_exchanges``, outputs/__init__.py) gets the whole list once, then each
per-exchange observer (``observers``, a callable per Exchange: tests, tools) every record of
it. So the exchanges of a batch reach every sink before the tick that follows, and before an
exec or exit record of the same feed is handled (the process table and the tasks see events
in order).

Processes (kernel runs): with a process table (``processes=``, l7scope/procs) the record's
``comm`` and ``name`` are the process's name (the thread-group leader's), never the name of the
worker thread that made the syscalls (that one goes to ``thread``), with ``exe`` and
``container_id``; ``peer_name`` is the table's name for a local peer. The table is looked up
(a dict hit) for both ends when the record is built, the identity tuple kept on the connection
while the lookup gives the same process; ``tick`` expires its exited processes and copies its
counters into ``counters``.

Analysis tasks (l7scope/tasks) hook in twice: ``admit(ex)`` (None: keep all) decides whether an
Exchange reaches the observers (not the running tasks' processes: not kept, the controller
counts it), and ``on_process_event(ev)`` sees every exec and exit record after the process
table.

Error boundary (with the connection table's, which covers the analyzers): an exception while
building an Exchange (trace context, numbers, path redaction) is counted as
``internal_error_<protocol>`` and ends that connection's analysis; an exception out of an
observer (sampling, redaction, span events, exporters run inside them) is counted as
``internal_error_output`` and the other observers still get every Exchange of the batch: a
per-exchange observer's exceptions are counted one by one, a batch observer returns the
exceptions of the records it could not take (outputs.each) and an exception out of it is
counted once. OSError from an observer (a closed output pipe, a full disk) is not our bug and
goes up to the agent.
"""
from __future__ import annotations

from collections import Counter, OrderedDict

from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk, format_endpoint
from l7scope.capture.proc_events import ProcessExec, ProcessExit, feed_process_table
from l7scope.conn.table import Connection, ConnectionTable
from l7scope.exchange import Exchange, WallClock
from l7scope.outputs import each
from l7scope.protocols.message import ExchangeParsed, HttpMessage, ParseError
from l7scope.protocols.wirenum import parse_decimal
from l7scope.tracecontext import extract as extract_trace

PEER_GRACE_NS = 5 * 10**9
_new_record = tuple.__new__  # Exchange(*fields) without its Python-level __new__
MAX_ENDPOINTS = 65536
MAX_BATCH = 4096  # exchanges held before a long feed() hands them over


def _grpc_status(resp: HttpMessage | None) -> int | None:
    """gRPC over HTTP/2: ``Status -> "grpc-status" 1*DIGIT``; codes are small (0-16 defined),
    so anything longer than 3 ASCII digits is not a status. The first grpc-status of the
    headers, then of the trailers (resp.header's order), names compared by length first."""
    if resp is None:
        return None
    for fields in (resp.headers, resp.trailers):
        for k, v in fields:
            if len(k) == 11 and k.lower() == "grpc-status":
                return parse_decimal(v.strip(" \t"), max_digits=3)
    return None


_NOBODY = (None, None, None, None, None)


def _merged_notes(ep: ExchangeParsed, req: HttpMessage | None,
                  resp: HttpMessage | None) -> tuple[str, ...]:
    """The exchange's notes, then each message's not already there, in order."""
    notes = list(ep.notes)
    for m in (req, resp):
        if m is not None and m.notes:
            for n in m.notes:
                if n not in notes:
                    notes.append(n)
    return tuple(notes)  # packet captures name no process


class PeerIndex:
    """(local, remote) endpoint text -> (pid, comm) of traced sockets, kept a little past close.

    Each entry remembers the connection that made it, so a closing connection removes only its
    own entry (a newer connection on the same 4-tuple keeps its own). Bounded: MAX_ENDPOINTS.
    """

    def __init__(self):
        self._by_tuple: OrderedDict[tuple[str, str], tuple[int, int | None, str | None]] = \
            OrderedDict()
        self._by_conn: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self.known = self._by_conn  # conn_id -> endpoints: learn() has nothing to add for these
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
                 observers=(), capture_mode: bool = False, redact_path=None, processes=None,
                 batch_observers=()):
        self.table = table or ConnectionTable()
        self.clock = clock or WallClock()
        self.observers = list(observers)  # Exchange -> None, each record of a batch
        self.batch_observers = list(batch_observers)  # list[Exchange] -> exceptions or None
        self._batch: list[Exchange] = []
        self.capture_mode = capture_mode
        self.redact_path = redact_path  # str -> str applied to the request path, or None
        self.peers = PeerIndex()
        self.processes = processes  # procs.ProcessTable (kernel runs) or None
        self.admit = None  # Exchange -> bool: False keeps it from the observers (tasks)
        self.on_process_event = None  # every exec/exit record, after the process table
        self.parse_errors: Counter = Counter()
        self.trace_errors: Counter = Counter()
        self.exchanges = 0
        self.counters = {"exchanges_without_messages": 0}  # besides table.counters
        self.last_ts = 0

    def feed(self, events) -> None:
        handle, learn, known = self.table.handle, self.peers.learn, self.peers.known
        analyzer_event = self._analyzer_event
        for ev in events:
            t = type(ev)
            if t is DataChunk or t is ConnectionOpened:
                if ev.conn_id not in known:  # learn() would return at once
                    learn(ev.conn_id, ev.local, ev.remote, ev.pid, ev.comm)
            elif t is ConnectionClosed:
                self.peers.closed(ev.conn_id, ev.ts)
            elif t is ProcessExec or t is ProcessExit:
                self._process_event(ev)
                continue
            if ev.ts > self.last_ts:
                self.last_ts = ev.ts
            for conn, out in handle(ev):
                analyzer_event(conn, out)
        self.deliver()

    def _process_event(self, ev) -> None:
        """An exec or exit record: the process table learns it at once (names change with
        an exec; an exited process keeps its name a grace period for late records), after
        the exchanges built before it reached the observers."""
        self.deliver()
        if self.processes is not None:
            feed_process_table(self.processes, (ev,))
        if self.on_process_event is not None:
            self.on_process_event(ev)

    def tick(self, now_ns: int) -> None:
        for conn, out in self.table.expire(now_ns):
            self._analyzer_event(conn, out)
        self.deliver()  # before exited processes and closed peers are forgotten
        self.peers.expire(now_ns)
        if self.processes is not None:
            self.processes.expire()
            self.counters.update(self.processes.counters())

    def finish(self, ts: int | None = None) -> None:
        for conn, out in self.table.close_all(ts if ts is not None else self.last_ts):
            self._analyzer_event(conn, out)
        self.deliver()

    def deliver(self) -> None:
        """The batch so far to every observer (module docstring: Batches, Error boundary)."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        failed = self.table.record_internal_error
        for observe in self.batch_observers:
            try:
                errors = observe(batch)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - one observer failing spares the others
                errors = (exc,)
            for exc in errors or ():
                failed("output", exc)
        for observe in self.observers:
            for exc in each(observe, batch):
                failed("output", exc)

    def _analyzer_event(self, conn: Connection, out) -> None:
        if type(out) is ExchangeParsed:
            try:
                ex = self.build(conn, out)
            except Exception as exc:  # noqa: BLE001 - the boundary: our bug, counted
                self.table.fail(conn, exc, protocol=out.protocol)
                return
            if ex is None or (self.admit is not None and not self.admit(ex)):
                return
            self.exchanges += 1
            self._batch.append(ex)
            if len(self._batch) >= MAX_BATCH:
                self.deliver()
        elif type(out) is ParseError:
            self.parse_errors[out.code] += 1

    def build(self, conn: Connection, ep: ExchangeParsed) -> Exchange | None:
        """The Exchange record, or None (counted) when neither message was seen: an HTTP/2
        stream known only by DATA frames says nothing a record could carry."""
        req, resp = ep.request, ep.response
        if req is None and resp is None:
            self.counters["exchanges_without_messages"] += 1
            return None
        if ep.notes or (req is not None and req.notes) or (resp is not None and resp.notes):
            notes, partial = _merged_notes(ep, req, resp), True
        else:  # the common case: nothing to merge
            notes = ()
            partial = (req is not None and not req.complete) or \
                (resp is not None and not resp.complete)
        if conn.endpoint_text is None:
            conn.endpoint_text = (format_endpoint(conn.local), format_endpoint(conn.remote))
        local, remote = conn.endpoint_text
        if self.capture_mode:
            side, pid, peer_pid, peer_name, who = None, None, None, None, _NOBODY
        else:
            side = "client" if conn.client_is_local() else "server"
            pid = conn.pid
            peer_pid, peer_name = self.peers.peer(local, remote)
            who = self._identity(conn)
            if peer_pid is not None and self.processes is not None:
                info = self.processes.lookup(peer_pid)
                if info is not None:
                    peer_name = info.name or peer_name
        first = req or resp
        last = resp or req
        if req is not None:
            trace, request_id = extract_trace(req.headers, self.trace_errors)
            path = req.path
            if path is not None and self.redact_path is not None:
                path = self.redact_path(path)
            method, authority, request_bytes = req.method, req.authority, req.wire_bytes
        else:
            trace = request_id = path = method = authority = None
            request_bytes = 0
        if resp is not None:
            status, grpc_status, response_bytes = resp.status, _grpc_status(resp), resp.wire_bytes
        else:
            status = grpc_status = None
            response_bytes = 0
        # positional, in Exchange's field order, as NamedTuple's __new__ would make it
        return _new_record(Exchange, (
            ep.protocol, side, pid, who[0], local, remote, peer_pid, conn.conn_id, ep.stream_id,
            method, path, authority, status, grpc_status, request_bytes, response_bytes,
            first.start_ns, last.end_ns, self.clock.rfc3339(first.start_ns), trace, request_id,
            conn.tls, partial, notes, req, resp, peer_name if peer_pid is not None else None,
            who[1], who[2], who[3], who[4]))

    def _identity(self, conn: Connection) -> tuple:
        """(comm, name, exe, container_id, thread) of the observing process: the process
        table's names (the thread-group leader's, never a worker thread's) when it knows the
        pid, else the kernel's name as the record had it. Looked up every exchange (the
        table revalidates and expires on lookups); the tuple is kept on the connection for
        as long as the lookup gives the same ProcessInfo."""
        procs = self.processes
        info = procs.lookup(conn.pid) if procs is not None and conn.pid is not None else None
        if info is None:
            return conn.comm, None, None, None, conn.comm
        kept = conn.identity
        if kept is not None and kept[0] is info:
            return kept[1]
        who = (info.name, info.name, info.exe, info.container_id, conn.comm)
        conn.identity = (info, who)
        return who

    @staticmethod
    def peer_comm(ex: Exchange) -> str | None:
        """The local peer process's name: it travels on the record (``peer_name``)."""
        return ex.peer_name
