"""The user-space pipeline: capture events -> connections -> analyzers -> Exchange records.

One direction only: Pipeline.feed(events) pushes capture events through the connection table,
turns each ExchangeParsed into an Exchange (naming the local peer process, ``peer_pid`` and
``peer_name``, when the other end is traced too) and collects it in the current batch. Nothing
downstream reaches back: what an output needs travels on the record.

Batches: the exchanges of one ``feed()`` call (one ring-buffer batch), of one ``tick()``
(expired connections) and of ``finish()`` are handed over at the end of that call, and every
MAX_BATCH exchanges within it, in the order they were built: each batch observer
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

from l7scope.capture.events import (
    ConnectionClosed, ConnectionOpened, DataChunk, Role, format_endpoint,
)
from l7scope.capture.proc_events import ProcessExec, ProcessExit, feed_process_table
from l7scope.conn.table import Connection, ConnectionTable
from l7scope.exchange import Exchange, WallClock
from l7scope.dataplane import _build
from l7scope.outputs import each
from l7scope.protocols.message import ExchangeParsed, HttpMessage, ParseError
from l7scope.redact import Redactor
from l7scope.tracecontext import HEADER_NAMES as TRACE_HEADERS
from l7scope.tracecontext import extract as extract_trace

PEER_GRACE_NS = 5 * 10**9
MAX_ENDPOINTS = 65536
# Exchanges held before they are handed over within a feed: a whole ring-buffer batch (128
# exchanges of the replay's 512 records) kept alive until the feed's end costs ~0.5 us per
# exchange in the garbage collector's young generation walking them (docs/benchmarks.md); 32
# keeps that off while each sink's call still covers many records.
MAX_BATCH = 32
_build.setup(exchange=Exchange, message=HttpMessage, wallclock=WallClock,
             role_client=Role.CLIENT, role_server=Role.SERVER, extract=extract_trace,
             wanted=TRACE_HEADERS, format_endpoint=format_endpoint,
             redact_path=Redactor.redact_path, connection=Connection, parsed=ExchangeParsed)


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
        self.entries = self._by_tuple  # what peer() reads; the compiled builder reads it too
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

    # build(conn, ep) -> Exchange | None: the record of one ExchangeParsed, or None (counted
    # in counters["exchanges_without_messages"]) when neither message was seen (an HTTP/2
    # stream known only by DATA frames says nothing a record could carry). Made in C
    # (dataplane/_buildmodule.c, its theory of operation at the top): the merged notes and the
    # partial rule, the endpoint text once per connection, the process table looked up for
    # both ends on every exchange (the observer's identity tuple kept on the connection while
    # the lookup gives the same ProcessInfo), tracecontext.extract called only when a trace
    # header is there, the Redactor's redact_path only when the path may change, the
    # grpc-status, the time text.
    build = _build.build_method

    @staticmethod
    def peer_comm(ex: Exchange) -> str | None:
        """The local peer process's name: it travels on the record (``peer_name``)."""
        return ex.peer_name
