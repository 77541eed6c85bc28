"""ConnectionTable: hand-built capture events in, (connection, analyzer event) pairs out.

Covers protocol detection (also of messages split into iovec-sized pieces), role inference,
the "other" verdict, h2c and websocket upgrades, LRU eviction, idle expiry and stream gaps.
"""
from __future__ import annotations

from dataclasses import replace

import h2.config
import h2.connection
import pytest

from l7scope.capture.events import (
    ConnectionClosed, ConnectionOpened, Role, StreamEnded,
)
from l7scope.conn.table import ConnectionTable
from l7scope.protocols import registry
from l7scope.protocols.message import AnalyzerLimits, ExchangeParsed, ProtocolSwitched
from tests.conn.h2_peers import CLIENT_EP, SERVER_EP, H2Peers, chunk, get, pieces

REQ = b"GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n"  # 58 bytes
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"  # 40 bytes
NOT_HTTP = b"SSH-2.0-OpenSSH_9.6\r\n"


def run(table: ConnectionTable, events) -> list:
    out = []
    for ev in events:
        out += table.handle(ev)
    return out


def exchanges(out) -> list[ExchangeParsed]:
    return [e for _, e in out if type(e) is ExchangeParsed]


def brief(ex: ExchangeParsed) -> tuple:
    """What a user reads off an exchange: protocol, stream, method, path, status, notes."""
    req, resp = ex.request, ex.response
    return (ex.protocol, ex.stream_id, req.method if req else None, req.path if req else None,
            resp.status if resp else None, ex.notes)


def opened(conn_id: int = 1, role: Role = Role.CLIENT, local=CLIENT_EP, remote=SERVER_EP,
           ts: int = 10) -> ConnectionOpened:
    return ConnectionOpened(conn_id, ts, role, local, remote, pid=4242, comm="curl")


def get_req(path: str) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\n\r\n"  # 26 + len(path)


def ok_resp(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# -- HTTP/1 detection ----------------------------------------------------------------------------

def test_http1_exchange_on_a_connection_seen_from_its_start():
    t = ConnectionTable()
    out = run(t, [opened(), chunk(1, True, 100, REQ), chunk(1, False, 200, RESP)])
    [ex] = exchanges(out)
    assert brief(ex) == ("http1", None, "GET", "/a?b=1", 200, ())
    assert ex.request.authority == "example.test"
    assert (ex.request.start_ns, ex.request.end_ns, ex.request.wire_bytes) == (100, 100, 58)
    assert (ex.response.start_ns, ex.response.end_ns, ex.response.wire_bytes) == (200, 200, 40)
    assert ex.response.body == b"ok"
    conn = t.conns[1]
    assert (conn.protocol, conn.role, conn.pid, conn.comm) == ("http1", Role.CLIENT, 4242, "curl")
    assert t.counters["bytes_before_detection"] == 0


def test_http1_split_into_23_byte_pieces_before_detection():
    t = ConnectionTable()
    events = [opened()]
    events += [chunk(1, True, 100 + i, p) for i, p in enumerate(pieces(REQ, 23))]
    events += [chunk(1, False, 200 + i, p) for i, p in enumerate(pieces(RESP, 23))]
    [ex] = exchanges(run(t, events))
    assert brief(ex) == ("http1", None, "GET", "/a?b=1", 200, ())
    # the message starts at the first piece (held while undecided) and ends at the last
    assert (ex.request.start_ns, ex.request.end_ns, ex.request.wire_bytes) == (100, 102, 58)
    assert (ex.response.start_ns, ex.response.end_ns, ex.response.wire_bytes) == (200, 201, 40)
    assert ex.response.body == b"ok"
    assert t.counters["bytes_before_detection"] == 0


def test_http1_request_split_at_every_byte_is_detected():
    for cut in range(1, len(REQ)):
        t = ConnectionTable()
        out = run(t, [opened(), chunk(1, True, 100, REQ[:cut]), chunk(1, True, 101, REQ[cut:]),
                      chunk(1, False, 200, RESP)])
        assert [brief(e) for e in exchanges(out)] == [("http1", None, "GET", "/a?b=1", 200, ())], cut
        assert t.counters["bytes_before_detection"] == 0, cut


def test_held_bytes_are_fed_when_the_other_direction_decides():
    t = ConnectionTable()
    out = run(t, [opened(), chunk(1, True, 100, b"GE"), chunk(1, False, 150, RESP),
                  chunk(1, True, 300, get_req("/b")), chunk(1, False, 400, ok_resp(b"b"))])
    # "GE" (undecided: held) is fed first once the response decides the protocol; the client's
    # stream really is "GE" + "GET /b ...", so its next request line reads "GEGET"
    assert [brief(e) for e in exchanges(out)] == [
        ("http1", None, None, None, 200, ("request not seen",)),
        ("http1", None, "GEGET", "/b", 200, ())]
    assert t.counters["bytes_before_detection"] == 0


# -- roles ---------------------------------------------------------------------------------------

def test_role_server_from_an_incoming_request():
    t = ConnectionTable()
    out = run(t, [chunk(7, False, 100, REQ, local=SERVER_EP, remote=CLIENT_EP, pid=1, comm="srv"),
                  chunk(7, True, 200, RESP, local=SERVER_EP, remote=CLIENT_EP)])
    [ex] = exchanges(out)
    assert brief(ex) == ("http1", None, "GET", "/a?b=1", 200, ())
    conn = t.conns[7]
    assert conn.role is Role.SERVER and not conn.client_is_local()
    assert not conn.seen_from_start
    assert (conn.pid, conn.comm, conn.local, conn.remote) == (1, "srv", SERVER_EP, CLIENT_EP)


def test_role_client_from_an_outgoing_request():
    t = ConnectionTable()
    run(t, [chunk(7, True, 100, REQ, local=CLIENT_EP, remote=SERVER_EP)])
    assert t.conns[7].role is Role.CLIENT


def test_role_from_a_response_when_the_request_predates_the_capture():
    t = ConnectionTable()
    out = run(t, [chunk(7, True, 100, RESP, local=SERVER_EP, remote=CLIENT_EP),
                  chunk(8, False, 100, RESP, local=CLIENT_EP, remote=SERVER_EP)])
    assert (t.conns[7].role, t.conns[8].role) == (Role.SERVER, Role.CLIENT)
    assert [brief(e) for e in exchanges(out)] == [
        ("http1", None, None, None, 200, ("request not seen",))] * 2


def test_role_carried_by_the_chunk_wins_over_the_message_direction():
    t = ConnectionTable()
    run(t, [chunk(7, False, 100, b"x", role=Role.UNKNOWN, local=SERVER_EP, remote=CLIENT_EP),
            chunk(7, False, 101, b"y", role=Role.CLIENT)])
    assert t.conns[7].role is Role.CLIENT


def test_role_server_from_an_incoming_http2_preface():
    peers = H2Peers()
    peers.start()
    first_client_write = peers.writes[0][1]
    t = ConnectionTable()
    run(t, [chunk(3, False, 100, first_client_write, local=SERVER_EP, remote=CLIENT_EP)])
    assert (t.conns[3].protocol, t.conns[3].role) == ("http2", Role.SERVER)


def _midstream_h2_writes() -> list[tuple[bool, bytes]]:
    """The writes of a GET and its response, after the preface and SETTINGS exchange."""
    peers = H2Peers()
    peers.start()
    skip = len(peers.writes)
    sid = peers.request(get("/mid"))
    peers.respond(sid, [(":status", "201"), ("content-length", "3")], b"abc")
    return peers.writes[skip:]


@pytest.mark.parametrize("local, remote, listening, role", [
    (("10.0.0.2", 8080), ("10.0.0.1", 3000), {8080}, Role.SERVER),  # listening port wins
    (("10.0.0.1", 3000), ("10.0.0.2", 8080), {8080}, Role.CLIENT),
    (("10.0.0.1", 45000), ("10.0.0.2", 8080), None, Role.CLIENT),  # ephemeral port is the client
    (("10.0.0.2", 8080), ("10.0.0.1", 45000), None, Role.SERVER),
    (("10.0.0.1", 5000), ("10.0.0.2", 3000), None, Role.CLIENT),  # both low: the higher one
    (("10.0.0.1", 3000), ("10.0.0.2", 5000), None, Role.SERVER),
    (("10.0.0.2", 8080), ("10.0.0.1", 3000), set(), Role.CLIENT),  # nothing listens: ports
])
def test_role_of_midstream_http2_from_listening_ports_or_port_heuristic(local, remote, listening,
                                                                       role):
    """HTTP/2 frames without the preface do not say who the client is."""
    writes = _midstream_h2_writes()
    t = ConnectionTable(listening=listening)
    client_is_local = role is Role.CLIENT
    events = [chunk(5, from_client == client_is_local, 100 + i, data, local=local, remote=remote)
              for i, (from_client, data) in enumerate(writes)]
    out = run(t, events)
    assert t.conns[5].role is role
    assert [brief(e) for e in exchanges(out)] == [("http2", 1, "GET", "/mid", 201, ())]


def test_midstream_http2_split_into_23_byte_pieces():
    writes = _midstream_h2_writes()
    t = ConnectionTable(listening={8080})
    events, ts = [], 100
    for from_client, data in writes:
        for p in pieces(data, 23):
            events.append(chunk(5, from_client, ts, p, local=CLIENT_EP, remote=SERVER_EP))
            ts += 1
    [ex] = exchanges(run(t, events))
    assert brief(ex) == ("http2", 1, "GET", "/mid", 201, ())
    assert ex.response.body == b"abc"
    assert t.conns[5].role is Role.CLIENT
    assert t.counters["bytes_before_detection"] == 0


def test_http2_from_the_preface_split_into_23_byte_pieces():
    peers = H2Peers()
    peers.start()
    sid = peers.request(get("/p"), b"ping")
    peers.respond(sid, [(":status", "200"), ("content-type", "text/plain")], b"pong")
    t = ConnectionTable()
    events, ts = [opened(9)], 100
    for from_client, data in peers.writes:
        for p in pieces(data, 23):
            events.append(chunk(9, from_client, ts, p))
            ts += 1
    [ex] = exchanges(run(t, events))
    assert brief(ex) == ("http2", 1, "GET", "/p", 200, ())
    assert (ex.request.body, ex.response.body) == (b"ping", b"pong")
    assert ex.request.authority == "api.test"
    assert t.counters["bytes_before_detection"] == 0


# -- not HTTP ------------------------------------------------------------------------------------

def test_other_after_max_undetected_messages():
    t = ConnectionTable(max_undetected=3)
    out = run(t, [opened(), *(chunk(1, i % 2 == 0, 100 + i, NOT_HTTP) for i in range(3)),
                  chunk(1, True, 200, REQ), chunk(1, False, 300, RESP)])
    assert out == []
    assert t.conns[1].protocol == "other"
    assert t.counters["connections_other"] == 1
    assert t.counters["bytes_before_detection"] == 3 * len(NOT_HTTP)


def test_http_still_detected_before_max_undetected():
    t = ConnectionTable(max_undetected=3)
    out = run(t, [opened(), chunk(1, True, 100, NOT_HTTP), chunk(1, False, 101, NOT_HTTP),
                  chunk(1, True, 200, REQ), chunk(1, False, 300, RESP)])
    assert [brief(e) for e in exchanges(out)] == [("http1", None, "GET", "/a?b=1", 200, ())]
    assert t.counters["connections_other"] == 0
    assert t.counters["bytes_before_detection"] == 2 * len(NOT_HTTP)


def test_websocket_upgrade_marks_the_connection_other():
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    switched = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    t = ConnectionTable()
    out = run(t, [opened(), chunk(1, True, 100, upgrade), chunk(1, False, 200, switched),
                  chunk(1, True, 300, b"\x81\x85" + b"GET / HTTP/1.1\r\n")])
    assert [brief(e) for e in exchanges(out)] == [("http1", None, "GET", "/ws", 101, ())]
    assert [e for _, e in out if type(e) is ProtocolSwitched] == [ProtocolSwitched("websocket", 200)]
    assert t.conns[1].protocol == "other"
    assert t.counters["connections_other"] == 1


# -- h2c -----------------------------------------------------------------------------------------

class H2cUpgrade:
    """A real h2c upgrade (RFC 7540 3.2): HTTP/1.1 request with Upgrade: h2c and HTTP2-Settings,
    101, then HTTP/2 with the response to the upgrade request on stream 1, then stream 3."""

    def __init__(self):
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        settings = client.initiate_upgrade_connection()
        self.request = (b"GET /up HTTP/1.1\r\nHost: h2c.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                        b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n")
        self.switched = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        server.initiate_upgrade_connection(settings)
        self.client_preface = client.data_to_send()  # preface + SETTINGS
        server.receive_data(self.client_preface)
        server.send_headers(1, [(":status", "200"), ("content-length", "2")])
        server.send_data(1, b"hi", end_stream=True)
        self.server_frames = server.data_to_send()  # SETTINGS, ACK, stream 1 response
        client.receive_data(self.server_frames)
        client.send_headers(3, get("/three", "h2c.test"), end_stream=True)
        self.client_stream3 = client.data_to_send()
        server.receive_data(self.client_stream3)
        server.send_headers(3, [(":status", "404")], end_stream=True)
        self.server_stream3 = server.data_to_send()

    def events(self, same_write: bool) -> list:
        events = [opened(2), chunk(2, True, 100, self.request)]
        if same_write:
            events.append(chunk(2, False, 200, self.switched + self.server_frames))
        else:
            events += [chunk(2, False, 200, self.switched), chunk(2, False, 210, self.server_frames)]
        return events + [chunk(2, True, 300, self.client_preface + self.client_stream3),
                         chunk(2, False, 400, self.server_stream3)]


def test_h2c_upgrade_switches_to_the_http2_analyzer():
    up = H2cUpgrade()
    t = ConnectionTable()
    out = run(t, up.events(same_write=False))
    assert [e for _, e in out if type(e) is ProtocolSwitched] == [ProtocolSwitched("h2c", 200)]
    by_stream = {e.stream_id: e for e in exchanges(out)}
    assert brief(by_stream[None]) == ("http1", None, "GET", "/up", 101, ())
    assert brief(by_stream[3]) == ("http2", 3, "GET", "/three", 404, ())
    assert by_stream[3].request.authority == "h2c.test"
    assert (by_stream[1].response.status, by_stream[1].response.body) == (200, b"hi")
    assert t.conns[2].protocol == "http2"
    assert t.counters["connections_other"] == 0


def test_h2c_switch_follows_the_registry_entry():
    """The table hands the connection to whatever protocol HTTP/1's entry names for "h2c":
    without that line the connection is "other" after the 101, like a websocket."""
    previous = registry.install((replace(registry.HTTP1, upgrades={}), registry.HTTP2))
    try:
        t = ConnectionTable()
        out = run(t, H2cUpgrade().events(same_write=False))
    finally:
        registry.install(previous)
    assert [brief(e) for e in exchanges(out)] == [("http1", None, "GET", "/up", 101, ())]
    assert t.conns[2].protocol == "other" and t.counters["connections_other"] == 1


def test_h2c_stream_1_is_the_upgrade_request():
    t = ConnectionTable()
    out = run(t, H2cUpgrade().events(same_write=False))
    stream1 = [e for e in exchanges(out) if e.stream_id == 1]
    assert [brief(e) for e in stream1] == [("http2", 1, "GET", "/up", 200, ())]


def test_h2c_frames_in_the_same_write_as_the_101_are_analyzed():
    t = ConnectionTable()
    out = run(t, H2cUpgrade().events(same_write=True))
    assert sorted(e.stream_id or 0 for e in exchanges(out)) == [0, 1, 3]


# -- bounds: LRU eviction and idle expiry -------------------------------------------------------

def test_lru_eviction_flushes_pending_exchange_and_counts():
    t = ConnectionTable(max_connections=2)
    out = run(t, [opened(1, ts=10), chunk(1, True, 100, get_req("/one")),
                  opened(2, ts=20), chunk(2, True, 110, get_req("/two"))])
    assert out == []
    out = run(t, [chunk(1, True, 120, b"")])  # touch 1: now 2 is the least recently used
    out = run(t, [opened(3, ts=500)])
    assert [(c.conn_id, brief(e)) for c, e in out] == [
        (2, ("http1", None, "GET", "/two", None, ("no response",)))]
    assert list(t.conns) == [1, 3]
    assert t.counters["connections_evicted"] == 1


def test_lru_eviction_by_data_of_a_new_connection():
    t = ConnectionTable(max_connections=1)
    run(t, [opened(1), chunk(1, True, 100, get_req("/one"))])
    out = run(t, [chunk(2, True, 200, get_req("/two"), local=CLIENT_EP, remote=SERVER_EP)])
    assert [(c.conn_id, brief(e)) for c, e in out] == [
        (1, ("http1", None, "GET", "/one", None, ("no response",)))]
    assert list(t.conns) == [2]
    assert t.counters["connections_evicted"] == 1


def test_idle_expiry_flushes_at_exactly_the_timeout():
    t = ConnectionTable(idle_timeout_ns=1000)
    run(t, [opened(1, ts=10), chunk(1, True, 100, get_req("/idle")),
            opened(2, ts=50), chunk(2, True, 600, get_req("/busy"))])
    assert t.expire(1099) == []
    out = t.expire(1100)
    assert [(c.conn_id, brief(e)) for c, e in out] == [
        (1, ("http1", None, "GET", "/idle", None, ("no response",)))]
    assert list(t.conns) == [2]
    assert t.counters["connections_expired"] == 1
    assert t.expire(1599) == []
    assert [c.conn_id for c, _ in t.expire(1600)] == [2]
    assert t.counters["connections_expired"] == 2


# -- connection end ------------------------------------------------------------------------------

def test_connection_closed_flushes_and_forgets():
    t = ConnectionTable()
    out = run(t, [opened(), chunk(1, True, 100, REQ), ConnectionClosed(1, 900)])
    assert [brief(e) for e in exchanges(out)] == [("http1", None, "GET", "/a?b=1", None, ("no response",))]
    assert 1 not in t.conns


def test_stream_ended_completes_a_close_delimited_response():
    t = ConnectionTable()
    body_until_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    out = run(t, [opened(), chunk(1, True, 100, REQ), chunk(1, False, 200, body_until_close)])
    assert exchanges(out) == []
    out = run(t, [StreamEnded(1, egress=False, ts=300)])
    [ex] = exchanges(out)
    assert brief(ex) == ("http1", None, "GET", "/a?b=1", 200, ())
    assert (ex.response.body, ex.response.end_ns, ex.response.complete) == (b"all of it", 200, True)


def test_reopened_conn_id_flushes_the_old_connection():
    t = ConnectionTable()
    out = run(t, [opened(1), chunk(1, True, 100, REQ), opened(1, ts=500)])
    assert [brief(e) for e in exchanges(out)] == [("http1", None, "GET", "/a?b=1", None, ("no response",))]
    assert t.conns[1].protocol is None


def test_close_all_flushes_every_connection():
    t = ConnectionTable()
    run(t, [opened(1), chunk(1, True, 100, get_req("/x")), opened(2), chunk(2, True, 100, get_req("/y"))])
    out = t.close_all(1000)
    assert [(c.conn_id, e.request.path) for c, e in out] == [(1, "/x"), (2, "/y")]
    assert t.conns == {}


# -- gaps ----------------------------------------------------------------------------------------

class KeepAlive:
    """Requests /1../n on one connection with TCP sequence numbers, as the client socket sees."""

    def __init__(self, n: int):
        self.requests = [get_req(f"/{i}") for i in range(1, n + 1)]
        self.responses = [ok_resp(f"body{i}".encode()) for i in range(1, n + 1)]

    def events(self, lose_request: int | None = None, lose_response: int | None = None,
               hole_request: int | None = None) -> list:
        events, cseq, sseq = [opened(1)], 1000, 70000
        for i, (q, r) in enumerate(zip(self.requests, self.responses), start=1):
            if i == hole_request:
                events.append(chunk(1, True, 100 * i, b"", seq=cseq, length=len(q)))
            elif i != lose_request:
                events.append(chunk(1, True, 100 * i, q, seq=cseq))
            if i != lose_response:
                events.append(chunk(1, False, 100 * i + 50, r, seq=sseq))
            cseq, sseq = cseq + len(q), sseq + len(r)
        return events


def test_in_order_keepalive_with_sequence_numbers():
    t = ConnectionTable()
    out = run(t, KeepAlive(3).events())
    assert [brief(e) for e in exchanges(out)] == [
        ("http1", None, "GET", f"/{i}", 200, ()) for i in (1, 2, 3)]
    assert [e.response.body for e in exchanges(out)] == [b"body1", b"body2", b"body3"]


def test_known_length_hole_in_a_request_then_exact_exchanges():
    t = ConnectionTable()
    out = run(t, KeepAlive(3).events(hole_request=2))
    assert [brief(e) for e in exchanges(out)] == [
        ("http1", None, "GET", "/1", 200, ()),
        ("http1", None, None, None, 200, ("request lost in gap",)),
        ("http1", None, "GET", "/3", 200, ())]
    assert exchanges(out)[1].response.body == b"body2"


def test_lost_response_record_becomes_a_skip_and_a_later_exchange_is_exact():
    t = ConnectionTable()
    out = run(t, KeepAlive(4).events(lose_response=2))
    # The hole (46 bytes) is seen when response 3 arrives: the analyzer cannot know how many
    # responses it held, so both waiting requests are flushed, never paired with a wrong one.
    assert [brief(e) for e in exchanges(out)] == [
        ("http1", None, "GET", "/1", 200, ()),
        ("http1", None, "GET", "/2", None, ("response lost in gap",)),
        ("http1", None, "GET", "/3", None, ("response lost in gap",)),
        ("http1", None, None, None, 200, ("request not seen",)),
        ("http1", None, "GET", "/4", 200, ())]
    assert exchanges(out)[-1].response.body == b"body4"
    assert t.conns[1].ingress_pos.gap_bytes == len(KeepAlive(4).responses[1])


def test_lost_request_record_then_the_next_exchange_is_exact():
    t = ConnectionTable()
    out = run(t, KeepAlive(3).events(lose_request=2))
    out += t.close_all(10_000)
    assert [brief(e) for e in exchanges(out)] == [
        ("http1", None, "GET", "/1", 200, ()),
        ("http1", None, None, None, 200, ("request not seen",)),
        ("http1", None, "GET", "/3", 200, ())]


def test_gap_bytes_are_counted():
    t = ConnectionTable()
    run(t, KeepAlive(3).events(lose_response=2))
    assert (t.counters["stream_gap_bytes"], t.counters["stream_overlap_bytes"]) == (
        len(KeepAlive(3).responses[1]), 0)


def test_dropped_pipelined_requests_are_counted_when_dropped_not_when_the_connection_ends():
    t = ConnectionTable(limits=AnalyzerLimits(max_pending=2))
    assert "http1_dropped_pending" not in t.counters  # no HTTP/1 connection yet
    run(t, [opened(), chunk(1, True, 100, get_req("/0") + get_req("/1"))])
    assert t.counters["http1_dropped_pending"] == 0
    run(t, [chunk(1, True, 110, get_req("/2"), seq=None)])
    assert t.counters["http1_dropped_pending"] == 1  # the connection is still open
    run(t, [chunk(1, True, 120, get_req("/3") + get_req("/4"), seq=None)])
    assert t.counters["http1_dropped_pending"] == 3
    assert t.conns[1].analyzer.counters()["dropped_pending"] == 3  # the per-connection view
    run(t, [ConnectionClosed(1, 200)])
    assert t.counters["http1_dropped_pending"] == 3  # not counted a second time at the end


def test_counters_of_two_connections_add_up_live():
    t = ConnectionTable(limits=AnalyzerLimits(max_pending=1))
    for conn_id in (1, 2):
        run(t, [opened(conn_id), chunk(conn_id, True, 100, get_req("/a") + get_req("/b"))])
    run(t, [chunk(2, False, 150, b"HTTP/1.1 100 Continue\r\n\r\n")])
    assert (t.counters["http1_dropped_pending"], t.counters["http1_interim_responses"]) == (2, 1)
    run(t, [chunk(1, False, 160, b"garbage that is no status line\r\n")])
    assert t.counters["http1_parse_errors"] == 1


def test_retransmitted_chunk_is_not_parsed_twice():
    t = ConnectionTable()
    events = KeepAlive(2).events()
    events.insert(3, events[1])  # the first request again (MSG_PEEK, retransmission)
    out = run(t, events)
    assert [brief(e) for e in exchanges(out)] == [
        ("http1", None, "GET", "/1", 200, ()), ("http1", None, "GET", "/2", 200, ())]
    assert t.conns[1].egress_pos.overlap_bytes == len(KeepAlive(2).requests[0])


def test_midstream_http2_small_first_request_is_kept():
    peers = H2Peers()
    peers.start()
    skip = len(peers.writes)
    sid = peers.request(get("/x"))
    peers.respond(sid, [(":status", "200")], b"abc")
    writes = peers.writes[skip:]
    assert len(writes[0][1]) == 23 and writes[0][0]  # the request: one 23-octet HEADERS frame
    t = ConnectionTable(listening={8080})
    out = run(t, [chunk(5, c, 100 + i, d, local=CLIENT_EP, remote=SERVER_EP)
                  for i, (c, d) in enumerate(writes)])
    assert [brief(e) for e in exchanges(out)] == [("http2", 1, "GET", "/x", 200, ())]


def test_a_hole_in_the_other_direction_keeps_held_bytes():
    t = ConnectionTable()
    req = get_req("/kept")
    out = run(t, [opened(), chunk(1, True, 100, req[:2], seq=1000),  # "GE": undecided, held
                  chunk(1, False, 110, b"", seq=5000), chunk(1, False, 120, b"", seq=5007),
                  chunk(1, True, 130, req[2:], seq=1002)])
    assert t.conns[1].protocol == "http1"
    out += run(t, [chunk(1, False, 140, ok_resp(b"k"), seq=5007 + 0)])
    assert [brief(e) for e in exchanges(out)] == [("http1", None, "GET", "/kept", 200, ())]
