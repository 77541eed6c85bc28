"""Recognises the protocol of a connection from the first bytes of a message.

detect(data) -> (protocol, sender_is_client):
  ("http1", True)   an HTTP/1 request line          ("http1", False) a status line
  ("http2", True)   the HTTP/2 client preface        ("http2", None)  plausible HTTP/2 frames
  (NEED_MORE, None) could still be either once more bytes arrive (a message split over
                    several chunks: iovecs, small writes); the caller keeps a bounded buffer
  (None, None)      not HTTP
"""
from __future__ import annotations

import re

from l7scope.protocols.http1 import looks_like_request, looks_like_response
from l7scope.protocols.http2 import PREFACE, looks_like_http2
from l7scope.protocols.http2_frames import FRAME_HEADER_LEN, MAX_FRAME_SIZE_LIMIT, plausible_header

NEED_MORE = "need_more"
MAX_PENDING = 16384  # bytes held while undecided

# a request line not yet whole: method token (M-SEARCH, UNSUBSCRIBE...), target, version
_TOKEN_PREFIX = re.compile(
    rb"[A-Z][A-Z-]{0,19}\Z|[A-Z][A-Z-]{2,19} [^ \r\n]*\Z|[A-Z][A-Z-]{2,19} [^ \r\n]+ H[TP/1.]{0,7}\Z")
# a status line not yet whole: "HTTP/1.1", " ", up to three digits
_STATUS_PREFIX = re.compile(rb"H(T(T(P(/(1(\.(\d( \d{0,3})?)?)?)?)?)?)?)?\Z")


def _could_grow_into_http(data: bytes) -> bool:
    if len(data) < 13 and _STATUS_PREFIX.match(data):
        return True
    if len(data) < 24 and PREFACE.startswith(data):
        return True
    if b"\n" not in data[:8192] and _TOKEN_PREFIX.match(data[:8192]):
        return True
    if len(data) < FRAME_HEADER_LEN:
        return True
    if plausible_header(data[:FRAME_HEADER_LEN], MAX_FRAME_SIZE_LIMIT):
        end = FRAME_HEADER_LEN + int.from_bytes(data[:3], "big")
        return len(data) < end + FRAME_HEADER_LEN  # frame or its successor not yet whole
    return False


def _one_frame_with_payload(data: bytes) -> bool:
    """Exactly one frame that carries a payload (a lone small HEADERS frame): nine plausible
    octets alone, such as a SETTINGS ACK, could be chance."""
    return len(data) > FRAME_HEADER_LEN and FRAME_HEADER_LEN + int.from_bytes(data[:3], "big") == len(data)


def detect(data: bytes) -> tuple[str | None, bool | None]:
    if data.startswith(PREFACE):
        return "http2", True
    if looks_like_request(data):
        return "http1", True
    if looks_like_response(data):
        return "http1", False
    if (len(data) >= 24 or _one_frame_with_payload(data)) and not PREFACE.startswith(data) \
            and looks_like_http2(data):
        return "http2", None
    if len(data) < MAX_PENDING and _could_grow_into_http(data):
        return NEED_MORE, None
    if looks_like_http2(data):
        return "http2", None
    return None, None
