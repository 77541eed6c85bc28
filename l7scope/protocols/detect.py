"""Recognises the protocol of a connection from the first bytes of a message, by asking
every registered protocol (protocols/registry.py) in three rounds:

    1. the first protocol sure of the bytes         -> (protocol, sender_is_client)
    2. else any protocol that needs more bytes      -> (NEED_MORE, None)
       (only while fewer than MAX_PENDING are held: a message split over several chunks,
       iovecs or small writes; the caller keeps a bounded buffer)
    3. else the first protocol that finds them plausible (an unsure Match)
    4. else                                          -> (None, None): no protocol we know

For HTTP: ("http1", True) a request line, ("http1", False) a status line, ("http2", True) the
client preface, ("http2", None) plausible HTTP/2 frames (protocols/http/detection.py).
"""
from __future__ import annotations

from l7scope.protocols.base import NEED_MORE, Match
from l7scope.protocols import registry

MAX_PENDING = 16384  # bytes held while undecided

__all__ = ["MAX_PENDING", "NEED_MORE", "detect"]


def detect(data: bytes) -> tuple[str | None, bool | None]:
    can_wait = len(data) < MAX_PENDING
    need_more = False
    unsure: Match | None = None
    for spec in registry.PROTOCOLS:
        verdict = spec.detect(data, can_wait)
        if verdict is None:
            continue
        if verdict == NEED_MORE:
            need_more = True
        elif verdict.sure:
            return verdict.protocol, verdict.sender_is_client
        elif unsure is None:
            unsure = verdict
    if need_more:
        return NEED_MORE, None
    if unsure is not None:
        return unsure.protocol, unsure.sender_is_client
    return None, None
