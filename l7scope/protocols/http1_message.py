"""What remains of HTTP/1 outside the compiled parser: the names other modules import.

Message reading (RFC 9112) is compiled code now (l7scope/dataplane/h1_reader.c); this module
only re-exports the method list the detectors share with it.
"""
from __future__ import annotations

from l7scope.dataplane._h1 import KNOWN_METHODS  # noqa: F401

__all__ = ["KNOWN_METHODS"]
