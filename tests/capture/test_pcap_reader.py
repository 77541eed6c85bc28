"""pcap / pcapng readers: both byte orders, us/ns, per-interface link types and resolutions,
block types, bad files as values, streaming in bounded chunks."""
from __future__ import annotations

import io
import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether
from scapy.packet import Raw

from l7scope.capture import pcap
from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk
from l7scope.capture.packet import CaptureError, Packet
from l7scope.capture.pcap import pcap_events, read_capture

TS_NS = 1_700_000_000_123_456_789


def eth(payload) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / payload)


def v4(seq: int, data: bytes, flags: str = "PA", sport: int = 50000) -> IP:
    return IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=sport, dport=80, seq=seq, flags=flags) / Raw(data)


def v6(seq: int, data: bytes) -> IPv6:
    return (IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrDestOpt() /
            IPv6ExtHdrRouting(addresses=["fd00::9"]) /
            TCP(sport=50001, dport=443, seq=seq, flags="A") / Raw(data))


FRAMES = [eth(v4(1, b"alpha")), eth(Dot1Q(vlan=7) / v4(6, b"beta")), eth(v6(100, b"gamma"))]


# --- writers (independent of the reader under test) ---

def write_pcap(frames, order="<", nanos=False, linktype=1, snaplen=65535, ts=TS_NS) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, frame in enumerate(frames):
        t = ts + i * 1_000
        frac = t % 10**9 if nanos else t % 10**9 // 1000
        cap = frame[:snaplen]
        out.append(struct.pack(order + "IIII", t // 10**9, frac, len(cap), len(frame)) + cap)
    return b"".join(out)


def opt(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, tsresol: int | None = None, tsoffset: int = 0,
        snaplen: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += opt(order, 9, bytes([tsresol]))
    if tsoffset:
        opts += opt(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += opt(order, 0, b"")
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(order: str, if_id: int, ticks: int, frame: bytes, orig: int | None = None) -> bytes:
    return block(order, 6, struct.pack(order + "IIIII", if_id, ticks >> 32, ticks & 0xFFFFFFFF,
                                       len(frame), orig or len(frame)) + frame)


def spb(order: str, frame: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(frame)) + frame)


def opb(order: str, if_id: int, ticks: int, frame: bytes) -> bytes:
    return block(order, 2, struct.pack(order + "HHIIII", if_id, 0, ticks >> 32,
                                       ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame)


def items(data: bytes, counters=None) -> list:
    return list(read_capture(io.BytesIO(data), counters))


def packets(data: bytes) -> list[Packet]:
    got = items(data)
    assert not [x for x in got if isinstance(x, CaptureError)], got
    return got


def test_pcap_all_four_magics_give_the_same_packets():
    results = [packets(write_pcap(FRAMES, order, nanos)) for order in "<>" for nanos in (False, True)]
    us_ts = [p.ts_ns for p in results[0]]
    assert us_ts == [TS_NS // 1000 * 1000 + i * 1000 for i in range(3)]
    assert [p.ts_ns for p in results[1]] == [TS_NS + i * 1000 for i in range(3)]
    assert results[0] == results[2] and results[1] == results[3]
    first, vlan, six = results[1]
    assert (first.src_ip, first.dst_ip, first.src_port, first.dst_port, first.seq, first.payload) \
        == ("10.0.0.1", "10.0.0.2", 50000, 80, 1, b"alpha")
    assert (vlan.seq, vlan.payload) == (6, b"beta")
    assert (six.src_ip, six.dst_ip, six.dst_port, six.payload, six.ip_version) == \
        ("fd00::1", "fd00::2", 443, b"gamma", 6)


@pytest.mark.parametrize("linktype,frame", [
    (113, bytes(CookedLinux(proto=0x0800) / v4(1, b"sll"))),
    (276, bytes(CookedLinuxV2(proto=0x0800) / v4(1, b"sll"))),
    (101, bytes(v4(1, b"sll"))),
    (228, bytes(v4(1, b"sll"))),
    (0, struct.pack("<I", 2) + bytes(v4(1, b"sll"))),
    (108, struct.pack(">I", 2) + bytes(v4(1, b"sll"))),
])
def test_pcap_link_types(linktype, frame):
    [p] = packets(write_pcap([frame], linktype=linktype))
    assert (p.src_ip, p.src_port, p.payload) == ("10.0.0.1", 50000, b"sll")


def test_pcap_snaplen_truncation_reported_in_packet_and_counters():
    counters: dict = {}
    frame = eth(v4(1, b"x" * 100))
    [p] = items(write_pcap([frame], snaplen=len(frame) - 30), counters)
    assert p.payload == b"x" * 70 and p.missing == 30
    assert counters["truncated_payloads"] == 1 and counters["records"] == 1


def test_dpkt_written_pcap_and_pcapng_are_read():
    for writer_cls, kw in ((dpkt.pcap.Writer, {"nano": True}), (dpkt.pcapng.Writer, {})):
        f = io.BytesIO()
        w = writer_cls(f, **kw)
        for i, frame in enumerate(FRAMES):
            w.writepkt(frame, ts=1_700_000_000 + i)
        got = packets(f.getvalue())
        assert [p.payload for p in got] == [b"alpha", b"beta", b"gamma"]
        assert [p.ts_ns // 10**9 for p in got] == [1_700_000_000, 1_700_000_001, 1_700_000_002]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_resolutions_and_block_kinds(order):
    sll = bytes(CookedLinux(proto=0x0800) / v4(9, b"cooked"))
    data = b"".join([
        shb(order),
        idb(order, 1),  # default resolution: microseconds
        idb(order, 113, tsresol=9, tsoffset=100),  # nanoseconds, offset 100 s
        idb(order, 101, tsresol=0x80 | 10, snaplen=0),  # 2**-10 s
        epb(order, 0, 1_700_000_000_000_001, FRAMES[0]),
        epb(order, 1, 5_000_000_007, sll),
        epb(order, 2, 3 * 1024 + 512, bytes(v4(11, b"raw"))),
        block(order, 5, b"\x00" * 16),  # interface statistics: skipped
        block(order, 0x40000BAD, b"custom"),  # unknown block: skipped
        spb(order, FRAMES[1]),  # interface 0, no timestamp: keeps the previous one
        opb(order, 0, 2_000_000, FRAMES[2]),
    ])
    got = packets(data)
    assert [p.payload for p in got] == [b"alpha", b"cooked", b"raw", b"beta", b"gamma"]
    assert [p.ts_ns for p in got] == [
        1_700_000_000_000_001_000, 105_000_000_007, 3_500_000_000, 3_500_000_000, 2_000_000_000]


def test_pcapng_new_section_resets_interfaces_and_byte_order():
    data = (shb("<") + idb("<", 1) + epb("<", 0, 1, FRAMES[0]) +
            shb(">") + idb(">", 101) + epb(">", 0, 2, bytes(v4(1, b"second"))))
    assert [p.payload for p in packets(data)] == [b"alpha", b"second"]


def test_pcapng_unknown_interface_is_a_value_and_reading_goes_on():
    got = items(shb("<") + idb("<", 1) + epb("<", 3, 1, FRAMES[0]) + epb("<", 0, 1, FRAMES[1]))
    assert isinstance(got[0], CaptureError) and got[0].code == "unknown_interface"
    assert not got[0].fatal and got[1].payload == b"beta"


def test_records_split_across_read_chunks(monkeypatch):
    data_pcap = write_pcap(FRAMES * 20)
    data_ng = shb("<") + idb("<", 1) + b"".join(epb("<", 0, i, f) for i, f in enumerate(FRAMES * 20))
    expected = [packets(data_pcap), packets(data_ng)]
    for chunk in (1, 3, 7, 64, 1000):
        monkeypatch.setattr(pcap, "CHUNK_BYTES", chunk)
        assert [packets(data_pcap), packets(data_ng)] == expected


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, n: int = -1) -> bytes:
        assert n is not None and n >= 0, "the reader must never read the whole file"
        self.largest_read = max(self.largest_read, n)
        return super().read(n)


def test_reader_streams_in_bounded_reads(monkeypatch):
    monkeypatch.setattr(pcap, "CHUNK_BYTES", 4096)
    stream = CountingReader(write_pcap(FRAMES * 2000))
    assert len(stream.getvalue()) > 200_000
    n = sum(1 for _ in read_capture(stream))
    assert n == 6000 and stream.largest_read <= 4096


# --- bad input: values, never exceptions ---

@pytest.mark.parametrize("data,code", [
    (b"", "empty_file"),
    (b"\xd4\xc3", "truncated_file"),
    (b"GET / HTTP/1.1\r\n\r\n" * 4, "bad_magic"),
    (write_pcap([])[:20], "truncated_file"),
    (write_pcap(FRAMES)[:-5], "truncated_file"),
    (write_pcap(FRAMES, linktype=147), "unsupported_file"),
    (shb("<")[:-3], "truncated_file"),
    (shb("<")[:8] + b"\xde\xad\xbe\xef" + shb("<")[12:], "bad_magic"),
    (shb("<") + struct.pack("<II", 6, 13) + b"\x00" * 8, "bad_block_length"),
    (shb("<") + struct.pack("<II", 6, 0x7FFFFFF0), "bad_block_length"),
    (shb("<") + block("<", 6, b"\x00" * 20)[:-4] + struct.pack("<I", 99), "bad_block_length"),
    (write_pcap(FRAMES)[:24] + struct.pack("<IIII", 0, 0, 0x7FFFFFFF, 5), "bad_record_length"),
])
def test_bad_files_end_with_a_fatal_error_value(data, code):
    counters: dict = {}
    got = items(data, counters)
    assert isinstance(got[-1], CaptureError) and got[-1].fatal and got[-1].code == code
    assert counters["errors"] >= 1


def test_truncated_file_keeps_the_packets_before_the_cut():
    got = items(write_pcap(FRAMES)[:-5])
    assert [p.payload for p in got[:2]] == [b"alpha", b"beta"]
    assert got[2].offset == 24 + 16 + len(FRAMES[0]) + 16 + len(FRAMES[1])


def test_missing_file_is_a_value(tmp_path):
    [err] = list(read_capture(tmp_path / "nope.pcap"))
    assert err.code == "open_failed" and err.fatal


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\xd4\xc3\xb2\xa1",
                                                             b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\xb2\xa1"]))
def test_garbage_never_raises(data, prefix):
    for item in read_capture(io.BytesIO(prefix + data)):
        assert isinstance(item, (Packet, CaptureError))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 400), flip=st.integers(0, 399), byte=st.integers(0, 255))
def test_damaged_valid_files_never_raise(cut, flip, byte):
    ng = bytearray(shb("<") + idb("<", 1) + b"".join(epb("<", 0, 1, f) for f in FRAMES))
    ng[flip % len(ng)] = byte
    for data in (bytes(ng[:cut]), bytes(ng)):
        for item in read_capture(io.BytesIO(data)):
            assert isinstance(item, (Packet, CaptureError))


# --- the pipeline hook ---

def test_pcap_events_reassembles_a_file(tmp_path):
    frames = [
        eth(v4(1000, b"", "S")), eth(IP(src="10.0.0.2", dst="10.0.0.1") /
                                      TCP(sport=80, dport=50000, seq=5000, ack=1001, flags="SA")),
        eth(v4(1006, b"world")), eth(v4(1001, b"hello")),  # reordered
        eth(IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=50000, seq=5001, flags="PA")
            / Raw(b"reply")),
    ]
    path = tmp_path / "t.pcap"
    path.write_bytes(write_pcap(frames, nanos=True) + b"\x00\x01")  # trailing garbage
    errors: list = []
    ev = list(pcap_events(path, on_error=errors.append))
    assert isinstance(ev[0], ConnectionOpened) and ev[0].local == ("10.0.0.1", 50000)
    data = [(e.egress, e.data, e.seq) for e in ev if isinstance(e, DataChunk)]
    assert data == [(True, b"hello", 1001), (True, b"world", 1006), (False, b"reply", 5001)]
    assert ev[-1] == ConnectionClosed(1, TS_NS + 4000)
    assert [e.code for e in errors] == ["truncated_file"]
