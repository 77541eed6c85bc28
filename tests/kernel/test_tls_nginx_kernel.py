"""nginx serving TLS, seen whole: every request once at nginx's side (the plaintext of its
SSL_read/SSL_write) and once at the client's, with and without `--comm nginx`.

Clients: curl (HTTP/1.1 direct, HTTP/1.1 through a proxy location to a Python backend, HTTP/2
chosen by ALPN), Python's ssl module (kept-alive and fresh connections) and grpcio over TLS to a
grpc_pass location. Every curl and Python request after the first opens a connection whose SSL
object nginx allocates where the previous one was freed: each must be a stream of its own.
grpcio links its own BoringSSL (no libssl symbols to hook): its encrypted side yields no record,
and the gRPC calls are seen at nginx (TLS) and between nginx and the backend (h2c).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.kernel.conftest import APPS, _spawn, _stop, curl, free_port, need_tool, nginx_config

pytestmark = pytest.mark.kernel

N = 10  # requests of each kind
ECHO, FAIL = "/l7scope.test.Echo/Echo", "/l7scope.test.Echo/Fail"

TLS_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = /boom {{ return 200 "boom\\n"; }}
        location /static/ {{ root {tmp}/www; }}
        location /py/ {{ proxy_pass http://127.0.0.1:{upstream}/; proxy_http_version 1.1;
                         proxy_set_header Connection ""; }}
        location /l7scope.test.Echo/ {{ grpc_pass grpc://127.0.0.1:{grpc}; }}
    }}
"""


@pytest.fixture
def grpc_backend():
    port = free_port()
    proc = _spawn([sys.executable, str(APPS / "grpc_app.py"), "server", str(port)], port)
    yield port, proc.pid
    _stop(proc)


@pytest.fixture
def tls_nginx(tmp_path, python_server, grpc_backend):
    """nginx with TLS on one port (HTTP/1.1 and HTTP/2 by ALPN); yields (port, cert, backends),
    backends being (port, pid) of the Python HTTP server and of the gRPC server."""
    tmp = tmp_path / "nginx"
    tmp.mkdir()
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([need_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    port = free_port()
    (tmp / "www" / "static").mkdir(parents=True)
    (tmp / "www" / "static" / "large.bin").write_bytes(bytes(range(256)) * 1024)
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_config(tmp, TLS_SERVER.format(
        tmp=tmp, port=port, cert=cert, key=key, upstream=python_server[0], grpc=grpc_backend[0])))
    os.environ["PATH"] += ":/usr/sbin"
    proc = _spawn([need_tool("nginx"), "-c", str(conf), "-e", str(tmp / "error.log")], port)
    yield port, str(cert), (python_server, grpc_backend)
    _stop(proc)


def _run_clients(port: int, cert: str) -> None:
    base = f"https://localhost:{port}"
    for i in range(N):
        for args in (("--http1.1", f"{base}/boom?c=h1"), ("--http2", f"{base}/boom?c=h2"),
                     ("--http1.1", f"{base}/py/hello")):
            res = curl("-k", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", *args)
            assert res.returncode == 0 and res.stdout.split()[0] == b"200", (args, res)
    # one HTTP/2 connection, N streams at once; a 256 KiB file over each protocol
    res = curl("-k", "--http2", "-Z", *[a for i in range(N) for a in
                                         ("-o", "/dev/null", f"{base}/boom?c=mux{i}")])
    assert res.returncode == 0, res
    for proto in ("--http1.1", "--http2"):
        assert curl("-k", proto, "-o", "/dev/null", f"{base}/static/large.bin").returncode == 0
    for argv in (["https", str(port), str(N)], ["grpc", str(port), cert, str(N)]):
        res = subprocess.run([sys.executable, str(APPS / "tls_clients.py"), *argv],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and res.stdout.strip() == "done", res.stderr


def _kinds(recs: list[dict], backend_pids: tuple = ()) -> Counter:
    """(side, who, protocol, path, status, grpc status) counts; who is the comm, or "backend"
    for the backends' pids (grpcio serves from threads of its own names)."""
    return Counter((r["side"], "backend" if r["pid"] in backend_pids else r["comm"],
                    r["protocol"], r["path"], r["status"], r["grpc_status"]) for r in recs)


EXPECTED_SERVER = Counter({
    ("server", "nginx", "http1", "/boom?c=h1", 200, None): N,
    ("server", "nginx", "http2", "/boom?c=h2", 200, None): N,
    ("server", "nginx", "http1", "/py/hello", 200, None): N,
    **{("server", "nginx", "http1", f"/boom?py={i}", 200, None): 1 for i in range(N)},
    ("server", "nginx", "grpc", ECHO, 200, 0): N,
    ("server", "nginx", "grpc", FAIL, 200, 5): 1,
    **{("server", "nginx", "http2", f"/boom?c=mux{i}", 200, None): 1 for i in range(N)},
    ("server", "nginx", "http1", "/static/large.bin", 200, None): 1,
    ("server", "nginx", "http2", "/static/large.bin", 200, None): 1,
})
LARGE = 256 * 1024


@pytest.mark.parametrize("comm", [False, True], ids=["all", "comm-nginx"])
def test_nginx_tls_every_request_once_on_both_sides(agent, tls_nginx, comm):
    port, cert, backends = tls_nginx
    a = agent("--ringbuf-mb", "64", *(["--comm", "nginx"] if comm else []))
    assert any("TLS via" in line for line in a.stderr), a.stderr
    _run_clients(port, cert)
    total = sum(EXPECTED_SERVER.values())
    a.wait_for(lambda r: sum(x["side"] == "server" and x["comm"] == "nginx" for x in r) >= total,
               port, timeout=30)
    assert a.stop() == 0
    at_nginx = a.records(port)
    servers = [r for r in at_nginx if r["side"] == "server"]
    assert _kinds(servers) == EXPECTED_SERVER
    # one stream per TLS connection: its own id, the client's port, never a partial record
    assert not any(r["partial"] or not r["tls"] for r in servers)
    by_conn = {}
    for r in servers:
        by_conn.setdefault(r["conn_id"], set()).add(r["remote"])
    assert all(len(remotes) == 1 for remotes in by_conn.values())
    # curl: 3N + 1 multiplexed + 2 large; Python: 1 kept-alive + N/2 fresh; grpcio: 1
    assert len(by_conn) == 3 * N + 3 + 1 + N // 2 + 1
    large = [r for r in servers if r["path"] == "/static/large.bin"]
    assert [LARGE < r["response_bytes"] < LARGE + 1024 for r in large] == [True, True], large
    clients = _kinds([r for r in at_nginx if r["side"] == "client"])
    # behind nginx: the proxied requests and the gRPC calls, client (nginx) and server sides
    behind = _kinds(a.records(backends[0][0]) + a.records(backends[1][0]),
                    tuple(pid for _, pid in backends))
    nginx_out = Counter({("client", "nginx", "http1", "/hello", 200, None): N,
                         ("client", "nginx", "grpc", ECHO, 200, 0): N,
                         ("client", "nginx", "grpc", FAIL, 200, 5): 1})
    if comm:
        assert clients == Counter()
        assert behind == nginx_out
        stop_line = next(line for line in a.stderr if "stopped" in line)
        assert "no parse errors" in stop_line and "nothing dropped" in stop_line, stop_line
    else:
        assert clients == Counter({
            ("client", "curl", "http1", "/boom?c=h1", 200, None): N,
            ("client", "curl", "http2", "/boom?c=h2", 200, None): N,
            ("client", "curl", "http1", "/py/hello", 200, None): N,
            **{("client", "curl", "http2", f"/boom?c=mux{i}", 200, None): 1 for i in range(N)},
            ("client", "curl", "http1", "/static/large.bin", 200, None): 1,
            ("client", "curl", "http2", "/static/large.bin", 200, None): 1,
            **{("client", "python", "http1", f"/boom?py={i}", 200, None): 1 for i in range(N)},
        })  # grpcio's BoringSSL is not libssl: its side of the TLS connection is not seen
        sizes = Counter((r["protocol"], r["response_bytes"]) for r in at_nginx
                        if r["path"] == "/static/large.bin")
        assert sorted(sizes.values()) == [2, 2]  # each protocol: the same bytes on both sides
        assert behind == nginx_out + Counter({
            ("server", "backend", "http1", "/hello", 200, None): N,
            ("server", "backend", "grpc", ECHO, 200, 0): N,
            ("server", "backend", "grpc", FAIL, 200, 5): 1})
