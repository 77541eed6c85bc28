"""The store's logical schema, shared by every backend (embedded SQLite now, ClickHouse later).

Theory of operation
-------------------
Seven tables, each a flat list of typed columns (``TABLES``); a backend turns them into its own
DDL and keeps all of its SQL in one module. Every table carries ``ts_ns`` (wall clock, ns since
the epoch) for retention and time filters, and ``node`` (the host name) so that many agents can
share one ClickHouse database.

    exchanges      one row per stored Exchange record (docs/exchange.md fields, JSON for
                   ``trace`` and ``notes``) plus what the API groups and filters by: the client
                   and server node ids, ``counted`` (this row is the one that counts its
                   request: the server's record when both ends are traced, as in metrics.py),
                   ``error`` (5xx, non-zero gRPC status, no response), ``weight`` (how many
                   exchanges the row stands for: 1, or N when the store kept 1 in N) and
                   log-scale buckets of duration and sizes for percentiles.
    pair_metrics   the agent's PairMetrics per interval, as the exporters see them.
    samples        the sampled exchanges of each interval's top-N lists with their raw,
                   already redacted request and response text.
    processes      pid -> name (exe and container id when the record carries them).
    agent_counters snapshots of every agent counter, as JSON.
    tcp_metrics    the agent's ``tcp_metrics`` records (docs/metrics.md), one row per pair and
                   interval: the ends as node ids (below) besides the record's names, the
                   counts as columns, each histogram as its count, its sum (integer us) and its
                   buckets as JSON ``{"upper bound": n}``, failures and drops by reason as
                   JSON ``{"reason": n}``: what the API adds up per step (``TCP_SUMS``,
                   ``TCP_KEYED``) and the topology per pair (``TCP_EDGE_SUMS``).
    pair_slots     per 10-second slot and node pair: request, status and error counts and
                   the buckets of durations and sizes, of every exchange offered, stored or
                   not (rollup.py); the topology and the metric charts read these.

Node ids: a local process is ``proc:<name>`` (one node per process name: every worker of a
server is one node), a remote server ``remote:<ip>:<port>``, a remote client ``remote:<ip>``
(client ports are ephemeral). Packet captures have no processes: both ends are remote.

The row builders run on the store's writer thread, never on the capture path.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from l7scope.exchange import Exchange

_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

MAX_TEXT = 4096  # bytes kept of a path, authority or request id (the record's own caps are larger)

EXCHANGE_COLUMNS = (
    ("ts_ns", "int"), ("node", "text"), ("client", "text"), ("server", "text"),
    ("counted", "int"), ("error", "int"), ("weight", "int"),
    ("dur_bucket", "int"), ("req_bucket", "int"), ("resp_bucket", "int"),
    ("protocol", "text"), ("side", "text"), ("pid", "int"), ("comm", "text"),
    ("name", "text"), ("exe", "text"), ("container_id", "text"),
    ("peer_pid", "int"), ("peer_name", "text"), ("local", "text"), ("remote", "text"),
    ("conn_id", "int"), ("stream_id", "int"), ("method", "text"), ("path", "text"),
    ("authority", "text"), ("status", "int"), ("grpc_status", "int"),
    ("request_bytes", "int"), ("response_bytes", "int"), ("start_ns", "int"),
    ("end_ns", "int"), ("duration_ns", "int"), ("time", "text"), ("trace", "text"),
    ("request_id", "text"), ("tls", "int"), ("partial", "int"), ("notes", "text"),
)
PAIR_METRICS_COLUMNS = (
    ("ts_ns", "int"), ("node", "text"), ("interval_end_ns", "int"), ("protocol", "text"),
    ("client", "text"), ("server", "text"), ("client_pid", "int"), ("server_pid", "int"),
    ("requests", "int"), ("errors", "int"), ("status_counts", "text"),
    ("request_bytes", "text"), ("response_bytes", "text"),
    ("client_duration_ms", "text"), ("server_duration_ms", "text"),
)
SAMPLE_COLUMNS = (
    ("ts_ns", "int"), ("node", "text"), ("client", "text"), ("server", "text"),
    ("protocol", "text"), ("list", "text"), ("reason", "text"), ("duration_ns", "int"),
    ("exchange", "text"), ("request", "text"), ("response", "text"), ("trace", "text"),
)
PROCESS_COLUMNS = (
    ("node", "text"), ("pid", "int"), ("name", "text"), ("exe", "text"),
    ("container_id", "text"), ("first_seen_ns", "int"), ("ts_ns", "int"),
)
COUNTER_COLUMNS = (("ts_ns", "int"), ("node", "text"), ("counters", "text"))
TCP_COLUMNS = (
    ("ts_ns", "int"), ("node", "text"), ("interval_end_ns", "int"),
    ("client", "text"), ("server", "text"), ("client_name", "text"), ("server_name", "text"),
    ("client_pid", "int"), ("server_pid", "int"),
    ("connects", "int"), ("accepts", "int"), ("connect_failures", "int"),
    ("connect_failures_by_reason", "text"),
    ("connect_ms_count", "int"), ("connect_us_sum", "int"), ("connect_ms_buckets", "text"),
    ("bytes_sent", "int"), ("bytes_received", "int"), ("write_calls", "int"),
    ("read_calls", "int"), ("write_us", "int"),
    ("rtt_us_count", "int"), ("rtt_us_sum", "int"), ("rtt_us_buckets", "text"),
    ("retransmits", "int"), ("resets_sent", "int"), ("resets_received", "int"),
    ("drops", "int"), ("drops_by_reason", "text"),
)
# what the API adds up per step: the integer columns, and the JSON {key: n} columns
TCP_SUMS = ("connects", "accepts", "connect_failures", "connect_ms_count", "connect_us_sum",
            "bytes_sent", "bytes_received", "write_calls", "read_calls", "write_us",
            "rtt_us_count", "rtt_us_sum", "retransmits", "resets_sent", "resets_received",
            "drops")
TCP_KEYED = ("connect_failures_by_reason", "connect_ms_buckets", "rtt_us_buckets",
             "drops_by_reason")
# what the topology adds up per (client, server) pair over its window (an edge's "tcp")
TCP_EDGE_SUMS = ("connects", "accepts", "connect_failures", "bytes_sent", "bytes_received",
                 "retransmits", "resets_sent", "resets_received", "drops")
PAIR_SLOT_COLUMNS = (
    ("ts_ns", "int"), ("node", "text"), ("client", "text"), ("server", "text"),
    ("protocol", "text"), ("kind", "text"), ("key", "int"), ("n", "int"), ("low", "int"),
    ("high", "int"),
)

TABLES = {
    "exchanges": EXCHANGE_COLUMNS,
    "pair_metrics": PAIR_METRICS_COLUMNS,
    "samples": SAMPLE_COLUMNS,
    "processes": PROCESS_COLUMNS,
    "agent_counters": COUNTER_COLUMNS,
    "pair_slots": PAIR_SLOT_COLUMNS,
    "tcp_metrics": TCP_COLUMNS,
}



@dataclass(slots=True)
class Batch:
    """Rows for one transaction, one list per table (columns in TABLES order); pair_slots
    rows are merged into the table (n added, low/high widened), the others inserted."""

    exchanges: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    pair_metrics: list = field(default_factory=list)
    processes: list = field(default_factory=list)
    agent_counters: list = field(default_factory=list)
    pair_slots: list = field(default_factory=list)
    tcp_metrics: list = field(default_factory=list)


# The fields an API exchange carries: the contract (docs/exchange.md), the process fields of
# turn 2, then the node ids the store adds.
API_EXCHANGE_FIELDS = (
    "protocol", "side", "pid", "comm", "local", "remote", "peer_pid", "conn_id", "stream_id",
    "method", "path", "authority", "status", "grpc_status", "request_bytes", "response_bytes",
    "start_ns", "end_ns", "duration_ns", "time", "trace", "request_id", "tls", "partial",
    "notes", "name", "exe", "container_id", "peer_name", "node", "client", "server",
)
_BOOL_FIELDS = ("tls", "partial")
_JSON_FIELDS = ("trace", "notes")

LIST_OF_TOPN = {"slowest": "slow", "status_4xx": "4xx", "status_5xx": "5xx"}
BUCKETS_PER_DOUBLING = 16  # log buckets: 2**(1/16) wide, about 4.4 % resolution


def bucket_of(value: int, unit: int = 1) -> int:
    """Log-scale bucket of a non-negative value: 0 below ``unit``, then 16 per doubling."""
    if value < unit:
        return 0
    return int(math.log2(value / unit) * BUCKETS_PER_DOUBLING) + 1


def node_of_process(name: str | None, pid: int | None) -> str:
    return f"proc:{name}" if name else f"proc:pid-{pid}"


def _ip_of(endpoint: str | None) -> str:
    if not endpoint:
        return "?"
    return endpoint.rsplit(":", 1)[0].strip("[]")


def ends_of(ex: Exchange, peer_name: str | None) -> tuple[str, str]:
    """(client node id, server node id) of a record."""
    me = node_of_process(_name(ex), ex.pid) if ex.pid is not None else None
    peer = node_of_process(peer_name, ex.peer_pid) if ex.peer_pid is not None else None
    if ex.side == "server":
        return peer or f"remote:{_ip_of(ex.remote)}", me or "remote:?"
    if ex.side == "client":
        return me or "remote:?", peer or f"remote:{ex.remote or '?'}"
    return f"remote:{_ip_of(ex.local)}", f"remote:{ex.remote or '?'}"  # capture: local = client


_HAS = frozenset(Exchange._fields)  # name, exe, container_id come with the record's turn 2


def _name(ex: Exchange) -> str | None:
    return (ex.name if "name" in _HAS else None) or ex.comm


def _field(ex: Exchange, name: str):
    return getattr(ex, name) if name in _HAS else None


def counts_request(ex: Exchange) -> bool:
    """The record that counts its request: a server's, or a client's whose server is not
    traced (metrics.py uses the same rule)."""
    return ex.side != "client" or ex.peer_pid is None


def is_error(ex: Exchange) -> bool:
    if ex.status is None:
        return True
    if ex.grpc_status not in (None, 0):
        return True
    return ex.status >= 500


def _cap(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_TEXT else text[:MAX_TEXT]


def exchange_row(ex: Exchange, ts_ns: int, node: str, peer_name: str | None,
                 weight: int, ends: tuple[str, str] | None = None) -> tuple:
    client, server = ends or ends_of(ex, peer_name)
    duration = ex.duration_ns
    return (
        ts_ns, node, client, server, int(counts_request(ex)), int(is_error(ex)), weight,
        bucket_of(duration, 1000), bucket_of(ex.request_bytes), bucket_of(ex.response_bytes),
        ex.protocol, ex.side, ex.pid, ex.comm, _name(ex), _field(ex, "exe"),
        _field(ex, "container_id"), ex.peer_pid, peer_name, ex.local, ex.remote,
        ex.conn_id, ex.stream_id, ex.method, _cap(ex.path), _cap(ex.authority), ex.status,
        ex.grpc_status, ex.request_bytes, ex.response_bytes, ex.start_ns, ex.end_ns, duration,
        ex.time, _JSON(ex.trace.to_dict()) if ex.trace else None, _cap(ex.request_id),
        int(ex.tls), int(ex.partial), _JSON(list(ex.notes)),
    )


def exchange_from_row(row: dict) -> dict:
    """An API exchange (API_EXCHANGE_FIELDS) from a stored row given as a column dict."""
    out = {k: row.get(k) for k in API_EXCHANGE_FIELDS}
    for k in _BOOL_FIELDS:
        out[k] = bool(out[k])
    for k in _JSON_FIELDS:
        out[k] = json.loads(out[k]) if out[k] else ([] if k == "notes" else None)
    return out


def pair_metrics_row(pm, node: str) -> tuple:
    return (
        pm.interval_start_ns, node, pm.interval_end_ns, pm.protocol, pm.client, pm.server,
        pm.client_pid, pm.server_pid, pm.requests, pm.errors, _JSON(dict(pm.status_counts)),
        _JSON(pm.request_bytes.to_dict()), _JSON(pm.response_bytes.to_dict()),
        _JSON(pm.client_duration_ms.to_dict()), _JSON(pm.server_duration_ms.to_dict()),
    )


def sample_row(sampled, which: str, ts_ns: int, node: str, peer_name: str | None) -> tuple:
    ex = sampled.exchange
    client, server = ends_of(ex, peer_name)
    api = exchange_from_row(dict(zip([c for c, _ in EXCHANGE_COLUMNS],
                                     exchange_row(ex, ts_ns, node, peer_name, 1))))
    return (
        ts_ns, node, client, server, ex.protocol, LIST_OF_TOPN[which], sampled.reason,
        ex.duration_ns, _JSON(api), _text(sampled.request_raw), _text(sampled.response_raw),
        _JSON(ex.trace.to_dict()) if ex.trace else None,
    )


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


def process_rows(ex: Exchange, peer_name: str | None, node: str, ts_ns: int) -> list[tuple]:
    rows = []
    if ex.pid is not None:
        rows.append((node, ex.pid, _name(ex), _field(ex, "exe"),
                     _field(ex, "container_id"), ts_ns, ts_ns))
    if ex.peer_pid is not None:
        rows.append((node, ex.peer_pid, peer_name, None, None, ts_ns, ts_ns))
    return rows


def counters_row(counters: dict, ts_ns: int, node: str) -> tuple:
    return ts_ns, node, _JSON(counters)


# --- tcp_metrics ---------------------------------------------------------------------------

MAX_KEYS = 256  # reasons or buckets kept of one record's map (the kernel has ~100 reasons)


def bound_key(bound) -> str:
    """A histogram bound as its bucket's key: 0.5 -> "0.5", 250.0 -> "250", +Inf -> "+Inf"."""
    value = float(bound)
    if math.isinf(value):
        return "+Inf"
    return str(int(value)) if value.is_integer() else repr(value)


def _counts(mapping) -> dict:
    """{str: non-negative int} from a record's map, at most MAX_KEYS keys; else ValueError."""
    out = {}
    for key, n in (mapping or {}).items():
        if type(n) is not int or n < 0:
            raise ValueError(f"count {key!r}: {n!r}")
        if n and len(out) < MAX_KEYS:
            out[str(key)[:64]] = n
    return out


def _histogram(h: dict | None, scale: int) -> tuple[int, int, str]:
    """(count, sum * scale as an integer, {"upper bound": n} as JSON) of a histogram dict:
    the buckets with observations, and the largest finite bound always (a quantile in the
    +Inf bucket reads as that bound)."""
    if not h:
        return 0, 0, "{}"
    bounds, counts = list(h["bounds"]), list(h["counts"])
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"histogram: {len(counts)} counts for {len(bounds)} bounds")
    keys = [bound_key(b) for b in bounds] + ["+Inf"]
    keyed = _counts(dict(zip(keys, counts)))
    if len(keys) > 1 and keys[-2] not in keyed:  # the top finite bound: what +Inf reads as
        keyed[keys[-2]] = 0
    return int(h["count"]), round(float(h["sum"]) * scale), _JSON(keyed)


def tcp_metrics_row(rec: dict, node: str, client: str, server: str) -> tuple:
    """A ``tcp_metrics`` record (tcpmetrics.py) as a row; ``client``/``server`` are the node
    ids of its ends. A record that is not of that shape raises (the writer counts it)."""
    failures, drops = _counts(rec.get("connect_failures_by_reason")), _counts(rec.get("drops"))
    return (
        int(rec["interval_start_ns"]), node, int(rec["interval_end_ns"]), client, server,
        rec["client"], rec["server"], rec.get("client_pid"), rec.get("server_pid"),
        int(rec["connects"]), int(rec.get("accepts", 0)), int(rec["connect_failures"]),
        _JSON(failures), *_histogram(rec.get("connect_ms"), 1000),
        int(rec["bytes_sent"]), int(rec["bytes_received"]), int(rec.get("write_calls", 0)),
        int(rec.get("read_calls", 0)), round(float(rec.get("write_ms", 0)) * 1000),
        *_histogram(rec.get("rtt_us"), 1),
        int(rec["retransmits"]), int(rec["resets_sent"]), int(rec["resets_received"]),
        sum(drops.values()), _JSON(drops),
    )


def tcp_end_node(display: str | None, pid: int | None, process_name: str | None = None) -> str:
    """The node id of one end of a tcp_metrics record, as exchanges name it: a local process
    (a pid) is ``proc:<process name>`` (the record's own name, a service name, when the process
    name is not known); an end without a pid is named by its address in the record, ``ip`` for
    a client and ``ip:port`` for a server, so ``remote:<ip>`` / ``remote:<ip>:<port>``."""
    if pid:
        return node_of_process(process_name or display, pid)
    return f"remote:{display or '?'}"
