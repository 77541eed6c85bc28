"""StreamPosition.place: chunks positioned by TCP sequence number become data and skip pieces.

Each test states the pieces a protocol analyzer would be handed and the counters a user reads
(gap_bytes, overlap_bytes, resyncs).
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.conn.stream import StreamPosition

MOD = 1 << 32


def test_in_order_chunks_pass_through_unchanged():
    pos = StreamPosition()
    assert pos.place(1000, b"GET / HTTP/1.1\r\n", 16) == [("data", b"GET / HTTP/1.1\r\n")]
    assert pos.place(1016, b"Host: a\r\n\r\n", 11) == [("data", b"Host: a\r\n\r\n")]
    assert pos.expected == 1027
    assert (pos.gap_bytes, pos.overlap_bytes, pos.resyncs) == (0, 0, 0)


def test_first_chunk_sets_position_without_skip():
    pos = StreamPosition()
    assert pos.place(123456, b"abc", 3) == [("data", b"abc")]
    assert pos.expected == 123459


def test_gap_ahead_is_skipped_by_its_exact_length():
    pos = StreamPosition()
    pos.place(100, b"0123456789", 10)
    assert pos.place(117, b"xyz", 3) == [("skip", 7), ("data", b"xyz")]
    assert pos.gap_bytes == 7
    assert pos.expected == 120


def test_duplicate_chunk_is_dropped_whole():
    pos = StreamPosition()
    pos.place(100, b"0123456789", 10)
    assert pos.place(100, b"0123456789", 10) == []
    assert pos.place(104, b"456", 3) == []
    assert pos.overlap_bytes == 13
    assert pos.expected == 110
    assert pos.place(110, b"ab", 2) == [("data", b"ab")]


def test_overlap_prefix_is_cut():
    pos = StreamPosition()
    pos.place(100, b"0123456789", 10)
    assert pos.place(107, b"789abc", 6) == [("data", b"abc")]
    assert pos.overlap_bytes == 3
    assert pos.expected == 113


def test_chunk_ending_exactly_at_expected_is_a_duplicate():
    pos = StreamPosition()
    pos.place(0, b"abcd", 4)
    assert pos.place(2, b"cd", 2) == []
    assert pos.overlap_bytes == 2
    assert pos.expected == 4


def test_wrap_around_at_2_pow_32_is_contiguous():
    pos = StreamPosition()
    assert pos.place(MOD - 3, b"abcdef", 6) == [("data", b"abcdef")]
    assert pos.expected == 3
    assert pos.place(3, b"gh", 2) == [("data", b"gh")]
    assert (pos.gap_bytes, pos.overlap_bytes, pos.resyncs) == (0, 0, 0)


def test_gap_across_wrap_is_skipped_exactly():
    pos = StreamPosition()
    pos.place(MOD - 10, b"0123456789"[:5], 5)  # expected = MOD - 5
    assert pos.place(2, b"zz", 2) == [("skip", 7), ("data", b"zz")]
    assert pos.gap_bytes == 7
    assert pos.expected == 4


def test_overlap_across_wrap_is_cut():
    pos = StreamPosition()
    pos.place(MOD - 2, b"abcd", 4)  # covers MOD-2 .. 1, expected 2
    assert pos.place(MOD - 1, b"bcdEF", 5) == [("data", b"EF")]
    assert pos.overlap_bytes == 3
    assert pos.expected == 4


def test_jump_of_exactly_one_gib_is_a_gap():
    pos = StreamPosition()
    pos.place(0, b"a", 1)
    assert pos.place(1 + (1 << 30), b"b", 1) == [("skip", 1 << 30), ("data", b"b")]
    assert pos.resyncs == 0


def test_implausible_forward_jump_resyncs_without_skip():
    pos = StreamPosition()
    pos.place(0, b"a", 1)
    assert pos.place(2 + (1 << 30), b"new stream", 10) == [("data", b"new stream")]
    assert pos.resyncs == 1
    assert pos.gap_bytes == 0
    assert pos.expected == 12 + (1 << 30)
    assert pos.place(12 + (1 << 30), b"!", 1) == [("data", b"!")]


def test_implausible_backward_jump_resyncs_and_keeps_data():
    pos = StreamPosition()
    pos.place(3_000_000_000, b"abc", 3)
    back = 3_000_000_003 - (1 << 30) - 1
    assert pos.place(back, b"xyz", 3) == [("data", b"xyz")]
    assert pos.resyncs == 1
    assert pos.overlap_bytes == 0
    assert pos.expected == back + 3


def test_backward_jump_of_one_gib_is_an_overlap():
    pos = StreamPosition()
    pos.place(3_000_000_000, b"abc", 3)
    assert pos.place(3_000_000_003 - (1 << 30), b"xyz", 3) == []
    assert pos.resyncs == 0
    assert pos.overlap_bytes == 3


def test_known_length_hole_follows_the_carried_bytes():
    pos = StreamPosition()
    assert pos.place(500, b"HTTP/1.1 200 OK\r\n", 4096) == [
        ("data", b"HTTP/1.1 200 OK\r\n"), ("skip", 4096 - 17)]
    assert pos.expected == 4596
    assert pos.place(4596, b"next", 4) == [("data", b"next")]
    assert pos.gap_bytes == 0  # a hole the chunk announced is not a lost record


def test_chunk_without_any_data_is_one_skip():
    pos = StreamPosition()
    pos.place(0, b"ab", 2)
    assert pos.place(2, b"", 100) == [("skip", 100)]
    assert pos.expected == 102


def test_overlap_cut_reaching_into_the_hole():
    pos = StreamPosition()
    pos.place(0, b"abcdef", 6)
    # covers 2..12 but carries only 2..4: 4 bytes overlap, then 6..12 missing
    assert pos.place(2, b"cd", 10) == [("skip", 6)]
    assert pos.overlap_bytes == 4
    assert pos.expected == 12


def test_seq_none_is_contiguous():
    pos = StreamPosition()
    assert pos.place(None, b"abc", 3) == [("data", b"abc")]
    assert pos.expected is None
    assert pos.place(None, b"de", 5) == [("data", b"de"), ("skip", 3)]
    assert pos.expected is None


def test_seq_none_after_known_position_advances_it():
    pos = StreamPosition()
    pos.place(10, b"abc", 3)
    assert pos.place(None, b"de", 2) == [("data", b"de")]
    assert pos.expected == 15
    assert pos.place(15, b"f", 1) == [("data", b"f")]
    assert pos.expected == 16


def test_seq_none_wraps():
    pos = StreamPosition()
    pos.place(MOD - 1, b"a", 1)
    pos.place(None, b"bc", 2)
    assert pos.expected == 2


# -- property: random chunking with duplicates and overlap ---------------------------------------

def _replay(start: int, pieces_per_chunk: list[list]) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """Lays the pieces out from `start` (unwrapped): known bytes by offset, skipped ranges."""
    known: dict[int, int] = {}
    skipped: list[tuple[int, int]] = []
    at = 0
    for pieces in pieces_per_chunk:
        for kind, value in pieces:
            if kind == "data":
                for i, b in enumerate(value):
                    assert at + i not in known
                    known[at + i] = b
                at += len(value)
            else:
                assert value > 0
                skipped.append((at, at + value))
                at += value
    return known, skipped


@st.composite
def _deliveries(draw):
    """(stream, initial seq, chunks as (offset, length, carried)) with non-decreasing offsets."""
    stream = draw(st.binary(min_size=1, max_size=300))
    start = draw(st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 400, MOD - 1)))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(stream) - 1), max_size=30))
                      if len(stream) > 1 else []))
    bounds = [0, *cuts, len(stream)]
    chunks = []
    for a, b in zip(bounds, bounds[1:]):
        fate = draw(st.sampled_from(["send", "send", "drop", "dup", "overlap"]))
        if fate == "drop" and a != 0:
            continue
        chunks.append((a, b - a))
        if fate == "dup":
            chunks.append((a, b - a))
        elif fate == "overlap":
            back = draw(st.integers(0, a))
            chunks.append((back, b - back))  # a retransmit reaching back over old bytes
    chunks.sort(key=lambda c: c[0])
    return stream, start, chunks


@settings(max_examples=400, deadline=None)
@given(_deliveries())
def test_random_chunking_yields_original_bytes_and_skips_only_missing(delivery):
    stream, start, chunks = delivery
    pos = StreamPosition()
    out = [pos.place((start + off) % MOD, stream[off:off + n], n) for off, n in chunks]
    known, skipped = _replay(0, out)
    covered = set()
    for off, n in chunks:
        covered.update(range(off, off + n))
    end = max(off + n for off, n in chunks)
    assert known == {i: stream[i] for i in covered}
    missing = sorted(set(range(end)) - covered)
    assert [i for a, b in skipped for i in range(a, b)] == missing
    assert pos.gap_bytes == len(missing)
    assert pos.expected == (start + end) % MOD
    assert pos.resyncs == 0


@settings(max_examples=300, deadline=None)
@given(_deliveries(), st.data())
def test_random_chunking_with_short_data_never_misplaces_a_byte(delivery, data):
    stream, start, chunks = delivery
    pos = StreamPosition()
    out = []
    for off, n in chunks:
        carried = data.draw(st.integers(0, n))
        out.append(pos.place((start + off) % MOD, stream[off:off + carried], n))
    known, skipped = _replay(0, out)
    end = max(off + n for off, n in chunks)
    assert all(stream[i] == b for i, b in known.items())
    laid = sorted(set(known) | {i for a, b in skipped for i in range(a, b)})
    assert laid == list(range(end))  # every position handed on exactly once, in order
    assert pos.expected == (start + end) % MOD
