"""The compiled HTTP/2 frame splitter (l7scope/dataplane/h2frames.c) gives exactly the events,
counters and buffered sizes of the Python splitter it replaced (h2frames_reference.py, kept
here as the reference only): random sequences of frames, valid and not, garbage, prefaces and
capture holes, fed whole, octet by octet and at random splits, with random limits."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7scope.protocols import http2_frames as compiled

from . import h2frames_reference as reference

FRAME_TYPES = st.one_of(st.integers(0, 9), st.integers(10, 255))


@st.composite
def frame_bytes(draw) -> bytes:
    """A frame header + payload; lengths, flags and stream ids often break the type's rules."""
    ftype = draw(FRAME_TYPES)
    payload = draw(st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\x00" * 4, b"\x00" * 5, b"\x00" * 8, b"\x00\x03\x00\x00\x40\x00",
                         b"\x00\x05\x00\x00\x40\x01", b"\x04" + b"x" * 9]),
        st.integers(0, 20000).map(lambda n: b"d" * n)))
    length = len(payload) if draw(st.integers(0, 9)) else draw(st.integers(0, (1 << 24) - 1))
    flags = draw(st.one_of(st.sampled_from([0, 1, 4, 5, 8, 0x20, 0x2D]), st.integers(0, 255)))
    stream = draw(st.one_of(st.sampled_from([0, 1, 3, 5]), st.integers(0, (1 << 32) - 1)))
    return (length.to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big")
            + payload)


PIECE = st.one_of(
    frame_bytes(), frame_bytes(), frame_bytes(),
    st.integers(16385, 70000).map(  # over the initial SETTINGS_MAX_FRAME_SIZE (RFC 9113 4.2)
        lambda n: n.to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01" + b"d" * n),
    st.just(compiled.PREFACE), st.just(compiled.PREFACE[:10]),
    st.binary(min_size=1, max_size=64),
    st.integers(1, 3000).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)),
)
OP = st.one_of(
    st.tuples(st.just("feed"), PIECE),
    st.tuples(st.just("skip"), st.integers(0, 30000)),
    st.tuples(st.just("mfs"), st.integers(16384, (1 << 24) - 1)),
)
CONFIG = st.fixed_dictionaries({
    "expect_preface": st.booleans(), "in_sync": st.booleans(),
    "payload_cap": st.sampled_from([0, 7, 600, 65536]),
    "data_capture": st.sampled_from([0, 1, 49, 4097]),
    "scan_cap": st.sampled_from([16, 100, 65536]),
    "resync_limit": st.sampled_from([0, 50, 1030, 2040, 3000, 262144]),
})


def as_tuple(event) -> tuple:
    name = type(event).__name__
    if name == "Frame":
        return (name, event.type, event.flags, event.stream_id, event.length, event.payload,
                event.ts_start, event.ts_end, event.damaged, event.truncated)
    if name == "FramingLost":
        return (name, event.reason, event.ts)
    assert name == "FramingResumed", name
    return (name, event.skipped, event.ts)


def observe(splitter, events) -> tuple:
    return ([as_tuple(e) for e in events], splitter.state, splitter.abandoned,
            splitter.scan_dropped, splitter.memory(), splitter.max_frame_size)


def cut(data: bytes, mode: str, cuts: list[int]) -> list[bytes]:
    if mode == "whole" or not data:
        return [data]
    if mode == "octets":
        return [data[i:i + 1] for i in range(len(data))]
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def run_both(config: dict, ops: list, mode: str, cuts: list[int]) -> int:
    ours = compiled.FrameSplitter(**config)
    theirs = reference.FrameSplitter(**config)
    calls = 0
    for ts, (op, arg) in enumerate(ops, start=1):
        if op == "mfs":
            ours.max_frame_size = theirs.max_frame_size = max(theirs.max_frame_size, arg)
            continue
        if op == "skip":
            pairs = [(ours.skip(arg, ts), theirs.skip(arg, ts))]
        else:
            pairs = [(ours.feed(piece, ts), theirs.feed(piece, ts))
                     for piece in cut(arg, mode, cuts)]
        for mine, ref in pairs:
            calls += 1
            assert observe(ours, mine) == observe(theirs, ref), (op, ts)
    assert observe(ours, ours.finish(10**6)) == observe(theirs, theirs.finish(10**6))
    return calls


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONFIG, st.lists(OP, max_size=14), st.sampled_from(["whole", "octets", "splits"]),
       st.lists(st.integers(0, 1 << 20), max_size=12))
def test_compiled_splitter_equals_the_reference(config, ops, mode, cuts):
    run_both(config, ops, mode, cuts)


def test_a_recorded_conversation_with_a_hole_is_equal_and_yields_its_frames():
    settings_frame = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00\x40\x00"
    headers = b"\x00\x00\x03\x01\x05\x00\x00\x00\x01\x82\x84\x86"
    data = b"\x00\x00\x05\x00\x01\x00\x00\x00\x01hello"
    ops = [("feed", compiled.PREFACE + settings_frame + headers + data[:12]), ("skip", 2),
           ("feed", data), ("skip", 40), ("feed", b"junk" + headers + data)]
    config = dict(expect_preface=True, in_sync=True, payload_cap=600, data_capture=3)
    for mode in ("whole", "octets", "splits"):
        assert run_both(config, ops, mode, [5, 17, 30]) >= 5
    events = compiled.FrameSplitter(**config).feed(compiled.PREFACE + settings_frame + headers, 1)
    assert [(e.type, e.length, e.payload) for e in events] == [
        (4, 6, settings_frame[9:]), (1, 3, b"\x82\x84\x86")]


def test_mid_connection_frames_beyond_the_initial_size_are_equal_and_accepted():
    big = (20000).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01" + b"d" * 20000
    headers = b"\x00\x00\x03\x01\x04\x00\x00\x00\x01\x82\x84\x86"
    midway = dict(expect_preface=False, in_sync=False, payload_cap=600, data_capture=10)
    assert run_both(midway, [("feed", headers + headers + big), ("feed", big)], "whole", []) == 2
    events = compiled.FrameSplitter(**midway).feed(headers + headers + big + big, 1)
    # picked up mid-way the peer may have raised SETTINGS_MAX_FRAME_SIZE before we looked
    assert [(type(e).__name__, getattr(e, "length", None)) for e in events] == [
        ("FramingResumed", None), ("Frame", 3), ("Frame", 3), ("Frame", 20000), ("Frame", 20000)]
    # one octet waiting in the scan buffer at a hole and at the end
    for ops in ([("feed", b"\x00"), ("skip", 3)], [("feed", b"\x00")]):
        run_both(midway, ops, "whole", [])


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.binary(max_size=40), frame_bytes().map(lambda b: b[:60])),
       st.sampled_from([16384, 1 << 20, (1 << 24) - 1]), st.booleans(), st.integers(0, 50))
def test_header_judgements_equal_the_reference(data, max_frame_size, final, start):
    assert compiled.looks_like_http2(data) is reference.looks_like_http2(data)
    start = min(start, len(data))
    assert compiled.find_plausible_header(data, max_frame_size, final, start) == \
        reference.find_plausible_header(data, max_frame_size, final, start)
    if len(data) >= 9:
        assert compiled.plausible_header(data[:9], max_frame_size) is \
            reference.plausible_header(data[:9], max_frame_size)
        assert compiled.conforming_header(data[:9]) is reference.conforming_header(data[:9])


def test_timestamps_pass_through_whatever_their_size():
    """Record times are 64-bit unsigned: 2**63 and above come back as they went in."""
    splitter = compiled.FrameSplitter(True, True, 100, 10)
    big = (1 << 64) - 1
    assert splitter.feed(compiled.PREFACE + b"\x00\x00\x02\x00\x01\x00\x00", big - 1) == []
    assert splitter.feed(b"\x00\x01h", big) == []
    frame, = splitter.feed(b"i", 1 << 70)
    assert (frame.ts_start, frame.ts_end, frame.payload) == (big - 1, 1 << 70, b"hi")
    lost, = splitter.skip(1 << 80, -3)
    assert type(lost) is compiled.FramingLost
    assert (lost.reason, lost.ts) == ("capture gap outside a frame payload", -3)
