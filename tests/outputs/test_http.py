"""The bounded HTTP listener: routes, limits and timeouts over real loopback sockets."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from l7scope.outputs.http import (
    HttpListener, is_loopback_host, listen_warning, parse_head, parse_listen_address, HttpError,
)
from tests.export import wait_for


def _hello(request):
    return 200, "text/plain", f"{request.method} {request.path} {request.query}".encode()


@pytest.fixture
def listener():
    lst = HttpListener("127.0.0.1:0", read_timeout_s=0.5, max_connections=8)
    lst.add_route("GET", "/", lambda r: (200, "text/plain", b"root"))
    lst.add_route("GET", "/api", _hello)
    lst.add_route("POST", "/api/echo", lambda r: (200, "application/octet-stream", r.body))
    lst.add_route("GET", "/boom", lambda r: 1 / 0)
    lst.start()
    yield lst
    lst.stop()


def _connect(lst) -> socket.socket:
    s = socket.create_connection(lst.address, timeout=10)
    return s


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _ask(lst, raw: bytes) -> bytes:
    with _connect(lst) as s:
        s.sendall(raw)
        return _read_all(s)


def _status_body(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_routes_longest_prefix_method_and_query(listener):
    get = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _status_body(_ask(listener, get % b"/api/users?id=1")) == (200, b"GET /api/users id=1")
    assert _status_body(_ask(listener, get % b"/")) == (200, b"root")
    assert _status_body(_ask(listener, get % b"/apix")) == (200, b"root")  # "/" matches all
    post = b"POST /api/echo HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    assert _status_body(_ask(listener, post)) == (200, b"hello")
    assert _status_body(_ask(listener, post.replace(b"/api/echo", b"/api")))[0] == 405


def test_head_is_answered_by_get_without_body(listener):
    response = _ask(listener, b"HEAD /api HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert response.endswith(b"\r\n\r\n")
    assert b"Content-Length: 10\r\n" in response  # len("HEAD /api "), the GET body


def test_404_without_catch_all():
    lst = HttpListener("127.0.0.1:0")
    lst.add_route("GET", "/metrics", lambda r: (200, "text/plain", b"m"))
    lst.start()
    try:
        assert _status_body(_ask(lst, b"GET /metricsx HTTP/1.0\r\n\r\n"))[0] == 404
        assert _status_body(_ask(lst, b"GET /metrics/x HTTP/1.0\r\n\r\n")) == (200, b"m")
    finally:
        lst.stop()


def test_handler_error_is_500_and_the_listener_goes_on(listener):
    assert _status_body(_ask(listener, b"GET /boom HTTP/1.0\r\n\r\n"))[0] == 500
    assert _status_body(_ask(listener, b"GET / HTTP/1.0\r\n\r\n")) == (200, b"root")
    assert listener.stats()["handler_errors"] == 1
    assert listener.last_error == "ZeroDivisionError: division by zero"


def test_keep_alive_and_pipelined_requests(listener):
    with _connect(listener) as s:
        s.sendall(b"GET /api/a HTTP/1.1\r\n\r\nGET /api/b HTTP/1.1\r\n\r\n")
        s.sendall(b"GET /api/c HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = _read_all(s)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.endswith(b"GET /api/c ")
    assert listener.stats()["accepted"] == 1


@pytest.mark.parametrize("raw, status", [
    (b"GET /x HTTP/2.0\r\n\r\n", 505),
    (b"GET  /x HTTP/1.1\r\n\r\n", 400),
    (b"GET http://h/x HTTP/1.1\r\n\r\n", 400),
    (b"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n", 400),
    (b"GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
    (b"POST /api/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"POST /api/echo HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"POST /api/echo HTTP/1.1\r\nContent-Length: \xd9\xa1\r\n\r\n", 400),
    (b"POST /api/echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
])
def test_bad_requests_get_their_status_and_are_counted(listener, raw, status):
    assert _status_body(_ask(listener, raw))[0] == status
    assert listener.stats()["bad_requests"] == 1


def test_head_too_large_is_431(listener):
    raw = b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
    assert _status_body(_ask(listener, raw))[0] == 431
    assert listener.stats()["head_too_large"] == 1


def test_partial_head_times_out_with_408(listener):
    with _connect(listener) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost:")
        assert _status_body(_read_all(s))[0] == 408  # after read_timeout_s, not before EOF
    assert listener.stats()["timed_out_reading"] == 1
    assert listener.stats()["open"] == 0


def test_trickling_bytes_does_not_extend_the_read_timeout(listener):
    with _connect(listener) as s:
        s.sendall(b"G")
        for _ in range(200):  # a byte every 50 ms, up to 10 s; the deadline is 0.5 s
            if listener.stats()["timed_out_reading"]:
                break
            try:
                s.sendall(b"E")
            except OSError:
                break
            time.sleep(0.05)
    assert listener.stats()["timed_out_reading"] == 1


def test_over_the_cap_new_connections_are_refused_at_once_and_counted(listener):
    idle = [_connect(listener) for _ in range(8)]
    wait_for(lambda: listener.stats()["open"] == 8)
    response = _ask(listener, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert response == b"" or _status_body(response)[0] == 503
    assert listener.stats()["rejected_over_cap"] == 1
    for s in idle:  # the idle ones time out; then requests are served again
        assert _read_all(s) == b""
        s.close()
    wait_for(lambda: listener.stats()["open"] == 0)
    assert _status_body(_ask(listener, b"GET / HTTP/1.0\r\n\r\n")) == (200, b"root")
    assert listener.stats()["timed_out_reading"] == 8


def test_500_slow_connections_hold_no_thread_and_at_most_the_cap():
    lst = HttpListener("127.0.0.1:0", read_timeout_s=60)
    lst.add_route("GET", "/", lambda r: (200, "text/plain", b"ok"))
    lst.start()
    threads_before = threading.active_count()
    slow = []
    try:
        for _ in range(500):
            s = socket.create_connection(lst.address, timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: slow")
            slow.append(s)
        wait_for(lambda: lst.stats()["accepted"] + lst.stats()["rejected_over_cap"] == 500)
        stats = lst.stats()
        assert (stats["accepted"], stats["rejected_over_cap"], stats["open"]) == (64, 436, 64)
        assert stats["peak_open"] == 64
        assert threading.active_count() == threads_before
    finally:
        for s in slow:
            s.close()
        lst.stop()


@pytest.mark.parametrize("addr, expected", [
    (":9464", ("127.0.0.1", 9464)), ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9464", ("::1", 9464)), ("[::]:1", ("::", 1)),
    ("localhost:9", ("localhost", 9))])
def test_parse_listen_address(addr, expected):
    assert parse_listen_address(addr) == expected


@pytest.mark.parametrize("addr", ["9464", ":", "host:", "h:65536", "h:http", "::1:9464",
                                  "h:\u0661\u0662", "h:+80", "h:123456"])
def test_parse_listen_address_rejects(addr):
    with pytest.raises(ValueError):
        parse_listen_address(addr)


def test_listen_warning_only_beyond_loopback():
    assert listen_warning(":9464") is None
    assert listen_warning("127.0.0.2:9464") is None
    assert listen_warning("[::1]:9464") is None
    assert listen_warning("0.0.0.0:9464") == (
        "listening on 0.0.0.0:9464: reachable from other hosts (use :9464 or "
        "127.0.0.1:9464 for this host only)")
    assert listen_warning("[::]:9464") is not None
    assert not is_loopback_host("metrics.example")


def test_default_bind_of_port_only_is_loopback():
    lst = HttpListener(":0")
    lst.start()
    try:
        assert lst.address[0] == "127.0.0.1"
    finally:
        lst.stop()


def test_parse_head_values():
    method, target, version, headers = parse_head(
        b"GET /a?b=1 HTTP/1.1\r\nHost:  h \r\nX-Y: z")
    assert (method, target, version, headers) == (
        "GET", "/a?b=1", "HTTP/1.1", (("host", "h"), ("x-y", "z")))
    with pytest.raises(HttpError):
        parse_head(b"GET /a HTTP/1.1\r\nHost : h")


def test_a_route_is_served_once():
    lst = HttpListener("127.0.0.1:0")
    lst.add_route("GET", "/metrics", _hello)
    lst.add_route("POST", "/metrics", _hello)
    with pytest.raises(ValueError, match="GET /metrics is already served"):
        lst.add_route("get", "/metrics", _hello)


def test_idle_kept_alive_connection_is_closed_and_counted_apart(listener):
    with _connect(listener) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        first = s.recv(65536)
        assert _status_body(first) == (200, b"root")
        assert _read_all(s) == b""  # closed after read_timeout_s without a second request
    stats = listener.stats()
    assert (stats["idle_closed"], stats["timed_out_reading"]) == (1, 0)


def test_a_burst_beyond_the_cap_of_quick_requests_is_all_served():
    lst = HttpListener("127.0.0.1:0", max_connections=4)
    lst.add_route("GET", "/", lambda r: (200, "text/plain", b"ok"))
    lst.start()
    barrier = threading.Barrier(32)
    answers = []

    def client():
        barrier.wait(30)
        answers.append(_status_body(_ask(lst, b"GET / HTTP/1.0\r\n\r\n")))

    threads = [threading.Thread(target=client) for _ in range(32)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert answers == [(200, b"ok")] * 32
        assert lst.stats()["rejected_over_cap"] == 0 and lst.stats()["peak_open"] <= 4
    finally:
        lst.stop()
