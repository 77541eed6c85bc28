"""StoreSink: the agent's output into a store, batched on a writer thread.

Theory of operation
-------------------
The capture path calls ``sink(exchange)``; that call only counts, decides whether the record
is stored, and appends it to a bounded queue (items and estimated bytes). It never waits for
the store, takes no lock (one thread calls the sink; deque.append/popleft are atomic, and the
queued bytes are two counters each written by one thread) and never raises:

    rate       each second (by the record's start time) the first ``max_rate`` records are
               stored with weight 1; above that 1 in N is kept with weight N, N being the last
               second's count over the rate (at least 2); the others are counted in
               ``store_exchanges_not_stored`` and still queued, without their row, for the
               rollup (rollup.py), so the topology and metric counts stay exact.
    queue      full (``max_queue_items`` or ``max_queue_bytes``) -> ``store_dropped_queue_full``.

The writer thread wakes every ``flush_every_s`` (or when asked to flush), takes up to
``batch_items`` records, builds their rows (schema.py) and their rollup and writes them in
one transaction.
A failed write (disk full, file unwritable or locked past the busy timeout, any backend error)
is counted in ``store_write_errors`` and its records in ``store_dropped_write_error``; the
thread goes on with the next batch. After its batches it runs retention (retention.py).

``on_interval(snapshot, top_n_lists, counters)`` queues the interval's pair metrics, the
sampled exchanges of its top-N lists and a counters snapshot on a small queue of its own.
``on_tcp_metrics(records)`` (the interval's ``tcp_metrics`` records, on the caller's thread)
names each record's ends as node ids, as the exchanges' are named: a local end is
``proc:<process name>`` from ``process_name(pid)`` (the agent's process table, asked on the
caller's thread only), else from the names this writer learnt from stored exchanges, else the
record's own name. The records wait on a queue of their own, bounded by records and bytes
(full: ``store_tcp_dropped_queue_full``), and are written in the next batch.
A backend with a buffer of its own (clickhouse.py) is given ``poll()`` after each round and
``flush()`` at stop, and its counters join the sink's.
``close()`` writes what is queued and stops the thread; the store stays open for the API, and
an ``on_interval`` after it (the agent's final counters) is written on the caller's thread.
"""
from __future__ import annotations

import collections
import socket
import threading
import time

from l7scope.exchange import Exchange
from l7scope.outputs.store import schema
from l7scope.outputs.store.retention import Retention
from l7scope.outputs.store.rollup import Rollup
from l7scope.outputs.store.schema import Batch

DEFAULT_MAX_RATE = 2000
ITEM_OVERHEAD = 512  # estimated bytes of one queued record besides its path
PROCESS_REFRESH_NS = 10 * 10**9
MAX_PROCESS_CACHE = 10_000
MAX_INTERVALS_QUEUED = 64
MAX_TCP_QUEUED = 16_384  # records: four intervals at tcpmetrics' 4,096 pairs
MAX_TCP_QUEUED_BYTES = 8 << 20
TCP_ITEM_OVERHEAD = 768  # estimated bytes of one queued record besides its reasons
_HAS_PEER_NAME = "peer_name" in Exchange._fields  # the record gains it in a later step


def _display_to_name(display: str | None) -> str | None:
    """"comm(pid)" (the agent's pair names) -> comm; None for "pid(N)", "?(N)" or anything else."""
    if not display or not display.endswith(")") or "(" not in display:
        return None
    name = display[:display.rfind("(")]
    return None if name in ("", "?", "pid") else name


class StoreSink:
    def __init__(self, store, *, node: str | None = None, peer_name=None, to_wall_ns=None,
                 process_name=None, now_ns=time.time_ns, retention: Retention | None = None,
                 max_rate: int = DEFAULT_MAX_RATE, max_queue_items: int = 50_000,
                 max_queue_bytes: int = 32 << 20, batch_items: int = 2000,
                 flush_every_s: float = 0.25, start: bool = True):
        self.store = store
        self.node = node or getattr(store, "node", None) or socket.gethostname()
        self._peer_name = peer_name
        self.process_name = process_name  # pid -> process name, asked on the caller's thread
        if to_wall_ns is None:
            to_wall_ns = (time.time_ns() - time.monotonic_ns()).__add__
        self._to_wall = to_wall_ns
        self._now = now_ns
        self.retention = retention or Retention()
        self.max_rate = max_rate
        self._max_items, self._max_bytes = max_queue_items, max_queue_bytes
        self._batch_items, self._flush_every = batch_items, flush_every_s
        self._queue: collections.deque = collections.deque()
        self._intervals: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._bytes_in = self._bytes_out = 0
        self._sec, self._in_sec, self._last_sec_count = None, 0, 0
        self._process_seen: dict[tuple, int] = {}
        self._pid_names: dict[int, str] = {}  # learnt from stored exchanges (writer thread)
        self._tcp: collections.deque = collections.deque()
        self._tcp_bytes = 0  # guarded by _lock
        self._wake, self._stop = threading.Event(), threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.last_error: str | None = None
        self._closed = False
        self.c = {"store_exchanges_written": 0, "store_exchanges_not_stored": 0,
                  "store_dropped_queue_full": 0, "store_write_errors": 0,
                  "store_dropped_write_error": 0, "store_samples_written": 0,
                  "store_retention_errors": 0, "store_internal_errors": 0, "store_bytes": 0,
                  "store_tcp_rows_written": 0, "store_tcp_dropped_queue_full": 0,
                  "store_tcp_dropped_write_error": 0}
        self._thread = threading.Thread(target=self._run, name="l7scope-store", daemon=True)
        if start:
            self._thread.start()

    # --- capture side ----------------------------------------------------------------------

    def __call__(self, ex) -> None:
        sec = ex.start_ns // 1_000_000_000
        if sec == self._sec and self._in_sec < self.max_rate:  # the common case, inline
            self._in_sec += 1
            weight = 1
        else:
            weight = self._weight(sec)
            if weight == 0:  # still queued: the rollup counts every exchange
                self.c["store_exchanges_not_stored"] += 1
        peer = ex.peer_name if _HAS_PEER_NAME else None
        if peer is None and ex.peer_pid is not None and self._peer_name is not None:
            peer = self._peer_name(ex)
        if ex.request is not None or ex.response is not None:
            ex = ex._replace(request=None, response=None)  # bodies are not stored
        size = ITEM_OVERHEAD + (len(ex.path or "") if weight else 0)
        if (len(self._queue) >= self._max_items
                or self._bytes_in - self._bytes_out + size > self._max_bytes):
            self.c["store_dropped_queue_full"] += 1
            return
        self._bytes_in += size  # written by the capture thread only
        self._queue.append((ex, peer, weight, size))  # deque.append is atomic

    def _weight(self, sec: int) -> int:
        """1 while under the rate this second; then N for one record in N, 0 for the rest."""
        if self._sec is None or sec > self._sec:
            follows = self._sec is not None and sec == self._sec + 1
            self._last_sec_count = self._in_sec if follows else 0
            self._sec, self._in_sec = sec, 0
        self._in_sec += 1
        over = self._in_sec - self.max_rate
        if over <= 0:
            return 1
        n = max(2, -(-self._last_sec_count // self.max_rate))
        return n if over % n == 0 else 0

    def on_interval(self, snapshot, top_n_lists: dict | None = None,
                    counters: dict | None = None) -> None:
        with self._lock:
            if len(self._intervals) >= MAX_INTERVALS_QUEUED:
                self.c["store_dropped_queue_full"] += 1
                return
            self._intervals.append((list(snapshot or ()), dict(top_n_lists or {}),
                                    dict(counters) if counters is not None else None,
                                    self._now()))
        if self._closed:  # after close(): the agent's final counters, written here and now
            self._write_some()
        self._wake.set()

    def on_tcp_metrics(self, records) -> None:
        """The interval's tcp_metrics records: their ends named, queued for the writer."""
        items = []
        for rec in records or ():
            try:
                items.append(self._tcp_item(rec))
            except Exception as e:  # noqa: BLE001 - not a record we know: counted, never raised
                self.c["store_internal_errors"] += 1
                self.last_error = f"internal: tcp record: {type(e).__name__}: {e}"[:200]
        with self._lock:
            for item in items:
                if (len(self._tcp) >= MAX_TCP_QUEUED
                        or self._tcp_bytes + item[3] > MAX_TCP_QUEUED_BYTES):
                    self.c["store_tcp_dropped_queue_full"] += 1
                    continue
                self._tcp_bytes += item[3]
                self._tcp.append(item)
        if self._closed:  # after close(): written here and now
            self._write_some()
        self._wake.set()

    def _tcp_item(self, rec: dict) -> tuple:
        """(record, client node or None, server node or None, estimated bytes): a local end is
        named here when the process table knows its pid, else by the writer thread."""
        size = TCP_ITEM_OVERHEAD + 48 * (len(rec.get("drops") or ())
                                         + len(rec.get("connect_failures_by_reason") or ()))
        return rec, self._tcp_node(rec, "client"), self._tcp_node(rec, "server"), size

    def _tcp_node(self, rec: dict, end: str) -> str | None:
        pid = rec.get(f"{end}_pid")
        if not pid:
            return schema.tcp_end_node(rec.get(end), None)
        name = self.process_name(pid) if self.process_name is not None else None
        return schema.node_of_process(name, pid) if name else None

    # --- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_every)
            self._wake.clear()
            stopping = self._stop.is_set()  # close() sets it, then wakes us: all is written
            while self._write_some():
                pass
            self._store_hook("flush" if stopping else "poll")
            self._retention()
            if stopping:
                return

    def _store_hook(self, name: str) -> None:
        """A backend with a buffer of its own (ClickHouse) sends what is due; at stop, all."""
        hook = getattr(self.store, name, None)
        if hook is not None:
            self._guarded(hook)

    def _take(self) -> tuple[list, list, list]:
        queue = self._queue
        items = [queue.popleft() for _ in range(min(self._batch_items, len(queue)))]
        self._bytes_out += sum(item[3] for item in items)  # written by the writer thread only
        with self._lock:
            intervals = list(self._intervals)
            self._intervals.clear()
            tcp = [self._tcp.popleft() for _ in range(min(self._batch_items, len(self._tcp)))]
            self._tcp_bytes -= sum(item[3] for item in tcp)
            if not items and not intervals and not tcp:
                self._idle.set()
            else:
                self._idle.clear()
        return items, intervals, tcp

    def _write_some(self) -> bool:
        """One batch written (or counted as failed); False when there was nothing to write."""
        items, intervals, tcp = self._take()
        if not items and not intervals and not tcp:
            return False
        batch, rollup = Batch(), Rollup()
        for ex, peer, weight, _ in items:
            self._guarded(self._add_exchange, batch, rollup, ex, peer, weight)
        batch.pair_slots = rollup.rows(self.node)
        for rec, client, server, _ in tcp:  # after the exchanges: their names are learnt
            self._guarded(self._add_tcp, batch, rec, client, server)
        for snapshot, top, counters, ts in intervals:
            self._guarded(self._add_interval, batch, snapshot, top, counters, ts)
        try:
            self.store.write(batch)
        except Exception as e:  # noqa: BLE001 - any backend failure is counted, never raised
            self.c["store_write_errors"] += 1
            self.c["store_dropped_write_error"] += len(batch.exchanges) + len(batch.samples)
            self.c["store_tcp_dropped_write_error"] += len(batch.tcp_metrics)
            self.last_error = f"{type(e).__name__}: {e}"[:200]
            return True
        self.c["store_exchanges_written"] += len(batch.exchanges)
        self.c["store_samples_written"] += len(batch.samples)
        self.c["store_tcp_rows_written"] += len(batch.tcp_metrics)
        return True

    def _add_tcp(self, batch: Batch, rec: dict, client: str | None, server: str | None) -> None:
        if client is None:
            client = schema.tcp_end_node(rec["client"], rec["client_pid"],
                                         self._pid_names.get(rec["client_pid"]))
        if server is None:
            server = schema.tcp_end_node(rec["server"], rec["server_pid"],
                                         self._pid_names.get(rec["server_pid"]))
        batch.tcp_metrics.append(schema.tcp_metrics_row(rec, self.node, client, server))

    def _guarded(self, build, *args) -> None:
        """A row builder that fails (our bug, on a record we did not foresee) loses that
        record only, counted in store_internal_errors; the thread goes on."""
        try:
            build(*args)
        except Exception as e:  # noqa: BLE001 - the writer's error boundary
            self.c["store_internal_errors"] += 1
            self.last_error = f"internal: {type(e).__name__}: {e}"[:200]

    def _add_exchange(self, batch: Batch, rollup: Rollup, ex, peer: str | None,
                      weight: int) -> None:
        ts = self._to_wall(ex.start_ns)
        ends = schema.ends_of(ex, peer)
        row = schema.exchange_row(ex, ts, self.node, peer, weight, ends) if weight else None
        rollup.add(ex, ts, *ends)
        if row is not None:
            batch.exchanges.append(row)
        for row in schema.process_rows(ex, peer, self.node, ts):
            key = (row[1], row[2])
            last = self._process_seen.get(key)
            if last is not None and 0 <= ts - last < PROCESS_REFRESH_NS:
                continue
            if len(self._process_seen) >= MAX_PROCESS_CACHE:
                self._process_seen.clear()
                self._pid_names.clear()
            self._process_seen[key] = ts
            if row[2]:
                self._pid_names[row[1]] = row[2]
            batch.processes.append(row)

    def _add_interval(self, batch: Batch, snapshot, top: dict, counters, ts: int) -> None:
        batch.pair_metrics.extend(schema.pair_metrics_row(pm, self.node) for pm in snapshot)
        for key, lists in top.items():
            for which in schema.LIST_OF_TOPN:
                for sampled in getattr(lists, which):
                    peer = self._sample_peer(key, sampled.exchange)
                    batch.samples.append(schema.sample_row(
                        sampled, which, self._to_wall(sampled.exchange.start_ns), self.node, peer))
        if counters is not None:
            batch.agent_counters.append(schema.counters_row({**counters, **self.counters()},
                                                            ts, self.node))

    def _sample_peer(self, key, ex) -> str | None:
        peer = ex.peer_name if _HAS_PEER_NAME else None
        if peer is not None or ex.peer_pid is None:
            return peer
        if isinstance(key, tuple) and len(key) == 3:
            peer = _display_to_name(key[0] if ex.side == "server" else key[1])
        if peer is None and self._peer_name is not None:
            peer = self._peer_name(ex)
        return peer

    def _retention(self) -> None:
        try:
            if self.retention.maybe_enforce(self.store, self._now()):
                self.c["store_bytes"] = self.store.size_bytes()
        except Exception as e:  # noqa: BLE001
            self.c["store_retention_errors"] += 1
            self.last_error = f"retention: {type(e).__name__}: {e}"[:200]

    # --- control ---------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or counted as failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                empty = not self._queue and not self._intervals and not self._tcp
            if empty and self._idle.is_set():
                return True
            self._wake.set()
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 30.0) -> None:
        """Everything queued is written, the thread ends; later calls write on the caller's
        thread (the final counters snapshot), the store stays open for the API."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._closed = not self._thread.is_alive()

    def counters(self) -> dict[str, int]:
        out = dict(self.c)
        out.update(self.retention.counters())
        backend = getattr(self.store, "counters", None)
        if backend is not None:
            out.update(backend())  # store_clickhouse_*: what the backend sent, retried, dropped
        out["store_queue_items"] = len(self._queue)
        return out
