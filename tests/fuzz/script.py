"""The byte format shared by the fuzz targets, and the invariant helpers.

A fuzz input for the stream targets is a *script*: a config octet, then operations, each one
octet of opcode, a 16-bit little-endian length and that many octets of argument (a short final
argument takes what is left). The seeds in corpus/ are real conversations written in this form
(make_seeds.py), so the fuzzer mutates realistic traffic: the opcode decides the direction, a
hole, a connection end; the argument carries the bytes.

Invariant: a target either returns, or raises ``Finding`` (an invariant broken: a wrong value,
an internal error turned into a value), or lets an exception escape (a bug). Both are crashes
for the fuzzer and failures for the replay test.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

_LEN = struct.Struct("<H")


class Finding(AssertionError):
    """An invariant of a target does not hold for this input."""


def ops(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(opcode, argument) pairs of a script, from ``start``."""
    pos, end = start, len(data)
    while pos < end:
        op = data[pos]
        n = _LEN.unpack_from(data, pos + 1)[0] if pos + 3 <= end else 0
        arg = data[pos + 3:pos + 3 + n]
        pos += 3 + n
        yield op, arg


def encode(config: int, operations: list[tuple[int, bytes]]) -> bytes:
    """A script from a config octet and (opcode, argument) pairs (the seeds are made by it)."""
    out = bytearray([config])
    for op, arg in operations:
        if len(arg) > 0xFFFF:
            raise ValueError("argument too long for one operation")
        out += bytes([op]) + _LEN.pack(len(arg)) + arg
    return bytes(out)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Finding(what)


def check_memory(obj, budget: int | None = None) -> None:
    """``memory()`` (the analyzers' and the table's accounting, where it exists) is a
    non-negative int, under ``budget`` when one is given."""
    memory = getattr(obj, "memory", None)
    if memory is None:
        return
    value = memory() if callable(memory) else memory
    check(isinstance(value, int) and value >= 0, f"{type(obj).__name__}.memory() = {value!r}")
    if budget is not None:
        check(value <= budget, f"{type(obj).__name__}.memory() = {value} over budget {budget}")
