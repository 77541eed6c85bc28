"""Analysis tasks (the Rover model): which processes to capture, how to sample them, how long.

Theory of operation
-------------------
A task names processes (a ``Selector``: pids, process names, executable path patterns), the
sampling rules for their exchanges (``Rules``: URI regex, minimum duration, 4xx, 5xx, whether
the request and the response text are kept) and a duration. ``parse_task`` turns a decoded
JSON document into a ``TaskSpec`` or an ``Invalid`` value carrying one line that says what is
wrong and where (``processes.pids[2]: ...``); nothing here raises on bad input.

``TaskTable`` holds the tasks of one run. Its clock is injected (monotonic nanoseconds), so
expiry is a pure function of the time the table is asked at. A task moves by these events:

    state     event                                  next
    -------   ------------------------------------   -----------------------------------
    (none)    start, fewer than max_tasks running    running     (id "t<n>", n counts up)
    (none)    start, max_tasks running               (none)      Invalid, nothing changes
    running   expire() at or after its end           ended       end_reason "expired"
    running   stop(id)                               ended       end_reason "stopped"
    ended     stop(id)                               ended       (unchanged)
    ended     more than max_ended ended tasks        (none)      the oldest is forgotten

Bounds: at most ``max_tasks`` running, ``max_ended`` ended ones kept for display; every list
of a task is bounded (pids, names, patterns) and so is every string in it. ``version`` moves
on every change, so a reader knows when to recompute what it derived from the table.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from l7scope.config import CaptureSettings, SamplingRule
from l7scope.procs.filters import COMM_MAX_BYTES, kernel_name

MAX_TASKS = 32  # running at once
MAX_ENDED = 32  # ended tasks kept for the list
MAX_BODY_BYTES = 16 << 10
DEFAULT_DURATION_S = 600
MAX_DURATION_S = 86_400
MAX_PIDS = 1024  # per task (the kernel's pid filter holds 1024 in all)
MAX_NAMES = 64
MAX_PATTERNS = 16
MAX_PATTERN_CHARS = 256
MAX_REGEX_CHARS = 256
MAX_LABEL_CHARS = 100
PID_MAX = 4_194_304  # the kernel's largest pid_max
MAX_MIN_DURATION_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Invalid:
    """Bad input or a refused start: ``reason`` is one line for the user (an HTTP 400)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Selector:
    """The processes of a task: any pid of ``pids``, any process named one of ``names``
    (compared as the kernel keeps names: 15 bytes), any whose executable matches one of the
    shell-style ``exe`` patterns (``/usr/sbin/nginx``, ``*/python3*``)."""

    pids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    exe: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"pids": list(self.pids), "names": list(self.names), "exe": list(self.exe)}


@dataclass(frozen=True, slots=True)
class Rules:
    """How a task samples its processes' exchanges (docs/configuration.md's rule semantics)."""

    uri_regex: str | None = None
    min_duration_ms: float = 500
    when_4xx: bool = True
    when_5xx: bool = True
    capture_request: bool = True
    capture_response: bool = True
    pattern: Any = field(default=None, compare=False, repr=False)  # the compiled uri_regex

    def sampling_rule(self) -> SamplingRule:
        settings = CaptureSettings(capture_request=self.capture_request,
                                   capture_response=self.capture_response)
        return SamplingRule(uri_regex=self.uri_regex, min_duration_ms=self.min_duration_ms,
                            when_4xx=self.when_4xx, when_5xx=self.when_5xx, settings=settings,
                            pattern=self.pattern)

    def to_json(self) -> dict:
        return {"uri_regex": self.uri_regex, "min_duration_ms": self.min_duration_ms,
                "when_4xx": self.when_4xx, "when_5xx": self.when_5xx,
                "capture_request": self.capture_request,
                "capture_response": self.capture_response}


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a start asks for."""

    selector: Selector
    rules: Rules = Rules()
    duration_s: float = DEFAULT_DURATION_S
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    spec: TaskSpec
    started_ns: int  # the table's clock (monotonic)
    started_wall_ns: int
    ended_ns: int | None = None  # the table's clock; None while running
    end_reason: str | None = None  # "expired" | "stopped"

    @property
    def ends_ns(self) -> int:
        return self.started_ns + int(self.spec.duration_s * 1e9)

    @property
    def running(self) -> bool:
        return self.ended_ns is None

    def remaining_s(self, now_ns: int) -> float:
        if not self.running:
            return 0.0
        return round(max(0, self.ends_ns - now_ns) / 1e9, 1)


# --- parsing: a JSON document -> TaskSpec | Invalid -----------------------------------------

class _Bad(Exception):
    """Internal to parsing: carries the one-line reason up to parse_task."""


def parse_body(body: bytes) -> TaskSpec | Invalid:
    """A request body (UTF-8 JSON object, at most MAX_BODY_BYTES) -> TaskSpec | Invalid."""
    if len(body) > MAX_BODY_BYTES:
        return Invalid(f"body: more than {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return Invalid(f"body: not JSON: {_one_line(str(e))}")
    return parse_task(doc)


def parse_task(doc: Any) -> TaskSpec | Invalid:
    try:
        d = _object(doc, "body")
        _known(d, "", ("processes", "sampling", "duration_s", "label"))
        return TaskSpec(selector=_selector(d.get("processes"), "processes"),
                        rules=_rules(d.get("sampling"), "sampling"),
                        duration_s=_duration(d),
                        label=_label(d))
    except _Bad as e:
        return Invalid(str(e))


def _selector(raw: Any, path: str) -> Selector:
    d = _object(raw, path)
    _known(d, path, ("pids", "names", "exe"))
    pids = tuple(dict.fromkeys(_list(d, "pids", path, MAX_PIDS, _pid)))
    names = tuple(dict.fromkeys(_list(d, "names", path, MAX_NAMES, _name)))
    exe = tuple(dict.fromkeys(_list(d, "exe", path, MAX_PATTERNS, _pattern)))
    if not (pids or names or exe):
        raise _Bad(f"{path}: name at least one process (pids, names or exe)")
    return Selector(pids=pids, names=names, exe=exe)


def _rules(raw: Any, path: str) -> Rules:
    d = _object(raw if raw is not None else {}, path)
    _known(d, path, ("uri_regex", "min_duration_ms", "when_4xx", "when_5xx",
                     "capture_request", "capture_response"))
    regex, pattern = _regex(d.get("uri_regex"), f"{path}.uri_regex")
    return Rules(uri_regex=regex, pattern=pattern,
                 min_duration_ms=_number(d, "min_duration_ms", path, 500, 0,
                                         MAX_MIN_DURATION_MS),
                 **{k: _bool(d, k, path) for k in ("when_4xx", "when_5xx", "capture_request",
                                                   "capture_response")})


def _regex(raw: Any, path: str):
    """(text, compiled) of a URI regex, or (None, None); refused when it does not compile,
    is too long, or nests repetitions (patterns that can take exponential time)."""
    if raw is None:
        return None, None
    if not isinstance(raw, str) or not raw:
        raise _Bad(f"{path}: must be a non-empty string")
    from l7scope.outputs.store.queries import BadRequest, compile_path_regex

    try:
        return raw, compile_path_regex(raw)
    except BadRequest as e:
        raise _Bad(f"{path}: {str(e).split(': ', 1)[-1]}") from None


def _duration(d: dict) -> float:
    return _number(d, "duration_s", "", DEFAULT_DURATION_S, 1, MAX_DURATION_S)


def _label(d: dict) -> str | None:
    v = d.get("label")
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > MAX_LABEL_CHARS or not v.isprintable():
        raise _Bad(f"label: must be printable text of at most {MAX_LABEL_CHARS} characters")
    return v or None


def _pid(v: Any, path: str) -> int:
    if not _is_int(v) or not 1 <= v <= PID_MAX:
        raise _Bad(f"{path}: must be a process id (1..{PID_MAX})")
    return v


def _name(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v or not v.isprintable():
        raise _Bad(f"{path}: must be a non-empty process name")
    if len(v.encode("utf-8")) > COMM_MAX_BYTES:
        raise _Bad(f"{path}: {_shown(v)} is longer than the {COMM_MAX_BYTES} bytes the kernel "
                   f"keeps of a process name; use {kernel_name(v)!r}")
    return v


def _pattern(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v or len(v) > MAX_PATTERN_CHARS or "\0" in v:
        raise _Bad(f"{path}: must be a path pattern of 1..{MAX_PATTERN_CHARS} characters")
    return v


def _list(d: dict, key: str, path: str, limit: int, item: Callable) -> list:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Bad(f"{path}.{key}: must be a list")
    if len(v) > limit:
        raise _Bad(f"{path}.{key}: more than {limit} entries")
    return [item(x, f"{path}.{key}[{i}]") for i, x in enumerate(v)]


def _object(v: Any, path: str) -> dict:
    if v is None:
        raise _Bad(f"{path}: missing")
    if not isinstance(v, dict):
        raise _Bad(f"{path}: must be a JSON object")
    return v


def _known(d: dict, path: str, known: tuple[str, ...]) -> None:
    for k in d:
        if k not in known:
            where = f"{path}.{_shown(k)}" if path else _shown(k)
            raise _Bad(f"{where}: unknown field (known: {', '.join(known)})")


def _bool(d: dict, key: str, path: str) -> bool:
    v = d.get(key, True)
    if not isinstance(v, bool):
        raise _Bad(f"{path}.{key}: must be true or false")
    return v


def _number(d: dict, key: str, path: str, default: float, low: float, high: float) -> float:
    v = d.get(key, default)
    where = f"{path}.{key}" if path else key
    if not (_is_int(v) or isinstance(v, float)) or not math.isfinite(v) or not low <= v <= high:
        raise _Bad(f"{where}: must be a number from {low:g} to {high:g}")
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shown(v: str) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(text: str) -> str:
    line = text.splitlines()[0] if text else "?"
    return line if len(line) <= 160 else line[:157] + "..."


# --- the table ------------------------------------------------------------------------------

class TaskTable:
    """The tasks of one run: bounded, expired against the injected clock; not thread-safe
    (its owner locks)."""

    def __init__(self, clock: Callable[[], int], wall_clock: Callable[[], int], *,
                 max_tasks: int = MAX_TASKS, max_ended: int = MAX_ENDED):
        self.clock, self.wall_clock = clock, wall_clock
        self.max_tasks, self.max_ended = max_tasks, max_ended
        self._running: OrderedDict[str, Task] = OrderedDict()
        self._ended: OrderedDict[str, Task] = OrderedDict()
        self._next = 1
        self.version = 0

    def running(self) -> tuple[Task, ...]:
        return tuple(self._running.values())

    def ended(self) -> tuple[Task, ...]:
        return tuple(self._ended.values())

    def get(self, task_id: str) -> Task | None:
        return self._running.get(task_id) or self._ended.get(task_id)

    def can_start(self) -> Invalid | None:
        if len(self._running) >= self.max_tasks:
            return Invalid(f"{self.max_tasks} tasks are running, the most there can be; "
                           f"stop one first")
        return None

    def start(self, spec: TaskSpec) -> Task | Invalid:
        refused = self.can_start()
        if refused is not None:
            return refused
        task = Task(id=f"t{self._next}", spec=spec, started_ns=self.clock(),
                    started_wall_ns=self.wall_clock())
        self._next += 1
        self._running[task.id] = task
        self.version += 1
        return task

    def withdraw(self, task_id: str) -> None:
        """A start that could not take effect: the task is forgotten as if never started."""
        if self._running.pop(task_id, None) is not None:
            self.version += 1

    def stop(self, task_id: str) -> Task | None:
        """The task ended now (the ended task if it already was), None if unknown."""
        self.expire()
        task = self._running.get(task_id)
        if task is None:
            return self._ended.get(task_id)
        return self._end(task, self.clock(), "stopped")

    def expire(self) -> tuple[Task, ...]:
        """The running tasks whose time is up, ended ("expired") at their end time."""
        now = self.clock()
        due = [t for t in self._running.values() if t.ends_ns <= now]
        return tuple(self._end(t, t.ends_ns, "expired") for t in due)

    def _end(self, task: Task, at_ns: int, reason: str) -> Task:
        del self._running[task.id]
        ended = Task(task.id, task.spec, task.started_ns, task.started_wall_ns, at_ns, reason)
        self._ended[task.id] = ended
        while len(self._ended) > self.max_ended:
            self._ended.popitem(last=False)
        self.version += 1
        return ended
