"""The kernel/user contract: bpf/l7scope.h vs the generated wire_layout.py, wire.py and
kernel.CONFIG; the kernel's HTTP prefilter vs the Python method list; decoding of hand-built
ring-buffer records."""
from __future__ import annotations

import importlib.util
import ipaddress
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from l7scope.capture import kernel, wire, wire_layout
from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk, Role, StreamEnded
from l7scope.protocols.http1_message import KNOWN_METHODS

ROOT = Path(__file__).resolve().parents[2]
HEADER_H = ROOT / "bpf" / "l7scope.h"
METHODS_H = ROOT / "bpf" / "l7_http_methods.h"

# written out here on purpose: the generated lists must still name these fields in this order
EVENT_FIELDS = ("ts_enter", "ts_exit", "conn_id", "tgid", "tid", "fd", "seq", "total_len",
                "chunk_off", "chunk_len", "data_len", "kind", "direction", "syscall", "role",
                "family", "flags", "lport", "rport", "laddr", "raddr", "comm")
CONFIG_FIELDS = ("self_tgid", "max_payload", "pad", "capture_all", "max_checks", "wakeup_bytes")
FILTER_STATE_FIELDS = ("generation", "pids", "comms", "pad")
CONSTANTS = ("L7_KIND_DATA", "L7_KIND_OPEN", "L7_KIND_CLOSE", "L7_KIND_EOF", "L7_DIR_EGRESS",
             "L7_DIR_INGRESS", "L7_ROLE_UNKNOWN", "L7_ROLE_CLIENT", "L7_ROLE_SERVER",
             "L7_FLAG_PAYLOAD_SUPPRESSED", "L7_FLAG_TRUNCATED", "L7_FLAG_TLS", "L7_EVENT_HDR_LEN",
             "L7_STAT_MAX", "L7_COMM_LEN", "L7_CHUNK", "L7_PID_FILTER_MAX",
             "L7_COMM_FILTER_MAX")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _c_program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>",
             f'#include "{HEADER_H}"', "int main(void) {"]
    for struct_name, fields in (("l7_event", EVENT_FIELDS + ("data",)), ("l7_config", CONFIG_FIELDS),
                                ("l7_filter_state", FILTER_STATE_FIELDS)):
        lines.append(f'printf("sizeof {struct_name} %zu\\n", sizeof(struct {struct_name}));')
        for f in fields:
            lines.append(f'printf("field {struct_name} {f} %zu %zu\\n", '
                         f'offsetof(struct {struct_name}, {f}), '
                         f'sizeof(((struct {struct_name} *)0)->{f}));')
    for c in CONSTANTS:
        lines.append(f'printf("const {c} %ld\\n", (long){c});')
    for num, name in wire.SYSCALLS.items():
        lines.append(f'printf("syscall {name} %ld\\n", (long)L7_SYS_{name.upper()});')
    for i, name in enumerate(wire.STATS):
        lines.append(f'printf("stat {name} %ld\\n", (long)L7_STAT_{name.upper()});')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory) -> dict:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("layout")
    (d / "layout.c").write_text(_c_program())
    subprocess.run([cc, "-Wall", "-Werror", "-o", str(d / "layout"), str(d / "layout.c")],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(d / "layout")], check=True, capture_output=True, text=True).stdout
    layout: dict = {"field": {}, "sizeof": {}, "const": {}, "syscall": {}, "stat": {}}
    for line in out.splitlines():
        kind, *rest = line.split()
        if kind == "field":
            layout["field"][rest[0], rest[1]] = (int(rest[2]), int(rest[3]))
        else:
            layout[kind][rest[0]] = int(rest[1])
    return layout


def _py_layout(st: struct.Struct, names) -> dict[str, tuple[int, int]]:
    codes = st.format.lstrip("<")
    out, offset, i = {}, 0, 0
    for name in names:
        num = ""
        while codes[i].isdigit():
            num += codes[i]
            i += 1
        size = struct.calcsize("<" + num + codes[i])
        out[name] = (offset, size)
        offset += size
        i += 1
    assert i == len(codes), "a field name per format code"
    return out


def test_generated_layout_is_current():
    """wire_layout.py is what the generator makes of today's header (make regenerates it)."""
    gen = _script("gen_wire_layout")
    assert gen.generate(HEADER_H) == Path(wire_layout.__file__).read_text()


def test_generated_field_lists_name_the_header_fields():
    assert tuple(f[0] for f in wire_layout.L7_EVENT_FIELDS) == EVENT_FIELDS + ("data",)
    assert tuple(f[0] for f in wire_layout.L7_CONFIG_FIELDS) == CONFIG_FIELDS == kernel.CONFIG_FIELDS


def test_event_header_matches_c_layout(c_layout):
    py = _py_layout(wire.HEADER, EVENT_FIELDS)
    assert {f: c_layout["field"]["l7_event", f] for f in EVENT_FIELDS} == py
    assert c_layout["field"]["l7_event", "data"][0] == wire.HEADER_LEN == wire.HEADER.size == 112
    assert c_layout["const"]["L7_EVENT_HDR_LEN"] == wire.HEADER_LEN
    assert c_layout["sizeof"]["l7_event"] == wire_layout.L7_EVENT_SIZE
    assert {n: (o, s) for n, o, s, _ in wire_layout.L7_EVENT_FIELDS} == {
        f: c_layout["field"]["l7_event", f] for f in EVENT_FIELDS + ("data",)}


def test_record_parts_split_where_the_decoder_expects():
    assert wire.NUMBERS.size == wire.ENDPOINTS_AT == 58
    assert wire.FLAGS_AT == 59 and wire.ENDPOINTS.format == "<BBHH16s16s16s"


def test_config_matches_c_layout(c_layout):
    py = _py_layout(kernel.CONFIG, CONFIG_FIELDS)
    assert {f: c_layout["field"]["l7_config", f] for f in CONFIG_FIELDS} == py
    assert c_layout["sizeof"]["l7_config"] == kernel.CONFIG.size == 16


def test_filter_state_matches_c_layout(c_layout):
    py = _py_layout(kernel.FILTER_STATE, FILTER_STATE_FIELDS)
    assert {f: c_layout["field"]["l7_filter_state", f] for f in FILTER_STATE_FIELDS} == py
    assert c_layout["sizeof"]["l7_filter_state"] == kernel.FILTER_STATE.size == 8
    assert (c_layout["const"]["L7_PID_FILTER_MAX"], c_layout["const"]["L7_COMM_FILTER_MAX"]) == (
        kernel.PID_FILTER_MAX, kernel.COMM_FILTER_MAX) == (1024, 256)


def test_filter_keys_as_the_kernel_maps_hold_them():
    pids, comms = kernel.filter_keys([7, 7, 1 << 31], ["python3", "a-name-longer-than-15", ""])
    assert pids == {b"\x07\0\0\0", b"\0\0\0\x80"}
    assert comms == {b"python3".ljust(16, b"\0"), b"a-name-longer-t\0", b"\0" * 16}
    # two names the kernel cannot tell apart take one entry
    assert kernel.filter_keys([], ["x" * 15 + "1", "x" * 15 + "2"])[1] == {b"x" * 15 + b"\0"}
    for bad in (0, -1, 1 << 32, "12", True):
        with pytest.raises(ValueError, match=f"^pid {bad!r} is not a process id$"):
            kernel.filter_keys([bad], [])
    assert len(kernel.filter_keys(range(1, 1025), [f"n{i}" for i in range(256)])[0]) == 1024
    with pytest.raises(ValueError, match="^1025 pids to trace: the kernel filter holds at most 1024$"):
        kernel.filter_keys(range(1, 1026), [])
    with pytest.raises(ValueError, match="^257 process names to trace: the kernel filter holds "
                                         "at most 256$"):
        kernel.filter_keys([], [f"n{i}" for i in range(257)])


def test_config_bytes_put_each_option_at_its_field():
    o = kernel.KernelOptions(pids=(5,), max_payload=1000, capture_all=True, max_checks=300,
                             ringbuf_bytes=1 << 20)
    values = dict(zip(CONFIG_FIELDS, kernel.CONFIG.unpack(kernel.config_bytes(o, 4242))))
    assert values == {"self_tgid": 4242, "max_payload": 1000, "pad": b"\0\0",
                      "capture_all": 1, "max_checks": 255,
                      "wakeup_bytes": (1 << 20) // 16}
    big = kernel.config_bytes(kernel.KernelOptions(ringbuf_bytes=64 << 20), 1)
    assert kernel.CONFIG.unpack(big)[-1] == kernel.WAKEUP_BYTES_MAX
    every = kernel.config_bytes(kernel.KernelOptions(wakeup_bytes=0), 1)
    assert kernel.CONFIG.unpack(every)[-1] == 0


def test_constants_match_c(c_layout):
    c = c_layout["const"]
    assert (c["L7_KIND_DATA"], c["L7_KIND_OPEN"], c["L7_KIND_CLOSE"], c["L7_KIND_EOF"]) == (
        wire.KIND_DATA, wire.KIND_OPEN, wire.KIND_CLOSE, wire.KIND_EOF) == (1, 2, 3, 4)
    assert (c["L7_DIR_EGRESS"], c["L7_DIR_INGRESS"]) == (wire.DIR_EGRESS, wire.DIR_INGRESS)
    assert (c["L7_ROLE_UNKNOWN"], c["L7_ROLE_CLIENT"], c["L7_ROLE_SERVER"]) == (
        Role.UNKNOWN, Role.CLIENT, Role.SERVER)
    assert (c["L7_FLAG_PAYLOAD_SUPPRESSED"], c["L7_FLAG_TRUNCATED"], c["L7_FLAG_TLS"]) == (
        wire.FLAG_PAYLOAD_SUPPRESSED, wire.FLAG_TRUNCATED, wire.FLAG_TLS) == (1, 2, 4)
    assert c["L7_STAT_MAX"] == len(wire.STATS)
    assert c_layout["field"]["l7_event", "comm"][1] == c["L7_COMM_LEN"] == 16
    assert c["L7_CHUNK"] == wire_layout.CONSTANTS["L7_CHUNK"]


def test_syscall_and_stat_numbers_match_c(c_layout):
    assert c_layout["syscall"] == {name: num for num, name in wire.SYSCALLS.items()}
    assert c_layout["stat"] == {name: i for i, name in enumerate(wire.STATS)}
    assert wire.SYSCALLS[17] == "SSL_read" and wire.SYSCALLS[11] == "sendfile"
    assert wire.STATS[:2] == ("events", "ringbuf_full")


def test_layout_parser_refuses_what_it_cannot_lay_out():
    gen = _script("gen_wire_layout")
    with pytest.raises(gen.LayoutError, match="unsupported field"):
        gen.parse("struct l7_x { float f; };")
    with pytest.raises(gen.LayoutError, match="needs padding"):
        gen.parse("struct l7_x { __u8 a; __u32 b; };")
    assert gen.parse("enum e { A = 3, B, C = 10, D };")["enums"]["e"] == {
        "A": 3, "B": 4, "C": 10, "D": 11}


# -- the kernel's HTTP/1 prefilter ---------------------------------------------------------------

def _prefixes_in(header: str) -> list[bytes]:
    """The prefixes the generated C compares: each case value as little-endian bytes, with the
    length of the mask of its switch."""
    out, width = [], 0
    for line in header.splitlines():
        line = line.strip()
        if line.startswith("switch (w & 0x"):
            width = (len(line.split("0x")[1].split("ULL")[0]) + 1) // 2
        elif line.startswith("case 0x"):
            value = int(line.split("0x")[1].split("ULL")[0], 16)
            out.append(value.to_bytes(width, "little"))
    return out


def test_kernel_prefilter_is_generated_from_the_python_method_list():
    gen = _script("gen_http_methods")
    assert gen.known_methods() == KNOWN_METHODS
    text = gen.render(KNOWN_METHODS)
    assert METHODS_H.read_text() == text, "bpf/l7_http_methods.h is stale: run make"
    prefixes = _prefixes_in(text)
    assert len(prefixes) == len(KNOWN_METHODS) == 33
    assert sorted(prefixes) == sorted((m + " ").encode()[:8] for m in KNOWN_METHODS)
    assert b"PROPFIND" in prefixes and b"GET " in prefixes and b"M-SEARCH" in prefixes


@pytest.mark.parametrize("start, known", [
    (b"PROPFIND /dav HTTP/1.1\r\n", True), (b"GET / HTTP/1.1\r\n", True),
    (b"UNSUBSCRIBE * HTTP/1.1", True), (b"ACL /x HTTP/1.1", True),
    (b"GETS / HTTP/1.1", False), (b"PROPFINDX / HTTP/1.1", True),  # 8-byte prefix: user space decides
    (b"\x16\x03\x01\x02\x00", False), (b"get / HTTP/1.1", False),
])
def test_prefilter_prefixes_accept_request_lines_of_known_methods(start, known):
    prefixes = _prefixes_in(METHODS_H.read_text())
    head = start[:8].ljust(8, b"\0")
    assert any(head.startswith(p) for p in prefixes) is known


# -- decoding ------------------------------------------------------------------------------------

def _addr(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return ip.packed.ljust(16, b"\0")


def rec(kind=wire.KIND_DATA, direction=wire.DIR_EGRESS, payload=b"", chunk_len=None,
        family=wire.AF_INET, laddr="10.0.0.1", raddr="10.0.0.2", lport=45000, rport=80,
        seq=1000, chunk_off=0, role=1, syscall=2, comm=b"curl", flags=0, data_len=None,
        ts_enter=111, ts_exit=222, conn_id=(7 << 32) | 9, tgid=4242, tid=4243, fd=5) -> bytes:
    header = wire.HEADER.pack(
        ts_enter, ts_exit, conn_id, tgid, tid, fd, seq, len(payload) + chunk_off, chunk_off,
        len(payload) if chunk_len is None else chunk_len,
        len(payload) if data_len is None else data_len, kind, direction, syscall, role, family,
        flags, lport, rport, _addr(laddr), _addr(raddr), comm.ljust(16, b"\0"))
    return header + payload


def test_decode_ipv4_egress_data():
    d = wire.WireDecoder()
    ev = d.decode(rec(payload=b"GET / HTTP/1.1\r\n\r\n"))
    assert ev == DataChunk(
        conn_id=(7 << 32) | 9, egress=True, ts=111, data=b"GET / HTTP/1.1\r\n\r\n", length=18,
        seq=1000, role=Role.CLIENT, local=("10.0.0.1", 45000), remote=("10.0.0.2", 80),
        pid=4242, tid=4243, comm="curl", fd=5, syscall="write", ts_enter=111, ts_exit=222)
    assert d.malformed == 0


def test_decode_ingress_data_times_from_syscall_exit():
    ev = wire.WireDecoder().decode(rec(direction=wire.DIR_INGRESS, syscall=7, payload=b"x"))
    assert (ev.egress, ev.ts, ev.syscall) == (False, 222, "recvmsg")


def test_decode_chunk_offset_positions_and_wraps():
    ev = wire.WireDecoder().decode(rec(seq=0xFFFFFFF0, chunk_off=0x20, payload=b"abc"))
    assert ev.seq == 0x10


def test_decode_known_length_hole():
    ev = wire.WireDecoder().decode(rec(payload=b"abc", chunk_len=4096, flags=wire.FLAG_TRUNCATED))
    assert (ev.data, ev.length, ev.missing) == (b"abc", 4096, 4093)


def test_decode_tls_plaintext_positions():
    # TLS records carry their position in the SSL object's plaintext: a record lost between
    # two others is a known-length gap for the stream, not bytes spliced out
    d = wire.WireDecoder()
    first = d.decode(rec(flags=wire.FLAG_TLS, seq=0, payload=b"GET / HTTP/1.1\r\n", syscall=17))
    later = d.decode(rec(flags=wire.FLAG_TLS, seq=4096, chunk_off=100, payload=b"x", syscall=17))
    assert (first.tls, first.seq, first.syscall) == (True, 0, "SSL_read")
    assert (later.tls, later.seq) == (True, 4196)


def test_decode_ipv6():
    ev = wire.WireDecoder().decode(rec(family=wire.AF_INET6, laddr="::1", raddr="2001:db8::2",
                                       payload=b"x"))
    assert (ev.local, ev.remote) == (("::1", 45000), ("2001:db8::2", 80))


def test_decode_ipv4_mapped_ipv6_as_ipv4():
    ev = wire.WireDecoder().decode(rec(family=wire.AF_INET6, laddr="::ffff:127.0.0.1",
                                       raddr="::ffff:10.1.2.3", payload=b"x"))
    assert (ev.local, ev.remote) == (("127.0.0.1", 45000), ("10.1.2.3", 80))


def test_decode_comm_of_full_length_and_unknown_role():
    ev = wire.WireDecoder().decode(rec(comm=b"abcdefghijklmnop", role=7, payload=b"x"))
    assert (ev.comm, ev.role) == ("abcdefghijklmnop", Role.UNKNOWN)


def test_decode_open():
    ev = wire.WireDecoder().decode(rec(kind=wire.KIND_OPEN, role=2, syscall=14, comm=b"nginx",
                                       laddr="10.0.0.2", raddr="10.0.0.1", lport=80, rport=45000))
    assert ev == ConnectionOpened(conn_id=(7 << 32) | 9, ts=222, role=Role.SERVER,
                                  local=("10.0.0.2", 80), remote=("10.0.0.1", 45000), pid=4242,
                                  comm="nginx", fd=5)


def test_decode_close_even_without_address_family():
    ev = wire.WireDecoder().decode(rec(kind=wire.KIND_CLOSE, family=0))
    assert ev == ConnectionClosed(conn_id=(7 << 32) | 9, ts=222)


def test_decode_eof_of_each_direction():
    d = wire.WireDecoder()
    assert d.decode(rec(kind=wire.KIND_EOF, direction=wire.DIR_INGRESS)) == StreamEnded(
        conn_id=(7 << 32) | 9, egress=False, ts=222)
    assert d.decode(rec(kind=wire.KIND_EOF, direction=wire.DIR_EGRESS)).egress is True


@pytest.mark.parametrize("record", [
    rec(payload=b"abc")[:wire.HEADER_LEN - 1],  # header cut
    b"",
    rec(payload=b"abcdef")[:-1],  # payload shorter than data_len
    rec(payload=b"x", family=0),  # DATA without an address family
    rec(payload=b"x", family=17),
    rec(kind=9, payload=b"x"),  # unknown kind
    rec(kind=0),
], ids=["header-cut", "empty", "payload-cut", "no-family", "bad-family", "kind-9", "kind-0"])
def test_malformed_records_are_counted(record):
    d = wire.WireDecoder()
    assert d.decode(record) is None
    assert d.malformed == 1
    assert d.decode(rec(payload=b"ok")).data == b"ok"  # the next good record still decodes
    assert d.malformed == 1


def test_payload_beyond_data_len_is_ignored():
    ev = wire.WireDecoder().decode(rec(payload=b"abcdef", data_len=3, chunk_len=6))
    assert (ev.data, ev.length) == (b"abc", 6)


# -- batches (the compiled DATA decoder, dataplane/_wiremodule.c) ---------------------------------

def test_batch_keeps_record_order_across_kinds_and_damage():
    d = wire.WireDecoder()
    other = dict(laddr="10.0.0.3", lport=9999)  # endpoints first seen mid-batch
    batch = [rec(kind=wire.KIND_OPEN), rec(payload=b"one"), b"short", rec(payload=b"two", **other),
             rec(payload=b"three"), rec(kind=wire.KIND_EOF, direction=wire.DIR_INGRESS),
             rec(payload=b"x", family=17), rec(payload=b"four", **other),
             rec(kind=wire.KIND_CLOSE)]
    events = d.decode_batch(batch)
    assert [type(e).__name__ for e in events] == [
        "ConnectionOpened", "DataChunk", "DataChunk", "DataChunk", "StreamEnded", "DataChunk",
        "ConnectionClosed"]
    assert [e.data for e in events if type(e) is DataChunk] == [b"one", b"two", b"three", b"four"]
    assert [e.local for e in events if type(e) is DataChunk] == [
        ("10.0.0.1", 45000), ("10.0.0.3", 9999), ("10.0.0.1", 45000), ("10.0.0.3", 9999)]
    assert d.malformed == 2
    assert d.decode_batch([]) == []


def test_batch_and_single_decoding_agree_field_by_field():
    records = [rec(payload=b"GET / HTTP/1.1\r\n\r\n"),
               rec(direction=wire.DIR_INGRESS, syscall=7, payload=b"x", role=2, fd=-1),
               rec(seq=0xFFFFFFF0, chunk_off=0x20, payload=b"abc", chunk_len=4096,
                   flags=wire.FLAG_TRUNCATED | wire.FLAG_TLS, syscall=200, role=7),
               rec(payload=b"y", family=wire.AF_INET6, laddr="::1", raddr="fe80::1",
                   conn_id=2**64 - 1, tgid=2**32 - 1, ts_enter=2**64 - 1, ts_exit=0)]
    one = [wire.WireDecoder().decode(r) for r in records]
    assert wire.WireDecoder().decode_batch(records) == one
    assert one[1] == DataChunk(
        conn_id=(7 << 32) | 9, egress=False, ts=222, data=b"x", length=1, seq=1000,
        role=Role.SERVER, local=("10.0.0.1", 45000), remote=("10.0.0.2", 80), pid=4242, tid=4243,
        comm="curl", fd=-1, syscall="recvmsg", ts_enter=111, ts_exit=222, tls=False)
    assert (one[2].seq, one[2].length, one[2].tls, one[2].syscall, one[2].role) == (
        0x10, 4096, True, None, Role.UNKNOWN)
    assert (one[3].conn_id, one[3].pid, one[3].ts, one[3].local) == (
        2**64 - 1, 2**32 - 1, 2**64 - 1, ("::1", 45000))
    assert type(one[0]) is DataChunk and one[0].missing == 0


def test_endpoint_cache_bound_still_decodes():
    d = wire.WireDecoder()
    batch = [rec(payload=b"p", lport=1 + i) for i in range(wire.MAX_ENDPOINT_CACHE + 5)]
    events = d.decode_batch(batch)
    assert [e.local[1] for e in events] == [1 + i for i in range(wire.MAX_ENDPOINT_CACHE + 5)]
    assert len(d._endpoint_cache) <= wire.MAX_ENDPOINT_CACHE
