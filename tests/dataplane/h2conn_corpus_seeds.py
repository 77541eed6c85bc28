"""Writes the seed corpus of the libFuzzer harness (tests/dataplane/fuzz_h2conn.c) from the
HTTP/2 conversations of the fuzz seeds (two h2 peers), both directions interleaved as they
were written: `python tests/dataplane/h2conn_corpus_seeds.py`.

Format: byte 0 = bit 0 seen from the start | limits << 1 | bit 3 an h2c upgrade first; then
ops (op, length[, bytes]): op bit 0 = from the client; op 6 or 7 = a hole of length * 67 + 1
octets in that direction, else length bytes are fed.
"""
from __future__ import annotations

import hashlib
import pathlib

from tests.fuzz.make_seeds import h2_conversations

HERE = pathlib.Path(__file__).parent / "h2conn_corpus"


def encode(config: int, writes: list[tuple[bool, bytes | int]]) -> bytes:
    """(from_client, bytes): fed; (from_client, n): a hole of n * 67 + 1 octets."""
    out = bytearray([config])
    for from_client, piece in writes:
        if isinstance(piece, int):
            out += bytes([6 | from_client, piece])
            continue
        for i in range(0, len(piece), 255):
            chunk = piece[i:i + 255]
            out += bytes([int(from_client), len(chunk)]) + chunk
    return bytes(out)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for n, conv in enumerate(h2_conversations().values()):
        writes = [(side, data) for side, data in conv]
        holed = writes[:3] + [(False, 1)] + writes[3:]
        for config, pieces in ((1, writes), (1 | (1 + n % 3) << 1, writes), (0, writes[2:]),
                               (1, holed), (9, writes[2:]), (1 | 3 << 1, holed)):
            data = encode(config, pieces)
            if len(data) <= 20:
                continue
            (HERE / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


if __name__ == "__main__":
    main()
