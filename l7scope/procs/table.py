"""The process table: pid -> who that process is (name, exe, command line, container, service).

Theory of operation
-------------------
Records carry a pid (the thread-group id) and the name of the *thread* that made the syscall.
``ProcessTable.lookup(pid)`` answers with a frozen ``ProcessInfo`` for the process, loaded from
/proc the first time the pid is seen and cached, so the hot path is one dict hit.

An entry is in one of three states, and moves by these events:

    state      event                               next
    --------   ---------------------------------   -------------------------------------------
    (none)     lookup, /proc has the pid           alive    (count procs_loaded)
    (none)     lookup, /proc lacks it              missing  (count procs_not_found)
    alive      lookup after revalidate_s, same     alive    (checked again later)
               start time and name
    alive      ... start time differs              alive, reloaded (count procs_pid_reused)
    alive      ... name differs (exec, rename)     alive, reloaded (count procs_reloaded)
    alive      ... /proc lacks it, or on_exit      gone     (last info kept)
    alive      on_exec                             (none)   (reloaded at the next lookup)
    gone       lookup within grace_s of the exit   gone     (late records still get the name)
    gone       grace_s passed (lookup, expire())   (none)   (count procs_expired)
    gone       lookup finds a new process there    alive    (count procs_pid_reused)
    missing    lookup after revalidate_s           tried again
    any        over max_entries or max_bytes       (none)   least recently used first
                                                            (count procs_evicted)

A pid names one process only together with its start time (/proc/PID/stat field 22), so a
reused pid is told apart when the entry is revalidated (at most every ``revalidate_s`` per pid;
at once when exec/exit events arrive, from the kernel's sched_process_exec/exit tracepoints or
any other source). Times are CLOCK_MONOTONIC nanoseconds, as the kernel's records carry.

``version`` moves whenever an entry is added, dropped or marked gone: what ``lookup`` answers
for a pid changes only with it (or with a lookup that revalidates, which moves it when the
answer changes). Callers that derive something from lookups (the metrics' pair names) keep it
until the version moves, provided the pid is still looked up as often as before (the pipeline
looks up both ends of every exchange, so revalidation and expiry happen on time).

Bounds: entries and estimated bytes (strings plus a fixed overhead per entry); exec hints
(name and file an exec event carried, used when /proc is already gone) are bounded too.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from l7scope.procs import cgroup as cg
from l7scope.procs import cmdline as cl
from l7scope.procs import naming
from l7scope.procs.procfs import ProcFS, Stat

ENTRY_OVERHEAD_BYTES = 600
MAX_EXEC_HINTS = 4096
MAX_CONTAINER_NAMES = 4096
COUNTER_NAMES = ("procs_loaded", "procs_not_found", "procs_pid_reused", "procs_reloaded",
                 "procs_exited", "procs_expired", "procs_evicted", "procs_cmdline_cut")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """Who one process is. ``name`` is the thread-group leader's name, never a thread's."""

    pid: int
    name: str
    exe: str | None  # None for kernel threads and when the link cannot be read
    exe_deleted: bool  # the executable was replaced or removed since the process started
    cmdline: str  # arguments joined by spaces, secrets redacted, bounded (cut: ends "...")
    args: tuple[str, ...]  # the same arguments, redacted
    ppid: int | None
    start_time: int  # /proc/PID/stat field 22 (clock ticks after boot); 0 when unknown
    cgroup: str | None
    container_id: str | None  # 64 hex digits
    container_runtime: str | None
    container_name: str | None
    pod_uid: str | None
    systemd_unit: str | None
    service: str  # the grouping name (naming.service_name)


class _Entry:
    __slots__ = ("info", "start", "checked", "gone", "size")

    def __init__(self, info: ProcessInfo | None, checked: int, gone: int | None = None):
        self.info = info
        self.start = info.start_time if info else 0
        self.checked = checked
        self.gone = gone
        self.size = _size(info)


def _size(info: ProcessInfo | None) -> int:
    if info is None:
        return ENTRY_OVERHEAD_BYTES // 4
    strings = (info.name, info.exe, info.cmdline, info.cgroup, info.container_name,
               info.systemd_unit, info.service)
    return (ENTRY_OVERHEAD_BYTES + sum(len(s) for s in strings if s)
            + sum(len(a) + 56 for a in info.args))


class ProcessTable:
    """pid -> ProcessInfo from /proc and exec/exit events; bounded, LRU, counted."""

    def __init__(self, *, max_entries: int = 16_384, max_bytes: int = 32 << 20,
                 grace_s: float = 30.0, revalidate_s: float = 2.0,
                 max_cmdline_bytes: int = cl.MAX_CMDLINE_BYTES,
                 interpreters: Iterable[str] = naming.DEFAULT_INTERPRETERS,
                 container_names: Callable[[str], str | None] | None = naming.docker_container_name,
                 procfs: ProcFS | None = None, clock: Callable[[], int] = time.monotonic_ns,
                 counters: dict[str, int] | None = None):
        self.max_entries, self.max_bytes = max(1, max_entries), max(1, max_bytes)
        self._grace = int(grace_s * 1e9)
        self._revalidate = int(revalidate_s * 1e9)
        self._max_cmdline = max_cmdline_bytes
        self._interpreters = frozenset(interpreters)
        self._container_names = container_names
        self._names: OrderedDict[str, str | None] = OrderedDict()
        self._fs = procfs or ProcFS()
        self._clock = clock
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._gone: OrderedDict[int, int] = OrderedDict()  # pid -> exit time, in exit order
        self._hints: OrderedDict[int, tuple[str | None, str | None]] = OrderedDict()
        self._bytes = 0
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._shared = counters
        self.version = 0  # moves with every change of an entry (module docstring)

    # -- the hot path ------------------------------------------------------------------

    def lookup(self, pid: int) -> ProcessInfo | None:
        """The process ``pid`` (a thread id resolves to its process), or None when unknown."""
        entry = self._entries.get(pid)
        now = self._clock()
        if entry is not None and now - entry.checked < self._revalidate:
            self._entries.move_to_end(pid)
            if entry.gone is None or now - entry.gone <= self._grace:
                return entry.info
        return self._revalidate_or_load(pid, entry, now)

    def name(self, pid: int) -> str | None:
        """The process name of ``pid``, or None."""
        info = self.lookup(pid)
        return info.name if info else None

    def thread_name(self, tid: int) -> str | None:
        """The name of thread ``tid`` now (not cached: for display, not the hot path)."""
        return self._fs.comm(tid)

    # -- events from any source (kernel tracepoints, /proc polling, tests) -------------

    def on_exec(self, pid: int, ts: int | None = None, comm: str | None = None,
                filename: str | None = None) -> None:
        """``pid`` ran a new program: forget what it was; the next lookup reloads. ``comm``
        and ``filename`` (when the event carries them) name it if /proc is gone by then."""
        self._drop(pid)
        if comm or filename:
            self._hints[pid] = (comm, filename)
            self._hints.move_to_end(pid)
            while len(self._hints) > MAX_EXEC_HINTS:
                self._hints.popitem(last=False)

    def on_exit(self, pid: int, ts: int | None = None) -> None:
        """``pid`` exited at ``ts``: its info is kept ``grace_s`` for late records."""
        self._hints.pop(pid, None)
        entry = self._entries.get(pid)
        if entry is None:
            return
        if entry.info is None:
            self._drop(pid)
        elif entry.gone is None:
            self._mark_gone(pid, entry, self._clock() if ts is None else ts)

    def expire(self, now: int | None = None) -> int:
        """Drop the exited processes whose grace has passed; returns how many."""
        now = self._clock() if now is None else now
        n = 0
        while self._gone:
            pid, gone = next(iter(self._gone.items()))
            if now - gone <= self._grace:
                break
            self._drop(pid)
            self._count("procs_expired")
            n += 1
        return n

    # -- state ---------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    def memory(self) -> int:
        """Estimated bytes the table holds."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    # -- internals -----------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self._counters[name] += n
        if self._shared is not None:
            self._shared[name] = self._shared.get(name, 0) + n

    def _revalidate_or_load(self, pid: int, entry: _Entry | None, now: int) -> ProcessInfo | None:
        stat = self._fs.stat(pid)
        if entry is None or entry.info is None:
            return self._load(pid, stat, now)
        if stat is not None and stat.start_time != entry.start:
            self._count("procs_pid_reused")
            return self._load(pid, stat, now)
        if stat is None or entry.gone is not None:
            return self._keep_gone(pid, entry, now)
        entry.checked = now
        self._entries.move_to_end(pid)
        if stat.comm != entry.info.name:
            self._count("procs_reloaded")
            return self._load(pid, stat, now)
        return entry.info

    def _keep_gone(self, pid: int, entry: _Entry, now: int) -> ProcessInfo | None:
        """An entry whose process is gone: its info while in grace, then nothing."""
        if entry.gone is None:
            self._mark_gone(pid, entry, now)
        entry.checked = now
        if now - entry.gone <= self._grace:
            self._entries.move_to_end(pid)
            return entry.info
        self._drop(pid)
        self._count("procs_expired")
        return None

    def _mark_gone(self, pid: int, entry: _Entry, ts: int) -> None:
        self.version += 1
        entry.gone = ts
        self._gone[pid] = ts
        self._count("procs_exited")

    def _load(self, pid: int, stat: Stat | None, now: int,
              follow: bool = True) -> ProcessInfo | None:
        self._drop(pid)
        if stat is not None:
            tgid = self._fs.tgid(pid)
            if follow and tgid is not None and tgid != pid:  # a thread id (not cached)
                return self._leader(tgid, now)
            self._hints.pop(pid, None)
            info = self._read_info(pid, stat)
            self._count("procs_loaded")
            self._insert(pid, _Entry(info, now))
            return info
        hint = self._hints.get(pid)
        if hint is not None:
            info = self._hinted_info(pid, *hint)
            self._insert(pid, _Entry(info, now))
            self._mark_gone(pid, self._entries[pid], now)
            return info
        self._count("procs_not_found")
        self._insert(pid, _Entry(None, now))
        return None

    def _leader(self, tgid: int, now: int) -> ProcessInfo | None:
        entry = self._entries.get(tgid)
        if entry is not None and entry.info is not None and entry.gone is None:
            return entry.info
        return self._load(tgid, self._fs.stat(tgid), now, follow=False)

    def _read_info(self, pid: int, stat: Stat) -> ProcessInfo:
        fs = self._fs
        exe, deleted = fs.exe(pid)
        args, cut = cl.parse_cmdline(fs.cmdline(pid, self._max_cmdline + 1), self._max_cmdline)
        if cut:
            self._count("procs_cmdline_cut")
        group = cg.parse_cgroup(fs.cgroup(pid))
        cname = self._container_name(group.container_id)
        service = naming.service_name(
            stat.comm, args, container_id=group.container_id, container_name=cname,
            systemd_unit=group.systemd_unit, interpreters=self._interpreters)
        return ProcessInfo(
            pid=pid, name=stat.comm, exe=exe, exe_deleted=deleted,
            cmdline=cl.render(args, cut, self._max_cmdline), args=args, ppid=stat.ppid,
            start_time=stat.start_time, cgroup=group.path, container_id=group.container_id,
            container_runtime=group.runtime, container_name=cname, pod_uid=group.pod_uid,
            systemd_unit=group.systemd_unit, service=service)

    def _hinted_info(self, pid: int, comm: str | None, filename: str | None) -> ProcessInfo:
        """What an exec event said, for a process /proc no longer shows."""
        name = comm or (filename or "").rsplit("/", 1)[-1][:15] or "?"
        return ProcessInfo(
            pid=pid, name=name, exe=filename, exe_deleted=False, cmdline="", args=(),
            ppid=None, start_time=0, cgroup=None, container_id=None, container_runtime=None,
            container_name=None, pod_uid=None, systemd_unit=None, service=name)

    def _container_name(self, container_id: str | None) -> str | None:
        if container_id is None or self._container_names is None:
            return None
        if container_id in self._names:
            self._names.move_to_end(container_id)
            return self._names[container_id]
        name = self._container_names(container_id)
        self._names[container_id] = name
        while len(self._names) > MAX_CONTAINER_NAMES:
            self._names.popitem(last=False)
        return name

    def _insert(self, pid: int, entry: _Entry) -> None:
        self.version += 1
        self._entries[pid] = entry
        self._bytes += entry.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            if len(self._entries) == 1:
                break
            old = next(iter(self._entries))
            self._drop(old)
            self._count("procs_evicted")

    def _drop(self, pid: int) -> None:
        entry = self._entries.pop(pid, None)
        if entry is not None:
            self._bytes -= entry.size
            self.version += 1
        self._gone.pop(pid, None)
