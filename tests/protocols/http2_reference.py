"""The Python HTTP/2 analyzer the compiled one (l7scope/dataplane/h2conn.c) replaced, kept only
as the reference of tests/protocols/test_http2_differential.py. Not used by the agent.

One deliberate change from the analyzer as it was: ``eof`` returns the events that finishing
the frame splitters produces (a frame confirmed only at the end of a scan, a lost frame
boundary); the old code dropped them. The compiled analyzer does the same.

HTTP/2 and gRPC exchange analyzer for one connection (RFC 9113, RFC 7541), sans-IO.

Theory of operation
-------------------
Three layers, one way:

1. Per direction a ``FrameSplitter`` (compiled, dataplane/h2frames.c) turns bytes into frames, skipping the
   client preface and resynchronising on a plausible frame header after a hole or when the
   connection was first seen mid-way.
2. Per direction one ``ObserverDecoder`` (hpack.py) decodes the header blocks that direction
   carries: client->server blocks are requests (and request trailers), server->client blocks
   are responses, response trailers and PUSH_PROMISE request headers. HEADERS + CONTINUATION
   are stitched into one block first (bounded by limits.max_header_bytes). Every block is
   decoded, even on streams we do not track, so that the dynamic table stays in step.
3. A stream tracker pairs the request and the response of each stream id and emits
   ``ExchangeParsed`` when the response ends (END_STREAM), the stream is reset (RST_STREAM),
   the connection goes away (GOAWAY) or ends (eof). Open streams are bounded in number
   (limits.max_pending * 8) and in bytes (``max_stream_bytes``: captured bodies, decoded
   header lists at name + value + 32 octets each, a fixed overhead per stream); the oldest is
   flushed with a note when a bound is hit, and counted. A stream on which neither direction
   showed a header block (only DATA frames: it began before the capture, or a gap) is counted
   (``streams_without_headers``), never reported: there is nothing to say what it was.

Hostile input: numbers come from wirenum (``:status`` is RFC 9110 3DIGIT, ``grpc-status`` at
most 3 ASCII digits); a decoded header list is bounded by limits.max_header_bytes (indexed
references can make it much larger than its block); a frame splitter that finds no frame header
in DEFAULT_RESYNC_LIMIT octets gives up, and the whole connection's analysis is abandoned
(open streams flushed with a note, ``resync_abandoned`` counted, later bytes ignored).
Every drop is counted when it happens, in ``counters()`` and, when given, in the shared
``counters`` dict under "http2_<name>". ``memory()`` is the state held, for the global budget.

SETTINGS_HEADER_TABLE_SIZE sent by one endpoint bounds the OTHER endpoint's encoder, so it sets
``max_table_size`` of the decoder for the opposite direction, when the other endpoint's SETTINGS
ACK is seen (``_on_settings`` has the RFC text), bounded by MAX_ACCEPTED_TABLE_SIZE.

GOAWAY: streams of the receiver above the last stream id were not processed and are flushed at
once (a client's GOAWAY speaks of pushed streams, not of its requests); with an
error code every open stream is flushed; with NO_ERROR streams up to the last id may still
complete (graceful shutdown), and eof flushes what is left.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from l7scope.protocols.hpack import ENTRY_OVERHEAD, DecodedBlock, ObserverDecoder
from l7scope.protocols.http2_frames import (
    CONTINUATION, DATA, DEFAULT_MAX_FRAME_SIZE, DEFAULT_RESYNC_LIMIT, FLAG_ACK,
    FLAG_END_HEADERS, FLAG_END_STREAM, FLAG_PADDED, FLAG_PRIORITY, GOAWAY, HEADERS,
    MAX_FRAME_SIZE_LIMIT, PREFACE, PUSH_PROMISE, RST_STREAM, SETTINGS, Frame, FrameSplitter,
    FramingLost, FramingResumed, looks_like_http2,
)
from l7scope.protocols.message import AnalyzerEvent, AnalyzerLimits, ExchangeParsed, HttpMessage, ParseError
from l7scope.protocols.wirenum import parse_decimal, parse_status

__all__ = ["Http2Analyzer", "looks_like_http2", "grpc_status", "PREFACE"]

ERROR_CODES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_MAX_FRAME_SIZE = 0x5
_MAX_PENDING_SETTINGS = 8
_MAX_NOTES = 16
# The largest SETTINGS_HEADER_TABLE_SIZE we follow (RFC 9113 allows up to 2**32-1). A larger
# advertised value is clamped to it and counted; an encoder that then uses more makes the
# decoder reset (records partial, with a note). Common peers use 4,096 (the default) to 65,536.
MAX_ACCEPTED_TABLE_SIZE = 64 * 1024
# Open streams of one connection, in bytes (captured bodies + header lists + overhead).
DEFAULT_MAX_STREAM_BYTES = 1024 * 1024
STREAM_OVERHEAD = 512  # approximate bytes of one open stream's objects before any content
CONNECTION_OVERHEAD = 4096  # approximate bytes of an analyzer with nothing buffered
CLOSED_ID_COST = 72  # one remembered closed stream id (deque slot + set entry + int)
GRPC_STATUS_DIGITS = 3  # gRPC codes are 0..16; "1*DIGIT" with a small bound
COUNTER_NAMES = ("dropped_streams", "streams_shed_memory", "streams_without_headers",
                 "hpack_resets", "hpack_unknown_headers", "hpack_table_size_clamped",
                 "header_lists_truncated", "resync_abandoned")


def error_name(code: int) -> str:
    return ERROR_CODES[code] if code < len(ERROR_CODES) else f"0x{code:x}"


@dataclass(slots=True)
class _Message:
    """One direction of one stream while it is being seen."""

    headers: list = field(default_factory=list)
    trailers: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    headers_seen: bool = False
    data_seen: bool = False
    ended: bool = False
    first_ns: int = 0  # ts of the first frame of this stream in this direction
    start_ns: int = 0  # ts of the first HEADERS frame of the message
    end_ns: int = 0
    wire_bytes: int = 0
    body: bytearray = field(default_factory=bytearray)
    body_len: int = 0
    body_prefix_open: bool = True

    def note(self, text: str) -> None:
        if text not in self.notes and len(self.notes) < _MAX_NOTES:
            self.notes.append(text)


@dataclass(slots=True)
class _Stream:
    stream_id: int
    request: _Message = field(default_factory=_Message)
    response: _Message = field(default_factory=_Message)
    cost: int = STREAM_OVERHEAD  # bytes charged to the connection's stream budget


@dataclass(slots=True)
class _HeaderBlock:
    """A header block being stitched from HEADERS/PUSH_PROMISE + CONTINUATION frames."""

    stream_id: int
    end_stream: bool
    is_push: bool
    ts_start: int
    fragments: bytearray
    lost: bool = False


@dataclass(slots=True)
class _Direction:
    splitter: FrameSplitter
    decoder: ObserverDecoder
    block: _HeaderBlock | None = None
    sent_table_sizes: deque = field(default_factory=deque)  # SETTINGS awaiting the peer's ACK


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


def _is_grpc(*messages: HttpMessage | None) -> bool:
    for message in messages:
        if message is not None:
            content_type = message.header("content-type")
            if content_type and content_type.startswith("application/grpc"):
                return True
    return False


class Http2Analyzer:
    """Pairs HTTP/2 requests and responses per stream (module docstring)."""

    protocol = "http2"

    def __init__(self, limits: AnalyzerLimits | None = None, seen_from_start: bool = True,
                 counters: dict[str, int] | None = None,
                 max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES) -> None:
        self.limits = limits or AnalyzerLimits()
        self.max_streams = self.limits.max_pending * 8
        self.max_stream_bytes = max_stream_bytes
        self._counts = dict.fromkeys(COUNTER_NAMES, 0)
        self._shared = counters
        self._abandoned = False
        self._dirs = {True: self._new_direction(True, seen_from_start),
                      False: self._new_direction(False, seen_from_start)}
        self._streams: OrderedDict[int, _Stream] = OrderedDict()
        self._stream_bytes = 0  # sum of the open streams' cost
        self._closed: deque[int] = deque(maxlen=self.max_streams * 2)
        self._closed_set: set[int] = set()
        self._out: list[AnalyzerEvent] = []

    def _new_direction(self, from_client: bool, seen_from_start: bool) -> _Direction:
        splitter = FrameSplitter(expect_preface=from_client and seen_from_start,
                                 in_sync=seen_from_start,
                                 payload_cap=self.limits.max_header_bytes,
                                 data_capture=self.limits.body_capture + 1,
                                 resync_limit=DEFAULT_RESYNC_LIMIT)
        return _Direction(splitter, ObserverDecoder(complete=seen_from_start))

    @property
    def dropped_streams(self) -> int:
        """Open streams flushed early because of the bound on their number."""
        return self._counts["dropped_streams"]

    def counters(self) -> dict[str, int]:
        """What this connection's analysis lost or could not decode."""
        return dict(self._counts)

    def _count(self, name: str, n: int = 1) -> None:
        """A drop happens: counted here and, at once, in the shared counters."""
        self._counts[name] += n
        if self._shared is not None:
            key = f"http2_{name}"
            self._shared[key] = self._shared.get(key, 0) + n

    def memory(self) -> int:
        """Approximate bytes held: buffers, header blocks, open streams, HPACK tables (RFC 7541
        size), remembered closed stream ids, plus a fixed part. O(1)."""
        total = CONNECTION_OVERHEAD + self._stream_bytes + len(self._closed) * CLOSED_ID_COST
        for direction in self._dirs.values():
            total += direction.splitter.memory() + direction.decoder.table_size
            if direction.block is not None:
                total += len(direction.block.fragments)
        return total

    def upgraded_from(self, request: HttpMessage) -> None:
        """The connection switched from HTTP/1.1 to h2c. RFC 9113 3.1 / RFC 7540 3.2: "The
        HTTP/1.1 request that is sent prior to upgrade is assigned a stream identifier of 1";
        the response comes on stream 1 as HTTP/2."""
        headers = [(":method", request.method or ""), (":path", request.path or "")]
        if request.authority is not None:
            headers.append((":authority", request.authority))
        headers += [(k.lower(), v) for k, v in request.headers if k.lower() != "host"]
        msg = _Message(headers=headers, headers_seen=True, ended=True, first_ns=request.start_ns,
                       start_ns=request.start_ns, end_ns=request.end_ns,
                       wire_bytes=request.wire_bytes, body=bytearray(request.body),
                       body_len=request.body_len, notes=list(request.notes))
        stream = self._streams[1] = _Stream(1, request=msg)
        self._stream_bytes += stream.cost
        self._charge(stream, header_list_size(headers) + len(msg.body))

    # --- contract ---------------------------------------------------------------------------

    def feed(self, from_client: bool, data: bytes, ts: int) -> list[AnalyzerEvent]:
        if self._abandoned:
            return []
        return self._handle(from_client, self._dirs[from_client].splitter.feed(data, ts))

    def skip(self, from_client: bool, length: int, ts: int) -> list[AnalyzerEvent]:
        if self._abandoned:
            return []
        return self._handle(from_client, self._dirs[from_client].splitter.skip(length, ts))

    def eof(self, ts: int) -> list[AnalyzerEvent]:
        out: list[AnalyzerEvent] = []
        for from_client in (True, False):
            if not self._abandoned:
                out += self._handle(from_client, self._dirs[from_client].splitter.finish(ts))
        for stream in list(self._streams.values()):
            self._flush(stream, "connection closed before the stream ended")
        out += self._out
        self._out = []
        return out

    def _handle(self, from_client: bool, events: list) -> list[AnalyzerEvent]:
        for event in events:
            try:
                if isinstance(event, Frame):
                    self._on_frame(from_client, event)
                elif isinstance(event, FramingLost):
                    self._on_framing_lost(from_client, event)
                elif isinstance(event, FramingResumed) and event.skipped:
                    self._error("resync", f"skipped {event.skipped} octets to a frame header",
                                from_client, event.ts)
            except Exception as exc:  # noqa: BLE001 - a bug must become a value, not a crash
                self._error("internal", f"{type(exc).__name__}: {exc}", from_client, 0)
        if not self._abandoned and self._dirs[from_client].splitter.abandoned:
            self._abandon(from_client, events[-1].ts if events else 0)
        out, self._out = self._out, []
        return out

    def _abandon(self, from_client: bool, ts: int) -> None:
        """A direction found no frame header in its resync limit: stop analysing the
        connection (flush what is open, free the state, ignore later bytes)."""
        self._abandoned = True
        self._count("resync_abandoned")
        for stream in list(self._streams.values()):
            self._flush(stream, "http2 analysis abandoned: too many octets without frames")
        for direction in self._dirs.values():
            direction.block = None
            direction.decoder.lost_sync()
        self._error("resync_abandoned", "no frame header found: analysis of the connection "
                    "stopped", from_client, ts)

    def _error(self, code: str, detail: str, from_client: bool, ts: int) -> None:
        self._out.append(ParseError(code, detail, from_client, ts))

    def _lost_sync(self, direction: _Direction) -> None:
        direction.decoder.lost_sync()
        self._count("hpack_resets")

    def _decode(self, direction: _Direction, block: bytes) -> DecodedBlock:
        decoded = direction.decoder.decode_observed(block)
        if decoded.reset:
            self._count("hpack_resets")
        elif decoded.unknown:
            self._count("hpack_unknown_headers", decoded.unknown)
        return decoded

    def _on_framing_lost(self, from_client: bool, event: FramingLost) -> None:
        direction = self._dirs[from_client]
        direction.block = None
        if direction.splitter.abandoned:
            return  # _handle abandons the connection after this batch of events
        self._lost_sync(direction)  # header blocks may have been in the hole
        for stream in self._streams.values():
            message = stream.request if from_client else stream.response
            if not message.ended:
                message.note("gap: frames of this stream may be missing")
        self._error("framing_lost", event.reason, from_client, event.ts)

    # --- frames -----------------------------------------------------------------------------

    def _on_frame(self, from_client: bool, frame: Frame) -> None:
        block = self._dirs[from_client].block
        if block is not None and (frame.type != CONTINUATION or frame.stream_id != block.stream_id):
            # RFC 9113 6.10: "Any number of CONTINUATION frames can be sent, as long as the
            # preceding frame is on the same stream and is a HEADERS, PUSH_PROMISE, or
            # CONTINUATION frame without the END_HEADERS flag set."
            self._lose_block(from_client, "header block interrupted by another frame")
            self._error("continuation_expected", "frame inside a header block", from_client,
                        frame.ts_start)
        stream = self._stream_for(from_client, frame)
        if stream is not None:
            message = stream.request if from_client else stream.response
            message.wire_bytes += 9 + frame.length
            message.first_ns = message.first_ns or frame.ts_start
            message.end_ns = frame.ts_end
        handler = _FRAME_HANDLERS.get(frame.type)
        if handler is not None:
            handler(self, from_client, frame, stream)
        if self._stream_bytes > self.max_stream_bytes:
            self._shed_streams()

    def _stream_for(self, from_client: bool, frame: Frame) -> _Stream | None:
        stream_id = frame.stream_id
        if not stream_id:
            return None
        if frame.type == CONTINUATION:
            block = self._dirs[from_client].block
            stream_id = block.stream_id if block is not None else 0
        stream = self._streams.get(stream_id)
        if stream is not None or stream_id in self._closed_set:
            return stream
        if frame.type not in (HEADERS, DATA):
            return None
        if len(self._streams) >= self.max_streams:
            self._count("dropped_streams")
            self._flush(next(iter(self._streams.values())),
                        "stream dropped: too many open streams")
        stream = self._streams[stream_id] = _Stream(stream_id)
        self._stream_bytes += stream.cost
        return stream

    def _charge(self, stream: _Stream, n: int) -> None:
        """Bytes now held for an open stream (bounded by _shed_streams after each frame)."""
        if stream.stream_id in self._streams:
            stream.cost += n
            self._stream_bytes += n

    def _shed_streams(self) -> None:
        """Open streams over max_stream_bytes: flush the oldest until under it, counted."""
        while self._stream_bytes > self.max_stream_bytes and self._streams:
            self._count("streams_shed_memory")
            self._flush(next(iter(self._streams.values())),
                        "stream dropped: open streams over the memory bound")

    def _on_headers(self, from_client: bool, frame: Frame, stream: _Stream | None) -> None:
        fragment, problem = _header_fragment(frame, 0)
        self._start_block(from_client, frame, fragment, problem, is_push=False)

    def _on_push_promise(self, from_client: bool, frame: Frame, stream: _Stream | None) -> None:
        fragment, problem = _header_fragment(frame, 4)
        if problem is None:
            offset = 1 if frame.flags & FLAG_PADDED else 0
            promised = int.from_bytes(frame.payload[offset:offset + 4], "big") & 0x7FFFFFFF
            self._mark_closed(promised)  # pushed streams are not reported; HPACK still is kept
        self._start_block(from_client, frame, fragment, problem, is_push=True)

    def _start_block(self, from_client: bool, frame: Frame, fragment: bytes,
                     problem: str | None, is_push: bool) -> None:
        block = _HeaderBlock(frame.stream_id, bool(frame.flags & FLAG_END_STREAM) and not is_push,
                             is_push, frame.ts_start, bytearray(fragment))
        self._dirs[from_client].block = block
        if problem is not None:
            self._lose_block(from_client, problem, keep_open=True)
            if not (frame.damaged or frame.truncated):  # a malformed frame, not a gap/bound
                self._error("header_block", problem, from_client, frame.ts_start)
        if frame.flags & FLAG_END_HEADERS:
            self._complete_block(from_client, frame.ts_end)

    def _on_continuation(self, from_client: bool, frame: Frame, stream: _Stream | None) -> None:
        direction = self._dirs[from_client]
        block = direction.block
        if block is None:
            self._lost_sync(direction)  # the HEADERS part of this block was not seen
            self._error("continuation_unexpected", "CONTINUATION outside a header block",
                        from_client, frame.ts_start)
            return
        if frame.damaged or frame.truncated:
            self._lose_block(from_client, "header block lost in a capture gap", keep_open=True)
        elif not block.lost:
            block.fragments += frame.payload
            if len(block.fragments) > self.limits.max_header_bytes:
                self._lose_block(from_client, "header block larger than the limit", keep_open=True)
        if frame.flags & FLAG_END_HEADERS:
            self._complete_block(from_client, frame.ts_end)

    def _lose_block(self, from_client: bool, reason: str, keep_open: bool = False) -> None:
        """The current header block cannot be decoded: insertions in it are lost."""
        direction = self._dirs[from_client]
        block = direction.block
        if block is None:
            return
        self._lost_sync(direction)
        if not block.lost:
            block.lost = True
            stream = self._streams.get(block.stream_id)
            if stream is not None and not block.is_push:
                (stream.request if from_client else stream.response).note(reason)
        if not keep_open:
            direction.block = None

    def _complete_block(self, from_client: bool, ts_end: int) -> None:
        direction = self._dirs[from_client]
        block, direction.block = direction.block, None
        decoded = None if block.lost else self._decode(direction, bytes(block.fragments))
        stream = self._streams.get(block.stream_id)
        if block.is_push or stream is None:
            return
        message = stream.request if from_client else stream.response
        if decoded is not None:
            self._apply_headers(stream, message, decoded, block, from_client)
        elif not message.headers_seen:
            message.headers_seen, message.start_ns = True, block.ts_start
        if block.end_stream:
            self._end_message(stream, from_client, ts_end)

    def _apply_headers(self, stream: _Stream, message: _Message, decoded: DecodedBlock,
                       block: _HeaderBlock, from_client: bool) -> None:
        headers = self._bounded_headers(message, decoded.headers)
        if not from_client and not message.headers_seen and _is_informational(headers):
            return  # RFC 9113 8.1: 1xx responses precede the final response; not reported
        for text in decoded.notes:
            message.note(text)
        if message.headers_seen:
            room = self.limits.max_headers - len(message.trailers)
            added = headers[:max(room, 0)]
            message.trailers.extend(added)
            self._charge(stream, header_list_size(added))
            return
        message.headers = list(headers)
        message.headers_seen = True
        message.start_ns = block.ts_start
        self._charge(stream, header_list_size(headers))

    def _bounded_headers(self, message: _Message, headers: tuple) -> tuple:
        """At most limits.max_headers fields and limits.max_header_bytes of header list
        (header_list_size): indexed references make a list far larger than its block."""
        if len(headers) > self.limits.max_headers:
            headers = headers[:self.limits.max_headers]
            message.note(f"headers beyond {self.limits.max_headers} dropped")
        size = 0
        for n, (name, value) in enumerate(headers):
            size += len(name) + len(value) + ENTRY_OVERHEAD
            if size > self.limits.max_header_bytes:
                self._count("header_lists_truncated")
                message.note(f"header list beyond {self.limits.max_header_bytes} octets dropped")
                return headers[:n]
        return headers

    def _on_data(self, from_client: bool, frame: Frame, stream: _Stream | None) -> None:
        if stream is None:
            return
        message = stream.request if from_client else stream.response
        message.data_seen = True
        payload, length = frame.payload, frame.length
        if frame.flags & FLAG_PADDED:
            if not payload:
                message.note("data padding length lost in a capture gap")
                payload, length = b"", max(length - 1, 0)
            elif payload[0] >= length:
                # RFC 9113 6.1: "If the length of the padding is the length of the frame
                # payload or greater, the recipient MUST treat this as a connection error"
                message.note("DATA padding longer than the frame")
                self._error("bad_padding", "DATA padding longer than the frame", from_client,
                            frame.ts_start)
                payload, length = b"", 0
            else:
                length = length - 1 - payload[0]
                payload = payload[1:1 + length]
        message.body_len += length
        if message.body_prefix_open:
            room = self.limits.body_capture - len(message.body)
            kept = payload[:max(room, 0)]
            message.body += kept
            self._charge(stream, len(kept))
        if frame.damaged:
            message.body_prefix_open = False
            message.note("body bytes lost in a capture gap")
        if frame.flags & FLAG_END_STREAM:
            self._end_message(stream, from_client, frame.ts_end)

    def _on_rst_stream(self, from_client: bool, frame: Frame, stream: _Stream | None) -> None:
        if stream is not None and len(frame.payload) == 4:
            code = int.from_bytes(frame.payload, "big")
            self._flush(stream, f"reset: {error_name(code)}")

    def _on_goaway(self, from_client: bool, frame: Frame, stream: _Stream | None) -> None:
        if len(frame.payload) < 8:
            return
        last_stream = int.from_bytes(frame.payload[0:4], "big") & 0x7FFFFFFF
        code = int.from_bytes(frame.payload[4:8], "big")
        # RFC 9113 6.8: "the sender will ignore frames sent on streams initiated by the
        # receiver if the stream has an identifier higher than the included last stream
        # identifier" - the last id speaks of the receiver's streams only (client: odd ids).
        receiver_parity = 0 if from_client else 1
        for open_stream in list(self._streams.values()):
            if open_stream.stream_id > last_stream and open_stream.stream_id % 2 == receiver_parity:
                self._flush(open_stream, f"goaway: stream not processed ({error_name(code)})")
            elif code:
                self._flush(open_stream, f"goaway: {error_name(code)}")

    def _on_settings(self, from_client: bool, frame: Frame, stream: _Stream | None) -> None:
        """SETTINGS_HEADER_TABLE_SIZE takes effect when the other endpoint acknowledges it.

        RFC 9113 6.5.2: "SETTINGS_HEADER_TABLE_SIZE (0x01): This setting allows the sender to
        inform the remote endpoint of the maximum size of the compression table used to decode
        field blocks, in units of octets. The encoder can select any size equal to or less than
        this value". 6.5.3: "Upon receiving a SETTINGS frame ... the recipient MUST immediately
        update its parameters ... [then] immediately emit a SETTINGS frame with the ACK flag
        set": the encoder's blocks that use the new value follow its ACK in its own direction,
        so the decoder of that direction applies it there. RFC 7541 4.2: "The decoder ...
        [signals this limit via] SETTINGS_HEADER_TABLE_SIZE"; 6.3: "The new maximum size MUST
        be lower than or equal to the limit ... A value that exceeds this limit MUST be treated
        as a decoding error". Values above MAX_ACCEPTED_TABLE_SIZE are clamped (counted): an
        encoder using more resets our decoder (records noted partial), never a large table.
        """
        other = self._dirs[not from_client]
        if frame.flags & FLAG_ACK:
            # This endpoint acknowledges the other's SETTINGS: its encoder now obeys them.
            if other.sent_table_sizes:
                size = other.sent_table_sizes.popleft()
                if size is not None:
                    self._dirs[from_client].decoder.set_limit(*size)
            return
        table_size = self._read_settings(frame.payload, other.splitter)
        if table_size is not None and table_size > MAX_ACCEPTED_TABLE_SIZE:
            self._count("hpack_table_size_clamped")
            pending = (MAX_ACCEPTED_TABLE_SIZE, table_size)
        else:
            pending = None if table_size is None else (table_size, None)
        sent = self._dirs[from_client].sent_table_sizes
        if len(sent) >= _MAX_PENDING_SETTINGS:
            sent.popleft()
        sent.append(pending)

    @staticmethod
    def _read_settings(payload: bytes, other_splitter: FrameSplitter) -> int | None:
        """SETTINGS_HEADER_TABLE_SIZE of a SETTINGS payload (the last one), else None; a valid
        SETTINGS_MAX_FRAME_SIZE raises the frame size the other direction may use."""
        table_size = None
        for offset in range(0, len(payload) - 5, 6):
            ident = int.from_bytes(payload[offset:offset + 2], "big")
            value = int.from_bytes(payload[offset + 2:offset + 6], "big")
            if ident == SETTINGS_HEADER_TABLE_SIZE:
                table_size = value
            elif ident == SETTINGS_MAX_FRAME_SIZE and \
                    DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                # 6.5.2: "Values outside this range MUST be treated as a connection error"
                other_splitter.max_frame_size = max(other_splitter.max_frame_size, value)
        return table_size

    # --- exchanges --------------------------------------------------------------------------

    def _end_message(self, stream: _Stream, from_client: bool, ts: int) -> None:
        message = stream.request if from_client else stream.response
        message.ended = True
        message.end_ns = ts
        if not from_client:
            self._emit(stream, ())

    def _flush(self, stream: _Stream, reason: str) -> None:
        self._emit(stream, (reason,))

    def _mark_closed(self, stream_id: int) -> None:
        if len(self._closed) == self._closed.maxlen:
            self._closed_set.discard(self._closed[0])
        self._closed.append(stream_id)
        self._closed_set.add(stream_id)

    def _emit(self, stream: _Stream, notes: tuple[str, ...]) -> None:
        if self._streams.pop(stream.stream_id, None) is not None:
            self._stream_bytes -= stream.cost
        self._mark_closed(stream.stream_id)
        if not (stream.request.headers_seen or stream.response.headers_seen):
            # Only DATA frames: nothing says what the stream was (it began before the capture,
            # or its header blocks were in a gap). Counted, not reported.
            self._count("streams_without_headers")
            return
        request = self._build(stream.request, True, stream.stream_id)
        response = self._build(stream.response, False, stream.stream_id)
        if request is None:
            notes += ("request headers not seen (the stream predates the capture or a gap)",)
        protocol = "grpc" if _is_grpc(request, response) else "http2"
        self._out.append(ExchangeParsed(protocol, request, response, stream.stream_id, notes))

    def _build(self, message: _Message, is_request: bool, stream_id: int) -> HttpMessage | None:
        if not message.headers_seen and (is_request or not message.data_seen):
            return None
        notes = list(message.notes)
        if not message.headers_seen:
            notes.append("response headers not seen")
        pseudo = {name: value for name, value in message.headers if name.startswith(":")}
        status = None
        if not is_request:
            raw = pseudo.get(":status")
            status = None if raw is None else parse_status(raw)
            if raw is not None and status is None:
                notes.append(f"bad :status {raw[:16]!r}")
        return HttpMessage(
            is_request=is_request,
            start_ns=message.start_ns if message.headers_seen else message.first_ns,
            end_ns=message.end_ns,
            wire_bytes=message.wire_bytes,
            headers=tuple(message.headers),
            method=pseudo.get(":method") if is_request else None,
            path=pseudo.get(":path") if is_request else None,
            authority=pseudo.get(":authority") if is_request else None,
            status=status,
            version="HTTP/2",
            trailers=tuple(message.trailers),
            body=bytes(message.body),
            body_len=message.body_len,
            complete=message.ended,
            notes=tuple(notes),
            stream_id=stream_id,
        )


def _is_informational(headers) -> bool:
    for name, value in headers:
        if name == ":status":
            status = parse_status(value)
            return status is not None and status < 200
    return False


def _header_fragment(frame: Frame, fixed: int) -> tuple[bytes, str | None]:
    """Header block fragment of a HEADERS (fixed=0) or PUSH_PROMISE (fixed=4) frame.

    RFC 9113 6.2: HEADERS payload = [Pad Length (8)] [E + Stream Dependency (32), Weight (8)
    when PRIORITY] Field Block Fragment, Padding. 6.6: PUSH_PROMISE = [Pad Length (8)],
    R + Promised Stream ID (32), Field Block Fragment, Padding.
    """
    if frame.damaged or frame.truncated:
        return b"", "header block lost in a capture gap" if frame.damaged else \
            "header block larger than the limit"
    payload = frame.payload
    start, pad = 0, 0
    if frame.flags & FLAG_PADDED:
        if not payload:
            return b"", "padded header frame without a pad length"
        start, pad = 1, payload[0]
    if frame.type == HEADERS and frame.flags & FLAG_PRIORITY:
        start += 5
    start += fixed
    end = len(payload) - pad
    if end < start:
        # RFC 9113 6.2: "Padding that exceeds the size remaining for the header block fragment
        # MUST be treated as a PROTOCOL_ERROR."
        return b"", "header frame padding exceeds its payload"
    return payload[start:end], None


_FRAME_HANDLERS = {
    DATA: Http2Analyzer._on_data,
    HEADERS: Http2Analyzer._on_headers,
    RST_STREAM: Http2Analyzer._on_rst_stream,
    SETTINGS: Http2Analyzer._on_settings,
    PUSH_PROMISE: Http2Analyzer._on_push_promise,
    GOAWAY: Http2Analyzer._on_goaway,
    CONTINUATION: Http2Analyzer._on_continuation,
}
