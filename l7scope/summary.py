"""The live terminal view (``l7scope`` on a terminal): process pairs with rate, status
classes, exact p50/p99 over the last seconds, drops and parse errors explained, and keys to
filter, sort, pause and open a pair with its recent and sampled exchanges.

``LiveSummary`` is what the agent holds: ``observe(ex, peer_comm)`` for every exchange and
``maybe_draw(counters_fn)`` from its loop. Keys are read inside ``maybe_draw`` without
blocking (standard input in cbreak mode when it is a terminal; restored by ``close()`` and
at exit), a key redraws at once, and otherwise the screen is redrawn every ``every_s``
seconds; ``counters_fn()`` is only called when drawing. ``q`` quits as Ctrl-C does: by
default it raises SIGINT in this process, so the agent stops cleanly with its stop line.
The pieces live in l7scope/outputs/live/ (window statistics, keys, view state, drawing).
"""
from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import time

from rich.console import Console
from rich.text import Text

from l7scope.outputs.live.keys import TerminalInput
from l7scope.outputs.live.render import detail_screen, table_screen
from l7scope.outputs.live.view import LiveView
from l7scope.redact import Redactor

CLEAR = "\x1b[H\x1b[2J"


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class LiveSummary:
    def __init__(self, out=None, every_s: float = 2.0, recent: int = 8, redact_path=None, *,
                 redactor: Redactor | None = None, keyboard=None, window_s: int = 10,
                 on_quit=_interrupt, clock=time.monotonic, size: tuple[int, int] | None = None,
                 name=None):
        """``keyboard``: None reads keys from standard input when ``out`` is the terminal,
        False reads none, or any object with ``keys()`` and ``restore()``. ``size``:
        (columns, lines), else the terminal's (80 x unlimited when ``out`` is no terminal)."""
        self.out = out or sys.stdout
        self.redactor = redactor or Redactor()
        self.redact_path = redact_path or self.redactor.redact_path
        self.every_s = every_s
        self.clock = clock
        self.size = size
        self.on_quit = on_quit
        self.view = LiveView(window_s=window_s, recent=max(recent, 20),
                             redact_path=self.redact_path, started_s=clock(),
                             **({"name": name} if name is not None else {}))
        self.view.last_recent = type(self.view.last_recent)(maxlen=recent)
        self.keyboard = keyboard
        if keyboard is None:
            self.keyboard = TerminalInput.open_stdin() if self._is_tty() else None
        self._last = clock()
        self._closed = False

    def _is_tty(self) -> bool:
        try:
            return self.out.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def total(self) -> int:
        return self.view.total

    def observe(self, ex, peer_comm=None) -> None:
        self.view.observe(ex, peer_comm, self.clock())

    def maybe_draw(self, counters_fn) -> None:
        """Handle waiting keys; redraw after a key or when ``every_s`` has passed."""
        if self._closed:
            return
        keys = self.keyboard.keys() if self.keyboard else []
        now = self.clock()
        for key in keys:
            self.view.key(key, now)
            if self.view.quit:
                self.close()
                if self.on_quit is not None:
                    self.on_quit()
                return
        if not keys and now - self._last < self.every_s:
            return
        self._last = now
        self.draw(counters_fn(), now)

    def draw(self, counters: dict, now: float) -> None:
        width, height = self._size()
        if self.view.mode == "detail":
            lines = detail_screen(self.view, now, width, height, self.redactor)
        else:
            lines = table_screen(self.view, self.view.figures(now), counters, width, height)
        self.out.write(CLEAR + self.render(lines[:height], width))
        self.out.flush()

    def render(self, lines: list[Text], width: int) -> str:
        buf = io.StringIO()
        tty = self._is_tty()
        console = Console(file=buf, width=width, force_terminal=tty, no_color=not tty,
                          color_system="standard" if tty else None, highlight=False,
                          emoji=False, markup=False, legacy_windows=False)
        for i, line in enumerate(lines):
            line = line.copy()
            line.truncate(width, overflow="ellipsis")
            console.print(line, end="\n" if i < len(lines) - 1 else "", no_wrap=True,
                          overflow="ellipsis", crop=True, soft_wrap=False)
        return buf.getvalue()

    def _size(self) -> tuple[int, int]:
        if self.size:
            return self.size
        if not self._is_tty():
            return 80, 10_000
        cols, lines = shutil.get_terminal_size((80, 24))
        return max(40, cols), max(8, lines)

    def close(self) -> None:
        """Give the terminal back (cooked mode); idempotent."""
        self._closed = True
        if self.keyboard:
            self.keyboard.restore()
