"""The pure-Python aggregator the compiled one replaced, kept as a reference for the
differential tests (tests/test_metrics_compiled.py) only; l7scope never imports it.

Aggregates Exchange records into per-process-pair metrics over fixed intervals.

Theory of operation
-------------------
Each record names the observing process (pid/comm) and, when the other end is a traced local
process, that peer (peer_pid/peer_name). A pair is (client name, server name, protocol):
local processes are named by service, never by pid (``service_names``: the process table's
service name, else the process name; without a table the process name), a remote client is its
IP, a remote server "ip:port" (client ports are ephemeral: naming clients by port would make a
series per connection). So 200 short-lived clients of one program are one series; the pids stay
in the Exchange records, and each pair's client_pid/server_pid are the last ones seen.

When both ends are traced, each request produces two records. To count every request once,
requests, statuses and sizes come from the server's record when the server is traced, else from
the client's; each side's record feeds its own duration histogram (client_duration_ms from
client records, server_duration_ms from server records). Packet captures (side None) count the
request and feed both durations. A request is an error by its protocol's rule (the registry's
``is_error``: for HTTP no response, a status of 500 or more, or a non-zero grpc-status).

Bounded: at most `max_pairs` pairs per interval; records beyond land in one "(overflow)" pair
and are counted.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from l7scope.exchange import Exchange
from l7scope.metrics_types import DURATION_MS_BOUNDS, SIZE_BYTES_BOUNDS, Histogram, PairMetrics
from l7scope.protocols import registry


@dataclass(slots=True)
class _Hist:
    bounds: tuple
    counts: list = None
    sum: float = 0.0
    count: int = 0

    def __post_init__(self):
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, v: float) -> None:
        _observe(self, self.bounds, v)

    def freeze(self) -> Histogram:
        return Histogram(tuple(self.bounds), tuple(self.counts), self.sum, self.count)


def _observe(h: _Hist, bounds: tuple, v: float) -> None:
    h.counts[bisect_left(bounds, v)] += 1
    h.sum += v
    h.count += 1


@dataclass(slots=True)
class _Pair:
    client_pid: int | None
    server_pid: int | None
    requests: int = 0
    errors: int = 0
    statuses: dict = field(default_factory=dict)
    req_size: _Hist = field(default_factory=lambda: _Hist(SIZE_BYTES_BOUNDS))
    resp_size: _Hist = field(default_factory=lambda: _Hist(SIZE_BYTES_BOUNDS))
    client_dur: _Hist = field(default_factory=lambda: _Hist(DURATION_MS_BOUNDS))
    server_dur: _Hist = field(default_factory=lambda: _Hist(DURATION_MS_BOUNDS))


def process_name(comm: str | None, pid: int | None) -> str:
    """A local process's pair name without a process table: its name (no pid)."""
    return comm or "?"


process_name.version = lambda: 0  # a pure function of its arguments: names never go stale


class ServiceNames:
    """The pair-name function of a run with a process table (procs.ProcessTable): a local
    process is its service name (docs/processes.md), else its name; one dict hit a call.
    ``version()`` is the table's: a name derived from it holds while that does not move."""

    __slots__ = ("_lookup", "_table")

    def __init__(self, processes):
        self._table = processes
        self._lookup = processes.lookup

    def __call__(self, comm: str | None, pid: int | None) -> str:
        info = self._lookup(pid) if pid is not None else None
        if info is None:
            return comm or "?"
        return info.service or info.name or comm or "?"

    def version(self) -> int | None:
        """None: the table keeps no version (names are then worked out every time)."""
        return getattr(self._table, "version", None)


def service_names(processes) -> ServiceNames:
    return ServiceNames(processes)


def _ip_of(endpoint: str | None) -> str:
    if not endpoint:
        return "?"
    host = endpoint.rsplit(":", 1)[0]
    return host.strip("[]")


def pair_of(ex: Exchange, peer_comm: str | None = None,
            name=process_name) -> tuple[str, str, int | None, int | None]:
    """(client name, server name, client pid, server pid) for a record; `name(comm, pid)` names
    local processes (the process name by default, ``service_names`` with a process table)."""
    me = name(ex.comm, ex.pid) if ex.pid is not None else None
    peer = name(peer_comm, ex.peer_pid) if ex.peer_pid is not None else None
    if ex.side == "server":
        return (peer or _ip_of(ex.remote)), me, ex.peer_pid, ex.pid
    if ex.side == "client":
        return me, (peer or ex.remote or "?"), ex.pid, ex.peer_pid
    return _ip_of(ex.local), ex.remote or "?", None, None  # capture: local is the client


def is_error(ex: Exchange) -> bool:
    """The call failed by its protocol's rule (protocols/registry.py; HTTP: no response, a
    status of 500 or more, a non-zero grpc-status)."""
    return registry.is_error(ex)


MAX_ROUTES = 16384  # cached (record identity -> pair) entries, cleared when full


class MetricsAggregator:
    """Per-pair aggregation. The pair a record belongs to is worked out once per record
    identity (side, pids, names, endpoints, protocol: the same for every exchange of a
    connection) while the name function's ``version()`` stays (a name function without one,
    or answering None, is asked every time), then one dict hit a record."""

    def __init__(self, max_pairs: int = 4096, name=process_name):
        self.max_pairs = max_pairs
        self.name = name
        self.overflow_records = 0
        self._pairs: dict[tuple, _Pair] = {}
        self._version = getattr(name, "version", None)
        self._routes: dict[tuple, tuple] = {}
        self._routes_at = None

    def route(self, ex: Exchange, peer_comm: str | None = None) -> tuple:
        """((client, server, protocol), client pid, server pid) of a record, cached."""
        version = self._version() if self._version is not None else None
        if version is None:
            client, server, cpid, spid = pair_of(ex, peer_comm, self.name)
            return (client, server, ex.protocol), cpid, spid
        if version != self._routes_at:
            self._routes.clear()
            self._routes_at = version
        ident = (ex.side, ex.pid, ex.comm, ex.peer_pid, peer_comm, ex.local, ex.remote,
                 ex.protocol)
        route = self._routes.get(ident)
        if route is None:
            client, server, cpid, spid = pair_of(ex, peer_comm, self.name)
            route = (client, server, ex.protocol), cpid, spid
            if len(self._routes) >= MAX_ROUTES:
                self._routes.clear()
            self._routes[ident] = route
        return route

    def record(self, ex: Exchange, peer_comm: str | None = None) -> None:
        key, cpid, spid = self.route(ex, peer_comm)
        p = self._pairs.get(key)
        if p is None:
            p = self._new_pair(key, cpid, spid)
        if cpid is not None:
            p.client_pid = cpid  # the last seen (the pair's name has no pid)
        if spid is not None:
            p.server_pid = spid
        side, status = ex.side, ex.status
        if side != "client" or ex.peer_pid is None:  # counts the request (module docstring)
            p.requests += 1
            text = str(status) if status is not None else "none"
            p.statuses[text] = p.statuses.get(text, 0) + 1
            p.errors += registry.is_error(ex)
            h, v = p.req_size, ex.request_bytes  # histograms observed inline (_observe)
            h.counts[bisect_left(SIZE_BYTES_BOUNDS, v)] += 1
            h.sum += v
            h.count += 1
            if status is not None:
                h, v = p.resp_size, ex.response_bytes
                h.counts[bisect_left(SIZE_BYTES_BOUNDS, v)] += 1
                h.sum += v
                h.count += 1
        if status is None:
            return
        ms = max(0, ex.end_ns - ex.start_ns) / 1e6  # ex.duration_ns without the property call
        if side == "client" or side is None:  # None: a capture, both durations
            _observe(p.client_dur, DURATION_MS_BOUNDS, ms)
        if side == "server" or side is None:
            _observe(p.server_dur, DURATION_MS_BOUNDS, ms)

    def _new_pair(self, key: tuple, cpid, spid) -> _Pair:
        if len(self._pairs) >= self.max_pairs:
            self.overflow_records += 1
            key = ("(overflow)", "(overflow)", key[2])
            p = self._pairs.get(key)
            if p is not None:
                return p
        p = self._pairs[key] = _Pair(cpid, spid)
        return p

    def snapshot(self, start_wall_ns: int, end_wall_ns: int) -> list[PairMetrics]:
        """The interval's metrics, then a fresh interval."""
        out = []
        for (client, server, proto), p in sorted(self._pairs.items()):
            out.append(PairMetrics(
                protocol=proto, client=client, server=server, client_pid=p.client_pid,
                server_pid=p.server_pid, interval_start_ns=start_wall_ns,
                interval_end_ns=end_wall_ns, requests=p.requests,
                status_counts=tuple(sorted(p.statuses.items())), errors=p.errors,
                request_bytes=p.req_size.freeze(), response_bytes=p.resp_size.freeze(),
                client_duration_ms=p.client_dur.freeze(), server_duration_ms=p.server_dur.freeze()))
        self._pairs = {}
        return out
