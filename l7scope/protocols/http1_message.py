"""What remains of HTTP/1 outside the compiled parser: names other modules import.

Message reading (RFC 9112) is compiled code now (l7scope/dataplane/h1_reader.c); this module
only re-exports the method list the detectors share with it and names the counters each
direction's reader moves (as the shared counters dict spells them).
"""
from __future__ import annotations

from l7scope.dataplane._h1 import COUNTERS, KNOWN_METHODS  # noqa: F401

# counted per direction (the rest of COUNTERS are counted by the pairing)
READER_COUNTERS = ("http1_discarded_bytes", "http1_ignored_bytes", "http1_lost_heads")
assert {name[6:] for name in READER_COUNTERS} <= set(COUNTERS)

__all__ = ["KNOWN_METHODS", "READER_COUNTERS"]
