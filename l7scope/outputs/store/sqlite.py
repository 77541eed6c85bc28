"""The embedded store backend: one SQLite file (Python's standard library, no install).

Theory of operation
-------------------
All of this backend's SQL lives in this module. The file is opened in WAL mode: one writer
connection, used only by the store's writer thread, commits each batch in one transaction,
while the API's threads read through their own read-only connections without blocking it (a
reader sees the last committed batch). ``auto_vacuum=INCREMENTAL`` is set before the tables
exist, so pages freed by retention go back to the file system (``incremental_vacuum``) and
``page_count * page_size`` is the file's size, the figure the size bound is checked against;
the WAL is truncated after each retention pass.

Every method answers one spec of queries.py with plain rows; the shaping into the API's JSON
is done once, in queries.py / web/api.py, for every backend. Errors are sqlite3.Error or
OSError; the writer counts them (the store never raises into the capture path).
"""
from __future__ import annotations

import errno
import os
import sqlite3
import threading

from l7scope.outputs.store import schema
from l7scope.outputs.store.schema import Batch
from l7scope.outputs.store.queries import ExchangeQuery, MetricsQuery, SampleQuery, TcpQuery

_SQL_TYPE = {"int": "INTEGER", "text": "TEXT"}
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS exchanges_ts ON exchanges(ts_ns)",
    "CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts_ns)",
    "CREATE INDEX IF NOT EXISTS pair_metrics_ts ON pair_metrics(ts_ns)",
    "CREATE INDEX IF NOT EXISTS agent_counters_ts ON agent_counters(ts_ns)",
    "CREATE INDEX IF NOT EXISTS tcp_metrics_ts ON tcp_metrics(ts_ns)",
    "CREATE UNIQUE INDEX IF NOT EXISTS processes_pid ON processes(node, pid)",
    "CREATE UNIQUE INDEX IF NOT EXISTS pair_slots_key "
    "ON pair_slots(ts_ns, node, client, server, protocol, kind, key)",
)
_UPSERT_PROCESS = (
    "INSERT INTO processes VALUES (?,?,?,?,?,?,?) ON CONFLICT(node, pid) DO UPDATE SET "
    "name=COALESCE(excluded.name, name), exe=COALESCE(excluded.exe, exe), "
    "container_id=COALESCE(excluded.container_id, container_id), ts_ns=excluded.ts_ns")
_MERGE_SLOT = (
    "INSERT INTO pair_slots VALUES (?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(ts_ns, node, client, server, protocol, kind, key) DO UPDATE SET "
    "n = n + excluded.n, low = MIN(low, excluded.low), high = MAX(high, excluded.high)")
TABLES_BY_AGE = ("exchanges", "samples", "pair_metrics", "tcp_metrics", "pair_slots",
                 "agent_counters")


def _ddl(table: str, columns) -> str:
    cols = ", ".join(f'"{name}" {_SQL_TYPE[kind]}' for name, kind in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


def _insert(table: str, columns) -> str:
    return f"INSERT INTO {table} VALUES ({','.join('?' * len(columns))})"


def create_private_file(path: str) -> None:
    """The data directory (0700 when we create it) and the database file (0600)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


class SqliteStore:
    """One SQLite file. ``max_page_count`` (tests) makes the file 'full' at that many pages."""

    kind = "sqlite"

    def __init__(self, path: str, busy_timeout_ms: int = 250, max_page_count: int | None = None):
        self.path = path
        create_private_file(path)
        self._busy_ms = busy_timeout_ms
        self._db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000,
                                   check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before any table exists
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for table, columns in schema.TABLES.items():
            self._db.execute(_ddl(table, columns))
        for sql in _INDEXES:
            self._db.execute(sql)
        if max_page_count is not None:
            self._db.execute(f"PRAGMA max_page_count={int(max_page_count)}")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # --- writing (writer thread only) ------------------------------------------------------

    def write(self, batch: Batch) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("exchanges", "samples", "pair_metrics", "agent_counters", "tcp_metrics"):
                rows = getattr(batch, table)
                if rows:
                    db.executemany(_insert(table, schema.TABLES[table]), rows)
            if batch.processes:
                db.executemany(_UPSERT_PROCESS, batch.processes)
            if batch.pair_slots:
                db.executemany(_MERGE_SLOT, batch.pair_slots)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def delete_before(self, ts_ns: int) -> int:
        """Rows older than ts_ns, every table; returns how many went."""
        deleted = 0
        for table in TABLES_BY_AGE + ("processes",):
            deleted += self._db.execute(f"DELETE FROM {table} WHERE ts_ns < ?", (ts_ns,)).rowcount
        return deleted

    def delete_oldest(self, fraction: float) -> int:
        """The oldest ``fraction`` of the first non-empty table in TABLES_BY_AGE (insertion
        order: rowids grow); returns how many rows went."""
        for table in TABLES_BY_AGE:
            low, high = self._db.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {table}").fetchone()
            if low is None:
                continue
            upto = low + max(1, int((high - low + 1) * fraction)) - 1
            return self._db.execute(f"DELETE FROM {table} WHERE rowid <= ?", (upto,)).rowcount
        return 0

    def reclaim(self) -> None:
        """Freed pages back to the file system; the WAL truncated."""
        # executescript steps the pragma to its end (execute() frees one page per step)
        self._db.executescript("PRAGMA incremental_vacuum;")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        return pages * self._db.execute("PRAGMA page_size").fetchone()[0]

    def row_count(self, table: str) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # --- reading (any thread: one read-only connection per thread) -------------------------

    def _reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                 timeout=self._busy_ms / 1000)
            db.row_factory = sqlite3.Row
            self._local.db = db
            with self._lock:
                self._readers.append(db)
        return db

    def _rows(self, sql: str, args=()) -> list[dict]:
        return [dict(r) for r in self._reader().execute(sql, args)]

    def topology_edges(self, since_ts: int | None) -> list[dict]:
        """Per (client, server, protocol, kind, key) over the slots since ``since_ts``:
        n, low, high (kinds status, error and dur; rollup.py)."""
        where, args = _where(since_ts=since_ts)
        return self._rows(
            "SELECT client, server, protocol, kind, key, SUM(n) AS n, MIN(low) AS low, "
            "MAX(high) AS high FROM pair_slots WHERE kind IN ('status', 'error', 'dur')"
            f"{where} GROUP BY 1, 2, 3, 4, 5", args)

    def processes(self) -> list[dict]:
        """Per process name, its most recently seen pid (SQLite: bare columns of max())."""
        return self._rows("SELECT name, pid, exe, container_id, MAX(ts_ns) AS ts_ns "
                          "FROM processes WHERE name IS NOT NULL GROUP BY name")

    def exchanges(self, q: ExchangeQuery, since_ts: int | None, limit: int,
                  columns: str = "*"):
        """Rows passing the filters (all but path_regex), newest first, as an iterator."""
        where, args = _where(since_ts, q.client, q.server, q.protocol)
        if q.status_min is not None:
            where, args = where + " AND status >= ?", args + [q.status_min]
        if q.status_max is not None:
            where, args = where + " AND status <= ?", args + [q.status_max]
        if q.min_duration_ms is not None:
            where, args = where + " AND duration_ns >= ?", args + [int(q.min_duration_ms * 1e6)]
        cursor = self._reader().execute(
            f"SELECT {columns} FROM exchanges WHERE 1 = 1{where} "
            "ORDER BY ts_ns DESC, rowid DESC LIMIT ?", args + [limit])
        return (dict(r) for r in cursor)

    def exchange_paths(self, q: ExchangeQuery, since_ts: int | None, limit: int):
        """(id, path) of the rows exchanges() would give: the regex candidates."""
        return self.exchanges(q, since_ts, limit, columns="rowid AS id, path")

    def exchanges_by_id(self, ids: list[int]) -> list[dict]:
        rows = {r["rowid"]: r for r in self._rows(
            f"SELECT rowid, * FROM exchanges WHERE rowid IN ({','.join('?' * len(ids))})", ids)}
        return [rows[i] for i in ids if i in rows]

    def samples(self, q: SampleQuery, since_ts: int | None) -> list[dict]:
        where, args = _where(since_ts, q.client, q.server)
        if q.list is not None:
            where, args = where + ' AND "list" = ?', args + [q.list]
        order = ("duration_ns DESC, ts_ns DESC" if q.list == "slow"
                 else "ts_ns DESC, duration_ns DESC")
        return self._rows(f"SELECT * FROM samples WHERE 1 = 1{where} ORDER BY {order}, rowid DESC "
                          "LIMIT ?", args + [q.limit])

    def metrics(self, q: MetricsQuery, t0: int, step_ns: int) -> list[dict]:
        """Per time slot t = (ts_ns - t0) // step_ns, kind and key: n, low, high."""
        where, args = _where(t0, q.client, q.server, q.protocol)
        return self._rows(
            f"SELECT (ts_ns - ?) / ? AS t, kind, key, SUM(n) AS n, MIN(low) AS low, "
            f"MAX(high) AS high FROM pair_slots WHERE 1 = 1{where} GROUP BY 1, 2, 3",
            [int(t0), int(step_ns)] + args)

    def tcp_sums(self, q: TcpQuery, t0: int, step_ns: int) -> list[dict]:
        """Per time slot t = (ts_ns - t0) // step_ns: the sum of each schema.TCP_SUMS column."""
        where, args = _where(t0, q.client, q.server)
        sums = ", ".join(f"SUM({c}) AS {c}" for c in schema.TCP_SUMS)
        return self._rows(f"SELECT (ts_ns - ?) / ? AS t, {sums} FROM tcp_metrics "
                          f"WHERE 1 = 1{where} GROUP BY 1", [int(t0), int(step_ns)] + args)

    def tcp_keyed(self, q: TcpQuery, t0: int, step_ns: int) -> list[dict]:
        """Per time slot t, schema.TCP_KEYED column (kind) and key of its JSON map: n."""
        where, args = _where(t0, q.client, q.server)
        parts = [f"SELECT (ts_ns - ?) / ? AS t, '{kind}' AS kind, j.key AS key, "
                 f"SUM(j.value) AS n FROM tcp_metrics, json_each(tcp_metrics.{kind}) AS j "
                 f"WHERE 1 = 1{where} GROUP BY 1, 3" for kind in schema.TCP_KEYED]
        return self._rows(" UNION ALL ".join(parts),
                          ([int(t0), int(step_ns)] + args) * len(schema.TCP_KEYED))

    def tcp_edges(self, since_ts: int | None) -> list[dict]:
        """Per (client, server) over the tcp_metrics rows since ``since_ts``: the sum of each
        schema.TCP_EDGE_SUMS column (the topology's TCP figures)."""
        where, args = _where(since_ts=since_ts)
        sums = ", ".join(f"SUM({c}) AS {c}" for c in schema.TCP_EDGE_SUMS)
        return self._rows(f"SELECT client, server, {sums} FROM tcp_metrics WHERE 1 = 1{where} "
                          "GROUP BY 1, 2", args)

    def tcp_oldest_ts(self) -> int | None:
        return self._reader().execute("SELECT MIN(ts_ns) FROM tcp_metrics").fetchone()[0]

    def oldest_ts(self) -> int | None:
        return self._reader().execute("SELECT MIN(ts_ns) FROM pair_slots").fetchone()[0]

    def newest_ts(self) -> int | None:
        return self._reader().execute("SELECT MAX(ts_ns) FROM pair_slots").fetchone()[0]

    def latest_counters(self) -> tuple[int, str] | None:
        row = self._reader().execute(
            "SELECT ts_ns, counters FROM agent_counters ORDER BY ts_ns DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def close(self) -> None:
        with self._lock:
            readers, self._readers = self._readers, []
        for db in readers:
            db.close()
        self._db.close()


def _where(since_ts: int | None = None, client: str | None = None, server: str | None = None,
           protocol: str | None = None) -> tuple[str, list]:
    parts, args = [], []
    for clause, value in (("ts_ns >= ?", since_ts), ("client = ?", client),
                          ("server = ?", server), ("protocol = ?", protocol)):
        if value is not None:
            parts.append(f" AND {clause}")
            args.append(value)
    return "".join(parts), args
