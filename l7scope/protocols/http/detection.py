"""HTTP/1.x and HTTP/2 detection from the first bytes of a message.

Each detector answers for its own protocol (protocols/base.py, ``Verdict``):

    http1   Match("http1", True)   an HTTP/1 request line of a known method
            Match("http1", False)  a status line
            NEED_MORE              a start line not yet whole (a message split over small
                                   writes or iovecs), when the caller can still wait
    http2   Match("http2", True)   the client connection preface (RFC 9113 3.4)
            Match("http2", None)   plausible frames: 24 octets or more, or exactly one frame
                                   that carries a payload (nine plausible octets alone, a
                                   SETTINGS ACK, could be chance)
            NEED_MORE              a preface or frame not yet whole, when the caller can wait
            Match("http2", None, sure=False)   plausible frames that can grow no more: taken
                                   only when no protocol is sure and none needs more

``can_wait`` is False once the caller holds as much as it will (detect.MAX_PENDING).
"""
from __future__ import annotations

import re

from l7scope.protocols.base import NEED_MORE, Match, Verdict
from l7scope.protocols.http1 import looks_like_request, looks_like_response
from l7scope.protocols.http2 import PREFACE, looks_like_http2
from l7scope.protocols.http2_frames import FRAME_HEADER_LEN, MAX_FRAME_SIZE_LIMIT, plausible_header

SCAN = 8192  # bytes searched for the end of a start line not yet whole

# a request line not yet whole: method token (M-SEARCH, UNSUBSCRIBE...), target, version
_TOKEN_PREFIX = re.compile(rb"[A-Z][A-Z-]{0,19}\Z"
                           rb"|[A-Z][A-Z-]{2,19} [^ \r\n]*\Z"
                           rb"|[A-Z][A-Z-]{2,19} [^ \r\n]+ H[TP/1.]{0,7}\Z")
# a status line not yet whole: "HTTP/1.1", " ", up to three digits
_STATUS_PREFIX = re.compile(rb"H(T(T(P(/(1(\.(\d( \d{0,3})?)?)?)?)?)?)?)?\Z")

REQUEST, RESPONSE = Match("http1", True), Match("http1", False)
H2_CLIENT, H2_FRAMES = Match("http2", True), Match("http2", None)
H2_FRAMES_UNSURE = Match("http2", None, sure=False)


def detect_http1(data: bytes, can_wait: bool) -> Verdict:
    if looks_like_request(data):
        return REQUEST
    if looks_like_response(data):
        return RESPONSE
    if can_wait and _http1_could_grow(data):
        return NEED_MORE
    return None


def _http1_could_grow(data: bytes) -> bool:
    if len(data) < 13 and _STATUS_PREFIX.match(data):
        return True
    return b"\n" not in data[:SCAN] and _TOKEN_PREFIX.match(data[:SCAN]) is not None


def detect_http2(data: bytes, can_wait: bool) -> Verdict:
    if data.startswith(PREFACE):
        return H2_CLIENT
    if (len(data) >= 24 or _one_frame_with_payload(data)) and not PREFACE.startswith(data) \
            and looks_like_http2(data):
        return H2_FRAMES
    if can_wait and _http2_could_grow(data):
        return NEED_MORE
    return H2_FRAMES_UNSURE if looks_like_http2(data) else None


def _http2_could_grow(data: bytes) -> bool:
    if len(data) < 24 and PREFACE.startswith(data):
        return True
    if len(data) < FRAME_HEADER_LEN:
        return True
    if plausible_header(data[:FRAME_HEADER_LEN], MAX_FRAME_SIZE_LIMIT):
        end = FRAME_HEADER_LEN + int.from_bytes(data[:3], "big")
        return len(data) < end + FRAME_HEADER_LEN  # frame or its successor not yet whole
    return False


def _one_frame_with_payload(data: bytes) -> bool:
    """Exactly one frame that carries a payload (a lone small HEADERS frame)."""
    return len(data) > FRAME_HEADER_LEN and \
        FRAME_HEADER_LEN + int.from_bytes(data[:3], "big") == len(data)
