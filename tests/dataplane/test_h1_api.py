"""The compiled Http1Analyzer's Python face: event types, shared counters, memory()."""
from __future__ import annotations

import pytest

from l7scope.protocols.http1 import Http1Analyzer, parse_content_length
from l7scope.protocols.message import (
    AnalyzerLimits, ExchangeParsed, HttpMessage, ParseError, ProtocolSwitched,
)

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: h:1\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def test_events_are_the_shared_python_types_and_compare_with_hand_built_ones():
    a = Http1Analyzer()
    assert a.feed(True, GET, 5) == []
    (ex,) = a.feed(False, memoryview(OK), 7)  # any bytes-like object
    assert type(ex) is ExchangeParsed and type(ex.request) is HttpMessage
    assert ex == ExchangeParsed("http1", HttpMessage(
        True, 5, 5, len(GET), (("Host", "h:1"),), "GET", "/a?b=1", "h:1", None, "HTTP/1.1"),
        HttpMessage(False, 7, 7, len(OK), (("Content-Length", "2"),), status=200,
                    version="HTTP/1.1", body=b"hi", body_len=2))
    with pytest.raises(AttributeError):
        ex.notes = ("x",)  # frozen like any ExchangeParsed
    (err,) = a.feed(True, b"\x00junk\r\n", 9)
    assert type(err) is ParseError and (err.code, err.from_client, err.ts) == (
        "bad_request_line", True, 9)
    assert err.detail == repr("\x00junk")  # the line as text, as it always read
    assert a.protocol == "http1" and a.limits == AnalyzerLimits()


def test_protocol_switched_carries_remainder_and_request():
    a = Http1Analyzer()
    a.feed(True, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", 1)
    ex, sw = a.feed(False, b"HTTP/1.1 101 S\r\nUpgrade: H2C, x\r\n\r\n\x00\x00\x00", 2)
    assert type(sw) is ProtocolSwitched and (sw.to, sw.ts, sw.remainder) == ("h2c", 2, b"\0\0\0")
    assert sw.request == ex.request and a.stopped and a.ignored_bytes == 0


def test_shared_counters_move_when_the_event_happens():
    shared: dict[str, int] = {"other": 3}
    a, b = Http1Analyzer(counters=shared), Http1Analyzer(counters=shared)
    assert shared == {"other": 3, "http1_dropped_pending": 0, "http1_interim_responses": 0,
                      "http1_parse_errors": 0, "http1_ignored_bytes": 0,
                      "http1_discarded_bytes": 0, "http1_lost_heads": 0}
    a.feed(True, b"\x00junk\r\n", 1)
    assert (shared["http1_parse_errors"], shared["http1_discarded_bytes"]) == (1, 7)
    b.feed(False, b"HTTP/1.1 100 Continue\r\n\r\n", 2)
    b.feed(True, b"zz\r\n", 3)
    assert (shared["http1_parse_errors"], shared["http1_interim_responses"]) == (2, 1)
    assert a.counters()["parse_errors"] == 1 and b.counters()["interim_responses"] == 1
    limited = Http1Analyzer(AnalyzerLimits(max_pending=1), counters=shared)
    limited.feed(True, GET * 3, 4)
    assert shared["http1_dropped_pending"] == 2 == limited.dropped_pending
    a.eof(5)
    assert shared["http1_parse_errors"] == 2  # nothing counted twice at eof


def test_memory_follows_what_is_held():
    a = Http1Analyzer()
    idle = a.memory()
    assert 0 < idle < 4096
    a.feed(True, b"POST /p HTTP/1.1\r\nX-Pad: " + b"p" * 20_000, 1)  # an incomplete head
    buffered = a.memory()
    assert buffered >= idle + 20_000
    a.feed(True, b"\r\nContent-Length: 5000\r\n\r\n" + b"b" * 5000, 2)
    # the carried bytes are gone; the request waits with its head text and 4096 body bytes
    assert idle + 20_000 + 4096 < a.memory() < buffered + 4096 + 1024
    a.feed(False, OK, 3)
    assert a.memory() == idle  # answered: everything released, fixed part only


def test_hostile_arguments_are_type_errors_not_crashes():
    a = Http1Analyzer()
    with pytest.raises(TypeError):
        a.feed(True, "text", 1)
    with pytest.raises(TypeError):
        a.feed(True, b"x")
    assert a.skip(True, 0, 1) == [] and a.skip(False, -5, 1) == []
    assert a.skip(True, 2 ** 80, 2) == []  # an endless hole loses nothing but the framing
    assert a.feed(True, GET, 3) == []
    (ex,) = a.eof(4)
    assert ex.request.path == "/a?b=1" and ex.notes == ("no response",)


def test_parse_content_length():
    assert parse_content_length(["42"]) == 42
    assert parse_content_length(["42, 42", " 42"]) == 42
    assert parse_content_length(["42", "43"]) is None
    assert parse_content_length(["1" * 19]) is None
    assert parse_content_length(["\u0663"]) is None  # a non-ASCII digit is not a length
    assert parse_content_length(["+5"]) is None


def test_holes_between_requests_never_grow_the_queue_past_max_pending():
    a = Http1Analyzer(AnalyzerLimits(max_pending=2))
    idle, dropped = a.memory(), []
    for i in range(1000):  # a client-side hole (a lost request), then a request: no responses
        a.skip(True, 5, i)
        dropped += a.feed(True, b"GET /%d HTTP/1.1\r\n\r\n" % i, i)
        assert a.memory() < idle + 2048
    # each round pushes out the previous request (reported) and its placeholder (not: it
    # stands for a request never seen); both counted
    assert [e.request.path for e in dropped] == [f"/{i}" for i in range(999)]
    assert {e.notes for e in dropped} == {("dropped: too many pending requests",)}
    assert a.dropped_pending == 1998
    assert [(e.request.path, e.notes) for e in a.eof(10_000)] == [("/999", ("no response",))]


def test_reentrant_calls_from_finalizers_are_refused_not_unsafe():
    import gc

    a = Http1Analyzer()
    a.feed(True, GET * 20, 1)
    seen = []

    class Reenter:
        def __del__(self):
            for call in (lambda: a.feed(True, b"GET", 1), lambda: a.__init__()):
                try:
                    call()
                except RuntimeError as e:
                    seen.append(str(e))

    gc.collect()
    gc.disable()
    junk = Reenter()
    junk.cycle = junk
    del junk
    gc.set_threshold(10)  # collected while the events of the next call are being built
    gc.enable()
    try:
        events = a.feed(False, OK * 20, 2)
    finally:
        gc.set_threshold(700, 10, 10)
    assert [e.response.body for e in events] == [b"hi"] * 20
    assert seen == ["Http1Analyzer called while it is running",
                    "Http1Analyzer re-initialised while it is running"]


def test_many_folded_lines_cost_memory_linear_in_the_head():
    # 15,000 obs-fold lines in one 60 KB head: the joined value is built once, not once per fold
    head = b"GET / HTTP/1.1\r\nX: a\r\n" + b" b\r\n" * 15_000 + b"Y: c\r\n d\r\n\r\n"
    a = Http1Analyzer()
    a.feed(True, head, 1)
    assert a.memory() < Http1Analyzer().memory() + 3 * len(head)
    (ex,) = a.eof(2)
    assert ex.request.headers == (("X", "a" + " b" * 15_000), ("Y", "c d"))


def test_timestamps_beyond_int64_saturate_instead_of_failing():
    # a capture file can carry any 64-bit time scaled by its resolution
    a = Http1Analyzer()
    assert a.feed(True, b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n", 2**70) == []
    done = a.feed(False, b"HTTP/1.1 204 No Content\r\n\r\n", -2**80)
    assert [(e.request.path, e.request.start_ns, e.response.start_ns) for e in done] == [
        ("/t", 2**63 - 1, -2**63)]
    assert a.eof(2**90) == []
