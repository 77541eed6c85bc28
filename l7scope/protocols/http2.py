"""HTTP/2 and gRPC exchange analyzer for one connection (RFC 9113, RFC 7541): the compiled one.

The analyzer is C: l7scope/dataplane/h2conn.c (frames, header blocks, SETTINGS, GOAWAY: the
theory of operation at its top) and h2conn_streams.c (streams, messages, bounds), over the
frame splitter (h2frames.c) and the HPACK decoder (hpack.c) of each direction, behind
l7scope/dataplane/_h2module.c (the CPython face). Every frame is handled in C; Python sees a
stream's finished exchange (``ExchangeParsed`` holding ``HttpMessage`` values) and parse
errors only. There is no interpreted twin: the agent, the pcap path and the tests run the same
compiled code (the Python analyzer it replaced is kept in tests/ as the reference of a
differential test).

    Http2Analyzer(limits=None, seen_from_start=True, counters=None, max_stream_bytes=1 MiB)
        .feed(from_client, data, ts) / .skip(from_client, length, ts) / .eof(ts)
            -> list of ExchangeParsed | ParseError (l7scope.protocols.message)
        .upgraded_from(request)   h2c: the HTTP/1.1 request becomes stream 1
        .counters(), .memory(), .dropped_streams, .abandoned, .limits

Bounds: open streams at most ``limits.max_pending * 8`` (``dropped_streams``) and
``max_stream_bytes`` held (``streams_shed_memory``); header lists at most
``limits.max_header_bytes`` (``header_lists_truncated``); SETTINGS_HEADER_TABLE_SIZE followed
up to MAX_ACCEPTED_TABLE_SIZE (``hpack_table_size_clamped``). Every drop is counted when it
happens, in ``counters()`` and in the shared ``counters`` dict as "http2_<name>".
"""
from __future__ import annotations

from types import SimpleNamespace

from l7scope.dataplane import _h2
from l7scope.dataplane._h2 import (  # noqa: F401  (re-exports)
    CLOSED_ID_COST, CONNECTION_OVERHEAD, COUNTER_NAMES, DEFAULT_MAX_STREAM_BYTES,
    MAX_ACCEPTED_TABLE_SIZE, STREAM_OVERHEAD,
)

from .hpack import ENTRY_OVERHEAD
from .http2_frames import PREFACE, looks_like_http2
from .message import ExchangeParsed, HttpMessage
from .wirenum import parse_decimal

__all__ = ["Http2Analyzer", "looks_like_http2", "grpc_status", "grpc_status_of", "PREFACE",
           "COUNTER_NAMES", "header_list_size", "error_name"]

ERROR_CODES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")
GRPC_STATUS_DIGITS = 3  # gRPC codes are 0..16; "1*DIGIT" with a small bound


def error_name(code: int) -> str:
    return ERROR_CODES[code] if code < len(ERROR_CODES) else f"0x{code:x}"


def grpc_status(exchange: ExchangeParsed) -> int | None:
    """grpc-status of the response: from its trailers, or from a Trailers-Only response."""
    return grpc_status_of(exchange.response)


def grpc_status_of(response: HttpMessage | None) -> int | None:
    """gRPC over HTTP/2: ``Status -> "grpc-status" 1*DIGIT``; None unless 1-3 ASCII digits."""
    if response is None:
        return None
    for name, value in (*response.trailers, *response.headers):
        if name == "grpc-status":
            return parse_decimal(value, max_digits=GRPC_STATUS_DIGITS)
    return None


def header_list_size(headers) -> int:
    """RFC 9113 6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE: "the uncompressed size of field lines,
    including the length of the name and value in octets plus an overhead of 32 octets for
    each field line" (characters stand for octets here: text is decoded already)."""
    return sum(len(name) + len(value) + ENTRY_OVERHEAD for name, value in headers)


class _Direction:
    """What the tests read of one direction: its HPACK table and its frame size bound."""

    __slots__ = ("_analyzer", "_from_client")

    def __init__(self, analyzer: Http2Analyzer, from_client: bool) -> None:
        self._analyzer, self._from_client = analyzer, from_client

    @property
    def decoder(self) -> SimpleNamespace:
        table_size, max_table_size, _ = self._analyzer._direction(self._from_client)
        return SimpleNamespace(table_size=table_size, max_table_size=max_table_size)

    @property
    def splitter(self) -> SimpleNamespace:
        return SimpleNamespace(max_frame_size=self._analyzer._direction(self._from_client)[2])


class Http2Analyzer(_h2.Http2Analyzer):
    """Pairs HTTP/2 requests and responses per stream (module docstring). The compiled type;
    this subclass adds the h2c upgrade's conversion of the HTTP/1 request and a view of each
    direction's state for inspection."""

    __slots__ = ()
    protocol = "http2"

    def upgraded_from(self, request: HttpMessage) -> None:
        """The connection switched from HTTP/1.1 to h2c. RFC 9113 3.1 / RFC 7540 3.2: "The
        HTTP/1.1 request that is sent prior to upgrade is assigned a stream identifier of 1";
        the response comes on stream 1 as HTTP/2."""
        headers = [(":method", request.method or ""), (":path", request.path or "")]
        if request.authority is not None:
            headers.append((":authority", request.authority))
        headers += [(k.lower(), v) for k, v in request.headers if k.lower() != "host"]
        self._upgraded(headers, request.start_ns, request.end_ns, request.wire_bytes,
                       bytes(request.body), request.body_len, tuple(request.notes))

    @property
    def _dirs(self) -> dict[bool, _Direction]:
        return {True: _Direction(self, True), False: _Direction(self, False)}
