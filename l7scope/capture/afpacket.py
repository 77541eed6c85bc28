"""Live capture from an AF_PACKET socket, with a classic BPF filter that keeps only TCP.

Theory of operation
-------------------
``LiveCapture.open()`` makes an ``AF_PACKET``/``SOCK_RAW`` socket with protocol 0 (it receives
nothing yet), attaches the filter with ``SO_ATTACH_FILTER``, and only then binds it to the
interface with ``ETH_P_ALL``: no unfiltered packet can slip in between. The filter is built here
(``build_tcp_filter``) as a cBPF program:

    A <- skb->protocol (ancillary load, the same for every link type)
    IPv4: protocol == TCP, not a non-first fragment, then (optionally) src or dst port in the set
    IPv6: next header == TCP -> ports at +40; an extension header -> accepted (ports checked in
          user space, which always re-checks them)

The link header length for the filter's offsets comes from the interface's ARPHRD type:
Ethernet and loopback have 14 bytes, tunnels and ``ARPHRD_NONE`` devices none. Each packet is
decoded by the same ``PacketDecoder`` as capture files. Timestamps are the kernel's
(``SO_TIMESTAMPNS``, wall clock). The socket is nonblocking; ``read()`` waits at most its poll
timeout, and iteration checks ``stop()`` between polls, so callers can always stop.

Loopback: a packet sent over ``lo`` passes the packet tap twice, once as PACKET_OUTGOING and once
as it is received. Like libpcap, the outgoing copy is dropped on loopback interfaces (counted as
``loopback_outgoing_skipped``); on other interfaces outgoing packets are the only copy and kept.

Kernel drops come from ``PACKET_STATISTICS`` (reading it resets the kernel's counters, so the
values are accumulated here).
"""
from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import time
from collections.abc import Iterator, Sequence

from l7scope.capture.packet import (
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP, LINKTYPE_ETHERNET, LINKTYPE_RAW, Packet,
    PacketDecoder,
)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
SNAPLEN = 262144
MAX_FILTER_PORTS = 32
MAX_BATCH = 4096

# cBPF opcodes (linux/filter.h, linux/bpf_common.h)
BPF_LD_W_ABS = 0x20
BPF_LD_H_ABS = 0x28
BPF_LD_B_ABS = 0x30
BPF_LD_H_IND = 0x48
BPF_LDX_B_MSH = 0xB1
BPF_JEQ_K = 0x15
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
SKF_AD_PROTOCOL = 0xFFFFF000  # SKF_AD_OFF (-0x1000) + SKF_AD_PROTOCOL (0)

Insn = tuple[int, int, int, int]  # (code, jt, jf, k)


def build_tcp_filter(link_header_len: int, ports: Sequence[int] | None = None) -> list[Insn]:
    """A cBPF program keeping IPv4/IPv6 TCP, optionally only with a src or dst port in ``ports``."""
    if ports is not None and not 0 < len(ports) <= MAX_FILTER_PORTS:
        raise ValueError(f"between 1 and {MAX_FILTER_PORTS} filter ports are supported")
    L = link_header_len
    prog: list[tuple] = [  # jump targets are labels, resolved below
        (BPF_LD_W_ABS, 0, 0, SKF_AD_PROTOCOL),
        (BPF_JEQ_K, "ip4", None, ETHERTYPE_IPV4),
        (BPF_JEQ_K, "ip6", "drop", ETHERTYPE_IPV6),
        ("ip4", BPF_LD_B_ABS, 0, 0, L + 9),
        (BPF_JEQ_K, None, "drop", IPPROTO_TCP),
        (BPF_LD_H_ABS, 0, 0, L + 6),
        (BPF_JSET_K, "drop", None, 0x1FFF),  # fragment offset != 0
    ]
    if ports:
        prog.append((BPF_LDX_B_MSH, 0, 0, L))  # X <- IPv4 header length
        prog += _port_checks(BPF_LD_H_IND, L, ports)
    else:
        prog.append((BPF_RET_K, 0, 0, SNAPLEN))
    prog += [
        ("ip6", BPF_LD_B_ABS, 0, 0, L + 6),
        (BPF_JEQ_K, None, "ip6ext", IPPROTO_TCP),
    ]
    prog += _port_checks(BPF_LD_H_ABS, L + 40, ports) if ports else [(BPF_RET_K, 0, 0, SNAPLEN)]
    prog += [
        ("ip6ext", BPF_JEQ_K, "accept", None, 0),  # hop-by-hop
        (BPF_JEQ_K, "accept", None, 43),  # routing
        (BPF_JEQ_K, "accept", None, 44),  # fragment
        (BPF_JEQ_K, "accept", "drop", 60),  # destination options
        ("accept", BPF_RET_K, 0, 0, SNAPLEN),
        ("drop", BPF_RET_K, 0, 0, 0),
    ]
    return _resolve(prog)


def _port_checks(load: int, offset: int, ports: Sequence[int]) -> list[tuple]:
    out: list[tuple] = []
    for port_offset in (0, 2):  # source port, then destination port
        out.append((load, 0, 0, offset + port_offset))
        out += [(BPF_JEQ_K, "accept", None, port) for port in ports]
    out.append((BPF_RET_K, 0, 0, 0))
    return out


def _resolve(prog: list[tuple]) -> list[Insn]:
    labels: dict[str, int] = {}
    plain: list[tuple] = []
    for item in prog:
        if isinstance(item[0], str):
            labels[item[0]] = len(plain)
            item = item[1:]
        plain.append(item)
    out: list[Insn] = []
    for index, (code, jt, jf, k) in enumerate(plain):
        out.append((code, _offset(jt, labels, index), _offset(jf, labels, index), k))
    return out


def _offset(target: object, labels: dict[str, int], index: int) -> int:
    if target is None or isinstance(target, int):
        return target or 0  # None: fall through to the next instruction
    jump = labels[target] - index - 1  # type: ignore[index]
    if not 0 <= jump <= 255:
        raise ValueError("cBPF jump out of range")
    return jump


def run_filter(prog: list[Insn], frame: bytes, protocol: int) -> int:
    """Interpret the subset of cBPF that ``build_tcp_filter`` emits (for tests and checks)."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == BPF_RET_K:
            return k
        if code == BPF_LD_W_ABS and k == SKF_AD_PROTOCOL:
            a = protocol
        elif code in (BPF_LD_B_ABS, BPF_LD_H_ABS, BPF_LD_H_IND, BPF_LDX_B_MSH):
            at = k + x if code == BPF_LD_H_IND else k
            size = 2 if code in (BPF_LD_H_ABS, BPF_LD_H_IND) else 1
            if at + size > len(frame):
                return 0  # the kernel drops the packet on an out-of-bounds load
            value = int.from_bytes(frame[at:at + size], "big")
            if code == BPF_LDX_B_MSH:
                x = (value & 0x0F) * 4
            else:
                a = value
        elif code == BPF_JEQ_K:
            pc += jt if a == k else jf
        elif code == BPF_JSET_K:
            pc += jt if a & k else jf
        else:
            raise ValueError(f"opcode 0x{code:x} not in the interpreted subset")


def link_header_len(interface: str) -> int:
    """14 for Ethernet-framed devices (Ethernet, loopback), else 0 (raw IP devices)."""
    return 14 if _arphrd(interface) in (ARPHRD_ETHER, ARPHRD_LOOPBACK) else 0


def _arphrd(interface: str) -> int:
    try:
        with open(f"/sys/class/net/{interface}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return ARPHRD_ETHER


class LiveCapture:
    """Packets from one interface; use as a context manager, then ``read()`` or iterate."""

    def __init__(self, interface: str, bpf_filter_ports: list[int] | None = None, *,
                 poll_timeout_ms: int = 200, socket_buffer_bytes: int = 8 << 20) -> None:
        self.interface = interface
        self.ports = frozenset(bpf_filter_ports) if bpf_filter_ports else None
        self._port_list = sorted(self.ports) if self.ports else None
        self.poll_timeout_ms = poll_timeout_ms
        self.socket_buffer_bytes = socket_buffer_bytes
        self.decoder = PacketDecoder()
        self.counters = self.decoder.counters
        for key in ("kernel_packets", "kernel_drops", "loopback_outgoing_skipped",
                    "port_filtered", "malformed_frames"):
            self.counters.setdefault(key, 0)
        arphrd = _arphrd(interface)
        self.is_loopback = arphrd == ARPHRD_LOOPBACK
        self._linktype = LINKTYPE_ETHERNET if arphrd in (ARPHRD_ETHER, ARPHRD_LOOPBACK) \
            else LINKTYPE_RAW
        self._sock: socket.socket | None = None
        self._poller: select.poll | None = None
        self._stopped = False
        self._filter_mem: ctypes.Array | None = None

    def __enter__(self) -> LiveCapture:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # bound below, after the filter
        try:
            self._attach_filter(sock)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.socket_buffer_bytes)
            sock.bind((self.interface, ETH_P_ALL))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def close(self) -> None:
        if self._sock is not None:
            self.statistics()
            self._sock.close()
            self._sock = None

    def stop(self) -> None:
        """Ask a running iteration to end after the current poll (safe from another thread)."""
        self._stopped = True

    def statistics(self) -> dict[str, int]:
        """Counters, with the kernel's received/dropped packets accumulated from PACKET_STATISTICS."""
        if self._sock is not None:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
            packets, drops = struct.unpack("II", raw)
            self.counters["kernel_packets"] += packets
            self.counters["kernel_drops"] += drops
        return dict(self.counters)

    def read(self, timeout_ms: int | None = None) -> list[Packet]:
        """Packets available now, waiting up to ``timeout_ms`` (default: the poll timeout)."""
        if self._sock is None or self._poller is None:
            raise RuntimeError("LiveCapture is not open")
        wait = self.poll_timeout_ms if timeout_ms is None else timeout_ms
        if not self._poller.poll(wait):
            return []
        out: list[Packet] = []
        while len(out) < MAX_BATCH:
            try:
                data, ancdata, _flags, addr = self._sock.recvmsg(SNAPLEN, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                break
            packet = self._decode(data, ancdata, addr)
            if packet is not None:
                out.append(packet)
        return out

    def __iter__(self) -> Iterator[Packet]:
        self._stopped = False
        while not self._stopped:
            yield from self.read()

    def _decode(self, data: bytes, ancdata: list, addr: tuple) -> Packet | None:
        if self.is_loopback and addr[2] == PACKET_OUTGOING:
            self.counters["loopback_outgoing_skipped"] += 1
            return None
        item = self.decoder.decode(self._linktype, data, 0, len(data), _timestamp(ancdata))
        if not isinstance(item, Packet):
            if item is not None:
                self.counters["malformed_frames"] += 1
            return None
        if self.ports is not None and item.src_port not in self.ports \
                and item.dst_port not in self.ports:
            self.counters["port_filtered"] += 1
            return None
        return item

    def _attach_filter(self, sock: socket.socket) -> None:
        prog = build_tcp_filter(link_header_len(self.interface), self._port_list)
        raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
        self._filter_mem = ctypes.create_string_buffer(raw)  # must outlive the setsockopt call
        fprog = struct.pack("HL", len(prog), ctypes.addressof(self._filter_mem))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _timestamp(ancdata: list) -> int:
    for level, kind, value in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack_from("qq", value)
            return sec * 1_000_000_000 + nsec
    return time.time_ns()


def can_capture() -> bool:
    """True when this process may open AF_PACKET sockets (root or CAP_NET_RAW)."""
    if os.geteuid() == 0:
        return True
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        return True
    except OSError:
        return False
