"""TCP reassembly: decoded packets -> ConnectionOpened / DataChunk / ConnectionClosed events.

Theory of operation
-------------------
Connections are keyed by their unordered 4-tuple in an LRU table (``OrderedDict``, bounded by
``max_connections``; the least recently active connection is flushed and evicted when a new one
needs room, and connections idle for ``idle_timeout_ns`` of packet time are flushed and closed).
A closed connection leaves a tombstone (close time and the two ISNs) for ``closed_linger_ns``
so that its last ACKs, retransmitted FINs and late SYN/SYN-ACKs do not open a phantom
connection; a SYN with a new ISN on the same 4-tuple starts a new connection (a new
``conn_id``) at any time.

Late handshakes: a SYN or SYN-ACK arriving while its connection is open (a retransmission, or
a capture that reordered it after data) never moves a direction's position backwards nor
replaces its buffer. Its first data offset (ISN + 1) is placed in the sender's direction: at
or behind the next byte to deliver, by at most the window, it belongs to this connection and
is ignored (``late_handshakes``); ahead of it (RFC 9293 3.4: a reused 4-tuple starts above the
old sequence numbers) or further behind, it starts a new connection (``port_reuses``). A
SYN-ACK whose direction has no buffer yet starts that buffer, as in order.

Roles: the SYN sender is the client (a SYN-ACK names the client too). A connection seen without
its handshake gets a guessed client (the end that is not on a well-known port, else the higher
port) and ``Role.UNKNOWN``. ``local`` is always the client, so ``egress`` means client->server.

Each direction is a ``StreamBuffer`` that maps 32-bit sequence numbers to 64-bit stream offsets
(unwrapping around the next expected offset, so wrap-around at 2**32 is invisible) and keeps:

    next      offset of the next byte to deliver; everything before it was delivered or declared
              a hole
    pending   out-of-order pieces [start, data, length, ts], sorted, non-overlapping, all after
              ``next``; their span is bounded by ``window`` bytes
    history   the last ``history_bytes`` delivered bytes, to spot retransmissions whose content
              differs from what was delivered

A segment is cut against ``next`` (the part before it is a retransmission), then against the
pending pieces (bytes already buffered win: first received is kept, differing content is counted
as a conflict), and buffered; every byte not delivered is counted under the reason it was not
(``retransmitted_bytes``, ``overlap_bytes``, ``data_after_fin``, ``out_of_window_bytes``,
``bytes_after_close``, ``rst_bytes``, ``keepalives``; ``truncated_bytes`` and ``gap_bytes``
for what the capture lacked); the run that now starts at ``next`` is delivered in order. When the
pending span would exceed the window, the gap before the first pending piece is declared a hole:
a DataChunk with ``data=b""`` and ``length`` = the exact gap size, then delivery continues.
Snap-length truncated segments travel as pieces whose ``data`` is shorter than ``length``.

RFC 9293 3.4: "the sequence number space is finite, though very large ... from 0 to 2**32 - 1",
compared modulo 2**32 - hence the unwrapping. RFC 9293 3.8.4 (keep-alive): the probe is "a
segment with SEG.SEQ = SND.NXT-1" and may carry one garbage octet; such segments are ignored.
"""
from __future__ import annotations

import enum
from bisect import bisect_right
from collections import OrderedDict

from l7scope.capture.events import (
    CaptureEvent, ConnectionClosed, ConnectionOpened, DataChunk, Endpoint, Role,
)
from l7scope.capture.packet import ACK, FIN, RST, SYN, Packet

SEQ_MASK = 0xFFFFFFFF
SEQ_HALF = 1 << 31
# RFC 7323 2.3: "the maximum receive window size ... is 2**30"; a sender cannot be further
# ahead of what the receiver acknowledged, so a segment beyond it is not of this stream.
MAX_AHEAD = 1 << 30
EXPIRY_CHECK_NS = 1_000_000_000

WELL_KNOWN_SERVER_PORTS = frozenset((
    21, 22, 25, 53, 80, 110, 143, 443, 465, 587, 993, 995, 1080, 1433, 1521, 2379, 3000, 3306,
    4317, 4318, 5000, 5432, 5672, 6379, 8000, 8008, 8080, 8081, 8443, 8888, 9000, 9090, 9092,
    9200, 9411, 11211, 11800, 12800, 15672, 27017, 50051,
))

Piece = tuple[int, bytes, int, int]  # (stream offset, data, length, ts); data shorter = hole tail

REASSEMBLY_COUNTERS = (
    "packets", "connections_opened", "connections_closed", "rst_closes", "port_reuses",
    "evicted_connections", "expired_connections", "packets_after_close", "stray_rst",
    "delivered_bytes", "retransmitted_bytes", "overlap_bytes", "conflicts", "gaps", "gap_bytes",
    "window_overflows", "out_of_window", "keepalives", "data_after_fin", "truncated_bytes",
    "holes_acked", "late_handshakes", "out_of_window_bytes", "bytes_after_close",
    "rst_bytes",
)


class StreamBuffer:
    """One direction of a TCP connection: sequence numbers in, in-order pieces and holes out."""

    __slots__ = ("base", "next", "pending", "fin_at", "window", "history", "history_limit",
                 "counters")

    def __init__(self, first_seq: int, window: int, history_limit: int,
                 counters: dict[str, int]) -> None:
        self.base = first_seq & SEQ_MASK  # sequence number of stream offset 0
        self.next = 0
        self.pending: list[list] = []
        self.fin_at: int | None = None
        self.window = window
        self.history = bytearray()
        self.history_limit = history_limit
        self.counters = counters

    def offset_of(self, seq: int) -> int:
        diff = (seq - self.base - self.next) & SEQ_MASK
        return self.next + (diff - (1 << 32) if diff >= SEQ_HALF else diff)

    def seq_of(self, offset: int) -> int:
        return (self.base + offset) & SEQ_MASK

    @property
    def finished(self) -> bool:
        return self.fin_at is not None and self.next >= self.fin_at

    def is_keepalive(self, seq: int) -> bool:
        return self.offset_of(seq) == self.next - 1

    def set_fin(self, seq: int) -> None:
        """The FIN occupies ``seq``: the stream ends just before it (first FIN seen wins)."""
        if self.fin_at is None:
            self.fin_at = max(self.offset_of(seq), self.next)

    def segment(self, seq: int, data: bytes, length: int, ts: int) -> list[Piece]:
        """Take ``length`` stream bytes at ``seq`` (``data`` their captured prefix)."""
        start = self.offset_of(seq)
        end = start + length
        if self.fin_at is not None and end > self.fin_at:
            self.counters["data_after_fin"] += end - max(start, self.fin_at)
            if start >= self.fin_at:
                return []
            data, length, end = data[:self.fin_at - start], self.fin_at - start, self.fin_at
        if end <= self.next:
            if length == 1 and start == self.next - 1:
                self.counters["keepalives"] += 1
            else:
                self._retransmitted(start, data, length)
            return []
        if start < self.next:
            cut = self.next - start
            self._retransmitted(start, data[:cut], cut)
            data, length, start = data[cut:], length - cut, self.next
        if start - self.next > MAX_AHEAD:
            self.counters["out_of_window"] += 1
            self.counters["out_of_window_bytes"] += length
            return []
        if start == self.next and not self.pending:
            return [self._deliver(start, data, length, ts)]
        self._insert(start, data, length, ts)
        out = self._drain()
        out.extend(self._enforce_window(ts))
        return out

    def acked(self, ack: int, ts: int) -> list[Piece]:
        """The peer acknowledged every byte before ``ack`` (RFC 9293 3.4: "the value of the
        next sequence number the sender of the segment is expecting to receive"). Bytes below
        it that the capture lacks were delivered but not captured, and no retransmission will
        bring them: a hole before a pending piece that the ACK covers is declared now, not when
        the window fills, so this direction is not held back behind it."""
        if not self.pending or self.pending[0][0] <= self.next:
            return []
        acked_to = self.offset_of(ack)
        out: list[Piece] = []
        while self.pending and self.next < self.pending[0][0] <= acked_to:
            self.counters["holes_acked"] += 1
            out.append(self._hole(self.pending[0][0], ts))
            out.extend(self._drain())
        return out

    def force(self, ts: int) -> list[Piece]:
        """End of stream: deliver every pending piece, declaring the holes between them."""
        out: list[Piece] = []
        while self.pending:
            first = self.pending[0][0]
            if first > self.next:
                out.append(self._hole(first, ts))
            out.extend(self._drain())
        if self.fin_at is not None and self.next < self.fin_at:
            out.append(self._hole(self.fin_at, ts))
        return out

    # --- internals ---

    def _deliver(self, start: int, data: bytes, length: int, ts: int) -> Piece:
        self.next = start + length
        self.counters["delivered_bytes"] += len(data)
        if len(data) < length:
            self.counters["truncated_bytes"] += length - len(data)
            self.history.clear()
        elif self.history_limit:
            history = self.history
            if len(data) >= self.history_limit:
                history[:] = data[-self.history_limit:]
            else:
                history += data
                if len(history) > self.history_limit:
                    del history[:len(history) - self.history_limit]
        return (start, data, length, ts)

    def _hole(self, upto: int, ts: int) -> Piece:
        start = self.next
        self.next = upto
        self.history.clear()
        self.counters["gaps"] += 1
        self.counters["gap_bytes"] += upto - start
        return (start, b"", upto - start, ts)

    def _drain(self) -> list[Piece]:
        out: list[Piece] = []
        pending = self.pending
        while pending and pending[0][0] <= self.next:
            start, data, length, ts = pending.pop(0)
            if start < self.next:  # defensive: pieces never start before next
                cut = self.next - start
                self.counters["overlap_bytes"] += min(cut, length)
                if cut >= length:
                    continue
                data, length, start = data[cut:], length - cut, self.next
            out.append(self._deliver(start, data, length, ts))
        return out

    def _enforce_window(self, ts: int) -> list[Piece]:
        out: list[Piece] = []
        while self.pending:
            last_start, _, last_length, _ = self.pending[-1]
            if last_start + last_length - self.next <= self.window:
                break
            self.counters["window_overflows"] += 1
            out.append(self._hole(self.pending[0][0], ts))
            out.extend(self._drain())
        return out

    def _insert(self, start: int, data: bytes, length: int, ts: int) -> None:
        """Buffer [start, start+length) around the pieces already pending (those win)."""
        pending = self.pending
        end = start + length
        i = bisect_right(pending, start, key=_piece_start) - 1
        if i < 0 or pending[i][0] + pending[i][2] <= start:
            i += 1
        j, cursor, fresh = i, start, []
        while j < len(pending) and pending[j][0] < end:
            p_start, p_data, p_length, _ = pending[j]
            if p_start > cursor:
                fresh.append(_cut(start, data, cursor, p_start, ts))
            self._overlap(p_start, p_data, start, data,
                          max(cursor, p_start), min(end, p_start + p_length))
            cursor = max(cursor, p_start + p_length)
            j += 1
        if cursor < end:
            fresh.append(_cut(start, data, cursor, end, ts))
        if fresh:
            pending[i:j] = sorted(pending[i:j] + fresh, key=_piece_start)

    def _overlap(self, a_start: int, a_data: bytes, b_start: int, b_data: bytes,
                 lo: int, hi: int) -> None:
        if hi <= lo:
            return
        self.counters["overlap_bytes"] += hi - lo
        kept = a_data[lo - a_start:hi - a_start]
        other = b_data[lo - b_start:hi - b_start]
        common = min(len(kept), len(other))
        if kept[:common] != other[:common]:
            self.counters["conflicts"] += 1

    def _retransmitted(self, start: int, data: bytes, length: int) -> None:
        self.counters["retransmitted_bytes"] += length
        history_start = self.next - len(self.history)
        lo, hi = max(start, history_start), min(start + len(data), self.next)
        if hi > lo and bytes(self.history[lo - history_start:hi - history_start]) != \
                data[lo - start:hi - start]:
            self.counters["conflicts"] += 1


def _piece_start(piece: list) -> int:
    return piece[0]


def _cut(seg_start: int, data: bytes, lo: int, hi: int, ts: int) -> list:
    return [lo, data[lo - seg_start:hi - seg_start], hi - lo, ts]


class ConnState(enum.Enum):
    OPEN = "open"
    CLIENT_FIN = "client_fin_seen"
    SERVER_FIN = "server_fin_seen"
    CLOSED = "closed"


# (state, input) -> next state; inputs are "client_fin", "server_fin", "rst". A FIN counts when
# seen; the close delivers whatever is pending (holes declared) before ConnectionClosed.
CONN_TRANSITIONS: dict[tuple[ConnState, str], ConnState] = {
    (ConnState.OPEN, "client_fin"): ConnState.CLIENT_FIN,
    (ConnState.OPEN, "server_fin"): ConnState.SERVER_FIN,
    (ConnState.OPEN, "rst"): ConnState.CLOSED,
    (ConnState.CLIENT_FIN, "client_fin"): ConnState.CLIENT_FIN,
    (ConnState.CLIENT_FIN, "server_fin"): ConnState.CLOSED,
    (ConnState.CLIENT_FIN, "rst"): ConnState.CLOSED,
    (ConnState.SERVER_FIN, "server_fin"): ConnState.SERVER_FIN,
    (ConnState.SERVER_FIN, "client_fin"): ConnState.CLOSED,
    (ConnState.SERVER_FIN, "rst"): ConnState.CLOSED,
}


class _Connection:
    __slots__ = ("conn_id", "key", "client", "server", "role", "state", "to_server",
                 "to_client", "client_isn", "server_isn", "last_ts")

    def __init__(self, conn_id: int, key: tuple, client: Endpoint, server: Endpoint,
                 role: Role, ts: int) -> None:
        self.conn_id = conn_id
        self.key = key
        self.client = client
        self.server = server
        self.role = role
        self.state = ConnState.OPEN
        self.to_server: StreamBuffer | None = None
        self.to_client: StreamBuffer | None = None
        self.client_isn: int | None = None
        self.server_isn: int | None = None
        self.last_ts = ts


def guess_client(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    """(client, server) for a connection seen without its handshake; ``b`` wins ties."""
    a_known, b_known = a[1] in WELL_KNOWN_SERVER_PORTS, b[1] in WELL_KNOWN_SERVER_PORTS
    if a_known != b_known:
        return (b, a) if a_known else (a, b)
    if a[1] < b[1]:
        return b, a
    return a, b


class TcpReassembler:
    """Sans-IO: ``feed(packet)`` and ``flush()`` return capture events; ``counters`` say what happened."""

    def __init__(self, window_bytes: int = 1 << 20, max_connections: int = 65536,
                 idle_timeout_ns: int = 300 * 10**9, *, history_bytes: int = 4096,
                 closed_linger_ns: int = 60 * 10**9) -> None:
        self.window_bytes = window_bytes
        self.max_connections = max_connections
        self.idle_timeout_ns = idle_timeout_ns
        self.history_bytes = history_bytes
        self.closed_linger_ns = closed_linger_ns
        self.counters: dict[str, int] = dict.fromkeys(REASSEMBLY_COUNTERS, 0)
        self._conns: OrderedDict[tuple, _Connection] = OrderedDict()
        # tombstones: key -> (close ts, client ISN, server ISN)
        self._closed: OrderedDict[tuple, tuple[int, int | None, int | None]] = OrderedDict()
        self._next_conn_id = 1
        self._last_expiry_check: int | None = None

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def feed(self, pkt: Packet) -> list[CaptureEvent]:
        out: list[CaptureEvent] = []
        ts = pkt.ts_ns
        self.counters["packets"] += 1
        if self._last_expiry_check is None or ts - self._last_expiry_check >= EXPIRY_CHECK_NS:
            out.extend(self.expire(ts))
        src, dst = (pkt.src_ip, pkt.src_port), (pkt.dst_ip, pkt.dst_port)
        key = (src, dst) if src <= dst else (dst, src)
        conn = self._conns.get(key)
        if pkt.flags & SYN:
            conn = self._on_syn(conn, key, pkt, src, dst, out)
        elif conn is None:
            conn = self._on_unknown(key, pkt, src, dst, out)
        else:
            self._conns.move_to_end(key)
        if conn is None:
            return out
        conn.last_ts = ts
        if pkt.flags & RST:
            self.counters["rst_closes"] += 1
            self.counters["rst_bytes"] += len(pkt.payload) + pkt.missing
            self._close(conn, ts, out)
            return out
        self._on_segment(conn, pkt, src == conn.client, out)
        return out

    def expire(self, now_ns: int) -> list[CaptureEvent]:
        """Close connections idle for ``idle_timeout_ns`` before ``now_ns``; drop old tombstones."""
        self._last_expiry_check = now_ns
        out: list[CaptureEvent] = []
        idle_before = now_ns - self.idle_timeout_ns
        while self._conns:
            conn = next(iter(self._conns.values()))
            if conn.last_ts > idle_before:
                break
            self.counters["expired_connections"] += 1
            self._close(conn, now_ns, out)
        linger_before = now_ns - self.closed_linger_ns
        while self._closed and next(iter(self._closed.values()))[0] <= linger_before:
            self._closed.popitem(last=False)
        return out

    def flush(self, ts: int | None = None) -> list[CaptureEvent]:
        """End of capture: every open connection delivers its pending bytes (holes declared) and
        closes. Event times are ``ts``, or each connection's last packet time when None."""
        out: list[CaptureEvent] = []
        while self._conns:
            conn = next(iter(self._conns.values()))
            self._close(conn, conn.last_ts if ts is None else ts, out)
        self._closed.clear()
        return out

    # --- connection table ---

    def _on_syn(self, conn: _Connection | None, key: tuple, pkt: Packet, src: Endpoint,
                dst: Endpoint, out: list[CaptureEvent]) -> _Connection | None:
        is_syn_ack = bool(pkt.flags & ACK)
        client, server = (dst, src) if is_syn_ack else (src, dst)
        if conn is not None:
            self._conns.move_to_end(key)
            if self._joins_open(conn, pkt, src, is_syn_ack):
                return conn
            self.counters["port_reuses"] += 1
            self._close(conn, pkt.ts_ns, out)
        elif self._after_close(key, pkt):
            return None
        self._closed.pop(key, None)
        conn = self._open(key, client, server, Role.CLIENT, pkt.ts_ns, out)
        if is_syn_ack:
            self._start_server_stream(conn, pkt)
            # RFC 9293 3.4: the SYN-ACK acknowledges the client's ISN + 1, its next byte.
            conn.to_server = self._stream(pkt.ack)
        else:
            conn.client_isn = pkt.seq
            conn.to_server = self._stream(pkt.seq + 1)
        return conn

    def _joins_open(self, conn: _Connection, pkt: Packet, src: Endpoint,
                    is_syn_ack: bool) -> bool:
        """A SYN/SYN-ACK of the open ``conn`` (True: take it, no buffer moves) or of a new
        connection on the same 4-tuple (False)."""
        from_client = src == conn.client
        stream = conn.to_server if from_client else conn.to_client
        if stream is None:
            return self._starts_direction(conn, pkt, from_client, is_syn_ack)
        isn = conn.client_isn if from_client else conn.server_isn
        behind = stream.next - stream.offset_of(pkt.seq + 1)
        if pkt.seq != isn and not 0 <= behind <= self.window_bytes:
            return False
        self.counters["late_handshakes"] += 1
        if conn.role is Role.CLIENT and is_syn_ack != from_client:
            if from_client and conn.client_isn is None:
                conn.client_isn = pkt.seq
            elif not from_client and conn.server_isn is None:
                conn.server_isn = pkt.seq
        return True

    def _starts_direction(self, conn: _Connection, pkt: Packet, from_client: bool,
                          is_syn_ack: bool) -> bool:
        """A SYN-ACK for a direction without a buffer: in order for a connection whose SYN we
        saw; for one picked up mid-stream, when it acknowledges (ISN + 1) the other
        direction's first bytes (at or behind its next byte, by at most the window)."""
        if not is_syn_ack:
            return False
        if not from_client and conn.role is Role.CLIENT:
            self._start_server_stream(conn, pkt)
            return True
        other = conn.to_client if from_client else conn.to_server
        if other is None or not 0 <= other.next - other.offset_of(pkt.ack) <= self.window_bytes:
            return False
        self.counters["late_handshakes"] += 1
        stream = self._stream(pkt.seq + 1)
        if from_client:
            conn.to_server = stream
        else:
            conn.to_client = stream
        return True

    def _after_close(self, key: tuple, pkt: Packet) -> bool:
        """A late SYN/SYN-ACK of a connection closed within the linger time (counted)."""
        tomb = self._closed.get(key)
        if tomb is None or pkt.ts_ns - tomb[0] >= self.closed_linger_ns:
            return False
        if pkt.seq not in tomb[1:]:
            return False
        self.counters["packets_after_close"] += 1
        self.counters["bytes_after_close"] += len(pkt.payload) + pkt.missing
        return True

    def _start_server_stream(self, conn: _Connection, pkt: Packet) -> None:
        """The SYN-ACK names the server's ISN; its stream starts after it unless data of that
        direction already started it (a buffer is never replaced)."""
        if conn.server_isn is None:
            conn.server_isn = pkt.seq
        if conn.to_client is None:
            conn.to_client = self._stream(pkt.seq + 1)

    def _on_unknown(self, key: tuple, pkt: Packet, src: Endpoint, dst: Endpoint,
                    out: list[CaptureEvent]) -> _Connection | None:
        if pkt.flags & RST:
            self.counters["stray_rst"] += 1
            self.counters["rst_bytes"] += len(pkt.payload) + pkt.missing
            return None
        tomb = self._closed.get(key)
        if tomb is not None:
            if pkt.ts_ns - tomb[0] < self.closed_linger_ns:
                self.counters["packets_after_close"] += 1
                self.counters["bytes_after_close"] += len(pkt.payload) + pkt.missing
                return None
            del self._closed[key]
        client, server = guess_client(src, dst)
        return self._open(key, client, server, Role.UNKNOWN, pkt.ts_ns, out)

    def _open(self, key: tuple, client: Endpoint, server: Endpoint, role: Role, ts: int,
              out: list[CaptureEvent]) -> _Connection:
        if len(self._conns) >= self.max_connections:
            self.counters["evicted_connections"] += 1
            self._close(next(iter(self._conns.values())), ts, out)
        conn = _Connection(self._next_conn_id, key, client, server, role, ts)
        self._next_conn_id += 1
        self._conns[key] = conn
        self.counters["connections_opened"] += 1
        out.append(ConnectionOpened(conn.conn_id, ts, role, client, server))
        return conn

    def _close(self, conn: _Connection, ts: int, out: list[CaptureEvent]) -> None:
        for stream, egress in ((conn.to_server, True), (conn.to_client, False)):
            if stream is not None:
                self._emit(conn, egress, stream, stream.force(ts), out)
        conn.state = ConnState.CLOSED
        del self._conns[conn.key]
        self._closed[conn.key] = (ts, conn.client_isn, conn.server_isn)
        self._closed.move_to_end(conn.key)
        if len(self._closed) > self.max_connections:
            self._closed.popitem(last=False)
        self.counters["connections_closed"] += 1
        out.append(ConnectionClosed(conn.conn_id, ts))

    # --- segments ---

    def _stream(self, first_seq: int) -> StreamBuffer:
        return StreamBuffer(first_seq, self.window_bytes, self.history_bytes, self.counters)

    def _on_segment(self, conn: _Connection, pkt: Packet, from_client: bool,
                    out: list[CaptureEvent]) -> None:
        stream = conn.to_server if from_client else conn.to_client
        length = len(pkt.payload) + pkt.missing
        fin = pkt.flags & FIN
        # A SYN occupies one sequence number before the first data byte (RFC 9293 3.4).
        data_seq = (pkt.seq + 1) & SEQ_MASK if pkt.flags & SYN else pkt.seq
        other = conn.to_client if from_client else conn.to_server
        if pkt.flags & ACK and other is not None and other.pending:
            self._emit(conn, not from_client, other, other.acked(pkt.ack, pkt.ts_ns), out)
        if stream is None:
            if not length and not fin:
                return  # a bare ACK does not say where this direction's stream stands
            stream = self._stream(data_seq)
            if from_client:
                conn.to_server = stream
            else:
                conn.to_client = stream
        if length:
            self._emit(conn, from_client, stream,
                       stream.segment(data_seq, pkt.payload, length, pkt.ts_ns), out)
        elif not fin and not pkt.flags & SYN and stream.is_keepalive(data_seq):
            self.counters["keepalives"] += 1
        if fin:
            stream.set_fin(data_seq + length)
            conn.state = CONN_TRANSITIONS[(conn.state, "client_fin" if from_client else "server_fin")]
            if conn.state is ConnState.CLOSED:
                self._close(conn, pkt.ts_ns, out)

    @staticmethod
    def _emit(conn: _Connection, egress: bool, stream: StreamBuffer, pieces: list[Piece],
              out: list[CaptureEvent]) -> None:
        for start, data, length, ts in pieces:
            out.append(DataChunk(conn.conn_id, egress, ts, data, length, stream.seq_of(start),
                                 conn.role, conn.client, conn.server))
