"""The HTTP/2 frame splitter as it was written in Python: the reference the compiled one
(l7scope/dataplane/h2frames.c) is proven equal to by test_h2frames_differential.py. Test code
only; the product uses the compiled splitter.

HTTP/2 frame splitter for one direction of a connection (RFC 9113 section 4), sans-IO.

Theory of operation
-------------------
A direction's byte stream is the optional client connection preface followed by frames, each a
9-octet header (24-bit length, 8-bit type, 8-bit flags, 1 reserved bit + 31-bit stream id) and
``length`` octets of payload. The splitter is a table-driven state machine:

    PREFACE  --preface matched-->  HEADER        (client direction of a connection seen from start)
    HEADER   --9 octets-->         PAYLOAD       (or HEADER again for an empty payload)
    PAYLOAD  --payload done-->     HEADER
    RESYNC   --plausible header--> HEADER        (connection seen mid-way, or after a hole)
    any      --hole outside a DATA payload / bad preface-->  RESYNC

Frames are emitted whole (``Frame``), with their payload buffered up to a bound: a DATA
payload is never buffered beyond the body prefix the analyzer keeps (its length is counted
exactly), other payloads up to ``payload_cap`` (beyond that the frame is marked ``truncated``).

A hole (``skip``) inside a DATA payload only shortens the captured prefix: sizes stay exact. A
hole inside another payload marks that frame ``damaged`` (for a header block: the HPACK
decoder must be told). A hole anywhere else loses the frame boundaries: the splitter emits
``FramingLost`` and scans for a plausible frame header (``plausible_header``: known type, flags
defined for the type, reserved bit clear, stream id and length rules of the type, length within
the maximum frame size), confirmed by the next header when it is already buffered. The scan
buffer is bounded; bytes dropped while scanning are counted.

While in sync, a frame header that no conforming peer sends (``conforming_header``: the stream
id and fixed-length rules of its type; unknown types and flags are allowed, RFC 9113 5.5 and
4.1) means the boundaries are lost too: the splitter emits ``FramingLost`` and scans from the
octet after the header's first one.

The scan is linear: a regular expression (C speed) finds the positions whose octets can begin
a plausible header (length within the maximum frame size, known type with its defined flags,
reserved bit clear, stream id zero or not as the type demands), and ``plausible_header`` checks
only those. A cursor remembers how far the buffer has been examined, so every octet is examined
once, plus once more per feed for the one candidate waiting for its confirmation. Scanning is
bounded too: after ``resync_limit`` octets discarded while unsynchronised (a direction's whole
life; each non-conforming header is charged NOT_CONFORMING_PENALTY more), the splitter gives up (state ABANDONED, ``abandoned`` set, one last ``FramingLost``) and
ignores everything after.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_LEN = 9
DEFAULT_MAX_FRAME_SIZE = 16384  # RFC 9113 6.5.2 SETTINGS_MAX_FRAME_SIZE initial value
MAX_FRAME_SIZE_LIMIT = (1 << 24) - 1
LENIENT_FRAME_SIZE = 1 << 20  # frame length accepted on a connection picked up mid-way

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0, 1, 2, 3, 4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 5, 6, 7, 8, 9
FRAME_NAMES = ("DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION")

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

# Flags defined per frame type (RFC 9113 section 6); used only to judge plausibility.
DEFINED_FLAGS = {DATA: 0x09, HEADERS: 0x2D, PRIORITY: 0, RST_STREAM: 0, SETTINGS: 0x01,
                 PUSH_PROMISE: 0x0C, PING: 0x01, GOAWAY: 0, WINDOW_UPDATE: 0, CONTINUATION: 0x04}
# "DATA frames MUST be associated with a stream" (6.1), likewise 6.2, 6.3, 6.4, 6.6, 6.10;
# "The stream identifier for a SETTINGS frame MUST be zero (0x00)" (6.5), likewise 6.7, 6.8.
STREAM_REQUIRED = frozenset({DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION})
STREAM_ZERO = frozenset({SETTINGS, PING, GOAWAY})
FIXED_LENGTH = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame; ``payload`` is whole unless ``damaged``/``truncated`` (DATA: a prefix)."""

    type: int
    flags: int
    stream_id: int
    length: int  # payload length from the frame header (wire size is 9 + length)
    payload: bytes
    ts_start: int  # ts of the feed that carried the first header octet
    ts_end: int  # ts of the feed that carried the last octet
    damaged: bool = False  # a hole hit the payload
    truncated: bool = False  # payload larger than the buffer bound; only a prefix kept


@dataclass(frozen=True, slots=True)
class FramingLost:
    """Frame boundaries were lost (hole, bad preface, implausible bytes); scanning resumed."""

    reason: str
    ts: int


@dataclass(frozen=True, slots=True)
class FramingResumed:
    """A plausible frame header was found after ``skipped`` octets that were discarded."""

    skipped: int
    ts: int


SplitterEvent = Frame | FramingLost | FramingResumed


def parse_header(header: bytes) -> tuple[int, int, int, int]:
    """(length, type, flags, stream id) of a 9-octet frame header, reserved bit dropped."""
    length = int.from_bytes(header[0:3], "big")
    stream_id = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
    return length, header[3], header[4], stream_id


def plausible_header(header: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bool:
    """Whether 9 octets look like a frame header a conforming peer would send."""
    length, ftype, flags, stream_id = parse_header(header)
    if ftype not in DEFINED_FLAGS or flags & ~DEFINED_FLAGS[ftype] or header[5] & 0x80:
        return False
    if length > max_frame_size:
        return False
    return _type_rules_hold(length, ftype, flags, stream_id)


def conforming_header(header: bytes) -> bool:
    """Whether a frame header read in sync keeps the rules of its type (any length, any type).

    RFC 9113 5.5: "Implementations MUST ignore unknown or unsupported values in all extensible
    protocol elements", 4.1: "Flags that have no defined semantics for a particular frame type
    MUST be ignored"; but a DATA frame on stream 0, a SETTINGS frame on a stream, a PING that
    is not 8 octets... are connection errors no peer sends: the octets are not frames.
    """
    length, ftype, flags, stream_id = parse_header(header)
    if ftype not in DEFINED_FLAGS:
        return True
    return _type_rules_hold(length, ftype, flags, stream_id)


def _type_rules_hold(length: int, ftype: int, flags: int, stream_id: int) -> bool:
    if ftype in STREAM_REQUIRED and stream_id == 0:
        return False
    if ftype in STREAM_ZERO and stream_id != 0:
        return False
    if FIXED_LENGTH.get(ftype, length) != length:
        return False
    if ftype == SETTINGS:
        return length % 6 == 0 and not (flags & FLAG_ACK and length)
    if ftype == GOAWAY:
        return length >= 8
    return True


def _flag_class(ftype: int) -> bytes:
    defined = DEFINED_FLAGS[ftype]
    return b"[" + b"".join(b"\\x%02x" % f for f in range(256) if not f & ~defined) + b"]"


def _candidate_pattern(max_frame_size: int) -> re.Pattern:
    """Positions whose octets may begin a plausible header (a superset; cached per bound)."""
    bound = min(max_frame_size, MAX_FRAME_SIZE_LIMIT)
    key = (bound >> 16, (bound >> 8) & 0xFF if bound < 1 << 16 else 0xFF)
    pattern = _PATTERNS.get(key)
    if pattern is None:
        types = []
        for ftype in DEFINED_FLAGS:
            if ftype in STREAM_ZERO:
                stream = rb"\x00\x00\x00\x00"
            elif ftype in STREAM_REQUIRED:
                stream = rb"(?!\x00\x00\x00\x00)[\x00-\x7f][\s\S]{3}"
            else:
                stream = rb"[\x00-\x7f][\s\S]{3}"
            types.append(b"\\x%02x" % ftype + _flag_class(ftype) + stream)
        head = b"[\\x00-\\x%02x][\\x00-\\x%02x][\\s\\S]" % key
        pattern = re.compile(b"(?=" + head + b"(?:" + b"|".join(types) + b"))", re.DOTALL)
        _PATTERNS[key] = pattern
    return pattern


_PATTERNS: dict[tuple[int, int], re.Pattern] = {}


def find_plausible_header(buf: bytes, max_frame_size: int, final: bool,
                          start: int = 0) -> int | None:
    """Offset of the first plausible frame header confirmed by what follows, else None.

    A candidate is confirmed when the next frame header is buffered and plausible too, or when
    its frame ends exactly at the end of the buffer. When the buffer ends before the candidate
    can be confirmed, the scan stops there (returns None) unless ``final``. ``start``: the
    offset to scan from. Linear: the candidates come from ``_candidate_pattern``.
    """
    at = _scan_buffer(buf, max_frame_size, final, start)[0]
    return at if at is not None and at >= 0 else None


def _scan_buffer(buf, max_frame_size: int, final: bool, start: int) -> tuple[int | None, int]:
    """(confirmed offset or None, offset the next scan of this buffer may start from)."""
    end = len(buf)
    search = _candidate_pattern(max_frame_size).search
    pos = start
    while True:
        match = search(buf, pos, end)
        if match is None:
            return None, max(pos, end - FRAME_HEADER_LEN + 1)
        pos = match.start()
        if not plausible_header(buf[pos:pos + FRAME_HEADER_LEN], max_frame_size):
            pos += 1
            continue
        nxt = pos + FRAME_HEADER_LEN + int.from_bytes(buf[pos:pos + 3], "big")
        if nxt == end:
            return pos, pos
        if nxt + FRAME_HEADER_LEN <= end:
            if plausible_header(buf[nxt:nxt + FRAME_HEADER_LEN], max_frame_size):
                return pos, pos
            pos += 1
            continue
        return (pos if final else None), pos


# State machine of the splitter: (state, input) -> next state. A missing pair is a bug.
PREFACE_STATE, HEADER_STATE, PAYLOAD_STATE, RESYNC_STATE = "preface", "header", "payload", "resync"
ABANDONED_STATE = "abandoned"
TRANSITIONS = {
    (PREFACE_STATE, "preface_matched"): HEADER_STATE,
    (PREFACE_STATE, "preface_mismatch"): RESYNC_STATE,
    (PREFACE_STATE, "hole"): RESYNC_STATE,
    (HEADER_STATE, "header_with_payload"): PAYLOAD_STATE,
    (HEADER_STATE, "header_empty_payload"): HEADER_STATE,
    (HEADER_STATE, "hole"): RESYNC_STATE,
    (HEADER_STATE, "header_not_conforming"): RESYNC_STATE,
    (PAYLOAD_STATE, "payload_done"): HEADER_STATE,
    (PAYLOAD_STATE, "hole_in_payload"): PAYLOAD_STATE,
    (PAYLOAD_STATE, "hole_past_payload"): RESYNC_STATE,
    (RESYNC_STATE, "header_found"): HEADER_STATE,
    (RESYNC_STATE, "preface_found"): HEADER_STATE,
    (RESYNC_STATE, "hole"): RESYNC_STATE,
    (RESYNC_STATE, "resync_limit"): ABANDONED_STATE,
    (ABANDONED_STATE, "hole"): ABANDONED_STATE,
}
DEFAULT_RESYNC_LIMIT = 256 * 1024  # octets discarded while unsynchronised before giving up
# Charged to the resync limit for each header no conforming peer sends, so that garbage made
# of short runs of plausible frames gives up after at most 256 such headers.
NOT_CONFORMING_PENALTY = 1024
GIVE_UP_REASON = "gave up: too many octets without a frame header"


class FrameSplitter:
    """Splits one direction's bytes into frames (module docstring)."""

    def __init__(self, expect_preface: bool, in_sync: bool, payload_cap: int,
                 data_capture: int, scan_cap: int = 64 * 1024,
                 resync_limit: int = DEFAULT_RESYNC_LIMIT) -> None:
        if expect_preface:
            self.state = PREFACE_STATE
        else:
            self.state = HEADER_STATE if in_sync else RESYNC_STATE
        self.max_frame_size = DEFAULT_MAX_FRAME_SIZE  # raised by the peer's SETTINGS
        # seen from its start, the receiver's SETTINGS_MAX_FRAME_SIZE is known; picked up
        # mid-way it may have been raised before we looked, so only absurd lengths are refused
        self._size_known = in_sync or expect_preface
        self.payload_cap = payload_cap
        self.data_capture = data_capture
        self.scan_cap = scan_cap
        self.resync_limit = resync_limit
        self.scan_dropped = 0  # octets discarded while looking for a frame header
        self._resync_charge = 0  # scan_dropped + penalties, against resync_limit
        self._pending = bytearray()  # partial preface / frame header
        self._scan = bytearray()
        self._scan_pos = 0  # octets of _scan before this offset were examined and rejected
        self._ts_start = 0
        self._frame: tuple[int, int, int, int] | None = None  # length, type, flags, stream id
        self._remaining = 0
        self._payload = bytearray()
        self._keep = 0  # payload octets to keep for the current frame
        self._damaged = False

    @property
    def abandoned(self) -> bool:
        """True once the splitter gave up (resync_limit octets without a frame header)."""
        return self.state == ABANDONED_STATE

    def memory(self) -> int:
        """Octets buffered: partial header, scan buffer, payload being kept."""
        return len(self._pending) + len(self._scan) + len(self._payload)

    def _length_bound(self) -> int:
        """RFC 9113 4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame
        exceeds the size defined in SETTINGS_MAX_FRAME_SIZE": no conforming peer sends one."""
        if self._size_known:
            return self.max_frame_size
        return max(self.max_frame_size, LENIENT_FRAME_SIZE)

    def _go(self, event: str) -> None:
        self.state = TRANSITIONS[(self.state, event)]

    def feed(self, data: bytes, ts: int) -> list[SplitterEvent]:
        out: list[SplitterEvent] = []
        if self.state != ABANDONED_STATE:
            self._run(bytes(data), ts, out)
        return out

    def _run(self, data: bytes, ts: int, out: list) -> None:
        pos = 0
        while pos < len(data):
            if self.state == ABANDONED_STATE:
                return
            if self.state == HEADER_STATE:
                pos = self._read_header(data, pos, ts, out)
            elif self.state == PAYLOAD_STATE:
                pos = self._read_payload(data, pos, ts, out)
            elif self.state == PREFACE_STATE:
                pos = self._read_preface(data, pos, ts, out)
            else:
                rest = self._scan_for_header(data[pos:], ts, out, final=False)
                if rest is None:
                    return
                data, pos = rest, 0

    def _read_preface(self, data: bytes, pos: int, ts: int, out: list) -> int:
        expected = PREFACE[len(self._pending):]
        chunk = data[pos:pos + len(expected)]
        if chunk != expected[:len(chunk)]:
            # RFC 9113 3.4: "the connection preface starts with the string
            # PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" - anything else is not (this part of) HTTP/2.
            self._pending.clear()
            out.append(FramingLost("bad connection preface", ts))
            self._go("preface_mismatch")
            return pos
        self._pending += chunk
        if len(self._pending) == len(PREFACE):
            self._pending.clear()
            self._go("preface_matched")
        return pos + len(chunk)

    def _read_header(self, data: bytes, pos: int, ts: int, out: list) -> int:
        if not self._pending:
            self._ts_start = ts
        take = min(FRAME_HEADER_LEN - len(self._pending), len(data) - pos)
        self._pending += data[pos:pos + take]
        if len(self._pending) < FRAME_HEADER_LEN:
            return pos + take
        header = parse_header(self._pending)
        if header[0] > self._length_bound() or \
                (header[1] in DEFINED_FLAGS and not _type_rules_hold(*header)):  # conforming_header
            self._scan = self._pending[1:]  # the frame may start at any later octet
            self._scan_pos = 0
            self._pending = bytearray()
            out.append(FramingLost("frame header no conforming peer sends", ts))
            self._go("header_not_conforming")
            self._count_dropped(1, ts, out, penalty=NOT_CONFORMING_PENALTY)
            return pos + take
        self._start_frame(header)
        self._pending.clear()
        if self._remaining:
            self._go("header_with_payload")
        else:
            out.append(self._finish_frame(ts))
            self._go("header_empty_payload")
        return pos + take

    def _start_frame(self, header: tuple[int, int, int, int]) -> None:
        length, ftype = header[0], header[1]
        self._frame = header
        self._remaining = length
        self._payload = bytearray()
        self._damaged = False
        if ftype == DATA:
            self._keep = min(length, self.data_capture)
        elif ftype in DEFINED_FLAGS:
            self._keep = min(length, self.payload_cap)
        else:
            self._keep = 0  # RFC 9113 5.5: "Implementations MUST ignore ... frames of unknown types"

    def _read_payload(self, data: bytes, pos: int, ts: int, out: list) -> int:
        take = min(self._remaining, len(data) - pos)
        room = self._keep - len(self._payload)
        if room > 0 and not self._damaged:
            self._payload += data[pos:pos + min(take, room)]
        self._remaining -= take
        if not self._remaining:
            out.append(self._finish_frame(ts))
            self._go("payload_done")
        return pos + take

    def _finish_frame(self, ts: int) -> Frame:
        length, ftype, flags, stream_id = self._frame  # type: ignore[misc]
        self._frame = None
        truncated = ftype != DATA and ftype in DEFINED_FLAGS and length > self._keep
        payload, self._payload = bytes(self._payload), bytearray()  # nothing kept between frames
        return Frame(ftype, flags, stream_id, length, payload, self._ts_start, ts,
                     damaged=self._damaged, truncated=truncated)

    def _scan_for_header(self, data: bytes, ts: int, out: list, final: bool) -> bytes | None:
        """Buffer octets while lost; return the octets from a confirmed frame start, or None."""
        self._scan += data
        if len(self._scan) > self.scan_cap:
            final = True  # cannot wait any longer for a candidate to be confirmed
        if self._scan.startswith(PREFACE):
            start = 0
            del self._scan[:len(PREFACE)]
        elif not self._scan_pos and PREFACE.startswith(self._scan) and not final:
            return None  # maybe the preface of a connection that is new after all
        else:
            start, self._scan_pos = _scan_buffer(self._scan, self.max_frame_size, final, self._scan_pos)
        if start is None:
            self._drop_scanned(ts, out)
            return None
        rest = bytes(self._scan[start:])
        self._count_dropped(start, ts, out)
        if self.state == ABANDONED_STATE:
            return None
        out.append(FramingResumed(start, ts))
        self._scan.clear()
        self._scan_pos = 0
        self._go("header_found")
        return rest

    def _drop_scanned(self, ts: int, out: list) -> None:
        """Discard the octets examined and rejected (a waiting candidate stays buffered)."""
        dropped = self._scan_pos
        del self._scan[:dropped]
        self._scan_pos = 0
        self._count_dropped(dropped, ts, out)

    def _count_dropped(self, dropped: int, ts: int, out: list, penalty: int = 0) -> None:
        self.scan_dropped += dropped
        self._resync_charge += dropped + penalty
        if self._resync_charge > self.resync_limit:
            self._scan = bytearray()
            self._scan_pos = 0
            out.append(FramingLost(GIVE_UP_REASON, ts))
            self._go("resync_limit")

    def skip(self, length: int, ts: int) -> list[SplitterEvent]:
        """A hole of ``length`` octets (lost by the capture) in this direction."""
        out: list[SplitterEvent] = []
        if self.state == RESYNC_STATE and self._scan:
            rest = self._scan_for_header(b"", ts, out, final=True)
            if rest is not None:
                self._run(rest, ts, out)
        if self.state == ABANDONED_STATE:
            return out
        if self.state == PAYLOAD_STATE and not self._skip_payload(length, ts, out):
            return out
        self._pending.clear()
        self._scan.clear()
        self._scan_pos = 0
        self._frame = None
        out.append(FramingLost("capture gap outside a frame payload", ts))
        self._go("hole_past_payload" if self.state == PAYLOAD_STATE else "hole")
        return out

    def _skip_payload(self, length: int, ts: int, out: list) -> int:
        """Consume a hole inside the current payload; returns the part of it beyond the frame."""
        self._damaged = True  # DATA: the captured prefix stops here; others: payload unusable
        take = min(length, self._remaining)
        self._remaining -= take
        if self._remaining:
            self._go("hole_in_payload")
            return 0
        out.append(self._finish_frame(ts))
        if take == length:
            self._go("payload_done")
            return 0
        return length - take  # the hole goes on past the frame: boundaries are lost

    def finish(self, ts: int) -> list[SplitterEvent]:
        """End of the direction: frames still waiting for confirmation are taken as they are."""
        out: list[SplitterEvent] = []
        if self.state == RESYNC_STATE and self._scan:
            rest = self._scan_for_header(b"", ts, out, final=True)
            if rest is not None:
                self._run(rest, ts, out)
        return out


def looks_like_http2(data: bytes) -> bool:
    """Whether a chunk seen first on a connection starts HTTP/2: the client preface, or a
    plausible frame header whose length agrees with the chunk (a DATA frame may continue past
    it) and whose successor, when present, is plausible too."""
    if data.startswith(PREFACE) or (len(data) >= 3 and PREFACE.startswith(data)):
        return True
    if len(data) < FRAME_HEADER_LEN:
        return False
    header = data[:FRAME_HEADER_LEN]
    if not plausible_header(header, MAX_FRAME_SIZE_LIMIT):
        return False
    length, ftype = int.from_bytes(header[0:3], "big"), header[3]
    end = FRAME_HEADER_LEN + length
    if end == len(data):
        return True
    if end > len(data):
        return ftype == DATA
    if end + FRAME_HEADER_LEN <= len(data):
        return plausible_header(data[end:end + FRAME_HEADER_LEN], MAX_FRAME_SIZE_LIMIT)
    return False
