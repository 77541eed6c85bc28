"""Agent benchmark (run by hand, as root): nginx driven by wrk with keep-alive, agent off and on.

Prints: requests/s without and with the agent (wrk at full speed), then a rated run (default
5,000 requests/s) with: completeness per side (records the agent reported / requests wrk
completed), agent CPU seconds per 1,000 requests and requests/s per agent core, agent peak RSS,
and the agent's drop counters.

    python bench/bench_agent.py [--seconds 10] [--rate 5000] [--connections 10]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_SERVER = """    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hello from the benchmark\\n"; }} }}"""

# wrk Lua: each connection waits `delay` ms between requests, which caps the rate.
RATE_LUA = "function delay() return {delay_ms} end\n"


def wrk(port: int, seconds: float, connections: int, lua: str | None = None) -> tuple[int, float]:
    n, rps, _ = wrk_latency(port, seconds, connections, lua)
    return n, rps


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk_latency(port: int, seconds: float, connections: int, lua: str | None = None):
    """(requests, requests/s, {"avg": ms, "p50": ms, "p99": ms}) from one wrk run."""
    cmd = ["wrk", "-t1", "--latency", f"-c{connections}", f"-d{int(seconds)}s",
           f"http://127.0.0.1:{port}/"]
    if lua:
        cmd[1:1] = ["-s", lua]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = {"avg": _ms(re.search(r"Latency\s+(\S+)", out).group(1)),
           "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
           "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1))}
    return int(m.group(1)), float(rps.group(1)), lat


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class AgentRun:
    def __init__(self, tmp: Path, extra: list[str]):
        self.out = tmp / "ex.jsonl"
        self.metrics = tmp / "m.jsonl"
        for f in (self.out, self.metrics):
            f.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "l7scope.cli", "run", "--no-summary", "--output",
             f"jsonl:{self.out}", "--metrics-output", f"jsonl:{self.metrics}", *extra],
            stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for line in self.proc.stderr:
            if "capturing" in line:
                break
        self.cpu0 = cpu_seconds(self.proc.pid)

    def stop(self) -> dict:
        cpu = cpu_seconds(self.proc.pid) - self.cpu0
        rss = peak_rss_mb(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(120)
        cpu_total = cpu
        counters = {}
        for line in self.metrics.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "agent_counters":
                counters = rec
        return {"cpu_s": cpu_total, "rss_mb": rss, "counters": counters}

    def records(self, port: int) -> dict[str, int]:
        sides = {"client": 0, "server": 0}
        suffix = f":{port}"
        with open(self.out) as f:
            for line in f:
                r = json.loads(line)
                if (r["local"] or "").endswith(suffix) or (r["remote"] or "").endswith(suffix):
                    sides[r["side"]] = sides.get(r["side"], 0) + 1
        return sides


def _drops(c: dict) -> dict:
    return {k: v for k, v in c.items() if any(w in k for w in ("full", "drop", "lost", "fault", "malformed"))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="l7bench-"))
    from tests.kernel.conftest import free_port, nginx_config, wait_port

    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_config(tmp, BENCH_SERVER.format(port=port), user_root=False))
    nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")])
    wait_port(port)
    try:
        base_n, base_rps = wrk(port, args.seconds, args.connections)
        print(f"without agent:  {base_rps:10.0f} requests/s ({base_n} requests)")
        agent = AgentRun(tmp, ["--comm", "nginx", "--comm", "wrk"])
        on_n, on_rps = wrk(port, args.seconds, args.connections)
        st = agent.stop()
        got = agent.records(port)
        print(f"with agent:     {on_rps:10.0f} requests/s ({on_n} requests; overhead "
              f"{(1 - on_rps / base_rps) * 100:.1f}%); agent reported server {got['server']} "
              f"client {got['client']}; agent CPU {st['cpu_s']:.1f}s")
        print(f"  drops at full speed: {_drops(st['counters'])}")
        # rated: each connection waits 2 ms between requests; connections sized for the rate
        lua = tmp / "rate.lua"
        lua.write_text(RATE_LUA.format(delay_ms=2))
        conns = max(1, math.ceil(args.rate * 0.0025))
        _, base_rated, base_lat = wrk_latency(port, args.seconds, conns, str(lua))
        agent = AgentRun(tmp, ["--comm", "nginx", "--comm", "wrk"])
        n, rps, lat = wrk_latency(port, args.seconds, conns, str(lua))
        time.sleep(1)
        st = agent.stop()
        got = agent.records(port)
        per_side = 2 * n  # each request is reported by the server (nginx) and the client (wrk)
        print(f"rated run:      {rps:10.0f} requests/s ({n} requests, {conns} connections); "
              f"without agent {base_rated:.0f} requests/s")
        print(f"  latency seen by wrk without / with agent: avg {base_lat['avg']:.3f} / "
              f"{lat['avg']:.3f} ms, p50 {base_lat['p50']:.3f} / {lat['p50']:.3f} ms, "
              f"p99 {base_lat['p99']:.3f} / {lat['p99']:.3f} ms")
        for side in ("server", "client"):
            print(f"  completeness {side}: {got.get(side, 0) / n * 100:.3f}% ({got.get(side, 0)}/{n})")
        print(f"  agent CPU: {st['cpu_s']:.2f}s = {st['cpu_s'] / per_side * 1000 * 1000:.1f} ms per "
              f"1,000 exchanges; {per_side / max(st['cpu_s'], 1e-9):.0f} exchanges/s per agent core "
              f"({n / max(st['cpu_s'], 1e-9):.0f} requests/s per core, both sides reported)")
        print(f"  agent peak RSS: {st['rss_mb']:.1f} MiB")
        print(f"  drops: {_drops(st['counters'])}")
    finally:
        nginx.terminate()
        nginx.wait()


if __name__ == "__main__":
    main()
