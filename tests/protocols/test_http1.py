"""Http1Analyzer: message framing and request/response pairing.

Every scenario runs three ways (whole feeds, one byte per feed, random split points) through
``run_all_ways``, which also asserts that the three give identical events.
"""
from __future__ import annotations

import random

import pytest

from l7scope.protocols.http1 import (
    HANDLED_STATES, STATES, STEPS, TRANSITIONS, Http1Analyzer, looks_like_request,
    looks_like_response,
)
from l7scope.protocols.message import (
    AnalyzerLimits, ExchangeParsed, ParseError, ProtocolSwitched,
)

EOF_TS = 10_000


def C(data: bytes) -> tuple:
    return ("c", data)


def S(data: bytes) -> tuple:
    return ("s", data)


def GAP_C(n: int) -> tuple:
    return ("gap_c", n)


def GAP_S(n: int) -> tuple:
    return ("gap_s", n)


def _pieces(data: bytes, mode: str, rng: random.Random) -> list[bytes]:
    if mode == "whole" or not data:
        return [data]
    if mode == "bytes":
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def run(script: list[tuple], mode: str = "whole", seed: int = 0,
        limits: AnalyzerLimits | None = None, eof: bool = True) -> tuple[list, Http1Analyzer]:
    """Feed a script; step i has ts = (i + 1) * 10 whatever the split. Returns (events, analyzer)."""
    analyzer = Http1Analyzer(limits)
    rng = random.Random(seed)
    events: list = []
    for i, (kind, arg) in enumerate(script):
        ts = (i + 1) * 10
        if kind.startswith("gap"):
            events += analyzer.skip(kind == "gap_c", arg, ts)
            continue
        for piece in _pieces(arg, mode, rng):
            events += analyzer.feed(kind == "c", piece, ts)
    if eof:
        events += analyzer.eof(EOF_TS)
    return events, analyzer


def _comparable(events: list) -> list:
    # a ParseError's detail quotes the bytes at hand, which depend on the split points
    return [(type(e).__name__, e.code, e.from_client) if isinstance(e, ParseError) else e
            for e in events]


def run_all_ways(script: list[tuple], **kw) -> list:
    """Events of the whole-feed run, after checking byte-by-byte and random splits agree."""
    whole, _ = run(script, "whole", **kw)
    assert _comparable(run(script, "bytes", **kw)[0]) == _comparable(whole)
    for seed in range(5):
        assert _comparable(run(script, "random", seed=seed, **kw)[0]) == _comparable(whole)
    return whole


def exchanges(events: list) -> list[ExchangeParsed]:
    return [e for e in events if isinstance(e, ExchangeParsed)]


CURL_GET = (b"GET /items?id=%d HTTP/1.1\r\nHost: api.local:8080\r\n"
            b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
NGINX_200 = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/plain\r\n"
             b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n%s")


def ok(body: bytes) -> bytes:
    return NGINX_200 % (len(body), body)


def test_simple_get_keep_alive_three_exchanges():
    script = []
    for i in range(3):
        script += [C(CURL_GET % i), S(ok(b"item %d\n" % i))]
    events = run_all_ways(script)
    assert len(events) == 3 and all(isinstance(e, ExchangeParsed) for e in events)
    for i, ex in enumerate(events):
        req, resp = ex.request, ex.response
        assert (req.method, req.path, req.authority, req.version) == (
            "GET", f"/items?id={i}", "api.local:8080", "HTTP/1.1")
        assert req.headers == (("Host", "api.local:8080"), ("User-Agent", "curl/7.88.1"),
                               ("Accept", "*/*"))
        assert (req.wire_bytes, req.body_len, req.complete, req.notes) == (
            len(CURL_GET % i), 0, True, ())
        assert (req.start_ns, req.end_ns) == (20 * i + 10, 20 * i + 10)
        assert (resp.status, resp.body, resp.body_len) == (200, b"item %d\n" % i, 7)
        assert resp.wire_bytes == len(ok(b"item %d\n" % i))
        assert (resp.start_ns, resp.end_ns, resp.partial) == (20 * i + 20, 20 * i + 20, False)
        assert resp.header("content-type") == "text/plain"
        assert ex.protocol == "http1" and ex.notes == ()


def test_post_with_content_length_body_spanning_feeds():
    head = b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
    events = run_all_ways([C(head + b"hello"), C(b" world"), S(ok(b"done"))])
    (ex,) = exchanges(events)
    assert (ex.request.method, ex.request.body, ex.request.body_len) == ("POST", b"hello world", 11)
    assert ex.request.wire_bytes == len(head) + 11
    assert (ex.request.start_ns, ex.request.end_ns) == (10, 20)
    assert ex.response.body == b"done"


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
           b"5;name=value\r\nhello\r\n"
           b"7 ; ext\r\n, world\r\n"
           b"0;last\r\nX-Checksum: abc123\r\nX-Other:  two words  \r\n\r\n")


def test_chunked_response_with_extensions_and_trailers():
    events = run_all_ways([C(CURL_GET % 1), S(CHUNKED), C(CURL_GET % 2), S(ok(b"next"))])
    first, second = exchanges(events)
    resp = first.response
    assert (resp.body, resp.body_len, resp.complete) == (b"hello, world", 12, True)
    assert resp.trailers == (("X-Checksum", "abc123"), ("X-Other", "two words"))
    assert resp.header("x-checksum") == "abc123"
    assert resp.wire_bytes == len(CHUNKED)
    assert (second.request.path, second.response.body) == ("/items?id=2", b"next")


def test_head_response_has_no_body_despite_content_length():
    head = b"HEAD /big HTTP/1.1\r\nHost: h\r\n\r\n"
    head_resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    events = run_all_ways([C(head), S(head_resp), C(CURL_GET % 7), S(ok(b"seven"))])
    first, second = exchanges(events)
    assert (first.request.method, first.response.status) == ("HEAD", 200)
    assert (first.response.body_len, first.response.wire_bytes) == (0, len(head_resp))
    assert (second.request.path, second.response.body) == ("/items?id=7", b"seven")


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body(status):
    resp = b"HTTP/1.1 %d X\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n" % status
    events = run_all_ways([C(CURL_GET % 1), S(resp), C(CURL_GET % 2), S(ok(b"x"))])
    first, second = exchanges(events)
    assert (first.response.status, first.response.body_len, first.response.complete) == (
        status, 0, True)
    assert first.response.wire_bytes == len(resp)
    assert (second.request.path, second.response.status, second.response.body) == (
        "/items?id=2", 200, b"x")


def test_100_continue_then_200():
    head = b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    events = run_all_ways([C(head), S(b"HTTP/1.1 100 Continue\r\n\r\n"), C(b"data"),
                           S(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"),
                           S(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")])
    (ex,) = events
    assert (ex.request.method, ex.request.body, ex.request.end_ns) == ("PUT", b"data", 30)
    assert (ex.response.status, ex.response.start_ns) == (201, 50)


def test_pipelined_requests_pair_in_order():
    reqs = [b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(3)]
    resps = [ok(b"body-%d" % i) for i in range(3)]
    events = run_all_ways([C(b"".join(reqs)), S(resps[0] + resps[1]), S(resps[2])])
    assert [(e.request.path, e.response.body) for e in exchanges(events)] == [
        ("/0", b"body-0"), ("/1", b"body-1"), ("/2", b"body-2")]


def test_pipelined_head_then_get_uses_each_requests_method():
    script = [C(b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
              S(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + ok(b"abc"))]
    a, b = exchanges(run_all_ways(script))
    assert (a.request.method, a.response.body_len, b.request.path, b.response.body) == (
        "HEAD", 0, "/b", b"abc")


def test_close_delimited_response_completes_at_eof():
    resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of "
    events, analyzer = run([C(CURL_GET % 1), S(resp), S(b"it")], eof=False)
    assert events == []
    (ex,) = analyzer.eof(EOF_TS)
    assert (ex.response.body, ex.response.complete, ex.response.notes) == (b"all of it", True, ())
    assert (ex.response.end_ns, ex.response.version) == (30, "HTTP/1.0")
    assert ex.response.wire_bytes == len(resp) + 2
    assert exchanges(run_all_ways([C(CURL_GET % 1), S(resp), S(b"it")])) == [ex]


def test_non_chunked_transfer_encoding_response_reads_until_close():
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz"
    (ex,) = exchanges(run_all_ways([C(CURL_GET % 1), S(resp)]))
    assert (ex.response.body, ex.response.complete) == (b"zzz", True)


def test_upgrade_websocket_101_switches_and_ignores_later_bytes():
    req = (b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    resp = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    frames = b"\x81\x05hello"
    script = [C(req), S(resp + frames), C(b"\x81\x85\x00\x00\x00\x00hello"), S(frames)]
    events = run_all_ways(script)
    ex, switched = events
    assert (ex.request.path, ex.response.status, ex.response.wire_bytes) == (
        "/chat", 101, len(resp))
    assert switched == ProtocolSwitched("websocket", 20)
    assert switched.request.path == "/chat"
    events, analyzer = run(script)
    # fed whole, the frames that followed the 101 in its feed are handed over, not ignored
    assert events[1].remainder == frames
    assert analyzer.stopped and analyzer.ignored_bytes == len(frames) + 11


def test_h2c_upgrade_token():
    req = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    events = run_all_ways([C(req), S(resp + settings)])
    assert events[1] == ProtocolSwitched("h2c", 20)
    assert events[1].request.header("upgrade") == "h2c"
    assert run([C(req), S(resp + settings)])[0][1].remainder == settings


def test_connect_2xx_becomes_tunnel():
    req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    resp = b"HTTP/1.1 200 Connection Established\r\nContent-Length: 99\r\n\r\n"
    events = run_all_ways([C(req), S(resp), C(b"\x16\x03\x01\x02\x00TLS"), S(b"\x16\x03\x03")])
    ex, switched = events
    assert (ex.request.method, ex.request.path, ex.response.status) == (
        "CONNECT", "example.com:443", 200)
    assert ex.response.body_len == 0 and switched == ProtocolSwitched("tunnel", 20)


def test_connect_refused_stays_http1():
    req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    resp = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno"
    events = run_all_ways([C(req), S(resp), C(CURL_GET % 1), S(ok(b"y"))])
    assert [(e.request.method, e.response.status) for e in events] == [
        ("CONNECT", 407), ("GET", 200)]


def test_response_without_request():
    events = run_all_ways([S(ok(b"orphan")), C(CURL_GET % 1), S(ok(b"paired"))])
    orphan, paired = events
    assert (orphan.request, orphan.response.body, orphan.notes) == (
        None, b"orphan", ("request not seen",))
    assert (paired.request.path, paired.response.body, paired.notes) == (
        "/items?id=1", b"paired", ())


def test_request_without_response_at_eof():
    events, analyzer = run([C(CURL_GET % 1), S(ok(b"a")), C(CURL_GET % 2)], eof=False)
    assert len(events) == 1
    (ex,) = analyzer.eof(EOF_TS)
    assert (ex.request.path, ex.response, ex.notes) == ("/items?id=2", None, ("no response",))
    assert ex.request.complete and analyzer.eof(EOF_TS + 1) == []


def test_message_cut_short_at_eof_is_incomplete():
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    (ex,) = exchanges(run_all_ways([C(CURL_GET % 1), S(resp)]))
    assert (ex.response.complete, ex.response.notes, ex.response.body_len) == (
        False, ("truncated at eof",), 3)
    assert ex.response.end_ns == 20


def test_request_head_cut_short_at_eof():
    (ex,) = run_all_ways([C(b"GET /half HTTP/1.1\r\nHost: h\r\nAcc")])
    assert (ex.request.method, ex.request.path, ex.request.authority) == ("GET", "/half", "h")
    assert (ex.request.complete, ex.request.notes, ex.notes) == (
        False, ("truncated at eof",), ("no response",))


def test_early_response_waits_for_request_end():
    head = b"POST /big HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"
    resp = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"
    events = run_all_ways([C(head), S(resp), C(b"def")])
    (ex,) = events
    assert (ex.request.body, ex.request.end_ns, ex.response.status) == (b"abcdef", 30, 413)


def test_field_values_ows_stripped_obs_fold_and_bare_lf():
    req = b"GET / HTTP/1.1\nHost:  h \nX-Long: a\n  b\t\nX-Empty:\n\n"
    (ex,) = exchanges(run_all_ways([C(req), S(b"HTTP/1.1 204 No Content\n\n")]))
    assert ex.request.headers == (("Host", "h"), ("X-Long", "a b"), ("X-Empty", ""))
    assert ex.request.notes == () and ex.response.status == 204


def test_latin1_values_and_names_kept_as_sent():
    req = b"GET /caf\xe9 HTTP/1.1\r\nX-NaMe: caf\xe9\r\n\r\n"
    (ex,) = exchanges(run_all_ways([C(req), S(ok(b""))]))
    assert ex.request.path == "/caf\xe9" and ex.request.headers == (("X-NaMe", "caf\xe9"),)


def test_body_capture_keeps_prefix_and_counts_whole_body():
    body = bytes(range(256)) * 40
    limits = AnalyzerLimits(body_capture=100)
    (ex,) = exchanges(run_all_ways([C(CURL_GET % 1), S(ok(body))], limits=limits))
    assert (ex.response.body, ex.response.body_len) == (body[:100], len(body))


def test_both_chunked_and_content_length_chunked_wins():
    resp = (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n")
    events = run_all_ways([C(CURL_GET % 1), S(resp), C(CURL_GET % 2), S(ok(b"n"))])
    first, second = exchanges(events)
    assert (first.response.body, first.response.notes) == (b"abc", ())
    assert second.response.body == b"n"


def test_identical_duplicate_content_lengths_accepted():
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc"
    (ex,) = exchanges(run_all_ways([C(CURL_GET % 1), S(resp)]))
    assert (ex.response.body, ex.response.partial) == (b"abc", False)


def test_too_many_pending_requests_drop_the_oldest():
    reqs = b"".join(b"GET /%d HTTP/1.1\r\n\r\n" % i for i in range(4))
    events, analyzer = run([C(reqs)], limits=AnalyzerLimits(max_pending=2), eof=False)
    assert [(e.request.path, e.notes) for e in events] == [
        ("/0", ("dropped: too many pending requests",)),
        ("/1", ("dropped: too many pending requests",))]
    assert analyzer.dropped_pending == 2


def test_looks_like_request_and_response():
    assert looks_like_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert looks_like_request(b"POST /submit")  # a prefix of a request line
    assert looks_like_request(b"OPTIONS * HTTP/1.0\r\n")
    assert not looks_like_request(b"GET / HTTP/2.0\r\n")
    assert not looks_like_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert not looks_like_request(b"get / HTTP/1.1\r\n")
    assert not looks_like_request(b"GET / foo bar")
    assert not looks_like_request(b"\x16\x03\x01\x02\x00")
    assert looks_like_response(b"HTTP/1.1 200 OK\r\n")
    assert looks_like_response(b"HTTP/1.0 404")
    assert not looks_like_response(b"HTTP/1.1 20")
    assert not looks_like_response(b"HTTP/2 200")
    assert not looks_like_response(b"GET / HTTP/1.1\r\n")


def test_transition_table_is_total_for_handlers():
    # the compiled reader's table, as exported: every state but STOPPED reads bytes; every
    # table target is a state; eof closes any state
    assert STATES == ("HEAD", "LENGTH_BODY", "CHUNK_SIZE", "CHUNK_DATA", "CHUNK_DATA_END",
                      "TRAILERS", "CLOSE_BODY", "RESYNC", "STOPPED")
    assert HANDLED_STATES == set(STATES) - {"STOPPED"}
    assert set(TRANSITIONS.values()) <= set(STATES)
    assert all(state in STATES and step in STEPS for state, step in TRANSITIONS)
    assert {s for s, step in TRANSITIONS if step == "CLOSED"} == set(STATES)
    # the steps a head can end with all lead somewhere
    for step in ("MESSAGE_DONE", "BODY_BY_LENGTH", "BODY_CHUNKED", "BODY_UNTIL_CLOSE", "SWITCHED",
                 "INVALID", "HOLE"):
        assert ("HEAD", step) in TRANSITIONS
    # a body ends only where its framing says; a hole inside a body is not in the table (it is
    # counted as body bytes); nothing leaves STOPPED
    assert TRANSITIONS["LENGTH_BODY", "MESSAGE_DONE"] == "HEAD"
    assert ("LENGTH_BODY", "HOLE") not in TRANSITIONS
    assert ("CLOSE_BODY", "MESSAGE_DONE") not in TRANSITIONS
    assert {step for s, step in TRANSITIONS if s == "STOPPED"} == {"CLOSED"}
    assert TRANSITIONS["RESYNC", "SYNCED"] == "HEAD"
    assert len(TRANSITIONS) == 30
