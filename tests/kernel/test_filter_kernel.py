"""Who is traced, on the real kernel programs: --comm matches the process name (the thread-group
leader's), not the name of the thread that makes the syscalls, and the filter changes live
(KernelCapture.set_filter) without reloading the programs.

Two Python servers, each a process renamed to a name of its own whose every socket call comes
from a worker thread with yet another name. The test process loads the capture itself (so it is
the agent and never traced) and is the servers' only client: what is counted is each server's
received request lines, by path, so every request is seen once or not at all.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from l7scope.capture.events import DataChunk
from tests.kernel.conftest import cannot_run, free_port

pytestmark = pytest.mark.kernel

SERVER = r'''
import ctypes, os, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

libc = ctypes.CDLL(None, use_errno=True)
port, process_name, thread_name, later = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
libc.prctl(15, process_name.encode(), 0, 0, 0)  # PR_SET_NAME on the leader: the process name

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.endswith("-rename-thread"):  # this worker thread only
            libc.prctl(15, later.encode(), 0, 0, 0)
        elif self.path.endswith("-rename-process"):  # the leader, renamed from this thread
            with open(f"/proc/self/task/{os.getpid()}/comm", "w") as f:
                f.write(later)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

def worker():
    libc.prctl(15, thread_name.encode(), 0, 0, 0)
    server = HTTPServer(("127.0.0.1", port), H)
    print("ready", flush=True)
    server.serve_forever()  # every socket call of the process is on this thread

threading.Thread(target=worker).start()
'''


class Server:
    def __init__(self, tmp_path, process_name: str, thread_name: str, later: str):
        script = tmp_path / "server.py"
        script.write_text(SERVER)
        self.port, self.name = free_port(), process_name
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port), process_name,
                                      thread_name, later], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.pid = self.proc.pid

    def get(self, path: str) -> None:
        """One HTTP/1.0 request on its own connection, its response read to the close."""
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: t\r\n\r\n".encode())
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 200 "), reply[:40]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Seen:
    """Polls the capture on a thread; keeps (server pid, path) of every request line received."""

    def __init__(self, capture):
        self.capture, self.lines, self._stop = capture, [], threading.Event()
        self._thread = threading.Thread(target=self._pump)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            self._take(self.capture.poll(50))

    def _take(self, events) -> None:
        for ev in events:
            if type(ev) is DataChunk and not ev.egress and ev.data.startswith(b"GET /"):
                self.lines.append((ev.pid, ev.data.split(b" ")[1].decode()))

    def paths(self, server: Server, prefix: str) -> list[str]:
        return sorted(p for pid, p in self.lines if pid == server.pid and p.startswith(prefix))

    def wait_for(self, server: Server, path: str, timeout: float = 10.0) -> None:
        """Until `path` is seen at `server`; what came before it is then in too (one ring)."""
        deadline = time.monotonic() + timeout
        while (server.pid, path) not in self.lines and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # records of other CPUs reserved just before

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._take(self.capture.drain())


@pytest.fixture
def servers(tmp_path):
    made = []
    try:
        for tag in ("a", "b"):
            d = tmp_path / tag
            d.mkdir()
            made.append(Server(d, f"l7t-proc-{tag}", f"l7t-thread-{tag}", f"l7t-later-{tag}"))
        yield made
    finally:
        for s in made:
            s.stop()


def load(**filters):
    from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions
    try:
        return KernelCapture(KernelOptions(tls=False, **filters))
    except CaptureUnavailable as e:
        cannot_run(str(e))


def phase(servers, tag: str, n: int = 2) -> None:
    for server in servers:
        for i in range(n):
            server.get(f"/{tag}-{server.name[-1]}{i}")


def test_comm_matches_the_process_name_not_the_calling_threads(servers):
    a, b = servers
    capture = load(comms=("l7t-proc-a",))
    seen = Seen(capture)
    try:
        phase(servers, "proc")
        # B by its process name is the proof that A's requests would have been seen
        capture.set_filter((), ("l7t-thread-a", "l7t-proc-b"))
        phase(servers, "thread")
        a.get("/x-rename-thread")  # A's worker takes the name A's process would need
        phase(servers, "after-thread")
        a.get("/x-rename-process")  # A's leader takes it: the process is renamed
        capture.set_filter((), ("l7t-later-a", "l7t-proc-b"))
        phase(servers, "after-process")
        seen.wait_for(b, "/after-process-b1")
    finally:
        seen.stop()
        capture.close()
    assert seen.paths(a, "/proc") == ["/proc-a0", "/proc-a1"]
    assert seen.paths(b, "/proc") == []
    assert seen.paths(a, "/thread") == [] and seen.paths(a, "/after-thread") == []
    assert seen.paths(b, "/thread") == ["/thread-b0", "/thread-b1"]
    assert seen.paths(b, "/after-thread") == ["/after-thread-b0", "/after-thread-b1"]
    assert seen.paths(a, "/x") == []
    assert seen.paths(a, "/after-process") == ["/after-process-a0", "/after-process-a1"]
    assert seen.paths(b, "/after-process") == ["/after-process-b0", "/after-process-b1"]


def test_a_thread_rename_keeps_and_a_leader_rename_changes_the_verdict(servers):
    """The cached verdict of a process: a worker thread taking the filtered name changes
    nothing; the leader taking it (from another thread, through /proc) makes the process traced
    from its next call, with the same filter (same generation)."""
    a, b = servers
    capture = load(comms=("l7t-later-a", "l7t-proc-b"))
    seen = Seen(capture)
    try:
        phase(servers, "before")
        a.get("/x-rename-thread")
        phase(servers, "thread")
        a.get("/x-rename-process")
        phase(servers, "leader")
        seen.wait_for(b, "/leader-b1")
    finally:
        seen.stop()
        capture.close()
    assert seen.paths(a, "/before") == [] and seen.paths(a, "/thread") == []
    assert seen.paths(a, "/x") == []
    assert seen.paths(a, "/leader") == ["/leader-a0", "/leader-a1"]
    assert seen.paths(b, "/") == ["/before-b0", "/before-b1", "/leader-b0", "/leader-b1",
                                  "/thread-b0", "/thread-b1"]


def test_filter_changes_live_without_reload(servers):
    a, b = servers
    capture = load(pids=(a.pid,))
    seen = Seen(capture)
    try:
        phase(servers, "1")  # pid A
        capture.set_filter((b.pid,), ())
        phase(servers, "2")  # pid B
        capture.set_filter((), ("l7t-proc-a",))
        phase(servers, "3")  # name A
        capture.set_filter((), ("l7t-proc-b",))
        phase(servers, "4")  # name B: A's cached verdict is of the previous generation
        capture.set_filter((), ())
        phase(servers, "5")  # everyone
        capture.set_filter((a.pid,), ("l7t-proc-b",))
        phase(servers, "6")  # either
        seen.wait_for(b, "/6-b1")
    finally:
        seen.stop()
        capture.close()
    assert [seen.paths(a, f"/{n}-") for n in range(1, 7)] == [
        ["/1-a0", "/1-a1"], [], ["/3-a0", "/3-a1"], [], ["/5-a0", "/5-a1"], ["/6-a0", "/6-a1"]]
    assert [seen.paths(b, f"/{n}-") for n in range(1, 7)] == [
        [], ["/2-b0", "/2-b1"], [], ["/4-b0", "/4-b1"], ["/5-b0", "/5-b1"], ["/6-b0", "/6-b1"]]


def test_over_capacity_is_refused_and_the_filter_kept(servers):
    from l7scope.capture.kernel import COMM_FILTER_MAX, PID_FILTER_MAX

    a, b = servers
    capture = load(pids=(a.pid,))
    seen = Seen(capture)
    try:
        with pytest.raises(ValueError, match=f"^{PID_FILTER_MAX + 1} pids to trace: the kernel "
                                             f"filter holds at most {PID_FILTER_MAX}$"):
            capture.set_filter(range(1, PID_FILTER_MAX + 2), ())
        with pytest.raises(ValueError, match="process names to trace: the kernel filter holds "
                                             f"at most {COMM_FILTER_MAX}$"):
            capture.set_filter((), [f"n{i}" for i in range(COMM_FILTER_MAX + 1)])
        capture.set_filter(range(1, PID_FILTER_MAX), ())  # full but for one: taken
        capture.set_filter((a.pid,), ())
        phase([b, a], "kept")  # A's last: when it is seen, B's would have been
        seen.wait_for(a, "/kept-a1")
    finally:
        seen.stop()
        capture.close()
    assert seen.paths(a, "/") == ["/kept-a0", "/kept-a1"] and seen.paths(b, "/") == []
