"""Process identity on real processes: thread names, a container-like cgroup, exec and exit.

The first test runs the real agent: the records' pid is the process, and the table names it by
the thread-group leader, not by the worker thread that made the syscalls. The others need root
(cgroup moves) and read the real /proc.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l7scope.procs import ProcessTable, pid_warnings
from tests.kernel.conftest import cannot_run, curl, free_port, wait_port

pytestmark = pytest.mark.kernel

THREADED_SERVER = r'''
import ctypes, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

def worker(port, tidfile):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, b"event_engine", 0, 0, 0)  # PR_SET_NAME: this thread's name only
    with open(tidfile, "w") as f:
        f.write(str(threading.get_native_id()))
    HTTPServer(("127.0.0.1", port), H).serve_forever()  # every socket call on this thread

t = threading.Thread(target=worker, args=(int(sys.argv[1]), sys.argv[2]))
t.start()
t.join()
'''


def need_root():
    if os.geteuid() != 0:
        cannot_run("process identity kernel tests need root")


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_worker_thread_syscalls_name_the_process(agent, tmp_path):
    script, tidfile, port = tmp_path / "threaded.py", tmp_path / "tid", free_port()
    script.write_text(THREADED_SERVER)
    server = subprocess.Popen([sys.executable, str(script), str(port), str(tidfile)])
    try:
        wait_port(port)
        a = agent("--pid", str(server.pid))
        res = curl("-o", "/dev/null", f"http://127.0.0.1:{port}/x")
        assert res.returncode == 0, res.stderr
        recs = a.wait_for(lambda r: any(x["side"] == "server" for x in r), port)
        (rec,) = [r for r in recs if r["side"] == "server"]
        assert rec["pid"] == server.pid
        table = ProcessTable()
        info = table.lookup(rec["pid"])
        leader = Path(f"/proc/{server.pid}/comm").read_text().strip()
        tid = int(tidfile.read_text())
        assert tid != server.pid and table.thread_name(tid) == "event_engine"
        assert info.name == leader == Path(sys.executable).name[:15]
        assert table.lookup(tid).pid == server.pid  # a thread id answers for its process
        assert info.service == f"{leader} threaded.py"
        assert info.exe == os.path.realpath(sys.executable)
        # the record names the process, not the worker thread that made the syscalls
        assert rec["comm"] == rec["name"] == info.name and rec["thread"] == "event_engine"
        assert rec["exe"] == info.exe and rec["container_id"] is None
    finally:
        server.kill()
        server.wait()


def cgroup2_mount() -> Path:
    """Where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    cannot_run("cgroup v2 is not mounted")


def v2_path(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise AssertionError("no cgroup v2 line")


def test_process_in_container_like_cgroup(tmp_path):
    need_root()
    mount = cgroup2_mount()
    cid = secrets.token_hex(32)
    parent = mount / f"l7scope-test-{os.getpid()}"
    scope = parent / f"docker-{cid}.scope"
    proc = subprocess.Popen(["sleep", "60"])
    home = mount / v2_path(proc.pid).lstrip("/")
    scope.mkdir(parents=True)
    try:
        (scope / "cgroup.procs").write_text(str(proc.pid))
        info = ProcessTable(container_names=None).lookup(proc.pid)
        assert info.cgroup == f"/{parent.name}/docker-{cid}.scope"
        assert (info.container_id, info.container_runtime) == (cid, "docker")
        assert (info.name, info.service) == ("sleep", cid[:12])
    finally:
        (home / "cgroup.procs").write_text(str(proc.pid))
        proc.kill()
        proc.wait()
        scope.rmdir()
        parent.rmdir()
    assert not parent.exists()


def test_exec_then_exit(tmp_path):
    need_root()
    proc = subprocess.Popen(["bash", "-c", "read line; exec sleep 60"], stdin=subprocess.PIPE)
    table = ProcessTable(container_names=None, grace_s=30)
    try:
        assert wait_until(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "bash")
        before = table.lookup(proc.pid)
        assert (before.name, before.service) == ("bash", "bash")
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        assert wait_until(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep")
        assert table.lookup(proc.pid).name == "bash"  # cached until an event or revalidation
        table.on_exec(proc.pid, time.monotonic_ns())
        after = table.lookup(proc.pid)
        assert (after.name, after.cmdline) == ("sleep", "sleep 60")
        assert after.exe == os.path.realpath("/usr/bin/sleep")
        assert after.start_time == before.start_time  # exec keeps the process
    finally:
        proc.kill()
        proc.wait()
    table.on_exit(proc.pid, time.monotonic_ns())
    assert table.lookup(proc.pid).name == "sleep"  # late records still get the name
    assert table.expire(time.monotonic_ns() + 31 * 10**9) == 1
    assert pid_warnings([proc.pid]) == [
        f"--pid {proc.pid}: no such process (nothing will be traced for it unless a process "
        f"with that id starts)"]
