"""Positions one direction of a TCP byte stream by sequence number.

Theory of operation
-------------------
Each DataChunk says where its bytes sit in the TCP stream (``seq``, a u32 that wraps) and how
many stream bytes it covers (``length``; the first ``len(data)`` are carried). The position
keeps the next expected sequence number and turns each chunk into pieces for the protocol
layer, in stream order:

    expected == seq                    -> ("data", bytes) then ("skip", missing) if not all carried
    seq ahead of expected by d         -> ("skip", d) first: d bytes were never seen (lost records)
    seq behind expected (overlap/dup)  -> the already-seen prefix is cut off (MSG_PEEK, retransmit)

Differences are taken modulo 2**32 and read as signed, so wrap-around is invisible; a jump of
more than 1 GiB either way is not a gap but a different stream (resync: no skip, counted).
A chunk without ``seq`` (source cannot say) is taken as contiguous.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MOD = 1 << 32
HALF = 1 << 31
MAX_JUMP = 1 << 30

Piece = tuple[str, object]  # ("data", bytes) | ("skip", int)
TOTALS = ("stream_gap_bytes", "stream_overlap_bytes", "stream_resyncs")


@dataclass(slots=True)
class StreamPosition:
    expected: int | None = None
    gap_bytes: int = 0  # stream bytes never seen (lost records or holes)
    overlap_bytes: int = 0  # bytes seen twice and dropped
    resyncs: int = 0  # implausible jumps
    # shared totals over every stream ("stream_gap_bytes", "stream_overlap_bytes",
    # "stream_resyncs"), kept by the connection table for the agent's counters
    totals: dict = field(default_factory=lambda: dict.fromkeys(TOTALS, 0), repr=False)

    def place(self, seq: int | None, data: bytes, length: int) -> list[Piece]:
        if seq is not None and seq == self.expected and data and len(data) == length:
            self.expected = (seq + length) % MOD  # in order and whole: the common case
            return [("data", data)]
        pieces: list[Piece] = []
        if seq is not None and self.expected is not None:
            d = (seq - self.expected) % MOD
            if d >= HALF:
                d -= MOD
            if d > MAX_JUMP or d < -MAX_JUMP:
                self.resyncs += 1
                self.totals["stream_resyncs"] += 1
            elif d > 0:
                pieces.append(("skip", d))
                self.gap_bytes += d
                self.totals["stream_gap_bytes"] += d
            elif d < 0:
                cut = -d
                if cut >= length:
                    self.overlap_bytes += length
                    self.totals["stream_overlap_bytes"] += length
                    return []
                self.overlap_bytes += cut
                self.totals["stream_overlap_bytes"] += cut
                data = data[cut:]
                length -= cut
                seq = (seq + cut) % MOD
        if data:
            pieces.append(("data", data))
        missing = length - len(data)
        if missing > 0:
            pieces.append(("skip", missing))
        if seq is not None:
            self.expected = (seq + length) % MOD
        elif self.expected is not None:
            self.expected = (self.expected + length) % MOD
        return pieces
