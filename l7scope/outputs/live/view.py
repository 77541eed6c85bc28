"""The live view's state: rows of process pairs fed by exchanges, and what the keys do.

Theory of operation
-------------------
``observe`` files each exchange under its row, (client, server, protocol) with processes
named as the pair metrics name them (``name``: the service name with a process table, else
the process name; never a pid, so every curl is one row): the row's ``Window`` (status classes, exact
percentiles), its last ``recent`` exchanges (paths redacted when filed) and three sampled
exchanges kept with their raw request and response: the latest, the latest failure (4xx,
5xx, gRPC error, no response) and the slowest of the window. Rows are bounded
(``max_rows``); exchanges of further pairs are counted in ``overflow``.

The keys drive a small state machine, a table of (mode, key) -> action in ``_ACTIONS``:

  mode    key              action
  table   / .............. filter: type text, Enter keeps it, Esc drops it
  table   s .............. sort by the next of rate, errors, p99
  table   p .............. pause: the table stays as it was drawn (data keeps coming)
  table   up/down/pg ..... move the selection
  table   enter/right .... open the selected pair (detail mode)
  table   esc ............ clear the filter
  table   q .............. quit
  detail  esc/left ....... back to the table
  detail  q .............. quit
  detail  up/down ........ previous / next sampled exchange
  filter  text/backspace . edit; enter applies; esc cancels

A filter matches a row when its text is in the client, server or protocol name, or in one
of the row's recent paths.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from l7scope.exchange import Exchange
from l7scope.metrics import pair_of, process_name
from l7scope.outputs.live.window import Figures, Window, status_class

SORTS = ("rate", "errors", "p99")
SAMPLE_KINDS = ("latest failure", "slowest", "latest")
OVERFLOW_KEY = ("(other pairs)", "(other pairs)", "-")


class Recent(NamedTuple):
    time: str  # HH:MM:SS.mmm
    side: str
    who: str  # comm(pid) of the observing process
    method: str
    path: str  # redacted
    status: str
    duration_s: float | None


@dataclass(slots=True)
class Row:
    key: tuple[str, str, str]
    window: Window
    recent: deque
    samples: dict = field(default_factory=dict)  # kind -> Exchange
    slowest_s: float = -1.0
    slowest_at: float = 0.0


class RowFigures(NamedTuple):
    key: tuple[str, str, str]
    rate: float
    figures: Figures

    @property
    def errors(self) -> int:
        c = self.figures.classes
        return c[2] + c[3] + c[4]


class LiveView:
    def __init__(self, *, window_s: int = 10, recent: int = 20, max_rows: int = 256,
                 redact_path=None, started_s: float = 0.0, name=process_name):
        self.name = name  # (comm, pid) -> the row's name for a local process
        self.window_s = window_s
        self.keep_recent = recent
        self.max_rows = max_rows
        self.redact_path = redact_path or (lambda p: p)
        self.rows: dict[tuple, Row] = {}
        self.overflow = 0
        self.total = 0
        self.started_s = started_s
        self.mode = "table"
        self.filter = ""
        self.editing = ""
        self.sort = 0
        self.paused = False
        self.frozen: list[RowFigures] | None = None
        self.selected = 0
        self.opened: tuple | None = None
        self.sample_index = 0
        self.quit = False
        self.last_recent: deque = deque(maxlen=recent)
        self.note = ""  # a line under the title (the agent puts the web UI's address there)

    # --- data ----------------------------------------------------------------------------

    def observe(self, ex: Exchange, peer_comm: str | None, now_s: float) -> None:
        client, server, _, _ = pair_of(ex, peer_comm, self.name)
        row = self._row((client, server, ex.protocol))
        self.total += 1
        duration = ex.duration_ns / 1e9 if ex.status is not None else None
        klass = status_class(ex.status, ex.grpc_status)
        row.window.add(now_s, duration, klass)
        recent = Recent(
            time=(ex.time or "")[11:23], side=ex.side or "-",
            who=f"{ex.comm or '?'}({ex.pid if ex.pid is not None else '?'})",
            method=ex.method or "?", path=self.redact_path(ex.path or "?"),
            status=_status_text(ex), duration_s=duration)
        row.recent.append(recent)
        self.last_recent.append(recent)
        row.samples["latest"] = ex
        if klass >= 2:
            row.samples["latest failure"] = ex
        if duration is not None and (duration >= row.slowest_s
                                     or now_s - row.slowest_at >= self.window_s):
            row.samples["slowest"] = ex
            row.slowest_s, row.slowest_at = duration, now_s

    def _row(self, key: tuple) -> Row:
        row = self.rows.get(key)
        if row is None:
            if len(self.rows) >= self.max_rows:
                self.overflow += 1
                key = OVERFLOW_KEY
                row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = Row(key, Window(self.window_s),
                                           deque(maxlen=self.keep_recent))
        return row

    def figures(self, now_s: float) -> list[RowFigures]:
        """Visible rows (filtered, sorted): frozen while paused."""
        if self.paused and self.frozen is not None:
            return self.frozen
        span = max(1e-9, min(float(self.window_s), now_s - self.started_s))
        out = []
        for key, row in self.rows.items():
            f = row.window.figures(now_s)
            if f.total and self._matches(row):
                out.append(RowFigures(key, f.total / span, f))
        order = SORTS[self.sort]
        if order == "rate":
            out.sort(key=lambda r: (-r.figures.total, r.key))
        elif order == "errors":
            out.sort(key=lambda r: (-r.figures.classes[3] - r.figures.classes[4],
                                    -r.errors, -r.figures.total, r.key))
        else:
            out.sort(key=lambda r: (-(r.figures.p99 or 0.0), r.key))
        self.selected = min(self.selected, max(0, len(out) - 1))
        return out

    def _matches(self, row: Row) -> bool:
        if not self.filter:
            return True
        needle = self.filter.casefold()
        if any(needle in part.casefold() for part in row.key):
            return True
        return any(needle in r.path.casefold() for r in row.recent)

    def samples(self) -> list[tuple[str, Exchange]]:
        row = self.rows.get(self.opened) if self.opened else None
        if row is None:
            return []
        return [(kind, row.samples[kind]) for kind in SAMPLE_KINDS if kind in row.samples]

    # --- keys ----------------------------------------------------------------------------

    def key(self, key: str, now_s: float) -> None:
        if self.mode == "filter":
            self._filter_key(key)
            return
        action = _ACTIONS.get((self.mode, key))
        if action is not None:
            action(self, now_s)

    def _filter_key(self, key: str) -> None:
        if key == "enter":
            self.filter, self.mode = self.editing, "table"
            self.selected = 0
        elif key == "esc":
            self.mode = "table"
        elif key == "backspace":
            self.editing = self.editing[:-1]
        elif len(key) == 1 and len(self.editing) < 64:
            self.editing += key

    def _start_filter(self, now_s: float) -> None:
        self.mode, self.editing = "filter", self.filter

    def _next_sort(self, now_s: float) -> None:
        self.sort = (self.sort + 1) % len(SORTS)
        self.frozen = None
        if self.paused:
            self.paused = False
            self.frozen = self.figures(now_s)
            self.paused = True

    def _pause(self, now_s: float) -> None:
        self.frozen = None
        if not self.paused:
            self.frozen = self.figures(now_s)
        self.paused = not self.paused

    def _open(self, now_s: float) -> None:
        rows = self.figures(now_s)
        if rows:
            self.opened = rows[min(self.selected, len(rows) - 1)].key
            self.mode, self.sample_index = "detail", 0

    def _back(self, now_s: float) -> None:
        self.mode = "table"

    def _clear_filter(self, now_s: float) -> None:
        self.filter = ""

    def _quit(self, now_s: float) -> None:
        self.quit = True



def _status_text(ex: Exchange) -> str:
    if ex.status is None:
        return "none"
    if ex.grpc_status is not None:
        return f"{ex.status}/g{ex.grpc_status}"
    return str(ex.status)


def _move(step: int):
    def move(view: LiveView, now_s: float) -> None:
        view.selected = max(0, view.selected + step)
    return move


def _sample_step(step: int):
    def step_sample(view: LiveView, now_s: float) -> None:
        view.sample_index = max(0, view.sample_index + step)
    return step_sample


_ACTIONS = {
    ("table", "/"): LiveView._start_filter,
    ("table", "s"): LiveView._next_sort,
    ("table", "p"): LiveView._pause,
    ("table", "up"): _move(-1),
    ("table", "down"): _move(1),
    ("table", "pgup"): _move(-10),
    ("table", "pgdn"): _move(10),
    ("table", "enter"): LiveView._open,
    ("table", "right"): LiveView._open,
    ("table", "esc"): LiveView._clear_filter,
    ("table", "q"): LiveView._quit,
    ("detail", "esc"): LiveView._back,
    ("detail", "left"): LiveView._back,
    ("detail", "q"): LiveView._quit,
    ("detail", "up"): _sample_step(-1),
    ("detail", "down"): _sample_step(1),
}
