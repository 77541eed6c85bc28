"""Metric snapshot types shared by the aggregator (l7scope.metrics) and the exporters."""
from __future__ import annotations

from dataclasses import dataclass

# Bucket upper bounds (inclusive), Prometheus style; one implicit +Inf bucket follows.
DURATION_MS_BOUNDS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
SIZE_BYTES_BOUNDS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


@dataclass(frozen=True, slots=True)
class Histogram:
    """``counts[i]`` observations fell in (bounds[i-1], bounds[i]]; the last is the +Inf bucket.

    Counts are per bucket, not cumulative; ``sum`` and ``count`` cover all observations.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile q (None when empty)."""
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def to_dict(self) -> dict:
        return {"bounds": list(self.bounds), "counts": list(self.counts),
                "sum": self.sum, "count": self.count}


@dataclass(frozen=True, slots=True)
class PairMetrics:
    """Traffic between one client and one server process (or address) over one interval.

    ``client``/``server`` are display names: the service name of a local process (never a pid;
    ``client_pid``/``server_pid`` are the last seen), "ip" for a remote client and "ip:port" for
    a remote server. Request counts, statuses and sizes are counted once
    per request (from the server's record when the server is a traced local process, else from
    the client's); the two duration histograms come from each side's own records.
    """

    protocol: str
    client: str
    server: str
    client_pid: int | None
    server_pid: int | None
    interval_start_ns: int  # wall clock, ns since the epoch
    interval_end_ns: int
    requests: int
    status_counts: tuple[tuple[str, int], ...]  # ("200", n) ... ; "none" when no response
    errors: int  # 5xx responses, gRPC non-zero status and exchanges without a response
    request_bytes: Histogram
    response_bytes: Histogram
    client_duration_ms: Histogram
    server_duration_ms: Histogram

    @property
    def requests_per_min(self) -> float:
        secs = max(1e-9, (self.interval_end_ns - self.interval_start_ns) / 1e9)
        return self.requests * 60.0 / secs

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol, "client": self.client, "server": self.server,
            "client_pid": self.client_pid, "server_pid": self.server_pid,
            "interval_start_ns": self.interval_start_ns, "interval_end_ns": self.interval_end_ns,
            "requests": self.requests, "requests_per_min": round(self.requests_per_min, 3),
            "status_counts": dict(self.status_counts), "errors": self.errors,
            "request_bytes": self.request_bytes.to_dict(),
            "response_bytes": self.response_bytes.to_dict(),
            "client_duration_ms": self.client_duration_ms.to_dict(),
            "server_duration_ms": self.server_duration_ms.to_dict(),
        }
