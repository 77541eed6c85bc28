"""HTTP/1.x analyzer for one connection: reads both directions and pairs requests with responses.

Theory of operation
-------------------
Two ``MessageReader``s (l7scope/protocols/http1_message.py) read the client and the server
byte streams; this module is their ``MessageSink``: it owns the pairing and decides how each
body is delimited (RFC 9112 6.3, which for a response depends on the request it answers).

HTTP/1.1 answers requests in order (RFC 9112 9.3.2: "A server MUST send its responses to
those requests in the same order that the requests were received"), so pairing is a FIFO
queue ``_awaiting`` of requests whose head was seen and whose final response was not. A
request enters the queue when its head is parsed (so a response can learn that it answers a
HEAD or CONNECT while the request body may still be arriving) and an exchange is emitted once
both the request has ended and its response is known:

    request head parsed   -> push entry                  (oldest dropped past max_pending)
    request ended         -> entry.request_done; emit if already answered
    final response ended  -> pop oldest entry, answer it; emit if its request ended
    1xx (not 101)         -> ignored: an interim response is not the answer
    101 / 2xx to CONNECT  -> emit, ProtocolSwitched, stop both readers
    response, queue empty -> ExchangeParsed(request=None, notes=("request not seen",))
    eof                   -> close-delimited response ends; queue flushed with "no response"

Holes (``skip``) that lose the framing are the one place where pairing needs a guess:
  * server side: the response to the oldest waiting request began inside the hole, and any
    number of later ones may have too, so every waiting request is flushed as
    "response lost in gap" (never paired with a later, wrong response);
  * client side: the hole began a request (or several). The entry of the cut request, or a
    placeholder when nothing of it was seen, becomes *absorbing*: it answers the next
    response, and further responses before any new request is seen are reported with
    request=None and "request lost in gap". A new request ends the absorption (or, when the
    placeholder has not yet been answered, turns it into an ordinary entry: pipelining).
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from l7scope.protocols.http1_message import (
    KNOWN_METHODS, READER_COST, REQUEST_LINE, Framing, MessageBuilder, MessageReader, Step,
)
from l7scope.protocols.message import (
    AnalyzerEvent, AnalyzerLimits, ExchangeParsed, HttpMessage, ParseError, ProtocolSwitched,
)
from l7scope.protocols.wirenum import parse_decimal

# what counters() reports, and (prefixed "http1_") what the shared counters dict receives
COUNTERS = ("dropped_pending", "interim_responses", "parse_errors", "ignored_bytes",
            "discarded_bytes", "lost_heads")
# memory(): the analyzer object, its deque and event list, and its two readers (tracemalloc)
ANALYZER_COST = 1200 + 2 * READER_COST
PENDING_COST = 150  # memory(): one request waiting for its response, messages aside

_METHOD_SP = re.compile(b"(?:" + b"|".join(re.escape(m.encode()) for m in KNOWN_METHODS)
                        + rb") [\x21-\x7e\x80-\xff]")
_STATUS_START = re.compile(rb"HTTP/1\.[0-9] [0-9]{3}(?:[ \r\n]|\Z)")


def looks_like_request(data: bytes) -> bool:
    """``data`` begins with a known method, SP and a request-target; if the first line is whole
    it must be a complete HTTP/1.x request-line."""
    if _METHOD_SP.match(data) is None:
        return False
    nl = data.find(b"\n")
    if nl < 0:
        parts = data.split(b" ")
        return len(parts) < 3 or (len(parts) == 3 and b"HTTP/1.0".startswith(parts[2][:7]))
    line = data[:nl - 1] if data[nl - 1:nl] == b"\r" else data[:nl]
    return REQUEST_LINE.fullmatch(line.decode("latin-1")) is not None


def looks_like_response(data: bytes) -> bool:
    """``data`` begins with "HTTP/1.<digit> <3 digits>" followed by SP, CR, LF or nothing."""
    return _STATUS_START.match(data) is not None


# ---------------------------------------------------------------- body framing (RFC 9112 6.3)

def request_framing(msg: MessageBuilder) -> Framing:
    """How the body of a request is delimited."""
    return _framing_from_fields(msg)


def response_framing(msg: MessageBuilder, request_method: str | None) -> Framing:
    status = msg.status or 0
    if status == 101:
        # RFC 9110 15.2.2: "the server will switch protocols to those defined by the response's
        # Upgrade header field immediately after the empty line that terminates the 101"
        msg.switch_to = (msg.upgrade or "").split(",")[0].strip().lower()  # "" if absent
        return Step.SWITCHED, 0, None
    # RFC 9112 6.3 (1): "Any response to a HEAD request and any response with a 1xx
    # (Informational), 204 (No Content), or 304 (Not Modified) status code is always terminated
    # by the first empty line after the header fields, regardless of the header fields present
    # in the message, and thus cannot contain a message body or trailer section."
    if request_method == "HEAD" or status < 200 or status in (204, 304):
        return Step.MESSAGE_DONE, 0, None
    # RFC 9112 6.3 (2): "Any 2xx (Successful) response to a CONNECT request implies that the
    # connection will become a tunnel immediately after the empty line that concludes the header
    # fields. A client MUST ignore any Content-Length or Transfer-Encoding header fields"
    if request_method == "CONNECT" and 200 <= status < 300:
        msg.switch_to = "tunnel"
        return Step.SWITCHED, 0, None
    return _framing_from_fields(msg)


def _framing_from_fields(msg: MessageBuilder) -> Framing:
    if msg.transfer_codings is not None:
        codings = [c.strip().lower() for v in msg.transfer_codings for c in v.split(",")]
        # RFC 9112 6.3 (3): "If a message is received with both a Transfer-Encoding and a
        # Content-Length header field, the Transfer-Encoding overrides the Content-Length."
        # (4): "If a Transfer-Encoding header field is present and the chunked transfer coding
        # is the final encoding, the message body length is determined by reading and decoding
        # the chunked data until the transfer coding indicates the data is complete."
        if codings[-1] == "chunked":
            return Step.BODY_CHUNKED, 0, None
        # (4): "If a Transfer-Encoding header field is present in a response and the chunked
        # transfer coding is not the final encoding, the message body length is determined by
        # reading the connection until it is closed by the server. If [...] in a request [...]
        # the server MUST respond with the 400 (Bad Request) status code"
        if not msg.is_request:
            return Step.BODY_UNTIL_CLOSE, 0, None
        return Step.INVALID, 0, ("invalid_transfer_encoding", ", ".join(codings))
    if msg.content_lengths is not None:
        length = parse_content_length(msg.content_lengths)
        # RFC 9112 6.3 (5): "If a message is received without Transfer-Encoding and with an
        # invalid Content-Length header field, then the message framing is invalid"
        if length is None:
            return Step.INVALID, 0, ("invalid_content_length", ", ".join(msg.content_lengths))
        # (6): "If a valid Content-Length header field is present without Transfer-Encoding,
        # its decimal value defines the expected message body length in octets."
        return (Step.BODY_BY_LENGTH, length, None) if length else (Step.MESSAGE_DONE, 0, None)
    # (7): "If this is a request message and none of the above are true, then the message body
    # length is zero (no message body is present)."
    if msg.is_request:
        return Step.MESSAGE_DONE, 0, None
    # (8): "Otherwise, this is a response message without a declared message body length, so
    # the message body length is determined by the number of octets received prior to the
    # server closing the connection."
    return Step.BODY_UNTIL_CLOSE, 0, None


def parse_content_length(values: list[str]) -> int | None:
    """One decimal length, or None when invalid or conflicting.

    RFC 9110 8.6: a recipient of a list like "42, 42" "MAY either reject the message as invalid
    or replace that invalid field value with a single instance of the decimal value, as long as
    all members are identical"; we do the latter, also across repeated fields.
    """
    if len(values) == 1:
        length = parse_decimal(values[0])  # the usual case: 1*DIGIT, at most 18 digits
        if length is not None:
            return length
    members = {m.strip(" \t") for v in values for m in v.split(",")}
    if len(members) != 1:
        return None
    return parse_decimal(members.pop())


@dataclass(slots=True, eq=False)
class _Pending:
    """A request waiting for (or holding) its response."""

    method: str | None  # None when the request itself was lost in a hole
    request: HttpMessage | None = None
    request_done: bool = False
    answered: bool = False
    response: HttpMessage | None = None
    notes: tuple[str, ...] = ()
    absorbing: bool = False  # stands for requests lost in a client-side hole
    absorbed: int = 0
    absorb_notes: tuple[str, ...] = ()
    mem: int = PENDING_COST  # memory(): this entry and the messages it holds


class Http1Analyzer:
    """Sans-IO HTTP/1.x analyzer for one connection (both directions, in observed order)."""

    protocol = "http1"

    def __init__(self, limits: AnalyzerLimits | None = None,
                 counters: dict[str, int] | None = None) -> None:
        self.limits = limits or AnalyzerLimits()
        self.stopped = False
        self.dropped_pending = 0  # requests dropped past limits.max_pending
        self.interim_responses = 0  # 1xx other than 101
        self.parse_errors = 0
        # shared with the connection table (the agent's counters): every count above and in
        # the readers is also added here, as "http1_<name>", at the moment it happens
        self.shared = counters if counters is not None else {}
        for name in COUNTERS:
            self.shared.setdefault("http1_" + name, 0)
        self._client = MessageReader(True, self.limits, self, self.shared)
        self._server = MessageReader(False, self.limits, self, self.shared)
        self._awaiting: deque[_Pending] = deque()
        self._reading: _Pending | None = None  # entry of the request being read
        # responses reported as "request not seen" since the last request began: a client-side
        # hole found later (holes show when the next bytes of that direction arrive) may be
        # where their requests were, so it needs no placeholder for them
        self._unpaired_responses = 0
        self._events: list[AnalyzerEvent] = []
        self._closed = False

    # -- the analyzer contract

    def feed(self, from_client: bool, data: bytes, ts: int) -> list[AnalyzerEvent]:
        reader = self._client if from_client else self._server
        reader.feed(data, ts)
        if reader.switched_remainder:
            self._hand_over(reader.switched_remainder)
            reader.switched_remainder = b""
        return self._take_events()

    def _hand_over(self, remainder: bytes) -> None:
        """Give the bytes after the switching response to whoever parses the new protocol."""
        for i, e in enumerate(self._events):
            if type(e) is ProtocolSwitched:
                self._events[i] = ProtocolSwitched(e.to, e.ts, remainder, e.request)

    def skip(self, from_client: bool, length: int, ts: int) -> list[AnalyzerEvent]:
        if length > 0:
            (self._client if from_client else self._server).skip(length, ts)
        return self._take_events()

    def eof(self, ts: int) -> list[AnalyzerEvent]:
        if not self._closed:
            self._closed = True
            self._server.eof(ts)  # a close-delimited or cut response pairs first
            self._client.eof(ts)
            self._flush_awaiting(("no response",))
            # the readers report to nobody now (both are STOPPED): without the reader <-> sink
            # cycle the analyzer is freed as soon as it is dropped, not by the cyclic collector
            self._client.sink = self._server.sink = None
        return self._take_events()

    @property
    def ignored_bytes(self) -> int:
        """Bytes after a protocol switch or eof, which are not HTTP/1."""
        return self._client.ignored_bytes + self._server.ignored_bytes

    def memory(self) -> int:
        """Approximate bytes of state held: both readers (carried-over bytes, the message being
        read with its fields and captured body) and every request waiting for its response
        (with the messages it holds). O(pending requests), usually O(1)."""
        c, s = self._client, self._server  # MessageReader.memory() of both, inlined
        n = ANALYZER_COST + len(c._buf) + len(s._buf)
        if c._msg is not None:
            n += c._msg.mem + len(c._msg.body)
        if s._msg is not None:
            n += s._msg.mem + len(s._msg.body)
        for entry in self._awaiting:
            n += entry.mem
        reading = self._reading
        if reading is not None and reading.answered:  # answered before its body ended
            n += reading.mem
        return n

    def counters(self) -> dict[str, int]:
        return {
            "dropped_pending": self.dropped_pending,
            "interim_responses": self.interim_responses,
            "parse_errors": self.parse_errors,
            "ignored_bytes": self.ignored_bytes,
            "discarded_bytes": self._client.discarded_bytes + self._server.discarded_bytes,
            "lost_heads": self._client.lost_heads + self._server.lost_heads,
        }

    def _take_events(self) -> list[AnalyzerEvent]:
        events = self._events
        if events:
            self._events = []
        else:
            events = []
        return events

    # -- MessageSink: what the readers report

    def message_started(self, reader: MessageReader, msg: MessageBuilder) -> None:
        if reader.is_request:
            self._request_started(msg)

    def message_finished(self, reader: MessageReader, msg: MessageBuilder) -> None:
        if reader.is_request:
            self._request_finished(msg.build(), msg.cost())
        else:
            self._response_finished(msg)

    def body_framing(self, reader: MessageReader, msg: MessageBuilder) -> Framing:
        if reader.is_request:
            return request_framing(msg)
        entry = self._awaiting[0] if self._awaiting else None
        answered_method = None if entry is None or (entry.absorbing and entry.absorbed) \
            else entry.method
        return response_framing(msg, answered_method)

    def parse_error(self, reader: MessageReader, code: str, detail: str) -> None:
        self.parse_errors += 1
        self.shared["http1_parse_errors"] += 1
        self._events.append(ParseError(code, detail, reader.is_request, reader.ts))

    def sync_lost(self, reader: MessageReader, had_message: bool) -> None:
        if reader.is_request:
            self._client_sync_lost(had_message)
        else:
            self._flush_awaiting(("response lost in gap",))

    # -- pairing

    def _request_started(self, msg: MessageBuilder) -> None:
        self._unpaired_responses = 0
        tail = self._awaiting[-1] if self._awaiting else None
        if tail is not None and tail.absorbing:
            if tail.absorbed:
                self._awaiting.pop()  # its lost requests were answered; this one is new
            else:
                tail.absorbing = False  # pipelined: the lost request is answered first
        entry = _Pending(msg.method)
        self._awaiting.append(entry)
        self._reading = entry
        if len(self._awaiting) > max(1, self.limits.max_pending):
            self.dropped_pending += 1
            self.shared["http1_dropped_pending"] += 1
            oldest = self._awaiting.popleft()
            if _worth_reporting(oldest):
                self._answer(oldest, None, ("dropped: too many pending requests",))

    def _request_finished(self, request: HttpMessage, cost: int) -> None:
        entry, self._reading = self._reading, None
        if entry is None:  # cannot happen: every finished request was started
            return
        entry.request, entry.request_done = request, True
        entry.mem += cost
        if entry.answered:
            self._emit(entry)

    def _response_finished(self, msg: MessageBuilder) -> None:
        status = msg.status or 0
        # RFC 9110 15.2: "A client MUST be able to parse one or more 1xx responses received
        # prior to a final response, even if the client does not expect one."
        if 100 <= status < 200 and status != 101:
            self.interim_responses += 1
            self.shared["http1_interim_responses"] += 1
            return
        response = msg.build()
        entry = self._awaiting[0] if self._awaiting else None
        if entry is None:
            self._unpaired_responses += 1
            self._events.append(ExchangeParsed("http1", None, response,
                                               notes=("request not seen",)))
        elif entry.absorbing and entry.absorbed:
            entry.absorbed += 1
            self._events.append(ExchangeParsed("http1", None, response,
                                               notes=("request lost in gap",)))
        elif entry.absorbing:
            entry.absorbed = 1
            entry.mem += msg.cost()
            self._answer(entry, response, entry.absorb_notes)
        else:
            entry = self._awaiting.popleft()
            entry.mem += msg.cost()
            # a placeholder turned ordinary (a request followed the hole) still stands for a
            # request that was never seen
            self._answer(entry, response, entry.absorb_notes if entry.request is None else ())
        if msg.switch_to is not None:  # set only for a whole 101 / 2xx-to-CONNECT head
            self._switch(msg, entry)

    def _switch(self, msg: MessageBuilder, entry: _Pending | None) -> None:
        to = msg.switch_to
        if not to:  # 101 without Upgrade: fall back to what the client asked for
            asked = entry.request.header("upgrade") if entry and entry.request else None
            to = (asked or "unknown").split(",")[0].strip().lower()
        request = entry.request if entry is not None else None
        self._events.append(ProtocolSwitched(to, self._server.ts, request=request))
        self.stopped = True
        self._client.stop()
        self._flush_awaiting(("no response",))

    def _answer(self, entry: _Pending, response: HttpMessage | None,
                notes: tuple[str, ...]) -> None:
        entry.answered, entry.response, entry.notes = True, response, notes
        if entry.request_done:
            self._emit(entry)

    def _emit(self, entry: _Pending) -> None:
        self._events.append(ExchangeParsed("http1", entry.request, entry.response,
                                           notes=entry.notes))

    def _flush_awaiting(self, notes: tuple[str, ...]) -> None:
        while self._awaiting:
            entry = self._awaiting.popleft()
            if _worth_reporting(entry):
                self._answer(entry, None, notes)

    def _client_sync_lost(self, had_message: bool) -> None:
        tail = self._awaiting[-1] if self._awaiting else None
        if tail is not None and tail.absorbing:
            return  # already standing for lost requests
        if had_message and tail is not None and tail.request_done and not tail.answered \
                and tail.request is not None and tail.request.partial:
            tail.absorbing = True  # the cut request; more may hide in the same hole
            return
        if not had_message and self._unpaired_responses:
            self._unpaired_responses -= 1  # its response came already, as "request not seen"
            return
        self._awaiting.append(_Pending(None, request_done=True, absorbing=True,
                                       absorb_notes=("request lost in gap",)))


def _worth_reporting(entry: _Pending) -> bool:
    """False for entries already reported, or standing for a request never seen at all."""
    return not ((entry.absorbing and entry.absorbed) or (entry.request_done and not entry.request))
