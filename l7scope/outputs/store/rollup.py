"""Per-pair rollups: what the topology and the metric charts read, in 10-second slots.

Theory of operation
-------------------
Scanning raw exchanges for a chart costs microseconds per row: minutes of traffic at the
store's rate would take seconds. So the writer thread also folds EVERY exchange offered to the
sink (those above the store's rate too: the rollup is exact where the exchanges table keeps 1
in N) into counters per

    (slot start, client node, server node, protocol, kind, key) -> n, low, high

where a slot is SLOT_S seconds of wall clock and ``kind`` is one of

    status      key = HTTP status (0: no response); the record that counts its request
                (schema.counts_request), so requests = the sum of n over statuses
    error       key 0; counted requests that are errors (5xx, gRPC non-zero, no response)
    dur         key = duration bucket; counted requests with a response (topology p50/p99)
    dur_client  key = duration bucket; client-side records (and captures) with a response
    dur_server  key = duration bucket; server-side records (and captures) with a response
    req_bytes   key = size bucket; counted requests
    resp_bytes  key = size bucket; counted requests with a response

``low``/``high`` are the smallest and largest value seen in that bucket (durations in ns,
sizes in bytes; 0 for status and error), which queries.quantile needs. A batch's rollup is
merged into the table by adding n and widening low/high, so a slot written by several
batches adds up.
"""
from __future__ import annotations

from l7scope.outputs.store import schema

SLOT_S = 10
SLOT_NS = SLOT_S * 10**9
KINDS = ("status", "error", "dur", "dur_client", "dur_server", "req_bytes", "resp_bytes")


class Rollup:
    """One batch's rollup rows, keyed; ``rows(node)`` gives them in schema column order."""

    __slots__ = ("_cells",)

    def __init__(self):
        self._cells: dict[tuple, list[int]] = {}

    def __len__(self) -> int:
        return len(self._cells)

    def _add(self, key: tuple, value: int) -> None:
        cell = self._cells.get(key)
        if cell is None:
            self._cells[key] = [1, value, value]
            return
        cell[0] += 1
        if value < cell[1]:
            cell[1] = value
        if value > cell[2]:
            cell[2] = value

    def add(self, ex, ts_ns: int, client: str, server: str) -> None:
        base = (ts_ns - ts_ns % SLOT_NS, client, server, ex.protocol)
        answered = ex.status is not None
        dur = ex.duration_ns
        if schema.counts_request(ex):
            self._add(base + ("status", ex.status or 0), 0)
            if schema.is_error(ex):
                self._add(base + ("error", 0), 0)
            self._add(base + ("req_bytes", schema.bucket_of(ex.request_bytes)), ex.request_bytes)
            if answered:
                self._add(base + ("dur", schema.bucket_of(dur, 1000)), dur)
                self._add(base + ("resp_bytes", schema.bucket_of(ex.response_bytes)),
                          ex.response_bytes)
        if answered and ex.side != "server":
            self._add(base + ("dur_client", schema.bucket_of(dur, 1000)), dur)
        if answered and ex.side != "client":
            self._add(base + ("dur_server", schema.bucket_of(dur, 1000)), dur)

    def rows(self, node: str) -> list[tuple]:
        return [(slot, node, client, server, protocol, kind, key, n, low, high)
                for (slot, client, server, protocol, kind, key), (n, low, high)
                in self._cells.items()]
