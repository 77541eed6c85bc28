"""The TCP health record (kind L7_KIND_TCP, struct l7_tcp_stats in bpf/l7scope.h) decoded.

One record per TCP socket at its close; l7scope/tcpmetrics.py aggregates them per process pair.
The layout comes from the generated wire_layout.py, not from here.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from l7scope.capture import wire_layout as L
from l7scope.capture.events import Role

STATS = struct.Struct(L.L7_TCP_STATS_FORMAT)
_STATS_NAMES = tuple(f[0] for f in L.L7_TCP_STATS_FIELDS)
OUTCOMES = {v: k.removeprefix("L7_TCP_").lower() for k, v in L.ENUMS["l7_tcp_outcome"].items()}
SLOTS = L.CONSTANTS["L7_TCP_DROP_SLOTS"]


@dataclass(frozen=True, slots=True)
class TcpSummary:
    """One TCP socket's health at its close (record kind L7_KIND_TCP)."""

    ts: int
    first_ts: int
    role: Role
    local: tuple[str, int]
    remote: tuple[str, int]
    pid: int | None
    comm: str | None
    outcome: str  # "established", "refused", "timed_out", "aborted"
    connect_ns: int
    srtt_us: int
    rttvar_us: int
    retransmits: int
    resets_sent: int
    resets_received: int
    drops: tuple[tuple[int, int], ...]  # (enum skb_drop_reason, count)
    drops_other: int
    sk_err: int


def decode_tcp(rec: bytes, ts_enter: int, ts_exit: int, tgid: int, role: int,
               ends: tuple) -> TcpSummary | None:
    """The summary in an L7_KIND_TCP record, given its decoded header fields and ``ends``
    (local, remote, comm); None when the record is too short for it."""
    start = L.CONSTANTS["L7_EVENT_HDR_LEN"]
    if len(rec) < start + STATS.size:
        return None
    st = dict(zip(_STATS_NAMES, STATS.unpack_from(rec, start)))
    local, remote, comm = ends
    drops = tuple((st[f"drop_reason{i}"], st[f"drop_count{i}"]) for i in range(SLOTS)
                  if st[f"drop_reason{i}"] and st[f"drop_count{i}"])
    return TcpSummary(
        ts=ts_exit, first_ts=ts_enter, role=Role(role) if role < 3 else Role.UNKNOWN,
        local=local, remote=remote, pid=tgid or None, comm=comm or None,
        outcome=OUTCOMES.get(st["outcome"], "aborted"), connect_ns=st["connect_ns"],
        srtt_us=st["srtt_us"], rttvar_us=st["rttvar_us"], retransmits=st["retransmits"],
        resets_sent=st["resets_sent"], resets_received=st["resets_received"], drops=drops,
        drops_other=st["drops_other"], sk_err=st["sk_err"])


