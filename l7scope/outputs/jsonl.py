"""JSON Lines output: one Exchange record (or any dict) per line."""
from __future__ import annotations

import json
import sys

from l7scope.exchange import Exchange
from l7scope.outputs.files import DEFAULT_MODE, open_output

_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class JsonlSink:
    """Writes one Exchange (or any dict) per line to a path or '-' (stdout).

    A file is opened by ``open_output``: created ``mode`` (0600), never through a symbolic
    link, refused (OSError, one-line ``strerror``) when it is not a regular file or belongs to
    another user in a sticky shared directory."""

    def __init__(self, path: str, with_headers: bool = False, redact=None, *,
                 mode: int = DEFAULT_MODE):
        self.path = path
        self.with_headers = with_headers
        self.redact = redact
        self._f = sys.stdout if path == "-" else open_output(path, mode)
        self.written = 0

    def __call__(self, ex: Exchange) -> None:
        self.write(ex.to_dict(self.with_headers, self.redact))

    def write(self, d: dict) -> None:
        self._f.write(_ENCODE(d) + "\n")
        self.written += 1

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.flush()
        if self._f is not sys.stdout:
            self._f.close()
