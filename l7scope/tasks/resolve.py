"""From running tasks to what the capture does: processes matched, the kernel's filter, and
which exchanges are kept and how they are sampled. Pure functions and frozen values.

Theory of operation
-------------------
``matching(selector, procs)`` picks the processes of a task from a process list (``Proc``:
pid, name, exe; the controller reads it from /proc and keeps it current with exec and exit
records). ``kernel_filter(tasks, resolved)`` is the union the kernel traces while tasks run:

    pids    every task's own pids, and the pids its names and exe patterns resolved to
    names   every task's names (the kernel also matches processes that start later by name)

``over_capacity`` says, in one line, when that union does not fit the kernel's tables.

``Coverage`` is the capture thread's view of the running tasks, swapped whole when they
change. ``admit(ex)`` keeps an Exchange only when some running task covers its process (the
kernel filter's twin in user space: records already in flight when the filter changed are
not kept); with no task running everything is admitted. ``rules_for(ex)`` gives the sampler
the covering tasks' rules merged into one rule set (``TaskRuleSet``), None for the default.
Packet captures name no process: there every running task covers every exchange, so tasks
shape sampling only.

Merging: of the covering tasks whose ``uri_regex`` matches the path (or that have none), the
rule that samples when any of them would: the smallest ``min_duration_ms``, ``when_4xx`` and
``when_5xx`` if any says so, the request or response text kept if any keeps it.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from l7scope.config import CaptureSettings, SamplingRule
from l7scope.procs.filters import kernel_name
from l7scope.tasks.model import Selector, Task

MAX_FILTER_PIDS = 1024  # the kernel's pid_filter map
MAX_FILTER_NAMES = 256  # the kernel's comm_filter map
MAX_MERGED_RULES = 256  # cached merged rules per Coverage


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    name: str | None
    exe: str | None

    def to_json(self) -> dict:
        return {"pid": self.pid, "name": self.name, "exe": self.exe}


def exe_regex(patterns: Iterable[str]) -> re.Pattern | None:
    """One compiled regex for shell-style path patterns (fnmatch), None for none."""
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def matches(selector: Selector, pid: int | None, names: Iterable[str | None],
            exe: str | None, exe_re: re.Pattern | None = None) -> bool:
    """Whether a process (pid, its names, executable) is one ``selector`` names."""
    if pid is not None and pid in selector.pids:
        return True
    wanted = {kernel_name(n) for n in selector.names}
    if any(n is not None and kernel_name(n) in wanted for n in names):
        return True
    exe_re = exe_re if exe_re is not None else exe_regex(selector.exe)
    return exe is not None and exe_re is not None and exe_re.match(exe) is not None


def matching(selector: Selector, procs: Iterable[Proc]) -> tuple[Proc, ...]:
    """The processes of ``procs`` that ``selector`` names, in pid order."""
    exe_re = exe_regex(selector.exe)
    found = [p for p in procs if matches(selector, p.pid, (p.name,), p.exe, exe_re)]
    return tuple(sorted(found, key=lambda p: p.pid))


def kernel_filter(tasks: Iterable[Task], resolved: dict[str, Iterable[Proc]]
                  ) -> tuple[frozenset[int], frozenset[str]]:
    """(pids, names) the kernel traces for these running tasks."""
    pids: set[int] = set()
    names: set[str] = set()
    for task in tasks:
        sel = task.spec.selector
        pids.update(sel.pids)
        pids.update(p.pid for p in resolved.get(task.id, ()))
        names.update(kernel_name(n) for n in sel.names)
    return frozenset(pids), frozenset(names)


def over_capacity(pids: frozenset[int], names: frozenset[str]) -> str | None:
    if len(pids) > MAX_FILTER_PIDS:
        return (f"the running tasks would trace {len(pids)} processes, more than the "
                f"{MAX_FILTER_PIDS} the kernel filter holds")
    if len(names) > MAX_FILTER_NAMES:
        return (f"the running tasks name {len(names)} processes, more than the "
                f"{MAX_FILTER_NAMES} names the kernel filter holds")
    return None


class TaskRuleSet:
    """The Sampler's rule set (``top_n``, ``select(path)``) for one set of covering tasks."""

    __slots__ = ("top_n", "_rules", "_cache")

    def __init__(self, top_n: int, tasks: tuple[Task, ...]):
        self.top_n = top_n
        self._rules = tuple(t.spec.rules for t in tasks)
        self._cache: dict[tuple[int, ...], SamplingRule] = {}

    def select(self, path: str | None) -> SamplingRule | None:
        target = (path or "").split("?", 1)[0]
        chosen = tuple(i for i, r in enumerate(self._rules)
                       if r.pattern is None or r.pattern.search(target))
        if not chosen:
            return None
        rule = self._cache.get(chosen)
        if rule is None:
            rule = merged([self._rules[i] for i in chosen])
            if len(self._cache) < MAX_MERGED_RULES:
                self._cache[chosen] = rule
        return rule


def merged(rules) -> SamplingRule:
    """One rule that samples whenever one of ``rules`` would (see the module's text)."""
    settings = CaptureSettings(capture_request=any(r.capture_request for r in rules),
                               capture_response=any(r.capture_response for r in rules))
    return SamplingRule(min_duration_ms=min(r.min_duration_ms for r in rules),
                        when_4xx=any(r.when_4xx for r in rules),
                        when_5xx=any(r.when_5xx for r in rules), settings=settings)


class _Covering:
    """One running task as the capture thread matches it."""

    __slots__ = ("task", "pids", "names", "exe_re")

    def __init__(self, task: Task, resolved: Iterable[Proc]):
        sel = task.spec.selector
        self.task = task
        self.pids = frozenset(sel.pids) | {p.pid for p in resolved}
        self.names = frozenset(kernel_name(n) for n in sel.names)
        self.exe_re = exe_regex(sel.exe)

    def covers(self, ex) -> bool:
        if ex.pid in self.pids:
            return True
        if self.names and (ex.name in self.names or ex.comm in self.names):
            return True
        return self.exe_re is not None and ex.exe is not None and \
            self.exe_re.match(ex.exe) is not None


class Coverage:
    """The running tasks as the capture thread sees them (replaced whole, never changed)."""

    def __init__(self, tasks: tuple[Task, ...] = (), resolved: dict | None = None,
                 top_n: int = 10, packets: bool = False):
        resolved = resolved or {}
        self.tasks = tasks
        self.packets = packets  # a packet source: no process to match, every task covers all
        self._top_n = top_n
        self._covering = tuple(_Covering(t, resolved.get(t.id, ())) for t in tasks)
        self._all = TaskRuleSet(top_n, tasks) if tasks else None
        self._sets: dict[tuple[str, ...], TaskRuleSet] = {}

    def covering(self, ex) -> tuple[Task, ...]:
        if self.packets or ex.pid is None:
            return self.tasks
        return tuple(c.task for c in self._covering if c.covers(ex))

    def admit(self, ex) -> bool:
        return not self.tasks or bool(self.covering(ex))

    def rules_for(self, ex) -> TaskRuleSet | None:
        if not self.tasks:
            return None
        tasks = self.covering(ex)
        if tasks == self.tasks:
            return self._all
        if not tasks:
            return None
        key = tuple(t.id for t in tasks)
        rules = self._sets.get(key)
        if rules is None:
            rules = TaskRuleSet(self._top_n, tasks)
            if len(self._sets) < MAX_MERGED_RULES:
                self._sets[key] = rules
        return rules
