"""Http1Analyzer fuzzed: it parses or yields ParseError, never raises, never invents values."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7scope.protocols.http1 import Http1Analyzer
from l7scope.protocols.message import (
    AnalyzerLimits, ExchangeParsed, HttpMessage, ParseError, ProtocolSwitched,
)

ERROR_CODES = {"bad_request_line", "bad_status_line", "bad_status_code", "header_too_large",
               "invalid_content_length", "invalid_transfer_encoding", "bad_chunk_size",
               "bad_chunk_data"}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_ops(ops: list[tuple[bool, bytes | int]], limits: AnalyzerLimits | None = None) -> list:
    analyzer = Http1Analyzer(limits)
    events = []
    for ts, (from_client, item) in enumerate(ops):
        if isinstance(item, int):
            events += analyzer.skip(from_client, item, ts)
        else:
            events += analyzer.feed(from_client, item, ts)
    events += analyzer.eof(len(ops))
    assert analyzer.eof(len(ops) + 1) == []
    return events


def check_invariants(events: list, client_bytes: bytes, server_bytes: bytes) -> None:
    for event in events:
        assert isinstance(event, (ExchangeParsed, ParseError, ProtocolSwitched))
        if isinstance(event, ParseError):
            assert event.code in ERROR_CODES
        if isinstance(event, ExchangeParsed):
            assert event.request is not None or event.response is not None
            if event.request is not None:
                check_request(event.request, client_bytes)
            if event.response is not None:
                check_response(event.response, server_bytes)


def check_request(msg: HttpMessage, sent: bytes) -> None:
    assert msg.is_request and msg.status is None
    # never a value that was not on the wire as a whole request line prefix
    assert f"{msg.method} {msg.path} ".encode("latin-1") in sent
    assert 0 <= len(msg.body) <= msg.body_len


def check_response(msg: HttpMessage, sent: bytes) -> None:
    assert not msg.is_request and msg.method is None
    assert 100 <= msg.status <= 599
    assert f"{msg.version} {msg.status:03d}".encode() in sent
    assert 0 <= len(msg.body) <= msg.body_len


chunks = st.binary(max_size=64)
ops_strategy = st.lists(st.tuples(st.booleans(), st.one_of(chunks, st.integers(1, 200))),
                        max_size=30)


@FUZZ
@given(ops_strategy)
def test_random_bytes_and_holes_never_raise(ops):
    events = feed_ops(ops)
    client = b"".join(b for c, b in ops if c and isinstance(b, bytes))
    server = b"".join(b for c, b in ops if not c and isinstance(b, bytes))
    check_invariants(events, client, server)


FRAGMENTS = [b"GET / HTTP/1.1\r\n", b"HEAD /h HTTP/1.1\r\n", b"CONNECT h:1 HTTP/1.1\r\n",
             b"POST /p HTTP/1.0\r\n", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 101 Switching\r\n",
             b"HTTP/1.1 100 Continue\r\n", b"HTTP/1.0 204 \r\n", b"HTTP/1.1 304 NM\r\n",
             b"Content-Length: 3\r\n", b"Content-Length: 2, 3\r\n",
             b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n",
             b"Upgrade: websocket\r\n", b"Host: h\r\n", b"\r\n", b"\n", b"0\r\n", b"5;e=1\r\n",
             b"abc", b"X: y\r\n", b" folded\r\n", b"\x00\xff", b"zz\r\n"]
fragment_ops = st.lists(st.tuples(st.booleans(), st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map(b"".join),
    st.integers(1, 40))), max_size=25)


@FUZZ
@given(fragment_ops, st.sampled_from([None, AnalyzerLimits(max_header_bytes=48, max_headers=1,
                                                           body_capture=2, max_pending=1)]))
def test_http_shaped_fragments_never_raise(ops, limits):
    events = feed_ops(ops, limits)
    client = b"".join(b for c, b in ops if c and isinstance(b, bytes))
    server = b"".join(b for c, b in ops if not c and isinstance(b, bytes))
    check_invariants(events, client, server)


# -- valid streams built from parts

def request_strategy():
    method = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    path = st.from_regex(r"\A/[a-z0-9/?=&._-]{0,20}\Z")
    body = st.binary(max_size=40)
    return st.tuples(method, path, body, st.booleans())


def encode_body(body: bytes, chunked: bool, pieces: int = 3) -> tuple[bytes, bytes]:
    """(framing header line, body on the wire)"""
    if not chunked:
        return b"Content-Length: %d\r\n" % len(body), body
    step = max(1, len(body) // pieces)
    wire = b"".join(b"%x;x=y\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                    for i in range(0, len(body), step))
    return b"Transfer-Encoding: chunked\r\n", wire + b"0\r\nX-Trailer: t\r\n\r\n"


def build_stream(specs) -> tuple[list[bytes], list[bytes], list[tuple]]:
    requests, responses, expected = [], [], []
    for i, (method, path, body, chunked) in enumerate(specs):
        framing, wire = encode_body(body, chunked)
        requests.append(b"%s %s HTTP/1.1\r\nHost: h%d\r\n%s\r\n%s" % (
            method.encode(), path.encode(), i, framing, wire))
        rbody = b"response %d" % i
        rframing, rwire = encode_body(rbody, not chunked)
        responses.append(b"HTTP/1.1 200 OK\r\n%s\r\n%s" % (rframing, rwire))
        expected.append((method, path, f"h{i}", body, rbody))
    return requests, responses, expected


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@FUZZ
@given(st.lists(request_strategy(), min_size=1, max_size=5),
       st.lists(st.integers(0, 10_000), max_size=12), st.booleans())
def test_valid_streams_at_any_split_give_exact_exchanges(specs, cuts, pipelined):
    requests, responses, expected = build_stream(specs)
    if pipelined:
        ops = [(True, p) for p in split(b"".join(requests), cuts)]
        ops += [(False, p) for p in split(b"".join(responses), cuts)]
    else:
        ops = []
        for req, resp in zip(requests, responses):
            ops += [(True, p) for p in split(req, cuts)] + [(False, p) for p in split(resp, cuts)]
    events = feed_ops(ops)
    assert [(e.request.method, e.request.path, e.request.authority, e.request.body,
             e.response.body) for e in events] == expected
    assert all(not e.request.partial and not e.response.partial and e.notes == ()
               for e in events)
    assert sum(e.request.wire_bytes for e in events) == sum(map(len, requests))
    assert sum(e.response.wire_bytes for e in events) == sum(map(len, responses))


@st.composite
def mutated_stream(draw):
    requests, responses, _ = build_stream(draw(st.lists(request_strategy(), min_size=1,
                                                        max_size=4)))
    client, server = bytearray(b"".join(requests)), bytearray(b"".join(responses))
    for _ in range(draw(st.integers(1, 6))):
        target = draw(st.sampled_from([client, server]))
        pos = draw(st.integers(0, len(target)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and pos < len(target):
            target[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            target[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del target[pos:pos + draw(st.integers(1, 8))]
    cuts = draw(st.lists(st.integers(0, 10_000), max_size=10))
    ops = [(True, p) for p in split(bytes(client), cuts)]
    ops += [(False, p) for p in split(bytes(server), cuts)]
    for _ in range(draw(st.integers(0, 3))):  # holes at random places
        ops.insert(draw(st.integers(0, len(ops))), (draw(st.booleans()), draw(st.integers(1, 30))))
    return ops, bytes(client), bytes(server)


@FUZZ
@given(mutated_stream(), st.sampled_from([None, AnalyzerLimits(max_header_bytes=64,
                                                               max_headers=2, body_capture=4,
                                                               max_pending=2)]))
def test_mutated_streams_never_raise_nor_invent_values(case, limits):
    ops, client, server = case
    check_invariants(feed_ops(ops, limits), client, server)
