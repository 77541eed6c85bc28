"""detect(): the protocol of a connection from the first bytes of a message.

Whole messages, every prefix of them (a message split over small writes or iovecs), and
bytes that are not HTTP; fuzzed with the invariant: one of the five answers, never a raise.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.protocols.base import Match
from l7scope.protocols.detect import MAX_PENDING, NEED_MORE, detect
from l7scope.protocols.http.detection import detect_http1, detect_http2
from l7scope.protocols.http1_message import KNOWN_METHODS
from l7scope.protocols.http2 import PREFACE
from tests.conn.h2_peers import H2Peers, get

REQUEST = ("http1", True)
RESPONSE = ("http1", False)
H2_CLIENT = ("http2", True)
H2_FRAMES = ("http2", None)
UNDECIDED = (NEED_MORE, None)
NOT_HTTP = (None, None)


def _h2_writes() -> dict[str, bytes]:
    peers = H2Peers()
    peers.start()
    sid = peers.request(get("/items") + [("user-agent", "grpc-go/1.60")], b"x" * 40)
    peers.respond(sid, [(":status", "200"), ("content-type", "text/plain")], b"y" * 100)
    w = [data for _, data in peers.writes]
    return {"client_first": w[0], "server_settings": w[2], "request": w[4], "response": w[5]}


H2 = _h2_writes()

WHOLE = [
    (b"GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\n\r\n", REQUEST),
    (b"POST /submit HTTP/1.0\r\nContent-Length: 0\r\n\r\n", REQUEST),
    (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", REQUEST),
    (b"CONNECT example.test:443 HTTP/1.1\r\n\r\n", REQUEST),
    (b"PATCH /v1/x HTTP/1.1\r\nHost: x\r\n\r\n", REQUEST),
    (b"GET /nl-only HTTP/1.1\nHost: x\n\n", REQUEST),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", RESPONSE),
    (b"HTTP/1.0 404 Not Found\r\n\r\n", RESPONSE),
    (b"HTTP/1.1 204\r\n\r\n", RESPONSE),  # reason phrase and its SP left out
    (PREFACE, H2_CLIENT),
    (H2["client_first"], H2_CLIENT),
    (H2["server_settings"], H2_FRAMES),
    (H2["request"], H2_FRAMES),
    (H2["response"], H2_FRAMES),
]

NOT_HTTP_MESSAGES = [
    b"SSH-2.0-OpenSSH_9.6\r\n",
    bytes.fromhex("1603010200010001fc0303") + b"\x00" * 40,  # a TLS ClientHello record
    b'{"jsonrpc":"2.0","method":"x"}\n',
    b"get / http/1.1\r\nHost: x\r\n\r\n",  # methods are case-sensitive
    b"GET / HTTP/2.0\r\n\r\n",
    b"FOO / HTTP/1.1\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 20x OK\r\n\r\n",
    b"*1\r\n$4\r\nPING\r\n",  # redis
    b"\x00\x00\x00\x08\x04\xd2\x16\x2f" + b"\x00" * 30,  # postgres SSLRequest then junk
]


@pytest.mark.parametrize("data, expected", WHOLE)
def test_whole_message(data, expected):
    assert detect(data) == expected


@pytest.mark.parametrize("method", KNOWN_METHODS)
def test_every_known_method(method):
    assert detect(method.encode() + b" /x HTTP/1.1\r\n\r\n") == REQUEST


@pytest.mark.parametrize("data", NOT_HTTP_MESSAGES)
def test_not_http(data):
    assert detect(data) == NOT_HTTP


@pytest.mark.parametrize("data", [b"", b"G", b"GE", b"GET", b"GET ", b"H", b"HTTP/1", b"HTTP/1.1",
                                  b"PRI * HTTP/2", PREFACE[:23], b"\x00\x00", b"\x00\x00\x06\x04"])
def test_short_prefixes_are_undecided(data):
    assert detect(data) == UNDECIDED


def test_method_and_target_start_decide_http1():
    assert detect(b"GET /") == REQUEST
    assert detect(b"GET /a") == REQUEST


SETTINGS_ACK = bytes.fromhex("000000040100000000")
PING = bytes.fromhex("0000080600000000000102030405060708")


def test_short_single_frame_waits_for_its_successor():
    assert detect(SETTINGS_ACK) == UNDECIDED  # 9 plausible octets could be chance
    assert detect(SETTINGS_ACK + PING[:8]) == UNDECIDED
    assert detect(SETTINGS_ACK + PING[:9]) == H2_FRAMES
    assert detect(SETTINGS_ACK + PING) == H2_FRAMES


def test_one_whole_frame_of_24_octets_or_more_is_http2():
    assert len(H2["server_settings"]) == 51
    assert detect(H2["server_settings"]) == H2_FRAMES
    assert detect(H2["server_settings"][:50]) == UNDECIDED


def test_request_line_prefix_longer_than_the_hold_limit_is_http1():
    assert detect(b"GET /" + b"a" * MAX_PENDING) == REQUEST


def test_long_undecided_binary_gives_up():
    frame_header = (1000).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01"  # DATA, stream 1
    assert detect(frame_header + b"z" * 100) == H2_FRAMES  # a DATA frame may continue
    assert detect(b"\xff" * (MAX_PENDING + 1)) == NOT_HTTP


def _prefix_cases():
    for data, expected in WHOLE:
        yield pytest.param(data, expected, id=data[:12].hex() if expected[0] == "http2"
                           else data[:16].decode())


@pytest.mark.parametrize("data, expected", list(_prefix_cases()))
def test_every_prefix_is_undecided_or_the_right_answer(data, expected):
    wrong = []
    for cut in range(len(data) + 1):
        got = detect(data[:cut])
        if got not in (expected, UNDECIDED):
            wrong.append((cut, data[:cut], got))
    assert wrong == []


@pytest.mark.parametrize("method", sorted(KNOWN_METHODS))
def test_every_prefix_of_each_method_is_undecided_or_a_request(method):
    data = method.encode() + b" /x HTTP/1.1\r\n\r\n"
    assert [cut for cut in range(len(data) + 1)
            if detect(data[:cut]) not in (REQUEST, UNDECIDED)] == []


def test_every_prefix_of_not_http_is_never_reported_as_http():
    for data in NOT_HTTP_MESSAGES:
        if detect(data[:5]) == REQUEST:
            continue  # "GET / HTTP/2.0" is decided HTTP/1 at "GET /": the analyzer rejects it
        for cut in range(len(data) + 1):
            assert detect(data[:cut])[0] in (None, NEED_MORE), (data, cut)


def test_each_protocol_answers_for_itself():
    assert detect_http1(b"GET /x HTTP/1.1\r\n", True) == Match("http1", True)
    assert detect_http1(b"GET", True) == NEED_MORE and detect_http1(b"GET", False) is None
    assert detect_http1(PREFACE, True) is None
    assert detect_http2(PREFACE, False) == Match("http2", True)
    assert detect_http2(b"GET", True) == NEED_MORE  # fewer octets than a frame header
    assert detect_http2(b"GET /x HTTP/1.1\r\n", True) is None


def test_frames_that_can_grow_no_more_are_http2_only_when_nothing_waits():
    short = SETTINGS_ACK + PING[:9]  # 18 octets, two plausible headers, the PING cut short
    assert detect_http2(short, True) == Match("http2", None, sure=False)
    assert detect_http1(short, True) is None
    assert detect(short) == H2_FRAMES


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.builds(lambda m, rest: m.encode() + rest, st.sampled_from(KNOWN_METHODS),
                           st.binary(max_size=80)),
                 st.builds(lambda rest: b"HTTP/1." + rest, st.binary(max_size=40)),
                 st.builds(lambda rest: PREFACE[:20] + rest, st.binary(max_size=40))))
def test_fuzz_one_of_the_answers_never_raises(data):
    assert detect(data) in (REQUEST, RESPONSE, H2_CLIENT, H2_FRAMES, UNDECIDED, NOT_HTTP)
