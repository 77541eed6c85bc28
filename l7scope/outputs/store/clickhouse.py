"""The ClickHouse backend: many nodes write one database (``--store clickhouse://host:8123/db``).

Theory of operation
-------------------
All of this backend's SQL lives in this module; it is sent through a transport with one method,
``run(sql, data=None) -> bytes`` (clickhouse_http.HttpTransport to a server; the tests run the
very same text through chDB, ClickHouse's engine in-process).

Schema: the logical tables of schema.py, one MergeTree table each, ordered by time, partitioned
by week and deleted by a table ``TTL`` on ``ts_ns`` (the URL's ``ttl``, default 24 h; set when
a table is created). Every row carries ``node`` (the URL's ``node``, default the host name).
The tables besides ``pair_slots`` add ``seq``, a per-node insertion number (wall clock ns at
open plus one per row): it breaks ties in time the way SQLite's rowid does. ``pair_slots`` is
an AggregatingMergeTree whose ``n``/``low``/``high`` are sum/min/max, so the cells that several
batches (and nodes) write are merged by ClickHouse, and every read aggregates them anyway.
``processes`` keeps one row per sighting; reads take the latest non-null value per process.

Writing: ``write(batch)`` (the sink's writer thread) encodes each table's rows as JSON lines
and hands them to the Outbox (clickhouse_http.py), which batches them into one INSERT per
table per second, retries with backoff within a byte bound and counts every drop. Retention by
age is the server's TTL; the agent deletes nothing (a shared database's size is its
operator's to bound).

Reading: every API spec of queries.py is one SELECT ... FORMAT JSONEachRow, answered as plain
dicts like sqlite.py's, so queries.py and web/api.py shape both backends' rows the same way.
Values from the user go into the text as escaped literals (``_lit``). ``path_regex`` runs in
the query (``match()``, RE2: linear time) after the API's checks; the few constructs RE2 lacks
(backreferences, lookaround) are refused with a 400. Reads cover every node's rows.
"""
from __future__ import annotations

import json
import socket
import time

from l7scope.outputs.store import schema
from l7scope.outputs.store.clickhouse_http import ClickHouseError, Endpoint, HttpTransport, Outbox
from l7scope.outputs.store.queries import (
    BadRequest, ExchangeQuery, MetricsQuery, SampleQuery, TcpQuery, _sre_parse)
from l7scope.outputs.store.schema import Batch

_LOW_CARDINALITY = frozenset(("node", "client", "server", "protocol", "side", "comm", "name",
                              "kind", "list", "reason", "client_name", "server_name"))
_NOT_NULL = frozenset(("ts_ns", "node"))
_SLOT_KEY = ("ts_ns", "node", "client", "server", "protocol", "kind", "key")
_SLOT_AGGREGATE = {"n": "sum", "low": "min", "high": "max"}
_ORDER = {"exchanges": "ts_ns, node", "samples": "ts_ns, node", "pair_metrics": "ts_ns, node",
          "agent_counters": "node, ts_ns", "processes": "node, pid, ts_ns",
          "pair_slots": ", ".join(_SLOT_KEY), "tcp_metrics": "ts_ns, node"}
_SECONDS = "toDateTime(intDiv(ts_ns, 1000000000))"
_READ_SETTINGS = (" SETTINGS prefer_column_name_to_alias = 1, "
                  "output_format_json_quote_64bit_integers = 0, max_execution_time = 30 "
                  "FORMAT JSONEachRow")
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _lit(value) -> str:
    """A ClickHouse literal: NULL, an integer, or a quoted string with \\ ' and NUL escaped."""
    if value is None:
        return "NULL"
    if isinstance(value, bool) or isinstance(value, int):
        return str(int(value))
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
    return f"'{text}'"


def column_type(table: str, name: str, kind: str) -> str:
    if table == "pair_slots" and name in _SLOT_AGGREGATE:
        return f"SimpleAggregateFunction({_SLOT_AGGREGATE[name]}, Int64)"
    base = "Int64" if kind == "int" else "String"
    key = name in _NOT_NULL or (table == "pair_slots" and name in _SLOT_KEY) or (
        table == "processes" and name == "pid")
    typ = base if key else f"Nullable({base})"
    return f"LowCardinality({typ})" if name in _LOW_CARDINALITY else typ


def columns_of(table: str) -> list[tuple[str, str]]:
    """(name, ClickHouse type) of a table: schema.TABLES, plus seq outside pair_slots."""
    cols = [(name, column_type(table, name, kind)) for name, kind in schema.TABLES[table]]
    if table != "pair_slots":
        cols.append(("seq", "UInt64"))
    return cols


def ddl(database: str, table: str, ttl_s: int) -> str:
    cols = ", ".join(f"`{name}` {typ}" for name, typ in columns_of(table))
    engine = "AggregatingMergeTree" if table == "pair_slots" else "MergeTree"
    return (f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}` ({cols}) ENGINE = {engine} "
            f"PARTITION BY toMonday({_SECONDS}) ORDER BY ({_ORDER[table]}) "
            f"TTL {_SECONDS} + toIntervalSecond({int(ttl_s)})")


def re2_refusal(pattern) -> str | None:
    """Why ClickHouse's RE2 cannot run an already checked Python pattern, or None."""
    unsupported = {_sre_parse.GROUPREF: "a backreference", _sre_parse.ASSERT: "a lookaround",
                   _sre_parse.ASSERT_NOT: "a lookaround",
                   _sre_parse.GROUPREF_EXISTS: "a conditional group"}
    for name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT"):
        if hasattr(_sre_parse, name):
            unsupported[getattr(_sre_parse, name)] = "an atomic group or possessive repeat"
    stack = [_sre_parse.parse(pattern.pattern)]
    while stack:
        for op, arg in stack.pop():
            if op in unsupported:
                return unsupported[op]
            stack.extend(_subpatterns(arg))
    return None


def _subpatterns(arg) -> list:
    out = []
    for item in arg if isinstance(arg, (tuple, list)) else ():
        if isinstance(item, _sre_parse.SubPattern):
            out.append(item)
        elif isinstance(item, (tuple, list)):
            out.extend(_subpatterns(item))
    return out


class ClickHouseStore:
    """A ClickHouse database as the store (see the module's text)."""

    kind = "clickhouse"
    regex_in_query = True  # the API hands path_regex to exchanges()

    def __init__(self, endpoint: Endpoint, transport=None, *, node: str | None = None,
                 timeout_s: float = 10.0, now=time.monotonic, **outbox):
        self.endpoint = endpoint
        self.path = endpoint.redacted()
        self.node = node or endpoint.node or socket.gethostname()
        self.db = f"`{endpoint.database}`"
        self._t = transport or HttpTransport(endpoint, timeout_s=timeout_s)
        self._seq = time.time_ns()
        self._outbox = Outbox(self._insert, now=now, **outbox)

    @property
    def last_error(self) -> str | None:
        return self._outbox.last_error

    def create_schema(self) -> None:
        """The database and its tables, when they do not exist yet (ClickHouseError)."""
        self._t.run(f"CREATE DATABASE IF NOT EXISTS {self.db}")
        for table in schema.TABLES:
            self._t.run(ddl(self.endpoint.database, table, self.endpoint.ttl_s))

    # --- writing (writer thread only) ------------------------------------------------------

    def write(self, batch: Batch) -> None:
        """Rows into the outbox (never raises for the server: the outbox counts), then a poll."""
        for table, columns in schema.TABLES.items():
            rows = getattr(batch, table)
            if rows:
                self._outbox.add(table, self._encode(table, columns, rows))
        self._outbox.poll()

    def _encode(self, table: str, columns, rows: list[tuple]) -> list[bytes]:
        names = [name for name, _ in columns]
        out = []
        for row in rows:
            obj = dict(zip(names, row))
            if table != "pair_slots":
                obj["seq"] = self._seq
                self._seq += 1
            out.append(_ENCODE(obj).encode("ascii"))  # ensure_ascii: any text is valid JSON
        return out

    def _insert(self, table: str, body: bytes) -> None:
        self._t.run(f"INSERT INTO {self.db}.`{table}` FORMAT JSONEachRow", body)

    def poll(self) -> None:
        self._outbox.poll()

    def flush(self) -> bool:
        return self._outbox.flush()

    def counters(self) -> dict[str, int]:
        return self._outbox.counters()

    # Retention: the table TTL deletes by age; a shared database's size is not the agent's.
    def delete_before(self, ts_ns: int) -> int:
        return 0

    def delete_oldest(self, fraction: float) -> int:
        return 0

    def reclaim(self) -> None:
        pass

    def size_bytes(self) -> int:
        """0: the size is the server's (system.parts); no query per node every pass."""
        return 0

    # --- reading (any thread) --------------------------------------------------------------

    def _rows(self, sql: str) -> list[dict]:
        raw = self._t.run(sql + _READ_SETTINGS)
        try:  # text stored from lone surrogates comes back as their 3-byte forms
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
        try:
            return [json.loads(line) for line in text.split("\n") if line]
        except ValueError:
            raise ClickHouseError(f"{self.path}: an answer that is not JSON lines") from None

    def row_count(self, table: str) -> int:
        return self._rows(f"SELECT toInt64(count()) AS c FROM {self.db}.`{table}`")[0]["c"]

    def topology_edges(self, since_ts: int | None) -> list[dict]:
        where = _where(since_ts)
        return self._rows(
            "SELECT client, server, protocol, kind, `key`, sum(n) AS n, min(low) AS low, "
            f"max(high) AS high FROM {self.db}.pair_slots "
            f"WHERE kind IN ('status', 'error', 'dur'){where} "
            "GROUP BY client, server, protocol, kind, `key`")

    def processes(self) -> list[dict]:
        """Per process name, its most recently seen pid, with the latest known exe and
        container id of that pid (what sqlite.py's upsert keeps)."""
        per_pid = (
            "SELECT node, pid, argMaxIf(name, ts_ns, name IS NOT NULL) AS pname, "
            "argMaxIf(exe, ts_ns, exe IS NOT NULL) AS pexe, "
            "argMaxIf(container_id, ts_ns, container_id IS NOT NULL) AS pcontainer, "
            f"max(ts_ns) AS last FROM {self.db}.processes GROUP BY node, pid")
        return self._rows(
            "SELECT pname AS name, argMax(pid, last) AS pid, argMax(pexe, last) AS exe, "
            "argMax(pcontainer, last) AS container_id, max(last) AS ts_ns "
            f"FROM ({per_pid}) WHERE pname IS NOT NULL GROUP BY pname")

    def exchanges(self, q: ExchangeQuery, since_ts: int | None, limit: int) -> list[dict]:
        """Rows passing every filter, path_regex included, newest first."""
        where = _where(since_ts, q.client, q.server, q.protocol)
        if q.status_min is not None:
            where += f" AND status >= {int(q.status_min)}"
        if q.status_max is not None:
            where += f" AND status <= {int(q.status_max)}"
        if q.min_duration_ms is not None:
            where += f" AND duration_ns >= {int(q.min_duration_ms * 1e6)}"
        if q.path_regex is not None:
            where += (" AND match(substringUTF8(ifNull(path, ''), 1, 4096), "
                      f"{_lit(q.path_regex.pattern)})")
        return self._rows(f"SELECT * FROM {self.db}.exchanges WHERE 1 = 1{where} "
                          f"ORDER BY ts_ns DESC, seq DESC LIMIT {int(limit)}")

    def check_path_regex(self, pattern) -> None:
        why = re2_refusal(pattern)
        if why is not None:
            raise BadRequest(f"path_regex: {why} is not supported by ClickHouse's RE2")

    def samples(self, q: SampleQuery, since_ts: int | None) -> list[dict]:
        where = _where(since_ts, q.client, q.server)
        if q.list is not None:
            where += f" AND `list` = {_lit(q.list)}"
        order = ("duration_ns DESC, ts_ns DESC" if q.list == "slow"
                 else "ts_ns DESC, duration_ns DESC")
        return self._rows(f"SELECT * FROM {self.db}.samples WHERE 1 = 1{where} "
                          f"ORDER BY {order}, seq DESC LIMIT {int(q.limit)}")

    def metrics(self, q: MetricsQuery, t0: int, step_ns: int) -> list[dict]:
        where = _where(t0, q.client, q.server, q.protocol)
        return self._rows(
            f"SELECT intDiv(ts_ns - {int(t0)}, {int(step_ns)}) AS t, kind, `key`, sum(n) AS n, "
            f"min(low) AS low, max(high) AS high FROM {self.db}.pair_slots WHERE 1 = 1{where} "
            "GROUP BY t, kind, `key`")

    def tcp_sums(self, q: TcpQuery, t0: int, step_ns: int) -> list[dict]:
        where = _where(t0, q.client, q.server)
        sums = ", ".join(f"sum({c}) AS {c}" for c in schema.TCP_SUMS)
        return self._rows(
            f"SELECT intDiv(ts_ns - {int(t0)}, {int(step_ns)}) AS t, {sums} "
            f"FROM {self.db}.tcp_metrics WHERE 1 = 1{where} GROUP BY t")

    def tcp_keyed(self, q: TcpQuery, t0: int, step_ns: int) -> list[dict]:
        where = _where(t0, q.client, q.server)
        parts = [f"SELECT intDiv(ts_ns - {int(t0)}, {int(step_ns)}) AS t, '{kind}' AS kind, "
                 "kv.1 AS `key`, sum(kv.2) AS n "
                 f"FROM {self.db}.tcp_metrics ARRAY JOIN "
                 f"JSONExtractKeysAndValues(ifNull({kind}, '{{}}'), 'Int64') AS kv "
                 f"WHERE 1 = 1{where} GROUP BY t, kind, `key`" for kind in schema.TCP_KEYED]
        return self._rows(f"SELECT * FROM ({' UNION ALL '.join(parts)})")

    def tcp_edges(self, since_ts: int | None) -> list[dict]:
        where = _where(since_ts)
        sums = ", ".join(f"toInt64(ifNull(sum({c}), 0)) AS {c}" for c in schema.TCP_EDGE_SUMS)
        return self._rows(f"SELECT client, server, {sums} FROM {self.db}.tcp_metrics "
                          f"WHERE 1 = 1{where} GROUP BY client, server")

    def tcp_oldest_ts(self) -> int | None:
        return self._rows(f"SELECT minOrNull(ts_ns) AS v FROM {self.db}.tcp_metrics")[0]["v"]

    def oldest_ts(self) -> int | None:
        return self._rows(f"SELECT minOrNull(ts_ns) AS v FROM {self.db}.pair_slots")[0]["v"]

    def newest_ts(self) -> int | None:
        return self._rows(f"SELECT maxOrNull(ts_ns) AS v FROM {self.db}.pair_slots")[0]["v"]

    def latest_counters(self) -> tuple[int, str] | None:
        """This node's latest snapshot, else the latest of any node."""
        rows = self._rows(f"SELECT ts_ns, counters FROM {self.db}.agent_counters "
                          f"ORDER BY node = {_lit(self.node)} DESC, ts_ns DESC, seq DESC LIMIT 1")
        return (rows[0]["ts_ns"], rows[0]["counters"]) if rows else None

    def close(self) -> None:
        """What is buffered is tried once more; the rest is counted dropped_at_close."""
        self._outbox.close()
        close = getattr(self._t, "close", None)
        if close is not None:
            close()


def _where(since_ts: int | None = None, client: str | None = None, server: str | None = None,
           protocol: str | None = None) -> str:
    parts = []
    if since_ts is not None:
        parts.append(f" AND ts_ns >= {int(since_ts)}")
    for column, value in (("client", client), ("server", server), ("protocol", protocol)):
        if value is not None:
            parts.append(f" AND {column} = {_lit(value)}")
    return "".join(parts)
