"""Reading one process's facts from /proc: the only I/O of the process table.

Every read is bounded (a few KiB) and every failure is a value (None or empty): a process can
exit between any two reads, and a kernel thread has no executable or command line. The parsers
(``parse_stat``, ``parse_tgid``) are pure functions of the text so they are tested on strings.
``root`` is "/proc" on a host; tests point it at a directory laid out the same way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from l7scope.protocols.wirenum import parse_decimal

MAX_STAT_BYTES = 4096
MAX_STATUS_BYTES = 2048
MAX_CGROUP_BYTES = 16 * 1024
MAX_COMM_BYTES = 64
DELETED_SUFFIX = " (deleted)"


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of /proc/PID/stat the table uses."""

    comm: str  # field 2: the task's name (for PID = the process id: the leader's)
    ppid: int  # field 4
    start_time: int  # field 22: clock ticks after boot; with the pid, names one process


def parse_stat(text: str) -> Stat | None:
    """/proc/PID/stat -> Stat, None when malformed. The name sits between the first "(" and
    the LAST ")" (a name may itself hold ")" and spaces); fields 3.. follow it."""
    open_, close = text.find("("), text.rfind(")")
    if open_ < 0 or close < open_:
        return None
    fields = text[close + 1:].split()
    if len(fields) < 20:
        return None
    ppid, start = parse_decimal(fields[1], 10), parse_decimal(fields[19], 20)
    if ppid is None or start is None:
        return None
    return Stat(comm=text[open_ + 1:close], ppid=ppid, start_time=start)


def parse_tgid(text: str) -> int | None:
    """The ``Tgid:`` of /proc/PID/status (the process a thread id belongs to), else None."""
    for line in text.splitlines():
        if line.startswith("Tgid:"):
            return parse_decimal(line[5:].strip(), 10)
    return None


class ProcFS:
    """Bounded reads of /proc/PID/* under ``root``; failures are None or empty."""

    def __init__(self, root: str = "/proc"):
        self.root = root

    def _read(self, pid: int, name: str, limit: int) -> bytes | None:
        try:
            with open(f"{self.root}/{pid}/{name}", "rb") as f:
                return f.read(limit)
        except OSError:  # gone, a kernel thread's exe, permission: the same to us
            return None

    def _text(self, pid: int, name: str, limit: int) -> str | None:
        raw = self._read(pid, name, limit)
        return None if raw is None else raw.decode("utf-8", "replace")

    def stat(self, pid: int) -> Stat | None:
        text = self._text(pid, "stat", MAX_STAT_BYTES)
        return None if text is None else parse_stat(text)

    def tgid(self, pid: int) -> int | None:
        text = self._text(pid, "status", MAX_STATUS_BYTES)
        return None if text is None else parse_tgid(text)

    def comm(self, pid: int) -> str | None:
        text = self._text(pid, "comm", MAX_COMM_BYTES)
        return None if text is None else text.rstrip("\n")

    def exe(self, pid: int) -> tuple[str | None, bool]:
        """(path, deleted): the executable; deleted when the file was replaced or removed."""
        try:
            path = os.readlink(f"{self.root}/{pid}/exe")
        except OSError:
            return None, False
        if path.endswith(DELETED_SUFFIX):
            return path[: -len(DELETED_SUFFIX)], True
        return path, False

    def cmdline(self, pid: int, limit: int) -> bytes:
        return self._read(pid, "cmdline", limit) or b""

    def cgroup(self, pid: int) -> str:
        return self._text(pid, "cgroup", MAX_CGROUP_BYTES) or ""

    def pids(self) -> list[int]:
        """The process ids /proc lists now (threads are not listed)."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        return [int(n) for n in names if n.isdigit() and len(n) <= 10]
