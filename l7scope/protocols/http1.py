"""HTTP/1.x analyzer for one connection: the compiled implementation, re-exported.

The parser lives in l7scope/dataplane/ (h1.h: a sans-IO C library reading both directions of
a connection and pairing requests with responses; _h1module.c: its Python face). There is no
interpreted twin: the agent, the pcap path and the tests all run the same compiled code. Its
theory of operation is at the top of l7scope/dataplane/h1.c (pairing) and h1_reader.c (the
per-direction state table).

    Http1Analyzer(limits: AnalyzerLimits | None = None, counters: dict | None = None)
        .feed(from_client, data, ts) / .skip(from_client, length, ts) / .eof(ts)
            -> list of ExchangeParsed | ParseError | ProtocolSwitched (l7scope.protocols.message)
        .counters(), .memory(), .stopped, .ignored_bytes, .dropped_pending, .limits
    looks_like_request(data), looks_like_response(data), parse_content_length(values)
    KNOWN_METHODS; STATES, STEPS, TRANSITIONS, HANDLED_STATES (the reader's state table)
"""
from __future__ import annotations

from l7scope.dataplane import _h1
from l7scope.dataplane._h1 import (  # noqa: F401  (re-exports)
    COUNTERS, HANDLED_STATES, KNOWN_METHODS, MAX_CHUNK_LINE, MAX_SYNC_LINE, STATES, STEPS,
    TRANSITIONS, looks_like_request, looks_like_response, parse_content_length,
)


class Http1Analyzer(_h1.Http1Analyzer):
    """Sans-IO HTTP/1.x analyzer for one connection (both directions, in observed order).

    The compiled type itself; this subclass adds nothing but a class whose attributes can be
    replaced like any Python class's (tests stand in for parser bugs by patching ``feed``)."""

    __slots__ = ()

__all__ = ["Http1Analyzer", "looks_like_request", "looks_like_response", "parse_content_length",
           "KNOWN_METHODS", "COUNTERS", "STATES", "STEPS", "TRANSITIONS", "HANDLED_STATES"]
