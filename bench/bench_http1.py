"""Feed many keep-alive HTTP/1.1 exchanges through Http1Analyzer and print exchanges/s.

Run by hand: .venv/bin/python bench/bench_http1.py [exchanges]
Each request and each response is one feed() call, as one read()/write() syscall would be.
"""
from __future__ import annotations

import sys
import time

from l7scope.protocols.http1 import Http1Analyzer
from l7scope.protocols.message import ExchangeParsed

REQUEST = (b"GET /api/v1/items/%d?limit=20 HTTP/1.1\r\n"
           b"Host: backend.internal:8080\r\n"
           b"User-Agent: curl/8.5.0\r\n"
           b"Accept: */*\r\n"
           b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
           b"\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\n"
            b"Server: nginx/1.24.0\r\n"
            b"Date: Mon, 06 May 2024 10:00:00 GMT\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: 57\r\n"
            b"Connection: keep-alive\r\n"
            b"\r\n"
            b'{"id": 1, "name": "widget", "tags": ["a", "b"], "ok": 1}\n')


def run(exchanges: int) -> float:
    requests = [REQUEST % (i % 1000) for i in range(1000)]
    analyzer = Http1Analyzer()
    feed = analyzer.feed
    seen = 0
    started = time.perf_counter()
    for i in range(exchanges):
        feed(True, requests[i % 1000], i * 2)
        for event in feed(False, RESPONSE, i * 2 + 1):
            seen += isinstance(event, ExchangeParsed)
    elapsed = time.perf_counter() - started
    assert seen == exchanges, (seen, exchanges)
    return exchanges / elapsed


def main() -> None:
    exchanges = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    best = max(run(exchanges) for _ in range(3))
    print(f"{exchanges} exchanges: {best:,.0f} exchanges/s ({2 * best:,.0f} messages/s), one core")


if __name__ == "__main__":
    main()
