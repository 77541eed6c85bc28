"""The protocol registry: each protocol's entry, the kernel prefilter made from it, the error
and start-line rules, ParseError codes, and a protocol added by one entry alone."""
from __future__ import annotations

import random

import pytest

from l7scope.capture.events import ConnectionOpened, Role
from l7scope.conn.table import ConnectionTable
from l7scope.exchange import CONTRACT_FIELDS
from l7scope.protocols import registry
from l7scope.protocols.base import (
    COMMON_FIELDS, NEED_MORE, Analyzer, Match, ParseErrorCode, ProtocolSpec, UpgradeTarget,
)
from l7scope.protocols.detect import detect
from l7scope.protocols.http import HTTP1, HTTP2
from l7scope.protocols.http1 import Http1Analyzer
from l7scope.protocols.http1_message import KNOWN_METHODS
from l7scope.protocols.http2 import PREFACE, Http2Analyzer
from l7scope.protocols.message import AnalyzerLimits, ExchangeParsed, HttpMessage, ParseError
from tests.conn.h2_peers import chunk
from tests.export import make_exchange


def test_the_registry_lists_http1_then_http2():
    assert registry.PROTOCOLS == (HTTP1, HTTP2)
    assert registry.get("http1") is HTTP1 and registry.get("http2") is HTTP2
    assert registry.for_record("http1") is HTTP1
    assert registry.for_record("http2") is HTTP2 and registry.for_record("grpc") is HTTP2
    with pytest.raises(KeyError):
        registry.get("redis")


# -- the kernel prefilter -------------------------------------------------------------------

def test_kernel_prefilter_is_every_method_then_the_status_line_then_the_preface():
    got = registry.kernel_prefilter()
    assert got == tuple(m.encode() + b" " for m in KNOWN_METHODS) + (b"HTTP/1.", PREFACE)
    assert len(got) == 35 == len(set(got))
    assert b"PROPFIND " in got and b"M-SEARCH " in got and b"UNSUBSCRIBE " in got


@pytest.mark.parametrize("prefix", registry.kernel_prefilter())
def test_user_space_accepts_what_the_kernel_passes(prefix):
    """Each prefix opens a message user space detects (or waits on): kernel and user space
    agree, so a connection that opens with PROPFIND keeps its first request."""
    assert detect(prefix)[0] in ("http1", "http2", NEED_MORE)
    whole, expected = {
        b"HTTP/1.": (b"HTTP/1.1 200 OK\r\n\r\n", ("http1", False)),
        PREFACE: (PREFACE, ("http2", True)),
    }.get(prefix, (prefix + b"/x HTTP/1.1\r\n\r\n", ("http1", True)))
    assert whole.startswith(prefix) and detect(whole) == expected


@pytest.mark.parametrize("method", KNOWN_METHODS)
def test_every_request_user_space_detects_opens_with_a_kernel_prefix(method):
    request = method.encode() + b" /x HTTP/1.1\r\nHost: a\r\n\r\n"
    assert detect(request) == ("http1", True)
    assert [p for p in registry.kernel_prefilter() if request.startswith(p)] == \
        [method.encode() + b" "]


# -- analyzers ------------------------------------------------------------------------------

def test_new_analyzer_makes_each_protocols_analyzer_with_the_shared_counters():
    counters: dict[str, int] = {"http1_parse_errors": 0}
    h1 = registry.new_analyzer("http1", AnalyzerLimits(), seen_from_start=False,
                               counters=counters)
    h2 = registry.new_analyzer("http2", AnalyzerLimits(), seen_from_start=True,
                               counters=counters)
    assert type(h1) is Http1Analyzer and type(h2) is Http2Analyzer
    assert isinstance(h1, Analyzer) and isinstance(h2, UpgradeTarget)
    assert not isinstance(h1, UpgradeTarget)
    h1.feed(True, b"GET /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n", 1)
    assert counters["http1_parse_errors"] == 1


def test_upgrades_h2c_only_from_http1():
    assert registry.upgrade_target("http1", "h2c") == "http2"
    assert registry.upgrade_target("http1", "websocket") is None
    assert registry.upgrade_target("http1", "tunnel") is None
    assert registry.upgrade_target("http2", "h2c") is None
    assert registry.upgrade_target("other", "h2c") is None


# -- records, errors, start lines -----------------------------------------------------------

def test_record_fields_are_contract_fields_and_cover_the_contract():
    for spec in registry.PROTOCOLS:
        assert set(COMMON_FIELDS) | set(spec.record_fields) <= set(CONTRACT_FIELDS)
    assert set(COMMON_FIELDS) | set(HTTP2.record_fields) == set(CONTRACT_FIELDS)
    assert set(CONTRACT_FIELDS) - set(COMMON_FIELDS) - set(HTTP1.record_fields) == {"stream_id"}


def test_an_http1_record_leaves_the_fields_http1_does_not_declare_null():
    from l7scope.pipeline import Pipeline

    got = []
    p = Pipeline(observers=[got.append])
    p.feed([ConnectionOpened(1, 1, Role.CLIENT, ("10.0.0.1", 40000), ("10.0.0.2", 80), pid=7,
                             comm="curl"),
            chunk(1, True, 2, b"GET /a HTTP/1.1\r\nHost: s\r\n\r\n"),
            chunk(1, False, 3, b"HTTP/1.1 204 No Content\r\n\r\n")])
    (ex,) = got
    undeclared = set(CONTRACT_FIELDS) - set(COMMON_FIELDS) - set(HTTP1.record_fields)
    assert {name: getattr(ex, name) for name in undeclared} == {"stream_id": None}
    assert (ex.method, ex.path, ex.status) == ("GET", "/a", 204)


@pytest.mark.parametrize("protocol, status, grpc_status, reasons, error", [
    ("http1", 200, None, (), False),
    ("http1", 301, None, (), False),
    ("http1", 404, None, ("4xx",), False),
    ("http1", 499, None, ("4xx",), False),
    ("http1", 500, None, ("5xx",), True),
    ("http1", 599, None, ("5xx",), True),
    ("http1", 600, None, ("status_over_599",), True),
    ("http1", None, None, ("no_response",), True),
    ("http2", 503, None, ("5xx",), True),
    ("grpc", 200, 0, (), False),
    ("grpc", 200, 14, ("grpc_error",), True),
    ("grpc", 503, 14, ("5xx", "grpc_error"), True),
    ("grpc", 404, 2, ("grpc_error", "4xx"), True),
    ("grpc", None, 4, ("no_response", "grpc_error"), True),
])
def test_failures_and_is_error(protocol, status, grpc_status, reasons, error):
    ex = make_exchange(protocol=protocol, status=status, grpc_status=grpc_status)
    assert tuple(f.reason for f in registry.failures(ex)) == reasons
    assert registry.is_error(ex) is error


def test_only_a_call_without_response_or_over_599_is_never_a_sampling_reason():
    unsampled = {f.reason for status in (None, 600, 999) for f in registry.failures(
        make_exchange(status=status)) if not f.sample}
    assert unsampled == {"no_response", "status_over_599"}


def _message(**kw) -> HttpMessage:
    return HttpMessage(is_request=kw.pop("is_request", True), start_ns=0, end_ns=0, wire_bytes=0,
                       **kw)


def test_start_lines():
    upper = str.upper
    request = _message(method="GET", path="/a?x=1", version="HTTP/1.0")
    assert registry.start_line("http1", request, upper) == "GET /A?X=1 HTTP/1.0"
    assert registry.start_line("grpc", _message(method="POST", path="/s/M", version="HTTP/2"),
                               str) == "POST /s/M HTTP/2"
    assert registry.start_line("http1", _message(), str) == "? ? HTTP/1.1"
    assert registry.start_line("http2", _message(is_request=False, status=503,
                                                 version="HTTP/2"), str) == "HTTP/2 503 "
    assert registry.start_line("http1", _message(is_request=False), str) == "HTTP/1.1 ? "


# -- ParseError codes -----------------------------------------------------------------------

def _codes(analyzer, chunks) -> list[str]:
    events = []
    for from_client, data in chunks:
        events += analyzer.feed(from_client, data, 1)
    events += analyzer.eof(2)
    return [e.code for e in events if type(e) is ParseError]


REQ = (True, b"GET /x HTTP/1.1\r\n\r\n")
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("chunks, code", [
    ([(True, b"GET /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n")],
     ParseErrorCode.INVALID_CONTENT_LENGTH),
    ([(True, b"GET /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")],
     ParseErrorCode.INVALID_TRANSFER_ENCODING),
    ([REQ, (True, b"G\x00T /x HTTP/1.1\r\n\r\n")], ParseErrorCode.BAD_REQUEST_LINE),
    ([REQ, (False, b"HTTP/1.1 2x0 OK\r\n\r\n")], ParseErrorCode.BAD_STATUS_LINE),
    ([REQ, (False, CHUNKED + b"zz\r\n")], ParseErrorCode.BAD_CHUNK_SIZE),
    ([REQ, (False, CHUNKED + b"2\r\nabX\r\n")], ParseErrorCode.BAD_CHUNK_DATA),
    ([(True, b"GET /x HTTP/1.1\r\n" + b"a: b\r\n" * 20000)], ParseErrorCode.HEADER_TOO_LARGE),
])
def test_http1_parse_error_codes(chunks, code):
    assert _codes(Http1Analyzer(AnalyzerLimits()), chunks) == [code]


@pytest.mark.parametrize("data, code", [
    (PREFACE[:-1] + b"X", ParseErrorCode.FRAMING_LOST),
    (PREFACE + bytes.fromhex("000004090000000001") + b"abcd",
     ParseErrorCode.CONTINUATION_UNEXPECTED),
])
def test_http2_parse_error_codes(data, code):
    assert _codes(Http2Analyzer(AnalyzerLimits()), [(True, data)]) == [code]


def test_random_bytes_give_only_listed_codes():
    rng = random.Random(9)
    seen = set()
    for spec, opening in ((HTTP1, b"GET / HTTP/1.1\r\n"), (HTTP2, PREFACE)):
        for _ in range(300):
            analyzer = spec.analyzer(AnalyzerLimits(), seen_from_start=True, counters={})
            chunks = [(True, opening)] + [(rng.random() < 0.5, rng.randbytes(rng.randint(1, 60)))
                                          for _ in range(4)]
            seen.update(_codes(analyzer, chunks))
    assert seen and seen <= set(ParseErrorCode)


# -- a protocol added by one registry entry ---------------------------------------------------

class _Echo:
    """A toy line protocol: the client sends "PING <word>\\n", the server "PONG\\n"."""

    def __init__(self, counters: dict[str, int]):
        self.shared, self.asked = counters, None

    def feed(self, from_client, data, ts):
        if from_client:
            self.asked = HttpMessage(True, ts, ts, len(data), method="PING",
                                     path=data[5:].strip().decode())
            return []
        self.shared["echo_answers"] = self.shared.get("echo_answers", 0) + 1
        reply = HttpMessage(False, ts, ts, len(data), status=0)
        return [ExchangeParsed("echo", self.asked, reply)]

    def skip(self, from_client, length, ts):
        return []

    def eof(self, ts):
        return []

    def memory(self):
        return 100

    def counters(self):
        return {}


ECHO = ProtocolSpec(
    name="echo",
    detect=lambda data, can_wait: Match("echo", True) if data.startswith(b"PING ") else (
        NEED_MORE if can_wait and b"PING ".startswith(data[:5]) else None),
    kernel_prefixes=lambda: (b"PING ",),
    analyzer=lambda limits, *, seen_from_start, counters: _Echo(counters),
    records=("echo",), record_fields=("method", "path", "status"),
    failures=lambda ex: (), start_line=lambda msg, redact: f"{msg.method} {msg.path}")


@pytest.fixture
def with_echo():
    previous = registry.install(registry.PROTOCOLS + (ECHO,))
    yield
    registry.install(previous)


def test_a_protocol_added_by_its_entry_is_detected_analyzed_and_judged(with_echo):
    assert b"PING " in registry.kernel_prefilter()
    assert detect(b"PIN") == (NEED_MORE, None) and detect(b"PING a\n") == ("echo", True)
    table = ConnectionTable()
    # the role is unknown (connect not seen): detection tells the sender is the client
    out = table.handle(chunk(5, False, 10, b"PING hello\n"))
    out += table.handle(chunk(5, True, 20, b"PONG\n"))
    assert [(c.conn_id, c.protocol, c.role) for c, _ in out] == [(5, "echo", Role.SERVER)]
    (_, parsed), = out
    assert (parsed.request.path, parsed.response.wire_bytes) == ("hello", 5)
    assert table.counters["echo_answers"] == 1 and table.memory_total == 100
    ex = make_exchange(protocol="echo", status=None)
    assert registry.is_error(ex) is False  # its own rule: no failures
    assert registry.start_line("echo", parsed.request, str) == "PING hello"


def test_a_name_registered_twice_is_refused():
    with pytest.raises(ValueError):
        registry.install((HTTP1, HTTP1))
    assert registry.PROTOCOLS == (HTTP1, HTTP2)
