"""HTTP/1 numbers from the wire (status code, Content-Length, chunk size) read by explicit ASCII
rules with a bounded length, and the analyzer's live counters and memory() figure.

Each scenario runs whole, byte by byte and at random splits (``run_all_ways``).
"""
from __future__ import annotations

import pytest

from l7scope.protocols.http1 import Http1Analyzer, parse_content_length
from l7scope.protocols.message import AnalyzerLimits, ParseError
from tests.protocols.test_http1 import C, S, exchanges, run, run_all_ways

GET = b"GET /n HTTP/1.1\r\nHost: h\r\n\r\n"
POST = b"POST /n HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n"


def errors(events) -> list[str]:
    return [e.code for e in events if type(e) is ParseError]


@pytest.mark.parametrize("values, expected", [
    (["0"], 0), (["42"], 42), (["0042"], 42), (["42, 42"], 42), (["42", "42"], 42),
    (["9" * 18], 10**18 - 1),
    (["9" * 19], None),  # more than 18 digits: not a length we accept
    (["\u0664\u0662"], None),  # ARABIC-INDIC 42: str.isdigit() says yes
    (["\uff14\uff12"], None),  # FULLWIDTH 42
    (["\u00b2"], None),  # SUPERSCRIPT TWO: isdigit() yes, int() raises
    (["42", "43"], None), (["-1"], None), (["+1"], None), ([""], None), (["4 2"], None),
    (["0x10"], None),
])
def test_content_length_is_ascii_digits_at_most_18(values, expected):
    assert parse_content_length(values) == expected


def test_non_ascii_content_length_is_invalid_framing():
    req = "POST /n HTTP/1.1\r\nHost: h\r\nContent-Length: \u0664\u0662\r\n\r\n".encode()
    events = run_all_ways([C(req), C(GET), S(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n")])
    assert errors(events) == ["invalid_content_length"]


@pytest.mark.parametrize("size_line, body", [
    (b"a", b"0123456789"), (b"A", b"0123456789"), (b"0000000000000000000a", b"0123456789"),
    (b"a;ext=1", b"0123456789"), (b"a \t", b"0123456789"),
])
def test_chunk_sizes_that_are_read(size_line, body):
    resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n"
            + body + b"\r\n0\r\n\r\n")
    [ex] = exchanges(run_all_ways([C(GET), S(resp)]))
    assert (ex.response.body, ex.response.complete) == (body, True)


@pytest.mark.parametrize("size_line", [
    b"1000000000000000",  # 16 significant hex digits (a 64-bit size): over the bound of 15
    "\u0661".encode(),  # a non-ASCII digit
    b"-1", b"0x1", b"", b" ", b"g",
])
def test_chunk_sizes_that_are_refused(size_line):
    resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\nxx\r\n")
    events = run_all_ways([C(GET), S(resp)])
    assert errors(events) == ["bad_chunk_size"]
    [ex] = exchanges(events)
    assert ex.response.notes == ("invalid chunked framing",)


@pytest.mark.parametrize("status, expected", [
    (b"200", 200), (b"599", 599), (b"100", None), (b"099", "bad_status_code"),
    (b"600", "bad_status_code"), (b"2000", "bad_status_line"), (b"20", "bad_status_line"),
    ("2\u0660\u0660".encode(), "bad_status_line"),
])
def test_status_code_is_three_ascii_digits_100_to_599(status, expected):
    resp = b"HTTP/1.1 " + status + b" X\r\nContent-Length: 0\r\n\r\n"
    events = run_all_ways([C(GET), S(resp)])
    if isinstance(expected, str):
        assert errors(events)[:1] == [expected]
    elif expected is None:  # 100 Continue: interim, the request stays unanswered
        assert [ex.notes for ex in exchanges(events)] == [("no response",)]
    else:
        assert [ex.response.status for ex in exchanges(events)] == [expected]


# -- live counters -------------------------------------------------------------------------------

def test_counts_reach_the_shared_dict_when_they_happen():
    shared = {"other": 5}
    a = Http1Analyzer(AnalyzerLimits(max_pending=1), counters=shared)
    assert shared == {"other": 5, "http1_dropped_pending": 0, "http1_interim_responses": 0,
                      "http1_parse_errors": 0, "http1_ignored_bytes": 0,
                      "http1_discarded_bytes": 0, "http1_lost_heads": 0}
    a.feed(True, GET + GET, 1)
    assert shared["http1_dropped_pending"] == 1
    a.feed(False, b"HTTP/1.1 100 Continue\r\n\r\n", 2)
    assert shared["http1_interim_responses"] == 1
    a.feed(False, b"junk\r\nHTTP/1.1 204 No Content\r\n\r\n", 3)
    assert (shared["http1_parse_errors"], shared["http1_discarded_bytes"]) == (1, 6)
    a.feed(True, b"GE", 4)
    a.eof(5)
    assert (shared["http1_lost_heads"], shared["http1_ignored_bytes"]) == (1, 2)
    assert {f"http1_{k}": v for k, v in a.counters().items()} == {
        k: v for k, v in shared.items() if k != "other"}


def test_two_analyzers_add_to_one_dict():
    shared: dict = {}
    for _ in range(2):
        Http1Analyzer(AnalyzerLimits(max_pending=1), counters=shared).feed(True, GET * 3, 1)
    assert shared["http1_dropped_pending"] == 4


def test_bytes_after_a_switch_are_ignored_once_and_the_handed_over_ones_not_at_all():
    shared: dict = {}
    a = Http1Analyzer(counters=shared)
    a.feed(True, b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", 1)
    [_, switched] = a.feed(False, b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\nFRAME", 2)
    assert switched.remainder == b"FRAME"
    a.feed(False, b"MORE", 3)
    assert shared["http1_ignored_bytes"] == a.ignored_bytes == 4


def test_memory_of_an_idle_analyzer_is_its_fixed_part_again_after_each_exchange():
    a = Http1Analyzer()
    idle = a.memory()
    a.feed(True, POST % b"5" + b"hello", 1)
    assert a.memory() > idle + len(POST)
    a.feed(False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 2)
    assert a.memory() == idle
    a.feed(True, b"GET /partial HTTP/1.1\r\nX: " + b"y" * 1000, 3)
    assert idle + 1000 < a.memory() < idle + 2000


def test_an_ended_analyzer_is_freed_when_dropped_without_the_cyclic_collector():
    import gc
    import weakref

    a = Http1Analyzer()
    a.feed(True, GET, 1)
    a.eof(2)
    ref = weakref.ref(a)
    gc.disable()
    try:
        del a
        assert ref() is None
    finally:
        gc.enable()
