"""Real HTTP/2 conversations between two h2 peers in memory, recorded as the analyzer sees them.

The other test_http2*.py modules import ``Conversation``; the tests here check the recorder.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings

from l7scope.protocols.http2 import PREFACE


@dataclass
class Sent:
    """What one side sent on one stream, to compare with what the analyzer reports."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    wire_bytes: int = 0


class Conversation:
    """A client and a server H2Connection talking in memory; ``chunks`` is the capture."""

    def __init__(self, client_settings: dict | None = None,
                 server_settings: dict | None = None) -> None:
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
        self.chunks: list[tuple[bool, bytes]] = []
        self.requests: dict[int, Sent] = {}
        self.responses: dict[int, Sent] = {}
        self.client.local_settings = h2.settings.Settings(
            client=True, initial_values=client_settings or {})
        self.client.initiate_connection()
        self.pump()
        if server_settings:
            self.server.local_settings = h2.settings.Settings(
                client=False, initial_values=server_settings)
        self.server.initiate_connection()
        self.pump()

    def pump(self) -> None:
        """Deliver everything both sides have to send until both are quiet."""
        while True:
            moved = False
            for from_client, sender, receiver in ((True, self.client, self.server),
                                                  (False, self.server, self.client)):
                data = sender.data_to_send()
                if data:
                    moved = True
                    self.chunks.append((from_client, data))
                    for event in receiver.receive_data(data):
                        if isinstance(event, h2.events.DataReceived):
                            receiver.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id)
            if not moved:
                return

    def request(self, headers: list[tuple[str, str]], body: bytes = b"", pad: int = 0,
                trailers: list[tuple[str, str]] | None = None, end: bool = True) -> int:
        sid = self.client.get_next_available_stream_id()
        self.requests[sid] = Sent(list(headers), body, list(trailers or []))
        only_headers = not body and not trailers and end
        self.client.send_headers(sid, headers, end_stream=only_headers)
        if body:
            self._send_body(self.client, sid, body, not trailers and end, pad)
        if trailers:
            self.client.send_headers(sid, trailers, end_stream=True)
        self.pump()
        return sid

    def respond(self, sid: int, headers: list[tuple[str, str]], body: bytes = b"",
                pad: int = 0, trailers: list[tuple[str, str]] | None = None,
                informational: list[tuple[str, str]] | None = None) -> None:
        self.responses[sid] = Sent(list(headers), body, list(trailers or []))
        if informational:
            self.server.send_headers(sid, informational)
        self.server.send_headers(sid, headers, end_stream=not body and not trailers)
        if body:
            self._send_body(self.server, sid, body, not trailers, pad)
        if trailers:
            self.server.send_headers(sid, trailers, end_stream=True)
        self.pump()

    def _send_body(self, conn, sid: int, body: bytes, end: bool, pad: int) -> None:
        """DATA frames within the frame size and flow-control window, padded if asked."""
        while body:
            room = min(conn.max_outbound_frame_size - (pad + 1 if pad else 0),
                       conn.local_flow_control_window(sid) - (pad + 1 if pad else 0))
            piece, body = body[:room], body[room:]
            conn.send_data(sid, piece, end_stream=end and not body, pad_length=pad or None)
            self.pump()

    def bytes_of(self, from_client: bool) -> bytes:
        return b"".join(data for side, data in self.chunks if side == from_client)


def get(path: str, n: int) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "https"), (":authority", "api.example.com"),
            (":path", path), ("user-agent", "l7scope-test/1.0"), ("x-custom", f"value-{n}")]


def ok(n: int, content_type: str = "text/plain") -> list[tuple[str, str]]:
    return [(":status", "200"), ("content-type", content_type), ("x-response", f"r-{n}"),
            ("server", "h2-test")]


def test_conversation_starts_with_the_preface_and_delivers():
    conv = Conversation()
    sid = conv.request(get("/a", 1))
    conv.respond(sid, ok(1), b"hello")
    assert conv.bytes_of(True).startswith(PREFACE)
    assert sid == 1 and conv.responses[1].body == b"hello"
    assert conv.client.streams == {} or 1 not in conv.client.streams or \
        conv.client.streams[1].closed
