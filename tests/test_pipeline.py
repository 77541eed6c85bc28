"""Pipeline, PeerIndex and JsonlSink: capture events in, Exchange records and JSON Lines out.

Every field of the Exchange record (docs/exchange.md) is asserted as a user would read it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from l7scope.capture.events import ConnectionClosed, ConnectionOpened, Role
from l7scope.conn.table import Connection
from l7scope.exchange import CONTRACT_FIELDS, Exchange, TraceContext, WallClock
from l7scope.outputs.jsonl import JsonlSink
from l7scope.pipeline import PEER_GRACE_NS, PeerIndex, Pipeline
from l7scope.protocols.message import ExchangeParsed, HttpMessage
from l7scope.redact import Redactor
from tests.conn.h2_peers import H2Peers, chunk, get

DOCS = Path(__file__).resolve().parents[1] / "docs" / "exchange.md"
EPOCH_2023 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
CLIENT = ("10.0.0.1", 45000)
SERVER = ("10.0.0.2", 8080)

REQ = (b"GET /api/items?limit=5 HTTP/1.1\r\nHost: shop.test\r\n"
       b"Authorization: Bearer s3cret\r\nX-Request-Id: req-77\r\n\r\n")
RESP = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nSet-Cookie: sid=1\r\n\r\nbusy"


def pipeline(**kw) -> tuple[Pipeline, list[Exchange]]:
    got: list[Exchange] = []
    kw.setdefault("clock", WallClock(offset_ns=EPOCH_2023))
    return Pipeline(observers=[got.append], **kw), got


def client_events(conn_id=1, pid=100, comm="curl", local=CLIENT, remote=SERVER, t0=0) -> list:
    return [ConnectionOpened(conn_id, t0 + 10, Role.CLIENT, local, remote, pid=pid, comm=comm),
            chunk(conn_id, True, t0 + 1_000_123_456, REQ),
            chunk(conn_id, False, t0 + 1_250_000_000, RESP)]


def server_events(conn_id=2, pid=200, comm="nginx", local=SERVER, remote=CLIENT, t0=0) -> list:
    return [ConnectionOpened(conn_id, t0 + 20, Role.SERVER, local, remote, pid=pid, comm=comm),
            chunk(conn_id, False, t0 + 1_000_200_000, REQ),
            chunk(conn_id, True, t0 + 1_249_000_000, RESP)]


def test_client_side_exchange_every_field():
    p, got = pipeline()
    p.feed(client_events())
    [ex] = got
    assert ex.to_dict() == {
        "protocol": "http1", "side": "client", "pid": 100, "comm": "curl",
        "local": "10.0.0.1:45000", "remote": "10.0.0.2:8080", "peer_pid": None,
            "peer_name": None, "conn_id": 1,
        "stream_id": None, "method": "GET", "path": "/api/items?limit=5",
        "authority": "shop.test", "status": 503, "grpc_status": None,
        "request_bytes": len(REQ), "response_bytes": len(RESP),
        "start_ns": 1_000_123_456, "end_ns": 1_250_000_000, "duration_ns": 249_876_544,
        "time": "2023-11-14T22:13:21.000123Z", "trace": None, "request_id": "req-77",
        "tls": False, "partial": False, "notes": [],
        "name": None, "exe": None, "container_id": None, "thread": "curl",
    }
    assert p.exchanges == 1


def test_time_is_rfc3339_utc_with_microseconds_truncated():
    clock = WallClock(offset_ns=EPOCH_2023)
    assert clock.rfc3339(0) == "2023-11-14T22:13:20.000000Z"
    assert clock.rfc3339(999) == "2023-11-14T22:13:20.000000Z"
    assert clock.rfc3339(1_999_999_999) == "2023-11-14T22:13:21.999999Z"
    assert WallClock(offset_ns=0).rfc3339(86_400 * 10**9 + 5_000) == "1970-01-02T00:00:00.000005Z"


def test_time_outside_years_1970_to_9999_is_held_to_them():
    """A pcapng file can carry any 64-bit time: the record still gets an RFC 3339 time."""
    clock = WallClock(offset_ns=0)
    assert clock.rfc3339(10**21 + 123_456_789) == "9999-12-31T23:59:59.123456Z"  # year 33658
    assert clock.rfc3339(-10**21 + 123_456_789) == "1970-01-01T00:00:00.123456Z"
    assert clock.rfc3339(2**64 - 1) == "2554-07-21T23:34:33.709551Z"  # in range: as it is


def test_server_side_exchange():
    p, got = pipeline()
    p.feed(server_events())
    [ex] = got
    assert (ex.side, ex.pid, ex.comm, ex.local, ex.remote, ex.peer_pid) == (
        "server", 200, "nginx", "10.0.0.2:8080", "10.0.0.1:45000", None)
    assert (ex.start_ns, ex.end_ns, ex.duration_ns) == (1_000_200_000, 1_249_000_000, 248_800_000)


def test_ipv6_endpoints_are_bracketed():
    p, got = pipeline()
    p.feed(client_events(local=("::1", 51000), remote=("::1", 80)))
    p.feed(client_events(conn_id=3, local=("fe80::1", 51001), remote=("2001:db8::2", 443)))
    assert [(e.local, e.remote) for e in got] == [("[::1]:51000", "[::1]:80"),
                                                 ("[fe80::1]:51001", "[2001:db8::2]:443")]


def test_peer_pid_when_both_ends_are_traced():
    p, got = pipeline()
    c, s = client_events(), server_events()
    p.feed([c[0], s[0], c[1], s[1], s[2], c[2]])  # the order the kernel reports them
    by_side = {e.side: e for e in got}
    assert (by_side["server"].pid, by_side["server"].peer_pid) == (200, 100)
    assert (by_side["client"].pid, by_side["client"].peer_pid) == (100, 200)
    assert p.peer_comm(by_side["client"]) == "nginx"
    assert p.peer_comm(by_side["server"]) == "curl"


def test_peer_pid_null_when_only_endpoints_differ():
    p, got = pipeline()
    p.feed(server_events(remote=("10.0.0.9", 45000)))  # another host's client
    p.feed(client_events())
    assert [e.peer_pid for e in got] == [None, None]


def test_peer_index_forgets_a_closed_socket_after_the_grace_period():
    peers = PeerIndex()
    peers.learn(2, SERVER, CLIENT, 200, "nginx")
    assert peers.peer("10.0.0.1:45000", "10.0.0.2:8080") == (200, "nginx")
    peers.closed(2, 1_000)
    peers.expire(1_000 + PEER_GRACE_NS - 1)
    assert peers.peer("10.0.0.1:45000", "10.0.0.2:8080") == (200, "nginx")
    peers.expire(1_000 + PEER_GRACE_NS)
    assert peers.peer("10.0.0.1:45000", "10.0.0.2:8080") == (None, None)


def test_peer_index_ignores_sockets_without_pid_or_endpoints():
    peers = PeerIndex()
    peers.learn(1, SERVER, CLIENT, None, None)
    peers.learn(2, None, CLIENT, 5, "x")
    assert peers.peer("10.0.0.1:45000", "10.0.0.2:8080") == (None, None)


def test_pipeline_tick_expires_peers_of_closed_connections():
    p, got = pipeline()
    p.feed(server_events() + [ConnectionClosed(2, 2_000_000_000)])
    p.tick(2_000_000_000 + PEER_GRACE_NS)
    p.feed(client_events(t0=10 * 10**9))
    assert got[-1].side == "client" and got[-1].peer_pid is None


def test_capture_mode_has_no_side_process_or_peer():
    p, got = pipeline(capture_mode=True)
    p.feed(client_events() + server_events())
    assert [(e.side, e.pid, e.comm, e.peer_pid) for e in got] == [(None, None, None, None)] * 2
    assert got[0].local == "10.0.0.1:45000"


def test_only_response_seen():
    p, got = pipeline()
    p.feed([chunk(4, False, 500, RESP, local=CLIENT, remote=SERVER, pid=100, comm="curl")])
    [ex] = got
    assert (ex.side, ex.method, ex.path, ex.status, ex.request_bytes, ex.response_bytes) == (
        "client", None, None, 503, 0, len(RESP))
    assert (ex.start_ns, ex.end_ns, ex.partial, ex.notes) == (500, 500, True, ("request not seen",))


def test_finish_flushes_a_request_without_response():
    p, got = pipeline()
    p.feed(client_events()[:2])
    assert got == []
    p.finish()
    [ex] = got
    assert (ex.status, ex.response_bytes, ex.partial, ex.notes) == (None, 0, True, ("no response",))
    assert (ex.start_ns, ex.end_ns) == (1_000_123_456, 1_000_123_456)


def test_message_notes_reach_the_record():
    p, got = pipeline()
    p.feed(client_events()[:2] + [
        chunk(1, False, 2_000, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        ConnectionClosed(1, 3_000)])
    [ex] = got
    assert (ex.status, ex.partial, ex.notes) == (200, True, ("truncated at eof",))


def _conn() -> Connection:
    return Connection(9, role=Role.SERVER, local=SERVER, remote=CLIENT, pid=7, comm="app", tls=True)


def test_notes_merged_without_duplicates_and_incomplete_means_partial():
    p, _ = pipeline()
    req = HttpMessage(True, 100, 110, 50, (("x-b3-traceid", "a" * 32),), method="POST", path="/p",
                      notes=("gap in headers",))
    resp = HttpMessage(False, 200, 210, 30, status=200, notes=("gap in headers", "hpack: index 70 not learned"))
    ex = p.build(_conn(), ExchangeParsed("http1", req, resp, notes=("gap in headers",)))
    assert ex.notes == ("gap in headers", "hpack: index 70 not learned")
    assert (ex.partial, ex.tls, ex.side) == (True, True, "server")
    cut = HttpMessage(False, 200, 210, 30, status=200, complete=False)
    whole = HttpMessage(True, 100, 110, 50, method="GET")
    ex = p.build(_conn(), ExchangeParsed("http1", whole, cut))
    assert (ex.partial, ex.notes) == (True, ())


def test_trace_context_from_b3_multi_headers():
    p, _ = pipeline()
    req = HttpMessage(True, 0, 0, 10, (
        ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"), ("X-B3-SpanId", "a2fb4a1d1a96d312"),
        ("X-B3-ParentSpanId", "0020000000000001"), ("X-B3-Sampled", "1"),
        ("x-request-id", "r-1")), method="GET", path="/")
    ex = p.build(_conn(), ExchangeParsed("http1", req, None))
    assert ex.to_dict()["trace"] == {
        "provider": "zipkin", "trace_id": "463ac35c9f6413ad48485a3953bb6124",
        "span_id": "a2fb4a1d1a96d312", "parent_span_id": "0020000000000001", "sampled": True,
        "segment_id": None}
    assert ex.request_id == "r-1"


def test_trace_context_from_traceparent_wins_over_b3():
    p, got = pipeline()
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    req = (b"GET / HTTP/1.1\r\nHost: h\r\ntraceparent: " + tp.encode()
           + b"\r\nb3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n\r\n")
    p.feed([ConnectionOpened(1, 0, Role.CLIENT, CLIENT, SERVER, pid=1, comm="c"),
            chunk(1, True, 10, req), chunk(1, False, 20, b"HTTP/1.1 204 No Content\r\n\r\n")])
    [ex] = got
    assert ex.trace == TraceContext("w3c", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331",
                                    None, True)
    assert ex.request_id is None


def test_malformed_trace_header_is_counted_not_reported():
    p, got = pipeline()
    req = b"GET / HTTP/1.1\r\nHost: h\r\ntraceparent: 00-zz-01\r\n\r\n"
    p.feed([ConnectionOpened(1, 0, Role.CLIENT, CLIENT, SERVER, pid=1, comm="c"),
            chunk(1, True, 10, req), chunk(1, False, 20, b"HTTP/1.1 204 No Content\r\n\r\n")])
    assert got[0].trace is None
    assert p.trace_errors == {"traceparent_too_short": 1}


def _grpc_conversation(trailers, status_headers=None) -> list:
    peers = H2Peers()
    peers.start()
    sid = peers.request([(":method", "POST"), (":scheme", "http"), (":authority", "grpc.test"),
                         (":path", "/pkg.Svc/Get"), ("content-type", "application/grpc"),
                         ("te", "trailers")], b"\x00\x00\x00\x00\x00")
    headers = status_headers or [(":status", "200"), ("content-type", "application/grpc")]
    peers.respond(sid, headers, b"\x00\x00\x00\x00\x00" if trailers else b"", trailers=trailers)
    return [ConnectionOpened(1, 0, Role.CLIENT, CLIENT, SERVER, pid=1, comm="cli")] + [
        chunk(1, from_client, 100 + i, data) for i, (from_client, data) in enumerate(peers.writes)]


def test_grpc_status_from_trailers():
    p, got = pipeline()
    p.feed(_grpc_conversation([("grpc-status", "5"), ("grpc-message", "not found")]))
    [ex] = got
    assert (ex.protocol, ex.stream_id, ex.method, ex.path, ex.authority, ex.status,
            ex.grpc_status) == ("grpc", 1, "POST", "/pkg.Svc/Get", "grpc.test", 200, 5)


def test_grpc_status_from_trailers_only_response():
    p, got = pipeline()
    p.feed(_grpc_conversation(None, [(":status", "200"), ("content-type", "application/grpc"),
                                     ("grpc-status", "14")]))
    assert [(e.protocol, e.grpc_status) for e in got] == [("grpc", 14)]


def test_grpc_status_not_a_number_is_null():
    p, got = pipeline()
    p.feed(_grpc_conversation([("grpc-status", "OK")]))
    assert [(e.protocol, e.grpc_status) for e in got] == [("grpc", None)]


def test_plain_http2_exchange_record():
    peers = H2Peers()
    peers.start()
    sid = peers.request(get("/h2"))
    peers.respond(sid, [(":status", "200")], b"x" * 10)
    p, got = pipeline()
    p.feed([ConnectionOpened(1, 0, Role.SERVER, SERVER, CLIENT, pid=2, comm="srv")]
           + [chunk(1, not c, 100 + i, d) for i, (c, d) in enumerate(peers.writes)])
    [ex] = got
    assert (ex.protocol, ex.side, ex.stream_id, ex.status, ex.grpc_status, ex.partial) == (
        "http2", "server", 1, 200, None, False)
    assert ex.response_bytes == 9 + 1 + 9 + 10  # HEADERS (":status 200" = 1 octet) + DATA


# -- JSON Lines ----------------------------------------------------------------------------------

def _doc_fields() -> list[str]:
    names = []
    for line in DOCS.read_text().splitlines():
        m = re.match(r"\|\s*([a-z_, ]+?)\s*\|", line)
        if m and m.group(1) != "field":
            names += [n.strip() for n in m.group(1).split(",")]
    return names


def test_contract_fields_are_the_documented_ones():
    assert sorted(_doc_fields()) == sorted(CONTRACT_FIELDS)


def test_jsonl_line_has_exactly_the_contract_fields(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    p, got = pipeline()
    p.observers.append(sink)
    p.feed(client_events())
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and sink.written == 1
    record = json.loads(lines[0])
    assert list(record) == list(CONTRACT_FIELDS)
    assert record == got[0].to_dict()


def test_jsonl_appends_to_an_existing_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"kind":"earlier"}\n')
    sink = JsonlSink(str(path))
    sink.write({"a": 1})
    sink.close()
    assert path.read_text() == '{"kind":"earlier"}\n{"a":1}\n'


def test_jsonl_with_headers_adds_redacted_header_lists(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path), with_headers=True, redact=Redactor().redact_headers)
    p, _ = pipeline()
    p.observers.append(sink)
    p.feed(client_events())
    sink.close()
    record = json.loads(path.read_text())
    assert list(record) == [*CONTRACT_FIELDS, "request_headers", "response_headers"]
    assert record["request_headers"] == [["Host", "shop.test"], ["Authorization", "[REDACTED]"],
                                         ["X-Request-Id", "req-77"]]
    assert record["response_headers"] == [["Content-Length", "4"], ["Set-Cookie", "[REDACTED]"]]


def test_jsonl_with_headers_includes_pseudo_headers_and_trailers_and_empty_response(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path), with_headers=True)
    p, _ = pipeline()
    p.observers.append(sink)
    p.feed(_grpc_conversation([("grpc-status", "0")]))
    p.feed(client_events(conn_id=5)[:2])
    p.finish()
    sink.close()
    first, second = (json.loads(x) for x in path.read_text().splitlines())
    assert first["request_headers"][:2] == [[":method", "POST"], [":scheme", "http"]]
    assert first["response_headers"] == [[":status", "200"], ["content-type", "application/grpc"],
                                         ["grpc-status", "0"]]
    assert second["response_headers"] == []


def test_peer_index_a_closing_connection_removes_only_its_own_entry():
    from l7scope.pipeline import PEER_GRACE_NS, PeerIndex

    idx = PeerIndex()
    a, b = ("127.0.0.1", 40000), ("127.0.0.1", 80)
    idx.learn(1, a, b, pid=10, comm="old")
    idx.closed(1, ts=0)
    idx.learn(2, a, b, pid=20, comm="new")  # the 4-tuple reused before the old one expired
    idx.expire(PEER_GRACE_NS + 1)
    assert idx.peer("127.0.0.1:80", "127.0.0.1:40000") == (20, "new")
    idx.closed(2, ts=PEER_GRACE_NS + 1)
    idx.expire(2 * PEER_GRACE_NS + 2)
    assert idx.peer("127.0.0.1:80", "127.0.0.1:40000") == (None, None)
