"""Fuzz targets for the compiled modules on their own: record decoding (dataplane/_wiremodule.c)
and the Exchange JSON Lines encoder (dataplane/_jsonlmodule.c), each checked against the
interpreted code it must agree with.

wire: the script's operations become a batch of raw ring-buffer records (struct l7_event,
capture/wire.py's layout): a well-formed header for one of four sockets (IPv4, IPv6, TLS,
an unknown address family) whose numeric part is overwritten by the argument's first octets
(random numbers: kind, data_len, direction, role, syscall, positions), the rest of the argument
as payload; or the argument itself as a whole record (short, damaged). The batch goes through
WireDecoder.decode_batch (compiled DATA records, other kinds in place), then record by record
through ``reference_decode`` below: the per-record Python decoder wire.py was before the
compiled one (b26aa7c), kept here as the oracle. Invariant: the same events, field for field
and type for type, in the same order, and the same count of malformed records; decoding the
batch again (endpoint cache warm) gives the same again.

jsonl: the input is read as a stream of tagged values (``Values``): None, booleans, ints of up
to 40 octets (either sign), text of any code points (lone surrogates included), lists, tuples,
dicts of text (now and then int) keys, floats, nested to any depth; an Exchange is filled with
them (start_ns and end_ns ints, notes a tuple of them, trace None, a TraceContext of fuzzed text, or a false value).
Invariant: the compiled encoder's line is byte for byte json's line for ``to_dict()`` (the
JSON Lines sink's encoder), or it raises TypeError, and then only for a value it has no exact
form for (a float, a dict key that is not text, a dict subclass, nesting past its depth).
"""
from __future__ import annotations

import dataclasses
import json
import struct

from l7scope.capture import wire
from l7scope.capture.events import (
    ConnectionClosed, ConnectionOpened, DataChunk, Role, StreamEnded,
)
from l7scope.capture.proc_events import KIND_EXEC, KIND_EXIT, decode_proc
from l7scope.capture.tcp_summary import decode_tcp
from l7scope.exchange import Exchange, TraceContext
from l7scope.outputs import jsonl

from .script import check, ops

# --- wire -----------------------------------------------------------------------------------

V4 = bytes([10, 0, 0, 1]) + bytes(12)
V6 = bytes.fromhex("fd000000000000000000000000000002")
# (family, flags, local port, remote port, local address, remote address, comm)
ENDPOINTS = ((wire.AF_INET, 0, 41000, 8080, V4, V4, b"curl"),
             (wire.AF_INET6, 0, 8080, 42000, V6, V6, b"server\xff\xfe6"),
             (wire.AF_INET, wire.FLAG_TLS, 443, 50000, V4, V4, b"nginx: worker pro"),
             (7, 0, 1, 2, V4, V6, b""))  # an unknown family: malformed


def data_record(op: int, arg: bytes) -> bytes:
    """A DATA record of socket (op >> 1) & 3 whose numbers come from the argument (module
    docstring); data_len is the payload's length unless op bit 3 leaves the fuzzed one."""
    payload = arg[wire.NUMBERS.size:]
    head = bytearray(wire.NUMBERS.pack(
        10**12, 10**12 + 700, 7, 100, 101, 5, 1000, len(payload), 0, len(payload), len(payload),
        wire.KIND_DATA, wire.DIR_EGRESS if op & 1 else wire.DIR_INGRESS, 4, 1))
    numbers = arg[:wire.NUMBERS.size]
    head[:len(numbers)] = numbers
    if not op & 8:  # keep the record's own length and kind (most records: well formed)
        struct.pack_into("<H", head, wire._EVENT["data_len"][0], len(payload) & 0xFFFF)
        head[wire._EVENT["kind"][0]] = wire.KIND_DATA if not op & 16 else head[
            wire._EVENT["kind"][0]] % 8
    ends = wire.ENDPOINTS.pack(*ENDPOINTS[(op >> 1) & 3])
    return bytes(head) + ends + payload


def batch_of(data: bytes) -> list[bytes]:
    out = []
    for op, arg in ops(data, 1):
        out.append(arg if op >> 5 == 7 else data_record(op, arg))
    return out


def reference_decode(rec: bytes, cache: dict, malformed: list) -> object | None:
    """One record as the per-record Python decoder of wire.py made it (b26aa7c)."""
    if len(rec) < wire.HEADER_LEN:
        malformed[0] += 1
        return None
    (ts_enter, ts_exit, conn_id, tgid, tid, fd, seq, _total, chunk_off, chunk_len, data_len,
     kind, direction, syscall, role) = wire.NUMBERS.unpack_from(rec)
    if kind == wire.KIND_CLOSE:
        return ConnectionClosed(conn_id=conn_id, ts=ts_exit)
    if kind == KIND_EXEC or kind == KIND_EXIT:
        ev = decode_proc(rec, kind, ts_exit, tgid, data_len)
        malformed[0] += ev is None
        return ev
    key = rec[wire.ENDPOINTS_AT:wire.HEADER_LEN]
    if key not in cache:
        cache[key] = wire._endpoints(key)
    ends = cache[key]
    if ends is None or wire.HEADER_LEN + data_len > len(rec):
        malformed[0] += 1
        return None
    local, remote, comm = ends
    egress = direction == wire.DIR_EGRESS
    role_v = wire.ROLES[role] if role < 3 else Role.UNKNOWN
    if kind == wire.KIND_DATA:
        return DataChunk(
            conn_id, egress, ts_enter if egress else ts_exit,
            rec[wire.HEADER_LEN:wire.HEADER_LEN + data_len], chunk_len,
            (seq + chunk_off) & 0xFFFFFFFF, role_v, local, remote, tgid, tid, comm, fd,
            wire.SYSCALLS.get(syscall), ts_enter, ts_exit, bool(rec[wire.FLAGS_AT] & wire.FLAG_TLS))
    if kind == wire.KIND_OPEN:
        return ConnectionOpened(conn_id=conn_id, ts=ts_exit, role=role_v, local=local,
                                remote=remote, pid=tgid, comm=comm, fd=fd)
    if kind == wire.KIND_EOF:
        return StreamEnded(conn_id=conn_id, egress=egress, ts=ts_exit)
    if kind == wire.KIND_TCP:
        summary = decode_tcp(rec, ts_enter, ts_exit, tgid, role, ends)
        if summary is not None:
            return summary
    malformed[0] += 1
    return None


def _typed(ev) -> tuple:
    """An event with the type of every field: True and 1 are not the same field."""
    values = tuple(ev) if isinstance(ev, tuple) else \
        tuple(getattr(ev, f.name) for f in dataclasses.fields(ev))
    return type(ev), tuple((type(v), v) for v in values)


def wire_batch(data: bytes) -> None:
    """A batch of records: compiled batch decoding == the per-record reference (docstring)."""
    batch = batch_of(data)
    decoder, cache, malformed = wire.WireDecoder(), {}, [0]
    got = decoder.decode_batch(batch)
    want = [ev for ev in (reference_decode(r, cache, malformed) for r in batch) if ev is not None]
    check([_typed(e) for e in got] == [_typed(e) for e in want],
          f"batch decoding differs: {got[:3]!r} vs {want[:3]!r}")
    check(decoder.malformed == malformed[0],
          f"malformed {decoder.malformed}, the reference counts {malformed[0]}")
    again = decoder.decode_batch(batch)  # every endpoint part cached now
    check([_typed(e) for e in again] == [_typed(e) for e in want], "warm cache decodes otherwise")
    one = [ev for ev in map(decoder.decode, batch) if ev is not None]
    check([_typed(e) for e in one] == [_typed(e) for e in want], "decode() differs from a batch")


# --- jsonl ----------------------------------------------------------------------------------

class NoForm(Exception):
    """The value holds something the compiled encoder leaves to the json module."""


class Values:
    """Tagged values from the fuzz input (module docstring); 0 octets left: None."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def octet(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def text(self) -> str:
        n = self.octet() % 24
        raw = self.take(3 * n)
        return "".join(chr(int.from_bytes(raw[i:i + 3], "little") % 0x110000)
                       for i in range(0, len(raw) - 2, 3))

    def integer(self) -> int:
        raw = self.take(self.octet() % 41)
        return int.from_bytes(raw, "little", signed=True) if raw else 0

    def value(self, depth: int = 0):
        tag = self.octet() % (12 if depth < 12 else 5)
        if tag == 0:
            return None
        if tag == 1:
            return bool(self.octet() & 1)
        if tag == 2:
            return self.integer()
        if tag in (3, 4):
            return self.text()
        if tag == 5:
            return struct.unpack("<d", self.take(8).ljust(8, b"\0"))[0]
        n = self.octet() % 5
        if tag in (6, 7):
            items = [self.value(depth + 1) for _ in range(n)]
            return items if tag == 6 else tuple(items)
        if tag == 8:
            return {self.text(): self.value(depth + 1) for _ in range(n)}
        if tag == 9:  # header pairs, as --with-headers writes them
            return [[self.text(), self.text()] for _ in range(n)]
        if tag == 10:  # a key json turns into text: left to it
            return {self.integer(): self.value(depth + 1) for _ in range(n)}
        return self.text() if n else ""

    def trace(self):
        tag = self.octet() % 4
        if tag == 0:
            return None
        if tag == 1:
            return (0, "", ())[self.octet() % 3]  # false: written as null
        return TraceContext(self.text(), self.text(), self.value(), self.value(), self.value(),
                            self.value())


_TIMES = {Exchange._fields.index("start_ns"), Exchange._fields.index("end_ns")}
_TRACE = Exchange._fields.index("trace")
_NOTES = Exchange._fields.index("notes")
_JSON_LINE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def exchange_of(data: bytes) -> Exchange:
    v = Values(data)
    fields = [v.integer() if i in _TIMES else v.trace() if i == _TRACE else
              tuple(v.value() for _ in range(v.octet() % 4)) if i == _NOTES else v.value()
              for i in range(len(Exchange._fields))]
    return Exchange(*fields)


def _check_no_form(value, depth: int = 0) -> None:
    """Raise NoForm when ``value`` holds something without an exact compiled form."""
    if isinstance(value, float) or depth > 8:
        raise NoForm
    if isinstance(value, dict):
        if type(value) is not dict or not all(isinstance(k, str) for k in value):
            raise NoForm
        for item in value.values():
            _check_no_form(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_no_form(item, depth + 1)


def jsonl_exchange(data: bytes) -> None:
    """An Exchange of fuzzed values: the compiled line is json's line (module docstring)."""
    ex = exchange_of(data)
    try:
        want = _JSON_LINE(ex.to_dict())
    except (ValueError, RecursionError):  # json refuses it (nan is not refused: allow_nan)
        return
    try:
        got = jsonl._EXCHANGE_LINE(ex)
    except TypeError:
        try:
            for value in ex.to_dict().values():
                _check_no_form(value)
        except NoForm:
            check(jsonl.exchange_line(ex) == want, "the json module's fallback line differs")
            return
        raise
    check(got == want, f"compiled line {got[:300]!r} is not json's {want[:300]!r}")
    check(jsonl.exchange_line(ex) == want, "exchange_line differs from the encoder")


# --- seeds ----------------------------------------------------------------------------------

def seeds() -> dict[str, dict[str, bytes]]:
    """{target: {name: input}}: written to corpus/ by ``python -m tests.fuzz.compiled``."""
    from .script import encode

    get = b"GET /a?x=1 HTTP/1.1\r\nHost: svc\r\n\r\n"
    numbers = wire.NUMBERS.pack(10**12, 10**12 + 700, 7, 100, 101, 5, 1000, len(get), 0,
                                len(get), len(get), wire.KIND_DATA, wire.DIR_EGRESS, 4, 1)
    open_rec = bytearray(data_record(2, b""))
    open_rec[wire._EVENT["kind"][0]] = wire.KIND_OPEN
    wire_seeds = {
        "four_sockets": encode(0, [(op, numbers + get) for op in (1, 2, 5, 6)]),
        "fuzzed_numbers": encode(0, [(9, numbers[:40] + bytes(range(60)) + get), (24, numbers)]),
        "raw_records": encode(0, [(0xE0, bytes(open_rec)), (0xE0, bytes(open_rec)[:50]),
                                  (1, numbers + get), (0xE0, b"")]),
    }
    def text(t: str) -> bytes:  # a text value (tag 3)
        return bytes([3, len(t)]) + b"".join(ord(c).to_bytes(3, "little") for c in t)

    samples = ("h\u00e9\U0001f600", "\ud800\"\\\n\x7f", "\x00\x1f ~", "\udfff\U0010ffff")
    v = b"".join(text(samples[i % 4]) for i in range(31))
    jsonl_seeds = {
        "texts": v,
        "ints_and_nesting": bytes([2, 40]) + b"\xff" * 40 + bytes([8, 2, 3, 1, 65, 0, 0, 6, 2, 2,
                                                                   9, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        "headers": bytes([9, 3] + [3, 2, 104, 0, 0, 105, 0, 0] * 3 + [5] + [1] * 8),
        "trace": bytes([0] * 19 + [2, 3, 97, 0, 0, 98, 0, 0, 99, 0, 0, 3, 1, 120, 0, 0] + [0] * 40),
    }
    return {"wire": wire_seeds, "jsonl": jsonl_seeds}


if __name__ == "__main__":
    from .conftest import CORPUS

    for target, named in seeds().items():
        (CORPUS / target).mkdir(parents=True, exist_ok=True)
        for name, data in named.items():
            (CORPUS / target / name).write_bytes(data)
