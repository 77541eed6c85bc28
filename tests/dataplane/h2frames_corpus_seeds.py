"""Writes the seed corpus of the libFuzzer harness (tests/dataplane/fuzz_h2frames.c) from the
HTTP/2 conversations of the fuzz seeds (two h2 peers): `python tests/dataplane/h2frames_corpus_seeds.py`.

Format: byte 0 = start (bit 0 expect the preface, bit 1 in sync) | limits << 2; then ops
(flags, length[, bytes]): flags 6 = a hole of length * 67 + 1 octets, 4 = raise max_frame_size
by length * 4096, else length bytes are fed.
"""
from __future__ import annotations

import hashlib
import pathlib

from tests.fuzz.make_seeds import h2_conversations

HERE = pathlib.Path(__file__).parent / "h2frames_corpus"


def encode(config: int, pieces: list[bytes | int | tuple[int]]) -> bytes:
    """bytes: fed; int n: a hole of n * 67 + 1 octets; (n,): max_frame_size + n * 4096."""
    out = bytearray([config])
    for piece in pieces:
        if isinstance(piece, tuple):
            out += bytes([4, piece[0]])
            continue
        if isinstance(piece, int):
            out += bytes([6, piece])
            continue
        for i in range(0, len(piece), 255):
            chunk = piece[i:i + 255]
            out += bytes([0, len(chunk)]) + chunk
    return bytes(out)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for n, conv in enumerate(h2_conversations().values()):
        for from_client in (True, False):
            stream = b"".join(data for side, data in conv if side == from_client)
            if len(stream) < 50:
                continue
            start = 3 if from_client else 2
            for config, pieces in ((start, [stream]), (start | (1 + n % 3) << 2, [stream]),
                                   (0, [stream[5:]]),
                                   (start, [stream[:30], 0, stream[30:]]),
                                   (start | 4, [(3,), stream[:40], 1, stream[40:]])):
                data = encode(config, pieces)
                (HERE / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


if __name__ == "__main__":
    main()
