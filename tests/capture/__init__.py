"""Shared helpers for the capture tests: root gate and a loopback client/server exchange."""
from __future__ import annotations

import os
import random
import socket
import threading

import pytest


def require_root(what: str) -> None:
    """Fail with a clear reason when not root, unless L7SCOPE_ALLOW_SKIP=1 allows a skip."""
    if os.geteuid() == 0:
        return
    reason = f"{what} needs root (CAP_NET_RAW); run the suite as root or set L7SCOPE_ALLOW_SKIP=1"
    if os.environ.get("L7SCOPE_ALLOW_SKIP") == "1":
        pytest.skip(reason)
    pytest.fail(reason)


class LoopbackServer:
    """A server on 127.0.0.1 that reads ``expect`` bytes per connection, then replies."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def serve(self, request_len: int, reply: bytes) -> threading.Thread:
        def run() -> None:
            conn, _ = self.sock.accept()
            with conn:
                got = 0
                while got < request_len:
                    data = conn.recv(65536)
                    if not data:
                        break
                    got += len(data)
                for off in range(0, len(reply), 7000):
                    conn.sendall(reply[off:off + 7000])
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):
                    pass
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def loopback_exchange(request_len: int = 300_000, reply_len: int = 150_000, seed: int = 7,
                      server: LoopbackServer | None = None) -> tuple[int, int, bytes, bytes]:
    """Run one exchange over 127.0.0.1: (client port, server port, request bytes, reply bytes)."""
    rng = random.Random(seed)
    request, reply = rng.randbytes(request_len), rng.randbytes(reply_len)
    server = server or LoopbackServer()
    thread = server.serve(len(request), reply)
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client_port = client.getsockname()[1]
        for off in range(0, len(request), 5000):
            client.sendall(request[off:off + 5000])
        received = bytearray()
        while True:
            data = client.recv(65536)
            if not data:
                break
            received += data
        client.shutdown(socket.SHUT_WR)
    thread.join(10)
    server.sock.close()
    assert bytes(received) == reply
    return client_port, server.port, request, reply
