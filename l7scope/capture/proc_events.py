"""Process exec and exit records (kinds L7_KIND_EXEC / L7_KIND_EXIT in bpf/l7scope.h) decoded.

The kernel's sched:sched_process_exec / sched_process_exit tracepoints, for the process table
(l7scope/procs/table.py): ``feed_process_table`` hands them to its ``on_exec`` / ``on_exit``.
Times are CLOCK_MONOTONIC ns, the records' clock.
"""
from __future__ import annotations

from dataclasses import dataclass

from l7scope.capture import wire_layout as L

HEADER_LEN = L.CONSTANTS["L7_EVENT_HDR_LEN"]
KIND_EXEC = L.ENUMS["l7_kind"]["L7_KIND_EXEC"]
KIND_EXIT = L.ENUMS["l7_kind"]["L7_KIND_EXIT"]
_COMM_AT = next(f[1] for f in L.L7_EVENT_FIELDS if f[0] == "comm")


@dataclass(frozen=True, slots=True)
class ProcessExec:
    """``pid`` ran a new program: ``filename`` as given to execve, ``comm`` its new name."""

    pid: int
    ts: int
    comm: str
    filename: str


@dataclass(frozen=True, slots=True)
class ProcessExit:
    """The process ``pid`` (its thread-group leader) exited."""

    pid: int
    ts: int
    comm: str


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def decode_proc(rec: bytes, kind: int, ts: int, tgid: int, data_len: int):
    """The event of an exec/exit record, None when its payload is cut short."""
    comm = _text(rec[_COMM_AT:_COMM_AT + 16])
    if kind == KIND_EXIT:
        return ProcessExit(tgid, ts, comm)
    if HEADER_LEN + data_len > len(rec):
        return None
    return ProcessExec(tgid, ts, comm, _text(rec[HEADER_LEN:HEADER_LEN + data_len]))


def feed_process_table(table, events) -> None:
    """Exec and exit events among ``events`` to a ProcessTable (others are passed over)."""
    for ev in events:
        t = type(ev)
        if t is ProcessExec:
            table.on_exec(ev.pid, ev.ts, ev.comm, ev.filename)
        elif t is ProcessExit:
            table.on_exit(ev.pid, ev.ts)
