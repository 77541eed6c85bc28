"""The run loop: a source's events through the pipeline into the outputs, until told to stop.

app.py builds the parts and owns their cleanup; this module only turns the crank:

    poll the source -> pipeline.feed -> (SIGHUP: reload) -> pipeline.tick -> outputs.tick

until a signal, the --duration deadline or the end of a capture file. SIGINT and SIGTERM set
a flag (the loop ends at its next turn and everything is flushed); SIGHUP asks for a reload.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

POLL_MS = 100
PROGRESS_MIN_BYTES = 4 << 20  # capture files above this show progress on a terminal
PROGRESS_EVERY_S = 1.0


class Signals:
    """SIGINT/SIGTERM -> ``stop``, SIGHUP -> ``reload``; ``restore()`` puts the old handlers
    back. Installed only from the main thread (a test calling in from another gets none)."""

    def __init__(self):
        self.stop = False
        self.reload = False
        self._old: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in ((signal.SIGINT, self._stop), (signal.SIGTERM, self._stop),
                                (signal.SIGHUP, self._hup)):
            self._old[signum] = signal.signal(signum, handler)

    def _stop(self, *_):
        self.stop = True

    def _hup(self, *_):
        self.reload = True

    def wait(self, step_s: float = 0.2) -> None:
        """Until SIGINT or SIGTERM."""
        while not self.stop:
            time.sleep(step_s)

    def restore(self) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old.clear()


class RunClock:
    """The run's wall clock as the outputs see it: now for live capture, the last packet's
    time for a capture file (so "the last hour" of an old file is that file's last hour)."""

    def __init__(self, source):
        self._source = source
        self.last_ts = 0

    def wall_ns(self) -> int:
        return self._source.wall_ns(self.last_ts)


def all_counters(pipeline, outputs, source) -> dict:
    """Every counter of the run, named for what it counts; the latest internal error reasons
    (16 at most, oldest first) under ``internal_error_reasons`` when there are any."""
    c = dict(source.counters())
    c.update(pipeline.table.counters)
    c.update({f"parse_error_{k}": v for k, v in pipeline.parse_errors.items()})
    c.update({f"trace_context_{k}": v for k, v in pipeline.trace_errors.items()})
    c.update(pipeline.counters)
    c["exchanges"] = pipeline.exchanges
    c.update(outputs.counters())
    if pipeline.table.internal_errors:
        c["internal_error_reasons"] = list(pipeline.table.internal_errors)
    return c


def loop(source, pipeline, outputs, signals: Signals, clock: RunClock, *,
         duration_s: float | None = None, on_reload=None, progress=None) -> bool:
    """Turns until a stop; True when the source was read to its end, False when stopped."""
    deadline = time.monotonic() + duration_s if duration_s else None
    counters = lambda: all_counters(pipeline, outputs, source)  # noqa: E731
    tcp = getattr(outputs, "tcp", None)
    while not signals.stop and (deadline is None or time.monotonic() < deadline):
        events = source.poll(POLL_MS)
        pipeline.feed(events)
        if tcp is not None:
            tcp.feed(events)
        if signals.reload and on_reload is not None:
            signals.reload = False
            on_reload()
        clock.last_ts = pipeline.last_ts
        pipeline.tick(source.now_ns(pipeline.last_ts))
        outputs.tick(clock.wall_ns(), counters)
        if progress is not None:
            progress()
        if source.done:
            return True
    events = source.drain()
    pipeline.feed(events)
    if tcp is not None:
        tcp.feed(events)
    return False


class Progress:
    """"reading FILE: 45%" on a terminal's stderr, redrawn once a second; cleared at the end."""

    def __init__(self, source, out=None):
        self.source = source
        self.out = out or sys.stderr
        self._next = time.monotonic() + PROGRESS_EVERY_S
        self.shown = False

    @classmethod
    def maybe(cls, source, out=None):
        out = out or sys.stderr
        big = getattr(source, "size", 0) >= PROGRESS_MIN_BYTES
        return cls(source, out) if big and _isatty(out) else None

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + PROGRESS_EVERY_S
        self.out.write(f"\rl7scope: reading {self.source.path}: "
                       f"{int(self.source.progress() * 100)}%\x1b[K")
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()


def _isatty(f) -> bool:
    try:
        return f.isatty()
    except (AttributeError, ValueError):
        return False


_DROP_WORDS = ("full", "drop", "malformed", "lost", "evicted", "fault", "shed", "discard")


def stop_line(counters: dict, reasons=()) -> str:
    """The one line printed at stop: drops, parse errors and internal errors, each named."""
    ints = {k: v for k, v in counters.items() if type(v) is int and v}
    internal = {k: v for k, v in ints.items() if k.startswith("internal_error_")}
    parse = {k: v for k, v in ints.items() if k.startswith("parse_error_")}
    drops = {k: v for k, v in ints.items() if k not in internal and k not in parse
             and any(w in k for w in _DROP_WORDS)}

    def listed(d: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in d.items())

    line = f"l7scope: stopped; {counters.get('exchanges', 0)} exchanges"
    line += f"; dropped: {listed(drops)}" if drops else "; nothing dropped"
    line += f"; parse errors: {listed(parse)}" if parse else "; no parse errors"
    if internal:
        latest = list(dict.fromkeys(reversed(list(reasons))))[:4]
        line += f"; internal errors: {listed(internal)}"
        line += f" (latest: {'; '.join(latest)})" if latest else ""
    else:
        line += "; no internal errors"
    return line
