"""The ring-buffer reader's own cost: records read per CPU second, compiled reader against
libbpf's ring_buffer__consume with a ctypes callback per record (what the agent used before).

A small Python HTTP/1.1 server (one send per response) is traced; a client makes REQUESTS keep-alive requests while nothing
reads the ring, so the ring holds them all; then the ring is drained in batches of 1 MiB and
the reader's CPU time (process_time) is divided by the records read. The two readers take
turns over the same kind of fill, ``--rounds`` times; the median per reader is printed.

    .venv/bin/python bench/bench_ringbuf.py --requests 20000 --rounds 5
"""
from __future__ import annotations

import argparse
import ctypes
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from l7scope.capture import libbpf  # noqa: E402
from l7scope.capture.kernel import KernelCapture, KernelOptions  # noqa: E402

SERVER = """
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(8)
reply = b"HTTP/1.1 200 OK\\r\\nContent-Length: 12\\r\\n\\r\\nhello world\\n"
while True:
    c, _ = ls.accept()
    buf = b""
    while True:
        got = c.recv(65536)
        if not got:
            break
        buf += got
        while b"\\r\\n\\r\\n" in buf:
            _, buf = buf.split(b"\\r\\n\\r\\n", 1)
            c.sendall(reply)
    c.close()
"""
CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for i in range(int(sys.argv[2])):
    s.sendall(b"GET /hello?n=%d HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n" % i)
    got = b""
    while not got.endswith(b"world\\n"):
        got += s.recv(65536)
s.close()
"""
_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class CallbackReader:
    """libbpf's consumer with a Python callback per record (the reader before the compiled one)."""

    def __init__(self, map_fd: int, batch_bytes: int = libbpf.BATCH_BYTES):
        L = libbpf.lib()
        L.ring_buffer__new.restype = ctypes.c_void_p
        L.ring_buffer__new.argtypes = [ctypes.c_int, _CB, ctypes.c_void_p, ctypes.c_void_p]
        L.ring_buffer__consume.argtypes = [ctypes.c_void_p]
        L.ring_buffer__free.argtypes = [ctypes.c_void_p]
        self.batch, self.size, self.cut = [], 0, False
        string_at, append = ctypes.string_at, self.batch.append

        def sample(_ctx, data, size):
            append(string_at(data, size))
            self.size += size
            if self.size >= batch_bytes:
                self.cut = True
                return -1
            return 0

        self._cb = _CB(sample)
        self._rb = L.ring_buffer__new(map_fd, self._cb, None, None)

    def drain(self) -> int:
        n = 0
        while True:
            self.cut = False
            libbpf.lib().ring_buffer__consume(self._rb)
            n += len(self.batch)
            self.batch.clear()
            self.size = 0
            if not self.cut:
                return n

    def close(self) -> None:
        libbpf.lib().ring_buffer__free(self._rb)


def compiled_drain(rb: libbpf.RingBuffer) -> int:
    n = len(rb.drain())
    return n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(port: int, requests: int) -> None:
    subprocess.run([sys.executable, "-c", CLIENT, str(port), str(requests)], check=True,
                   timeout=300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    time.sleep(1.0)
    capture = KernelCapture(KernelOptions(pids=(server.pid,), tls=False, ringbuf_bytes=64 << 20))
    results = {"compiled": [], "callback": []}
    try:
        fd = capture._obj.map_fd("events")
        compiled = capture._rb
        callback = CallbackReader(fd)
        for _ in range(a.rounds):
            for name, drain in (("compiled", lambda: compiled_drain(compiled)),
                                ("callback", callback.drain)):
                fill(port, a.requests)
                t0 = time.process_time()
                n = drain()
                dt = time.process_time() - t0
                results[name].append(dt / max(n, 1) * 1e9)
                print(f"{name:9} {n:7} records  {dt / max(n, 1) * 1e9:7.0f} ns/record",
                      flush=True)
        callback.close()
    finally:
        capture.close()
        server.terminate()
        server.wait()
    for name, xs in results.items():
        print(f"median {name:9} {statistics.median(xs):7.0f} ns per record")
    print(f"ratio compiled/callback {statistics.median(results['compiled']) / statistics.median(results['callback']):.2f}x")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench_ringbuf: needs root (loads the BPF programs)")
    main()
