"""The agent's top of the house with the real kernel programs: the store + API + UI listener
answering with the traffic just made (exact counts), Prometheus on the same listener, the
store file private, ``--ui off`` listening on nothing, and a busy UI port refused in one line
with nothing left behind."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.kernel.conftest import APPS, free_port, need_tool, wait_port

pytestmark = pytest.mark.kernel


def get(base: str, path: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def api(base: str, path: str) -> dict:
    return json.loads(get(base, path)[2])


def wait_api(base: str, path: str, predicate, timeout: float = 40.0) -> dict:
    deadline, doc = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        doc = api(base, path)
        if predicate(doc):
            return doc
        time.sleep(0.5)
    return doc


def edge(doc: dict, client: str, server: str) -> tuple[int, int] | None:
    for e in doc["edges"]:
        if (e["client"], e["server"], e["protocol"]) == (client, server, "http1"):
            return e["requests"], e["errors"]
    return None


def listening_sockets(pid: int) -> list[str]:
    """The TCP sockets in LISTEN state held by process ``pid`` ("addr:port" as in /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                found.append(f[1])
    return found


SERVER_NAME, CLIENT_NAME = "l7h12srv", "l7h12curl"  # names no other traffic on the host has


@pytest.fixture
def named_server():
    """The test HTTP server under a process name of its own; yields its port."""
    port = free_port()
    code = (f"import ctypes, runpy, sys; ctypes.CDLL(None).prctl(15, b'{SERVER_NAME}', 0, 0, 0); "
            f"sys.argv = ['http_server.py', '{port}']; "
            f"runpy.run_path({str(APPS / 'http_server.py')!r}, run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def named_curl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = tmp_path / CLIENT_NAME
    if not exe.exists():
        exe.write_bytes(Path(need_tool("curl")).read_bytes())
        exe.chmod(0o755)
    return subprocess.run([str(exe), "-sS", *args], capture_output=True, timeout=60)


def test_api_answers_with_the_traffic_and_prometheus_shares_the_listener(agent, named_server,
                                                                        tmp_path):
    py_port = named_server
    python, client = f"proc:{SERVER_NAME}", f"proc:{CLIENT_NAME}"
    ui_port = free_port()
    store = tmp_path / "data" / "l7scope.db"
    a = agent("--ui", f"127.0.0.1:{ui_port}", "--store", str(store),
              "--metrics-listen", f":{ui_port}", "--metrics-interval", "1")
    base = f"http://127.0.0.1:{ui_port}"
    assert a.stderr[0] == f"l7scope: web UI at {base}/ (store {store})\n", a.stderr
    urls = [f"http://127.0.0.1:{py_port}/hello"] * 4 + [f"http://127.0.0.1:{py_port}/status/503"]
    res = named_curl(tmp_path, *[x for u in urls for x in ("-o", "/dev/null", u)])
    assert res.returncode == 0, res.stderr

    # one client process, one server: 5 requests, the 503 an error
    topo = wait_api(base, "/api/topology?since=600", lambda d: edge(d, client, python) == (5, 1))
    assert edge(topo, client, python) == (5, 1), topo
    names = {n["id"]: n for n in topo["nodes"]}
    assert names[client]["kind"] == "process" and names[python]["kind"] == "process"
    status = wait_api(base, "/api/status",
                      lambda d: d["counters"].get("exchanges", 0) >= 10)
    assert status["source"] == "kernel"
    mine = a.wait_for(lambda r: len(r) == 10, port=py_port)
    assert len(mine) == 10
    assert sorted((r["side"], r["peer_name"], r["status"]) for r in mine) == sorted(
        [("client", SERVER_NAME, 200)] * 4 + [("client", SERVER_NAME, 503)]
        + [("server", CLIENT_NAME, 200)] * 4 + [("server", CLIENT_NAME, 503)])
    exchanges = wait_api(base, f"/api/exchanges?since=600&server={python}&limit=100",
                         lambda d: len(d["exchanges"]) >= 10)["exchanges"]
    assert sorted((e["side"], e["status"]) for e in exchanges) == sorted(
        [("client", 200)] * 4 + [("client", 503)] + [("server", 200)] * 4 + [("server", 503)])

    code, ctype, body = get(base, "/metrics")  # --metrics-listen on the UI's address
    assert code == 200 and ctype.startswith("text/plain"), ctype
    assert b"# TYPE" in body
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    assert a.stop() == 0
    assert "Traceback" not in "".join(a.stderr)


def test_ui_off_listens_on_nothing(agent, tmp_path):
    a = agent("--ui", "off", "--metrics-interval", "1")
    assert not any("web UI" in line for line in a.stderr), a.stderr
    assert listening_sockets(a.proc.pid) == []
    assert a.stop() == 0


def test_ui_on_listens_on_its_address_only(agent, tmp_path):
    port = free_port()
    a = agent("--ui", f":{port}", "--store", str(tmp_path / "s.db"))
    assert listening_sockets(a.proc.pid) == [f"0100007F:{port:04X}"]
    assert a.stop() == 0


def _store_dirs() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("l7scope-store-")}


def test_busy_ui_port_is_one_line_exit_2_with_nothing_left(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("kernel tests need root")
    out = tmp_path / "x.jsonl"
    before_dirs = _store_dirs()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "l7scope", "run", "--ui", f"127.0.0.1:{port}",
                              "--store", "off", "--no-summary", "--output", f"jsonl:{out}",
                              "--duration", "5"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [
        f"l7scope: --ui 127.0.0.1:{port}: Address already in use; another l7scope? "
        "choose --ui HOST:PORT or --ui off"], res.stderr
    assert not out.exists()  # opened before the UI, empty: removed
    assert _store_dirs() <= before_dirs  # the temporary store went with it
