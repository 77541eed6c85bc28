"""Http1Analyzer: holes (skip), garbage, resynchronisation, bounds and invalid values."""
from __future__ import annotations

from l7scope.protocols.message import AnalyzerLimits, ExchangeParsed, ParseError
from tests.protocols.test_http1 import (
    C, CURL_GET, GAP_C, GAP_S, S, exchanges, ok, run, run_all_ways,
)


def errors(events: list) -> list[tuple[str, bool]]:
    return [(e.code, e.from_client) for e in events if isinstance(e, ParseError)]


# -- skip() inside a body: the message stays exact

def test_skip_inside_content_length_body_counts_bytes_and_stays_complete():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    script = [C(CURL_GET % 1), S(head + b"x" * 100), GAP_S(800), S(b"y" * 100),
              C(CURL_GET % 2), S(ok(b"next"))]
    first, second = exchanges(run_all_ways(script))
    resp = first.response
    assert (resp.body_len, resp.wire_bytes) == (1000, len(head) + 1000)
    assert (resp.complete, resp.notes, resp.partial) == (True, (), False)
    assert resp.body == b"x" * 100  # the captured prefix stops at the hole
    assert (resp.start_ns, resp.end_ns) == (20, 40)
    assert (second.request.path, second.response.body) == ("/items?id=2", b"next")


def test_skip_inside_chunk_data():
    script = [C(CURL_GET % 1),
              S(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabcd"),
              GAP_S(12), S(b"\r\n2\r\nzz\r\n0\r\n\r\n")]
    (ex,) = exchanges(run_all_ways(script))
    assert (ex.response.body_len, ex.response.body, ex.response.partial) == (18, b"abcd", False)


def test_skip_in_request_body_past_its_end_loses_the_next_request():
    # the hole covers the last 4 body bytes and the start of the next request
    post = b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n123456"
    script = [C(post), GAP_C(4 + 20), C(b"Host: h\r\n\r\n"), S(ok(b"p")), S(ok(b"lost")),
              C(CURL_GET % 3), S(ok(b"three"))]
    events = run_all_ways(script)
    assert [(e.request and e.request.path, e.response.body, e.notes)
            for e in exchanges(events)] == [
        ("/p", b"p", ()),
        (None, b"lost", ("request lost in gap",)),
        ("/items?id=3", b"three", ())]
    assert exchanges(events)[0].request.body_len == 10
    assert errors(events) == []


# -- skip() where framing lives: partial message, resync, next exchange exact

def test_skip_inside_request_headers_then_resync():
    script = [C(b"GET /cut HTTP/1.1\r\nHost: h\r\nUser-Ag"), GAP_C(30), C(b"nt\r\n\r\n"),
              S(ok(b"for cut")), C(CURL_GET % 2), S(ok(b"two"))]
    events = run_all_ways(script)
    cut, two = exchanges(events)
    assert (cut.request.method, cut.request.path, cut.request.authority) == ("GET", "/cut", "h")
    assert (cut.request.complete, cut.request.notes) == (False, ("gap in headers",))
    assert cut.response.body == b"for cut" and cut.notes == ()
    assert (two.request.path, two.request.partial, two.response.body, two.notes) == (
        "/items?id=2", False, b"two", ())
    assert two.request.wire_bytes == len(CURL_GET % 2)


def test_skip_in_request_headers_pipelined_pairs_in_order():
    script = [C(b"GET /cut HTTP/1.1\r\nHo"), GAP_C(10), C(b"\r\n\r\n" + CURL_GET % 2),
              S(ok(b"a")), S(ok(b"b"))]
    a, b = exchanges(run_all_ways(script))
    assert (a.request.path, a.response.body, b.request.path, b.response.body) == (
        "/cut", b"a", "/items?id=2", b"b")


def test_skip_inside_response_headers():
    script = [C(CURL_GET % 1), S(b"HTTP/1.1 503 Service Unavailable\r\nServ"), GAP_S(40),
              S(b"ody\r\n"), C(CURL_GET % 2), S(ok(b"fine"))]
    first, second = exchanges(run_all_ways(script))
    assert (first.request.path, first.response.status, first.response.notes) == (
        "/items?id=1", 503, ("gap in headers",))
    assert (second.request.path, second.response.status, second.response.body) == (
        "/items?id=2", 200, b"fine")


def test_server_gap_at_boundary_never_pairs_a_later_response():
    script = [C(CURL_GET % 1), GAP_S(120), C(CURL_GET % 2), S(ok(b"two"))]
    first, second = exchanges(run_all_ways(script))
    assert (first.request.path, first.response, first.notes) == (
        "/items?id=1", None, ("response lost in gap",))
    assert (second.request.path, second.response.body) == ("/items?id=2", b"two")


def test_gap_in_chunk_size_line_makes_response_partial():
    script = [C(CURL_GET % 1),
              S(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
              GAP_S(3), S(b"\r\nxx\r\n0\r\n\r\n"), C(CURL_GET % 2), S(ok(b"ok"))]
    first, second = exchanges(run_all_ways(script))
    assert (first.response.body, first.response.complete, first.response.notes) == (
        b"abc", False, ("gap in chunked framing",))
    assert (second.request.path, second.response.body) == ("/items?id=2", b"ok")


# -- garbage

def test_garbage_between_requests_one_error_then_exact():
    junk = b"\x00\x01\x02 not http at all\r\n\xff\xfe" * 20
    script = [C(CURL_GET % 1), S(ok(b"one")), C(junk), C(CURL_GET % 2), S(ok(b"two"))]
    events = run_all_ways(script)
    assert errors(events) == [("bad_request_line", True)]
    one, two = exchanges(events)
    assert (one.request.path, one.response.body) == ("/items?id=1", b"one")
    assert (two.request.path, two.request.wire_bytes, two.response.body, two.notes) == (
        "/items?id=2", len(CURL_GET % 2), b"two", ())
    _, analyzer = run(script)
    assert analyzer.counters()["discarded_bytes"] == len(junk)


def test_garbage_between_responses():
    junk = b"<html>stray bytes</html>\r\n\r\n"
    script = [C(CURL_GET % 1), S(ok(b"one") + junk), C(CURL_GET % 2), S(ok(b"two"))]
    events = run_all_ways(script)
    assert errors(events) == [("bad_status_line", False)]
    assert [(e.request.path, e.response.body) for e in exchanges(events)] == [
        ("/items?id=1", b"one"), ("/items?id=2", b"two")]


def test_request_line_hidden_after_garbage_on_same_line():
    script = [C(b"\x8a\x9bzzGET /x HTTP/1.1\r\n\r\n"), S(ok(b"x"))]
    events = run_all_ways(script)
    assert errors(events) == [("bad_request_line", True)]
    assert [(e.request.path, e.response.body) for e in exchanges(events)] == [("/x", b"x")]


def test_bad_status_code_is_an_error_not_a_status():
    script = [C(CURL_GET % 1), S(b"HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n"),
              S(ok(b"real"))]
    events = run_all_ways(script)
    assert errors(events) == [("bad_status_code", False)]
    (ex,) = exchanges(events)
    assert (ex.response.status, ex.response.body) == (200, b"real")


def test_lowercase_garbage_never_becomes_a_method():
    events = run_all_ways([C(b"hello world\r\n\r\n"), S(ok(b"?"))])
    assert errors(events) == [("bad_request_line", True)]
    assert [(e.request, e.notes) for e in exchanges(events)] == [(None, ("request not seen",))]


# -- bounds

def test_oversize_headers_error_and_resync():
    limits = AnalyzerLimits(max_header_bytes=256)
    big = b"GET /big HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 400 + b"\r\n\r\n"
    script = [C(big), S(ok(b"big")), C(CURL_GET % 2), S(ok(b"small"))]
    events = run_all_ways(script, limits=limits)
    assert errors(events) == [("header_too_large", True)]
    big_ex, small = exchanges(events)
    assert (big_ex.request.path, big_ex.request.notes, big_ex.request.headers) == (
        "/big", ("headers too large",), ())
    assert big_ex.response.body == b"big"
    assert (small.request.path, small.response.body, small.request.partial) == (
        "/items?id=2", b"small", False)


def test_too_many_headers_keeps_first_ones_and_notes_it():
    req = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(5)) + \
        b"Content-Length: 2\r\n\r\nok"
    (ex,) = exchanges(run_all_ways([C(req), S(ok(b""))], limits=AnalyzerLimits(max_headers=3)))
    assert ex.request.headers == (("X-0", "v"), ("X-1", "v"), ("X-2", "v"))
    assert ex.request.notes == ("3 header fields over limit dropped",)
    assert ex.request.body == b"ok"  # framing still read from every field


def test_malformed_field_line_is_noted_not_used():
    req = b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\nno colon here\r\n\r\n"
    (ex,) = exchanges(run_all_ways([C(req), S(ok(b"r"))]))
    assert ex.request.headers == (("Host", "h"),)
    assert (ex.request.notes, ex.request.body_len) == (("2 malformed field lines ignored",), 0)


# -- invalid values

def test_invalid_content_length_request_error_partial_and_pairing():
    req = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 12abc\r\n\r\n"
    resp = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    events = run_all_ways([C(req + b"body bytes"), S(resp)])
    assert errors(events) == [("invalid_content_length", True)]
    (ex,) = exchanges(events)
    assert (ex.request.method, ex.request.path, ex.request.complete) == ("POST", "/x", False)
    assert ex.request.notes == ("invalid content length",)
    assert ex.response.status == 400


def test_conflicting_content_lengths_in_response():
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    events = run_all_ways([C(CURL_GET % 1), S(resp), C(CURL_GET % 2), S(ok(b"two"))])
    assert errors(events) == [("invalid_content_length", False)]
    first, second = exchanges(events)
    assert (first.response.status, first.response.partial, first.response.body_len) == (
        200, True, 0)
    assert (second.request.path, second.response.body) == ("/items?id=2", b"two")


def test_request_transfer_encoding_not_chunked_is_invalid():
    req = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"
    events = run_all_ways([C(req), S(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")])
    assert errors(events) == [("invalid_transfer_encoding", True)]
    assert exchanges(events)[0].response.status == 400


def test_invalid_chunk_size():
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    events = run_all_ways([C(CURL_GET % 1), S(resp), C(CURL_GET % 2), S(ok(b"2"))])
    assert errors(events) == [("bad_chunk_size", False)]
    first, second = exchanges(events)
    assert (first.response.complete, first.response.notes) == (
        False, ("invalid chunked framing",))
    assert (second.request.path, second.response.body) == ("/items?id=2", b"2")


def test_chunk_data_longer_than_its_size():
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"
    events = run_all_ways([C(CURL_GET % 1), S(resp)])
    assert errors(events) == [("bad_chunk_data", False)]
    assert exchanges(events)[0].response.body == b"ab"


def test_every_event_is_a_known_type():
    script = [C(b"\xffjunk\r\n"), S(b"HTTP/1.1 200 OK\r\n\r\n"), GAP_C(3), GAP_S(5)]
    events, _ = run(script)
    assert events and all(isinstance(e, (ExchangeParsed, ParseError)) for e in events)


def test_hole_in_headers_hiding_another_request():
    script = [C(b"GET /cut HTTP/1.1\r\nHo"), GAP_C(200), S(ok(b"cut")), S(ok(b"hidden")),
              C(CURL_GET % 3), S(ok(b"three"))]
    events = run_all_ways(script)
    assert [(e.request and e.request.path, e.response.body, e.notes)
            for e in exchanges(events)] == [
        ("/cut", b"cut", ()),
        (None, b"hidden", ("request lost in gap",)),
        ("/items?id=3", b"three", ())]


def test_chunk_size_line_over_limit_is_an_error():
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000 + b"\r\nx\r\n"
    events = run_all_ways([C(CURL_GET % 1), S(resp + b"0\r\n\r\n"), C(CURL_GET % 2), S(ok(b"2"))])
    assert errors(events) == [("bad_chunk_size", False)]
    first, second = exchanges(events)
    assert (first.response.partial, second.request.path, second.response.body) == (
        True, "/items?id=2", b"2")


def test_hole_in_101_headers_does_not_switch():
    req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    script = [C(req), S(b"HTTP/1.1 101 Switching Protocols\r\nUpgr"), GAP_S(30),
              S(b"\x81\x05hello"), C(b"\x81\x85\x00\x00\x00\x00hello")]
    events, analyzer = run(script)
    assert not analyzer.stopped
    (ex,) = exchanges(events)
    assert (ex.request.path, ex.response.status, ex.response.notes) == (
        "/ws", 101, ("gap in headers",))
    assert errors(events) == [("bad_request_line", True)]


def test_101_without_upgrade_header_uses_the_requested_protocol():
    req = b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"
    events = run_all_ways([C(req), S(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")])
    assert events[1].to == "h2c"
