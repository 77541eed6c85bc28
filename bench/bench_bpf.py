"""BPF cost benchmark (run by hand, as root): the kernel programs' own run time per request.

nginx `return 200` is driven by h2load --h1 (HTTP/1.1 keep-alive) at a fixed rate while the
agent traces both ends (--comm nginx --comm h2load). kernel.bpf_stats_enabled is switched on for
the run (and restored after); run_time_ns and run_cnt of each of the agent's programs are read
from /proc/<agent>/fdinfo before and after the load. An idle window of the same length before
the load measures what the programs cost for the rest of the host (every syscall on the host
runs the syscall tracepoints, traced or not); it is subtracted, so "per request" is the cost
the load added. Prints BPF ns per request (total and per program), program runs per request,
ring-buffer records per request, and with --throughput nginx's full-speed requests/s with no
agent and with the agent running.

    python bench/bench_bpf.py [--seconds 10] [--rate 5000] [--connections 10] [--throughput]
"""
from __future__ import annotations

import argparse
import json
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

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")
BENCH_SERVER = """    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hello from the benchmark\\n"; }} }}"""


def prog_stats(pid: int) -> dict[int, tuple[int, int]]:
    """prog_id -> (run_time_ns, run_cnt) for every BPF program fd the process holds."""
    out: dict[int, tuple[int, int]] = {}
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for entry in fdinfo.iterdir():
        try:
            text = entry.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if "prog_id" in fields and "run_time_ns" in fields:
            out[int(fields["prog_id"])] = (int(fields["run_time_ns"]), int(fields["run_cnt"]))
    return out


def prog_names(ids) -> dict[int, str]:
    shown = json.loads(subprocess.run(["bpftool", "prog", "show", "--json"], check=True,
                                      capture_output=True, text=True).stdout)
    return {p["id"]: p.get("name", str(p["id"])) for p in shown if p["id"] in ids}


def delta(after: dict, before: dict) -> dict[int, tuple[int, int]]:
    return {i: (after[i][0] - before.get(i, (0, 0))[0], after[i][1] - before.get(i, (0, 0))[1])
            for i in after}


def h2load(port: int, seconds: float, rate: int, connections: int) -> int:
    """Requests that succeeded in a rated HTTP/1.1 keep-alive run."""
    per_client = max(1, rate // connections)
    out = subprocess.run(
        ["h2load", "--h1", "-c", str(connections), "--rps", str(per_client), "-D", str(int(seconds)),
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out).group(1))


def wrk_rps(port: int, seconds: float, connections: int) -> float:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


class Agent:
    def __init__(self, tmp: Path, comms: list[str]):
        self.metrics = tmp / "metrics.jsonl"
        self.metrics.unlink(missing_ok=True)
        args = [a for c in comms for a in ("--comm", c)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "l7scope.cli", "run", "--no-summary", "--output",
             f"jsonl:{tmp / 'ex.jsonl'}", "--metrics-output", f"jsonl:{self.metrics}", *args],
            stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for line in self.proc.stderr:
            if "capturing" in line:
                break

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(120)
        counters = {}
        for line in self.metrics.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "agent_counters":
                counters = rec
        return counters


def report(load: dict, idle: dict, names: dict[int, str], requests: int) -> None:
    rows = []
    for pid_, (ns, cnt) in load.items():
        ins, icnt = idle.get(pid_, (0, 0))
        rows.append((names.get(pid_, str(pid_)), ns - ins, cnt - icnt, ns, cnt))
    rows.sort(key=lambda r: -r[1])
    total_ns = sum(r[1] for r in rows)
    total_runs = sum(r[2] for r in rows)
    print(f"BPF per request: {total_ns / requests:8.0f} ns, {total_runs / requests:5.2f} program "
          f"runs (load minus idle; raw {sum(r[3] for r in rows) / requests:.0f} ns)")
    print(f"  {'program':24s} {'ns/request':>10s} {'runs/request':>12s} {'ns/run':>8s}")
    for name, ns, cnt, _, _ in rows:
        if cnt <= 0 and ns <= 0:
            continue
        print(f"  {name:24s} {ns / requests:10.0f} {cnt / requests:12.2f} "
              f"{ns / cnt if cnt > 0 else 0:8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--throughput", action="store_true",
                    help="also nginx full-speed requests/s (wrk) without and with the agent")
    args = ap.parse_args()
    from tests.kernel.conftest import free_port, nginx_config, wait_port

    tmp = Path(tempfile.mkdtemp(prefix="l7bpf-"))
    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_config(tmp, BENCH_SERVER.format(port=port), user_root=False))
    old = STATS_SYSCTL.read_text().strip()
    nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")])
    wait_port(port)
    try:
        STATS_SYSCTL.write_text("1")
        agent = Agent(tmp, ["nginx", "h2load"])
        try:
            s0 = prog_stats(agent.proc.pid)
            time.sleep(args.seconds)
            s1 = prog_stats(agent.proc.pid)
            n = h2load(port, args.seconds, args.rate, args.connections)
            s2 = prog_stats(agent.proc.pid)
            names = prog_names(s2)
        finally:
            counters = agent.stop()
        print(f"rated load: {n} requests in {args.seconds:.0f} s (h2load --h1, {args.connections} "
              f"connections, {args.rate} requests/s offered)")
        report(delta(s2, s1), delta(s1, s0), names, n)
        events = next((v for k, v in counters.items() if k.endswith("events")), None)
        if events is not None:
            print(f"ring-buffer records per request (whole agent run): {events / n:.2f}")
        print(f"agent counters: { {k: v for k, v in counters.items() if isinstance(v, int) and v} }")
        if args.throughput:
            base = wrk_rps(port, args.seconds, args.connections)
            agent = Agent(tmp, ["nginx", "wrk"])
            try:
                on = wrk_rps(port, args.seconds, args.connections)
            finally:
                agent.stop()
            print(f"nginx full speed (wrk -c{args.connections}): no agent {base:.0f} requests/s, "
                  f"agent on {on:.0f} requests/s ({on / base * 100:.0f}%)")
    finally:
        STATS_SYSCTL.write_text(old)
        nginx.terminate()
        nginx.wait()


if __name__ == "__main__":
    main()
