"""The live terminal summary: a table of process pairs with rate, errors and p50/p99.

It keeps its own short-interval aggregator so that the table shows the last few seconds,
independent of the metrics interval. Rows group processes by command name (every curl, every
nginx worker in one row); the metrics outputs keep one series per process. Recent paths are
shown with their secret query parameters redacted (``redact_path``, the default policy unless
the agent passes its configured one).
"""
from __future__ import annotations

import shutil
import sys
import time

from l7scope.metrics import MetricsAggregator
from l7scope.redact import redact_path as default_redact_path

CLEAR = "\x1b[H\x1b[2J"


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v == float("inf"):
        return ">10s"
    return f"{v:g}ms"


class LiveSummary:
    def __init__(self, out=None, every_s: float = 2.0, recent: int = 8,
                 redact_path=default_redact_path):
        self.out = out or sys.stdout
        self.redact_path = redact_path
        self.every_s = every_s
        self.agg = MetricsAggregator(max_pairs=512, name=lambda comm, pid: comm or f"pid {pid}")
        self.recent: list[str] = []
        self.keep_recent = recent
        self.total = 0
        self._last = time.monotonic()

    def observe(self, ex, peer_comm=None) -> None:
        self.agg.record(ex, peer_comm)
        self.total += 1
        line = (f"{ex.side or '-':6} {ex.comm or '-'}({ex.pid}) {ex.method or '?'} "
                f"{self.redact_path(ex.path or '?')[:60]} -> {ex.status if ex.status is not None else '-'} "
                f"{ex.duration_ns / 1e6:.1f}ms")
        self.recent.append(line)
        del self.recent[: -self.keep_recent]

    def maybe_draw(self, counters_fn) -> None:
        """Redraw when `every_s` has passed; `counters_fn()` is only called then."""
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        counters = counters_fn()
        elapsed, self._last = now - self._last, now
        pairs = self.agg.snapshot(0, int(elapsed * 1e9))
        width = shutil.get_terminal_size((120, 30)).columns
        dropped = "  ".join(f"{k}: {v}" for k, v in counters.items()
                            if v and any(w in k for w in ("full", "drop", "lost", "fault", "malformed")))
        rows = [f"l7scope  exchanges: {self.total}  dropped: {dropped or 'none'}", "",
            f"{'CLIENT':28} {'SERVER':28} {'PROTO':6} {'REQ/S':>8} {'ERR':>5} {'P50':>8} {'P99':>8}"]
        for p in sorted(pairs, key=lambda p: -p.requests)[:20]:
            dur = p.server_duration_ms if p.server_duration_ms.count else p.client_duration_ms
            rows.append(f"{p.client[:28]:28} {p.server[:28]:28} {p.protocol:6} "
                        f"{p.requests / elapsed:8.1f} {p.errors:5d} {_ms(dur.quantile(0.5)):>8} "
                        f"{_ms(dur.quantile(0.99)):>8}")
        rows += ["", "recent:"] + self.recent
        self.out.write(CLEAR + "\n".join(r[:width] for r in rows) + "\n")
        self.out.flush()
