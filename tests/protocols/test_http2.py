"""Http2Analyzer against real h2 peers: exact headers, bodies, sizes; any split of the bytes."""
from __future__ import annotations

import random

import h2.settings
import pytest
from hyperframe.frame import Frame as HFrame

from l7scope.protocols.http2 import Http2Analyzer, grpc_status
from l7scope.protocols.message import AnalyzerLimits, ExchangeParsed, ParseError

from .test_http2_conversations import PREFACE, Conversation, get, ok


def frames_of(conv: Conversation, from_client: bool) -> list[tuple[int, int, int, int, int]]:
    """(offset, type, flags, stream id, length) of every frame of a direction (hyperframe)."""
    data = conv.bytes_of(from_client)
    pos = len(PREFACE) if from_client else 0
    out = []
    while pos < len(data):
        frame, length = HFrame.parse_frame_header(memoryview(data[pos:pos + 9]))
        out.append((pos, frame.type, int.from_bytes(data[pos + 4:pos + 5], "big"),
                    frame.stream_id, length))
        pos += 9 + length
    return out


def wire_bytes(conv: Conversation, from_client: bool, sid: int) -> int:
    return sum(9 + length for _, _, _, s, length in frames_of(conv, from_client) if s == sid)


def run(conv: Conversation, split: str = "whole", seed: int = 0,
        analyzer: Http2Analyzer | None = None) -> tuple[dict[int, ExchangeParsed], list]:
    analyzer = analyzer or Http2Analyzer()
    rng = random.Random(seed)
    events = []
    for ts, (from_client, data) in enumerate(conv.chunks, start=1):
        for piece in pieces(data, split, rng):
            events += analyzer.feed(from_client, piece, ts)
    events += analyzer.eof(10_000)
    return exchanges_of(events), [e for e in events if isinstance(e, ParseError)]


def pieces(data: bytes, split: str, rng: random.Random) -> list[bytes]:
    if split == "whole":
        return [data]
    if split == "bytes":
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(5, len(data) - 1))) if len(data) > 1 else []
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def exchanges_of(events) -> dict[int, ExchangeParsed]:
    found = {}
    for event in events:
        if isinstance(event, ExchangeParsed):
            assert event.stream_id not in found
            found[event.stream_id] = event
    return found


def rich_conversation() -> Conversation:
    conv = Conversation()
    sids = [conv.request(get(f"/item/{n}", n)) for n in range(6)]  # 6 streams open at once
    large = get("/large", 99) + [("x-large", "L" * 40_000)]  # forces CONTINUATION frames
    sids.append(conv.request(large))
    post = [(":method", "POST"), (":scheme", "https"), (":authority", "api.example.com"),
            (":path", "/upload"), ("content-type", "application/json")]
    sids.append(conv.request(post, b'{"k": "' + b"v" * 3000 + b'"}', pad=17))
    for n, sid in reversed(list(enumerate(sids))):  # answered out of order
        body = f"body-{n}-".encode() * (n + 1) * 300
        trailers = [("x-checksum", f"c-{n}")] if n % 3 == 0 else None
        info = [(":status", "103"), ("link", "</a.css>")] if n == 2 else None
        conv.respond(sid, ok(n), body, pad=8 if n % 2 else 0, trailers=trailers,
                     informational=info)
    return conv


def assert_exact(conv: Conversation, found: dict[int, ExchangeParsed]) -> None:
    assert sorted(found) == sorted(conv.responses)
    for sid, sent in conv.requests.items():
        exchange, answer = found[sid], conv.responses[sid]
        assert exchange.protocol == "http2" and exchange.notes == ()
        request, response = exchange.request, exchange.response
        assert list(request.headers) == sent.headers and request.body_len == len(sent.body)
        assert request.method == dict(sent.headers)[":method"]
        assert request.path == dict(sent.headers)[":path"]
        assert request.authority == "api.example.com" and request.version == "HTTP/2"
        assert request.body == sent.body[:4096] and request.complete and not request.notes
        assert request.wire_bytes == wire_bytes(conv, True, sid)
        assert list(response.headers) == answer.headers and response.status == 200
        assert list(response.trailers) == answer.trailers
        assert response.body == answer.body[:4096] and response.body_len == len(answer.body)
        assert response.wire_bytes == wire_bytes(conv, False, sid)
        assert response.complete and not response.notes and response.stream_id == sid
        assert request.start_ns <= response.start_ns <= response.end_ns


@pytest.mark.parametrize("split,seed", [("whole", 0), ("bytes", 0)] +
                         [("random", s) for s in range(5)])
def test_rich_conversation_exact_at_any_split(split, seed):
    conv = rich_conversation()
    found, errors = run(conv, split, seed)
    assert errors == []
    assert_exact(conv, found)


def test_continuation_and_padding_really_present():
    conv = rich_conversation()
    client_types = {t for _, t, _, _, _ in frames_of(conv, True)}
    padded = [f for f in frames_of(conv, False) if f[1] == 0 and f[2] & 0x8]
    assert 9 in client_types and padded


def test_all_in_one_feed_per_direction_with_timestamps():
    conv = Conversation()
    sid = conv.request(get("/one", 1))
    conv.respond(sid, ok(1), b"abc")
    analyzer = Http2Analyzer()
    events = analyzer.feed(True, conv.bytes_of(True), 100)
    events += analyzer.feed(False, conv.bytes_of(False), 200)
    (exchange,) = [e for e in events if isinstance(e, ExchangeParsed)]
    assert exchange.request.start_ns == 100 and exchange.request.end_ns == 100
    assert exchange.response.start_ns == 200 and exchange.response.end_ns == 200
    assert exchange.response.body == b"abc"


@pytest.mark.parametrize("client_size,server_size", [(256, None), (0, None), (None, 100),
                                                     (1024, 300)])
def test_settings_header_table_size_bounds_the_other_direction(client_size, server_size):
    csettings = {h2.settings.SettingCodes.HEADER_TABLE_SIZE: client_size} if client_size is not None else None
    ssettings = {h2.settings.SettingCodes.HEADER_TABLE_SIZE: server_size} if server_size is not None else None
    conv = Conversation(csettings, ssettings)
    for n in range(30):
        sid = conv.request(get(f"/s/{n}", n))
        conv.respond(sid, ok(n), b"x")
    found, errors = run(conv)
    assert errors == []
    assert_exact(conv, found)
    analyzer = Http2Analyzer()
    run(conv, analyzer=analyzer)
    if client_size is not None:
        assert analyzer._dirs[False].decoder.max_table_size == client_size
    if server_size is not None:
        assert analyzer._dirs[True].decoder.max_table_size == server_size


def test_rst_stream_goaway_and_eof():
    conv = Conversation()
    s1 = conv.request(get("/cancelled", 1))
    conv.client.reset_stream(s1, error_code=8)
    conv.pump()
    s3 = conv.request(get("/slow", 3))
    s5 = conv.request(get("/late", 5))
    conv.server.close_connection(error_code=0, last_stream_id=s3)
    conv.pump()
    found, errors = run(conv)
    assert errors == []
    assert found[s1].notes == ("reset: CANCEL",) and found[s1].response is None
    assert found[s1].request.path == "/cancelled"
    assert found[s5].notes == ("goaway: stream not processed (NO_ERROR)",)
    assert found[s3].notes == ("connection closed before the stream ended",)
    assert found[s3].request.complete and found[s3].response is None


def test_client_goaway_does_not_end_the_clients_own_streams():
    # RFC 9113 6.8: the last stream id names streams initiated by the GOAWAY's receiver; a
    # client's GOAWAY(last=0) says no pushed stream was processed, nothing about its requests.
    conv = Conversation()
    sid = conv.request(get("/in-flight", 1))
    before_response = len(conv.chunks)
    conv.respond(sid, ok(5), b"after")
    conv.client.close_connection(error_code=0, last_stream_id=0)
    conv.pump()
    goaway = conv.chunks.pop()  # h2 cannot answer after a GOAWAY: move it before the answer
    assert goaway[0] and goaway[1][3] == 7
    conv.chunks.insert(before_response, goaway)
    found, errors = run(conv)
    assert errors == []
    assert found[sid].notes == () and found[sid].response.status == 200
    assert found[sid].request.path == "/in-flight"


def test_stream_reset_after_response_headers_is_incomplete():
    conv = Conversation()
    sid = conv.request(get("/partial", 1))
    conv.server.send_headers(sid, ok(1))
    conv.server.send_data(sid, b"part")
    conv.server.reset_stream(sid, error_code=2)
    conv.pump()
    found, _ = run(conv)
    response = found[sid].response
    assert found[sid].notes == ("reset: INTERNAL_ERROR",)
    assert not response.complete and response.body == b"part" and response.status == 200


def test_open_streams_are_bounded_and_drops_counted():
    conv = Conversation()
    for n in range(12):
        conv.request(get(f"/open/{n}", n))
    analyzer = Http2Analyzer(AnalyzerLimits(max_pending=1))  # 8 streams
    found, _ = run(conv, analyzer=analyzer)
    assert analyzer.dropped_streams == 4
    dropped = [sid for sid, e in found.items()
               if e.notes == ("stream dropped: too many open streams",)]
    assert dropped == [1, 3, 5, 7]


def test_grpc_normal_trailers_and_trailers_only():
    conv = Conversation()
    grpc_request = [(":method", "POST"), (":scheme", "http"), (":authority", "grpc.local"),
                    (":path", "/pkg.Svc/Get"), ("content-type", "application/grpc"),
                    ("te", "trailers")]
    message = b"\x00\x00\x00\x00\x05hello"
    s1 = conv.request(grpc_request, message)
    conv.respond(s1, [(":status", "200"), ("content-type", "application/grpc+proto")],
                 b"\x00\x00\x00\x00\x02ok", trailers=[("grpc-status", "0"), ("grpc-message", "")])
    s3 = conv.request(grpc_request, message)
    conv.respond(s3, [(":status", "200"), ("content-type", "application/grpc"),
                      ("grpc-status", "5"), ("grpc-message", "not found")])
    found, _ = run(conv)
    assert found[s1].protocol == found[s3].protocol == "grpc"
    assert grpc_status(found[s1]) == 0 and grpc_status(found[s3]) == 5
    assert found[s1].response.header("grpc-message") == ""
    assert found[s3].response.header("grpc-message") == "not found"
    assert found[s3].response.complete and found[s3].response.trailers == ()
    assert found[s1].request.body == message


def test_push_promise_keeps_hpack_in_sync():
    conv = Conversation()
    sid = conv.request(get("/page", 1))
    pushed = conv.server.get_next_available_stream_id()
    conv.server.push_stream(sid, pushed, get("/pushed.css", 2) + [("x-push", "yes")])
    conv.server.send_headers(pushed, ok(2) + [("x-push", "yes")], end_stream=True)
    conv.respond(sid, ok(1) + [("x-push", "yes")], b"page")
    s3 = conv.request(get("/after", 3))
    conv.respond(s3, ok(3) + [("x-push", "yes")])
    conv.requests.pop(pushed, None)
    found, errors = run(conv)
    assert errors == [] and pushed not in found
    assert list(found[s3].response.headers) == ok(3) + [("x-push", "yes")]
    assert list(found[sid].response.headers) == ok(1) + [("x-push", "yes")]
