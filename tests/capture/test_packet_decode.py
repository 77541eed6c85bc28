"""Frame decoding: every link type, VLAN stacks, IPv4 options/fragments, IPv6 extension headers."""
from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
)
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from l7scope.capture import packet as P
from l7scope.capture.packet import CaptureError, Packet, PacketDecoder

def ETH(**kw) -> Ether:
    """Ethernet with fixed addresses (scapy would otherwise try to resolve them)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **kw)


PAYLOAD = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
TS = 1_700_000_000_123_456_789


def tcp4(**kw) -> IP:
    return IP(src="192.0.2.1", dst="198.51.100.7", **kw) / TCP(
        sport=51515, dport=8080, seq=123456789, ack=987654321, flags="PA") / Raw(PAYLOAD)


def tcp6() -> TCP:
    return TCP(sport=40001, dport=443, seq=4294967295, ack=1, flags="A") / Raw(PAYLOAD)


def decode(linktype: int, frame: bytes, pad: int = 0):
    """Decode a frame placed at an offset inside a larger buffer, as the readers do."""
    buf = b"\xee" * pad + frame + b"\xdd" * 7
    return PacketDecoder().decode(linktype, buf, pad, pad + len(frame), TS)


EXPECTED4 = Packet(TS, "192.0.2.1", "198.51.100.7", 51515, 8080, 123456789, 987654321,
                   P.PSH | P.ACK, PAYLOAD, 4)
EXPECTED6 = Packet(TS, "2001:db8::1", "2001:db8:0:1::2", 40001, 443, 4294967295, 1, P.ACK,
                   PAYLOAD, 6)


def test_ethernet_ipv4():
    assert decode(P.LINKTYPE_ETHERNET, bytes(ETH() / tcp4()), pad=5) == EXPECTED4


def test_ethernet_padding_and_fcs_are_cut_by_ip_length():
    frame = bytes(ETH() / IP(src="192.0.2.1", dst="198.51.100.7") /
                  TCP(sport=1, dport=2, flags="A"))
    got = decode(P.LINKTYPE_ETHERNET, frame + b"\x00" * 6 + b"FCS!")
    assert isinstance(got, Packet) and got.payload == b"" and got.missing == 0


def test_stacked_vlan_tags():
    frame = bytes(ETH() / Dot1AD(vlan=100) / Dot1Q(vlan=200) / tcp4())
    assert decode(P.LINKTYPE_ETHERNET, frame) == EXPECTED4


def test_ipv4_options_are_skipped():
    frame = bytes(ETH() / tcp4(options=b"\x01\x01\x01\x00" * 3))  # NOPs + EOL, IHL 8
    assert frame[14] == 0x48
    assert decode(P.LINKTYPE_ETHERNET, frame) == EXPECTED4


def test_tcp_options_are_skipped_and_all_flags_kept():
    ip = IP(src="192.0.2.1", dst="198.51.100.7") / TCP(
        sport=1, dport=2, seq=5, flags="SEC", options=[("MSS", 1460), ("WScale", 7), ("SAckOK", b"")]
    ) / Raw(b"tfo")
    got = decode(P.LINKTYPE_RAW, bytes(ip))
    assert (got.flags, got.payload, got.seq) == (P.SYN | P.ECE | P.CWR, b"tfo", 5)


def test_ipv4_non_first_fragment_skipped_and_counted():
    d = PacketDecoder()
    frame = bytes(IP(src="192.0.2.1", dst="198.51.100.7", frag=185, proto=6) / Raw(b"x" * 40))
    assert d.decode(P.LINKTYPE_RAW, frame, 0, len(frame), TS) is None
    assert d.counters["ipv4_non_first_fragments"] == 1


def test_ipv4_first_fragment_counted_and_decoded():
    d = PacketDecoder()
    frame = bytes(tcp4(flags="MF"))
    assert d.decode(P.LINKTYPE_RAW, frame, 0, len(frame), TS) == EXPECTED4
    assert d.counters["ip_first_fragments"] == 1


def test_ipv6_with_every_extension_header():
    ip = (IPv6(src="2001:db8::1", dst="2001:db8:0:1::2") / IPv6ExtHdrHopByHop() /
          IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(addresses=["2001:db8::99"]) /
          IPv6ExtHdrFragment(offset=0, m=0) / IPv6ExtHdrDestOpt() / tcp6())
    assert decode(P.LINKTYPE_ETHERNET, bytes(ETH() / ip)) == EXPECTED6


def test_ipv6_non_first_fragment_skipped():
    d = PacketDecoder()
    frame = bytes(IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=10, nh=6) / Raw(b"y" * 16))
    assert d.decode(P.LINKTYPE_RAW, frame, 0, len(frame), TS) is None
    assert d.counters["ipv6_non_first_fragments"] == 1


def test_raw_ip_link_types():
    v4, v6 = bytes(tcp4()), bytes(IPv6(src="2001:db8::1", dst="2001:db8:0:1::2") / tcp6())
    for lt in (P.LINKTYPE_RAW, P.LINKTYPE_RAW_12, P.LINKTYPE_RAW_14):
        assert decode(lt, v4) == EXPECTED4
        assert decode(lt, v6) == EXPECTED6
    assert decode(P.LINKTYPE_IPV4, v4) == EXPECTED4
    assert decode(P.LINKTYPE_IPV6, v6) == EXPECTED6


def test_linux_cooked_v1_and_v2():
    assert decode(P.LINKTYPE_LINUX_SLL, bytes(CookedLinux(pkttype=4, proto=0x0800) / tcp4())) \
        == EXPECTED4
    assert decode(P.LINKTYPE_LINUX_SLL2, bytes(CookedLinuxV2(proto=0x0800) / tcp4())) == EXPECTED4
    v6 = IPv6(src="2001:db8::1", dst="2001:db8:0:1::2") / tcp6()
    assert decode(P.LINKTYPE_LINUX_SLL, bytes(CookedLinux(proto=0x86DD) / v6)) == EXPECTED6


def test_null_loopback_either_byte_order_and_openbsd_loop():
    v4, v6 = bytes(tcp4()), bytes(IPv6(src="2001:db8::1", dst="2001:db8:0:1::2") / tcp6())
    assert decode(P.LINKTYPE_NULL, struct.pack("<I", 2) + v4) == EXPECTED4
    assert decode(P.LINKTYPE_NULL, struct.pack(">I", 2) + v4) == EXPECTED4
    for family in (24, 28, 30):
        assert decode(P.LINKTYPE_NULL, struct.pack("<I", family) + v6) == EXPECTED6
    assert decode(P.LINKTYPE_LOOP, struct.pack(">I", 2) + v4) == EXPECTED4


def test_non_tcp_and_non_ip_are_skipped_and_counted():
    d = PacketDecoder()
    udp = bytes(ETH() / IP() / UDP() / Raw(b"dns"))
    arp = bytes(ETH(type=0x0806) / Raw(b"\x00" * 28))
    assert d.decode(P.LINKTYPE_ETHERNET, udp, 0, len(udp), TS) is None
    assert d.decode(P.LINKTYPE_ETHERNET, arp, 0, len(arp), TS) is None
    assert (d.counters["non_tcp"], d.counters["non_ip"]) == (1, 1)


def test_snaplen_cut_payload_reports_missing_bytes():
    d = PacketDecoder()
    frame = bytes(ETH() / tcp4())
    got = d.decode(P.LINKTYPE_ETHERNET, frame, 0, len(frame) - 10, TS)
    assert got.payload == PAYLOAD[:-10] and got.missing == 10 and got.wire_payload_len == len(PAYLOAD)
    assert (d.counters["truncated_payloads"], d.counters["truncated_bytes"]) == (1, 10)


def test_snaplen_cut_inside_tcp_header_is_an_error_value():
    frame = bytes(ETH() / tcp4())
    got = decode(P.LINKTYPE_ETHERNET, frame[:14 + 20 + 10])
    assert isinstance(got, CaptureError) and got.code == "truncated_tcp_header"


def test_damaged_headers_are_error_values():
    good = bytes(tcp4())
    bad_ihl = bytes([0x43]) + good[1:]
    bad_version = bytes([0x55]) + good[1:]
    bad_doff = good[:32] + bytes([0x30]) + good[33:]
    assert decode(P.LINKTYPE_RAW, bad_ihl).code == "bad_ipv4_header"
    assert decode(P.LINKTYPE_RAW, bad_version) is None  # version 5: not IP
    assert decode(P.LINKTYPE_IPV4, bad_version).code == "bad_ipv4_header"
    assert decode(P.LINKTYPE_RAW, bad_doff).code == "bad_tcp_data_offset"
    assert decode(P.LINKTYPE_ETHERNET, b"\x00" * 10).code == "truncated_header"
    assert decode(147, good).code == "unsupported_link_type"


@settings(max_examples=400, deadline=None)
@given(linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276]),
       frame=st.binary(max_size=120), cut=st.integers(0, 120))
def test_any_bytes_decode_to_a_value_never_an_exception(linktype, frame, cut):
    got = decode(linktype, frame[:cut] if cut < len(frame) else frame)
    assert got is None or isinstance(got, (Packet, CaptureError))


VLAN_V6_FRAME = bytes(ETH() / Dot1Q() / IPv6(src="2001:db8::1", dst="2001:db8:0:1::2") /
                     IPv6ExtHdrHopByHop() / tcp6())


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 200))
def test_every_truncation_of_a_valid_frame_is_a_value(cut):
    frame = VLAN_V6_FRAME
    got = decode(P.LINKTYPE_ETHERNET, frame[:cut])
    if cut >= len(frame):
        assert got == EXPECTED6
    elif cut >= len(frame) - len(PAYLOAD):
        assert got.missing == len(frame) - cut and got.payload == PAYLOAD[:len(PAYLOAD) - got.missing]
    else:
        assert isinstance(got, CaptureError)
