"""Measures the store on this machine: ``python -m l7scope.outputs.store.bench [N]``.

Prints, for N scripted exchanges (default 200,000) written through a StoreSink with the rate
bound off: the cost of one ``sink(exchange)`` call on the caller's thread, the rate the writer
thread stores them at (first call to last commit), the API's topology and exchange-search
times over the result, the file's size per row, and the process RSS added (VmRSS after minus
before opening the store; the Exchange records themselves are built before the first figure).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from l7scope.exchange import Exchange

T0 = 1_700_000_000 * 10**9


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _records(n: int) -> list[Exchange]:
    out = []
    for i in range(n):
        server = i % 2 == 0
        start = T0 + i * 200_000  # 5,000 per second
        out.append(Exchange(
            protocol="http1", side="server" if server else "client",
            pid=200 if server else 100 + i % 7,
            comm="nginx" if server else "curl", local="10.0.0.2:80" if server else "10.0.0.1:45000",
            remote="10.0.0.1:45000" if server else "10.0.0.2:80", peer_pid=None, conn_id=i,
            stream_id=None, method="GET", path=f"/api/items/{i % 1000}?page={i % 7}",
            authority="shop.test", status=200 if i % 50 else 500, grpc_status=None,
            request_bytes=180, response_bytes=1200 + i % 300, start_ns=start,
            end_ns=start + 1_000_000 + i % 5_000_000, time="2023-11-14T22:13:20.000000Z",
            trace=None, request_id=None, tls=False, partial=False, notes=()))
    return out


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def _write(store, records: list[Exchange], now: int):
    from l7scope.outputs.store.writer import StoreSink

    sink = StoreSink(store, to_wall_ns=lambda ns: ns, now_ns=lambda: now, max_rate=10**9,
                     max_queue_items=len(records) + 1, max_queue_bytes=1 << 40)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for ex in records:
        sink(ex)
    t_call = time.perf_counter() - t0
    sink.flush(timeout=600)
    t_all, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sink.close()
    return sink.counters(), t_call, t_all, cpu


def main(n: int) -> None:
    from l7scope.outputs.store.sqlite import SqliteStore
    from l7scope.web.api import Api

    records = _records(n)
    path = os.path.join(tempfile.mkdtemp(prefix="l7scope-bench-"), "l7scope.db")
    rss0 = _rss_kib()
    store = SqliteStore(path)
    now = T0 + n * 200_000
    c, t_call, t_all, cpu = _write(store, records, now)
    rss1 = _rss_kib()
    api = Api(store, now_ns=lambda: now)
    t_topo = _timed(api.handle, "GET", "/api/topology", {}, b"")
    t_search = _timed(api.handle, "GET", "/api/exchanges",
                      {"path_regex": ["items/99[0-9]"], "limit": ["100"]}, b"")
    t_metrics = _timed(api.handle, "GET", "/api/metrics", {"since": ["3600"], "step": ["60"]}, b"")
    rss2 = _rss_kib()
    size = store.size_bytes()
    print(f"exchanges: {n}, written {c['store_exchanges_written']}, "
          f"dropped {c['store_dropped_queue_full'] + c['store_dropped_write_error']}")
    print(f"caller: {t_call / n * 1e6:.2f} us per sink() call")
    print(f"writer: {n / t_all:,.0f} exchanges/s stored (first call to last commit); "
          f"CPU {cpu / n * 1e6:.1f} us per exchange (both threads)")
    print(f"file: {size / 2**20:.1f} MiB, {size / n:.0f} bytes per exchange")
    print(f"api: topology over everything {t_topo * 1e3:.0f} ms, metrics (1 h, 60 s steps) "
          f"{t_metrics * 1e3:.0f} ms, regex search {t_search * 1e3:.0f} ms")
    print(f"rss added: {(rss1 - rss0) / 1024:.1f} MiB after writing (queue of {n} included), "
          f"{(rss2 - rss0) / 1024:.1f} MiB after the queries")
    store.close()
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
