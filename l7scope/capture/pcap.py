"""Capture file readers: classic pcap and pcapng, streamed, turned into Packet records.

Theory of operation
-------------------
``_ByteSource`` reads the file in chunks of ``CHUNK_BYTES`` and hands out (buffer, offset)
views: a record is parsed in place with ``struct.unpack_from`` and only the TCP payload is
copied, so memory stays at about one chunk plus one record whatever the file size.

The first four bytes choose the format:

    a1b2c3d4 / d4c3b2a1   pcap, microsecond timestamps (big / little endian writer)
    a1b23c4d / 4d3cb2a1   pcap, nanosecond timestamps
    0a0d0d0a              pcapng Section Header Block (its byte-order magic sets the endianness)

pcapng (draft-ietf-opsawg-pcapng): blocks are type(4) total_length(4) body total_length(4).
Interface Description Blocks give each interface its link type, snap length, if_tsresol and
if_tsoffset; Enhanced / Simple / (obsolete) Packet Blocks carry frames; every other block type
is skipped. A new Section Header Block starts a new interface list and may change byte order.

Every problem is a ``CaptureError`` value in the output stream. Damage to one frame (a header
cut short) is reported and reading goes on; damage to the file structure (bad magic, a record
length that cannot be right, a file cut in the middle of a record) is reported with
``fatal=True`` and reading stops there.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from l7scope.capture.events import CaptureEvent
from l7scope.capture.packet import CaptureError, Packet, PacketDecoder
from l7scope.capture.tcp_reassembly import TcpReassembler

CHUNK_BYTES = 1 << 20
MAX_RECORD_BYTES = 16 << 20  # larger than any real frame or block; beyond it the length is garbage

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
BLOCK_IDB, BLOCK_PB, BLOCK_SPB, BLOCK_EPB = 1, 2, 3, 6
OPT_END, OPT_IF_TSRESOL, OPT_IF_TSOFFSET = 0, 9, 14

CaptureItem = Packet | CaptureError


class _Truncated(Exception):
    """Internal: the file ended inside a record."""


class _ByteSource:
    """A forward-only window over a binary file; ``take(n)`` returns (buffer, offset of n bytes)."""

    def __init__(self, stream: BinaryIO, chunk: int | None = None) -> None:
        self._stream = stream
        self._chunk = chunk or CHUNK_BYTES
        self._buf = b""
        self._pos = 0
        self._buf_file_offset = 0  # file offset of self._buf[0]

    @property
    def offset(self) -> int:
        return self._buf_file_offset + self._pos

    def at_eof(self) -> bool:
        return not self._fill(1)

    def take(self, n: int) -> tuple[bytes, int]:
        if not self._fill(n):
            raise _Truncated
        pos = self._pos
        self._pos = pos + n
        return self._buf, pos

    def peek(self, n: int) -> tuple[bytes, int] | None:
        return (self._buf, self._pos) if self._fill(n) else None

    def _fill(self, n: int) -> bool:
        have = len(self._buf) - self._pos
        if have >= n:
            return True
        data = self._stream.read(max(self._chunk, n - have))
        self._buf_file_offset += self._pos
        self._buf = self._buf[self._pos:] + data
        self._pos = 0
        while data and len(self._buf) < n:  # short reads from pipes
            data = self._stream.read(n - len(self._buf))
            self._buf += data
        return len(self._buf) >= n


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    ts_mult: int = 1000  # ns per tick when the resolution divides 1e9, else 0
    ts_units: int = 1_000_000  # ticks per second
    ts_offset_ns: int = 0

    def to_ns(self, ticks: int) -> int:
        if self.ts_mult:
            return ticks * self.ts_mult + self.ts_offset_ns
        return ticks * 1_000_000_000 // self.ts_units + self.ts_offset_ns


class CaptureReader:
    """Iterates the Packets of a pcap/pcapng file, with CaptureError values for what went wrong."""

    def __init__(self, path: str | os.PathLike[str] | BinaryIO,
                 counters: dict[str, int] | None = None) -> None:
        self._path = path
        self.counters = counters if counters is not None else {}
        for key in ("records", "errors"):
            self.counters.setdefault(key, 0)
        self.decoder = PacketDecoder(self.counters)
        self.format: str | None = None
        self._record_offset = 0  # file offset of the record being read, for error values

    def __iter__(self) -> Iterator[CaptureItem]:
        if hasattr(self._path, "read"):
            yield from self._read_stream(self._path)  # type: ignore[arg-type]
            return
        try:
            stream = open(self._path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            yield self._error("open_failed", f"cannot open {self._path}: {exc.strerror}", 0, fatal=True)
            return
        with stream:
            yield from self._read_stream(stream)

    def _read_stream(self, stream: BinaryIO) -> Iterator[CaptureItem]:
        src = _ByteSource(stream)
        head = src.peek(4)
        if head is None:
            empty = src.peek(1) is None
            code = "empty_file" if empty else "truncated_file"
            yield self._error(code, "file is empty" if empty else "file shorter than a header", 0, True)
            return
        buf, pos = head
        magic_be = struct.unpack_from(">I", buf, pos)[0]
        magic_le = struct.unpack_from("<I", buf, pos)[0]
        if magic_be == PCAPNG_SHB:
            self.format = "pcapng"
            items = self._read_pcapng(src)
        elif PCAP_MAGIC_US in (magic_be, magic_le) or PCAP_MAGIC_NS in (magic_be, magic_le):
            self.format = "pcap"
            items = self._read_pcap(src, ">" if magic_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else "<")
        else:
            yield self._error("bad_magic", f"not a pcap or pcapng file (magic 0x{magic_be:08x})", 0, True)
            return
        yield from self._account(items, src)

    def _account(self, items: Iterator[CaptureItem], src: _ByteSource) -> Iterator[CaptureItem]:
        try:
            for item in items:
                if isinstance(item, CaptureError):
                    self.counters["errors"] += 1
                yield item
        except _Truncated:
            yield self._error("truncated_file", "file ends in the middle of a record",
                              self._record_offset, fatal=True)

    def _error(self, code: str, message: str, offset: int | None, fatal: bool = False,
               record: int | None = None) -> CaptureError:
        if fatal:
            self.counters["errors"] += 1
        return CaptureError(code, message, offset, record, fatal)

    def _decoded(self, iface: _Interface, buf: bytes, start: int, end: int, ts_ns: int,
                 offset: int) -> CaptureItem | None:
        self.counters["records"] += 1
        item = self.decoder.decode(iface.linktype, buf, start, end, ts_ns)
        if isinstance(item, CaptureError):
            return CaptureError(item.code, item.message, offset, self.counters["records"] - 1)
        return item

    # --- classic pcap ---

    def _read_pcap(self, src: _ByteSource, order: str) -> Iterator[CaptureItem]:
        buf, pos = src.take(24)
        magic, major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
            order + "IHHiIII", buf, pos)
        iface = _Interface(network & 0xFFFF, snaplen, 1 if magic == PCAP_MAGIC_NS else 1000)
        if major != 2 or not self.decoder.supports(iface.linktype):
            what = f"version {major}" if major != 2 else f"link type {iface.linktype}"
            yield self._error("unsupported_file", f"pcap {what} is not supported", 0, fatal=True)
            return
        record = struct.Struct(order + "IIII")
        while not src.at_eof():
            offset = self._record_offset = src.offset
            buf, pos = src.take(16)
            ts_sec, ts_frac, caplen, _wirelen = record.unpack_from(buf, pos)
            if caplen > MAX_RECORD_BYTES:
                yield self._error("bad_record_length", f"record length {caplen} is implausible",
                                  offset, fatal=True)
                return
            buf, pos = src.take(caplen)
            item = self._decoded(iface, buf, pos, pos + caplen,
                                 ts_sec * 1_000_000_000 + ts_frac * iface.ts_mult, offset)
            if item is not None:
                yield item

    # --- pcapng ---

    def _read_pcapng(self, src: _ByteSource) -> Iterator[CaptureItem]:
        order = "<"
        interfaces: list[_Interface] = []
        last_ts = 0
        while not src.at_eof():
            offset = self._record_offset = src.offset
            buf, pos = src.take(8)
            block_type = struct.unpack_from(order + "I", buf, pos)[0]
            if block_type == PCAPNG_SHB:
                order = self._section_order(src)
                interfaces = []
                if order is None:
                    yield self._error("bad_magic", "pcapng section has a bad byte-order magic",
                                      offset, fatal=True)
                    return
            total_len = struct.unpack_from(order + "I", buf, pos + 4)[0]
            if total_len < 12 or total_len % 4 or total_len > MAX_RECORD_BYTES:
                yield self._error("bad_block_length", f"pcapng block length {total_len} is invalid",
                                  offset, fatal=True)
                return
            buf, body = src.take(total_len - 8)
            body_len = total_len - 12
            if struct.unpack_from(order + "I", buf, body + body_len)[0] != total_len:
                yield self._error("bad_block_length", "pcapng block trailer length differs",
                                  offset, fatal=True)
                return
            item, last_ts = self._pcapng_block(block_type, order, buf, body, body_len,
                                               interfaces, last_ts, offset)
            if item is not None:
                yield item

    @staticmethod
    def _section_order(src: _ByteSource) -> str | None:
        peeked = src.peek(4)
        if peeked is None:
            raise _Truncated
        buf, pos = peeked
        if struct.unpack_from("<I", buf, pos)[0] == PCAPNG_BYTE_ORDER_MAGIC:
            return "<"
        if struct.unpack_from(">I", buf, pos)[0] == PCAPNG_BYTE_ORDER_MAGIC:
            return ">"
        return None

    def _pcapng_block(self, block_type: int, order: str, buf: bytes, body: int, body_len: int,
                      interfaces: list[_Interface], last_ts: int,
                      offset: int) -> tuple[CaptureItem | None, int]:
        try:
            if block_type == BLOCK_IDB:
                interfaces.append(_parse_idb(order, buf, body, body_len))
                if not self.decoder.supports(interfaces[-1].linktype):
                    return self._error("unsupported_link_type",
                                       f"interface {len(interfaces) - 1} has link type "
                                       f"{interfaces[-1].linktype}", offset), last_ts
                return None, last_ts
            if block_type in (BLOCK_EPB, BLOCK_PB):
                return self._packet_block(block_type, order, buf, body, body_len, interfaces,
                                          offset)
            if block_type == BLOCK_SPB:
                return self._simple_block(order, buf, body, body_len, interfaces, last_ts,
                                          offset), last_ts
        except struct.error:
            return self._error("bad_block", f"pcapng block type {block_type} is too short",
                               offset), last_ts
        return None, last_ts

    def _packet_block(self, block_type: int, order: str, buf: bytes, body: int, body_len: int,
                      interfaces: list[_Interface], offset: int) -> tuple[CaptureItem | None, int]:
        # EPB: interface(4) ts_high(4) ts_low(4) caplen(4) origlen(4) data...
        # obsolete PB: interface(2) drops(2) then the same fields.
        if block_type == BLOCK_EPB:
            if_id, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(order + "IIIII", buf, body)
        else:
            if_id, _drops, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(order + "HHIIII", buf, body)
        if if_id >= len(interfaces):
            return self._error("unknown_interface", f"packet block names interface {if_id} "
                               "with no Interface Description Block", offset), 0
        if caplen > body_len - 20:
            return self._error("bad_block", "packet block captured length exceeds the block",
                               offset), 0
        iface = interfaces[if_id]
        ts_ns = iface.to_ns((ts_hi << 32) | ts_lo)
        return self._decoded(iface, buf, body + 20, body + 20 + caplen, ts_ns, offset), ts_ns

    def _simple_block(self, order: str, buf: bytes, body: int, body_len: int,
                      interfaces: list[_Interface], last_ts: int, offset: int) -> CaptureItem | None:
        # SPB: origlen(4) data...; it belongs to interface 0 and has no timestamp, so it takes
        # the time of the packet block before it.
        if not interfaces:
            return self._error("unknown_interface", "simple packet block before any interface",
                               offset)
        iface = interfaces[0]
        orig_len = struct.unpack_from(order + "I", buf, body)[0]
        caplen = min(orig_len, body_len - 4, iface.snaplen or orig_len)
        return self._decoded(iface, buf, body + 4, body + 4 + caplen, last_ts, offset)


def _parse_idb(order: str, buf: bytes, body: int, body_len: int) -> _Interface:
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, body)
    iface = _Interface(linktype, snaplen)
    pos, end = body + 8, body + body_len
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", buf, pos)
        value = pos + 4
        if code == OPT_END or value + length > end:
            break
        if code == OPT_IF_TSRESOL and length >= 1:
            raw = buf[value]
            # "If the Most Significant Bit is equal to zero, the remaining bits indicates the
            # resolution as a negative power of 10 ... otherwise a negative power of 2."
            iface.ts_units = 2 ** (raw & 0x7F) if raw & 0x80 else 10 ** raw
            iface.ts_mult = 10**9 // iface.ts_units if 10**9 % iface.ts_units == 0 else 0
        elif code == OPT_IF_TSOFFSET and length >= 8:
            iface.ts_offset_ns = struct.unpack_from(order + "q", buf, value)[0] * 1_000_000_000
        pos = value + (length + 3) // 4 * 4
    return iface


def read_capture(path: str | os.PathLike[str] | BinaryIO,
                 counters: dict[str, int] | None = None) -> Iterator[CaptureItem]:
    """Packets of a pcap or pcapng file, with CaptureError values; never raises on bad input.

    ``counters``, when given, is filled as reading goes (records, errors, and the decoder's
    skip reasons: non_tcp, ipv4_non_first_fragments, truncated_payloads, malformed, ...).
    """
    return iter(CaptureReader(path, counters))


def pcap_events(path: str | os.PathLike[str] | BinaryIO, *,
                reassembler: TcpReassembler | None = None,
                on_error: Callable[[CaptureError], None] | None = None,
                counters: dict[str, int] | None = None) -> Iterator[CaptureEvent]:
    """The pipeline's entry for capture files: reassembled ConnectionOpened/DataChunk/Closed events.

    CaptureError values go to ``on_error`` (dropped when it is None; they are counted either
    way). At the end every connection still open is flushed: pending holes are declared and a
    ConnectionClosed is emitted for it.
    """
    tcp = reassembler if reassembler is not None else TcpReassembler()
    last_ts: int | None = None
    for item in read_capture(path, counters):
        if isinstance(item, CaptureError):
            if on_error is not None:
                on_error(item)
            continue
        last_ts = item.ts_ns
        yield from tcp.feed(item)
    yield from tcp.flush(last_ts)
