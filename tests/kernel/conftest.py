"""Kernel test harness: the real `l7scope run` agent, real servers (Python, nginx) and clients.

Under `make test` (L7SCOPE_REQUIRE_KERNEL=1) a kernel test that cannot run fails with the reason;
in a plain developer run without root it is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REQUIRE = os.environ.get("L7SCOPE_REQUIRE_KERNEL") == "1"
HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"


def cannot_run(reason: str):
    if REQUIRE:
        pytest.fail(f"kernel test cannot run under make test: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        cannot_run(f"{name} is not installed (make install installs it)")
    return path


def _whole_lines(path: Path) -> list[dict]:
    """The records of a JSON Lines file the agent may be writing: a last line without its
    newline is still being written and is left for the next read."""
    return [json.loads(line) for line in path.read_text().splitlines(keepends=True)
            if line.endswith("\n") and line.strip()]


class Agent:
    """Runs `l7scope run` as a subprocess writing JSON Lines to files."""

    def __init__(self, tmp: Path, args: list[str]):
        self.out = tmp / f"exchanges-{id(self)}.jsonl"
        self.metrics = tmp / f"metrics-{id(self)}.jsonl"
        # no web UI (port 7070) or store (/var/lib/l7scope) unless the test asks for them
        quiet = [*([] if "--ui" in args else ["--ui", "off"]),
                 *([] if "--store" in args else ["--store", "off"])]
        cmd = [sys.executable, "-m", "l7scope.cli", "run", "--no-summary",
               "--output", f"jsonl:{self.out}", "--metrics-output", f"jsonl:{self.metrics}",
               *quiet, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.stderr.append(line)
                if "capturing" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(60) or self.proc.poll() is not None:
            self.proc.kill()
            cannot_run("agent did not start: " + "".join(self.stderr).strip())

    def records(self, port: int | None = None) -> list[dict]:
        if not self.out.exists():
            return []
        recs = _whole_lines(self.out)
        if port is None:
            return recs
        suffix = f":{port}"
        return [r for r in recs if (r["local"] or "").endswith(suffix)
                or (r["remote"] or "").endswith(suffix)]

    def metric_records(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        return _whole_lines(self.metrics)

    def wait_for(self, predicate, port: int | None = None, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        recs = []
        while time.monotonic() < deadline:
            recs = self.records(port)
            if predicate(recs):
                return recs
            time.sleep(0.2)
        return recs

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.1)
        return self.proc.returncode


@pytest.fixture
def agent(tmp_path):
    """agent(*args) starts the real agent; every started agent is stopped at teardown."""
    if os.geteuid() != 0:
        cannot_run("kernel tests need root")
    started: list[Agent] = []

    def start(*args: str) -> Agent:
        a = Agent(tmp_path, list(args))
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


def _spawn(cmd: list[str], ready_port: int, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    try:
        wait_port(ready_port)
    except TimeoutError:
        proc.kill()
        raise
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def python_server():
    """A real Python HTTP/1.1 server process; yields (port, pid)."""
    port = free_port()
    proc = _spawn([sys.executable, str(APPS / "http_server.py"), str(port)], port)
    yield port, proc.pid
    _stop(proc)


def nginx_config(tmp, servers: str, user_root: bool = True, access_log: str = "off",
                 log_format: str = "") -> str:
    """A self-contained nginx.conf (one worker, pid/logs/temp files under tmp) around `servers`;
    `access_log`/`log_format` for the tests that count what nginx served."""
    return f"""
{"user root;" if user_root else ""}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    {log_format}
    access_log {access_log};
    default_type text/plain;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{servers}
}}
"""


TEST_SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        location = /hello {{ return 200 "hello from nginx\\n"; }}
        location = /missing {{ return 404; }}
        location = /error {{ return 500; }}
        location /static/ {{ root {tmp}/www; }}
        location /py/ {{ proxy_pass http://127.0.0.1:{upstream}/; proxy_http_version 1.1;
                         proxy_set_header Connection ""; }}
    }}
    server {{
        listen 127.0.0.1:{h2port} http2;
        location / {{ add_header X-H2-Test nginx-h2c; return 200 "h2c ok\\n"; }}
        location = /missing {{ return 404; }}
    }}
"""


class Nginx:
    def __init__(self, tmp: Path, upstream: int):
        self.port, self.h2port = free_port(), free_port()
        self.tmp = tmp
        www = tmp / "www" / "static"
        www.mkdir(parents=True)
        (www / "small.txt").write_text("small static file\n")
        (www / "large.bin").write_bytes(bytes(range(256)) * 1024)  # 262144 bytes, sent by sendfile
        conf = tmp / "nginx.conf"
        servers = TEST_SERVERS.format(tmp=tmp, port=self.port, h2port=self.h2port,
                                      upstream=upstream)
        conf.write_text(nginx_config(tmp, servers))
        self.proc = _spawn([need_tool("nginx"), "-c", str(conf), "-e", str(tmp / "error.log")],
                           self.port)
        wait_port(self.h2port)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


@pytest.fixture
def nginx(tmp_path, python_server):
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        cannot_run("nginx is not installed (make install installs it)")
    os.environ["PATH"] += ":/usr/sbin"
    n = Nginx(tmp_path / "nginx", python_server[0])
    yield n
    _stop(n.proc)


def curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([need_tool("curl"), "-sS", *args], capture_output=True, timeout=timeout)
