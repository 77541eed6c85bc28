"""The live view in a real 80x24 terminal (tmux): exact p50/p99 and 4xx, nothing wider than
80 columns or wrapped, colours, keys (filter, open a pair with its sampled request, back,
quit) and the terminal given back in cooked mode."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


class Tmux:
    def __init__(self, tmp_path):
        assert shutil.which("tmux"), "tmux is installed by scripts/install-deps.sh"
        self.socket = f"l7scope-test-{uuid.uuid4().hex[:8]}"
        self.result = tmp_path / "result.txt"
        command = f"{sys.executable} -m tests.outputs.live.live_driver {self.result}"
        self.run("new-session", "-d", "-x", "80", "-y", "24", "-c", ROOT, command)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              check=True, capture_output=True, text=True, timeout=20).stdout

    def screen(self, colours: bool = False) -> list[str]:
        flags = ["-e"] if colours else []
        return self.run("capture-pane", "-p", *flags).rstrip("\n").split("\n")

    def wait_for(self, text: str, timeout_s: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.screen()
            if any(text in line for line in lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen:\n" + "\n".join(lines))
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", "0", key)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.close()


def _row(lines: list[str], start: str) -> list[str]:
    return next(line for line in lines if line.startswith(start)).split()


def test_live_view_in_an_80x24_terminal(tmux):
    lines = tmux.wait_for("l7scope live")
    assert lines[0].startswith("l7scope live  102 exchanges  2 pairs")
    assert lines[1].split() == ["CLIENT", "SERVER", "PROTO", "REQ/S", "2XX", "4XX", "5XX",
                                "ERR", "P50", "P99"]
    api = _row(lines, "10.1.0.3")
    assert api[:3] == ["10.1.0.3", "api", "http1"]
    assert api[4:] == ["90", "7", "3", "0", "50.0ms", "99.0ms"]  # 2xx 4xx 5xx err p50 p99
    assert _row(lines, "curl")[4:] == ["2", "0", "0", "0", "20.0ms", "40.0ms"]
    # nothing wrapped or scrolled: the title is the first line, the keys the last
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert lines[-1].startswith("/ filter  s sort  p pause")
    assert "drop  ringbuf_full=3 ring buffer full, events lost (--ringbuf-mb)" in lines
    assert any(line.startswith("parse parse_error_framing_lost=1") for line in lines)
    coloured = "\n".join(tmux.screen(colours=True))
    assert "\x1b[" in coloured and "31m" in coloured  # 5xx in red
    assert "SEKRIT" not in "\n".join(lines)

    tmux.keys("/", "curl", "Enter")
    lines = tmux.wait_for("sort: rate  filter: curl")  # the title, once Enter applied it
    assert lines[2].startswith("curl") and not any(x.startswith("10.1.0.3") for x in lines)

    tmux.keys("Escape")
    tmux.wait_for("10.1.0.3")
    tmux.keys("Enter")  # the selected row: api's, the busiest
    lines = tmux.wait_for("sampled exchange 1/3")
    assert lines[0] == "pair 10.1.0.3 -> api  http1"
    assert lines[1] == "last 10s: 100 exchanges  p50 50.0ms  p99 99.0ms"
    assert lines[2] == "2xx 90  3xx 0  4xx 7  5xx 3  err 0"
    at = lines.index("sampled exchange 1/3: latest failure")
    assert lines[at + 1:at + 4] == ["GET /orders/100?token=[REDACTED] HTTP/1.1", "Host: svc",
                                    "Authorization: [REDACTED]"]
    assert all(len(line) <= 80 for line in lines) and "SEKRIT" not in "\n".join(lines)

    tmux.keys("Escape")
    tmux.wait_for("/ filter  s sort")
    tmux.keys("q")
    deadline = time.monotonic() + 15
    while not tmux.result.exists() or not tmux.result.read_text():
        assert time.monotonic() < deadline, "the view did not quit"
        time.sleep(0.1)
    assert tmux.result.read_text() == "quit restored=True\n"
