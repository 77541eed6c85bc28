"""Trace context read from captured request headers.

Theory of operation
-------------------
``extract(headers)`` looks at the headers of one request (HTTP/1 or HTTP/2 alike; names are
compared case-insensitively) and returns the distributed-trace context the caller propagated,
plus the ``x-request-id`` value. Three propagation formats are understood:

* SkyWalking ``sw8`` (cross-process propagation headers protocol v3), provider "skywalking";
* W3C Trace Context ``traceparent`` (+ ``tracestate``), provider "w3c";
* Zipkin B3, single header ``b3`` or the ``X-B3-*`` multi headers, provider "zipkin".

Precedence when a request carries several: sw8, then traceparent, then b3 single, then B3
multi. A header that is present but malformed is skipped (its reason is counted) and the next
format in that order is tried, so a request with a damaged sw8 and a valid traceparent yields
the W3C context.

Captured bytes are untrusted: nothing here raises on bad input. Every rejection adds one to
``counters[reason]`` (reasons are short snake_case strings such as ``sw8_bad_base64``).
Values are never guessed: an id that fails validation means no context from that header.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Iterable

from l7scope.exchange import TraceContext
from l7scope.protocols.wirenum import parse_hex

MAX_REQUEST_ID_LEN = 256
MAX_TRACESTATE_LEN = 1024  # W3C: vendors MUST accept at least 512 chars (32 members)
MAX_SW8_LEN = 2048

_LOWER_HEX = re.compile(r"[0-9a-f]+")
_DECIMAL = re.compile(r"[0-9]{1,10}")

_WANTED = frozenset({
    "sw8", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-request-id",
})
HEADER_NAMES = _WANTED  # all extract() reads: the compiled builder calls it only when one is there
_WANTED_LENGTHS = frozenset(map(len, _WANTED))  # str.lower() keeps the length of ASCII names


def extract(headers: Iterable[tuple[str, str]], counters: Counter | None = None,
            ) -> tuple[TraceContext | None, str | None]:
    """Return (trace context or None, x-request-id or None) from request headers."""
    found = _collect(headers)
    if not found:  # most requests: no format has anything to read, nothing to count
        return None, None
    if counters is None:
        counters = Counter()
    trace = None
    for parse in (_from_sw8, _from_traceparent, _from_b3_single, _from_b3_multi):
        trace = parse(found, counters)
        if trace is not None:
            break
    return trace, _request_id(found, counters)


def _collect(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Values of the headers we read, by lowercase name, in arrival order, OWS stripped."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if len(name) in _WANTED_LENGTHS:  # the length first: most names are ruled out by it
            key = name.lower()
            if key in _WANTED:
                found.setdefault(key, []).append(value.strip(" \t"))
    return found


def _request_id(found: dict[str, list[str]], counters: Counter) -> str | None:
    values = found.get("x-request-id")
    if not values:
        return None
    value = values[0]
    if len(value) > MAX_REQUEST_ID_LEN:
        counters["x_request_id_too_long"] += 1
        return None
    return value


# --- SkyWalking sw8 ----------------------------------------------------------------------
# Cross Process Propagation Headers Protocol v3: "The header value is composed of 8 fields,
# split by -: 1. Sample (0 or 1) 2. Trace Id (BASE64 encoded) 3. Parent trace segment Id
# (BASE64) 4. Parent span Id (integer) 5. Parent service (BASE64) 6. Parent service instance
# (BASE64) 7. Parent endpoint (BASE64) 8. Target address used at client side (BASE64)."

_SW8_EXTRA_KEYS = ("parent_service", "parent_service_instance", "parent_endpoint",
                   "target_address")


def _from_sw8(found: dict[str, list[str]], counters: Counter) -> TraceContext | None:
    values = found.get("sw8")
    if not values:
        return None
    value = values[0]
    reason = _sw8_problem(value)
    if reason is not None:
        counters[reason] += 1
        return None
    fields = value.split("-")
    decoded = [_b64_text(f) for f in fields[1:3] + fields[4:8]]
    if any(d is None for d in decoded):
        counters["sw8_bad_base64"] += 1
        return None
    trace_id, segment_id, *extra = decoded
    if not trace_id or not segment_id:
        counters["sw8_empty_id"] += 1
        return None
    return TraceContext(
        provider="skywalking", trace_id=trace_id, span_id=fields[3], parent_span_id=None,
        sampled=fields[0] == "1", segment_id=segment_id,
        extra=tuple(zip(_SW8_EXTRA_KEYS, extra)),
    )


def _sw8_problem(value: str) -> str | None:
    if len(value) > MAX_SW8_LEN:
        return "sw8_too_long"
    fields = value.split("-")
    if len(fields) != 8:
        return "sw8_field_count"
    if fields[0] not in ("0", "1"):
        return "sw8_bad_sample"
    if not _DECIMAL.fullmatch(fields[3]):
        return "sw8_bad_span_id"
    return None


def _b64_text(field: str) -> str | None:
    """Standard base64 (RFC 4648 section 4) to UTF-8 text, None when invalid."""
    try:
        return base64.b64decode(field, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


# --- W3C Trace Context -------------------------------------------------------------------

def _from_traceparent(found: dict[str, list[str]], counters: Counter) -> TraceContext | None:
    values = found.get("traceparent")
    if not values:
        return None
    if len(values) > 1:
        # "If the vendor receives multiple traceparent headers ... it MUST be treated as
        # invalid" (a combined field value would not parse either).
        counters["traceparent_multiple"] += 1
        return None
    parsed = _parse_traceparent(values[0])
    if isinstance(parsed, str):
        counters[parsed] += 1
        return None
    trace_id, parent_id, flags = parsed
    extra: tuple[tuple[str, str], ...] = ()
    state = _tracestate(found, counters)
    if state is not None:
        extra = (("tracestate", state),)
    return TraceContext(provider="w3c", trace_id=trace_id, span_id=parent_id,
                        parent_span_id=None, sampled=bool(flags & 0x01), extra=extra)


def _parse_traceparent(value: str) -> tuple[str, str, int] | str:
    """(trace-id, parent-id, flags) or the reason it is invalid."""
    # "traceparent: version-format = trace-id "-" parent-id "-" trace-flags", all lowercase
    # hex: version 2, trace-id 32, parent-id 16, trace-flags 2 characters.
    if len(value) < 55:
        return "traceparent_too_short"
    version = value[0:2]
    if not _LOWER_HEX.fullmatch(version):
        return "traceparent_bad_version"
    # "Version ff is invalid."
    if version == "ff":
        return "traceparent_version_ff"
    # Version 00 is exactly 55 characters; for a higher version "parse the first 55
    # characters and check that ... they are followed by a dash or the end of the string".
    if version == "00" and len(value) != 55:
        return "traceparent_bad_length"
    if len(value) > 55 and value[55] != "-":
        return "traceparent_bad_length"
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return "traceparent_bad_delimiter"
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if not _LOWER_HEX.fullmatch(trace_id):
        return "traceparent_bad_trace_id"
    # "All bytes as zero (00000000000000000000000000000000) is considered an invalid value."
    if trace_id == "0" * 32:
        return "traceparent_zero_trace_id"
    if not _LOWER_HEX.fullmatch(parent_id):
        return "traceparent_bad_parent_id"
    if parent_id == "0" * 16:
        return "traceparent_zero_parent_id"
    flag_bits = parse_hex(flags, max_digits=2) if _LOWER_HEX.fullmatch(flags) else None
    if flag_bits is None:
        return "traceparent_bad_flags"
    return trace_id, parent_id, flag_bits


def _tracestate(found: dict[str, list[str]], counters: Counter) -> str | None:
    # Multiple tracestate headers are one list: "combined into a single header according to
    # RFC7230 section 3.2.2".
    values = [v for v in found.get("tracestate", []) if v]
    if not values:
        return None
    state = ",".join(values)
    if len(state) > MAX_TRACESTATE_LEN:
        counters["tracestate_too_long"] += 1
        return None
    return state


# --- Zipkin B3 ---------------------------------------------------------------------------
# B3 propagation: "TraceId is 64 or 128-bit ... encoded as 32 or 16 lower-hex characters";
# "SpanId ... 16 lower-hex characters"; Sampled "1" accept, "0" deny ("true"/"false" from
# older implementations); Flags "1" means debug, which implies an accept decision.
# Single header: b3={TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}, the last two optional,
# or only {SamplingState} ("0", "1" or "d" for debug), which carries no ids.


def _hex_id(value: str, lengths: tuple[int, ...]) -> bool:
    return len(value) in lengths and bool(_LOWER_HEX.fullmatch(value)) and value.strip("0") != ""


def _from_b3_single(found: dict[str, list[str]], counters: Counter) -> TraceContext | None:
    values = found.get("b3")
    if not values:
        return None
    value = values[0]
    if value in ("0", "1", "d"):
        return None  # a sampling decision alone: no trace to attach to
    parts = value.split("-")
    if not 2 <= len(parts) <= 4:
        counters["b3_bad_format"] += 1
        return None
    trace_id, span_id = parts[0], parts[1]
    sampling = parts[2] if len(parts) >= 3 else None
    parent = parts[3] if len(parts) == 4 else None
    if not _hex_id(trace_id, (16, 32)):
        counters["b3_bad_trace_id"] += 1
        return None
    if not _hex_id(span_id, (16,)):
        counters["b3_bad_span_id"] += 1
        return None
    if sampling is not None and sampling not in ("0", "1", "d"):
        counters["b3_bad_sampling"] += 1
        return None
    if parent is not None and not _hex_id(parent, (16,)):
        counters["b3_bad_parent_span_id"] += 1
        return None
    sampled = None if sampling is None else sampling in ("1", "d")
    return TraceContext(provider="zipkin", trace_id=trace_id, span_id=span_id,
                        parent_span_id=parent, sampled=sampled)


_B3_SAMPLED = {"1": True, "true": True, "0": False, "false": False}


def _from_b3_multi(found: dict[str, list[str]], counters: Counter) -> TraceContext | None:
    trace_ids = found.get("x-b3-traceid")
    if not trace_ids:
        return None
    trace_id = trace_ids[0]
    span_id = (found.get("x-b3-spanid") or [""])[0]
    parent = (found.get("x-b3-parentspanid") or [None])[0]
    if not _hex_id(trace_id, (16, 32)):
        counters["b3_bad_trace_id"] += 1
        return None
    if not _hex_id(span_id, (16,)):
        counters["b3_bad_span_id"] += 1
        return None
    if parent is not None and not _hex_id(parent, (16,)):
        counters["b3_bad_parent_span_id"] += 1
        return None
    sampled = _b3_multi_sampled(found, counters)
    return TraceContext(provider="zipkin", trace_id=trace_id, span_id=span_id,
                        parent_span_id=parent, sampled=sampled)


def _b3_multi_sampled(found: dict[str, list[str]], counters: Counter) -> bool | None:
    flags = (found.get("x-b3-flags") or [None])[0]
    if flags == "1":
        return True  # "Debug is encoded as X-B3-Flags: 1. Debug implies an accept decision"
    raw = (found.get("x-b3-sampled") or [None])[0]
    if raw is None:
        return None
    if raw.lower() not in _B3_SAMPLED:
        counters["b3_bad_sampling"] += 1
        return None
    return _B3_SAMPLED[raw.lower()]
