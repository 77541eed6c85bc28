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

_TOKEN_PREFIX = re.compile(rb"[A-Z]{1,10}\Z|[A-Z]{3,10} [^ \r\n]*\Z|[A-Z]{3,10} [^ \r\n]+ H[TP/1.]{0,7}\Z")
_STATUS_PREFIX = b"HTTP/1."


def _could_grow_into_http(data: bytes) -> bool:
    if len(data) < len(_STATUS_PREFIX) and _STATUS_PREFIX.startswith(data):
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


def detect(data: bytes) -> tuple[str | None, bool | None]:
    if data.startswith(PREFACE):
        return "http2", True
    if looks_like_request(data):
        return "http1", True
    if looks_like_response(data):
        return "http1", False
    if len(data) >= 24 and looks_like_http2(data):
        return "http2", None
    if len(data) < MAX_PENDING and _could_grow_into_http(data):
        return NEED_MORE, None
    if looks_like_http2(data):
        return "http2", None
    return None, None
