"""JSON Lines output: one Exchange record (or any dict) per line, to stdout or a rotated file.

Theory of operation
-------------------
An output is named ``jsonl:SPEC`` on the command line; ``parse_spec(SPEC)`` gives a frozen
``JsonlSpec``. SPEC is ``-`` (stdout) or ``PATH`` with optional settings after the last ``?``:

    jsonl:/var/log/l7scope/exchanges.jsonl?max_mb=100&keep=5

- ``max_mb``: rotate once the file would pass this many MiB (a decimal number; 0 = never).
  Default 100.
- ``keep``: rotated files kept, ``PATH.1`` (newest) to ``PATH.<keep>`` (oldest). Default 5.

A path that itself holds a ``?`` ends with one more: ``jsonl:/data/a?b.jsonl?``.

Rotation happens between two lines, never inside one, before the line that would take the
file past ``max_bytes`` (a single line longer than that is written whole to a fresh file):
``PATH.<keep-1>`` is renamed to ``PATH.<keep>`` (the oldest, replaced, is gone), ... ``PATH``
to ``PATH.1``, and a new ``PATH`` is opened by ``open_output`` (mode 0600, never through a
symbolic link, regular files only: see outputs/files.py). Renames move directory entries and
keep each file's mode; nothing is opened but ``PATH``. Only a regular file rotates (``/dev/null``
does not). A rotation that fails (a rename or the new open refused) is counted and the line goes
to the file already open; the next try is after another ``max_bytes``.

``reopen()`` closes and opens ``PATH`` again: after an external tool (logrotate without
``copytruncate``) moved the file away, SIGHUP makes the agent write to a new file at the
path. stdout is never closed, rotated or reopened.

An Exchange's line is written by compiled code (dataplane/_jsonlmodule.c), byte for byte the
line the json module writes for ``Exchange.to_dict()``; a value it has no exact form for (a
float, say) makes it step aside and the json module writes that line. ``--with-headers``
lines and other records (dicts) are written by the json module.

A batch of Exchanges (``write_exchanges``, the pipeline's batch) is encoded by one compiled
call into one str and written at once; the call stops before a line that would need a
rotation (the rule above, line by line), the sink rotates and goes on from that line, so the
files hold exactly the lines, in the places, that writing them one by one gives. A record the
encoder fails on (an exception other than TypeError, out of a to_dict()) sends the rest of
the batch through ``__call__`` one record at a time: that record's exception is returned to the
pipeline (counted as internal_error_output) and the others are written.

Counters (``counters()``): ``jsonl_rotations``, ``jsonl_rotated_files_removed`` (the oldest,
past ``keep``), ``jsonl_rotation_failed``, ``jsonl_reopens``, ``jsonl_reopen_failed``.
"""
from __future__ import annotations

import json
import math
import os
import stat
import sys
from dataclasses import dataclass

from l7scope.dataplane._jsonl import Encoder
from l7scope.exchange import Exchange
from l7scope.outputs import each
from l7scope.outputs.files import DEFAULT_MODE, open_output

# ensure_ascii (the default) keeps every line pure ASCII: len(line) is its size in bytes
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _exchange_encoder() -> Encoder:
    """The compiled encoder for Exchange.to_dict()'s keys, in its order (taken from it)."""
    blank = Exchange(protocol="", side=None, pid=None, comm=None, local=None, remote=None,
                     peer_pid=None, conn_id=0, stream_id=None, method=None, path=None,
                     authority=None, status=None, grpc_status=None, request_bytes=0,
                     response_bytes=0, start_ns=0, end_ns=0, time="", trace=None,
                     request_id=None, tls=False, partial=False, notes=())
    at = Exchange._fields.index
    fields = tuple((k, -1 if k == "duration_ns" else at(k)) for k in blank.to_dict())
    return Encoder(fields, at("start_ns"), at("end_ns"), at("trace"))


_EXCHANGE_LINE = _exchange_encoder()


def _json_line(ex: Exchange) -> str:
    """The json module's line for a record (the compiled encoder's fallback)."""
    return _ENCODE(ex.to_dict())


def exchange_line(ex: Exchange) -> str:
    """The record's JSON line (no newline), as ``_json_line`` writes it."""
    try:
        return _EXCHANGE_LINE(ex)
    except TypeError:  # a value the compiled encoder leaves to the json module
        return _json_line(ex)


_LINES = _EXCHANGE_LINE.lines

DEFAULT_MAX_MB = 100
DEFAULT_KEEP = 5
MAX_KEEP = 1000
_MIB = 1 << 20


@dataclass(frozen=True)
class JsonlSpec:
    """Where a JSON Lines output goes and when it rotates (``max_bytes`` 0: never)."""

    path: str
    max_bytes: int = DEFAULT_MAX_MB * _MIB
    keep: int = DEFAULT_KEEP


def parse_spec(text: str) -> JsonlSpec:
    """``PATH[?max_mb=N&keep=K]`` or ``-``; ValueError with a one-line reason otherwise."""
    path, sep, query = text.rpartition("?")
    if not sep:
        path, query = text, ""
    if not path:
        raise ValueError("expected jsonl:PATH (PATH '-' is stdout)")
    opts = _options(query)
    if path == "-":
        if opts:
            raise ValueError("stdout ('-') takes no settings (max_mb, keep are for files)")
        return JsonlSpec("-", 0, 0)
    max_bytes = _max_bytes(opts.pop("max_mb", str(DEFAULT_MAX_MB)))
    keep = _keep(opts.pop("keep", str(DEFAULT_KEEP)))
    return JsonlSpec(path, max_bytes, keep)


def _options(query: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        name, eq, value = item.partition("=")
        if not eq or name not in ("max_mb", "keep"):
            raise ValueError(f"unknown setting {item!r} (settings: max_mb=MiB, keep=FILES)")
        if name in opts:
            raise ValueError(f"setting {name!r} given twice")
        opts[name] = value
    return opts


def _max_bytes(value: str) -> int:
    try:
        mb = float(value)
    except ValueError:
        mb = math.nan
    if not math.isfinite(mb) or mb < 0 or mb > 1 << 20:
        raise ValueError(f"max_mb={value!r}: expected a number of MiB, 0 (never) to 1048576")
    return int(mb * _MIB) if mb else 0


def _keep(value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_KEEP:
        raise ValueError(f"keep={value!r}: expected a whole number of files, 1 to {MAX_KEEP}")
    return int(value)


class JsonlSink:
    """Writes one Exchange (or any dict) per line to a path or '-' (stdout).

    A file is opened by ``open_output``: created ``mode`` (0600), never through a symbolic
    link, refused (OSError, one-line ``strerror``) when it is not a regular file or belongs to
    another user in a sticky shared directory. ``max_bytes``/``keep``: rotation (see the
    module docstring); ``max_bytes=0`` never rotates."""

    def __init__(self, path: str, with_headers: bool = False, redact=None, *,
                 mode: int = DEFAULT_MODE, max_bytes: int = 0, keep: int = DEFAULT_KEEP):
        self.path = path
        self.with_headers = with_headers
        self.redact = redact
        self.mode = mode
        self.max_bytes = max_bytes if path != "-" else 0
        self.keep = max(1, keep)
        self.written = 0
        self._counts = dict.fromkeys(("rotations", "rotated_files_removed", "rotation_failed",
                                      "reopens", "reopen_failed"), 0)
        self._f = sys.stdout if path == "-" else None
        self._size = 0
        if self._f is None:
            self._open()

    @classmethod
    def from_spec(cls, spec: JsonlSpec | str, **kw) -> JsonlSink:
        """A sink for ``spec`` (a JsonlSpec, or its text as given after ``jsonl:``)."""
        if isinstance(spec, str):
            spec = parse_spec(spec)
        return cls(spec.path, max_bytes=spec.max_bytes, keep=spec.keep, **kw)

    def __call__(self, ex: Exchange) -> None:
        if self.with_headers:
            self.write(ex.to_dict(True, self.redact))
        else:
            self._line(exchange_line(ex) + "\n")

    def write_exchanges(self, batch: list) -> list[Exception]:
        """Every record of ``batch`` as a line (module docstring); the exceptions of the
        records that could not be written (others are)."""
        if self.with_headers:
            return each(self, batch)
        i, n, check = 0, len(batch), True
        while i < n:
            try:
                text, end, rotate = _LINES(batch, i, self._size, self.max_bytes, check,
                                           _json_line)
            except Exception:  # noqa: BLE001 - the rest one by one: the failing record counted
                return each(self, batch[i:])
            if text:
                self._f.write(text)
                self._size += len(text)
                self.written += end - i
            i, check = end, not rotate
            if rotate:
                self._rotate()  # the line at ``end`` then goes in unchecked, as _line does
        return []

    def write(self, d: dict) -> None:
        self._line(_ENCODE(d) + "\n")

    def _line(self, line: str) -> None:
        if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        self._f.write(line)
        self._size += len(line)
        self.written += 1

    def flush(self) -> None:
        self._f.flush()

    def reopen(self) -> str | None:
        """Open PATH again (SIGHUP); None, or a one-line reason (the old file stays in use)."""
        if self._f is sys.stdout:
            return None
        old = self._f
        old.flush()
        try:
            self._open()
        except OSError as e:
            self._f = old
            self._counts["reopen_failed"] += 1
            return f"cannot reopen output {self.path}: {e.strerror or e}"
        old.close()
        self._counts["reopens"] += 1
        return None

    def counters(self) -> dict[str, int]:
        return {f"jsonl_{k}": v for k, v in self._counts.items()}

    def close(self) -> None:
        self._f.flush()
        if self._f is not sys.stdout:
            self._f.close()

    def _open(self) -> None:
        f = open_output(self.path, self.mode)
        st = os.fstat(f.fileno())
        self._f, self._size = f, st.st_size
        self._regular = stat.S_ISREG(st.st_mode)

    def _rotate(self) -> None:
        if not self._regular:
            return
        old = self._f
        old.flush()
        try:
            removed = self._shift()
            self._open()
        except OSError:
            self._f = old
            self._size = 0  # next try after another max_bytes
            self._counts["rotation_failed"] += 1
            return
        old.close()
        self._counts["rotations"] += 1
        self._counts["rotated_files_removed"] += removed

    def _shift(self) -> int:
        """PATH.<n-1> -> PATH.<n> ... PATH -> PATH.1; 1 when PATH.<keep> was replaced."""
        names = [self.path] + [f"{self.path}.{n}" for n in range(1, self.keep + 1)]
        removed = int(os.path.lexists(names[-1]) and os.path.lexists(names[-2]))
        for n in range(self.keep - 1, -1, -1):
            if os.path.lexists(names[n]):  # PATH itself may have been moved away already
                os.replace(names[n], names[n + 1])
        return removed
