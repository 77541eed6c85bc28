"""Writes the seed corpus of the libFuzzer harness (tests/dataplane/fuzz_h1.c) from
conversations of the Python-level tests: `python tests/dataplane/h1_corpus_seeds.py`.

Format: byte 0 picks the limits; then ops: (flags, length[, bytes]); flags bit 0 = from the
client, flags 6 = a hole of length + 1 bytes.
"""
from __future__ import annotations

import hashlib
import pathlib

from tests.protocols.test_http1 import CHUNKED, CURL_GET, ok
from tests.protocols.test_http1_real import (
    CURL_HEAD_THEN_CONDITIONAL, CURL_POST, CURL_TWO_GETS, NGINX_200_AND_404,
    NGINX_CHUNKED_GZIP, NGINX_HEAD_200_THEN_304,
)

HERE = pathlib.Path(__file__).parent / "h1_corpus"


def encode(limits: int, script: list[tuple[str, bytes | int]]) -> bytes:
    out = bytearray([limits])
    for kind, arg in script:
        if isinstance(arg, int):
            out += bytes([6 | (kind == "c"), min(arg, 256) - 1])
            continue
        for i in range(0, len(arg), 255) if arg else [0]:
            piece = arg[i:i + 255]
            out += bytes([int(kind == "c"), len(piece)]) + piece
    return bytes(out)


UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
           b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")
SCRIPTS = [
    [("c", CURL_GET % 1), ("s", ok(b"one")), ("c", CURL_GET % 2), ("s", CHUNKED)],
    [("c", CURL_TWO_GETS[0]), ("s", NGINX_200_AND_404[0]), ("c", CURL_TWO_GETS[1]),
     ("s", NGINX_200_AND_404[1])],
    [("c", CURL_POST), ("s", NGINX_CHUNKED_GZIP)],
    [("c", CURL_HEAD_THEN_CONDITIONAL), ("s", NGINX_HEAD_200_THEN_304)],
    [("c", UPGRADE[0]), ("s", UPGRADE[1]), ("c", b"\x81\x85\x00\x00\x00\x00hello")],
    [("c", b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"), ("s", b"HTTP/1.1 200 OK\r\n\r\n\x16")],
    [("c", b"GET /cut HTTP/1.1\r\nHo"), ("c", 200), ("s", ok(b"cut")), ("s", ok(b"hidden"))],
    [("c", CURL_GET % 1), ("s", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nxx"), ("s", 200)],
    [("c", b"\x00\x01 junk\r\n" + CURL_GET % 3), ("s", b"<html>\r\n" + ok(b"x"))],
    [("c", b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
     ("s", b"HTTP/1.1 100 Continue\r\n\r\n"), ("c", b"data"), ("s", ok(b""))],
    [("c", b"GET / HTTP/1.1\nHost:  h \nX-Long: a\n  b\t\n\n"), ("s", b"HTTP/1.0 200 OK\n\nall")],
]


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for i, script in enumerate(SCRIPTS):
        for limits in (0, 1 + i % 3):
            data = encode(limits, script)
            (HERE / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


if __name__ == "__main__":
    main()
