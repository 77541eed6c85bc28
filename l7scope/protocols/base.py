"""The protocol seam: what every protocol analyzer offers and what every protocol declares.

Theory of operation
-------------------
A protocol is one ``ProtocolSpec`` value (its folder's ``spec.py``) listed once in
``registry.PROTOCOLS``. The rest of the agent asks the registry, never the protocol's modules:

    detection        ``detect(data, can_wait) -> Match | NEED_MORE | None`` on the first bytes of
                     a message (protocols/detect.py asks every protocol, see there);
                     ``kernel_prefixes``: the byte strings a message may open with, from which
                     the kernel's prefilter is generated (``registry.kernel_prefilter()``)
    analysis         ``analyzer(limits, seen_from_start=..., counters=...)`` -> an ``Analyzer``
                     for one connection; ``upgrades`` maps a ProtocolSwitched target ("h2c") to
                     the protocol that takes the connection over
    records          ``records``: the Exchange ``protocol`` values it produces ("http2" and
                     "grpc" from one analyzer); ``record_fields``: the Exchange contract fields
                     it fills beyond ``COMMON_FIELDS`` (the others stay null)
    errors           ``failures(exchange) -> tuple[Failure, ...]``: what went wrong with a call,
                     most serious first; a call is an error when it has a failure (metrics),
                     and sampling keeps it in the list its first failure of the wanted kind names
    rendering        ``start_line(message, redact_path) -> str``: the first line of a sampled
                     message's raw text

Analyzers are sans-IO and never raise on captured bytes: bad bytes become ``ParseError``
events (protocols/message.py) whose ``code`` is one of ``ParseErrorCode``.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from l7scope.protocols.message import AnalyzerEvent, AnalyzerLimits, HttpMessage

if TYPE_CHECKING:
    from l7scope.exchange import Exchange

NEED_MORE = "need_more"  # detection: could still be this protocol once more bytes arrive


@runtime_checkable
class Analyzer(Protocol):
    """One connection's analysis, both directions, fed in observed order (sans-IO).

    ``from_client`` says which end sent the bytes, ``ts`` is their monotonic time in ns.
    Every drop, shed or reset is also added, when it happens, to the ``counters`` dict given
    to the factory, as ``<protocol>_<name>``; ``counters()`` is this connection's view."""

    def feed(self, from_client: bool, data: bytes, ts: int) -> list[AnalyzerEvent]: ...

    def skip(self, from_client: bool, length: int, ts: int) -> list[AnalyzerEvent]:
        """A known-length hole: ``length`` bytes of this direction were not captured."""

    def eof(self, ts: int) -> list[AnalyzerEvent]:
        """The connection ended: pending exchanges come out (partial when unanswered)."""

    def memory(self) -> int:
        """Approximate bytes of state held now (for the table's budget); cheap to call."""

    def counters(self) -> dict[str, int]: ...


@runtime_checkable
class UpgradeTarget(Analyzer, Protocol):
    """An analyzer that can take over a connection another one switched (HTTP/2 after h2c)."""

    def upgraded_from(self, request: HttpMessage) -> None: ...


class AnalyzerFactory(Protocol):
    def __call__(self, limits: AnalyzerLimits, *, seen_from_start: bool,
                 counters: dict[str, int]) -> Analyzer: ...


class ParseErrorCode(enum.StrEnum):
    """``ParseError.code`` values. A StrEnum: equal to the plain strings analyzers emit."""

    # HTTP/1 (RFC 9112)
    BAD_REQUEST_LINE = "bad_request_line"
    BAD_STATUS_LINE = "bad_status_line"
    BAD_STATUS_CODE = "bad_status_code"
    HEADER_TOO_LARGE = "header_too_large"
    BAD_CHUNK_SIZE = "bad_chunk_size"
    BAD_CHUNK_DATA = "bad_chunk_data"
    INVALID_CONTENT_LENGTH = "invalid_content_length"
    INVALID_TRANSFER_ENCODING = "invalid_transfer_encoding"
    # HTTP/2 (RFC 9113) and HPACK (RFC 7541)
    RESYNC = "resync"
    RESYNC_ABANDONED = "resync_abandoned"
    FRAMING_LOST = "framing_lost"
    CONTINUATION_EXPECTED = "continuation_expected"
    CONTINUATION_UNEXPECTED = "continuation_unexpected"
    HEADER_BLOCK = "header_block"
    BAD_PADDING = "bad_padding"
    INTERNAL = "internal"


class Match(NamedTuple):
    """Detection: the bytes open a message of ``protocol``. ``sender_is_client`` is None when
    they do not tell (HTTP/2 frames). ``sure`` False: only when nothing better turns up."""

    protocol: str
    sender_is_client: bool | None
    sure: bool = True


Verdict = Match | str | None  # a Match, NEED_MORE, or None (not this protocol)


class Failure(NamedTuple):
    """One reason a call went wrong. ``is_error``: the call failed (counted in the pair's
    errors; sampled with ``when_5xx``, in the status_5xx list); else the request was refused
    (sampled with ``when_4xx``). ``sample`` False: an error for metrics, never a sampling
    reason (a call without a response)."""

    reason: str  # "5xx", "grpc_error", "4xx", "no_response", ...
    is_error: bool
    sample: bool = True


# Exchange contract fields every protocol fills (exchange.CONTRACT_FIELDS less the ones a
# protocol declares in record_fields)
COMMON_FIELDS = (
    "protocol", "side", "pid", "comm", "local", "remote", "peer_pid", "peer_name", "conn_id",
    "request_bytes", "response_bytes", "start_ns", "end_ns", "duration_ns", "time", "tls",
    "partial", "notes", "name", "exe", "container_id", "thread",
)


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """Everything the agent knows about one protocol (one registry line)."""

    name: str  # connection protocol, counter prefix ("http1" -> http1_parse_errors)
    detect: Callable[[bytes, bool], Verdict]
    kernel_prefixes: Callable[[], tuple[bytes, ...]]
    analyzer: AnalyzerFactory
    records: tuple[str, ...]
    record_fields: tuple[str, ...]
    failures: Callable[[Exchange], tuple[Failure, ...]]
    start_line: Callable[[HttpMessage, Callable[[str], str]], str]
    upgrades: dict[str, str] = field(default_factory=dict)
