"""What protocol analyzers emit, shared by HTTP/1.x and HTTP/2.

Every analyzer is sans-IO and works on one connection. It is fed both directions, told which
bytes come from the client, and emits events:

    feed(from_client: bool, data: bytes, ts: int) -> list[AnalyzerEvent]
    skip(from_client: bool, length: int, ts: int) -> list[AnalyzerEvent]   # known-length hole
    eof(ts: int) -> list[AnalyzerEvent]                                     # connection ended

``ts`` is a monotonic nanosecond timestamp of the bytes. A message's ``start_ns`` is the ts of the
feed that carried its first byte and ``end_ns`` the ts of the feed that carried its last byte.

Analyzers never raise on bad input: damaged bytes become ParseError events (and notes on the
messages they touched). An exception out of an analyzer is a bug in l7scope.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

Headers = tuple[tuple[str, str], ...]


class HttpMessage(NamedTuple):
    """One request or one response as seen on the wire.

    Immutable like the frozen event dataclasses, but a NamedTuple: two are built per exchange
    on the hot path and a tuple builds about six times faster than a frozen dataclass.

    ``wire_bytes`` counts header and body bytes as sent on the socket (HTTP/2: the frames of
    this stream, 9-byte frame headers included). ``body`` is the captured prefix of the decoded
    body (chunked framing removed) up to the analyzer's body limit; ``body_len`` is the whole
    body length seen. ``complete`` is False when the message end was not seen (connection
    closed, gap). ``notes`` explain anything partial; non-empty notes mean partial.
    """

    is_request: bool
    start_ns: int
    end_ns: int
    wire_bytes: int
    headers: Headers = ()
    method: str | None = None
    path: str | None = None
    authority: str | None = None
    status: int | None = None
    version: str | None = None  # "HTTP/1.1", "HTTP/1.0", "HTTP/2"
    trailers: Headers = ()
    body: bytes = b""
    body_len: int = 0
    complete: bool = True
    notes: tuple[str, ...] = ()
    stream_id: int | None = None

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), trailers included, else None."""
        name = name.lower()
        if not name.isascii():
            return _header_any(self, name)
        n = len(name)  # a name lowering to ASCII text has its length: compared first, cheaply
        for k, v in self.headers:
            if len(k) == n and k.lower() == name:
                return v
        for k, v in self.trailers:
            if len(k) == n and k.lower() == name:
                return v
        return None

    @property
    def partial(self) -> bool:
        return bool(self.notes) or not self.complete


def _header_any(msg, name: str) -> str | None:
    for k, v in msg.headers:
        if k.lower() == name:
            return v
    for k, v in msg.trailers:
        if k.lower() == name:
            return v
    return None


@dataclass(frozen=True, slots=True)
class ExchangeParsed:
    """A request paired with its response (response None if the connection ended first).

    ``protocol`` is "http1", "http2" or "grpc". ``request`` may be None when only the response
    was seen (the request predates the capture).
    """

    protocol: str
    request: HttpMessage | None
    response: HttpMessage | None
    stream_id: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParseError:
    """Bytes the analyzer could not make sense of; it resynchronises after this."""

    code: str
    detail: str
    from_client: bool | None = None
    ts: int = 0


@dataclass(frozen=True, slots=True)
class ProtocolSwitched:
    """Upgrade / CONNECT / h2c: the analyzer stops parsing HTTP/1 on this connection.

    ``remainder`` holds the bytes that followed the switching response in the same feed (the
    server's first HTTP/2 frames after a 101 to h2c), sent by the server; ``request`` is the
    request that asked for the upgrade (with h2c it is also stream 1's request).
    """

    to: str  # "websocket", "tunnel", "h2c", or the Upgrade token
    ts: int = 0
    # how the bytes were split into feeds decides what rides along, so neither takes part in
    # equality
    remainder: bytes = field(default=b"", compare=False)
    request: HttpMessage | None = field(default=None, compare=False, repr=False)


AnalyzerEvent = ExchangeParsed | ParseError | ProtocolSwitched


@dataclass(slots=True)
class AnalyzerLimits:
    """Bounds every analyzer honours (DESIGN practice 6)."""

    max_header_bytes: int = 64 * 1024  # request/status line + header block
    max_headers: int = 256
    body_capture: int = 4096  # body prefix kept per message for sampling
    max_pending: int = 128  # pipelined requests / open streams awaiting a response
    extra: dict = field(default_factory=dict)
