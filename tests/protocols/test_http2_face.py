"""The Python face of the compiled HTTP/2 analyzer (l7scope/dataplane/_h2module.c): what it does
with values no capture produces (timestamps past 64 bits, wrong types) and its Python surface."""
from __future__ import annotations

import hpack
import pytest

from l7scope.protocols.base import UpgradeTarget
from l7scope.protocols.http2 import PREFACE, Http2Analyzer
from l7scope.protocols.message import AnalyzerLimits, ExchangeParsed, HttpMessage


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + \
        payload


REQUEST = frame(1, 0x5, 1, hpack.Encoder().encode(
    [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")]))
RESPONSE = frame(1, 0x5, 1, hpack.Encoder().encode([(":status", "204")]))


def test_timestamps_beyond_64_bits_are_clamped_not_refused():
    analyzer = Http2Analyzer()
    assert analyzer.feed(True, PREFACE + REQUEST, -(2**70)) == []
    (exchange,) = analyzer.feed(False, RESPONSE, 2**70)
    assert (exchange.request.start_ns, exchange.response.end_ns) == (-(2**63), 2**63 - 1)
    assert exchange.response.status == 204 and exchange.response.notes == ()


def test_wrong_types_raise_and_leave_the_analyzer_usable():
    analyzer = Http2Analyzer()
    with pytest.raises(TypeError):
        analyzer.feed(True, "not bytes", 1)
    with pytest.raises(TypeError):
        analyzer.feed(True, PREFACE, None)
    with pytest.raises(TypeError):
        analyzer.skip(True, "7", 1)
    with pytest.raises(TypeError):
        Http2Analyzer(counters=[])
    bad = HttpMessage(is_request=True, start_ns=1, end_ns=2, wire_bytes=3,
                      headers=(("x-a", 5),), method="GET", path="/")
    with pytest.raises(TypeError):
        analyzer.upgraded_from(bad)
    assert analyzer.feed(True, PREFACE + REQUEST, 1) == []
    (exchange,) = analyzer.feed(False, RESPONSE, 2)
    assert type(exchange) is ExchangeParsed and exchange.request.path == "/"


def test_surface_the_connection_table_uses():
    limits = AnalyzerLimits(max_pending=2)
    analyzer = Http2Analyzer(limits, seen_from_start=False, counters={})
    assert isinstance(analyzer, UpgradeTarget) and analyzer.protocol == "http2"
    assert analyzer.limits is limits and analyzer.dropped_streams == 0
    assert not analyzer.abandoned and analyzer.memory() == 4096
    assert analyzer.counters() == dict.fromkeys(
        ("dropped_streams", "streams_shed_memory", "streams_without_headers", "hpack_resets",
         "hpack_unknown_headers", "hpack_table_size_clamped", "header_lists_truncated",
         "resync_abandoned"), 0)
    assert Http2Analyzer().limits == AnalyzerLimits()
