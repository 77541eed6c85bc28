"""Recognises the protocol of a connection from the first bytes of a message.

Returns the protocol and whether the sender of those bytes is the client, when the bytes say
so (an HTTP/1 request line: client; a status line: server; the HTTP/2 preface: client; bare
HTTP/2 frames: unknown sender).
"""
from __future__ import annotations

from l7scope.protocols.http1 import looks_like_request, looks_like_response
from l7scope.protocols.http2 import PREFACE, looks_like_http2


def detect(data: bytes) -> tuple[str | None, bool | None]:
    if data.startswith(PREFACE[: len(data)]) and len(data) >= 4 and data[:4] == b"PRI ":
        return "http2", True
    if looks_like_request(data):
        return "http1", True
    if looks_like_response(data):
        return "http1", False
    if looks_like_http2(data):
        return "http2", None
    return None, None
