"""The live terminal table: pairs with rate, errors, p50/p99, recent exchanges, drop counters."""
from __future__ import annotations

import io
import time

from l7scope.summary import CLEAR, LiveSummary
from tests.export import make_exchange


def draw(summary: LiveSummary, counters: dict) -> list[str]:
    summary._last = time.monotonic() - 1.0  # the last draw was a second ago
    summary.out.seek(0)
    summary.out.truncate()
    summary.maybe_draw(lambda: counters)
    text = summary.out.getvalue()
    assert text.startswith(CLEAR)
    return text[len(CLEAR):].splitlines()


def test_table_rows_rates_errors_and_quantiles():
    s = LiveSummary(out=io.StringIO(), every_s=0.5)
    for ms in (1, 2, 3, 4):
        s.observe(make_exchange(duration_ms=ms, comm="api", pid=42, status=200))
    s.observe(make_exchange(duration_ms=300, comm="api", pid=42, status=503))
    lines = draw(s, {"ringbuf_full": 3, "events": 99})
    assert lines[0] == "l7scope  exchanges: 5  dropped: ringbuf_full: 3"
    row = [line for line in lines if line.startswith("10.1.0.3")][0].split()
    # client (remote IP), server (this process), protocol, req/s, errors, p50, p99
    assert row[:3] == ["10.1.0.3", "api", "http1"]
    assert 4.9 < float(row[3]) <= 5.0 and row[4] == "1"  # 5 requests over the last second
    assert row[5:] == ["5ms", "500ms"]  # median 3 ms: bucket (2.5, 5]; p99 300 ms: (250, 500]
    assert lines[-1] == "server api(42) GET /api/users?id=1 -> 503 300.0ms"


def test_counters_are_read_only_when_drawing():
    calls = []
    s = LiveSummary(out=io.StringIO(), every_s=3600)
    s.maybe_draw(lambda: calls.append(1) or {})
    assert calls == [] and s.out.getvalue() == ""


def test_nothing_dropped_says_none():
    s = LiveSummary(out=io.StringIO(), every_s=0.5)
    assert draw(s, {"events": 5, "ringbuf_full": 0})[0] == "l7scope  exchanges: 0  dropped: none"


def test_rows_group_processes_by_command():
    s = LiveSummary(out=io.StringIO(), every_s=0.5)
    for pid in (100, 101, 102):  # three curl runs against one remote server
        s.observe(make_exchange(side="client", comm="curl", pid=pid))
    rows = [line.split()[:4] for line in draw(s, {}) if line.startswith("curl")]
    assert rows == [["curl", "10.1.0.3:51234", "http1", "3.0"]]


def test_recent_paths_have_secret_parameters_redacted():
    s = LiveSummary(out=io.StringIO(), every_s=0.5)
    s.observe(make_exchange(path="/cb?code=SEKRIT1&state=2", comm="api", pid=42))
    lines = draw(s, {})
    assert any("/cb?code=[REDACTED]&state=2" in line for line in lines)
    assert "SEKRIT1" not in "\n".join(lines)
