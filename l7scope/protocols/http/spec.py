"""HTTP/1.x, HTTP/2 and gRPC as the registry sees them (protocols/base.py, ProtocolSpec).

The analyzers stay where they are (protocols/http1.py, protocols/http2.py with
http2_frames.py, the compiled frame splitter, and hpack.py); this module says how the agent finds, runs and judges them.
"""
from __future__ import annotations

from collections.abc import Callable

from l7scope.protocols.base import Failure, ProtocolSpec
from l7scope.protocols.http.detection import detect_http1, detect_http2
from l7scope.protocols.message import AnalyzerLimits, HttpMessage

# Exchange fields an HTTP record fills beyond base.COMMON_FIELDS (grpc_status: from a
# grpc-status header or trailer of the response, whatever the version)
HTTP_FIELDS = ("method", "path", "authority", "status", "grpc_status", "trace", "request_id")

NO_RESPONSE = Failure("no_response", is_error=True, sample=False)
STATUS_5XX = Failure("5xx", is_error=True)
STATUS_OVER_599 = Failure("status_over_599", is_error=True, sample=False)
GRPC_ERROR = Failure("grpc_error", is_error=True)
STATUS_4XX = Failure("4xx", is_error=False)


def http_failures(ex) -> tuple[Failure, ...]:
    """A call without a response, a 5xx (RFC 9110 15.6: the server failed) or a non-zero
    grpc-status is an error; a 4xx (15.5: the client's request was refused) is sampled with
    the 4xx but is not the server's error."""
    status = ex.status
    if status is not None and status < 400 and not ex.grpc_status:
        return ()  # the common case, first
    if status is None:
        first = (NO_RESPONSE,)
    elif status >= 500:
        first = (STATUS_5XX,) if status <= 599 else (STATUS_OVER_599,)
    else:
        first = ()
    if ex.grpc_status not in (None, 0):
        first += (GRPC_ERROR,)
    if status is not None and 400 <= status <= 499:
        first += (STATUS_4XX,)
    return first


def http_start_line(msg: HttpMessage, redact_path: Callable[[str], str]) -> str:
    version = msg.version or "HTTP/1.1"
    if msg.is_request:
        # request-line = method SP request-target SP HTTP-version  (RFC 9112 section 3)
        return f"{msg.method or '?'} {redact_path(msg.path or '?')} {version}"
    # status-line = HTTP-version SP status-code SP [ reason-phrase ]  (RFC 9112 section 4);
    # the reason phrase is not captured, so none is invented.
    return f"{version} {msg.status if msg.status is not None else '?'} "


def http1_kernel_prefixes() -> tuple[bytes, ...]:
    """request-line = method SP ... (RFC 9112 3), for every method the analyzer knows; a
    status line opens with its HTTP-version."""
    from l7scope.protocols.http1_message import KNOWN_METHODS

    return tuple(m.encode("ascii") + b" " for m in KNOWN_METHODS) + (b"HTTP/1.",)


def http2_kernel_prefixes() -> tuple[bytes, ...]:
    """The client connection preface (RFC 9113 3.4); frames have no fixed opening (the kernel
    tests a frame header's plausibility instead)."""
    from l7scope.protocols.http2_frames import PREFACE

    return (PREFACE,)


def new_http1(limits: AnalyzerLimits, *, seen_from_start: bool, counters: dict):
    from l7scope.protocols.http1 import Http1Analyzer

    return Http1Analyzer(limits, counters=counters)  # resynchronises: no need to see the start


def new_http2(limits: AnalyzerLimits, *, seen_from_start: bool, counters: dict):
    from l7scope.protocols.http2 import Http2Analyzer

    return Http2Analyzer(limits, seen_from_start=seen_from_start, counters=counters)


HTTP1 = ProtocolSpec(
    name="http1", detect=detect_http1, kernel_prefixes=http1_kernel_prefixes,
    analyzer=new_http1, records=("http1",), record_fields=HTTP_FIELDS,
    failures=http_failures, start_line=http_start_line,
    upgrades={"h2c": "http2"})  # RFC 7540 3.2 (h2c upgrade; gone from RFC 9113, still sent)

HTTP2 = ProtocolSpec(
    name="http2", detect=detect_http2, kernel_prefixes=http2_kernel_prefixes,
    analyzer=new_http2, records=("http2", "grpc"), record_fields=HTTP_FIELDS + ("stream_id",),
    failures=http_failures, start_line=http_start_line)
