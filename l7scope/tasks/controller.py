"""The tasks of a run put to work: the kernel filter, the process list, the capture thread's
view. The one place tasks meet I/O (/proc, the capture source).

Theory of operation
-------------------
Two threads use a ``TaskController``: the API's listener thread starts and stops tasks and
reads the list; the run loop's thread calls ``tick()`` each turn and
``on_process_event(ev)`` for every exec and exit record. One lock orders them; what the
capture path reads per Exchange (``admit``, ``rules_for``) is a ``Coverage`` value swapped
whole, so it takes no lock.

Each change goes the same way, under the lock: expire what is due; resolve the running
tasks' processes (a /proc scan when a task names processes by name or executable); compute
the kernel filter (resolve.kernel_filter); when it differs from the one in force, hand it to
the capture (``capture_filter(pids, names)``, which raises ValueError with one line when it
does not fit); then publish a new Coverage. A start whose filter does not fit is refused
(Invalid) and nothing changes. With no task running the filter is the default task's: the
command line's ``--pid``/``--comm`` (both empty: every process), and sampling is the
configuration's.

Keeping up: an exec record whose new program a running task names (by name or exe pattern)
adds its pid at once; an exit record removes a resolved pid at the next tick; every
``rescan_s`` the /proc scan runs again (processes forked without an exec, such as new nginx
workers). A later resolution that no longer fits keeps the filter in force and is counted
(``tasks_filter_over_capacity``) with its reason shown in the list.

A packet source (``packets``) names no process: tasks there only shape sampling (every running
task's rules apply to every exchange) and nothing is filtered; the API says so. A kernel
capture without a live filter (``capture_filter`` None) keeps only the tasks' processes'
exchanges in user space.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

from l7scope.capture.proc_events import ProcessExec, ProcessExit
from l7scope.config import SamplingConfig
from l7scope.outputs import Sink
from l7scope.procs.procfs import ProcFS
from l7scope.tasks import resolve as R
from l7scope.tasks.model import Invalid, Task, TaskSpec, TaskTable

MAX_SCAN = 32_768  # processes read from /proc per scan
MAX_SHOWN = 100  # resolved processes listed per task
RESCAN_S = 5.0
COUNTERS = ("tasks_started", "tasks_stopped", "tasks_expired", "tasks_refused",
            "tasks_filter_updates", "tasks_filter_over_capacity", "tasks_exchanges_outside")

CaptureFilter = Callable[[Collection[int], Collection[str]], None]


def scan_processes(fs: ProcFS, limit: int = MAX_SCAN) -> list[R.Proc]:
    """The processes /proc lists now (name, executable), at most ``limit``."""
    out = []
    for pid in sorted(fs.pids())[:limit]:
        name = fs.comm(pid)
        if name is None:
            continue  # gone meanwhile
        out.append(R.Proc(pid, name, fs.exe(pid)[0]))
    return out


class TaskController:
    def __init__(self, *, capture_filter: CaptureFilter | None, packets: bool = False,
                 default_pids: Collection[int] = (), default_comms: Collection[str] = (),
                 sampling: SamplingConfig = SamplingConfig(), procfs: ProcFS | None = None,
                 clock: Callable[[], int] = time.monotonic_ns,
                 wall_clock: Callable[[], int] = time.time_ns, rescan_s: float = RESCAN_S):
        self.table = TaskTable(clock, wall_clock)
        self._capture_filter = capture_filter
        self.default = (frozenset(default_pids), frozenset(default_comms))
        self.sampling = sampling
        self._fs = procfs or ProcFS()
        self._clock = clock
        self._rescan_ns = int(rescan_s * 1e9)
        self._lock = threading.Lock()
        self._resolved: dict[str, tuple[R.Proc, ...]] = {}
        self._applied = self.default  # the filter in force (the source opened with it)
        self._scanned_ns = 0
        self._dirty = False
        self.problem: str | None = None  # why the latest resolution is not in force
        self._counts = dict.fromkeys(COUNTERS, 0)
        self.packets = packets  # a packet source: no process is named, nothing filtered
        self.coverage = R.Coverage(packets=packets)

    # -- the capture thread's view (no lock) ---------------------------------------------

    def admit(self, ex) -> bool:
        if self.coverage.admit(ex):
            return True
        self._counts["tasks_exchanges_outside"] += 1
        return False

    def rules_for(self, ex):
        return self.coverage.rules_for(ex)

    @property
    def filter_kind(self) -> str:
        """Where processes are filtered: "kernel" (live), "user space" (only exchanges of
        the tasks' processes are kept; a capture without a live filter), "none" (packets)."""
        if self.packets:
            return "none"
        return "kernel" if self._capture_filter is not None else "user space"

    # -- the API thread -------------------------------------------------------------------

    def start(self, spec: TaskSpec) -> Task | Invalid:
        with self._lock:
            self._expire()
            result = self.table.can_start() or self._start(spec)
            if isinstance(result, Invalid):
                self._counts["tasks_refused"] += 1
            return result

    def _start(self, spec: TaskSpec) -> Task | Invalid:
        task = self.table.start(spec)
        running = self.table.running()
        procs = self._scan(running)  # fresh: every running task is resolved anew
        resolved = {t.id: R.matching(t.spec.selector, procs) for t in running}
        problem = self._apply(running, resolved)
        if problem is not None:
            self.table.withdraw(task.id)  # nothing else saw it
            return Invalid(problem)
        self._resolved = resolved
        self._counts["tasks_started"] += 1
        self._publish()
        return task

    def stop(self, task_id: str) -> Task | None:
        with self._lock:
            self._expire()
            was_running = any(t.id == task_id for t in self.table.running())
            task = self.table.stop(task_id)
            if was_running and task is not None:
                self._counts["tasks_stopped"] += 1
                self._settle()
            return task

    # -- the loop thread ------------------------------------------------------------------

    def tick(self) -> None:
        now, running = self._clock(), self.coverage.tasks  # published: read without the lock
        due = any(t.ends_ns <= now for t in running)
        rescan = self._wants_scan(running) and \
            now - self._scanned_ns >= self._rescan_ns
        if not (due or rescan or self._dirty):
            return
        with self._lock:
            self._expire()
            if rescan:
                self._rescan()
            if self._dirty:
                self._settle()

    def on_process_event(self, ev) -> None:
        if not self.coverage.tasks:
            return
        with self._lock:
            if type(ev) is ProcessExec:
                self._on_exec(ev)
            elif type(ev) is ProcessExit:
                self._on_exit(ev.pid)

    def _on_exec(self, ev: ProcessExec) -> None:
        exe = self._fs.exe(ev.pid)[0] or ev.filename
        proc = R.Proc(ev.pid, ev.comm, exe)
        changed = False
        for task in self.table.running():
            have = self._resolved.get(task.id, ())
            if R.matching(task.spec.selector, (proc,)) and all(p.pid != ev.pid for p in have):
                self._resolved[task.id] = tuple(sorted(have + (proc,), key=lambda p: p.pid))
                changed = True
        if changed:
            self._settle()

    def _on_exit(self, pid: int) -> None:
        for task_id, procs in list(self._resolved.items()):
            if any(p.pid == pid for p in procs):
                self._resolved[task_id] = tuple(p for p in procs if p.pid != pid)
                self._dirty = True

    # -- internals (lock held) --------------------------------------------------------------

    def _expire(self) -> None:
        ended = self.table.expire()
        if ended:
            self._counts["tasks_expired"] += len(ended)
            self._settle()

    def _settle(self) -> None:
        """The filter and the view for the running tasks as resolved now."""
        running = self.table.running()
        self._resolved = {t.id: self._resolved.get(t.id, ()) for t in running}
        self.problem = self._apply(running, self._resolved)
        if self.problem is not None:
            self._counts["tasks_filter_over_capacity"] += 1
        self._dirty = False
        self._publish()

    def _rescan(self) -> None:
        running = self.table.running()
        procs = self._scan(running)
        resolved = {t.id: R.matching(t.spec.selector, procs) for t in running}
        if resolved != self._resolved:
            self._resolved = resolved
            self._dirty = True

    def _scan(self, tasks) -> list[R.Proc]:
        self._scanned_ns = self._clock()
        if not self._wants_scan(tasks):
            pids = sorted({pid for t in tasks for pid in t.spec.selector.pids})
            procs = (R.Proc(pid, self._fs.comm(pid), self._fs.exe(pid)[0]) for pid in pids)
            return [p for p in procs if p.name is not None]
        return scan_processes(self._fs)

    @staticmethod
    def _wants_scan(tasks) -> bool:
        return any(t.spec.selector.names or t.spec.selector.exe for t in tasks)

    def _apply(self, running, resolved) -> str | None:
        """The kernel filter for ``running`` put in force; the reason when it cannot be."""
        wanted = R.kernel_filter(running, resolved) if running else self.default
        problem = R.over_capacity(*wanted)
        if problem is not None:
            return problem
        if wanted == self._applied or self._capture_filter is None:
            self._applied = wanted
            return None
        try:
            self._capture_filter(sorted(wanted[0]), sorted(wanted[1]))
        except ValueError as e:
            return str(e).splitlines()[0] if str(e) else "the capture refused the filter"
        self._applied = wanted
        self._counts["tasks_filter_updates"] += 1
        return None

    def _publish(self) -> None:
        self.coverage = R.Coverage(self.table.running(), dict(self._resolved),
                                   top_n=self.sampling.top_n, packets=self.packets)

    # -- reading --------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        out = dict(self._counts)
        out["tasks_running"] = len(self.table.running())
        return out

    def snapshot(self) -> tuple[tuple[Task, ...], tuple[Task, ...], dict, tuple, str | None]:
        """(running, ended, resolved, (pids, names) in force, problem), expired first."""
        with self._lock:
            self._expire()
            return (self.table.running(), self.table.ended(), dict(self._resolved),
                    self._applied, self.problem)

    def processes(self, limit: int) -> list[R.Proc]:
        """The host's processes now (name and executable), for choosing a task's."""
        return scan_processes(self._fs, limit=limit)


class TasksSink(Sink):
    """The controller in the run loop: its tick each turn, its counters with the agent's."""

    name = "tasks"

    def __init__(self, controller: TaskController):
        self.controller = controller

    def on_tick(self, now_wall_ns, counters_fn) -> None:
        self.controller.tick()

    def counters(self) -> dict:
        return self.controller.counters()
