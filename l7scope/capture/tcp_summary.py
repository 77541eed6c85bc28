"""The TCP health record (kind L7_KIND_TCP, struct l7_tcp_stats in bpf/l7scope.h) decoded.

One record per TCP socket at its close; l7scope/tcpmetrics.py aggregates them per process pair.
The layout comes from the generated wire_layout.py, not from here.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from l7scope.capture import wire_layout as L
from l7scope.capture.events import Role

STATS = struct.Struct(L.L7_TCP_STATS_FORMAT)
_STATS_NAMES = tuple(f[0] for f in L.L7_TCP_STATS_FIELDS)
ENDS = struct.Struct(L.L7_CONN_ENDS_FORMAT)
_ENDS_NAMES = tuple(f[0] for f in L.L7_CONN_ENDS_FIELDS)
AF_INET, AF_INET6 = 2, 10
_OFF = {f[0]: f[1] for f in L.L7_TCP_STATS_FIELDS}
# retransmits .. drop_count3: an entry with all of them 0 has nothing to report while open
_COUNTED = slice(_OFF["retransmits"], _OFF["drop_count3"] + 4)
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




@dataclass(frozen=True, slots=True)
class TcpOpen:
    """A tracked socket's counters so far (a tcp_health map entry), read each metrics
    interval: retransmits, resets and drops since the socket's entry was made."""

    role: Role
    local: tuple[str, int]
    remote: tuple[str, int]
    retransmits: int
    resets_sent: int
    resets_received: int
    drops: tuple[tuple[int, int], ...]
    drops_other: int


def _ip(family: int, raw: bytes) -> str:
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def decode_open(value: bytes) -> TcpOpen | None:
    """A tcp_health map value (struct l7_tcp_stats, then struct l7_conn_ends at
    L7_TCP_STATS_SIZE) decoded; None when it is too short, has counted nothing yet, or its ends
    are not known yet (a connect before its port is bound)."""
    start = L.L7_TCP_STATS_SIZE
    if len(value) < start + ENDS.size or not any(value[_COUNTED]):
        return None
    st = dict(zip(_STATS_NAMES, STATS.unpack_from(value, 0)))
    e = dict(zip(_ENDS_NAMES, ENDS.unpack_from(value, start)))
    if e["family"] not in (AF_INET, AF_INET6) or not e["lport"]:
        return None
    drops = tuple((st[f"drop_reason{i}"], st[f"drop_count{i}"]) for i in range(SLOTS)
                  if st[f"drop_reason{i}"] and st[f"drop_count{i}"])
    return TcpOpen(
        role=Role(e["role"]) if e["role"] < 3 else Role.UNKNOWN,
        local=(_ip(e["family"], e["laddr"]), e["lport"]),
        remote=(_ip(e["family"], e["raddr"]), e["rport"]),
        retransmits=st["retransmits"], resets_sent=st["resets_sent"],
        resets_received=st["resets_received"], drops=drops, drops_other=st["drops_other"])
