"""The protocol registry: the one list of protocols the agent knows, and the questions asked
of it (protocols/base.py says what a protocol declares).

Adding a protocol: a folder under l7scope/protocols/ whose spec.py builds a ProtocolSpec, and
one line in PROTOCOLS below (docs/architecture.md, "Adding a protocol"). Order matters only
for detection: when two protocols are sure of the same bytes, the earlier one wins.
"""
from __future__ import annotations

from collections.abc import Callable

from l7scope.protocols.base import Analyzer, Failure, ProtocolSpec
from l7scope.protocols.http import HTTP1, HTTP2
from l7scope.protocols.message import AnalyzerLimits, HttpMessage

PROTOCOLS: tuple[ProtocolSpec, ...] = (
    HTTP1,
    HTTP2,
)
DEFAULT = HTTP1  # judges a record of a protocol no entry produces (none today)

BY_NAME: dict[str, ProtocolSpec] = {}
BY_RECORD: dict[str, ProtocolSpec] = {}


def install(protocols: tuple[ProtocolSpec, ...]) -> tuple[ProtocolSpec, ...]:
    """Make ``protocols`` the registry (tests, and a build that adds its own); returns the
    previous list. Names and record protocols must not repeat."""
    global PROTOCOLS, BY_NAME, BY_RECORD
    by_name = {p.name: p for p in protocols}
    by_record = {r: p for p in protocols for r in p.records}
    if len(by_name) != len(protocols) or len(by_record) != sum(len(p.records) for p in protocols):
        raise ValueError("a protocol name or record protocol is registered twice")
    previous, PROTOCOLS, BY_NAME, BY_RECORD = PROTOCOLS, tuple(protocols), by_name, by_record
    return previous


install(PROTOCOLS)


def get(name: str) -> ProtocolSpec:
    """The entry of a connection protocol ("http1"); KeyError for a name not registered."""
    return BY_NAME[name]


def for_record(protocol: str) -> ProtocolSpec:
    """The entry that produces Exchange records of this ``protocol`` ("grpc" -> HTTP/2's)."""
    return BY_RECORD.get(protocol, DEFAULT)


def new_analyzer(name: str, limits: AnalyzerLimits, *, seen_from_start: bool,
                 counters: dict[str, int]) -> Analyzer:
    return BY_NAME[name].analyzer(limits, seen_from_start=seen_from_start, counters=counters)


def upgrade_target(name: str, to: str) -> str | None:
    """The protocol that takes over a connection ``name`` switched to ``to`` ("h2c"), or None
    when the bytes after the switch are no protocol we know (websocket, a CONNECT tunnel)."""
    spec = BY_NAME.get(name)
    return spec.upgrades.get(to) if spec is not None else None


def failures(ex) -> tuple[Failure, ...]:
    return for_record(ex.protocol).failures(ex)


def is_error(ex) -> bool:
    """The call failed by its protocol's rule (HTTP: no response, 5xx, non-zero grpc-status)."""
    for failure in BY_RECORD.get(ex.protocol, DEFAULT).failures(ex):
        if failure.is_error:
            return True
    return False


def start_line(protocol: str, msg: HttpMessage, redact_path: Callable[[str], str]) -> str:
    return for_record(protocol).start_line(msg, redact_path)


def kernel_prefilter() -> tuple[bytes, ...]:
    """Every byte string a message of a registered protocol may open with, in registry order
    without repeats: each HTTP/1 method the analyzer knows followed by SP ("GET ",
    "M-SEARCH ", ...), "HTTP/1." (a status line), the HTTP/2 client preface. The kernel's
    prefilter is generated from this (cut to the length it compares); HTTP/2 frames have no
    fixed opening and are passed by the kernel's frame-header plausibility test."""
    out: dict[bytes, None] = {}
    for spec in PROTOCOLS:
        out.update(dict.fromkeys(spec.kernel_prefixes()))
    return tuple(out)
