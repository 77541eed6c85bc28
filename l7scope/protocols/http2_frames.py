"""HTTP/2 frame splitter for one direction of a connection (RFC 9113 section 4).

The splitter is compiled code: l7scope/dataplane/h2frames.c (the state table, its theory of
operation and the RFC text beside each check) behind l7scope/dataplane/_h2frames (the CPython
face). This module names it for the analyzers and holds the protocol's constants; it has no
parsing of its own.

``FrameSplitter(expect_preface, in_sync, payload_cap, data_capture, scan_cap=65536,
resync_limit=DEFAULT_RESYNC_LIMIT)``: ``feed(data, ts)``, ``skip(length, ts)`` (a capture
hole) and ``finish(ts)`` return the list of events of that call, in order:

- ``Frame(type, flags, stream_id, length, payload, ts_start, ts_end, damaged, truncated)``:
  a whole frame; ``payload`` is whole unless ``damaged`` (a hole hit it) or ``truncated``
  (beyond ``payload_cap``); a DATA payload is kept up to ``data_capture`` octets only, its
  ``length`` stays exact.
- ``FramingLost(reason, ts)``: the frame boundaries were lost (hole outside a payload, bad
  preface, a header no conforming peer sends, or giving up after ``resync_limit`` octets
  without a frame header: then ``abandoned`` is set and later bytes are ignored).
- ``FramingResumed(skipped, ts)``: a confirmed plausible frame header after ``skipped``
  discarded octets.

Attributes: ``state``, ``abandoned``, ``max_frame_size`` (settable: the peer's
SETTINGS_MAX_FRAME_SIZE), ``scan_dropped``, ``header_checks``; ``memory()`` is the octets held.
"""
from __future__ import annotations

from l7scope.dataplane._h2frames import (
    DEFAULT_RESYNC_LIMIT, NOT_CONFORMING_PENALTY, Frame, FrameSplitter, FramingLost,
    FramingResumed, conforming_header, find_plausible_header, looks_like_http2, plausible_header,
)

__all__ = ["Frame", "FrameSplitter", "FramingLost", "FramingResumed", "SplitterEvent",
           "conforming_header", "find_plausible_header", "looks_like_http2", "plausible_header",
           "DEFAULT_RESYNC_LIMIT", "NOT_CONFORMING_PENALTY", "PREFACE", "FRAME_HEADER_LEN"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_LEN = 9
DEFAULT_MAX_FRAME_SIZE = 16384  # RFC 9113 6.5.2 SETTINGS_MAX_FRAME_SIZE initial value
MAX_FRAME_SIZE_LIMIT = (1 << 24) - 1

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0, 1, 2, 3, 4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 5, 6, 7, 8, 9
FRAME_NAMES = ("DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION")

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

GIVE_UP_REASON = "gave up: too many octets without a frame header"

SplitterEvent = Frame | FramingLost | FramingResumed
