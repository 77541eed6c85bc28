"""Checks and matching for the agent's process filters (``--comm``, ``--pid``).

The kernel keeps a task's name in 16 bytes (15 characters and a NUL; TASK_COMM_LEN), so a
``--comm`` longer than 15 bytes is matched by its first 15 (the kernel filter's key): the user
is warned and told the name that is matched. A ``--pid`` that names no process, or names a thread rather than a
process, is warned about too. Warnings are one line each, for the agent's start-up output.
"""
from __future__ import annotations

from collections.abc import Iterable

from l7scope.procs.procfs import ProcFS

COMM_MAX_BYTES = 15  # TASK_COMM_LEN - 1


def kernel_name(name: str) -> str:
    """The name as the kernel would keep it: its first 15 bytes (UTF-8, whole characters)."""
    raw = name.encode("utf-8")[:COMM_MAX_BYTES]
    return raw.decode("utf-8", "ignore")


def comm_filter_warnings(names: Iterable[str]) -> list[str]:
    """One warning line per ``--comm`` name the kernel cannot match as given."""
    out = []
    for name in names:
        if not name:
            out.append("--comm '': an empty name matches no process")
        elif len(name.encode("utf-8")) > COMM_MAX_BYTES:
            out.append(f"--comm {name!r}: the kernel keeps only the first {COMM_MAX_BYTES} "
                       f"bytes of a process name; tracing processes named "
                       f"{kernel_name(name)!r}")
    return out


def pid_warnings(pids: Iterable[int], procfs: ProcFS | None = None) -> list[str]:
    """One warning line per ``--pid`` that is no process now (absent, or a thread's id)."""
    fs = procfs or ProcFS()
    out = []
    for pid in pids:
        if pid <= 0 or fs.stat(pid) is None:
            out.append(f"--pid {pid}: no such process (nothing will be traced for it "
                       f"unless a process with that id starts)")
            continue
        tgid = fs.tgid(pid)
        if tgid is not None and tgid != pid:
            out.append(f"--pid {pid}: is a thread of process {tgid}; "
                       f"the filter matches process ids, use --pid {tgid}")
    return out


def process_names_to_pids(names: Iterable[str], procfs: ProcFS | None = None
                          ) -> dict[str, list[int]]:
    """``--comm`` names -> the ids of the running processes with that name (leader's name,
    compared as the kernel keeps it), in ascending order; a name with none maps to []."""
    fs = procfs or ProcFS()
    wanted = {kernel_name(n): n for n in names}
    out: dict[str, list[int]] = {n: [] for n in wanted.values()}
    for pid in sorted(fs.pids()):
        comm = fs.comm(pid)
        if comm is not None and comm in wanted:
            out[wanted[comm]].append(pid)
    return out
