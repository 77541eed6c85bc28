"""TLS plaintext from the libssl uprobes: curl and a Python server over HTTPS, both sides."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.kernel.conftest import APPS, _spawn, _stop, curl, free_port, need_tool

pytestmark = pytest.mark.kernel


@pytest.fixture
def tls_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([need_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    port = free_port()
    proc = _spawn([sys.executable, str(APPS / "tls_server.py"), str(port), str(cert), str(key)], port)
    yield port, proc.pid
    _stop(proc)


def test_https_exchanges_are_decoded_on_both_sides(agent, tls_server):
    port, server_pid = tls_server
    a = agent("--with-headers")
    assert any("TLS via" in line and "libssl" in line for line in a.stderr), a.stderr
    base = f"https://127.0.0.1:{port}"
    res = curl("-k", "-H", "X-Secret-Test: tls-header", "-o", "/dev/null", f"{base}/status/203",
               "-o", "/dev/null", f"{base}/slow?ms=150")
    assert res.returncode == 0, res.stderr
    recs = a.wait_for(lambda r: len(r) >= 4, port)
    for side in ("client", "server"):
        got = [r for r in recs if r["side"] == side]
        assert [(r["method"], r["path"], r["status"], r["tls"]) for r in got] == [
            ("GET", "/status/203", 203, True), ("GET", "/slow?ms=150", 200, True)], side
        assert all(dict(r["request_headers"])["X-Secret-Test"] == "tls-header" for r in got)
        assert got[1]["duration_ns"] >= 150_000_000 and not any(r["partial"] for r in got)
        assert len({r["conn_id"] for r in got}) == 1
    server = [r for r in recs if r["side"] == "server"]
    client = [r for r in recs if r["side"] == "client"]
    assert all(r["pid"] == server_pid and r["peer_pid"] == client[0]["pid"] for r in server)
    assert all(r["comm"] == "curl" and r["peer_pid"] == server_pid for r in client)
    assert [r["response_bytes"] for r in client] == [r["response_bytes"] for r in server]
    assert len(recs) == 4  # the encrypted bytes themselves are never parsed as HTTP
