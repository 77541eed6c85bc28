"""The error boundary: an exception out of an analyzer, out of Exchange building or out of an
observer is counted with a short reason, ends only that connection's analysis (or, for an
observer, only that observer's turn), and every other connection is still reported exactly.
"""
from __future__ import annotations

import pytest

from l7scope.capture.events import (
    ConnectionClosed, ConnectionOpened, DataChunk, Role, StreamEnded,
)
from l7scope.conn.table import FAILED
from l7scope.exchange import WallClock
from l7scope.pipeline import Pipeline
from l7scope.protocols import http1
from l7scope.protocols.message import ExchangeParsed, HttpMessage
from tests.conn.h2_peers import chunk

CLIENT, SERVER = ("10.0.0.1", 45000), ("10.0.0.2", 8080)
REQ = b"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def pipeline(**kw):
    got = []
    return Pipeline(observers=[got.append], clock=WallClock(offset_ns=0), **kw), got


def conversation(conn_id: int, path: bytes, t0: int = 0) -> list:
    return [ConnectionOpened(conn_id, t0 + 1, Role.CLIENT, CLIENT, SERVER, pid=9, comm="c"),
            chunk(conn_id, True, t0 + 10, REQ % path), chunk(conn_id, False, t0 + 20, RESP)]


def paths(got) -> list:
    return [e.path for e in got]


@pytest.fixture
def boom_on_marker(monkeypatch):
    """Http1Analyzer.feed raises on bytes carrying b"BOOM" (a stand-in for a parser bug)."""
    real = http1.Http1Analyzer.feed

    def feed(self, from_client, data, ts):
        if b"BOOM" in data:
            raise IndexError("simulated parser bug")
        return real(self, from_client, data, ts)

    monkeypatch.setattr(http1.Http1Analyzer, "feed", feed)


def test_analyzer_exception_ends_only_its_connection(boom_on_marker):
    p, got = pipeline()
    p.feed(conversation(1, b"a") + conversation(2, b"b", t0=100))
    p.feed([chunk(1, True, 200, REQ % b"BOOM")])  # connection 1's analyzer fails here
    p.feed([chunk(2, True, 210, REQ % b"c"), chunk(2, False, 220, RESP)])
    p.feed([chunk(1, True, 230, REQ % b"d"), chunk(1, False, 240, RESP)])  # fed nothing more
    assert p.table.conns[1].protocol == FAILED and p.table.conns[1].analyzer is None
    p.finish()
    assert paths(got) == ["/a", "/b", "/c"]
    assert p.table.counters["internal_error_http1"] == 1
    assert list(p.table.internal_errors) == ["http1: IndexError in feed"]


def test_failed_connection_stays_unfed_after_its_peer_stops_sending(boom_on_marker):
    p, got = pipeline()
    p.feed(conversation(1, b"a") + [chunk(1, True, 30, REQ % b"BOOM"), StreamEnded(1, False, 40)])
    p.feed([chunk(1, True, 50, REQ % b"b"), chunk(1, False, 60, RESP)])
    assert paths(got) == ["/a"] and p.table.conns[1].protocol == FAILED


def test_failed_connection_reused_by_a_new_socket_is_analysed_again(boom_on_marker):
    p, got = pipeline()
    p.feed(conversation(1, b"a") + [chunk(1, True, 30, REQ % b"BOOM"), ConnectionClosed(1, 40)])
    p.feed(conversation(1, b"again", t0=100))
    assert paths(got) == ["/a", "/again"]
    assert p.table.counters["internal_error_http1"] == 1


def test_exception_in_eof_is_counted_and_the_others_are_flushed(monkeypatch):
    p, got = pipeline()
    real_feed, real_eof = http1.Http1Analyzer.feed, http1.Http1Analyzer.eof
    waiting_pending1 = set()  # ids of the analyzers holding the request for /pending1

    def feed(self, from_client, data, ts):
        if b"/pending1 " in data:
            waiting_pending1.add(id(self))
        return real_feed(self, from_client, data, ts)

    def eof(self, ts):
        if id(self) in waiting_pending1:
            raise KeyError("simulated")
        return real_eof(self, ts)

    monkeypatch.setattr(http1.Http1Analyzer, "feed", feed)
    p.feed(conversation(1, b"a") + conversation(2, b"b", t0=100))
    p.feed([chunk(1, True, 200, REQ % b"pending1"), chunk(2, True, 210, REQ % b"pending2")])
    monkeypatch.setattr(http1.Http1Analyzer, "eof", eof)
    p.finish()
    assert paths(got) == ["/a", "/b", "/pending2"]
    assert got[-1].notes == ("no response",)
    assert p.table.counters["internal_error_http1"] == 1
    assert list(p.table.internal_errors) == ["http1: KeyError in eof"]


def test_exception_in_detection_is_counted_under_detect(monkeypatch):
    p, got = pipeline()
    real = p.table._detect

    def detect(data):
        if data.startswith(b"\x16\x03"):
            raise ValueError("simulated")
        return real(data)

    monkeypatch.setattr(p.table, "_detect", detect)
    p.feed([chunk(7, True, 5, b"\x16\x03\x01\x02\x00", role=Role.CLIENT, local=CLIENT,
                  remote=SERVER)])
    p.feed(conversation(1, b"a", t0=10))
    assert paths(got) == ["/a"]
    assert p.table.counters["internal_error_detect"] == 1
    assert p.table.conns[7].protocol == FAILED


def test_exception_while_building_the_record_ends_that_connection():
    def redact_path(path: str) -> str:
        if "boom" in path:
            raise UnicodeError("simulated")
        return path

    p, got = pipeline(redact_path=redact_path)
    p.feed(conversation(1, b"boom") + conversation(2, b"b", t0=100))
    p.feed([chunk(1, True, 200, REQ % b"later"), chunk(1, False, 210, RESP)])
    assert paths(got) == ["/b"]
    assert p.table.counters["internal_error_http1"] == 1
    assert list(p.table.internal_errors) == ["http1: UnicodeError in redact_path"]


def test_a_failing_observer_is_counted_and_the_others_still_get_every_exchange():
    seen = []

    def bad_observer(ex):
        if ex.path == "/b":
            raise ZeroDivisionError("simulated")

    p = Pipeline(observers=[bad_observer, seen.append], clock=WallClock(offset_ns=0))
    p.feed(conversation(1, b"a") + conversation(2, b"b", t0=100) + conversation(3, b"c", t0=200))
    assert paths(seen) == ["/a", "/b", "/c"]
    assert p.table.counters["internal_error_output"] == 1
    assert list(p.table.internal_errors) == ["output: ZeroDivisionError in bad_observer"]
    assert p.exchanges == 3


def test_an_observer_os_error_is_not_swallowed():
    """A closed output pipe or a full disk is the agent's business (quiet exit, one line)."""
    def closed_pipe(ex):
        raise BrokenPipeError

    p = Pipeline(observers=[closed_pipe])
    with pytest.raises(BrokenPipeError):
        p.feed(conversation(1, b"a"))


def test_internal_error_reasons_are_bounded(boom_on_marker):
    p, _ = pipeline()
    for conn_id in range(1, 41):
        p.feed(conversation(conn_id, b"a", t0=conn_id * 100)
               + [chunk(conn_id, True, conn_id * 100 + 50, REQ % b"BOOM")])
    assert p.table.counters["internal_error_http1"] == 40
    assert len(p.table.internal_errors) == 16


# -- known crashes from captured bytes ----------------------------------------------------------

def _resp(headers=(), trailers=()) -> HttpMessage:
    return HttpMessage(False, 200, 210, 30, tuple(headers), status=200, trailers=tuple(trailers))


def test_exchange_with_neither_request_nor_response_is_skipped_and_counted():
    p, got = pipeline()
    p.feed(conversation(1, b"a")[:1])  # the connection is open
    conn = p.table.conns[1]
    assert p.build(conn, ExchangeParsed("http2", None, None, stream_id=3)) is None
    p._analyzer_event(conn, ExchangeParsed("http2", None, None, stream_id=5))
    assert got == [] and p.exchanges == 0
    assert p.counters["exchanges_without_messages"] == 2
    assert "internal_error_http2" not in p.table.counters


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def test_http2_stream_seen_only_through_data_frames_then_closed():
    """The agent started in the middle of a gRPC stream: no HEADERS of it were ever seen."""
    p, got = pipeline()
    kw = {"role": Role.CLIENT, "local": CLIENT, "remote": ("10.0.0.2", 50051), "pid": 3, "comm": "g"}
    p.feed([chunk(4, True, 10, _frame(0, 1, 1, b"\x00" * 30), **kw),
            chunk(4, False, 20, _frame(0, 1, 1, b"\x01" * 30), **kw), ConnectionClosed(4, 30)])
    p.feed(conversation(1, b"after"))
    assert paths(got) == ["/after"]
    assert not [k for k, v in p.table.counters.items() if k.startswith("internal_error") and v]


@pytest.mark.parametrize("value, expected", [
    ("0", 0), ("14", 14), (" 5 ", 5), ("007", 7),
    ("\u00b2", None),  # SUPERSCRIPT TWO: str.isdigit() says yes, int() raises
    ("\u0661\u0664", None),  # ARABIC-INDIC 14: int() would read 14
    ("9" * 5000, None),  # int() refuses more than 4300 digits
    ("1000", None), ("-1", None), ("", None), ("1 4", None),
])
def test_grpc_status_digits_are_ascii_and_bounded(value, expected):
    p, _ = pipeline()
    p.feed(conversation(1, b"x")[:1])
    conn = p.table.conns[1]
    req = HttpMessage(True, 100, 110, 50, method="POST", path="/pkg.Svc/M")
    for resp in (_resp(headers=[("grpc-status", value)]), _resp(trailers=[("grpc-status", value)])):
        ex = p.build(conn, ExchangeParsed("grpc", req, resp, stream_id=1))
        assert ex.grpc_status == expected


def test_path_redaction_applies_to_the_record():
    p, got = pipeline(redact_path=lambda path: path.replace("s3cret", "[REDACTED]"))
    p.feed(conversation(1, b"login?token=s3cret"))
    assert paths(got) == ["/login?token=[REDACTED]"]
    assert got[0].request.path == "/login?token=s3cret"  # the parsed message is left as parsed


def test_non_ascii_status_digits_in_an_http1_response_are_a_parse_error():
    p, got = pipeline()
    p.feed(conversation(1, b"a")[:2] + [
        DataChunk(conn_id=1, egress=False, ts=20, data="HTTP/1.1 ²00 OK\r\n\r\n".encode(),
                  length=len("HTTP/1.1 ²00 OK\r\n\r\n".encode()))])
    p.feed([chunk(1, False, 30, RESP)])
    assert [(e.path, e.status) for e in got] == [("/a", 200)]
    assert p.parse_errors["bad_status_line"] == 1
