"""Writes the seed corpus of the libFuzzer harness (tests/dataplane/fuzz_hpack.c): header
blocks of the hpack package's encoder (with and without Huffman, with size updates) and the
RFC 7541 Appendix C vectors: `python tests/dataplane/hpack_corpus_seeds.py`.

Format: byte 0 = table size choice | observer << 3 | complete << 4; then ops (op, length,
bytes): op 0 a block, 1 strict on an observer, 2 a SETTINGS size (SIZES[length & 7]), 3 a
gap; ops 2 and 3 carry no bytes.
"""
from __future__ import annotations

import hashlib
import pathlib

import hpack

from tests.protocols.test_hpack import C3_WIRE, C4_WIRE, REQUESTS, RESPONSES

HERE = pathlib.Path(__file__).parent / "hpack_corpus"


def encode(config: int, ops: list[tuple[int, bytes]]) -> bytes:
    out = bytearray([config])
    for op, block in ops:
        if op >= 2:  # the length byte is the argument; no bytes follow
            out += bytes([op, block[0] if block else 0])
        else:
            out += bytes([op, min(len(block), 255)]) + block[:255]
    return bytes(out)


def seeds() -> list[bytes]:
    found = [encode(4, [(0, bytes.fromhex(w)) for w in C3_WIRE]),
             encode(4 | 8 | 16, [(0, bytes.fromhex(w)) for w in C4_WIRE])]
    for config in (4, 4 | 8, 4 | 8 | 16, 3 | 8, 5):
        for huffman in (False, True):
            encoder = hpack.Encoder()
            ops = []
            for n, (headers, _, _) in enumerate(REQUESTS + RESPONSES):
                if n == 3:
                    encoder.header_table_size = 256
                    ops.append((2, bytes([3])))
                ops.append((0, encoder.encode(headers, huffman=huffman)))
                if n == 4 and config & 8:
                    ops.append((3, b""))
            found.append(encode(config, ops))
    return found


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for seed in seeds():
        (HERE / hashlib.sha1(seed).hexdigest()[:16]).write_bytes(seed)


if __name__ == "__main__":
    main()
