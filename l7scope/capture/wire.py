"""Decodes ring-buffer records (struct l7_event in bpf/l7scope.h) into capture events.

Nothing here is copied from the C header by hand: the formats, offsets and numbers come from
wire_layout.py, which scripts/gen_wire_layout.py generates from bpf/l7scope.h (make runs it;
tests/capture/test_wire.py checks it is current and agrees with a C compiler).

DATA records (nearly all of them) become DataChunk events in compiled code, a batch per call
(dataplane/_wiremodule.c, given the layout and numbers from wire_layout.py): it reads a
record's numbers and looks its endpoint part up in this decoder's cache. What it leaves
(other kinds, a short or damaged record, an endpoint part not cached yet) is decoded here, in
place, so events keep the records' order; a DATA record whose endpoints are new has them
formatted here, cached, and is then made by the compiled code too (one implementation).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from l7scope.capture import wire_layout as L
from l7scope.capture.events import (
    CaptureEvent, ConnectionClosed, ConnectionOpened, DataChunk, Role, StreamEnded,
)
from l7scope.capture.proc_events import KIND_EXEC, KIND_EXIT, decode_proc
from l7scope.capture.tcp_summary import decode_tcp
from l7scope.dataplane._wire import DataDecoder

_EVENT = {name: (offset, size, code) for name, offset, size, code in L.L7_EVENT_FIELDS}
_NAMES = [f[0] for f in L.L7_EVENT_FIELDS]


def _format(first: str, last: str) -> str:
    """struct format of the record fields first..last (inclusive), in header order."""
    return "<" + "".join(_EVENT[n][2] for n in _NAMES[_NAMES.index(first):_NAMES.index(last) + 1])


HEADER_LEN = _EVENT["data"][0]
HEADER = struct.Struct(_format("ts_enter", "comm"))
assert HEADER.size == HEADER_LEN == L.CONSTANTS["L7_EVENT_HDR_LEN"]
# the numeric part, decoded for every record; the endpoint part (family, flags, ports,
# addresses, comm) repeats for every record of a socket and is decoded once
NUMBERS = struct.Struct(_format("ts_enter", "role"))
ENDPOINTS = struct.Struct(_format("family", "comm"))
ENDPOINTS_AT = _EVENT["family"][0]
FLAGS_AT = _EVENT["flags"][0]
assert NUMBERS.size == ENDPOINTS_AT and ENDPOINTS_AT + ENDPOINTS.size == HEADER_LEN
MAX_ENDPOINT_CACHE = 8192

_E = L.ENUMS
KIND_DATA, KIND_OPEN, KIND_CLOSE, KIND_EOF, KIND_TCP = (
    _E["l7_kind"][f"L7_KIND_{k}"] for k in ("DATA", "OPEN", "CLOSE", "EOF", "TCP"))
DIR_EGRESS, DIR_INGRESS = _E["l7_direction"]["L7_DIR_EGRESS"], _E["l7_direction"]["L7_DIR_INGRESS"]
AF_INET, AF_INET6 = 2, 10
FLAG_PAYLOAD_SUPPRESSED, FLAG_TRUNCATED, FLAG_TLS = (
    L.CONSTANTS[f"L7_FLAG_{k}"] for k in ("PAYLOAD_SUPPRESSED", "TRUNCATED", "TLS"))


def _syscall_name(member: str) -> str:
    """L7_SYS_RECVMSG -> "recvmsg", L7_SYS_SSL_READ -> "SSL_read", L7_SYS_SENDFILE -> "sendfile"."""
    name = member.removeprefix("L7_SYS_")
    return "SSL_" + name[4:].lower() if name.startswith("SSL_") else name.lower()


SYSCALLS = {num: _syscall_name(member) for member, num in _E["l7_syscall"].items()}
STATS = tuple(m.removeprefix("L7_STAT_").lower() for m, v in
              sorted(_E["l7_stat"].items(), key=lambda kv: kv[1]) if m != "L7_STAT_MAX")
assert len(STATS) == _E["l7_stat"]["L7_STAT_MAX"]

_ip_cache: dict[bytes, str] = {}


def _ip_text(family: int, raw: bytes) -> str:
    key = bytes([family]) + raw
    text = _ip_cache.get(key)
    if text is None:
        if family == AF_INET:
            text = str(ipaddress.IPv4Address(raw[:4]))
        else:
            addr = ipaddress.IPv6Address(raw)
            text = str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)
        if len(_ip_cache) > 4096:
            _ip_cache.clear()
        _ip_cache[key] = text
    return text


ROLES = (Role.UNKNOWN, Role.CLIENT, Role.SERVER)
# the order in which _wiremodule.c fills a DataChunk: a change to DataChunk must change both
CHUNK_FIELDS = ("conn_id", "egress", "ts", "data", "length", "seq", "role", "local", "remote",
                "pid", "tid", "comm", "fd", "syscall", "ts_enter", "ts_exit", "tls")
assert DataChunk._fields == CHUNK_FIELDS
_SYSCALL_BY_NUMBER = tuple(SYSCALLS.get(n) for n in range(max(SYSCALLS) + 1))
_LAYOUT = {name: (offset, size) for name, offset, size, _ in L.L7_EVENT_FIELDS}


def _endpoints(key: bytes) -> tuple | None:
    """(local, remote, comm) from the endpoint part of a record, None for an unknown family."""
    family, _flags, lport, rport, laddr, raddr, comm_raw = ENDPOINTS.unpack(key)
    if family not in (AF_INET, AF_INET6):
        return None
    comm = comm_raw.split(b"\0", 1)[0].decode(errors="replace")
    return (_ip_text(family, laddr), lport), (_ip_text(family, raddr), rport), comm


@dataclass(slots=True)
class WireDecoder:
    """Turns raw records into events; counts records it cannot decode."""

    malformed: int = 0
    _endpoint_cache: dict[bytes, tuple] = field(default_factory=dict)  # shared with _data
    _data: DataDecoder = None

    def __post_init__(self):
        self._data = DataDecoder(_LAYOUT, (KIND_DATA, DIR_EGRESS, FLAG_TLS), DataChunk, ROLES,
                                 _SYSCALL_BY_NUMBER, self._endpoint_cache)

    def decode_batch(self, records) -> list[CaptureEvent]:
        """The events of a batch of records, in order (undecodable records counted, left out)."""
        events, rest = self._data.decode(records)
        if not rest:
            return events
        out, done = [], 0
        for at, rec in rest:
            out += events[done:at]
            done = at
            ev = self.decode_other(rec)
            if ev is not None:
                out.append(ev)
        out += events[done:]
        return out

    def decode(self, rec: bytes) -> CaptureEvent | None:
        events, _ = self._data.decode((rec,))
        return events[0] if events else self.decode_other(rec)

    def decode_other(self, rec: bytes) -> CaptureEvent | None:
        """A record the compiled decoder left (see the module docstring)."""
        if len(rec) < HEADER_LEN:
            self.malformed += 1
            return None
        (ts_enter, ts_exit, conn_id, tgid, tid, fd, seq, total_len, chunk_off, chunk_len,
         data_len, kind, direction, syscall, role) = NUMBERS.unpack_from(rec)
        if kind == KIND_CLOSE:
            return ConnectionClosed(conn_id=conn_id, ts=ts_exit)
        if kind == KIND_EXEC or kind == KIND_EXIT:  # no endpoints (capture/proc_events.py)
            ev = decode_proc(rec, kind, ts_exit, tgid, data_len)
            if ev is None:
                self.malformed += 1
            return ev
        key = rec[ENDPOINTS_AT:HEADER_LEN]
        ends = self._endpoint_cache.get(key)
        if ends is None:
            ends = _endpoints(key)
            if len(self._endpoint_cache) >= MAX_ENDPOINT_CACHE:
                self._endpoint_cache.clear()
            self._endpoint_cache[key] = ends
        if ends is None or HEADER_LEN + data_len > len(rec):
            self.malformed += 1
            return None
        local, remote, comm = ends
        egress = direction == DIR_EGRESS
        if kind == KIND_DATA:  # its endpoints are cached now: the compiled decoder makes it
            events, _ = self._data.decode((rec,))
            if events:
                return events[0]
        elif kind == KIND_OPEN:
            return ConnectionOpened(
                conn_id=conn_id, ts=ts_exit, role=ROLES[role] if role < 3 else Role.UNKNOWN,
                local=local, remote=remote, pid=tgid, comm=comm, fd=fd)
        elif kind == KIND_EOF:
            return StreamEnded(conn_id=conn_id, egress=egress, ts=ts_exit)
        elif kind == KIND_TCP:  # a socket's TCP health at close (l7scope/tcpmetrics.py)
            summary = decode_tcp(rec, ts_enter, ts_exit, tgid, role, ends)
            if summary is not None:
                return summary
        self.malformed += 1
        return None
