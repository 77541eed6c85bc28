"""Http2Analyzer and HPACK under hostile input: counted drops, bounded state, exact values."""
from __future__ import annotations

import random

import hpack
import pytest

from l7scope.protocols import hpack as l7hpack
from l7scope.protocols import http2_frames
from tests.protocols.hpack_reference_huffman import huffman_encode
from l7scope.protocols.http2 import Http2Analyzer, grpc_status, grpc_status_of, header_list_size
from l7scope.protocols.http2_frames import PREFACE
from l7scope.protocols.message import ExchangeParsed, HttpMessage, ParseError

DATA, HEADERS, SETTINGS = 0, 1, 4
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + \
        payload


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(i.to_bytes(2, "big") + v.to_bytes(4, "big")
                                          for i, v in pairs))


def hp_int(value: int, prefix_bits: int, flags: int) -> bytes:
    """RFC 7541 5.1 integer with its first octet's flag bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out, value = bytearray([flags | limit]), value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def size_update(value: int) -> bytes:
    return hp_int(value, 5, 0x20)


def literal(name: str, value: str, indexing: bool = False) -> bytes:
    """Literal with a literal name (6.2.1 / 6.2.2), no Huffman."""
    n, v = name.encode(), value.encode()
    return (b"\x40" if indexing else b"\x00") + hp_int(len(n), 7, 0) + n + \
        hp_int(len(v), 7, 0) + v


REQUEST = [(":method", "GET"), (":scheme", "https"), (":authority", "h"), (":path", "/x")]


def feed_all(analyzer: Http2Analyzer, chunks: list[tuple[bool, bytes]]) -> list:
    events = []
    for ts, (from_client, data) in enumerate(chunks, start=1):
        events += analyzer.feed(from_client, data, ts)
    return events


def exchanges(events) -> list[ExchangeParsed]:
    return [e for e in events if isinstance(e, ExchangeParsed)]


# --- 1. streams without headers, numbers from the wire ------------------------------------

def test_data_only_stream_is_counted_not_reported():
    shared: dict[str, int] = {}
    analyzer = Http2Analyzer(seen_from_start=False, counters=shared)
    events = feed_all(analyzer, [
        (True, frame(DATA, 0, 1, b"\x00\x00\x00\x00\x02hi")),
        (False, frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x02ok")),  # stream 1 ends here
    ])
    assert exchanges(events) == []
    assert shared == {"http2_streams_without_headers": 1}  # counted when it happened
    assert analyzer.eof(99) == []
    assert analyzer.counters()["streams_without_headers"] == 1


def test_mid_grpc_stream_start_then_eof_reports_only_streams_with_headers():
    # The agent starts while stream 1 streams messages both ways; stream 3 starts after.
    enc_c = hpack.Encoder()
    grpc = REQUEST[:3] + [(":path", "/pkg.Svc/Watch"), ("content-type", "application/grpc")]
    chunks = [(True, frame(DATA, 0, 1, b"\x00\x00\x00\x00\x01a")),
              (False, frame(DATA, 0, 1, b"\x00\x00\x00\x00\x01b")),
              (True, frame(HEADERS, END_HEADERS | END_STREAM, 3, enc_c.encode(grpc)))]
    analyzer = Http2Analyzer(seen_from_start=False)
    events = feed_all(analyzer, chunks) + analyzer.eof(99)
    found = exchanges(events)
    assert [e.stream_id for e in found] == [3]
    assert found[0].request.path == "/pkg.Svc/Watch" and found[0].response is None
    assert analyzer.counters()["streams_without_headers"] == 1
    assert all(e.request is not None or e.response is not None for e in found)


@pytest.mark.parametrize("raw", ["\u00b2\u00b2\u00b2", "\u0661\u0662\u0663", "2" * 5000, "099",
                                 "20", "2OO"])
def test_bad_status_is_none_with_a_note_even_at_eof(raw):
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    chunks = [(True, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1, enc_c.encode(REQUEST))),
              (False, frame(HEADERS, END_HEADERS, 1, enc_s.encode([(":status", raw)])))]
    analyzer = Http2Analyzer()
    events = feed_all(analyzer, chunks)
    assert exchanges(events) == []
    found = exchanges(analyzer.eof(99))  # the response never ended: built at eof
    assert len(found) == 1
    response = found[0].response
    assert response.status is None and not response.complete
    assert f"bad :status {raw[:16]!r}" in response.notes


def test_status_of_three_ascii_digits():
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    chunks = [(True, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1, enc_c.encode(REQUEST))),
              (False, frame(HEADERS, END_HEADERS | END_STREAM, 1, enc_s.encode([(":status", "503")])))]
    found = exchanges(feed_all(Http2Analyzer(), chunks))
    assert found[0].response.status == 503 and found[0].response.notes == ()


@pytest.mark.parametrize("raw,expected", [("0", 0), ("16", 16), ("007", 7), ("\u0663", None),
                                          ("\u00b2", None), ("9" * 5000, None), ("1000", None),
                                          ("", None), (" 1", None), ("-1", None)])
def test_grpc_status_ascii_digits_bounded(raw, expected):
    response = HttpMessage(False, 1, 2, 10, headers=((":status", "200"),),
                           trailers=(("grpc-status", raw),))
    assert grpc_status_of(response) == expected
    assert grpc_status(ExchangeParsed("grpc", None, response, 1)) == expected


# --- 2. SETTINGS_HEADER_TABLE_SIZE applied on ACK, bounded -------------------------------

def _table_size_conversation(advertised: int, update: int, ack_first: bool) -> list:
    """The client advertises a table size; the server's encoder raises its table to
    ``update`` (a size update and a 40,000-octet entry), before or after its ACK."""
    enc_c = hpack.Encoder()
    block = size_update(update) + literal("x-big", "v" * 40_000, indexing=True) + b"\x88"
    # the client also allows frames of 64 KiB (SETTINGS_MAX_FRAME_SIZE): the block is one frame
    chunks = [(True, PREFACE + settings((1, advertised), (5, 65_536)) +
               frame(HEADERS, END_HEADERS | END_STREAM, 1, enc_c.encode(REQUEST)))]
    ack = (False, frame(SETTINGS, ACK, 0))
    response = (False, frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    return chunks + ([ack, response] if ack_first else [response, ack])


def test_table_size_is_not_applied_before_the_ack():
    analyzer = Http2Analyzer()
    found = exchanges(feed_all(analyzer, _table_size_conversation(60_000, 60_000, False)))
    response = found[0].response
    # Before its ACK the server's encoder is bound by 4,096: a size update to 60,000 is a
    # decoding error, the table reset, nothing inserted.
    assert "hpack: table reset (size_update_too_large)" in response.notes
    assert response.status is None
    assert analyzer._dirs[False].decoder.table_size == 0
    assert analyzer._dirs[False].decoder.max_table_size == 60_000  # applied at the ACK
    assert analyzer.counters()["hpack_resets"] == 1


def test_table_size_applied_at_the_ack():
    analyzer = Http2Analyzer()
    found = exchanges(feed_all(analyzer, _table_size_conversation(60_000, 60_000, True)))
    response = found[0].response
    assert response.status == 200 and response.notes == ()
    assert response.header("x-big") == "v" * 40_000
    assert analyzer._dirs[False].decoder.table_size == 40_000 + 5 + 32
    assert analyzer.counters()["hpack_table_size_clamped"] == 0


def test_huge_table_size_is_clamped_counted_and_explained():
    shared: dict[str, int] = {}
    analyzer = Http2Analyzer(counters=shared)
    chunks = _table_size_conversation(2**32 - 1, 2**32 - 1, True)
    events = feed_all(analyzer, chunks[:1])
    assert shared == {"http2_hpack_table_size_clamped": 1}  # counted when the SETTINGS came
    found = exchanges(events + feed_all(analyzer, chunks[1:]))
    decoder = analyzer._dirs[False].decoder
    assert decoder.max_table_size == 65_536 and decoder.table_size == 0
    response = found[0].response
    assert response.partial and response.status is None
    assert "hpack: table reset (size_update_too_large)" in response.notes
    assert "hpack: peer table size 4294967295 above the 65536 octets followed" in response.notes


def test_clamped_table_still_decodes_within_the_bound():
    analyzer = Http2Analyzer()
    found = exchanges(feed_all(analyzer, _table_size_conversation(2**32 - 1, 65_536, True)))
    assert found[0].response.status == 200 and found[0].response.notes == ()
    assert analyzer._dirs[False].decoder.table_size == 40_037
    assert analyzer.memory() < 200_000


def test_settings_max_frame_size_out_of_range_is_ignored():
    analyzer = Http2Analyzer()
    feed_all(analyzer, [(True, PREFACE + settings((5, 2**32 - 1))),
                        (False, settings((5, 1 << 20)))])
    assert analyzer._dirs[False].splitter.max_frame_size == 16_384  # 2**32-1 is not a size
    assert analyzer._dirs[True].splitter.max_frame_size == 1 << 20


# --- 3. Huffman decoding bounded by bytes -------------------------------------------------
# The compiled decoder keeps no cache of decoded strings (decoding costs less than a lookup):
# what Huffman decoding holds between blocks is one scratch buffer, at most SCRATCH_KEEP octets.

SCRATCH_KEEP = 65_536


def test_huffman_scratch_bounded_by_bytes_for_long_strings():
    decoder = l7hpack.Decoder()
    rng = random.Random(7)
    for n in range(4095):
        value = f"{n:05d}" + "".join(rng.choice("abcdefgh") for _ in range(300))
        encoded = huffman_encode(value.encode())
        block = b"\x00\x01a" + hp_int(len(encoded), 7, 0x80) + encoded  # literal, no indexing
        assert decoder.decode(block) == [("a", value)]
        assert 0 < decoder.huffman_scratch <= SCRATCH_KEEP
    huge = huffman_encode(b"x" * 200_000)  # one 200 kB string: decoded, then not kept
    assert decoder.decode(b"\x00\x01a" + hp_int(len(huge), 7, 0x80) + huge) == [("a", "x" * 200_000)]
    assert decoder.huffman_scratch == 0


def test_huffman_scratch_bounded_by_bytes_for_short_strings():
    decoder = l7hpack.Decoder()
    for n in range(20_000):
        value = f"value-{n:08d}".encode()
        encoded = huffman_encode(value)
        assert decoder.decode(b"\x00\x01a" + hp_int(len(encoded), 7, 0x80) + encoded) == \
            [("a", value.decode())]
    assert 0 < decoder.huffman_scratch <= SCRATCH_KEEP
    assert l7hpack.Decoder().huffman_scratch == 0


# --- 4. open streams bounded by bytes; memory() -------------------------------------------

def test_open_streams_bounded_by_bytes_oldest_shed_and_counted():
    enc = hpack.Encoder()
    shared: dict[str, int] = {}
    analyzer = Http2Analyzer(counters=shared)
    body = b"b" * 4096
    chunks = [(True, PREFACE)]
    headers = {}
    for n in range(1024):
        sid = 2 * n + 1
        headers[sid] = REQUEST[:3] + [(":path", f"/open/{n:04d}")]
        chunks.append((True, frame(HEADERS, END_HEADERS, sid, enc.encode(headers[sid])) +
                       frame(DATA, END_STREAM, sid, body)))
    events = feed_all(analyzer, chunks)
    cost = 512 + header_list_size(headers[1]) + 4096
    still_open = (1 << 20) // cost
    shed = exchanges(events)
    assert len(shed) == 1024 - still_open == shared["http2_streams_shed_memory"]
    assert [e.stream_id for e in shed] == [2 * n + 1 for n in range(len(shed))]  # oldest first
    assert all(e.notes == ("stream dropped: open streams over the memory bound",) for e in shed)
    assert shed[0].request.body == body and shed[0].request.path == "/open/0000"
    assert analyzer.memory() <= (1 << 20) + 300_000  # was 5 MB of bodies alone
    rest = exchanges(analyzer.eof(99))
    assert len(rest) == still_open and analyzer.memory() < 300_000


def test_memory_counts_hpack_tables_at_their_rfc_size():
    analyzer = Http2Analyzer()
    before = analyzer.memory()
    block = literal("x-name", "v" * 1000, indexing=True)
    feed_all(analyzer, [(True, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                               hpack.Encoder().encode(REQUEST) + block))])
    # stream 1 is open (request ended, no response): its header list, overhead, HPACK entry
    table = analyzer._dirs[True].decoder.table_size
    assert table >= 6 + 1000 + 32
    stream = 512 + header_list_size(REQUEST + [("x-name", "v" * 1000)])
    assert analyzer.memory() - before == table + stream


def test_header_list_amplified_by_indexed_references_is_bounded():
    big = literal("x-big", "v" * 4000, indexing=True)
    refs = b"\xbe" * 200  # index 62: the entry just inserted, 200 times
    enc = hpack.Encoder()
    shared: dict[str, int] = {}
    analyzer = Http2Analyzer(counters=shared)
    found = exchanges(feed_all(analyzer, [(True, PREFACE + frame(
        HEADERS, END_HEADERS | END_STREAM, 1, enc.encode(REQUEST) + big + refs))]) +
        analyzer.eof(99))
    request = found[0].request
    assert header_list_size(request.headers) <= 64 * 1024
    copies = (64 * 1024 - header_list_size(REQUEST)) // (5 + 4000 + 32)  # 16 of 201
    assert list(request.headers) == REQUEST + [("x-big", "v" * 4000)] * copies
    assert "header list beyond 65536 octets dropped" in request.notes
    assert shared == {"http2_header_lists_truncated": 1}


# --- 5. resync: linear, bounded per connection ---------------------------------------------

def test_garbage_after_a_bad_preface_gives_up_once_counted():
    rng = random.Random(3)
    garbage = bytes(rng.getrandbits(8) for _ in range(600_000))
    shared: dict[str, int] = {}
    analyzer = Http2Analyzer(counters=shared)
    events = analyzer.feed(True, PREFACE[:-1] + b"X", 1)
    for i in range(0, len(garbage), 1460):
        events += analyzer.feed(True, garbage[i:i + 1460], 2)
        assert analyzer.memory() < 100_000
    codes = [e.code for e in events if isinstance(e, ParseError)]
    assert codes == ["framing_lost", "resync_abandoned"]
    assert shared == {"http2_hpack_resets": 1, "http2_resync_abandoned": 1}  # bad preface
    assert analyzer.feed(False, settings(), 3) == [] and analyzer.eof(4) == []


def test_frames_no_peer_sends_lose_sync_zeros_after_the_preface():
    analyzer = Http2Analyzer()
    events = analyzer.feed(True, PREFACE, 1)
    for _ in range(40):
        events += analyzer.feed(True, bytes(8192), 2)
    codes = [e.code for e in events if isinstance(e, ParseError)]
    # A DATA frame on stream 0 is no frame: resync, and zeros never hold a frame header.
    assert codes == ["framing_lost", "resync_abandoned"]
    assert analyzer.counters()["resync_abandoned"] == 1


def test_resync_examines_few_positions_with_the_full_check():
    rng = random.Random(5)
    garbage = bytes(rng.getrandbits(8) for _ in range(200_000))
    splitter = http2_frames.FrameSplitter(True, True, 65536, 4097, resync_limit=1 << 30)
    splitter.feed(PREFACE[:-1] + b"X", 1)
    for i in range(0, len(garbage), 100):
        splitter.feed(garbage[i:i + 100], 2)
    assert splitter.scan_dropped >= len(garbage) - 9 and splitter.state == "resync"
    # a cheap byte test picks the candidates: the full check runs on few positions
    assert splitter.header_checks < len(garbage) // 1000


def test_resync_checks_each_candidate_position_once():
    # a DATA header 16,639 octets long: a candidate for the byte test, too long to be plausible
    garbage = b"\x00\x40\xff\x00\x00\x7f\x7f\x7f\x7f" * 20_000
    splitter = http2_frames.FrameSplitter(True, True, 65536, 4097, resync_limit=1 << 30)
    splitter.feed(PREFACE[:-1] + b"X", 1)
    for i in range(0, len(garbage), 100):
        splitter.feed(garbage[i:i + 100], 2)
    assert splitter.header_checks == 20_000  # every candidate once, though fed in pieces
    # the 24 octets of the bad preface and the garbage are dropped, but the last 8 (no header yet)
    assert splitter.scan_dropped == 24 + len(garbage) - 8 and splitter.state == "resync"


def test_resync_still_finds_frames_after_garbage():
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    analyzer = Http2Analyzer(seen_from_start=False)
    request = frame(HEADERS, END_HEADERS | END_STREAM, 5, enc_c.encode(REQUEST))
    response = frame(HEADERS, END_HEADERS | END_STREAM, 5, enc_s.encode([(":status", "204")]))
    found = exchanges(feed_all(analyzer, [(True, b"\xff" * 5000 + request + settings()),
                                          (False, response)]))
    assert len(found) == 1 and found[0].request.path == "/x"
    assert found[0].response.status == 204


# --- 6. counters live -----------------------------------------------------------------------

def test_counters_move_when_the_drop_happens():
    from l7scope.protocols.message import AnalyzerLimits

    shared: dict[str, int] = {"other": 5}
    analyzer = Http2Analyzer(AnalyzerLimits(max_pending=1), counters=shared)  # 8 streams
    enc = hpack.Encoder()
    chunks = [(True, PREFACE)] + [
        (True, frame(HEADERS, END_HEADERS | END_STREAM, 2 * n + 1, enc.encode(REQUEST)))
        for n in range(10)]
    feed_all(analyzer, chunks)
    assert shared == {"other": 5, "http2_dropped_streams": 2}
    analyzer.feed(False, frame(HEADERS, END_HEADERS, 19, b"\xff\xff\xff\xff\xff\x7f"), 9)
    assert shared["http2_hpack_resets"] == 1  # integer overflow: table reset, now
    analyzer.eof(99)
    counts = analyzer.counters()
    assert {f"http2_{k}": v for k, v in counts.items() if v} == \
        {k: v for k, v in shared.items() if k != "other"}


def test_short_runs_of_frames_between_bad_headers_give_up_after_256():
    ping = frame(6, 0, 0, b"\xff" * 8)
    bad = frame(6, 0, 1, b"\xff" * 8)  # PING on a stream: no peer sends it
    analyzer = Http2Analyzer()
    events = analyzer.feed(True, PREFACE, 1)
    for _ in range(100):
        events += analyzer.feed(True, (ping + ping + bad) * 100, 2)
    codes = [e.code for e in events if isinstance(e, ParseError)]
    # each bad header charges 1 KiB (+ the octets scanned) to the 256 KiB resync limit
    assert 100 < codes.count("framing_lost") <= 256
    assert codes[-1] == "resync_abandoned" and analyzer.counters()["resync_abandoned"] == 1


def test_frame_longer_than_the_max_frame_size_in_sync_is_framing_lost_and_counted():
    # 0xff... after the preface reads as a 16 MiB frame: RFC 9113 4.2 makes it a FRAME_SIZE_ERROR,
    # so the octets are not a frame; they must not be swallowed uncounted as its payload
    shared: dict[str, int] = {}
    analyzer = Http2Analyzer(counters=shared)
    events = feed_all(analyzer, [(True, PREFACE + b"\xff" * 262_144)]) + analyzer.eof(99)
    codes = [e.code for e in events if isinstance(e, ParseError)]
    assert codes and codes[-1] == "resync_abandoned"
    assert shared["http2_resync_abandoned"] == 1


def test_a_raised_max_frame_size_lets_large_frames_through():
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    body = b"b" * 40_000
    chunks = [(True, PREFACE + settings((5, 65_536)) +
               frame(HEADERS, END_HEADERS | END_STREAM, 1, enc_c.encode(REQUEST))),
              (False, frame(HEADERS, END_HEADERS, 1, enc_s.encode([(":status", "200")])) +
               frame(DATA, END_STREAM, 1, body))]
    found = exchanges(feed_all(Http2Analyzer(), chunks))
    assert len(found) == 1 and found[0].response.status == 200 and found[0].response.notes == ()
    assert found[0].response.body_len == 40_000
