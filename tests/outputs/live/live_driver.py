"""Runs the live view in a real terminal for the tmux test: synthetic exchanges, then the
agent's loop (maybe_draw) until q; writes what happened to the file named by argv[1]."""
from __future__ import annotations

import sys
import termios
import time

from l7scope.summary import LiveSummary
from tests.export import make_exchange


def feed(view: LiveSummary) -> None:
    """api serves 100 calls of 1..100 ms (90 x 200, 7 x 404, 3 x 503); curl calls /health."""
    for ms in range(1, 101):
        status = 200 if ms <= 90 else 404 if ms <= 97 else 503
        headers = (("Host", "svc"), ("Authorization", "Bearer SEKRIT1"))
        view.observe(make_exchange(duration_ms=ms, comm="api", pid=42, status=status,
                                   path=f"/orders/{ms}?token=SEKRIT2", request_headers=headers))
    for ms in (20, 40):
        view.observe(make_exchange(side="client", comm="curl", pid=7, duration_ms=ms,
                                   path="/health"))


def main(result_path: str) -> None:
    view = LiveSummary(every_s=0.2)
    feed(view)
    counters = {"ringbuf_full": 3, "parse_error_framing_lost": 1, "exchanges": 102}
    outcome = "still running"
    try:
        for _ in range(6000):  # the agent's loop: about 100 ms of work, then maybe_draw
            time.sleep(0.01)
            view.maybe_draw(lambda: counters)
    except KeyboardInterrupt:  # q raises SIGINT, as Ctrl-C does
        outcome = "quit"
    lflag = termios.tcgetattr(0)[3]
    restored = bool(lflag & termios.ICANON) and bool(lflag & termios.ECHO)
    with open(result_path, "w") as f:
        f.write(f"{outcome} restored={restored}\n")


if __name__ == "__main__":
    main(sys.argv[1])
