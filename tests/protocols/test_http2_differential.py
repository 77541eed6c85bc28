"""The compiled HTTP/2 analyzer (l7scope/dataplane/h2conn.c) gives exactly the events, counters,
memory figures and per-direction state of the Python analyzer it replaced (http2_reference.py,
kept here as the reference only): random conversations of every frame type, valid and not
(HPACK blocks from a real encoder and hostile ones, padding, priority, CONTINUATION, RST_STREAM,
GOAWAY, SETTINGS with table and frame sizes, PUSH_PROMISE, garbage, prefaces, capture holes),
both directions, with random limits, fed whole, octet by octet and at random splits."""
from __future__ import annotations

import hpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7scope.protocols.http2 import PREFACE, Http2Analyzer
from l7scope.protocols.message import AnalyzerLimits, HttpMessage

from . import http2_reference as reference

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0, 1, 2, 3, 4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 5, 6, 7, 8, 9
END_STREAM, END_HEADERS, PADDED, PRIO = 0x1, 0x4, 0x8, 0x20


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + \
        payload


NAMES = st.sampled_from([":method", ":path", ":authority", ":status", ":scheme", "content-type",
                         "Content-Type", "grpc-status", "x-a", "x-long", "te", "é-name",
                         "host"])
VALUES = st.one_of(
    st.sampled_from(["GET", "POST", "/", "/p?q=1", "200", "204", "103", "100", "099", "2000",
                     "5x0", "application/grpc", "application/grpc+proto", "text/plain", "",
                     "0", "13", "ünï", "h.test"]),
    st.text(max_size=12), st.integers(0, 3000).map(lambda n: "v" * n))
HEADER_LIST = st.lists(st.tuples(NAMES, VALUES), max_size=8)
RAW_BLOCK = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"\x82\x84\x86", b"\xbe", b"\xbf\xc0", b"\x3f\xe1\x1f", b"\x20\x82",
                     b"\x40\x01\xff\x01\xfe", b"\x88", b"\x48\x03\x31\x30\x33",
                     b"\x00\x03x-a\x83\xff\xff\xff", b"\x7f\xff\xff\xff\xff\x0f"]))
SIDS = st.sampled_from([1, 1, 3, 3, 5, 7, 2, 4, 0, 0x7FFFFFFF])
PADDING = st.integers(0, 6)


@st.composite
def header_frame(draw, encoder: hpack.Encoder) -> bytes:
    """HEADERS (maybe split into CONTINUATION frames) or PUSH_PROMISE, maybe padded."""
    if draw(st.integers(0, 3)):
        block = encoder.encode(draw(HEADER_LIST), huffman=draw(st.booleans()))
    else:
        block = draw(RAW_BLOCK)
    sid, pad = draw(SIDS), draw(PADDING)
    flags = draw(st.sampled_from([0, END_STREAM, PADDED, PRIO, END_STREAM | PADDED | PRIO]))
    cut = draw(st.integers(0, len(block))) if draw(st.integers(0, 3)) == 0 else len(block)
    first, rest = block[:cut], block[cut:]
    ftype, fixed = (PUSH_PROMISE, draw(SIDS).to_bytes(4, "big")) if draw(st.integers(0, 9)) == 0 \
        else (HEADERS, b"")
    prio = b"\x00\x00\x00\x00\x10" if flags & PRIO and ftype == HEADERS else b""
    pad_len = bytes([draw(st.sampled_from([pad, pad, 200]))]) if flags & PADDED else b""
    body = pad_len + prio + fixed + first + (b"\x00" * pad if flags & PADDED else b"")
    out = frame(ftype, flags | (0 if rest else END_HEADERS), sid, body)
    if rest:
        csid = sid if draw(st.integers(0, 5)) else draw(SIDS)
        out += frame(CONTINUATION, END_HEADERS if draw(st.integers(0, 5)) else 0, csid, rest)
    return out


@st.composite
def other_frame(draw) -> bytes:
    kind = draw(st.integers(0, 11))
    sid = draw(SIDS)
    if kind <= 3:
        payload = draw(st.one_of(st.binary(max_size=20), st.integers(0, 6000).map(
            lambda n: b"b" * n)))
        flags = draw(st.sampled_from([0, END_STREAM, PADDED, END_STREAM | PADDED]))
        if flags & PADDED:
            payload = bytes([draw(st.sampled_from([0, 2, min(len(payload) + 1, 255), 255]))]) + payload
        return frame(DATA, flags, sid, payload)
    if kind == 4:
        return frame(RST_STREAM, 0, sid, draw(st.integers(0, 20)).to_bytes(4, "big"))
    if kind == 5:
        return frame(GOAWAY, 0, 0, draw(st.sampled_from([0, 1, 2, 3, 0x7FFFFFFF])).to_bytes(
            4, "big") + draw(st.sampled_from([0, 0, 2, 8, 99])).to_bytes(4, "big"))
    if kind == 6:
        pairs = draw(st.lists(st.tuples(st.sampled_from([1, 5, 3, 9]), st.sampled_from(
            [0, 100, 4096, 20000, 65536, 70000, 2**32 - 1, 16384, 1 << 20])), max_size=3))
        return frame(SETTINGS, 0, 0, b"".join(i.to_bytes(2, "big") + v.to_bytes(4, "big")
                                              for i, v in pairs))
    if kind == 7:
        return frame(SETTINGS, 1, 0)
    if kind == 8:
        return frame(WINDOW_UPDATE, 0, draw(st.sampled_from([0, sid])), b"\x00\x00\x10\x00")
    if kind == 9:
        return frame(PING, draw(st.sampled_from([0, 1])), 0, b"p" * 8)
    if kind == 10:
        return frame(PRIORITY, 0, sid, b"\x00\x00\x00\x00\x10")
    return frame(draw(st.integers(10, 255)), 0, sid, draw(st.binary(max_size=8)))


@st.composite
def conversation(draw) -> list:
    encoders = {True: hpack.Encoder(), False: hpack.Encoder()}
    ops = []
    for _ in range(draw(st.integers(1, 16))):
        from_client = draw(st.booleans())
        kind = draw(st.integers(0, 19))
        if kind < 8:
            ops.append(("feed", from_client, draw(header_frame(encoders[from_client]))))
        elif kind < 16:
            ops.append(("feed", from_client, draw(other_frame())))
        elif kind == 16:
            ops.append(("skip", from_client, draw(st.integers(0, 300))))
        elif kind == 17:
            ops.append(("feed", from_client, draw(st.binary(min_size=1, max_size=40))))
        elif kind == 18:
            ops.append(("feed", from_client, PREFACE))
        else:
            ops.append(("feed", from_client, bytes(range(256)) * draw(st.integers(1, 4))))
    return ops


LIMITS = st.sampled_from([
    AnalyzerLimits(),
    AnalyzerLimits(max_header_bytes=600, max_headers=3, body_capture=48, max_pending=1),
    AnalyzerLimits(max_header_bytes=120, max_headers=12, body_capture=0, max_pending=2),
])


def cut(data: bytes, mode: str, cuts: list[int]) -> list[bytes]:
    if mode == "whole" or not data:
        return [data]
    if mode == "octets":
        return [data[i:i + 1] for i in range(len(data))]
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def state(analyzer) -> tuple:
    dirs = analyzer._dirs
    return (analyzer.counters(), analyzer.memory(),
            [(dirs[d].decoder.table_size, dirs[d].decoder.max_table_size,
              dirs[d].splitter.max_frame_size) for d in (True, False)])


def run_both(limits, seen_from_start, max_stream_bytes, ops, mode, cuts, preface=True) -> list:
    shared_ours: dict[str, int] = {}
    shared_ref: dict[str, int] = {}
    ours = Http2Analyzer(limits, seen_from_start=seen_from_start, counters=shared_ours,
                         max_stream_bytes=max_stream_bytes)
    ref = reference.Http2Analyzer(limits, seen_from_start=seen_from_start, counters=shared_ref,
                                  max_stream_bytes=max_stream_bytes)
    if seen_from_start and preface:
        ops = [("feed", True, PREFACE)] + ops
    found = []
    for ts, (op, from_client, arg) in enumerate(ops, start=1):
        if op == "skip":
            calls = [(ours.skip(from_client, arg, ts), ref.skip(from_client, arg, ts))]
        else:
            calls = [(ours.feed(from_client, piece, ts), ref.feed(from_client, piece, ts))
                     for piece in cut(arg, mode, cuts)]
        for mine, theirs in calls:
            assert mine == theirs, (op, from_client, ts)
            assert state(ours) == state(ref), (op, ts)
            assert shared_ours == shared_ref
            found += mine
    mine, theirs = ours.eof(10**6), ref.eof(10**6)
    assert mine == theirs
    assert state(ours) == state(ref) and shared_ours == shared_ref
    return found + mine


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LIMITS, st.booleans(), st.sampled_from([1024 * 1024, 3000]), conversation(),
       st.sampled_from(["whole", "octets", "splits"]), st.lists(st.integers(0, 1 << 20),
                                                                max_size=10))
def test_compiled_analyzer_equals_the_reference(limits, seen, max_stream_bytes, ops, mode, cuts):
    run_both(limits, seen, max_stream_bytes, ops, mode, cuts)


def test_an_ordinary_conversation_is_equal_and_gives_its_exchanges():
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    request = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/x")]
    ops = []
    for sid in (1, 3, 5):
        ops.append(("feed", True, frame(HEADERS, END_HEADERS | END_STREAM, sid,
                                        enc_c.encode(request))))
    for sid in (1, 3, 5):
        ops.append(("feed", False, frame(HEADERS, END_HEADERS, sid, enc_s.encode(
            [(":status", "200"), ("content-type", "application/grpc")]))))
        ops.append(("feed", False, frame(DATA, END_STREAM, sid, b"body")))
    for mode in ("whole", "octets", "splits"):
        found = run_both(AnalyzerLimits(), True, 1 << 20, ops, mode, [3, 11, 40])
        assert [(e.protocol, e.stream_id, e.request.path, e.response.status, e.response.body)
                for e in found] == [("grpc", sid, "/x", 200, b"body") for sid in (1, 3, 5)]


def test_an_upgraded_connection_is_equal():
    request = HttpMessage(is_request=True, start_ns=5, end_ns=6, wire_bytes=90,
                          headers=(("Host", "h"), ("Upgrade", "h2c"), ("X-Ünï", "v")),
                          method="GET", path="/u", authority="h", body=b"abc", body_len=3,
                          notes=("a note",))
    ours, ref = Http2Analyzer(), reference.Http2Analyzer()
    ours.upgraded_from(request)
    ref.upgraded_from(request)
    assert state(ours) == state(ref)
    response = frame(HEADERS, END_HEADERS | END_STREAM, 1,
                     hpack.Encoder().encode([(":status", "200")]))
    mine, theirs = ours.feed(False, response, 7), ref.feed(False, response, 7)
    assert mine == theirs and len(mine) == 1
    assert mine[0].request.headers[-1] == ("x-ünï", "v") and mine[0].request.notes == ("a note",)


def recorded(workload: str) -> list:
    """Two h2 peers in memory (tests/conn/h2_peers.py), write by write: 12 requests, 4 in
    flight, unary gRPC with trailers or GETs with 21,000-octet bodies in three DATA frames."""
    from tests.conn.h2_peers import H2Peers, get

    peers = H2Peers()
    peers.start()
    grpc = [(":method", "POST"), (":scheme", "http"), (":authority", "g"), (":path", "/s/M"),
            ("content-type", "application/grpc"), ("te", "trailers")]
    for first in range(0, 12, 4):
        if workload == "grpc":
            sids = [peers.request(grpc, b"\x00\x00\x00\x00\x01x") for _ in range(4)]
        else:
            sids = [peers.request(get(f"/r/{first + i}")) for i in range(4)]
        for sid in sids:
            if workload == "grpc":
                peers.respond(sid, [(":status", "200"), ("content-type", "application/grpc")],
                              b"\x00\x00\x00\x00\x02ok", trailers=[("grpc-status", "0")])
            else:
                peers.server.send_headers(sid, [(":status", "200")])
                for last in (False, False, True):
                    peers.server.send_data(sid, b"b" * 7000, end_stream=last)
                    peers.pump()  # the client's WINDOW_UPDATEs
    return [("feed", from_client, data) for from_client, data in peers.writes]


def test_recorded_conversations_are_equal_whole_by_octet_split_and_with_holes():
    for workload in ("grpc", "bodies"):
        ops = recorded(workload)
        for mode in ("whole", "octets", "splits"):
            found = run_both(AnalyzerLimits(), True, 1 << 20, ops, mode, [7, 100, 333],
                             preface=False)
            assert [e.response.status for e in found] == [200] * 12, (workload, mode)
        holed = ops[:9] + [("skip", False, 700)] + ops[9:]
        run_both(AnalyzerLimits(body_capture=100), True, 1 << 20, holed, "splits", [50, 4000],
                 preface=False)
        run_both(AnalyzerLimits(), False, 1 << 20, ops[5:], "whole", [], preface=False)


def test_a_block_of_many_unlearned_references_names_eight_then_counts_the_rest():
    """Picked up mid-way, ten references to dynamic entries never learned: eight named in
    notes, then one note for the rest; every one counted."""
    block = b"\x82\x84" + bytes(0x80 | i for i in range(62, 72))
    ops = [("feed", True, frame(HEADERS, END_HEADERS | END_STREAM, 1, block))]
    (exchange,) = run_both(AnalyzerLimits(), False, 1 << 20, ops, "whole", [])
    assert exchange.request.method == "GET" and exchange.request.path == "/"
    assert exchange.request.notes == tuple(
        f"hpack: index {i} not learned" for i in range(62, 70)) + (
        "hpack: 2 more headers not learned",)
    analyzer = Http2Analyzer(seen_from_start=False)
    analyzer.feed(True, ops[0][2], 1)
    assert analyzer.counters()["hpack_unknown_headers"] == 10


@st.composite
def many_streams(draw) -> list:
    """Many stream ids (more than the open and closed bounds of small limits): requests,
    responses, DATA, resets and late WINDOW_UPDATEs in any order, ids reused."""
    encoders = {True: hpack.Encoder(), False: hpack.Encoder()}
    ops = []
    for _ in range(draw(st.integers(1, 60))):
        sid = draw(st.integers(0, 120)) * 2 + 1
        kind = draw(st.integers(0, 5))
        if kind == 0:
            block = encoders[True].encode([(":method", "GET"), (":path", f"/{sid}")])
            ops.append(("feed", True, frame(HEADERS, END_HEADERS | draw(st.sampled_from(
                [0, END_STREAM])), sid, block)))
        elif kind == 1:
            block = encoders[False].encode([(":status", "200")])
            ops.append(("feed", False, frame(HEADERS, END_HEADERS | draw(st.sampled_from(
                [0, END_STREAM])), sid, block)))
        elif kind == 2:
            ops.append(("feed", draw(st.booleans()), frame(DATA, draw(st.sampled_from(
                [0, END_STREAM])), sid, b"d" * draw(st.integers(0, 700)))))
        elif kind == 3:
            ops.append(("feed", draw(st.booleans()), frame(RST_STREAM, 0, sid, b"\0\0\0\x08")))
        else:
            ops.append(("feed", draw(st.booleans()), frame(WINDOW_UPDATE, 0, sid,
                                                           b"\0\0\1\0")))
    return ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 2, 128]), st.sampled_from([1 << 20, 5000]), many_streams())
def test_many_streams_past_the_bounds_are_equal(max_pending, max_stream_bytes, ops):
    limits = AnalyzerLimits(max_pending=max_pending, body_capture=300)
    run_both(limits, True, max_stream_bytes, ops, "whole", [])
