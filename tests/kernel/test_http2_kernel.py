"""HTTP/2 and gRPC end to end: the real agent against nghttp/nghttpd, curl/nginx h2c, h2load, grpcio."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.kernel.conftest import APPS, _spawn, _stop, curl, free_port, need_tool

pytestmark = pytest.mark.kernel


def headers(rec: dict, key: str) -> dict[str, str]:
    return {k: v for k, v in rec.get(key, [])}


def side(recs, s):
    return sorted((r for r in recs if r["side"] == s), key=lambda r: (r["conn_id"], r["stream_id"] or 0))


@pytest.fixture
def nghttpd(tmp_path):
    port = free_port()
    root = tmp_path / "h2root"
    root.mkdir()
    (root / "index.html").write_text("nghttpd index\n")
    (root / "data.bin").write_bytes(b"\x07" * 100_000)
    proc = _spawn([need_tool("nghttpd"), "--no-tls", "-d", str(root), str(port)], port)
    yield port, proc.pid
    _stop(proc)


@pytest.fixture
def grpc_server():
    port = free_port()
    proc = _spawn([sys.executable, str(APPS / "grpc_app.py"), "server", str(port)], port)
    yield port, proc.pid
    _stop(proc)


def test_nghttp_to_nghttpd_headers_decoded_exactly(agent, nghttpd):
    port, server_pid = nghttpd
    a = agent("--with-headers")
    base = f"http://127.0.0.1:{port}"
    res = subprocess.run([need_tool("nghttp"), "-n", "-H", "x-custom: value-one", "-H",
                          "x-request-id: req-42", f"{base}/index.html", f"{base}/data.bin",
                          f"{base}/nope"], capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    recs = a.wait_for(lambda r: len(side(r, "server")) >= 3 and len(side(r, "client")) >= 3, port)
    for s in ("server", "client"):
        got = side(recs, s)
        assert [(r["protocol"], r["method"], r["path"], r["status"]) for r in got] == [
            ("http2", "GET", "/index.html", 200), ("http2", "GET", "/data.bin", 200),
            ("http2", "GET", "/nope", 404)], s
        for r in got:
            req = headers(r, "request_headers")
            assert req["x-custom"] == "value-one" and req[":authority"] == f"127.0.0.1:{port}"
            assert r["request_id"] == "req-42" and r["authority"] == f"127.0.0.1:{port}"
            assert headers(r, "response_headers")["server"].startswith("nghttpd")
            assert r["stream_id"] % 2 == 1 and not r["partial"], r
        assert got[1]["response_bytes"] > 100_000
    server = side(recs, "server")
    assert all(r["pid"] == server_pid and r["comm"] == "nghttpd" for r in server)
    assert all(r["peer_pid"] == server_pid for r in side(recs, "client"))


def test_curl_h2c_prior_knowledge_to_nginx(agent, nginx):
    a = agent("--with-headers")
    base = f"http://127.0.0.1:{nginx.h2port}"
    # one call per URL: curl 7.88 fails reusing an h2c prior-knowledge connection (without
    # the agent too); multiplexed connections are covered by nghttp, h2load and grpcio
    for url in (f"{base}/a?x=1", f"{base}/missing"):
        res = curl("--http2-prior-knowledge", "-H", "x-trace-me: yes please", "-o", "/dev/null", url)
        assert res.returncode == 0, res.stderr
    recs = a.wait_for(lambda r: len(side(r, "server")) >= 2 and len(side(r, "client")) >= 2, nginx.h2port)
    for s in ("server", "client"):
        got = side(recs, s)
        assert [(r["protocol"], r["path"], r["status"]) for r in got] == [
            ("http2", "/a?x=1", 200), ("http2", "/missing", 404)], s
        assert headers(got[0], "request_headers")["x-trace-me"] == "yes please"
        assert headers(got[0], "response_headers")["x-h2-test"] == "nginx-h2c"
        assert headers(got[0], "request_headers")["user-agent"].startswith("curl/")


def test_grpc_unary_streaming_and_failing_calls(agent, grpc_server):
    port, server_pid = grpc_server
    a = agent("--with-headers")
    res = subprocess.run([sys.executable, str(APPS / "grpc_app.py"), "client", str(port),
                          "unary:4,stream:5,fail"], capture_output=True, text=True, timeout=60)
    assert "done" in res.stdout, res.stderr
    recs = a.wait_for(lambda r: len(side(r, "server")) >= 6 and len(side(r, "client")) >= 6, port)
    for s in ("server", "client"):
        got = side(recs, s)
        assert [(r["protocol"], r["path"], r["status"], r["grpc_status"]) for r in got] == (
            [("grpc", "/l7scope.test.Echo/Echo", 200, 0)] * 4
            + [("grpc", "/l7scope.test.Echo/ServerStream", 200, 0),
               ("grpc", "/l7scope.test.Echo/Fail", 200, 5)]), s
        for i, r in enumerate(got[:4]):
            assert headers(r, "request_headers")["x-l7-custom"] == f"value-{i}"
            assert headers(r, "response_headers")["x-l7-trailer"] == "echoed"
            assert not r["partial"], r
        fail = headers(got[5], "response_headers")
        assert fail["grpc-message"] == "no such item"
    assert all(r["pid"] == server_pid for r in side(recs, "server"))


def test_h2load_completeness(agent, nginx):
    a = agent("--comm", "nginx", "--comm", "h2load")
    n = 3000
    res = subprocess.run([need_tool("h2load"), "-n", str(n), "-c", "4", "-m", "8",
                          f"http://127.0.0.1:{nginx.h2port}/load"], capture_output=True, text=True,
                         timeout=120)
    assert f"{n} succeeded" in res.stdout, res.stdout
    recs = a.wait_for(lambda r: len(side(r, "server")) >= n and len(side(r, "client")) >= n,
                      nginx.h2port, timeout=60)
    assert a.stop() == 0
    for s in ("server", "client"):
        got = side(recs, s)
        assert len(got) == n, (s, len(got))
        assert all(r["path"] == "/load" and r["status"] == 200 for r in got)


def test_grpc_connection_older_than_agent(agent, grpc_server):
    port, _ = grpc_server
    client = subprocess.Popen([sys.executable, str(APPS / "grpc_app.py"), "client", str(port),
                               "unary:5,wait,unary:40,stream:3"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "waiting"
    a = agent("--with-headers")
    client.stdin.write("go\n")
    client.stdin.flush()
    assert client.stdout.readline().strip() == "done"
    client.wait(30)
    recs = a.wait_for(lambda r: len(side(r, "server")) >= 41, port, timeout=30)
    for s in ("server", "client"):
        got = side(recs, s)
        assert len(got) == 41, (s, len(got))
        assert all(r["stream_id"] is not None and r["duration_ns"] > 0 for r in got)
        # never a wrong value: whatever decoded is exact
        for i, r in enumerate(got[:40]):
            assert r["path"] in (None, "/l7scope.test.Echo/Echo"), r
            custom = headers(r, "request_headers").get("x-l7-custom")
            assert custom in (None, f"value-{5 + i}"), (custom, i)
            assert r["status"] in (None, 200) and r["grpc_status"] in (None, 0)
            if r["partial"]:
                assert r["notes"], r
        assert got[40]["path"] in (None, "/l7scope.test.Echo/ServerStream")
        # the stream method was never called before: its literal path must decode
        assert got[40]["path"] == "/l7scope.test.Echo/ServerStream"
