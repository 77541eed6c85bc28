"""Link, IP and TCP header decoding: one captured frame -> one Packet record (or a value saying why not).

Theory of operation
-------------------
A capture record is a slice ``buf[start:end]`` of a larger read buffer plus its link type. The
decoder walks the headers with ``struct.unpack_from`` at offsets into that buffer (no copies,
no per-byte loops) and copies out only the TCP payload:

    link header (Ethernet + stacked VLAN tags | SLL | SLL2 | BSD/OpenBSD loopback | none)
      -> ethertype / address family -> IPv4 (options, fragments) | IPv6 (extension headers)
      -> TCP header (options skipped by the data offset) -> payload

The IP header's length fields say how many bytes the packet had on the wire; the record may hold
fewer (snap length) or more (Ethernet padding, a trailing FCS). The payload is cut to the IP
length and, when the record is shorter, ``Packet.missing`` says how many payload bytes were not
captured so the reassembler can turn them into a known-length hole.

Outcomes of ``PacketDecoder.decode``: a ``Packet`` for a TCP segment; ``None`` for a frame that
is well formed but not ours (not IP, not TCP, a non-first IP fragment), counted by reason; a
``CaptureError`` for a frame whose headers are damaged or cut short, counted too. Nothing raises.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# TCP flag bits (RFC 9293 section 3.1, plus NS from RFC 3540 in the low bit of byte 12).
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x100

# Link-layer header types (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12  # DLT_RAW on most BSDs, written verbatim by some old tools
LINKTYPE_RAW_14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))  # 802.1Q, 802.1ad, pre-standard QinQ
# BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 differs per OS.
AF_INET_VALUES = frozenset((2,))
AF_INET6_VALUES = frozenset((10, 23, 24, 28, 30))

IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = frozenset((0, 43, 44, 51, 60))  # hop-by-hop, routing, fragment, AH, dest opts

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U32_LE = struct.Struct("<I")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIH")  # ports, seq, ack, data offset + flags
_IP_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded TCP segment. ``missing`` payload bytes were on the wire but not captured."""

    ts_ns: int
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    ip_version: int
    missing: int = 0

    @property
    def wire_payload_len(self) -> int:
        """TCP payload length the IP header gives (captured plus missing)."""
        return len(self.payload) + self.missing


@dataclass(frozen=True, slots=True)
class CaptureError:
    """A capture file or frame that could not be read; ``code`` is a short stable key."""

    code: str
    message: str
    offset: int | None = None  # byte offset in the file, when known
    record: int | None = None  # 0-based record (packet block) index, when known
    fatal: bool = False  # True when reading stopped here


class _Malformed(Exception):
    """Internal: a header is damaged; turned into a CaptureError at the decode boundary."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


DECODER_COUNTERS = (
    "frames", "tcp_packets", "non_ip", "non_tcp", "ipv4_non_first_fragments",
    "ipv6_non_first_fragments", "ip_first_fragments", "truncated_payloads", "truncated_bytes",
    "malformed", "unsupported_link_type",
)


class PacketDecoder:
    """Decodes frames of any supported link type; keeps counters of what it skipped and why."""

    def __init__(self, counters: dict[str, int] | None = None) -> None:
        self.counters: dict[str, int] = counters if counters is not None else {}
        for key in DECODER_COUNTERS:
            self.counters.setdefault(key, 0)
        self._ip_text: dict[bytes, str] = {}
        self._link = {
            LINKTYPE_ETHERNET: self._link_ethernet,
            LINKTYPE_NULL: self._link_null,
            LINKTYPE_LOOP: self._link_loop,
            LINKTYPE_LINUX_SLL: self._link_sll,
            LINKTYPE_LINUX_SLL2: self._link_sll2,
            LINKTYPE_RAW: self._link_raw,
            LINKTYPE_RAW_12: self._link_raw,
            LINKTYPE_RAW_14: self._link_raw,
            LINKTYPE_IPV4: lambda buf, off, end: (ETHERTYPE_IPV4, off),
            LINKTYPE_IPV6: lambda buf, off, end: (ETHERTYPE_IPV6, off),
        }

    @staticmethod
    def supports(linktype: int) -> bool:
        return linktype in _SUPPORTED_LINKTYPES

    def decode(self, linktype: int, buf: bytes, start: int, end: int,
               ts_ns: int) -> Packet | CaptureError | None:
        """Decode the frame ``buf[start:end]``; see the module comment for the three outcomes."""
        self.counters["frames"] += 1
        link = self._link.get(linktype)
        if link is None:
            self.counters["unsupported_link_type"] += 1
            return CaptureError("unsupported_link_type", f"link type {linktype} is not supported")
        try:
            ethertype, off = link(buf, start, end)
            if ethertype == ETHERTYPE_IPV4:
                return self._ipv4(buf, off, end, ts_ns)
            if ethertype == ETHERTYPE_IPV6:
                return self._ipv6(buf, off, end, ts_ns)
            self.counters["non_ip"] += 1
            return None
        except (_Malformed, struct.error, IndexError) as exc:
            self.counters["malformed"] += 1
            if isinstance(exc, _Malformed):
                return CaptureError(exc.code, exc.message)
            return CaptureError("truncated_header", f"frame too short for its headers ({exc})")

    # --- link layers: each returns (ethertype, offset of the network header) ---

    def _link_ethernet(self, buf: bytes, off: int, end: int) -> tuple[int, int]:
        _need(off + 14, end, "Ethernet header")
        ethertype = _U16.unpack_from(buf, off + 12)[0]
        return self._skip_vlan_tags(buf, off + 14, end, ethertype)

    @staticmethod
    def _skip_vlan_tags(buf: bytes, off: int, end: int, ethertype: int) -> tuple[int, int]:
        # IEEE 802.1Q: a tag is TPID(2) TCI(2); the TPID sits where the ethertype was, and the
        # inner ethertype follows the TCI. 802.1ad stacks several tags the same way.
        while ethertype in VLAN_TPIDS:
            _need(off + 4, end, "VLAN tag")
            ethertype = _U16.unpack_from(buf, off + 2)[0]
            off += 4
        return ethertype, off

    @staticmethod
    def _link_null(buf: bytes, off: int, end: int) -> tuple[int, int]:
        # DLT_NULL: a 4-byte address family in the byte order of the host that captured.
        _need(off + 4, end, "loopback header")
        family = _U32_LE.unpack_from(buf, off)[0]
        if family > 0xFFFF:
            family = _U32.unpack_from(buf, off)[0]
        return _family_to_ethertype(family), off + 4

    @staticmethod
    def _link_loop(buf: bytes, off: int, end: int) -> tuple[int, int]:
        # DLT_LOOP (OpenBSD): the same 4-byte family, always in network byte order.
        _need(off + 4, end, "loopback header")
        return _family_to_ethertype(_U32.unpack_from(buf, off)[0]), off + 4

    def _link_sll(self, buf: bytes, off: int, end: int) -> tuple[int, int]:
        # Linux cooked v1: pkttype(2) hatype(2) halen(2) addr(8) protocol(2).
        _need(off + 16, end, "SLL header")
        return self._skip_vlan_tags(buf, off + 16, end, _U16.unpack_from(buf, off + 14)[0])

    def _link_sll2(self, buf: bytes, off: int, end: int) -> tuple[int, int]:
        # Linux cooked v2: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8).
        _need(off + 20, end, "SLL2 header")
        return self._skip_vlan_tags(buf, off + 20, end, _U16.unpack_from(buf, off)[0])

    @staticmethod
    def _link_raw(buf: bytes, off: int, end: int) -> tuple[int, int]:
        # Raw IP: the version nibble of the first byte says which IP.
        _need(off + 1, end, "raw IP header")
        version = buf[off] >> 4
        return {4: ETHERTYPE_IPV4, 6: ETHERTYPE_IPV6}.get(version, 0), off

    # --- network layers ---

    def _ipv4(self, buf: bytes, off: int, end: int, ts_ns: int) -> Packet | CaptureError | None:
        _need(off + 20, end, "IPv4 header")
        vihl, _tos, total_len, _ident, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(buf, off)
        header_len = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or header_len < 20:
            raise _Malformed("bad_ipv4_header", f"IPv4 version/IHL byte 0x{vihl:02x} is invalid")
        _need(off + header_len, end, "IPv4 options")
        # RFC 791: "Fragment Offset: 13 bits ... the first fragment has offset zero."
        if frag & 0x1FFF:
            self.counters["ipv4_non_first_fragments"] += 1
            return None
        if frag & 0x2000:  # MF set on the first fragment: the rest of the payload is elsewhere
            self.counters["ip_first_fragments"] += 1
        if proto != IPPROTO_TCP:
            self.counters["non_tcp"] += 1
            return None
        if total_len == 0:  # segmentation offload: the capture host wrote 0; trust the capture
            total_len = end - off
        if total_len < header_len:
            raise _Malformed("bad_ipv4_length", f"IPv4 total length {total_len} < header {header_len}")
        return self._tcp(buf, off + header_len, off + total_len, end, ts_ns,
                         self._ip(src, socket.AF_INET), self._ip(dst, socket.AF_INET), 4)

    def _ipv6(self, buf: bytes, off: int, end: int, ts_ns: int) -> Packet | CaptureError | None:
        _need(off + 40, end, "IPv6 header")
        if buf[off] >> 4 != 6:
            raise _Malformed("bad_ipv6_header", f"IPv6 version nibble is {buf[off] >> 4}")
        payload_len = _U16.unpack_from(buf, off + 4)[0]
        next_header = buf[off + 6]
        src = self._ip(buf[off + 8:off + 24], socket.AF_INET6)
        dst = self._ip(buf[off + 24:off + 40], socket.AF_INET6)
        wire_end = off + 40 + payload_len if payload_len else end  # 0: jumbogram or offload
        pos = off + 40
        while next_header in IPV6_EXTENSION_HEADERS:
            _need(pos + 8, min(end, wire_end), "IPv6 extension header")
            if next_header == 44:
                # RFC 8200 4.5: "Fragment Offset: 13-bit unsigned integer ... in 8-octet units".
                if _U16.unpack_from(buf, pos + 2)[0] & 0xFFF8:
                    self.counters["ipv6_non_first_fragments"] += 1
                    return None
                if buf[pos + 3] & 1:
                    self.counters["ip_first_fragments"] += 1
                ext_len = 8
            elif next_header == 51:  # RFC 4302: AH length is in 4-octet units, minus 2
                ext_len = (buf[pos + 1] + 2) * 4
            else:  # RFC 8200 4.3-4.6: "Hdr Ext Len: 8-octet units, not including the first 8"
                ext_len = (buf[pos + 1] + 1) * 8
            next_header = buf[pos]
            pos += ext_len
        if next_header != IPPROTO_TCP:
            self.counters["non_tcp"] += 1
            return None
        if pos > wire_end:
            raise _Malformed("bad_ipv6_length", "IPv6 extension headers run past the payload length")
        return self._tcp(buf, pos, wire_end, end, ts_ns, src, dst, 6)

    def _tcp(self, buf: bytes, off: int, wire_end: int, end: int, ts_ns: int,
             src: str, dst: str, ip_version: int) -> Packet:
        if off + 20 > wire_end:
            raise _Malformed("bad_tcp_length", "IP payload is shorter than a TCP header")
        if off + 20 > end:
            raise _Malformed("truncated_tcp_header", "TCP header not captured (snap length)")
        sport, dport, seq, ack, off_flags = _TCP.unpack_from(buf, off)
        data_off = (off_flags >> 12) * 4
        # RFC 9293 3.1: "Data Offset: 4 bits ... the number of 32-bit words in the TCP header".
        if data_off < 20 or off + data_off > wire_end:
            raise _Malformed("bad_tcp_data_offset", f"TCP data offset {data_off} is invalid")
        payload_start = off + data_off
        captured_end = min(end, wire_end)
        payload = buf[payload_start:captured_end] if captured_end > payload_start else b""
        missing = wire_end - payload_start - len(payload)
        if missing:
            self.counters["truncated_payloads"] += 1
            self.counters["truncated_bytes"] += missing
        self.counters["tcp_packets"] += 1
        return Packet(ts_ns, src, dst, sport, dport, seq, ack, off_flags & 0x1FF,
                      bytes(payload), ip_version, missing)

    def _ip(self, raw: bytes, family: int) -> str:
        text = self._ip_text.get(raw)
        if text is None:
            if len(self._ip_text) >= _IP_CACHE_LIMIT:
                self._ip_text.clear()
            text = self._ip_text[raw] = socket.inet_ntop(family, raw)
        return text


_SUPPORTED_LINKTYPES = frozenset((
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW_12, LINKTYPE_RAW_14, LINKTYPE_RAW,
    LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2,
))


def _need(limit: int, end: int, what: str) -> None:
    if limit > end:
        raise _Malformed("truncated_header", f"frame ends inside the {what}")


def _family_to_ethertype(family: int) -> int:
    if family in AF_INET_VALUES:
        return ETHERTYPE_IPV4
    if family in AF_INET6_VALUES:
        return ETHERTYPE_IPV6
    return 0
