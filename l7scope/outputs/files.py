"""Output files opened safely: the agent runs as root and writes what the traffic carried.

Theory of operation
-------------------
``open_output(path, mode)`` opens (creating when absent) a file for appending with
``O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK``:

- a new file is created with ``mode`` (0600 by default, further narrowed by the umask), so
  the exchanges it holds are not world-readable;
- ``O_NOFOLLOW``: when the last component of the path is a symbolic link the open fails
  (ELOOP) and the output is refused - a user who plants ``/tmp/x.jsonl`` as a link to a
  root-only file does not make the agent append to that file;
- ``O_NONBLOCK`` only for the open itself, so a FIFO planted at the path cannot hang the
  agent; it is cleared again once the file is known to be regular;
- after the open, ``fstat`` of the descriptor (not of the path, which could change between
  two calls) decides: anything but a regular file is refused; in a sticky directory that
  others can write to (``/tmp``) a file owned by another user is refused, as the kernel's
  ``protected_regular`` does - that user could read or swap what we write.

An existing regular file that we own keeps working and keeps its mode. Every refusal is an
``OSError`` whose ``strerror`` is one line saying why; ``path`` is its ``filename``.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import TextIO

DEFAULT_MODE = 0o600

_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
          | os.O_NONBLOCK)


def open_output(path: str, mode: int = DEFAULT_MODE) -> TextIO:
    """A text file (UTF-8) appending to ``path``; OSError with a one-line reason if refused."""
    fd = _open_fd(path, mode)
    try:
        _check(fd, path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def _open_fd(path: str, mode: int) -> int:
    try:
        return os.open(path, _FLAGS, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "is a symbolic link; refusing to follow it",
                          path) from None
        if e.errno == errno.ENXIO:  # O_NONBLOCK open of a FIFO nobody reads
            raise OSError(errno.ENXIO, "is not a regular file", path) from None
        raise


def _check(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if _is_dev_null(st):
        return  # `--output jsonl:/dev/null` (benchmarks, dry runs) is a deliberate choice
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "is not a regular file", path)
    if st.st_uid != os.geteuid() and _shared_sticky_dir(path):
        raise OSError(errno.EPERM, f"is owned by another user (uid {st.st_uid}) in a "
                      "sticky world-writable directory; refusing to write to it", path)


def _is_dev_null(st: os.stat_result) -> bool:
    """The null device itself (character device 1:3 owned by root), whatever its path."""
    return stat.S_ISCHR(st.st_mode) and st.st_uid == 0 and st.st_rdev == os.makedev(1, 3)


def _shared_sticky_dir(path: str) -> bool:
    """The directory holding ``path`` is sticky and writable by others (like /tmp)."""
    parent = os.path.dirname(os.path.abspath(path)) or "/"
    try:
        st = os.stat(parent)
    except OSError:
        return True  # cannot tell: assume the worst
    return bool(st.st_mode & stat.S_ISVTX) and bool(st.st_mode & (stat.S_IWOTH | stat.S_IWGRP))
