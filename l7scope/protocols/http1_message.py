"""Read HTTP/1.x messages from one direction of a connection (RFC 9112).

Theory of operation
-------------------
A ``MessageReader`` owns one direction's byte stream (client->server carries requests,
server->client carries responses). It is a state machine whose every move is an entry of
``TRANSITIONS`` (state, step) -> next state:

    HEAD --no body / 1xx / HEAD--> HEAD
    HEAD --Content-Length--> LENGTH_BODY --last byte--> HEAD
    HEAD --chunked--> CHUNK_SIZE --size>0--> CHUNK_DATA --> CHUNK_DATA_END --CRLF--> CHUNK_SIZE
                      CHUNK_SIZE --size 0--> TRAILERS --empty line--> HEAD
    HEAD --response with no length--> CLOSE_BODY            (ends at eof)
    HEAD --101 / 2xx to CONNECT--> STOPPED                   (no longer HTTP/1)
    framing state --invalid bytes or a hole--> RESYNC --plausible start line--> HEAD
    any state --eof--> STOPPED

Each state has one handler ``(buf, pos) -> (step | None, new_pos)``; None means "need more
bytes". A step missing from the table for the current state is a bug here (KeyError).

Buffering: feed() works on one ``bytes`` object (carried-over bytes + new data) with an index.
Bodies are consumed as they arrive (only the first ``body_capture`` bytes are copied), so the
only bytes carried to the next feed are an incomplete header block (<= max_header_bytes), an
incomplete chunk-size line (<= MAX_CHUNK_LINE) or trailer block, or, in RESYNC, the short tail
that could still begin a start line. Holes (skip) inside a body are counted as body bytes;
a hole anywhere else loses the framing and sends the reader to RESYNC.

The reader knows nothing about pairing: it tells a ``MessageSink`` (the analyzer) when a head
is parsed, when a message ends, when bytes are invalid and when a hole lost its place, and asks
it how a parsed head's body is delimited (RFC 9112 6.3 depends on the request a response
answers: HEAD and CONNECT change the rules, and only the pairing knows that request).
"""
from __future__ import annotations

import enum
import re
from typing import Protocol

from l7scope.protocols.message import AnalyzerLimits, HttpMessage
from l7scope.protocols.wirenum import parse_hex, parse_status

MAX_CHUNK_LINE = 4096  # chunk-size line incl. extensions
MAX_SYNC_LINE = 8192  # longest request line found again after garbage
MAX_STAMPS = 64  # feed timestamps remembered for carried-over bytes
# memory() figures (bytes, measured with tracemalloc on CPython 3.11): one message being read or
# held (builder or HttpMessage, its lists and strings' fixed parts), one header field (a tuple
# of two str), one reader with its stamps list
MESSAGE_COST = 350
FIELD_COST = 160
READER_COST = 600
_TCHAR = r"!#$%&'*+.^_`|~0-9A-Za-z-"

# Methods accepted when looking for a request after garbage (RFC 9110 9, WebDAV, others).
KNOWN_METHODS = (
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT",
    "MKCALENDAR", "MKACTIVITY", "CHECKOUT", "MERGE", "BIND", "UNBIND", "REBIND", "ACL",
    "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PURGE", "LINK", "UNLINK",
)
_METHODS_RE = "|".join(re.escape(m) for m in KNOWN_METHODS).encode()

# RFC 9112 3: request-line = method SP request-target SP HTTP-version
REQUEST_LINE = re.compile(rf"([{_TCHAR}]+) ([\x21-\x7e\x80-\xff]+) (HTTP/1\.[0-9])")
# RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# (the SP before an empty reason-phrase is sometimes left out; we accept that)
STATUS_LINE = re.compile(r"(HTTP/1\.[0-9]) ([0-9]{3})(?: .*)?")
# RFC 9112 5: field-line = field-name ":" OWS field-value OWS
FIELD_LINE = re.compile(rf"^([{_TCHAR}]+):[ \t]*([^\r\n]*)\r?\n", re.M)  # OWS after: see below
REQUEST_SYNC = re.compile(rb"(?:" + _METHODS_RE + rb") [\x21-\x7e\x80-\xff]+ HTTP/1\.[0-9]\r?\n")
RESPONSE_SYNC = re.compile(rb"HTTP/1\.[0-9] [1-5][0-9]{2} ")
_METHOD_PREFIX = re.compile(rf"[{_TCHAR}]{{1,32}}(?: |\Z)".encode())
_CR, _LF = 13, 10
READER_COUNTERS = ("http1_discarded_bytes", "http1_ignored_bytes", "http1_lost_heads")


class State(enum.IntEnum):  # IntEnum: hashed in C, the tables are looked up per message
    HEAD = 1
    LENGTH_BODY = 2
    CHUNK_SIZE = 3
    CHUNK_DATA = 4
    CHUNK_DATA_END = 5
    TRAILERS = 6
    CLOSE_BODY = 7
    RESYNC = 8
    STOPPED = 9


class Step(enum.IntEnum):
    MESSAGE_DONE = 101
    BODY_BY_LENGTH = 102
    BODY_CHUNKED = 103
    BODY_UNTIL_CLOSE = 104
    SWITCHED = 105
    CHUNK_STARTED = 106
    LAST_CHUNK = 107
    CHUNK_DATA_DONE = 108
    CHUNK_CLOSED = 109
    INVALID = 110
    HOLE = 111
    SYNCED = 112
    CLOSED = 113


S, T = State, Step
TRANSITIONS: dict[tuple[State, Step], State] = {
    (S.HEAD, T.MESSAGE_DONE): S.HEAD,
    (S.HEAD, T.BODY_BY_LENGTH): S.LENGTH_BODY,
    (S.HEAD, T.BODY_CHUNKED): S.CHUNK_SIZE,
    (S.HEAD, T.BODY_UNTIL_CLOSE): S.CLOSE_BODY,
    (S.HEAD, T.SWITCHED): S.STOPPED,
    (S.HEAD, T.INVALID): S.RESYNC,
    (S.HEAD, T.HOLE): S.RESYNC,
    (S.LENGTH_BODY, T.MESSAGE_DONE): S.HEAD,
    (S.CHUNK_SIZE, T.CHUNK_STARTED): S.CHUNK_DATA,
    (S.CHUNK_SIZE, T.LAST_CHUNK): S.TRAILERS,
    (S.CHUNK_SIZE, T.INVALID): S.RESYNC,
    (S.CHUNK_SIZE, T.HOLE): S.RESYNC,
    (S.CHUNK_DATA, T.CHUNK_DATA_DONE): S.CHUNK_DATA_END,
    (S.CHUNK_DATA_END, T.CHUNK_CLOSED): S.CHUNK_SIZE,
    (S.CHUNK_DATA_END, T.INVALID): S.RESYNC,
    (S.CHUNK_DATA_END, T.HOLE): S.RESYNC,
    (S.TRAILERS, T.MESSAGE_DONE): S.HEAD,
    (S.TRAILERS, T.INVALID): S.RESYNC,
    (S.TRAILERS, T.HOLE): S.RESYNC,
    (S.RESYNC, T.SYNCED): S.HEAD,
    (S.RESYNC, T.HOLE): S.RESYNC,
    **{(state, T.CLOSED): S.STOPPED for state in State},
}
BODY_STATES = (S.LENGTH_BODY, S.CHUNK_DATA, S.CLOSE_BODY)
del S, T


class MessageBuilder:
    """A message being read; ``build()`` freezes it into an HttpMessage."""

    __slots__ = ("is_request", "start_ns", "end_ns", "wire_bytes", "method", "path", "version",
                 "status", "headers", "trailers", "authority", "upgrade", "content_lengths",
                 "transfer_codings", "body", "body_len", "capture_left", "notes", "complete",
                 "switch_to", "mem")

    def __init__(self, is_request: bool, start_ns: int, capture: int) -> None:
        self.is_request = is_request
        self.start_ns = self.end_ns = start_ns
        self.wire_bytes = self.body_len = 0
        self.method = self.path = self.version = self.authority = self.upgrade = None
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.trailers: list[tuple[str, str]] = []
        self.content_lengths: list[str] | None = None
        self.transfer_codings: list[str] | None = None
        self.body = b""
        self.capture_left = capture
        self.notes: list[str] = []
        self.complete = True
        self.switch_to: str | None = None  # set by the framing of a 101 / 2xx to CONNECT
        self.mem = MESSAGE_COST  # approximate bytes held, captured body excluded (see cost())

    def take_body(self, buf: bytes, pos: int, count: int, ts: int) -> None:
        self.body_len += count
        self.wire_bytes += count
        self.end_ns = ts
        if self.capture_left > 0:
            keep = min(count, self.capture_left)
            self.body += buf[pos:pos + keep]
            self.capture_left -= keep

    def take_hole(self, count: int, ts: int) -> None:
        """Body bytes that were not captured: counted, and the captured prefix ends here."""
        self.body_len += count
        self.wire_bytes += count
        self.end_ns = ts
        self.capture_left = 0

    def fail(self, note: str) -> None:
        self.complete = False
        self.notes.append(note)

    def cost(self) -> int:
        """Approximate bytes this message holds: fixed part, head text, fields, captured body."""
        return self.mem + len(self.body)

    def build(self) -> HttpMessage:
        return HttpMessage(
            is_request=self.is_request, start_ns=self.start_ns, end_ns=self.end_ns,
            wire_bytes=self.wire_bytes, headers=tuple(self.headers), method=self.method,
            path=self.path, authority=self.authority, status=self.status, version=self.version,
            trailers=tuple(self.trailers), body=self.body, body_len=self.body_len,
            complete=self.complete, notes=tuple(self.notes))


class MessageSink(Protocol):
    """What a reader reports to (the analyzer), which also decides how a body is delimited."""

    def message_started(self, reader: MessageReader, msg: MessageBuilder) -> None: ...
    def message_finished(self, reader: MessageReader, msg: MessageBuilder) -> None: ...
    def body_framing(self, reader: MessageReader, msg: MessageBuilder) -> Framing: ...
    def parse_error(self, reader: MessageReader, code: str, detail: str) -> None: ...
    def sync_lost(self, reader: MessageReader, had_message: bool) -> None: ...


# ---------------------------------------------------------------- head parsing (pure functions)

def parse_start_line(line: str, is_request: bool, msg: MessageBuilder) -> tuple[str, str] | None:
    """Fill method/path/version or version/status; return (error code, detail) if invalid."""
    if line.endswith("\r"):
        line = line[:-1]
    if is_request:
        m = REQUEST_LINE.fullmatch(line)
        if m is None:
            return "bad_request_line", repr(line[:64])
        msg.method, msg.path, msg.version = m.groups()
        return None
    m = STATUS_LINE.fullmatch(line)
    if m is None:
        return "bad_status_line", repr(line[:64])
    # RFC 9110 15: "status-code = 3DIGIT"; "All valid status codes are within the range of 100
    # to 599, inclusive."
    status = parse_status(m[2])
    if status is None or status > 599:
        return "bad_status_code", repr(line[:64])
    msg.version, msg.status = m[1], status
    return None


def parse_field_section(text: str, max_fields: int) -> tuple[list[tuple[str, str]], list[str]]:
    """Field lines, each ending in LF -> ([(name, value)], notes). Names kept as sent."""
    fields = FIELD_LINE.findall(text)
    notes: list[str] = []
    if len(fields) != text.count("\n"):
        fields, notes = _parse_odd_field_lines(text)
    elif " \r\n" in text or "\t\r\n" in text or " \n" in text or "\t\n" in text:
        # rare: OWS after a value (substring tests are cheaper than one more regex pass)
        fields = [(name, value.rstrip(" \t")) for name, value in fields]
    if len(fields) > max_fields:
        notes.append(f"{len(fields) - max_fields} header fields over limit dropped")
    return fields, notes


def _parse_odd_field_lines(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    fields: list[tuple[str, str]] = []
    bad = 0
    for line in text.split("\n")[:-1]:
        if line.endswith("\r"):
            line = line[:-1]
        if line[:1] in (" ", "\t") and fields:
            # RFC 9112 5.2: "A user agent that receives an obs-fold in a response message
            # ... MUST replace each received obs-fold with one or more SP octets"
            name, value = fields[-1]
            fields[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        m = FIELD_LINE.match(line + "\n")
        if m is None:
            bad += 1  # RFC 9112 5.1: no whitespace between field name and colon, etc.
            continue
        fields.append((m[1], m[2].rstrip(" \t")))
    return fields, [f"{bad} malformed field lines ignored"] if bad else []


def read_fields(msg: MessageBuilder, text: str, limits: AnalyzerLimits) -> None:
    fields, notes = parse_field_section(text, limits.max_headers)
    msg.notes += notes
    for name, value in fields:
        key = name.lower()
        if key == "content-length":
            msg.content_lengths = (msg.content_lengths or []) + [value]
        elif key == "transfer-encoding":
            msg.transfer_codings = (msg.transfer_codings or []) + [value]
        elif key == "host" and msg.is_request and msg.authority is None:
            msg.authority = value
        elif key == "upgrade" and msg.upgrade is None:
            msg.upgrade = value
    msg.headers = fields[:limits.max_headers]
    msg.mem += len(text) + FIELD_COST * len(msg.headers)


# (step, body length, (error code, bad value) when the framing is invalid)
Framing = tuple[Step, int, tuple[str, str] | None]


def find_block_end(buf: bytes, start: int) -> tuple[int, int]:
    """(index of the LF ending the last field line, index after the empty line) or (-1, -1).

    RFC 9112 2.2: "a recipient MAY recognize a single LF as a line terminator and ignore any
    preceding CR", so the block ends at LF CRLF or at LF LF, whichever comes first.
    """
    crlf = buf.find(b"\n\r\n", start)
    bare = buf.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buf))
    if bare >= 0:
        return bare, bare + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def start_line_prefix_plausible(prefix: bytes, is_request: bool) -> bool:
    """Could these first bytes (no LF yet) begin a request-line / status-line?"""
    if is_request:
        return _METHOD_PREFIX.match(prefix[:33]) is not None
    return b"HTTP/1.".startswith(prefix[:7])


# ---------------------------------------------------------------- the per-direction reader

class MessageReader:
    """Reads one direction's messages; see the theory of operation at the top of this module."""

    def __init__(self, is_request: bool, limits: AnalyzerLimits, sink: MessageSink,
                 counters: dict[str, int] | None = None) -> None:
        self.is_request = is_request
        self.limits = limits
        self.sink = sink
        self.state = State.HEAD
        self.ts = 0
        self.discarded_bytes = 0  # dropped while looking for a start line
        self.ignored_bytes = 0  # arrived after the protocol switched or the connection ended
        self.lost_heads = 0  # incomplete heads too short to say what message they began
        # the three counts above are also added, when they happen, to this shared dict under
        # "http1_discarded_bytes", "http1_ignored_bytes", "http1_lost_heads"
        self.counters = counters if counters is not None else dict.fromkeys(READER_COUNTERS, 0)
        self.switched_remainder = b""  # bytes after a switching response, in its feed
        self._buf = b""
        # (offset in the buffer, ts of the feed that carried the bytes from there on); a new
        # entry only when the ts changes, at most MAX_STAMPS (then older ones are merged)
        self._stamps: list[tuple[int, int]] = [(0, 0)]
        self._scanned = 0  # bytes of an incomplete head already searched for its end
        self._start_line_ok = False
        self._msg: MessageBuilder | None = None
        self._remaining = 0  # body or chunk-data bytes still expected
        self._sync = REQUEST_SYNC if is_request else RESPONSE_SYNC

    # -- input

    def feed(self, data: bytes, ts: int) -> None:
        self.ts = ts
        if self.state is State.STOPPED:
            self._ignore(len(data))
            return
        if self._buf:
            buf = self._buf + data
            if self._stamps[-1][1] != ts:
                self._stamps.append((len(self._buf), ts))
                if len(self._stamps) > MAX_STAMPS:
                    del self._stamps[1]
        else:
            buf, self._stamps = data, [(0, ts)]
        pos, end = 0, len(buf)
        while pos < end:
            step, pos = _HANDLERS[self.state](self, buf, pos)
            if step is None:
                break
            self._advance(step)
            if self.state is State.STOPPED:
                # the new protocol's first bytes: handed over (ProtocolSwitched), not ignored
                self.switched_remainder = buf[pos:end]
                pos = end
        self._keep(buf, pos)

    def skip(self, length: int, ts: int) -> None:
        """A hole of ``length`` bytes: counted as body where the body is, else framing is lost."""
        self.ts = ts
        while length > 0:
            if self.state is State.STOPPED:
                self._ignore(length)
                return
            if self.state in BODY_STATES:
                length = self._skip_body(length)
                continue
            self._lose_sync_in_hole()
            return

    def eof(self, ts: int) -> None:
        state = self.state
        if state is State.CLOSE_BODY:
            self._finish()  # RFC 9112 6.3 (8): the body ends when the server closes
        elif state is State.HEAD and self._buf:
            self._abandon_head(self._buf, "truncated at eof")
        elif state not in (State.HEAD, State.RESYNC, State.STOPPED):
            self._finish("truncated at eof")
        self._close()

    def stop(self) -> None:
        """The other direction switched protocols: end any message and ignore later bytes."""
        if self.state in (State.HEAD, State.RESYNC, State.STOPPED):
            if self.state is State.HEAD and self._buf:
                self._abandon_head(self._buf, "protocol switched mid-message")
        elif self.state is not State.CLOSE_BODY:
            self._finish("protocol switched mid-message")
        else:
            self._finish()
        self._close()

    # -- counts (per reader, and the analyzer's shared dict at the same moment)

    def _ignore(self, n: int) -> None:
        self.ignored_bytes += n
        self.counters["http1_ignored_bytes"] += n

    def _discard(self, n: int) -> None:
        self.discarded_bytes += n
        self.counters["http1_discarded_bytes"] += n

    # -- moving through the table

    def _advance(self, step: Step) -> None:
        state = TRANSITIONS[self.state, step]
        if state is State.HEAD or state is State.RESYNC:
            self._scanned = 0
            self._start_line_ok = False
        self.state = state

    def _close(self) -> None:
        self._ignore(len(self._buf))
        self._buf = b""
        self._advance(Step.CLOSED)

    def _keep(self, buf: bytes, pos: int) -> None:
        if pos >= len(buf):
            self._buf = b""
            return
        self._buf = buf[pos:]
        stamps = self._stamps
        if len(stamps) > 1:
            first = max(i for i, (offset, _) in enumerate(stamps) if offset <= pos)
            self._stamps = [(0, stamps[first][1])] + [(o - pos, t) for o, t in stamps[first + 1:]]

    def _ts_at(self, pos: int) -> int:
        """ts of the feed that carried buf[pos]."""
        for offset, ts in reversed(self._stamps):
            if offset <= pos:
                return ts
        return self.ts

    def _finish(self, failure: str | None = None) -> Step:
        msg, self._msg = self._msg, None
        if failure is not None:
            msg.fail(failure)
        self.sink.message_finished(self, msg)
        return Step.MESSAGE_DONE

    def _invalid(self, code: str, detail: str, new_pos: int) -> tuple[Step, int]:
        self.sink.parse_error(self, code, detail)
        return Step.INVALID, new_pos

    # -- HEAD

    def _read_head(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        end = len(buf)
        # RFC 9112 2.2: "a server that is expecting to receive and parse a request-line SHOULD
        # ignore at least one empty line (CRLF) received prior to the request-line."
        while buf[pos] == _CR or buf[pos] == _LF:
            pos += 1
            if pos == end:
                return None, pos
        last_lf, head_end = find_block_end(buf, pos + max(0, self._scanned - 2))
        if head_end < 0:
            if not self._start_line_ok:
                error = self._check_start_line(buf, pos)
                if error is not None:
                    return self._bad_start_line(error, pos)
            if end - pos > self.limits.max_header_bytes:
                return self._head_too_large(buf, pos, end)
            self._scanned = end - pos
            return None, pos
        if head_end - pos > self.limits.max_header_bytes:
            return self._head_too_large(buf, pos, head_end)
        text = buf[pos:last_lf + 1].decode("latin-1")
        nl = text.find("\n")
        msg = MessageBuilder(self.is_request, self._ts_at(pos), self.limits.body_capture)
        error = parse_start_line(text[:nl], self.is_request, msg)
        if error is not None:
            return self._bad_start_line(error, pos)
        read_fields(msg, text[nl + 1:], self.limits)
        msg.wire_bytes = head_end - pos
        msg.end_ns = self.ts
        msg.mem += nl
        self._msg = msg
        return self._begin_body(msg), head_end

    def _bad_start_line(self, error: tuple[str, str], pos: int) -> tuple[Step, int]:
        self._discard(1)  # RESYNC looks for a start line from the next byte on
        return self._invalid(*error, pos + 1)

    def _check_start_line(self, buf: bytes, pos: int) -> tuple[str, str] | None:
        """Reject garbage early, before a whole header block has been buffered."""
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if start_line_prefix_plausible(buf[pos:pos + 40], self.is_request):
                return None
            code = "bad_request_line" if self.is_request else "bad_status_line"
            return code, repr(buf[pos:pos + 64])
        probe = MessageBuilder(self.is_request, 0, 0)
        error = parse_start_line(buf[pos:nl].decode("latin-1"), self.is_request, probe)
        self._start_line_ok = error is None
        return error

    def _head_too_large(self, buf: bytes, pos: int, skip_to: int) -> tuple[Step, int]:
        self.sink.parse_error(self, "header_too_large",
                              f"header block over {self.limits.max_header_bytes} bytes")
        self._abandon_head(buf[pos:pos + self.limits.max_header_bytes], "headers too large",
                           with_fields=False, start_ns=self._ts_at(pos))
        return Step.INVALID, skip_to

    def _abandon_head(self, head: bytes, note: str, with_fields: bool = True,
                      start_ns: int | None = None) -> bool:
        """A head cut short: report a partial message if its start line is whole and valid."""
        nl = head.find(b"\n")
        msg = MessageBuilder(self.is_request, self._ts_at(0) if start_ns is None else start_ns, 0)
        if nl < 0 or parse_start_line(head[:nl].decode("latin-1"), self.is_request, msg):
            self.lost_heads += 1
            self.counters["http1_lost_heads"] += 1
            return False
        if with_fields:
            complete_lines = head[nl + 1:head.rfind(b"\n") + 1].decode("latin-1")
            read_fields(msg, complete_lines, self.limits)
        msg.wire_bytes = len(head)
        msg.end_ns = self.ts
        msg.mem += nl
        msg.fail(note)
        if self.is_request:
            self.sink.message_started(self, msg)
        self.sink.message_finished(self, msg)
        return True

    def _begin_body(self, msg: MessageBuilder) -> Step:
        if self.is_request:
            self.sink.message_started(self, msg)
        step, length, problem = self.sink.body_framing(self, msg)
        if step is Step.INVALID:
            code, value = problem
            self.sink.parse_error(self, code, repr(value[:64]))
            self._finish(code.replace("_", " "))  # e.g. "invalid content length"
            return Step.INVALID
        if step is Step.MESSAGE_DONE or step is Step.SWITCHED:
            self._finish()
        self._remaining = length
        return step

    # -- bodies

    def _read_length_body(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        take = min(self._remaining, len(buf) - pos)
        self._msg.take_body(buf, pos, take, self.ts)
        self._remaining -= take
        if self._remaining:
            return None, pos + take
        return self._finish(), pos + take

    def _read_chunk_data(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        take = min(self._remaining, len(buf) - pos)
        self._msg.take_body(buf, pos, take, self.ts)
        self._remaining -= take
        return (None if self._remaining else Step.CHUNK_DATA_DONE), pos + take

    def _read_close_body(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        self._msg.take_body(buf, pos, len(buf) - pos, self.ts)
        return None, len(buf)

    def _read_chunk_size(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        # RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
        #               last-chunk = 1*("0") [ chunk-ext ] CRLF
        nl = buf.find(b"\n", pos, pos + MAX_CHUNK_LINE)
        if nl < 0:
            if len(buf) - pos >= MAX_CHUNK_LINE:
                return self._bad_chunking("bad_chunk_size", "chunk-size line too long", pos)
            return None, pos
        # RFC 9112 7.1.1: "A recipient MUST ignore unrecognized chunk extensions."
        # chunk-size = 1*HEXDIG; leading zeros aside, at most 15 digits (a 60-bit size)
        size_text = buf[pos:nl].split(b";", 1)[0].strip(b" \t\r")
        size = parse_hex(size_text.lstrip(b"0") or b"0") if size_text else None
        if size is None:
            return self._bad_chunking("bad_chunk_size", repr(buf[pos:min(nl, pos + 64)]), pos)
        self._msg.wire_bytes += nl + 1 - pos
        self._msg.end_ns = self.ts
        self._remaining = size
        return (Step.CHUNK_STARTED if self._remaining else Step.LAST_CHUNK), nl + 1

    def _read_chunk_data_end(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        if buf.startswith(b"\r\n", pos) or buf[pos] == _LF:
            size = 2 if buf[pos] == _CR else 1
            self._msg.wire_bytes += size
            self._msg.end_ns = self.ts
            return Step.CHUNK_CLOSED, pos + size
        if pos + 1 == len(buf) and buf[pos] == _CR:
            return None, pos
        return self._bad_chunking("bad_chunk_data", "chunk data not followed by CRLF", pos)

    def _read_trailers(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        # RFC 9112 7.1.2: trailer-section = *( field-line CRLF ), then the final CRLF
        msg = self._msg
        if buf.startswith(b"\r\n", pos) or buf[pos] == _LF:
            size = 2 if buf[pos] == _CR else 1
            msg.wire_bytes += size
            msg.end_ns = self.ts
            return self._finish(), pos + size
        if pos + 1 == len(buf) and buf[pos] == _CR:
            return None, pos
        last_lf, block_end = find_block_end(buf, pos)
        if block_end < 0:
            if len(buf) - pos > self.limits.max_header_bytes:
                return self._bad_chunking("header_too_large", "trailer section too large", pos)
            return None, pos
        fields, notes = parse_field_section(buf[pos:last_lf + 1].decode("latin-1"),
                                            self.limits.max_headers)
        msg.trailers = fields[:self.limits.max_headers]
        msg.mem += last_lf + 1 - pos + FIELD_COST * len(msg.trailers)
        msg.notes += notes
        msg.wire_bytes += block_end - pos
        msg.end_ns = self.ts
        return self._finish(), block_end

    def _bad_chunking(self, code: str, detail: str, pos: int) -> tuple[Step, int]:
        self.sink.parse_error(self, code, detail)
        self._finish("invalid chunked framing")
        return Step.INVALID, pos

    # -- garbage and holes

    def _resync(self, buf: bytes, pos: int) -> tuple[Step | None, int]:
        m = self._sync.search(buf, pos)
        if m is not None:
            self._discard(m.start() - pos)
            return Step.SYNCED, m.start()
        if self.is_request:  # a request line candidate has no LF yet
            keep = max(pos, buf.rfind(b"\n", pos) + 1, len(buf) - MAX_SYNC_LINE)
        else:
            keep = max(pos, len(buf) - len(b"HTTP/1.1 200"))
        self._discard(keep - pos)
        return None, keep

    def _skip_body(self, length: int) -> int:
        msg = self._msg
        if self.state is State.CLOSE_BODY:
            msg.take_hole(length, self.ts)
            return 0
        take = min(length, self._remaining)
        msg.take_hole(take, self.ts)
        self._remaining -= take
        if not self._remaining:
            self._advance(self._finish() if self.state is State.LENGTH_BODY
                          else Step.CHUNK_DATA_DONE)
        return length - take

    def _lose_sync_in_hole(self) -> None:
        state, had_message = self.state, False
        if state is State.HEAD and self._buf:
            had_message = self._abandon_head(self._buf, "gap in headers")
        elif state is State.TRAILERS:
            self._finish("gap in trailers")
            had_message = True
        elif state in (State.CHUNK_SIZE, State.CHUNK_DATA_END):
            self._finish("gap in chunked framing")
            had_message = True
        self._discard(len(self._buf))
        self._buf = b""
        self._advance(Step.HOLE)
        self.sink.sync_lost(self, had_message)


_HANDLERS = {
    State.HEAD: MessageReader._read_head,
    State.LENGTH_BODY: MessageReader._read_length_body,
    State.CHUNK_SIZE: MessageReader._read_chunk_size,
    State.CHUNK_DATA: MessageReader._read_chunk_data,
    State.CHUNK_DATA_END: MessageReader._read_chunk_data_end,
    State.TRAILERS: MessageReader._read_trailers,
    State.CLOSE_BODY: MessageReader._read_close_body,
    State.RESYNC: MessageReader._resync,
}
