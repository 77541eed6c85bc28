"""Aggregates Exchange records into per-process-pair metrics over fixed intervals.

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

The work per record is compiled code over the pipeline's batch (dataplane/_sinksmodule.c,
``Aggregator``): the rules above, with Python called for a route cache miss (``pair_of``), for
the error rule of a protocol other than HTTP's and once per interval for the PairMetrics.
"""
from __future__ import annotations

from l7scope.dataplane._sinks import Aggregator
from l7scope.exchange import Exchange
from l7scope.metrics_types import DURATION_MS_BOUNDS, SIZE_BYTES_BOUNDS, Histogram, PairMetrics
from l7scope.protocols import registry
from l7scope.protocols.http.spec import http_failures


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

# Exchange positions the compiled aggregator reads, in _sinksmodule.c's order
_FIELDS = tuple(Exchange._fields.index(f) for f in (
    "side", "pid", "comm", "peer_pid", "local", "remote", "protocol", "status", "grpc_status",
    "request_bytes", "response_bytes", "start_ns", "end_ns", "peer_name"))


_HTTP: tuple = (None, frozenset())


def http_records() -> frozenset:
    """The record protocols judged by HTTP's rule (compiled code applies it; others ask the
    registry), for the registry installed now."""
    global _HTTP
    if _HTTP[0] is not registry.PROTOCOLS:
        http = frozenset(r for p in registry.PROTOCOLS for r in p.records
                         if p.failures is http_failures)
        _HTTP = (registry.PROTOCOLS, http)
    return _HTTP[1]


class MetricsAggregator:
    """Per-pair aggregation, in compiled code (dataplane/_sinksmodule.c). The pair a record
    belongs to is worked out once per record identity (side, pids, names, endpoints, protocol:
    the same for every exchange of a connection) while the name function's ``version()``
    stays (a name function without one, or answering None, is asked every time), then one
    dict hit a record; a miss calls ``pair_of`` here. ``record_batch`` takes the pipeline's
    batch in one call; records the aggregator cannot read (a counted field that is not a
    64-bit int, which the pipeline never makes) are dropped and counted (``bad_records``)."""

    def __init__(self, max_pairs: int = 4096, name=process_name):
        self.max_pairs = max_pairs
        self.name = name
        self._agg = Aggregator(_FIELDS, self._route_of, getattr(name, "version", None),
                               is_error, max_pairs, MAX_ROUTES, SIZE_BYTES_BOUNDS,
                               DURATION_MS_BOUNDS)

    @property
    def overflow_records(self) -> int:
        return self._agg.overflow_records

    @property
    def bad_records(self) -> int:
        return self._agg.bad_records

    def _route_of(self, ex: Exchange, peer_comm: str | None) -> tuple:
        client, server, cpid, spid = pair_of(ex, peer_comm, self.name)
        return (client, server, ex.protocol), cpid, spid

    def route(self, ex: Exchange, peer_comm: str | None = None) -> tuple:
        """((client, server, protocol), client pid, server pid) of a record, cached."""
        return self._agg.route(ex, peer_comm)

    def record(self, ex: Exchange, peer_comm: str | None = None) -> None:
        self._agg.record(ex, peer_comm, http_records())

    def record_batch(self, batch: list) -> list[Exception]:
        """Every record of the batch (each with its ``peer_name``); the exceptions of those
        that failed (a name function's bug), the others recorded."""
        return self._agg.record_batch(batch, http_records())

    def snapshot(self, start_wall_ns: int, end_wall_ns: int) -> list[PairMetrics]:
        """The interval's metrics, then a fresh interval."""
        out = []
        for (client, server, proto), state in sorted(self._agg.take().items()):
            cpid, spid, requests, errors, statuses, req, resp, cdur, sdur = state
            out.append(PairMetrics(
                protocol=proto, client=client, server=server, client_pid=cpid,
                server_pid=spid, interval_start_ns=start_wall_ns,
                interval_end_ns=end_wall_ns, requests=requests,
                status_counts=tuple(sorted(statuses.items())), errors=errors,
                request_bytes=Histogram(SIZE_BYTES_BOUNDS, *req),
                response_bytes=Histogram(SIZE_BYTES_BOUNDS, *resp),
                client_duration_ms=Histogram(DURATION_MS_BOUNDS, *cdur),
                server_duration_ms=Histogram(DURATION_MS_BOUNDS, *sdur)))
        return out
