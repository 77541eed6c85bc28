"""What the agent benchmarks share: nginx and the load generators under comm names of their own,
the agent as a child process with its CPU time, peak RSS and counters, and the records it wrote.

The load runs under names of its own (a symlink's name becomes the process's comm), so that the
agent's --comm filter traces this benchmark's nginx, h2load and wrk and nothing else on the host.
Everything listens on loopback; every process started here is stopped by the context managers.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NGINX_COMM, H2LOAD_COMM, WRK_COMM = "l7bench-nginx", "l7bench-h2load", "l7bench-wrk"
SERVERS = """    server {{ listen 127.0.0.1:{h1}; location / {{ return 200 "hello from the benchmark\\n"; }} }}
    server {{ listen 127.0.0.1:{h2} http2; location / {{ return 200 "hello over h2c\\n"; }} }}"""
DROP_WORDS = ("full", "drop", "lost", "fault", "malformed", "shed", "overflow", "truncat")


def load_average() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process (/proc/PID/stat of the thread group)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds(pid: int) -> float:
    """Time the process's threads ran plus time they waited for a CPU (schedstat, ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran, waited, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        total += int(ran) + int(waited)
    return total / 1e9


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def drops(counters: dict) -> dict:
    """The agent counters that count something lost, non-zero ones only."""
    return {k: v for k, v in counters.items()
            if isinstance(v, int) and v and any(w in k for w in DROP_WORDS)}


class Servers:
    """nginx (one worker) with an HTTP/1.1 port and an h2c port, and the load tools' comm links."""

    def __init__(self) -> None:
        from tests.kernel.conftest import free_port, nginx_config, wait_port

        self.tmp = Path(tempfile.mkdtemp(prefix="l7bench-"))
        self.h1_port, self.h2_port = free_port(), free_port()
        conf = self.tmp / "nginx.conf"
        self.access_log, self._log_offset = self.tmp / "access.log", 0
        conf.write_text(nginx_config(
            self.tmp, SERVERS.format(h1=self.h1_port, h2=self.h2_port), user_root=False,
            log_format="log_format ports '$server_port';",
            access_log=f"{self.access_log} ports buffer=256k flush=1s"))
        self.h2load = self._link("h2load", H2LOAD_COMM)
        self.wrk = self._link("wrk", WRK_COMM)
        self.nginx = subprocess.Popen([self._link("nginx", NGINX_COMM), "-c", str(conf),
                                       "-e", str(self.tmp / "error.log")])
        wait_port(self.h1_port)
        wait_port(self.h2_port)

    def served(self, flush_wait_s: float = 1.5) -> dict[int, int]:
        """Requests nginx served per port since the last call (its access log, written in
        buffers flushed every second: the first wait lets the last one out)."""
        time.sleep(flush_wait_s)
        counts: dict[int, int] = {}
        with open(self.access_log, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        for line in data[:end].split():
            counts[int(line)] = counts.get(int(line), 0) + 1
        return counts

    def _link(self, tool: str, comm: str) -> str:
        link = self.tmp / comm
        link.symlink_to(shutil.which(tool) or f"/usr/sbin/{tool}")
        return str(link)

    def close(self) -> None:
        self.nginx.terminate()
        try:
            self.nginx.wait(10)
        except subprocess.TimeoutExpired:
            self.nginx.kill()
            self.nginx.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def h2load_cmd(exe: str, port: int, seconds: float, connections: int, streams: int,
               rate: int, h1: bool) -> list[str]:
    """h2load for `seconds` (-D); rate 0 = full speed, else --rps per connection."""
    cmd = [exe, "-c", str(connections), "-m", str(streams), "-D", str(int(seconds))]
    if h1:
        cmd.insert(1, "--h1")
    if rate:
        cmd += ["--rps", f"{rate / connections:g}"]
    return cmd + [f"http://127.0.0.1:{port}/"]


def run_h2load(cmd: list[str], seconds: float) -> dict:
    """{"done": succeeded requests, "rps": requests/s h2load reports}."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    return {"done": int(done.group(1)), "rps": float(rps.group(1))}


def run_wrk(exe: str, port: int, seconds: float, connections: int) -> dict:
    out = subprocess.run([exe, "-t1", f"-c{connections}", f"-d{int(seconds)}s",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True, timeout=seconds + 60).stdout
    return {"done": int(re.search(r"(\d+) requests in", out).group(1)),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


class Agent:
    """`l7scope run` as a child, tracing `comms`; exchanges to `output` (a path, or None for
    /dev/null) and agent counters to a metrics file. The UI and the store are off: the
    benchmark measures the data plane and the JSON Lines output."""

    def __init__(self, tree: Path, tmp: Path, comms: list[str], output: Path | None,
                 extra: list[str] = (), start_timeout: float = 120) -> None:
        self.output, self.metrics = output, tmp / "agent-metrics.jsonl"
        for f in (output, self.metrics):
            if f is not None:
                f.unlink(missing_ok=True)
        self.stderr_tail: list[str] = []
        self.peak_rss = 0.0  # MiB, VmHWM
        cmd = [sys.executable, "-m", "l7scope.cli", "run", "--no-summary", "--ui", "off",
               # never rotated: a rotation at the default 100 MiB would hide the records
               # before it from the count (trees before rotation existed read no '?')
               "--store", "off", "--output", f"jsonl:{output}?max_mb=0" if output else
               f"jsonl:{os.devnull}",
               "--metrics-output", f"jsonl:{self.metrics}", "--metrics-interval", "1",
               *[a for c in comms for a in ("--comm", c)], *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, cwd=tree)
        self.pid = self.proc.pid
        self._started = threading.Event()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        if not self._started.wait(start_timeout) or self.proc.poll() is not None:
            self.close()
            raise RuntimeError("agent did not start: " + "".join(self.stderr_tail[-5:]))
        self.cpu0 = cpu_seconds(self.pid)

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line])[-50:]
            if "capturing" in line:
                self._started.set()
        self._started.set()

    def settle(self, window_s: float = 0.5, busy_share: float = 0.1, limit_s: float = 30.0) -> None:
        """Wait until the agent has caught up with the ring buffer: over a window, the time it
        ran plus the time it waited for a CPU (/proc/PID/task/*/schedstat) is below
        `busy_share` of the window (a starved agent waits on the run queue with work left, so
        its CPU use alone says nothing), at most `limit_s`."""
        deadline = time.monotonic() + limit_s
        last = busy_seconds(self.pid)
        while time.monotonic() < deadline:
            time.sleep(window_s)
            now = busy_seconds(self.pid)
            if now - last < busy_share * window_s:
                return
            last = now

    def stop(self) -> dict:
        """Stop the agent (SIGINT: it drains the ring buffer, flushes and exits) and reap it:
        its CPU seconds since start-up (rusage of the whole process, shutdown included), peak
        RSS (VmHWM, read just before the agent exits) and the last agent_counters record."""
        # VmHWM alone: wait4's ru_maxrss is no measure of the agent, as the kernel carries the
        # forking process's high-water mark across exec into it (this harness's own RSS)
        self.peak_rss = peak_rss_mb(self.pid)
        ru = self._reap()
        rss = self.peak_rss
        cpu = (ru.ru_utime + ru.ru_stime - self.cpu0) if ru else cpu_seconds(self.pid) - self.cpu0
        counters: dict = {}
        if self.metrics.exists():
            for line in self.metrics.read_text().splitlines():
                rec = json.loads(line)
                if rec.get("kind") == "agent_counters":
                    counters = rec
        return {"cpu_s": cpu, "rss_mb": rss, "counters": counters}

    def _reap(self, timeout_s: float = 120):
        """SIGINT, then wait4 (for the rusage); SIGKILL after timeout_s. None if already reaped."""
        if self.proc.returncode is not None:
            return None
        self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while True:
            try:  # the drain at SIGINT counts too, until the process is gone
                self.peak_rss = max(self.peak_rss, peak_rss_mb(self.pid))
            except OSError:
                pass
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return ru
            if time.monotonic() > deadline:
                self.proc.kill()
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.returncode is None and self.proc.poll() is None:
            self._reap()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def records_per_side(path: Path | None, port: int) -> dict[str, int]:
    """Exchanges in a JSON Lines file with `port` at either end: complete ones (a method and a
    status, not partial) by side ("server", "client"), and the others ("incomplete"): after
    a loss the analyzers report halves and partial exchanges, which complete no request."""
    sides = {"server": 0, "client": 0, "incomplete": 0}
    if path is None or not path.exists():
        return sides
    needle, suffix = str(port), f":{port}"
    with open(path) as f:
        for line in f:
            if needle not in line:
                continue
            r = json.loads(line)
            if not ((r.get("local") or "").endswith(suffix)
                    or (r.get("remote") or "").endswith(suffix)):
                continue
            whole = r.get("method") and r.get("status") is not None and not r.get("partial")
            key = r["side"] if whole else "incomplete"
            sides[key] = sides.get(key, 0) + 1
    return sides
