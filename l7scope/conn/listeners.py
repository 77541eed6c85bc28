"""Which local TCP ports are listening: tells the server end of a connection whose connect() or
accept() the capture never saw (it predates the agent).

Read from /proc/net/tcp and /proc/net/tcp6 (state 0A is LISTEN), cached for `ttl_s` seconds.
"""
from __future__ import annotations

import time

LISTEN = "0A"


def read_listening_ports(paths=("/proc/net/tcp", "/proc/net/tcp6")) -> frozenset[int]:
    ports = set()
    for path in paths:
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == LISTEN:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return frozenset(ports)


class ListeningPorts:
    def __init__(self, ttl_s: float = 2.0, reader=read_listening_ports):
        self.ttl_s = ttl_s
        self._reader = reader
        self._ports: frozenset[int] = frozenset()
        self._at = -1e9

    def __contains__(self, port: int) -> bool:
        now = time.monotonic()
        if now - self._at > self.ttl_s or (port not in self._ports and now - self._at > 0.2):
            self._ports = self._reader()
            self._at = now
        return port in self._ports
