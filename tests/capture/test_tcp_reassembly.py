"""TCP reassembly: exact byte streams, holes of exact length, roles, closes, bounds."""
from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk, Role
from l7scope.capture.packet import ACK, FIN, PSH, RST, SYN, Packet
from l7scope.capture.tcp_reassembly import MAX_AHEAD, TcpReassembler, guess_client

CLIENT = ("10.1.0.1", 43210)
SERVER = ("10.1.0.2", 80)
MASK = 0xFFFFFFFF


def pkt(src, dst, seq, flags=ACK, payload=b"", ts=1_000, ack=0, missing=0) -> Packet:
    return Packet(ts, src[0], dst[0], src[1], dst[1], seq & MASK, ack & MASK, flags, payload, 4,
                  missing)


def handshake(r: TcpReassembler, cisn: int, sisn: int, ts: int = 1_000) -> list:
    ev = r.feed(pkt(CLIENT, SERVER, cisn, SYN, ts=ts))
    ev += r.feed(pkt(SERVER, CLIENT, sisn, SYN | ACK, ack=cisn + 1, ts=ts + 1))
    ev += r.feed(pkt(CLIENT, SERVER, cisn + 1, ACK, ack=sisn + 1, ts=ts + 2))
    return ev


def close_both(r: TcpReassembler, cseq: int, sseq: int, ts: int = 9_000) -> list:
    ev = r.feed(pkt(CLIENT, SERVER, cseq, FIN | ACK, ts=ts))
    ev += r.feed(pkt(SERVER, CLIENT, sseq, FIN | ACK, ts=ts + 1))
    return ev


def chunks(events, egress: bool, conn_id: int | None = None) -> list[DataChunk]:
    return [e for e in events if isinstance(e, DataChunk) and e.egress == egress
            and (conn_id is None or e.conn_id == conn_id)]


def layout(events, egress: bool) -> list:
    """The direction as [bytes, hole length (int), bytes, ...]; checks chunk seqs are contiguous."""
    out: list = []
    expect = None
    for c in chunks(events, egress):
        assert expect is None or c.seq == expect, (c.seq, expect)
        expect = (c.seq + c.length) & MASK
        if c.data:
            if out and isinstance(out[-1], bytes):
                out[-1] += c.data
            else:
                out.append(c.data)
        if c.missing:
            if out and isinstance(out[-1], int):
                out[-1] += c.missing
            else:
                out.append(c.missing)
    return out


def test_in_order_both_ways_with_handshake_and_fin():
    r = TcpReassembler()
    ev = handshake(r, 1000, 5000)
    ev += r.feed(pkt(CLIENT, SERVER, 1001, ACK | PSH, b"GET / HTTP/1.1\r\n\r\n", ts=2_000))
    ev += r.feed(pkt(SERVER, CLIENT, 5001, ACK | PSH, b"HTTP/1.1 200 OK\r\n", ts=3_000))
    ev += close_both(r, 1019, 5018)
    assert ev[0] == ConnectionOpened(1, 1_000, Role.CLIENT, CLIENT, SERVER)
    assert ev[1] == DataChunk(1, True, 2_000, b"GET / HTTP/1.1\r\n\r\n", 18, 1001, Role.CLIENT,
                              CLIENT, SERVER)
    assert ev[2] == DataChunk(1, False, 3_000, b"HTTP/1.1 200 OK\r\n", 17, 5001, Role.CLIENT,
                              CLIENT, SERVER)
    assert ev[3:] == [ConnectionClosed(1, 9_001)]
    assert r.open_connections == 0
    assert r.counters["connections_closed"] == 1


def test_out_of_order_segments_delivered_in_stream_order():
    r = TcpReassembler()
    ev = handshake(r, 10, 20)
    data = bytes(range(60))
    for off in (40, 20, 0):  # reversed
        ev += r.feed(pkt(CLIENT, SERVER, 11 + off, payload=data[off:off + 20]))
    got = chunks(ev, True)
    assert [c.seq for c in got] == [11, 31, 51]
    assert b"".join(c.data for c in got) == data


def test_duplicates_counted_and_not_redelivered():
    r = TcpReassembler()
    ev = handshake(r, 10, 20)
    ev += r.feed(pkt(CLIENT, SERVER, 11, payload=b"abcdef"))
    ev += r.feed(pkt(CLIENT, SERVER, 11, payload=b"abcdef"))
    ev += r.feed(pkt(CLIENT, SERVER, 20, payload=b"XYZ"))  # out of order, then duplicated
    ev += r.feed(pkt(CLIENT, SERVER, 20, payload=b"XYZ"))
    ev += r.feed(pkt(CLIENT, SERVER, 17, payload=b"ghi"))
    assert layout(ev, True) == [b"abcdefghiXYZ"]
    assert r.counters["retransmitted_bytes"] == 6
    assert r.counters["overlap_bytes"] == 3
    assert r.counters["conflicts"] == 0


def test_overlapping_retransmission_keeps_first_bytes_and_counts_conflict():
    r = TcpReassembler()
    ev = handshake(r, 10, 20)
    ev += r.feed(pkt(CLIENT, SERVER, 11, payload=b"hello"))
    ev += r.feed(pkt(CLIENT, SERVER, 14, payload=b"XX world"))  # 'lo' rewritten as 'XX'
    ev += r.feed(pkt(CLIENT, SERVER, 30, payload=b"tail"))  # pending
    ev += r.feed(pkt(CLIENT, SERVER, 28, payload=b"!!TAIL"))  # overlaps pending with new content
    ev += r.feed(pkt(CLIENT, SERVER, 22, payload=b"ABCDEF"))
    assert layout(ev, True) == [b"hello worldABCDEF!!tail"]
    assert r.counters["retransmitted_bytes"] == 2
    assert r.counters["conflicts"] == 2
    assert r.counters["overlap_bytes"] == 4


def test_hole_declared_at_close_with_exact_length():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"a" * 10))
    ev += r.feed(pkt(CLIENT, SERVER, 111 + 37, payload=b"b" * 5))  # 37 bytes lost
    assert layout(ev, True) == [b"a" * 10]
    ev += close_both(r, 111 + 37 + 5, 201)
    assert layout(ev, True) == [b"a" * 10, 37, b"b" * 5]
    hole = [c for c in chunks(ev, True) if not c.data][0]
    assert (hole.seq, hole.length, hole.data) == (111, 37, b"")
    assert isinstance(ev[-1], ConnectionClosed)
    assert r.counters["gaps"] == 1 and r.counters["gap_bytes"] == 37


def test_lost_tail_before_fin_is_a_hole_up_to_the_fin():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"abc"))
    ev += close_both(r, 101 + 3 + 12, 201)  # 12 bytes before the FIN never seen
    assert layout(ev, True) == [b"abc", 12]


def test_flush_declares_holes_and_closes_everything():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101 + 4, payload=b"later", ts=5_000))
    ev += r.flush()
    assert layout(ev, True) == [4, b"later"]
    assert ev[-1] == ConnectionClosed(1, 5_000)
    assert r.flush() == []


def test_sequence_wrap_around():
    r = TcpReassembler()
    isn = 2**32 - 7
    ev = handshake(r, isn, 2**32 - 1)
    data = bytes(range(200, 240))
    for off in range(0, 40, 8):
        ev += r.feed(pkt(CLIENT, SERVER, isn + 1 + off, payload=data[off:off + 8]))
    ev += r.feed(pkt(SERVER, CLIENT, 0, payload=b"pong"))  # server ISN+1 wraps to 0
    assert layout(ev, True) == [data]
    assert [c.seq for c in chunks(ev, True)] == [2**32 - 6, 2, 10, 18, 26]
    assert layout(ev, False) == [b"pong"]
    ev += close_both(r, isn + 41, 4)
    assert isinstance(ev[-1], ConnectionClosed)


def test_mid_stream_start_guesses_client_by_port():
    r = TcpReassembler()
    ev = r.feed(pkt(SERVER, CLIENT, 7000, payload=b"HTTP/1.1 200 OK\r\n"))  # server speaks first
    ev += r.feed(pkt(CLIENT, SERVER, 9000, payload=b"GET /"))
    ev += r.feed(pkt(CLIENT, SERVER, 9005, payload=b" HTTP/1.1"))
    assert ev[0] == ConnectionOpened(1, 1_000, Role.UNKNOWN, CLIENT, SERVER)
    assert layout(ev, True) == [b"GET / HTTP/1.1"]
    assert layout(ev, False) == [b"HTTP/1.1 200 OK\r\n"]
    assert all(c.role is Role.UNKNOWN for c in chunks(ev, True))


def test_guess_client_rules():
    assert guess_client(("a", 8080), ("b", 1234)) == (("b", 1234), ("a", 8080))
    assert guess_client(("a", 50000), ("b", 443)) == (("a", 50000), ("b", 443))
    assert guess_client(("a", 40000), ("b", 30000)) == (("a", 40000), ("b", 30000))
    assert guess_client(("a", 30000), ("b", 40000)) == (("b", 40000), ("a", 30000))


def test_mid_stream_bare_ack_does_not_start_the_stream():
    r = TcpReassembler()
    ev = r.feed(pkt(CLIENT, SERVER, 500))  # bare ACK: position unknown
    ev += r.feed(pkt(CLIENT, SERVER, 600, payload=b"data"))
    assert layout(ev, True) == [b"data"]
    assert r.counters["gaps"] == 0


def test_syn_ack_without_syn_still_names_the_client():
    r = TcpReassembler()
    ev = r.feed(pkt(SERVER, CLIENT, 7000, SYN | ACK, ack=3001))
    ev += r.feed(pkt(CLIENT, SERVER, 3001, payload=b"req"))
    assert ev[0] == ConnectionOpened(1, 1_000, Role.CLIENT, CLIENT, SERVER)
    assert layout(ev, True) == [b"req"]


def test_rst_closes_and_delivers_pending_with_holes():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"one"))
    ev += r.feed(pkt(CLIENT, SERVER, 110, payload=b"two"))
    ev += r.feed(pkt(SERVER, CLIENT, 201, RST | ACK, ts=4_000))
    assert layout(ev, True) == [b"one", 6, b"two"]
    assert ev[-1] == ConnectionClosed(1, 4_000)
    assert r.counters["rst_closes"] == 1


def test_port_reuse_gets_a_new_conn_id_and_stragglers_are_ignored():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += close_both(r, 101, 201)
    ev += r.feed(pkt(CLIENT, SERVER, 102, ACK, ts=9_100))  # last ACK after close
    assert r.open_connections == 0 and r.counters["packets_after_close"] == 1
    ev2 = handshake(r, 90_000, 80_000, ts=10_000)
    ev2 += r.feed(pkt(CLIENT, SERVER, 90_001, payload=b"again"))
    assert ev2[0] == ConnectionOpened(2, 10_000, Role.CLIENT, CLIENT, SERVER)
    assert chunks(ev2, True)[0].conn_id == 2 and layout(ev2, True) == [b"again"]


def test_new_syn_on_an_open_connection_closes_the_old_one():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101 + 5, payload=b"x"))  # pending after a 5-byte hole
    ev += r.feed(pkt(CLIENT, SERVER, 7777, SYN, ts=2_000))
    assert ev[-4:-1] == [
        DataChunk(1, True, 2_000, b"", 5, 101, Role.CLIENT, CLIENT, SERVER),
        DataChunk(1, True, 1_000, b"x", 1, 106, Role.CLIENT, CLIENT, SERVER),
        ConnectionClosed(1, 2_000),
    ]
    assert ev[-1] == ConnectionOpened(2, 2_000, Role.CLIENT, CLIENT, SERVER)
    assert r.counters["port_reuses"] == 1


def test_retransmitted_syn_is_not_a_new_connection():
    r = TcpReassembler()
    ev = r.feed(pkt(CLIENT, SERVER, 100, SYN))
    ev += r.feed(pkt(CLIENT, SERVER, 100, SYN, ts=2_000))
    assert [type(e) for e in ev] == [ConnectionOpened]


def test_window_overflow_declares_hole_before_close():
    r = TcpReassembler(window_bytes=100)
    ev = handshake(r, 0, 0)
    ev += r.feed(pkt(CLIENT, SERVER, 1, payload=b"A" * 10))
    # bytes 10..29 lost; later segments pile up past the 100-byte window
    for off in range(30, 150, 20):
        ev += r.feed(pkt(CLIENT, SERVER, 1 + off, payload=bytes([off]) * 20))
    got = layout(ev, True)
    assert got[:2] == [b"A" * 10, 20]
    assert got[2] == b"".join(bytes([o]) * 20 for o in range(30, 150, 20))
    assert r.counters["window_overflows"] == 1 and r.counters["gap_bytes"] == 20


def test_pending_bytes_stay_within_window():
    r = TcpReassembler(window_bytes=64)
    handshake(r, 0, 0)
    rng = random.Random(1)
    for _ in range(200):
        r.feed(pkt(CLIENT, SERVER, 1 + rng.randrange(1, 10_000), payload=b"z" * rng.randrange(1, 30)))
        stream = next(iter(r._conns.values())).to_server
        if stream.pending:
            last = stream.pending[-1]
            assert last[0] + last[2] - stream.next <= 64


def test_keepalive_one_byte_below_is_ignored():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"abc"))
    ev += r.feed(pkt(CLIENT, SERVER, 103, payload=b"\x00"))  # keepalive with a garbage byte
    ev += r.feed(pkt(CLIENT, SERVER, 103))  # bare keepalive
    ev += r.feed(pkt(CLIENT, SERVER, 104, payload=b"def"))
    assert layout(ev, True) == [b"abcdef"]
    assert r.counters["keepalives"] == 2
    assert r.counters["conflicts"] == 0


def test_segment_far_ahead_is_dropped_as_out_of_window():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101 + MAX_AHEAD + 1, payload=b"junk"))
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"real"))
    assert layout(ev, True) == [b"real"]
    assert r.counters["out_of_window"] == 1


def test_snaplen_truncated_segment_is_a_known_length_tail_hole():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"HEAD", missing=96))
    ev += r.feed(pkt(CLIENT, SERVER, 201, payload=b"next"))
    got = chunks(ev, True)
    assert (got[0].data, got[0].length, got[0].missing, got[0].seq) == (b"HEAD", 100, 96, 101)
    assert (got[1].data, got[1].seq) == (b"next", 201)
    assert r.counters["truncated_bytes"] == 96


def test_data_after_fin_is_dropped():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101, FIN | ACK, payload=b"bye"))
    ev += r.feed(pkt(CLIENT, SERVER, 104, payload=b"more"))
    assert layout(ev, True) == [b"bye"]
    assert r.counters["data_after_fin"] == 4


def test_lru_eviction_flushes_the_oldest_connection():
    r = TcpReassembler(max_connections=2)
    ev = []
    for i in range(3):
        ev += r.feed(Packet(1_000 + i, "10.0.0.1", "10.0.0.2", 40000 + i, 80, 5, 0, SYN, b"", 4))
    assert ConnectionClosed(1, 1_002) in ev
    assert r.counters["evicted_connections"] == 1 and r.open_connections == 2


def test_idle_connections_expire_on_packet_time():
    r = TcpReassembler(idle_timeout_ns=10**9)
    ev = handshake(r, 100, 200, ts=0)
    ev += r.feed(Packet(5 * 10**9, "10.9.9.9", "10.0.0.2", 1111, 80, 5, 0, SYN, b"", 4))
    assert ConnectionClosed(1, 5 * 10**9) in ev
    assert r.counters["expired_connections"] == 1


def test_every_event_before_open_and_after_close_belongs_to_no_other_conn():
    r = TcpReassembler()
    ev = handshake(r, 1, 2) + r.feed(pkt(CLIENT, SERVER, 2, payload=b"x")) + close_both(r, 3, 3)
    opened = [e.conn_id for e in ev if isinstance(e, ConnectionOpened)]
    closed = [e.conn_id for e in ev if isinstance(e, ConnectionClosed)]
    assert opened == closed == [1]
    assert isinstance(ev[0], ConnectionOpened) and isinstance(ev[-1], ConnectionClosed)


# --- property tests ---

def _segments(rng: random.Random, n: int, max_len: int, overlapping: bool) -> list[tuple[int, int]]:
    cuts, pos = [], 0
    while pos < n:
        step = rng.randint(1, max_len)
        cuts.append((pos, min(n, pos + step)))
        pos += step
    if overlapping:  # retransmissions covering random ranges
        for _ in range(len(cuts) // 2):
            a = rng.randrange(n)
            cuts.append((a, min(n, a + rng.randint(1, 2 * max_len))))
    return cuts


def _local_shuffle(rng: random.Random, items: list, reach: int) -> list:
    keyed = [(i + rng.uniform(0, reach), item) for i, item in enumerate(items)]
    return [item for _, item in sorted(keyed, key=lambda kv: kv[0])]


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 3000), isn=st.integers(0, 2**32 - 1),
       max_len=st.integers(1, 300), dup=st.booleans(), overlapping=st.booleans())
def test_random_segmentation_reordering_duplication_reassembles_exactly(
        seed, n, isn, max_len, dup, overlapping):
    rng = random.Random(seed)
    data = rng.randbytes(n)
    segs = _segments(rng, n, max_len, overlapping)
    if dup:
        segs += rng.sample(segs, k=len(segs) // 3)
    segs = _local_shuffle(rng, segs, reach=8)
    r = TcpReassembler(window_bytes=1 << 20)
    ev = handshake(r, isn, 77)
    for a, b in segs:
        ev += r.feed(pkt(CLIENT, SERVER, isn + 1 + a, payload=data[a:b]))
    ev += close_both(r, isn + 1 + n, 78)
    assert layout(ev, True) == [data]
    assert r.counters["gaps"] == 0 and r.counters["conflicts"] == 0
    assert isinstance(ev[-1], ConnectionClosed)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 3000), isn=st.integers(0, 2**32 - 1),
       max_len=st.integers(1, 300), window=st.sampled_from([64, 1000, 1 << 20]))
def test_random_drops_give_exact_holes(seed, n, isn, max_len, window):
    rng = random.Random(seed)
    data = rng.randbytes(n)
    segs = _segments(rng, n, max_len, overlapping=False)
    kept = [s for s in segs if rng.random() > 0.25]
    order = _local_shuffle(rng, kept, reach=3) if window == 1 << 20 else kept
    r = TcpReassembler(window_bytes=window)
    ev = handshake(r, isn, 77)
    for a, b in order:
        ev += r.feed(pkt(CLIENT, SERVER, isn + 1 + a, payload=data[a:b]))
    ev += close_both(r, isn + 1 + n, 78)
    expected: list = []
    kept_set = set(kept)
    for a, b in segs:
        piece: bytes | int = data[a:b] if (a, b) in kept_set else b - a
        if expected and type(expected[-1]) is type(piece):
            expected[-1] += piece
        else:
            expected.append(piece)
    assert layout(ev, True) == expected
    assert r.counters["gap_bytes"] == sum(p for p in expected if isinstance(p, int))


def test_hole_declared_when_the_peer_acks_past_it():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(SERVER, CLIENT, 201, payload=b"a" * 10, ack=101, ts=2_000))
    ev += r.feed(pkt(SERVER, CLIENT, 211 + 20, payload=b"b" * 5, ack=101, ts=2_001))  # 20 lost
    assert layout(ev, False) == [b"a" * 10]
    # an ACK that stops inside the hole proves nothing about the bytes after it
    ev += r.feed(pkt(CLIENT, SERVER, 101, ACK, ack=221, ts=2_002))
    assert layout(ev, False) == [b"a" * 10]
    # the client acknowledged past the hole: those bytes reached it, no capture will hold them
    ev += r.feed(pkt(CLIENT, SERVER, 101, ACK, ack=236, ts=2_003))
    assert layout(ev, False) == [b"a" * 10, 20, b"b" * 5]
    hole = [c for c in chunks(ev, False) if not c.data][0]
    assert (hole.seq, hole.length, hole.ts) == (211, 20, 2_003)
    assert r.counters["holes_acked"] == 1 and r.counters["gap_bytes"] == 20
    assert not any(isinstance(e, ConnectionClosed) for e in ev)


def test_ack_without_pending_data_declares_nothing():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(SERVER, CLIENT, 201, payload=b"a" * 10, ack=101))
    ev += r.feed(pkt(CLIENT, SERVER, 101, ACK, ack=5_000))  # acked far ahead, nothing waits
    assert layout(ev, False) == [b"a" * 10] and r.counters["gaps"] == 0


# --- late handshakes: positions never move backwards, buffers are never replaced ----------

def _seqs_never_go_back(events) -> None:
    """Per connection and direction, each chunk starts where the previous one ended."""
    expect: dict = {}
    for c in (e for e in events if isinstance(e, DataChunk)):
        key = (c.conn_id, c.egress)
        assert key not in expect or c.seq == expect[key], (key, c.seq, expect[key])
        expect[key] = (c.seq + c.length) & MASK


def test_late_syn_ack_after_server_data_keeps_the_buffer_and_its_pending_pieces():
    r = TcpReassembler()
    ev = r.feed(pkt(CLIENT, SERVER, 100, SYN))
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"GET", ack=201))
    ev += r.feed(pkt(SERVER, CLIENT, 201, payload=b"hello", ack=104))  # before its SYN-ACK
    ev += r.feed(pkt(SERVER, CLIENT, 209, payload=b"world", ack=104))  # pending after "abc"
    ev += r.feed(pkt(SERVER, CLIENT, 200, SYN | ACK, ack=101))  # the late SYN-ACK
    ev += r.feed(pkt(SERVER, CLIENT, 206, payload=b"abc", ack=104))
    ev += r.flush()
    assert layout(ev, False) == [b"helloabcworld"]
    assert layout(ev, True) == [b"GET"]
    _seqs_never_go_back(ev)
    assert [type(e) for e in ev].count(ConnectionOpened) == 1
    c = r.counters
    assert (c["late_handshakes"], c["gaps"], c["port_reuses"]) == (1, 0, 0)


def test_retransmitted_syn_ack_after_data_moves_nothing_back():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(SERVER, CLIENT, 201, payload=b"abc"))
    ev += r.feed(pkt(SERVER, CLIENT, 207, payload=b"ghi"))  # pending
    ev += r.feed(pkt(SERVER, CLIENT, 200, SYN | ACK, ack=101))  # retransmitted
    ev += r.feed(pkt(SERVER, CLIENT, 199, SYN | ACK, ack=101))  # a different ISN, just behind
    ev += r.feed(pkt(SERVER, CLIENT, 204, payload=b"def"))
    ev += r.flush()
    assert layout(ev, False) == [b"abcdefghi"]
    _seqs_never_go_back(ev)
    assert (r.counters["late_handshakes"], r.counters["port_reuses"]) == (2, 0)


def test_late_syn_after_its_syn_ack_is_not_a_new_connection():
    r = TcpReassembler()
    ev = r.feed(pkt(SERVER, CLIENT, 7000, SYN | ACK, ack=3001))
    ev += r.feed(pkt(CLIENT, SERVER, 3001, payload=b"req", ack=7001))
    ev += r.feed(pkt(CLIENT, SERVER, 3000, SYN))  # reordered after the data
    ev += r.feed(pkt(CLIENT, SERVER, 3004, payload=b"uest", ack=7001))
    ev += r.flush()
    assert [type(e) for e in ev].count(ConnectionOpened) == 1
    assert layout(ev, True) == [b"request"]
    assert (r.counters["late_handshakes"], r.counters["port_reuses"]) == (1, 0)


def test_late_syn_ack_of_a_connection_picked_up_mid_stream_starts_its_direction():
    r = TcpReassembler()
    ev = r.feed(pkt(CLIENT, SERVER, 3001, payload=b"GET /", ack=7001))
    ev += r.feed(pkt(SERVER, CLIENT, 7000, SYN | ACK, ack=3001))  # acks the client's ISN + 1
    ev += r.feed(pkt(SERVER, CLIENT, 7001, payload=b"200 OK", ack=3006))
    ev += r.flush()
    assert [type(e) for e in ev].count(ConnectionOpened) == 1
    assert layout(ev, True) == [b"GET /"] and layout(ev, False) == [b"200 OK"]
    assert (r.counters["late_handshakes"], r.counters["port_reuses"]) == (1, 0)


def test_syn_ahead_of_the_stream_is_still_a_new_connection():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"x"))
    ev += r.feed(pkt(CLIENT, SERVER, 5_000_000, SYN, ts=2_000))
    assert [type(e) for e in ev].count(ConnectionOpened) == 2
    assert (r.counters["port_reuses"], r.counters["late_handshakes"]) == (1, 0)


def test_late_syn_ack_after_close_opens_no_phantom_connection():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += close_both(r, 101, 201)
    ev += r.feed(pkt(SERVER, CLIENT, 200, SYN | ACK, ack=101, ts=9_500))
    ev += r.feed(pkt(CLIENT, SERVER, 100, SYN, ts=9_600))
    assert r.open_connections == 0
    assert [type(e) for e in ev].count(ConnectionOpened) == 1
    assert r.counters["packets_after_close"] == 2


def test_dropped_bytes_are_counted_by_reason():
    r = TcpReassembler()
    ev = handshake(r, 100, 200)
    ev += r.feed(pkt(CLIENT, SERVER, 101 + MAX_AHEAD + 10, payload=b"far"))
    ev += r.feed(pkt(CLIENT, SERVER, 101, RST | ACK, payload=b"diag"))
    ev += r.feed(pkt(CLIENT, SERVER, 101, payload=b"late!"))
    assert (r.counters["out_of_window"], r.counters["out_of_window_bytes"]) == (1, 3)
    assert r.counters["rst_bytes"] == 4
    assert (r.counters["packets_after_close"], r.counters["bytes_after_close"]) == (1, 5)


def _accounted(c: dict) -> int:
    return (c["delivered_bytes"] + c["retransmitted_bytes"] + c["overlap_bytes"]
            + c["out_of_window_bytes"] + c["data_after_fin"] + c["bytes_after_close"]
            + c["rst_bytes"] + c["keepalives"])


def _conversation(rng: random.Random, cisn: int, sisn: int) -> tuple[list, bytes, bytes]:
    """SYN, SYN-ACK (and retransmissions) and data segments of both directions."""
    up = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    down = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    pkts = [pkt(CLIENT, SERVER, cisn, SYN)]
    pkts += [pkt(SERVER, CLIENT, sisn, SYN | ACK, ack=cisn + 1)] * rng.randrange(1, 4)
    for data, src, dst, isn, ack in ((up, CLIENT, SERVER, cisn, sisn + 1),
                                      (down, SERVER, CLIENT, sisn, cisn + 1)):
        pos = 0
        while pos < len(data):
            n = rng.randrange(1, 60)
            pkts.append(pkt(src, dst, isn + 1 + pos, payload=data[pos:pos + n], ack=ack))
            pos += n
    return pkts, up, down


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, MASK), st.integers(0, MASK))
def test_handshakes_in_any_order_every_byte_delivered_or_counted(seed, cisn, sisn):
    rng = random.Random(seed)
    pkts, up, down = _conversation(rng, cisn, sisn)
    rng.shuffle(pkts)
    r = TcpReassembler()
    ev = [e for p in pkts for e in r.feed(p)] + r.flush()
    _seqs_never_go_back(ev)
    assert _accounted(r.counters) == len(up) + len(down)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, MASK), st.integers(0, MASK))
def test_syn_first_then_any_interleaving_reassembles_exactly(seed, cisn, sisn):
    """Each direction in order, the SYN first, SYN-ACKs anywhere: one connection, exact."""
    rng = random.Random(seed)
    pkts, up, down = _conversation(rng, cisn, sisn)
    syn, rest = pkts[0], pkts[1:]
    lanes = [[p for p in rest if p.flags & SYN]]
    lanes += [[p for p in rest if not p.flags & SYN and p.src_port == port]
              for port in (CLIENT[1], SERVER[1])]
    order = [syn]
    while any(lanes):
        lane = rng.choice([ln for ln in lanes if ln])
        order.append(lane.pop(0))
    r = TcpReassembler()
    ev = [e for p in order for e in r.feed(p)] + r.flush()
    assert [type(e) for e in ev].count(ConnectionOpened) == 1
    assert layout(ev, True) == [up] and layout(ev, False) == [down]
    assert (r.counters["port_reuses"], r.counters["gaps"]) == (0, 0)
