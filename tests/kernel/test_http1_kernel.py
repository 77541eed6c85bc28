"""HTTP/1.x end to end: the real agent, real servers (Python, nginx) and clients (curl, sockets)."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import time

from tests.kernel.conftest import curl

pytestmark = __import__("pytest").mark.kernel


def by_side(recs, side):
    return [r for r in recs if r["side"] == side]


def read_responses(sock: socket.socket, count: int) -> bytes:
    """Reads `count` Content-Length-delimited responses; returns the raw bytes."""
    buf = b""
    done = 0
    while done < count:
        chunk = sock.recv(65536)
        assert chunk, "server closed early"
        buf += chunk
        done, pos = 0, 0
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = buf[pos:end].decode()
            length = int([h.split(":")[1] for h in head.split("\r\n") if h.lower().startswith("content-length")][0])
            if len(buf) < end + 4 + length:
                break
            pos = end + 4 + length
            done += 1
    return buf


def test_curl_keepalive_urls_seen_once_per_side(agent, python_server):
    port, server_pid = python_server
    a = agent()
    urls = [f"http://127.0.0.1:{port}{p}" for p in ("/hello", "/status/404", "/status/503", "/slow?ms=300")]
    res = curl(*[x for u in urls for x in ("-o", "/dev/null", u)])
    assert res.returncode == 0, res.stderr
    recs = a.wait_for(lambda r: len(r) >= 8, port)
    client, server = by_side(recs, "client"), by_side(recs, "server")
    assert [r["path"] for r in client] == ["/hello", "/status/404", "/status/503", "/slow?ms=300"]
    assert [r["path"] for r in server] == ["/hello", "/status/404", "/status/503", "/slow?ms=300"]
    assert [r["status"] for r in server] == [200, 404, 503, 200]
    assert [r["status"] for r in client] == [200, 404, 503, 200]
    assert len(recs) == 8
    assert {r["conn_id"] for r in client} and len({r["conn_id"] for r in client}) == 1  # keep-alive
    for r in client:
        assert r["comm"] == "curl" and r["method"] == "GET" and r["protocol"] == "http1"
        assert r["peer_pid"] == server_pid and r["authority"] == f"127.0.0.1:{port}"
        assert r["partial"] is False and r["notes"] == []
    for c, s in zip(client, server):
        assert s["pid"] == server_pid and s["peer_pid"] == c["pid"]
        assert c["request_bytes"] == s["request_bytes"] > 0
        assert c["response_bytes"] == s["response_bytes"] > 0
        assert c["duration_ns"] >= s["duration_ns"] > 0
    slow_server = server[3]
    assert slow_server["duration_ns"] >= 300_000_000
    assert client[3]["duration_ns"] >= 300_000_000
    assert server[0]["time"].endswith("Z") and "T" in server[0]["time"]


def test_pipelined_requests_pair_with_their_responses(agent, python_server):
    port, _ = python_server
    a = agent()
    reqs = [f"GET {p} HTTP/1.1\r\nHost: pipelined\r\n\r\n".encode()
            for p in ("/slow?ms=200", "/hello", "/status/404")]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"".join(reqs))
        raw = read_responses(s, 3)
    recs = a.wait_for(lambda r: len(by_side(r, "server")) >= 3 and len(by_side(r, "client")) >= 3, port)
    for side in ("server", "client"):
        got = by_side(recs, side)
        assert [(r["path"], r["status"]) for r in got] == [
            ("/slow?ms=200", 200), ("/hello", 200), ("/status/404", 404)], side
        assert [r["request_bytes"] for r in got] == [len(x) for x in reqs]
        assert sum(r["response_bytes"] for r in got) == len(raw)
        assert got[0]["duration_ns"] >= 200_000_000
        assert all(r["authority"] == "pipelined" for r in got)


def test_nginx_errors_static_sendfile_and_proxy_topology(agent, nginx, python_server):
    py_port, py_pid = python_server
    a = agent()
    base = f"http://127.0.0.1:{nginx.port}"
    res = curl("-o", "/dev/null", f"{base}/hello", "-o", "/dev/null", f"{base}/missing",
               "-o", "/dev/null", f"{base}/error", "-o", "/dev/null", f"{base}/static/large.bin",
               "-o", "/dev/null", f"{base}/py/status/418")
    assert res.returncode == 0, res.stderr
    recs = a.wait_for(lambda r: len(by_side(r, "server")) >= 5 and len(by_side(r, "client")) >= 5,
                      nginx.port)
    server = by_side(recs, "server")
    assert [(r["path"], r["status"]) for r in server] == [
        ("/hello", 200), ("/missing", 404), ("/error", 500), ("/static/large.bin", 200),
        ("/py/status/418", 418)]
    assert all(r["comm"] == "nginx" for r in server)
    large = server[3]
    assert large["response_bytes"] > 262144 and large["partial"] is False
    client = by_side(recs, "client")
    assert [r["response_bytes"] for r in client] == [r["response_bytes"] for r in server]
    # nginx called the Python upstream: that hop is its own pair, seen from both ends
    up = a.wait_for(lambda r: len(r) >= 2, py_port)
    hop_client = [r for r in up if r["side"] == "client" and r["comm"] == "nginx"]
    hop_server = [r for r in up if r["side"] == "server" and r["pid"] == py_pid]
    assert [(r["path"], r["status"]) for r in hop_client] == [("/status/418", 418)]
    assert [(r["path"], r["status"]) for r in hop_server] == [("/status/418", 418)]
    assert hop_client[0]["peer_pid"] == py_pid and hop_server[0]["peer_pid"] == hop_client[0]["pid"]


def test_post_large_chunked_and_head(agent, python_server):
    port, _ = python_server
    a = agent()
    body = os.urandom(150_000)
    base = f"http://127.0.0.1:{port}"
    res = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--data-binary", "@-",
                          "-H", "Content-Type: application/octet-stream", f"{base}/echo"],
                         input=body, capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert curl("-o", "/dev/null", f"{base}/chunked?n=7").returncode == 0
    assert curl("-o", "/dev/null", "-I", f"{base}/hello").returncode == 0
    recs = a.wait_for(lambda r: len(by_side(r, "server")) >= 3, port)
    server = by_side(recs, "server")
    assert [(r["method"], r["path"], r["status"]) for r in server] == [
        ("POST", "/echo", 200), ("GET", "/chunked?n=7", 200), ("HEAD", "/hello", 200)]
    post, chunked, head = server
    assert post["request_bytes"] > 150_000 and post["response_bytes"] > 150_000
    assert not post["partial"] and not chunked["partial"] and not head["partial"]
    assert head["response_bytes"] < 400  # headers only, though Content-Length says 12
    client = by_side(recs, "client")
    assert [r["response_bytes"] for r in client] == [r["response_bytes"] for r in server]


def test_connection_opened_before_agent(agent, python_server):
    port, server_pid = python_server
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /status/201 HTTP/1.1\r\nHost: early\r\n\r\n")
        read_responses(s, 1)
        a = agent()
        for path in ("/hello", "/status/404"):
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: early\r\n\r\n".encode())
            read_responses(s, 1)
        recs = a.wait_for(lambda r: len(r) >= 4, port)
    for side in ("server", "client"):
        got = by_side(recs, side)
        assert [(r["path"], r["status"]) for r in got] == [("/hello", 200), ("/status/404", 404)], side
    assert all(r["pid"] == server_pid for r in by_side(recs, "server"))


def test_garbage_on_traced_socket_is_harmless(agent, python_server):
    port, _ = python_server
    a = agent()
    rng = random.Random(7)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
            s.settimeout(1)
            try:
                s.recv(65536)
            except OSError:
                pass
    with socket.create_connection(("127.0.0.1", port)) as s:  # HTTP-looking garbage, then a real request
        s.sendall(b"GET /\x00\xff garbage\r\n\r\n")
        s.settimeout(1)
        try:
            s.recv(65536)
        except OSError:
            pass
    assert curl("-o", "/dev/null", f"http://127.0.0.1:{port}/status/202").returncode == 0
    recs = a.wait_for(lambda r: any(x["status"] == 202 for x in r), port)
    assert [r["path"] for r in recs if r["status"] == 202] == ["/status/202", "/status/202"]
    assert a.stop() == 0
    log = "".join(a.stderr)
    assert "Traceback" not in log and "Exception" not in log, log


def test_metrics_per_process_pair(agent, python_server):
    port, server_pid = python_server
    # only the two ends traced: other traffic on the host cannot fill the ring (checked below)
    a = agent("--metrics-interval", "60", "--pid", str(server_pid), "--comm", "curl")
    urls = [f"http://127.0.0.1:{port}/status/{c}" for c in (200, 200, 200, 404, 500)]
    assert curl(*[x for u in urls for x in ("-o", "/dev/null", u)]).returncode == 0
    a.wait_for(lambda r: len(r) >= 10, port)
    assert a.stop() == 0
    # pairs are named by service (never pids): curl, and the server's "python http_server.py"
    pairs = [m for m in a.metric_records() if m["kind"] == "pair_metrics"
             and m["client"] == "curl" and m["server_pid"] == server_pid]
    assert len(pairs) == 1, pairs
    p = pairs[0]
    assert p["protocol"] == "http1" and p["requests"] == 5
    assert p["status_counts"] == {"200": 3, "404": 1, "500": 1}
    assert p["errors"] == 1
    assert p["client_duration_ms"]["count"] == 5 and p["server_duration_ms"]["count"] == 5
    assert p["request_bytes"]["count"] == 5 and p["request_bytes"]["sum"] > 0
    counters = [m for m in a.metric_records() if m["kind"] == "agent_counters"]
    assert counters and counters[-1]["ringbuf_full"] == 0


def test_not_root_says_so_in_one_line(tmp_path):
    import sys

    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-m", "l7scope.cli", "run", "--duration", "1"],
                         capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "root" in lines[0], res.stderr


def test_duration_stops_cleanly(agent, python_server):
    a = agent("--duration", "2")
    t0 = time.monotonic()
    assert a.proc.wait(30) == 0
    assert time.monotonic() - t0 < 20
    assert any("stopped" in line for line in a.stderr)


def test_pid_and_comm_filters_trace_either(agent, python_server):
    port, server_pid = python_server
    only_curl = agent("--comm", "curl")
    either = agent("--pid", str(server_pid), "--comm", "curl")
    assert curl("-o", "/dev/null", f"http://127.0.0.1:{port}/status/201").returncode == 0
    recs = either.wait_for(lambda r: len(r) >= 2, port)
    assert sorted((r["side"], r["status"]) for r in recs) == [("client", 201), ("server", 201)]
    assert {r["pid"] for r in recs if r["side"] == "server"} == {server_pid}
    recs = only_curl.wait_for(lambda r: len(r) >= 1, port)
    only_curl.stop()
    assert [(r["side"], r["comm"]) for r in only_curl.records(port)] == [("client", "curl")]


def test_ipv6_loopback_endpoints(agent, tmp_path):
    import sys

    from tests.kernel.conftest import _spawn, _stop

    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "v6.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent / 'apps')!r})\n"
        "import socket, http_server\n"
        "class V6(http_server.ThreadingHTTPServer):\n"
        "    address_family = socket.AF_INET6\n"
        "V6(('::1', int(sys.argv[1])), http_server.Handler).serve_forever()\n")
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("::1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        a = agent()
        assert curl("-g", "-o", "/dev/null", f"http://[::1]:{port}/status/207").returncode == 0
        recs = a.wait_for(lambda r: len(r) >= 2, port)
    finally:
        _stop(proc)
    assert sorted(r["side"] for r in recs) == ["client", "server"]
    server = [r for r in recs if r["side"] == "server"][0]
    client = [r for r in recs if r["side"] == "client"][0]
    assert server["local"] == f"[::1]:{port}" and client["remote"] == f"[::1]:{port}"
    assert server["remote"] == client["local"] and client["local"].startswith("[::1]:")
    assert (server["path"], server["status"], server["peer_pid"]) == ("/status/207", 207, client["pid"])


def test_python_http_client_keepalive_to_nginx(agent, nginx):
    import http.client

    a = agent()
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    statuses = []
    for path in ("/hello", "/missing", "/static/small.txt"):
        conn.request("GET", path, headers={"X-Request-Id": f"py-{path}"})
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
    conn.close()
    assert statuses == [200, 404, 200]
    recs = a.wait_for(lambda r: len(by_side(r, "server")) >= 3 and len(by_side(r, "client")) >= 3,
                      nginx.port)
    for side in ("server", "client"):
        got = by_side(recs, side)
        assert [(r["path"], r["status"], r["request_id"]) for r in got] == [
            ("/hello", 200, "py-/hello"), ("/missing", 404, "py-/missing"),
            ("/static/small.txt", 200, "py-/static/small.txt")], side
        assert len({r["conn_id"] for r in got}) == 1
    me = open("/proc/self/comm").read().strip()
    assert {(r["comm"], r["pid"]) for r in by_side(recs, "client")} == {(me, os.getpid())}


def test_busy_metrics_listen_address_is_one_line_exit_2(tmp_path):
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "l7scope.cli", "run", "--metrics-listen",
                              f"127.0.0.1:{port}", "--duration", "5", "--ui", "off",
                              "--store", "off"],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"l7scope: --metrics-listen 127.0.0.1:{port}:")
