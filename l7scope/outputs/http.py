"""A small bounded HTTP/1.1 listener for the agent's own endpoints (Prometheus, later the web UI).

Theory of operation
-------------------
One daemon thread runs one event loop (``selectors``) over the listening socket and every
accepted connection; no thread is started per connection, so slow or idle clients cost a file
descriptor and a small buffer each, never a thread. Handlers run on that thread and must be
quick (they render from state kept by others).

Bounds, each counted in ``stats()`` when it bites:

    max_connections   connections held at once (64). Beyond it a new connection is answered
                      ``503`` if its socket takes the bytes at once, and closed
                      (``rejected_over_cap``). At most ``ACCEPTS_PER_TURN`` connections are
                      accepted per loop turn, so the ones already accepted are served between
                      bursts of new ones; when the cap is reached, new connections wait in the
                      kernel's backlog for ``FULL_GRACE_S`` (a burst of quick scrapes frees its
                      slots in that time) and, while the cap stays full, are refused at once.
    read_timeout_s    a request (head and body) must arrive whole within it, counted from
                      the accept or from the end of the previous response on a kept-alive
                      connection (``timed_out_reading``; 408 when part of a request came;
                      ``idle_closed`` for a kept-alive connection not used again).
                      Trickling bytes does not extend it.
    write_timeout_s   a response must be taken by the client within it (``timed_out_writing``).
    max_head_bytes    request line and header fields (8 KiB; 431 ``head_too_large``).
    max_body_bytes    a ``Content-Length`` body (64 KiB; 413). ``Transfer-Encoding`` is not
                      accepted (501).

Per connection the states are::

    reading --request whole--> writing --response sent, keep-alive--> reading
       |                          |
       +--error / timeout / EOF---+--done without keep-alive / timeout--> closed

Routes: ``add_route(method, path_prefix, handler)``; the longest prefix that matches the path
whole or up to a ``/`` wins (``/`` matches every path); ``handler(Request)`` returns
``(status, content_type, body)``. No route for the path is 404, no route for the method 405;
``HEAD`` is answered by the ``GET`` route without the body. A handler's exception is a 500
(``handler_errors``), never the end of the loop.

Addresses: ``:PORT`` means loopback (127.0.0.1); any other address is written out, ``[v6]``
in brackets. ``0.0.0.0:PORT`` works, as the user's explicit choice: ``listen_warning`` gives
the caller a line to print when a bind reaches beyond loopback.
"""
from __future__ import annotations

import ipaddress
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from l7scope.protocols.wirenum import parse_decimal

MAX_CONNECTIONS = 64
READ_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 30.0
MAX_HEAD_BYTES = 8192
MAX_BODY_BYTES = 64 << 10
MAX_REQUESTS_PER_CONNECTION = 100
ACCEPTS_PER_TURN = 16
LISTEN_BACKLOG = 512
ACCEPT_PAUSE_S = 0.1  # after an accept error (no descriptors left) before trying again
FULL_GRACE_S = 0.2  # at the cap, how long new connections wait before being refused

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 415: "Unsupported Media Type",
            405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable",
            505: "HTTP Version Not Supported"}
_COUNTERS = ("accepted", "rejected_over_cap", "accept_errors", "requests", "bad_requests",
             "head_too_large", "timed_out_reading", "timed_out_writing", "idle_closed",
             "handler_errors", "internal_errors")
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # the request target before '?'
    query: str  # after '?', "" when none
    version: str  # "HTTP/1.1"
    headers: tuple[tuple[str, str], ...]  # names lower-cased
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


Handler = Callable[[Request], tuple[int, str, bytes]]


class HttpError(Exception):
    """A request that cannot be served: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, counter: str = "bad_requests"):
        super().__init__(status)
        self.status = status
        self.counter = counter


# --- addresses ---------------------------------------------------------------------------

def parse_listen_address(addr: str) -> tuple[str, int]:
    """"HOST:PORT", "[V6]:PORT" or ":PORT" (loopback, 127.0.0.1) -> (host, port)."""
    host, sep, port_text = addr.rpartition(":")
    port = parse_decimal(port_text, max_digits=5)
    if not sep or port is None or port > 65535:
        raise ValueError("expected HOST:PORT (':PORT' is 127.0.0.1:PORT)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError("expected HOST:PORT; an IPv6 address is written [ADDR]:PORT")
    return (host or "127.0.0.1"), port


def is_loopback_host(host: str) -> bool:
    """True when binding ``host`` reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def listen_warning(addr: str) -> str | None:
    """A one-line warning when ``addr`` binds beyond loopback, else None."""
    host, port = parse_listen_address(addr)
    if is_loopback_host(host):
        return None
    return (f"listening on {addr}: reachable from other hosts (use :{port} or "
            f"127.0.0.1:{port} for this host only)")


# --- request heads -----------------------------------------------------------------------

def parse_head(raw: bytes) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    """Request line and header fields (``raw`` without the final CRLF CRLF); HttpError if bad.

    RFC 9112 3: ``request-line = method SP request-target SP HTTP-version``.
    RFC 9112 5.1: "No whitespace is allowed between the field name and colon."
    RFC 9112 5.2: obs-fold - a server "MUST either reject the message by sending a 400".
    """
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not _TCHAR.issuperset(parts[0]):
        raise HttpError(400)
    method, target, version = parts
    if not target.startswith(b"/") or any(c <= 0x20 or c == 0x7F for c in target):
        raise HttpError(400)
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(505 if version.startswith(b"HTTP/") else 400)
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not _TCHAR.issuperset(name):
            raise HttpError(400)
        headers.append((name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")))
    return (method.decode("ascii"), target.decode("latin-1"), version.decode("ascii"),
            tuple(headers))


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


def _response(status: int, content_type: str, body: bytes, keep_alive: bool,
              head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode("latin-1") + (b"" if head_only else body)


def _error_response(status: int) -> bytes:
    text = f"{status} {_REASONS.get(status, 'Unknown')}\n".encode("ascii")
    return _response(status, "text/plain; charset=utf-8", text, False)


# --- connections -------------------------------------------------------------------------

class _Conn:
    __slots__ = ("sock", "buf", "out", "deadline", "writing", "keep_alive", "served")

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.buf = bytearray()
        self.out = memoryview(b"")
        self.deadline = deadline
        self.writing = False
        self.keep_alive = False
        self.served = 0


class HttpListener:
    """``start()`` binds and serves on a daemon thread; ``stop()`` closes everything."""

    def __init__(self, addr: str, *, name: str = "http", max_connections: int = MAX_CONNECTIONS,
                 read_timeout_s: float = READ_TIMEOUT_S, write_timeout_s: float = WRITE_TIMEOUT_S,
                 max_head_bytes: int = MAX_HEAD_BYTES, max_body_bytes: int = MAX_BODY_BYTES):
        self.host, self.port = parse_listen_address(addr)
        self.name = name
        self.max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.last_error: str | None = None
        self._routes: list[tuple[str, str, Handler]] = []
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._conns: dict[int, _Conn] = {}
        self._peak = 0
        self._lock = threading.Lock()
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._accept_paused_until = 0.0  # listening socket out of the selector until then
        self._full_since: float | None = None  # when the cap was reached
        self._paused_full = False  # the pause is for the cap (ends when a slot frees)

    def add_route(self, method: str, path_prefix: str, handler: Handler) -> None:
        """Serve ``method`` requests under ``path_prefix``; ValueError if already routed."""
        method = method.upper()
        with self._lock:
            if any(m == method and p == path_prefix for m, p, _ in self._routes):
                raise ValueError(f"route {method} {path_prefix} is already served")
            self._routes.append((method, path_prefix, handler))

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port once started with port 0."""
        if self._listener is not None:
            host, port = self._listener.getsockname()[:2]
            return str(host), int(port)
        return self.host, self.port

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters, open=len(self._conns), peak_open=self._peak)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._listener = _bind(self.host, self.port)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"l7scope-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(5)
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()
        self._thread = self._listener = self._wake_r = self._wake_w = None

    # --- loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, events in self._sel.select(self._timeout()):
                    if key.data == "listen":
                        self._accept()
                    elif key.data != "wake":
                        self._service(key.data, events)
                self._expire(time.monotonic())
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._sel.close()

    def _timeout(self) -> float:
        now = time.monotonic()
        soonest = min((c.deadline for c in self._conns.values()), default=now + 1.0)
        if self._accept_paused_until:
            soonest = min(soonest, self._accept_paused_until)
        return max(0.0, min(1.0, soonest - now))

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            full = len(self._conns) >= self.max_connections
            if full and self._hold_accepts():
                return
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:  # EMFILE/ENFILE/ENOBUFS: let the loop breathe, then retry
                self._count("accept_errors")
                self.last_error = f"accept: {e.strerror or e}"
                self._pause_accepts(ACCEPT_PAUSE_S, full=False)
                return
            if full:
                self._count("rejected_over_cap")
                _send_and_close(sock, _error_response(503))
                continue
            self._adopt(sock)

    def _hold_accepts(self) -> bool:
        """At the cap: True (leave new connections in the backlog) during FULL_GRACE_S."""
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
        left = self._full_since + FULL_GRACE_S - now
        if left <= 0:
            return False
        self._pause_accepts(left, full=True)
        return True

    def _pause_accepts(self, seconds: float, full: bool) -> None:
        if not self._accept_paused_until:
            self._sel.unregister(self._listener)
        self._accept_paused_until = time.monotonic() + seconds
        self._paused_full = full

    def _adopt(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        conn = _Conn(sock, time.monotonic() + self.read_timeout_s)
        self._sel.register(sock, selectors.EVENT_READ, conn)
        with self._lock:
            self._conns[sock.fileno()] = conn
            self._counters["accepted"] += 1
            self._peak = max(self._peak, len(self._conns))

    def _expire(self, now: float) -> None:
        if self._accept_paused_until and (now >= self._accept_paused_until or (
                self._paused_full and self._full_since is None)):
            self._accept_paused_until = 0.0
            self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            if conn.writing:
                self._count("timed_out_writing")
            elif conn.served and not conn.buf:
                self._count("idle_closed")  # a kept-alive connection nobody used again
            else:
                self._count("timed_out_reading")
                if conn.buf:
                    _send_and_close(conn.sock, _error_response(408), close=False)
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.pop(conn.sock.fileno(), None)
            if len(self._conns) < self.max_connections:
                self._full_since = None  # a slot is free: accept again at once
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    # --- one connection ------------------------------------------------------------------

    def _service(self, conn: _Conn, events: int) -> None:
        try:
            if conn.writing:
                self._write(conn)
            else:
                self._read(conn)
        except HttpError as e:
            self._count(e.counter)
            _send_and_close(conn.sock, _error_response(e.status), close=False)
            self._close(conn)
        except OSError:  # reset by the peer and the like
            self._close(conn)
        except Exception as e:  # our bug: this connection ends, the listener goes on
            self._count("internal_errors")
            self.last_error = f"{type(e).__name__}: {e}"[:300]
            self._close(conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        if not data:
            self._close(conn)
            return
        conn.buf += data
        self._advance(conn)

    def _advance(self, conn: _Conn) -> None:
        """Serve the request the buffer holds whole, if any."""
        end = conn.buf.find(b"\r\n\r\n", 0, self.max_head_bytes + 4)
        if end < 0:
            if len(conn.buf) > self.max_head_bytes:
                raise HttpError(431, "head_too_large")
            return
        method, target, version, headers = parse_head(bytes(conn.buf[:end]))
        request = self._with_body(conn, end + 4, method, target, version, headers)
        if request is None:
            return
        self._count("requests")
        conn.served += 1
        conn.keep_alive = self._keeps_alive(conn, request)
        conn.out = memoryview(self._answer(request, conn.keep_alive))
        conn.writing = True
        conn.deadline = time.monotonic() + self.write_timeout_s
        self._sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(conn)

    def _with_body(self, conn: _Conn, body_at: int, method: str, target: str, version: str,
                   headers: tuple) -> Request | None:
        names = {k for k, _ in headers}
        if "transfer-encoding" in names:
            raise HttpError(501)
        lengths = {v for k, v in headers if k == "content-length"}
        length = parse_decimal(next(iter(lengths)), 18) if lengths else 0
        if length is None or len(lengths) > 1:
            raise HttpError(400)
        if length > self.max_body_bytes:
            raise HttpError(413)
        if len(conn.buf) < body_at + length:
            return None
        body = bytes(conn.buf[body_at:body_at + length])
        del conn.buf[:body_at + length]
        path, _, query = target.partition("?")
        return Request(method, path, query, version, headers, body)

    def _keeps_alive(self, conn: _Conn, request: Request) -> bool:
        if conn.served >= MAX_REQUESTS_PER_CONNECTION or self._stopping:
            return False
        tokens = _tokens(request.header("connection"))
        if request.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def _write(self, conn: _Conn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        conn.out = conn.out[n:]
        if conn.out:
            return
        if not conn.keep_alive:
            self._close(conn)
            return
        conn.writing = False
        conn.deadline = time.monotonic() + self.read_timeout_s
        self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.buf:
            self._advance(conn)  # a pipelined request already here

    # --- routing -------------------------------------------------------------------------

    def _answer(self, request: Request, keep_alive: bool) -> bytes:
        handler = self._route(request.method, request.path)
        if isinstance(handler, int):
            return _response(handler, "text/plain; charset=utf-8",
                             f"{handler} {_REASONS[handler]}\n".encode("ascii"), keep_alive)
        try:
            status, content_type, body = handler(request)
        except Exception as e:  # a handler bug answers 500; the listener goes on
            self._count("handler_errors")
            self.last_error = f"{type(e).__name__}: {e}"[:300]
            return _error_response(500)
        return _response(status, content_type, body, keep_alive, request.method == "HEAD")

    def _route(self, method: str, path: str) -> Handler | int:
        with self._lock:
            matching = [r for r in self._routes if _prefix_matches(r[1], path)]
        if not matching:
            return 404
        longest = max(len(r[1]) for r in matching)
        by_method = {m: h for m, p, h in matching if len(p) == longest}
        handler = by_method.get(method) or (by_method.get("GET") if method == "HEAD" else None)
        return handler if handler is not None else 405


def _prefix_matches(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def _send_and_close(sock: socket.socket, data: bytes, close: bool = True) -> None:
    """Best effort, never waits: what the socket buffer takes at once."""
    try:
        sock.setblocking(False)
        sock.send(data)
    except OSError:
        pass
    if close:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
