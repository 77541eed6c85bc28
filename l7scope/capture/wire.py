"""Decodes ring-buffer records (struct l7_event in bpf/l7scope.h) into capture events.

The layout here must match bpf/l7scope.h; tests/capture/test_wire.py checks the header size
and field offsets against the C header.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from l7scope.capture.events import (
    CaptureEvent, ConnectionClosed, ConnectionOpened, DataChunk, Role, StreamEnded,
)

HEADER = struct.Struct("<QQQIIiIIIIHBBBBBBHH16s16s16s")
HEADER_LEN = 112
assert HEADER.size == HEADER_LEN
# the numeric part, decoded for every record; the endpoint part (family, flags, ports,
# addresses, comm: bytes 58..112) repeats for every record of a socket and is decoded once
NUMBERS = struct.Struct("<QQQIIiIIIIHBBBB")
ENDPOINTS_AT = NUMBERS.size  # 58
FLAGS_AT = 59
MAX_ENDPOINT_CACHE = 8192

KIND_DATA, KIND_OPEN, KIND_CLOSE, KIND_EOF = 1, 2, 3, 4
DIR_EGRESS, DIR_INGRESS = 1, 2
AF_INET, AF_INET6 = 2, 10
FLAG_PAYLOAD_SUPPRESSED, FLAG_TRUNCATED, FLAG_TLS = 0x01, 0x02, 0x04

SYSCALLS = {
    1: "read", 2: "write", 3: "readv", 4: "writev", 5: "recvfrom", 6: "sendto", 7: "recvmsg",
    8: "sendmsg", 9: "recvmmsg", 10: "sendmmsg", 11: "sendfile", 12: "connect", 13: "accept",
    14: "accept4", 15: "close", 16: "state", 17: "SSL_read", 18: "SSL_write",
}

STATS = ("events", "ringbuf_full", "active_full", "bytes_not_captured", "bytes_suppressed",
         "conns_created", "read_faults", "tls_unmapped")

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


def _endpoints(key: bytes) -> tuple | None:
    """(local, remote, comm) from bytes 58..112 of a record, None for an unknown family."""
    family, _flags, lport, rport, laddr, raddr, comm_raw = struct.unpack("<BBHH16s16s16s", key)
    if family not in (AF_INET, AF_INET6):
        return None
    comm = comm_raw.split(b"\0", 1)[0].decode(errors="replace")
    return (_ip_text(family, laddr), lport), (_ip_text(family, raddr), rport), comm


@dataclass(slots=True)
class WireDecoder:
    """Turns raw records into events; counts records it cannot decode."""

    malformed: int = 0
    _endpoint_cache: dict[bytes, tuple] = field(default_factory=dict)

    def decode(self, rec: bytes) -> CaptureEvent | None:
        if len(rec) < HEADER_LEN:
            self.malformed += 1
            return None
        (ts_enter, ts_exit, conn_id, tgid, tid, fd, seq, total_len, chunk_off, chunk_len,
         data_len, kind, direction, syscall, role) = NUMBERS.unpack_from(rec)
        if kind == KIND_CLOSE:
            return ConnectionClosed(conn_id=conn_id, ts=ts_exit)
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
        if kind == KIND_DATA:
            tls = bool(rec[FLAGS_AT] & FLAG_TLS)  # plaintext: no TCP position, contiguous
            return DataChunk(
                conn_id, egress, ts_enter if egress else ts_exit,
                rec[HEADER_LEN:HEADER_LEN + data_len], chunk_len,
                None if tls else (seq + chunk_off) & 0xFFFFFFFF,
                ROLES[role] if role < 3 else Role.UNKNOWN, local, remote, tgid, tid, comm, fd,
                SYSCALLS.get(syscall), ts_enter, ts_exit, tls)
        if kind == KIND_OPEN:
            return ConnectionOpened(
                conn_id=conn_id, ts=ts_exit, role=ROLES[role] if role < 3 else Role.UNKNOWN,
                local=local, remote=remote, pid=tgid, comm=comm, fd=fd)
        if kind == KIND_EOF:
            return StreamEnded(conn_id=conn_id, egress=egress, ts=ts_exit)
        self.malformed += 1
        return None
