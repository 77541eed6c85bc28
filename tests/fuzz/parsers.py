"""Fuzz targets for the parsers, one function per target: ``target(data: bytes) -> None``.

Each target feeds the input to one parser and checks one invariant: the parser returns its
documented values (events, ParseError with a code, HpackError from the strict decoder), never
another exception, never a value outside its contract. An "internal" error value (a bug caught
by a parser's own guard) is a finding too: the guard keeps the agent up, the fuzzer finds the bug.

Stream targets read a script (script.py): the config octet picks the limits and the starting
state; opcodes (low bit: from the client) feed bytes, declare a hole (argument: 2-octet length)
or end the input.
"""
from __future__ import annotations

import inspect
from collections import Counter

from l7scope.exchange import TraceContext
from l7scope.protocols import hpack
from l7scope.protocols.detect import NEED_MORE, detect
from l7scope.protocols.http1 import Http1Analyzer, looks_like_request, looks_like_response
from l7scope.protocols.http2 import Http2Analyzer
from l7scope.protocols.http2_frames import (
    MAX_FRAME_SIZE_LIMIT, Frame, FrameSplitter, FramingLost, FramingResumed,
    find_plausible_header, looks_like_http2,
)
from l7scope.protocols.message import (
    AnalyzerLimits, ExchangeParsed, HttpMessage, ParseError, ProtocolSwitched,
)
from l7scope.tracecontext import extract

from .script import check, check_memory, ops

OP_FEED, OP_SKIP, OP_EOF = 0, 1, 2  # (op >> 1) % 4; 3 feeds too
SMALL_LIMITS = dict(max_header_bytes=600, max_headers=12, body_capture=48, max_pending=3)


def limits_for(config: int) -> AnalyzerLimits:
    """Config bit 0: small limits (reach every bound quickly) or the agent's defaults."""
    return AnalyzerLimits(**SMALL_LIMITS) if config & 1 else AnalyzerLimits()


def hole_length(arg: bytes) -> int:
    return int.from_bytes(arg[:2], "little") if arg else 1


# --- analyzers ---------------------------------------------------------------------------

def check_message(msg: HttpMessage | None, limits: AnalyzerLimits) -> None:
    if msg is None:
        return
    check(type(msg) is HttpMessage, f"message of type {type(msg).__name__}")
    check(msg.status is None or (type(msg.status) is int and 100 <= msg.status <= 999),
          f"status {msg.status!r} is not a 3-digit code")
    check(type(msg.wire_bytes) is int and msg.wire_bytes >= 0, f"wire_bytes {msg.wire_bytes!r}")
    check(msg.start_ns <= msg.end_ns,
          f"message ends ({msg.end_ns}) before it starts ({msg.start_ns})")
    check(type(msg.body) is bytes and len(msg.body) <= limits.body_capture + 1,
          f"captured body of {len(msg.body)} octets over body_capture {limits.body_capture}")
    check(type(msg.body_len) is int and msg.body_len >= len(msg.body), f"body_len {msg.body_len}")
    for field in (*msg.headers, *msg.trailers):
        check(len(field) == 2 and all(type(x) is str for x in field), f"header {field!r}")
    for text in (msg.method, msg.path, msg.authority):
        check(text is None or type(text) is str, f"text field {text!r}")


def check_events(events: list, limits: AnalyzerLimits) -> None:
    for e in events:
        t = type(e)
        if t is ParseError:
            check(type(e.code) is str and "internal" not in e.code,
                  f"ParseError {e.code}: {e.detail}")
        elif t is ExchangeParsed:
            check(e.protocol in ("http1", "http2", "grpc"), f"protocol {e.protocol!r}")
            check(e.request is not None or e.response is not None, "exchange with no message")
            check_message(e.request, limits)
            check_message(e.response, limits)
        else:
            check(t is ProtocolSwitched, f"analyzer event of type {t.__name__}")


def run_analyzer(analyzer, data: bytes, limits: AnalyzerLimits) -> None:
    ts = 1_000_000
    for op, arg in ops(data, 1):
        ts += 1000
        from_client, kind = bool(op & 1), (op >> 1) % 4
        if kind == OP_EOF:
            check_events(analyzer.eof(ts), limits)
            return
        if kind == OP_SKIP:
            events = analyzer.skip(from_client, hole_length(arg), ts)
        else:
            events = analyzer.feed(from_client, arg, ts)
        check_events(events, limits)
        check_memory(analyzer)
    check_events(analyzer.eof(ts + 1), limits)


def _with_counters(cls, shared: dict, *args, **kw):
    """The analyzer, given the shared counters dict where it takes one."""
    if "counters" in inspect.signature(cls).parameters:
        kw["counters"] = shared
    return cls(*args, **kw)


def _check_counters(shared: dict, protocol: str) -> None:
    for name, value in shared.items():
        check(name.startswith(protocol + "_") and type(value) is int and value >= 0,
              f"shared counter {name} = {value!r}")


def http1(data: bytes) -> None:
    """HTTP/1 analyzer: config bit 0 small limits."""
    if not data:
        return
    limits, shared = limits_for(data[0]), {}
    run_analyzer(_with_counters(Http1Analyzer, shared, limits), data, limits)
    _check_counters(shared, "http1")


def http2(data: bytes) -> None:
    """HTTP/2 analyzer: config bit 0 small limits, bit 1 seen from the start (else joined
    mid-connection: no preface expected, HPACK tables not complete)."""
    if not data:
        return
    limits, shared = limits_for(data[0]), {}
    analyzer = _with_counters(Http2Analyzer, shared, limits, seen_from_start=bool(data[0] & 2))
    run_analyzer(analyzer, data, limits)
    _check_counters(shared, "http2")


# --- HPACK --------------------------------------------------------------------------------

TABLE_SIZES = (4096, 0, 64, 256, 65536, 1 << 20, (1 << 32) - 1, 16384)


def _blocks(data: bytes):
    """Header blocks: each op's argument; opcode bit 1..3 == 7: a SETTINGS change of the
    table size bound (argument: 4-octet value) instead; == 6: a gap (observer: lost_sync)."""
    for op, arg in ops(data, 1):
        yield (op >> 1) & 7, arg


def hpack_strict(data: bytes) -> None:
    """Strict decoder: headers (str, str) or HpackError, the table within its bounds."""
    if not data:
        return
    decoder = hpack.Decoder(TABLE_SIZES[data[0] % len(TABLE_SIZES)])
    for kind, block in _blocks(data):
        if kind == 7:
            decoder.max_table_size = int.from_bytes(block[:4].ljust(4, b"\0"), "little")
            continue
        try:
            headers = decoder.decode(block)
        except hpack.HpackError:
            return  # an endpoint would close the connection; the table is unusable
        for field in headers:
            check(len(field) == 2 and all(type(x) is str for x in field), f"header {field!r}")
        _check_table(decoder)


def hpack_observer(data: bytes) -> None:
    """Observer decoder: never raises, never an internal reset, the table within its bounds."""
    if not data:
        return
    decoder = hpack.ObserverDecoder(TABLE_SIZES[data[0] % len(TABLE_SIZES)],
                                    complete=not data[0] & 0x80)
    for kind, block in _blocks(data):
        if kind == 7:
            decoder.max_table_size = int.from_bytes(block[:4].ljust(4, b"\0"), "little")
            continue
        if kind == 6:
            decoder.lost_sync()
            continue
        decoded = decoder.decode_observed(block)
        check(type(decoded) is hpack.DecodedBlock, f"decode_observed gave {decoded!r}")
        check(not any("internal" in n for n in decoded.notes), f"notes {decoded.notes}")
        check(decoded.unknown >= 0, f"unknown {decoded.unknown}")
        for field in decoded.headers:
            check(len(field) == 2 and all(type(x) is str for x in field), f"header {field!r}")
        _check_table(decoder)


def _check_table(decoder: hpack.Decoder) -> None:
    check(0 <= decoder.table_size <= decoder.table_capacity <= decoder.max_table_size,
          f"table size {decoder.table_size}, capacity {decoder.table_capacity}, "
          f"bound {decoder.max_table_size}")
    check_memory(decoder)


# --- HTTP/2 frame splitter ----------------------------------------------------------------

def h2frames(data: bytes) -> None:
    """Frame splitter: Frame / FramingLost / FramingResumed only, payloads within the caps.
    Config bits: 0 expect the preface, 1 in sync, 2 small caps."""
    if not data:
        return
    config = data[0]
    payload_cap, capture = (600, 49) if config & 4 else (64 * 1024, 4097)
    splitter = FrameSplitter(expect_preface=bool(config & 1), in_sync=bool(config & 2),
                             payload_cap=payload_cap, data_capture=capture)
    ts = 0
    for op, arg in ops(data, 1):
        ts += 1000
        kind = (op >> 1) % 4
        if kind == OP_EOF:
            break
        events = splitter.skip(hole_length(arg), ts) if kind == OP_SKIP else splitter.feed(arg, ts)
        _check_frames(events, payload_cap)
        check_memory(splitter)
    _check_frames(splitter.finish(ts + 1), payload_cap)


def _check_frames(events: list, payload_cap: int) -> None:
    for e in events:
        t = type(e)
        if t is Frame:
            check(0 <= e.length <= MAX_FRAME_SIZE_LIMIT, f"frame length {e.length}")
            check(len(e.payload) <= max(e.length, 0) and len(e.payload) <= payload_cap,
                  f"payload of {len(e.payload)} octets for length {e.length}, cap {payload_cap}")
            check(0 <= e.stream_id < 1 << 31 and 0 <= e.type < 256 and 0 <= e.flags < 256,
                  f"frame header {e.type}/{e.flags}/{e.stream_id}")
            check(e.ts_start <= e.ts_end, "frame ends before it starts")
        elif t is FramingResumed:
            check(e.skipped >= 0, f"skipped {e.skipped}")
        else:
            check(t is FramingLost, f"splitter event of type {t.__name__}")


# --- protocol detection -------------------------------------------------------------------

def detection(data: bytes) -> None:
    """detect() answers a protocol, "need more" or nothing; the helpers answer a bool."""
    protocol, sender_is_client = detect(data)
    check(protocol in (None, "http1", "http2", NEED_MORE), f"protocol {protocol!r}")
    check(sender_is_client in (None, True, False), f"sender {sender_is_client!r}")
    for helper in (looks_like_http2, looks_like_request, looks_like_response):
        check(type(helper(data)) is bool, f"{helper.__name__} not a bool")
    for final in (False, True):
        at = find_plausible_header(data, 16384, final)
        check(at is None or 0 <= at <= len(data), f"find_plausible_header gave {at}")


# --- trace context ------------------------------------------------------------------------

TRACE_HEADERS = ("sw8", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
                 "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-request-id")


def headers_from(data: bytes) -> list[tuple[str, str]]:
    """One header per line; a line starting with an octet < 0x10 names a trace header by it,
    else "name: value" (the value decoded as the analyzers do: UTF-8, else latin-1)."""
    out = []
    for line in data.split(b"\n"):
        if line and line[0] < 0x10:
            name, raw = TRACE_HEADERS[line[0] % len(TRACE_HEADERS)], line[1:]
        else:
            name_raw, _, raw = line.partition(b":")
            name = name_raw.decode("latin-1")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("latin-1")
        out.append((name, value))
    return out


def tracecontext(data: bytes) -> None:
    """extract(): a TraceContext of well-formed ids or None, a bounded request id or None."""
    counters: Counter = Counter()
    trace, request_id = extract(headers_from(data), counters)
    check(request_id is None or (type(request_id) is str and len(request_id) <= 256),
          f"request id {request_id!r}")
    if trace is None:
        return
    check(type(trace) is TraceContext, f"trace of type {type(trace).__name__}")
    check(trace.provider in ("skywalking", "zipkin", "w3c"), f"provider {trace.provider!r}")
    check(type(trace.trace_id) is str and trace.trace_id != "", f"trace id {trace.trace_id!r}")
    check(trace.sampled in (None, True, False), f"sampled {trace.sampled!r}")
    trace.to_dict()
