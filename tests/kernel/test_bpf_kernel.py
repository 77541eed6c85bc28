"""What the kernel programs themselves decide: the HTTP prefilter (generated from the Python
method list), iovecs gathered into records, the stream position of a read that also takes the
peer's FIN."""
from __future__ import annotations

import socket
import threading

pytestmark = __import__("pytest").mark.kernel


def by_side(recs, side):
    return [r for r in recs if r["side"] == side]


def exchange(port: int, *requests: bytes) -> list[bytes]:
    """Sends each request on one keep-alive connection and reads its whole response."""
    out = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        for req in requests:
            s.sendall(req)
            out.append(_read_response(s))
    return out


def _read_response(s: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "server closed early"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def test_connection_opening_with_propfind_keeps_its_first_request(agent, python_server):
    """PROPFIND is in the Python list, so the kernel prefilter lets a connection's first message
    through (it once knew ten prefixes and classed such a connection by its later messages,
    losing this one); the test server answers 501 and closes."""
    port, _ = python_server
    a = agent()
    propfind = b"PROPFIND /dav/ HTTP/1.1\r\nHost: t\r\nDepth: 1\r\nContent-Length: 0\r\n\r\n"
    reply = exchange(port, propfind)[0]
    assert reply.startswith(b"HTTP/1.1 501 ")
    recs = a.wait_for(lambda r: len(by_side(r, "server")) >= 1 and len(by_side(r, "client")) >= 1,
                      port)
    for side in ("client", "server"):
        got = [(r["method"], r["path"], r["status"]) for r in by_side(recs, side)]
        assert got == [("PROPFIND", "/dav/", 501)], side


def test_writev_buffers_become_one_request_with_every_byte(agent, python_server):
    """A POST sent by one sendmsg of three buffers (head, two body parts; 9,000 body bytes, so
    more than one 4 KiB record) arrives whole and the echo matches it byte for byte."""
    port, _ = python_server
    a = agent()
    body1, body2 = bytes(range(256)) * 16, b"z" * 4904
    head = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-test\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(body1) + len(body2)))
    with socket.create_connection(("127.0.0.1", port)) as s:
        assert s.sendmsg([head, body1, body2]) == len(head) + len(body1) + len(body2)
        reply = _read_response(s)
    assert reply.endswith(body1 + body2)
    recs = a.wait_for(lambda r: len(r) >= 2, port)
    for r in recs:
        assert (r["method"], r["path"], r["status"], r["partial"]) == ("POST", "/echo", 200, False)
        assert r["request_bytes"] == len(head) + 9000
        assert r["response_bytes"] == len(reply)
    assert sorted(r["side"] for r in recs) == ["client", "server"]


def test_two_buffer_send_is_copied_whole_at_its_place(agent, python_server):
    """A request sent by one sendmsg of two small buffers (the head cut in the middle of its
    request line, then the rest of the head and the body: under 1 KiB, one ring reservation for
    both) is parsed as sent: the second buffer's bytes sit right after the first's."""
    port, _ = python_server
    a = agent()
    body = b"0123456789" * 30
    rest = (b"TP/1.1\r\nHost: t\r\nContent-Type: application/x-test\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
    with socket.create_connection(("127.0.0.1", port)) as s:
        assert s.sendmsg([b"POST /echo HT", rest]) == 13 + len(rest)
        reply = _read_response(s)
    assert reply.endswith(body)
    recs = a.wait_for(lambda r: len(r) >= 2, port)
    for r in recs:
        assert (r["method"], r["path"], r["status"], r["partial"]) == ("POST", "/echo", 200, False)
        assert r["request_bytes"] == 13 + len(rest)
    assert sorted(r["side"] for r in recs) == ["client", "server"]


def test_tcp_connection_on_the_fd_of_a_closed_unix_socket_is_traced(agent, python_server):
    """A thread remembers what its fds are. A UNIX socket that moved bytes is closed and a TCP
    connection then gets its fd number (and, the allocators being last-in first-out, often its
    file and socket structs too): every request on it is still seen, the fd is not taken for
    the UNIX socket it held before."""
    import os
    import time
    port, _ = python_server
    a = agent("--pid", str(os.getpid()))
    for i in range(30):
        u1, u2 = socket.socketpair()
        u1.sendall(b"x" * 16)
        assert u2.recv(16) == b"x" * 16
        fd = u1.fileno()
        u2.close()
        u1.close()  # freed last: the first to be reused
        time.sleep(0.02)  # a socket's memory is freed after an RCU grace period
        with socket.create_connection(("127.0.0.1", port)) as c:
            assert c.fileno() == fd
            c.sendall(b"GET /reuse-%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            _read_response(c)
    recs = a.wait_for(lambda r: len(by_side(r, "client")) >= 30, port)
    assert sorted(r["path"] for r in by_side(recs, "client")) == sorted(f"/reuse-{i}" for i in range(30))


def test_close_delimited_response_read_with_the_fin_is_whole(agent):
    """An HTTP/1.0 response without Content-Length ends at the FIN; the client's last read
    returns the body and takes the FIN too. Its bytes sit at their exact stream position, so
    the response is complete, not partial."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    body = b"close-delimited body\n" * 20

    def serve():
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)

    a = agent("--pid", str(__import__("os").getpid()))
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"GET /fin HTTP/1.0\r\nHost: t\r\n\r\n")
        t.join(10)
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    srv.close()
    assert got.endswith(body)
    recs = a.wait_for(lambda r: len(by_side(r, "client")) >= 1, port)
    client = by_side(recs, "client")
    assert [(r["path"], r["status"], r["partial"]) for r in client] == [("/fin", 200, False)]
    assert client[0]["response_bytes"] == len(got)


def _peeking_server(listener: socket.socket, use_recvmsg: bool) -> None:
    """Accepts one connection, peeks at the request's first byte (as nginx does on ssl
    listeners), then reads and answers it."""
    conn, _ = listener.accept()
    with conn:
        if use_recvmsg:
            first, _, _, _ = conn.recvmsg(1, 0, socket.MSG_PEEK)
        else:
            first = conn.recv(1, socket.MSG_PEEK)
        assert first == b"G"
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


def test_a_peek_is_no_stream_data(agent):
    import os
    import time

    a = agent("--pid", str(os.getpid()))
    request = b"GET /peeked/first HTTP/1.1\r\nHost: peek\r\n\r\n"
    ports = []
    for use_recvmsg in (False, True):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            ports.append(port)
            t = threading.Thread(target=_peeking_server, args=(listener, use_recvmsg))
            t.start()
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(request)
                assert _read_response(s).startswith(b"HTTP/1.1 204")
            t.join(10)
    for port in ports:
        recs = a.wait_for(lambda r: len(by_side(r, "server")) >= 1 and len(by_side(r, "client")) >= 1,
                          port)
        server = by_side(recs, "server")
        assert [(r["path"], r["status"], r["request_bytes"], r["partial"]) for r in server] == [
            ("/peeked/first", 204, len(request), False)], (port, server)
    time.sleep(0.2)
    assert a.stop() == 0
