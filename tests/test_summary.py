"""The live view: rows with exact p50/p99 and status classes, counters explained, keys (filter,
sort, pause, open a pair with its sampled exchange), 80 columns, redaction, safe text."""
from __future__ import annotations

import io

from l7scope.summary import CLEAR, LiveSummary
from tests.export import make_exchange


class Keys:
    """A keyboard stand-in: keys queued by the test, handed out at the next draw."""

    def __init__(self):
        self.queue: list[str] = []
        self.restored = 0

    def keys(self) -> list[str]:
        out, self.queue = self.queue, []
        return out

    def restore(self) -> None:
        self.restored += 1


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _summary(size=(80, 24), **kw) -> tuple[LiveSummary, Keys, Clock]:
    keys, clock = Keys(), Clock()
    s = LiveSummary(out=io.StringIO(), every_s=2.0, keyboard=keys, clock=clock, size=size,
                    on_quit=kw.pop("on_quit", None), **kw)
    return s, keys, clock


def screen(s: LiveSummary, counters=None, *keys: str) -> list[str]:
    s.keyboard.queue += list(keys)
    s.clock.t += 0 if keys else 2.5
    s.out.seek(0)
    s.out.truncate()
    s.maybe_draw(lambda: counters or {})
    text = s.out.getvalue()
    assert text.startswith(CLEAR)
    return text[len(CLEAR):].split("\n")


def _feed(s: LiveSummary) -> None:
    """api serves 100 calls of 1..100 ms: 90 x 200, 7 x 404, 3 x 503; curl calls a remote
    server twice (200, 20 ms and 40 ms)."""
    for ms in range(1, 101):
        status = 200 if ms <= 90 else 404 if ms <= 97 else 503
        s.observe(make_exchange(duration_ms=ms, comm="api", pid=42, status=status,
                                path=f"/orders/{ms}"))
    for ms in (20, 40):
        s.observe(make_exchange(side="client", comm="curl", pid=7, duration_ms=ms,
                                path="/health"))


def _row(lines: list[str], start: str) -> list[str]:
    return next(line for line in lines if line.startswith(start)).split()


def test_rows_have_exact_percentiles_and_status_classes():
    s, _, _ = _summary()
    s.clock.t -= 0.5  # the window's first exchanges arrived 2 s before the draw
    _feed(s)
    lines = screen(s, {"events": 99})
    assert lines[0] == "l7scope live  102 exchanges  2 pairs  last 10s  sort: rate"
    assert lines[1].split() == ["CLIENT", "SERVER", "PROTO", "REQ/S", "2XX", "4XX", "5XX",
                                "ERR", "P50", "P99"]
    # client (remote IP), server (command), protocol, req/s over 2 s, 2xx 4xx 5xx err, p50 p99
    assert _row(lines, "10.1.0.3") == ["10.1.0.3", "api", "http1", "50.0", "90", "7", "3", "0",
                                       "50.0ms", "99.0ms"]
    assert _row(lines, "curl") == ["curl", "10.1.0.3:51234", "http1", "1.0", "2", "0", "0", "0",
                                   "20.0ms", "40.0ms"]
    assert lines[-2] == "no drops, no parse errors, no internal errors"
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80


def test_counters_shown_apart_and_explained():
    s, _, _ = _summary()
    _feed(s)
    lines = screen(s, {"ringbuf_full": 3, "parse_error_framing_lost": 2, "events": 9,
                       "internal_error_http1": 1, "http2_streams_shed_memory": 0})
    assert lines[-4:-1] == [
        "drop  ringbuf_full=3 ring buffer full, events lost (--ringbuf-mb)",
        "parse parse_error_framing_lost=2 framing lost (gap or bad frames), rest skipped",
        "bug   internal_error_http1=1 ours; that connection's analysis stopped"]


def test_counters_read_only_when_drawing():
    calls = []
    s, _, _ = _summary()
    s.maybe_draw(lambda: calls.append(1) or {})
    assert calls == [] and s.out.getvalue() == ""


def test_filter_by_process_or_path_sort_and_pause():
    s, _, _ = _summary()
    _feed(s)
    screen(s)
    lines = screen(s, None, "/", "c", "u", "r", "x", "backspace")
    assert lines[-1].startswith("filter: cur_")
    lines = screen(s, None, "l", "enter")
    assert "filter: curl" in lines[0] and [line.split()[0] for line in lines[2:4]] == [
        "curl", "recent:"]
    lines = screen(s, None, "esc", "/", "o", "r", "d", "enter")  # a path of api's row
    assert _row(lines, "10.1.0.3")[1] == "api" and not any(x.startswith("curl") for x in lines)
    lines = screen(s, None, "esc", "s", "s")  # rate -> errors -> p99
    assert "sort: p99" in lines[0] and lines[2].startswith("10.1.0.3")
    lines = screen(s, None, "p")
    assert lines[0].endswith("PAUSED")
    for _ in range(5):
        s.observe(make_exchange(side="client", comm="wget", pid=9))
    assert not any(x.startswith("wget") for x in screen(s))  # paused: the table stays
    assert any(x.startswith("wget") for x in screen(s, None, "p"))


def test_open_a_pair_shows_recent_and_sampled_raw_request_redacted():
    s, _, _ = _summary(size=(80, 40))
    _feed(s)
    s.observe(make_exchange(duration_ms=5, comm="api", pid=42, status=404,
                            path="/orders/x?token=SEKRIT1", request_body=b'{"password":"SEKRIT2"}',
                            request_headers=(("Host", "svc"), ("Authorization", "Bearer SEKRIT3"),
                                             ("Content-Type", "application/json"))))
    lines = screen(s, None, "enter")  # the selected (first) row: api's
    text = "\n".join(lines)
    assert lines[0] == "pair 10.1.0.3 -> api  http1"
    assert lines[1:3] == ["last 10s: 101 exchanges  p50 50.0ms  p99 99.0ms",
                          "2xx 90  3xx 0  4xx 8  5xx 3  err 0"]
    assert "server api(42) GET /orders/x?token=[REDACTED] -> 404 5.00ms" in text
    at = lines.index("sampled exchange 1/3: latest failure")
    assert lines[at + 1:at + 6] == [
        "GET /orders/x?token=[REDACTED] HTTP/1.1", "Host: svc", "Authorization: [REDACTED]",
        "Content-Type: application/json", '{"password":"[REDACTED]"}']
    assert "HTTP/1.1 404" in lines and "SEKRIT" not in text
    lines = screen(s, None, "down")
    assert "sampled exchange 2/3: slowest" in lines
    assert "GET /orders/100 HTTP/1.1" in lines
    lines = screen(s, None, "esc")
    assert lines[0].startswith("l7scope live")
    assert max(len(line) for line in lines) <= 80


def test_q_quits_and_gives_the_terminal_back():
    quits = []
    s, keys, _ = _summary(on_quit=lambda: quits.append(1))
    keys.queue.append("q")
    s.maybe_draw(dict)
    assert quits == [1] and keys.restored == 1
    s.maybe_draw(dict)  # closed: nothing more is drawn or read
    assert quits == [1] and s.out.getvalue() == ""


def test_fits_small_terminals_and_long_names():
    s, _, _ = _summary(size=(80, 12))
    for i in range(30):
        s.observe(make_exchange(side="client", comm=f"a-very-long-command-name-{i}", pid=i,
                                path="/" + "x" * 200))
    lines = screen(s, {f"c{i}_dropped": 1 for i in range(9)})
    assert len(lines) == 12 and max(len(line) for line in lines) <= 80
    assert lines[-2] == "+6 more counters (all listed at stop)"


def test_captured_text_cannot_drive_the_terminal():
    s, _, _ = _summary()
    s.observe(make_exchange(comm="ev\x1b[2Jil", pid=1, path="/a\x1b]0;x\x07[bold]b\u202e"))
    text = "\n".join(screen(s))
    assert "\x1b" not in text.replace(CLEAR, "") and "\x07" not in text and "\u202e" not in text
    assert "/a?]0;x?[bold]b?" in text


def test_recent_paths_have_secret_parameters_redacted():
    s, _, _ = _summary()
    s.observe(make_exchange(path="/cb?code=SEKRIT1&state=2", comm="api", pid=42))
    lines = screen(s)
    assert any("/cb?code=[REDACTED]&state=2" in line for line in lines)
    assert "SEKRIT1" not in "\n".join(lines)


def test_rows_are_named_by_service_like_the_pair_metrics():
    """With a process table the rows carry the service name (as the pair metrics and
    Prometheus do): two worker pids of one service are one row, never a row per pid."""
    services = {42: "checkout", 43: "checkout"}
    s, _, _ = _summary(name=lambda comm, pid: services.get(pid) or comm or "?")
    for pid in (42, 43, 42):
        s.observe(make_exchange(duration_ms=5, comm="python3", pid=pid, path="/pay"))
    lines = screen(s)
    assert lines[0].split()[2:6] == ["3", "exchanges", "1", "pair"]
    assert _row(lines, "10.1.0.3")[:3] == ["10.1.0.3", "checkout", "http1"]
