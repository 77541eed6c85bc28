"""ClickHouse over its HTTP interface: the store URL, one transport, and the outbox that batches,
retries and bounds the inserts.

Theory of operation
-------------------
``parse_url("clickhouse://[user[:password]@]host[:port]/database[?node=NAME&ttl=SECONDS]")``
gives an Endpoint; the password lives only in the Authorization header built from it, never in
``Endpoint.redacted()`` (what status lines, errors and the API show) nor in any message.

``HttpTransport.run(sql, data=None) -> bytes`` is one POST to the server's HTTP interface
(stdlib http.client, one keep-alive connection per thread): with ``data`` the statement goes
in the URL (``?database=DB&query=INSERT ... FORMAT JSONEachRow``) and the rows in the body,
as ClickHouse takes inserts; without, the statement is the body. A status other than 200 is a
ClickHouseError carrying the status and the first line of the server's message; a refused
connection or a timeout is one too (status None). Any object with the same ``run`` (the tests'
chDB session) can stand in, so the same SQL text runs on either.

The Outbox sits between the store's ``write`` (the sink's writer thread, never the capture
path) and the transport:

    add(table, lines)   encoded rows go to that table's open chunk; the whole outbox is bounded
                        by bytes: over the bound, the oldest sealed chunks are dropped
                        (``dropped_buffer_full``, in rows) to make room, or the new rows if
                        nothing older is left.
    poll()              at most every ``insert_every_s`` (or when an open chunk is past
                        ``max_insert_bytes``) the open chunks are sealed, one INSERT per table,
                        and sealed chunks are sent oldest first. A failure that may pass (no
                        connection, timeout, HTTP 5xx, 408, 429) stops the round: that chunk is
                        tried again after a backoff doubling from ``backoff_s`` to
                        ``max_backoff_s`` (``retries``), and dropped after ``max_attempts``
                        (``dropped_gave_up``). A refusal (other 4xx: bad rows, no permission)
                        will not pass: that chunk is dropped (``dropped_rejected``).
    flush()             seals and tries every chunk once now (the sink's last batch, close).
    close()             flush(), then what is left is ``dropped_at_close``.

Every drop is counted in rows when it happens; ``last_error`` keeps the latest reason.
"""
from __future__ import annotations

import base64
import collections
import http.client
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlencode, urlsplit, parse_qs

from l7scope.outputs.store.queries import StoreUnavailable

DEFAULT_PORT = 8123
DEFAULT_DATABASE = "l7scope"
DEFAULT_TTL_S = 24 * 3600
MAX_RESPONSE = 64 << 20
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_RETRY_STATUS = frozenset((408, 429))
_BAD_URL = "bad ClickHouse URL (clickhouse://[user[:password]@]host[:port]/db)"


class ClickHouseError(StoreUnavailable):
    """The server refused or could not be reached; ``status`` is the HTTP status or None."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in _RETRY_STATUS


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int = DEFAULT_PORT
    database: str = DEFAULT_DATABASE
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    node: str | None = None
    ttl_s: int = DEFAULT_TTL_S

    def redacted(self) -> str:
        """The URL without the password: safe to print."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"clickhouse://{user}{host}:{self.port}/{self.database}"

    def auth_header(self) -> str | None:
        if self.user is None:
            return None
        token = f"{self.user}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(token).decode("ascii")


def parse_url(spec: str) -> Endpoint:
    """An Endpoint from a clickhouse:// URL; ValueError with one line that never holds the
    password."""
    try:
        parts = urlsplit(spec)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(_BAD_URL) from None
    if parts.scheme != "clickhouse" or not parts.hostname:
        raise ValueError(_BAD_URL)
    database = parts.path.strip("/") or DEFAULT_DATABASE
    if not _IDENT.fullmatch(database):
        raise ValueError(f"ClickHouse database {database[:64]!r}: letters, digits and _ only")
    options = parse_qs(parts.query, keep_blank_values=True)
    for name in options:
        if name not in ("node", "ttl"):
            raise ValueError(f"ClickHouse URL: unknown option {name[:40]!r} (node, ttl)")
    node = options.get("node", [None])[-1]
    if node is not None and not 0 < len(node) <= 255:
        raise ValueError("ClickHouse URL: node must be 1 to 255 characters")
    ttl = options.get("ttl", [str(DEFAULT_TTL_S)])[-1]
    if not re.fullmatch(r"[0-9]{1,10}", ttl) or not 60 <= int(ttl) <= 10 * 365 * 86400:
        raise ValueError("ClickHouse URL: ttl must be seconds, 60 up to ten years")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return Endpoint(parts.hostname, port, database, user, password, node, int(ttl))


class HttpTransport:
    """One POST per statement; one keep-alive connection per calling thread."""

    def __init__(self, endpoint: Endpoint, timeout_s: float = 10.0,
                 max_response: int = MAX_RESPONSE):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.max_response = max_response
        self._auth = endpoint.auth_header()
        self._local = threading.local()
        self._all: set = set()
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.endpoint.host, self.endpoint.port,
                                              timeout=self.timeout_s)
            self._local.conn = conn
            with self._lock:
                self._all.add(conn)
        return conn

    def run(self, sql: str, data: bytes | None = None) -> bytes:
        params = {"database": self.endpoint.database}
        if data is not None:
            params["query"] = sql
            body = data
        else:
            body = sql.encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._auth:
            headers["Authorization"] = self._auth
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        conn = self._connection()
        try:
            conn.request("POST", "/?" + urlencode(params), body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read(self.max_response + 1)
        except (OSError, http.client.HTTPException) as e:
            self.close_local()
            raise ClickHouseError(f"{where}: {type(e).__name__}: {e}"[:200]) from None
        if resp.status != 200:
            self.close_local()
            text = payload[:300].decode("utf-8", "replace").strip().splitlines()
            raise ClickHouseError(f"{where}: HTTP {resp.status}: {text[0] if text else ''}"[:300],
                                  resp.status)
        if len(payload) > self.max_response:
            self.close_local()
            raise ClickHouseError(f"{where}: answer larger than {self.max_response} bytes")
        return payload

    def close_local(self) -> None:
        """This thread's connection (after an error: the next call opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._all.discard(conn)
            conn.close()

    def close(self) -> None:
        """Every thread's connection."""
        with self._lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()


class Outbox:
    """Encoded rows on their way to ClickHouse, bounded by bytes (see the module's text)."""

    def __init__(self, send, *, max_bytes: int = 32 << 20, insert_every_s: float = 1.0,
                 max_insert_bytes: int = 4 << 20, max_attempts: int = 12,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, now=time.monotonic):
        self._send = send  # send(table, body) -> None, raises ClickHouseError
        self.max_bytes, self.insert_every_s = max_bytes, insert_every_s
        self.max_insert_bytes, self.max_attempts = max_insert_bytes, max_attempts
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._now = now
        self._open: dict[str, list] = {}  # table -> [lines, bytes]
        self._sealed: collections.deque = collections.deque()  # [table, body, rows, attempts]
        self._bytes = 0
        self._last_seal = now()
        self._next_try = 0.0
        self._lock = threading.RLock()
        self.last_error: str | None = None
        self.c = {"store_clickhouse_inserts": 0, "store_clickhouse_rows_sent": 0,
                  "store_clickhouse_retries": 0, "store_clickhouse_dropped_buffer_full": 0,
                  "store_clickhouse_dropped_rejected": 0, "store_clickhouse_dropped_gave_up": 0,
                  "store_clickhouse_dropped_at_close": 0}

    def add(self, table: str, lines: list[bytes]) -> None:
        size = sum(len(line) + 1 for line in lines)
        with self._lock:
            while self._bytes + size > self.max_bytes and self._sealed:
                _, body, rows, _ = self._sealed.popleft()
                self._bytes -= len(body)
                self._drop("buffer_full", rows)
            if self._bytes + size > self.max_bytes:
                self._drop("buffer_full", len(lines))
                return
            cell = self._open.setdefault(table, [[], 0])
            cell[0].extend(lines)
            cell[1] += size
            self._bytes += size
            if cell[1] >= self.max_insert_bytes:
                self._seal_table(table)

    def _drop(self, reason: str, rows: int) -> None:
        self.c[f"store_clickhouse_dropped_{reason}"] += rows

    def _seal_table(self, table: str) -> None:
        lines, size = self._open.pop(table)
        body = b"\n".join(lines) + b"\n"
        self._bytes += len(body) - size
        self._sealed.append([table, body, len(lines), 0])

    def _seal(self) -> None:
        for table in list(self._open):
            self._seal_table(table)
        self._last_seal = self._now()

    def poll(self) -> None:
        """Seal when due, then send (unless waiting out a backoff)."""
        with self._lock:
            now = self._now()
            if now < self._next_try:
                return
            if now - self._last_seal >= self.insert_every_s:
                self._seal()
            self._send_sealed(retry=True)

    def flush(self) -> bool:
        """Seal everything and try each chunk once now; True when nothing is left."""
        with self._lock:
            self._seal()
            self._send_sealed(retry=False)
            return not self._sealed

    def _send_sealed(self, retry: bool) -> None:
        while self._sealed:
            chunk = self._sealed[0]
            table, body, rows, attempts = chunk
            try:
                self._send(table, body)
            except ClickHouseError as e:
                self.last_error = str(e)[:300]
                if not e.retryable:
                    self._pop(chunk)
                    self._drop("rejected", rows)
                    continue
                chunk[3] = attempts = attempts + 1
                if attempts >= self.max_attempts:
                    self._pop(chunk)
                    self._drop("gave_up", rows)
                elif retry:
                    self.c["store_clickhouse_retries"] += 1
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempts - 1))
                self._next_try = self._now() + delay
                return
            self._pop(chunk)
            self.c["store_clickhouse_inserts"] += 1
            self.c["store_clickhouse_rows_sent"] += rows
        self._next_try = 0.0

    def _pop(self, chunk: list) -> None:
        self._sealed.popleft()
        self._bytes -= len(chunk[1])

    def close(self) -> None:
        with self._lock:
            self.flush()
            while self._sealed:
                chunk = self._sealed[0]
                self._pop(chunk)
                self._drop("at_close", chunk[2])

    def counters(self) -> dict[str, int]:
        with self._lock:
            out = dict(self.c)
            out["store_clickhouse_buffer_bytes"] = self._bytes
            out["store_clickhouse_buffer_rows"] = (sum(ch[2] for ch in self._sealed)
                                                   + sum(len(v[0]) for v in self._open.values()))
        return out
