"""Http2Analyzer with holes, late starts, hand-made frames, detection and fuzz."""
from __future__ import annotations

import random

import hpack
import pytest
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame, SettingsFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.protocols.http2 import Http2Analyzer, looks_like_http2
from l7scope.protocols.http2_frames import PREFACE
from l7scope.protocols.message import ExchangeParsed, ParseError

from .test_http2 import exchanges_of, frames_of, rich_conversation, wire_bytes
from .test_http2_conversations import Conversation, get, ok


def long_conversation(n: int = 120) -> Conversation:
    conv = Conversation()
    for i in range(n):
        # Header names change every 40 exchanges, so that a late observer can learn them all
        # (a name only ever re-sent by reference to an unlearned entry stays unknown).
        headers = get(f"/p/{i % 5}", i)[:5] + [(f"x-phase-{i // 40}", f"v-{i}")]
        sid = conv.request(headers)
        conv.respond(sid, ok(i)[:2] + [(f"x-rphase-{i // 40}", f"w-{i}")], f"resp-{i}".encode())
    return conv


def is_subsequence(part, whole) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def assert_never_wrong(conv: Conversation, found: dict[int, ExchangeParsed]) -> None:
    for sid, exchange in found.items():
        for message, sent in ((exchange.request, conv.requests.get(sid)),
                              (exchange.response, conv.responses.get(sid))):
            if message is None or sent is None:
                continue
            assert is_subsequence(message.headers, sent.headers), (sid, message.headers)
            if len(message.headers) < len(sent.headers):
                assert any(word in n for n in message.notes
                           for word in ("not learned", "lost", "reset", "gap", "not seen"))
            for field, pseudo in (("method", ":method"), ("path", ":path"),
                                  ("status", ":status")):
                got = getattr(message, field)
                if got is not None:
                    assert str(got) == dict(sent.headers)[pseudo]


def feed_from(conv: Conversation, start_chunk: int, cut: int = 0,
              analyzer: Http2Analyzer | None = None) -> tuple[dict, list]:
    """Feed chunks from ``start_chunk`` on, dropping ``cut`` octets of the first one."""
    analyzer = analyzer or Http2Analyzer(seen_from_start=False)
    events = []
    for ts, (from_client, data) in enumerate(conv.chunks[start_chunk:], start=1):
        if ts == 1:
            data = data[cut:]
        events += analyzer.feed(from_client, data, ts)
    events += analyzer.eof(10_000)
    return exchanges_of(events), [e for e in events if isinstance(e, ParseError)]


@pytest.mark.parametrize("cut", [0, 3, 20])
def test_mid_connection_start_never_wrong_then_heals(cut):
    conv = long_conversation()
    start = next(i for i, (fc, _) in enumerate(conv.chunks) if i > 140 and fc)
    found, errors = feed_from(conv, start, cut)
    assert_never_wrong(conv, found)
    assert all(e.code in ("resync",) for e in errors)
    unknown = [s for s, e in found.items() if e.request and len(e.request.headers) < 6]
    assert unknown  # some request headers named entries that predate us
    last = max(found)
    assert list(found[last].request.headers) == conv.requests[last].headers
    assert list(found[last].response.headers) == conv.responses[last].headers
    exact_tail = [s for s in sorted(found)[-20:]
                  if found[s].request and list(found[s].request.headers) == conv.requests[s].headers]
    assert len(exact_tail) == 20


def test_mid_connection_response_only_stream():
    conv = Conversation()
    sid = conv.request(get("/before", 1))
    conv.respond(sid, ok(1), b"late body")
    start = max(i for i, (fc, _) in enumerate(conv.chunks) if fc) + 1  # only the server's reply
    found, _ = feed_from(conv, start)
    exchange = found[sid]
    assert exchange.request is None
    assert "request headers not seen (the stream predates the capture or a gap)" in exchange.notes
    assert exchange.response.body == b"late body" and exchange.response.complete


def split_at(conv: Conversation, from_client: bool, offset: int, hole: int):
    """Chunks of the conversation with a hole at ``offset`` of one direction's bytes."""
    seen = 0
    for side, data in conv.chunks:
        if side == from_client and seen <= offset < seen + len(data):
            at = offset - seen
            yield side, data[:at], None
            yield side, None, hole
            yield side, data[at + hole:], None
            if at + hole > len(data):
                raise AssertionError("hole crosses a chunk")
        else:
            yield side, data, None
        if side == from_client:
            seen += len(data)


def run_with_hole(conv, from_client, offset, hole):
    analyzer = Http2Analyzer()
    events = []
    for ts, (side, data, skip) in enumerate(split_at(conv, from_client, offset, hole), 1):
        events += analyzer.skip(side, skip, ts) if skip else analyzer.feed(side, data, ts)
    events += analyzer.eof(10_000)
    return exchanges_of(events), [e for e in events if isinstance(e, ParseError)]


def test_skip_inside_data_keeps_sizes_exact():
    conv = rich_conversation()
    target = 11  # stream 11: 12600-byte body in padded DATA frames (pad 8)
    offset, _, _, _, length = next(f for f in frames_of(conv, False) if f[1] == 0 and f[3] == target)
    found, errors = run_with_hole(conv, False, offset + 9 + 100, 500)
    assert errors == []
    response, sent = found[target].response, conv.responses[target]
    assert response.body_len == len(sent.body)
    assert response.wire_bytes == wire_bytes(conv, False, target)
    assert response.body == sent.body[:99]  # pad-length octet, then 99 body octets before the hole
    assert response.notes == ("body bytes lost in a capture gap",)
    for sid in conv.responses:
        if sid != target:
            assert list(found[sid].response.headers) == conv.responses[sid].headers


def test_skip_inside_headers_marks_partial_then_never_wrong():
    conv = long_conversation(160)
    frames = [f for f in frames_of(conv, True) if f[1] == 1]
    offset, _, _, target, length = frames[30]
    found, errors = run_with_hole(conv, True, offset + 9 + 2, 3)
    assert errors == []
    request = found[target].request
    assert request.headers == () and request.method is None
    assert request.notes == ("header block lost in a capture gap",)
    assert_never_wrong(conv, found)
    last = max(found)
    assert list(found[last].request.headers) == conv.requests[last].headers
    assert all(list(found[s].response.headers) == conv.responses[s].headers for s in found)


def test_skip_over_frame_header_resyncs_with_parse_error():
    conv = long_conversation(160)
    frames = [f for f in frames_of(conv, False) if f[1] == 1]
    offset = frames[20][0]
    found, errors = run_with_hole(conv, False, offset + 4, 10)
    assert errors and errors[0].code == "framing_lost" and errors[0].from_client is False
    assert_never_wrong(conv, found)
    last = max(found)
    assert list(found[last].response.headers) == conv.responses[last].headers


def test_hand_made_padded_priority_headers_and_continuation():
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    req = get("/hand", 1) + [("x-big", "b" * 300)]
    block = enc_c.encode(req)
    head = HeadersFrame(1, block[:50], flags=["PADDED", "PRIORITY"], pad_length=7,
                        depends_on=0, stream_weight=16)
    cont = ContinuationFrame(1, block[50:], flags=["END_HEADERS"])
    head.flags.add("END_STREAM")
    resp_block = enc_s.encode(ok(1))
    client = PREFACE + SettingsFrame(0).serialize() + head.serialize() + cont.serialize()
    server = (SettingsFrame(0).serialize()
              + HeadersFrame(1, resp_block, flags=["END_HEADERS"]).serialize()
              + DataFrame(1, b"data!", flags=["PADDED", "END_STREAM"], pad_length=3).serialize())
    analyzer = Http2Analyzer()
    events = analyzer.feed(True, client, 1) + analyzer.feed(False, server, 2)
    (exchange,) = [e for e in events if isinstance(e, ExchangeParsed)]
    assert list(exchange.request.headers) == req
    assert exchange.request.wire_bytes == len(client) - len(PREFACE) - 9
    assert exchange.response.body == b"data!" and exchange.response.body_len == 5
    assert exchange.response.wire_bytes == len(server) - 9


def test_looks_like_http2():
    conv = rich_conversation()
    client, server = conv.bytes_of(True), conv.bytes_of(False)
    assert looks_like_http2(client) and looks_like_http2(client[:10])
    assert looks_like_http2(server[:frames_of(conv, False)[1][0]])  # the server SETTINGS frame
    offset, _, _, _, length = [f for f in frames_of(conv, False) if f[1] == 1][0]
    assert looks_like_http2(server[offset:offset + 9 + length])
    assert not looks_like_http2(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not looks_like_http2(b"HTTP/1.1 200 OK\r\n\r\n")
    assert not looks_like_http2(b"\x00\x00\x04\x04\x00\x00\x00\x00\x00abcd")  # SETTINGS len 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=60)), max_size=12), st.booleans())
def test_fuzz_random_bytes_never_raise(chunks, from_start):
    analyzer = Http2Analyzer(seen_from_start=from_start)
    events = []
    for i, (side, data) in enumerate(chunks):
        events += analyzer.feed(side, data, i)
    events += analyzer.eof(99)
    assert all(isinstance(e, (ExchangeParsed, ParseError)) for e in events)
    assert not [e for e in events if isinstance(e, ParseError) and e.code == "internal"]


_CONV = None


def _real_conversation() -> Conversation:
    global _CONV
    if _CONV is None:
        _CONV = long_conversation(30)
    return _CONV


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 8), st.booleans())
def test_fuzz_damaged_real_traffic_never_raises(seed, damage, from_start):
    conv = _real_conversation()
    rng = random.Random(seed)
    analyzer = Http2Analyzer(seen_from_start=from_start)
    events = []
    for ts, (side, data) in enumerate(conv.chunks):
        data = bytearray(data)
        if damage and rng.random() < 0.2:
            for _ in range(damage):
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.1:
            events += analyzer.skip(side, rng.randrange(1, 40), ts)
        events += analyzer.feed(side, bytes(data), ts)
    events += analyzer.eof(10_000)
    assert not [e for e in events if isinstance(e, ParseError) and e.code == "internal"]
