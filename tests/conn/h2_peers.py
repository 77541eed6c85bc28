"""Real HTTP/2 bytes from two h2 peers in memory, and hand-built capture events for tests.

``H2Peers`` records what each side wrote, write by write, as (from_client, bytes); tests turn
those writes into DataChunk events for one observing socket.
"""
from __future__ import annotations

import h2.config
import h2.connection
import h2.events

from l7scope.capture.events import DataChunk

CLIENT_EP = ("10.0.0.1", 45000)
SERVER_EP = ("10.0.0.2", 8080)


def chunk(conn_id: int, egress: bool, ts: int, data: bytes, seq: int | None = None,
          length: int | None = None, **kw) -> DataChunk:
    return DataChunk(conn_id=conn_id, egress=egress, ts=ts, data=data,
                     length=len(data) if length is None else length, seq=seq, **kw)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


class H2Peers:
    """A client and a server H2Connection; ``writes`` is every write in order."""

    def __init__(self) -> None:
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
        self.writes: list[tuple[bool, bytes]] = []

    def start(self) -> None:
        self.client.initiate_connection()
        self.pump()
        self.server.initiate_connection()
        self.pump()

    def pump(self) -> None:
        """Deliver everything both sides have to send until both are quiet."""
        moved = True
        while moved:
            moved = False
            for from_client, sender, receiver in ((True, self.client, self.server),
                                                  (False, self.server, self.client)):
                data = sender.data_to_send()
                if data:
                    moved = True
                    self.writes.append((from_client, data))
                    for event in receiver.receive_data(data):
                        if isinstance(event, h2.events.DataReceived):
                            receiver.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id)

    def request(self, headers, body: bytes = b"") -> int:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, headers, end_stream=not body)
        if body:
            self.client.send_data(sid, body, end_stream=True)
        self.pump()
        return sid

    def respond(self, sid: int, headers, body: bytes = b"", trailers=None) -> None:
        self.server.send_headers(sid, headers, end_stream=not body and not trailers)
        if body:
            self.server.send_data(sid, body, end_stream=not trailers)
        if trailers:
            self.server.send_headers(sid, trailers, end_stream=True)
        self.pump()


def get(path: str, authority: str = "api.test") -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", path)]
