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

On a shared host the idle subtraction is only as good as the rest of the host is steady: other
processes' syscalls run the tracepoint programs too (an early exit each, in --comm mode), and
their number changes from one window to the next. --perf adds a figure that does not depend on
them: `perf record -a -g` during each load window, counting only the samples taken inside this
agent's programs (their JIT images' address ranges, from the kernel's program info) on the
load's own processes (comm l7bench-nginx / l7bench-h2load), the helpers they call included;
the sampled time over the requests is BPF ns per request. It is a sample (a few hundred per round: a few % of error),
and the time perf itself adds to a program that it interrupts is in it.

    python bench/bench_bpf.py [--seconds 10] [--rate 5000] [--connections 10] [--rounds 3] [--all]
                              [--perf] [--throughput]
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import shutil
import signal
import struct
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


# The load runs under names of its own (a symlink's name becomes the comm), so that the agent's
# --comm filter traces this benchmark's nginx and h2load and not those of anyone else on the host.
NGINX_COMM, H2LOAD_COMM = "l7bench-nginx", "l7bench-h2load"


def named(tmp: Path, tool: str, comm: str) -> str:
    link = tmp / comm
    link.symlink_to(shutil.which(tool) or f"/usr/sbin/{tool}")
    return str(link)


def h2load(exe: str, port: int, seconds: float, rate: int, connections: int) -> int:
    """Requests that succeeded in a rated HTTP/1.1 keep-alive run."""
    per_client = max(1, rate // connections)
    out = subprocess.run(
        [exe, "--h1", "-c", str(connections), "--rps", str(per_client), "-D", str(int(seconds)),
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out).group(1))


def wrk_rps(exe: str, port: int, seconds: float, connections: int) -> float:
    out = subprocess.run([exe, "-t1", f"-c{connections}", f"-d{int(seconds)}s",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


_libc = None


def _bpf(cmd: int, attr: bytes) -> tuple[int, bytes]:
    """The bpf(2) syscall: (result, attr as the kernel left it)."""
    import ctypes
    global _libc
    _libc = _libc or ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    return _libc.syscall(321, cmd, buf, 128), buf.raw  # 321: __NR_bpf on x86-64


def prog_images(ids, names: dict[int, str]) -> list[tuple[int, int, str]]:
    """(start, end, program name) of the JIT images of these programs, subprograms included:
    struct bpf_prog_info's jited_ksyms and jited_func_lens (BPF_OBJ_GET_INFO_BY_FD)."""
    import ctypes
    out = []
    for pid in ids:
        fd, _ = _bpf(13, struct.pack("<I", pid))  # BPF_PROG_GET_FD_BY_ID
        if fd < 0:
            continue
        try:
            info = ctypes.create_string_buffer(256)
            _bpf(15, struct.pack("<IIQ", fd, 256, ctypes.addressof(info)))  # BPF_OBJ_GET_INFO_BY_FD
            n = struct.unpack_from("<I", info.raw, 104)[0]
            ksyms, lens = (ctypes.c_uint64 * n)(), (ctypes.c_uint32 * n)()
            info = ctypes.create_string_buffer(256)
            struct.pack_into("<IIQQ", info, 104, n, n, ctypes.addressof(ksyms), ctypes.addressof(lens))
            _bpf(15, struct.pack("<IIQ", fd, 256, ctypes.addressof(info)))
            out += [(ksyms[i], ksyms[i] + lens[i], names.get(pid, str(pid))) for i in range(n)]
        finally:
            os.close(fd)
    return sorted(out)


class Sampler:
    """perf record -a -g for one load window; the BPF time sampled in the agent's programs
    (images: their JIT address ranges) on the load's processes."""

    def __init__(self, tmp: Path, images: list[tuple[int, int, str]]):
        self.data, self.images = tmp / "perf.data", images
        self.starts = [start for start, _, _ in images]
        self.proc = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "2999", "-o", str(self.data)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # perf is recording before the load starts

    def owner(self, ip: int) -> str | None:
        i = bisect.bisect_right(self.starts, ip) - 1
        return self.images[i][2] if i >= 0 and ip < self.images[i][1] else None

    def stop(self, comms: tuple[str, ...]) -> dict[str, float]:
        """program name -> ns sampled in it (and in the helpers it called)."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        text = subprocess.run(["perf", "script", "-i", str(self.data), "-F", "comm,period,ip"],
                              capture_output=True, text=True).stdout
        out: dict[str, float] = {}
        for sample in text.split("\n\n"):
            lines = sample.strip().splitlines()
            if not lines or lines[0].split()[0] not in comms:
                continue
            owner = None
            for frame in lines[1:]:
                owner = self.owner(int(frame.split()[0], 16)) or owner  # the outermost wins
            if owner:
                out[owner] = out.get(owner, 0) + int(lines[0].split()[-1])
        self.data.unlink(missing_ok=True)
        return out


def perf_report(rounds: list[tuple[dict[str, float], int]]) -> None:
    totals = [sum(ns.values()) / n for ns, n in rounds]
    print(f"perf-sampled BPF per request (this agent's programs on the load's processes): "
          f"{median(totals):.0f} ns (median of {len(rounds)} rounds: "
          f"{', '.join(f'{t:.0f}' for t in totals)})")
    names = sorted({k for ns, _ in rounds for k in ns},
                   key=lambda k: -median([ns.get(k, 0) / n for ns, n in rounds]))
    for name in names:
        print(f"  {name:24s} {median([ns.get(name, 0) / n for ns, n in rounds]):10.0f} ns/request")


class Agent:
    def __init__(self, tmp: Path, comms: list[str]):
        self.metrics = tmp / "metrics.jsonl"
        self.metrics.unlink(missing_ok=True)
        args = [a for c in comms for a in ("--comm", c)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "l7scope.cli", "run", "--no-summary", "--ui", "off", "--store", "off", "--output",
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


def per_request(load: dict, idle: dict, requests: int) -> dict[int, tuple[float, float]]:
    """prog_id -> (ns per request, runs per request) that the load added over the idle window."""
    out = {}
    for i, (ns, cnt) in load.items():
        ins, icnt = idle.get(i, (0, 0))
        out[i] = ((ns - ins) / requests, (cnt - icnt) / requests)
    return out


def median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def report(rounds: list[dict], names: dict[int, str]) -> None:
    """Median over rounds of the total and of each program."""
    totals = [sum(ns for ns, _ in r.values()) for r in rounds]
    runs = [sum(cnt for _, cnt in r.values()) for r in rounds]
    print(f"BPF per request: {median(totals):8.0f} ns (median of {len(rounds)} rounds: "
          f"{', '.join(f'{t:.0f}' for t in totals)}), {median(runs):.2f} program runs")
    print(f"  {'program':24s} {'ns/request':>10s} {'runs/request':>12s} {'ns/run':>8s}")
    rows = []
    for i in rounds[0]:
        ns = median([r[i][0] for r in rounds])
        cnt = median([r[i][1] for r in rounds])
        rows.append((names.get(i, str(i)), ns, cnt))
    for name, ns, cnt in sorted(rows, key=lambda r: -r[1]):
        if cnt >= 0.01:
            print(f"  {name:24s} {ns:10.0f} {cnt:12.2f} {ns / cnt:8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="idle+load rounds; medians are printed")
    ap.add_argument("--all", action="store_true",
                    help="trace every process (no --comm filter; other traffic is subtracted as idle)")
    ap.add_argument("--perf", action="store_true",
                    help="also BPF ns per request sampled by perf in the load's processes only")
    ap.add_argument("--throughput", action="store_true",
                    help="also nginx full-speed requests/s (wrk) without and with the agent")
    args = ap.parse_args()
    from tests.kernel.conftest import free_port, nginx_config, wait_port

    tmp = Path(tempfile.mkdtemp(prefix="l7bpf-"))
    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_config(tmp, BENCH_SERVER.format(port=port), user_root=False))
    old = STATS_SYSCTL.read_text().strip()
    nginx_exe, h2load_exe = named(tmp, "nginx", NGINX_COMM), named(tmp, "h2load", H2LOAD_COMM)
    nginx = subprocess.Popen([nginx_exe, "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")])
    wait_port(port)
    try:
        STATS_SYSCTL.write_text("1")
        agent = Agent(tmp, [] if args.all else [NGINX_COMM, H2LOAD_COMM])
        ids = prog_stats(agent.proc.pid)
        images = prog_images(ids, prog_names(ids)) if args.perf else []
        rounds, sampled, total = [], [], 0
        try:
            for _ in range(args.rounds):
                s0 = prog_stats(agent.proc.pid)
                time.sleep(args.seconds)
                s1 = prog_stats(agent.proc.pid)
                sampler = Sampler(tmp, images) if args.perf else None
                n = h2load(h2load_exe, port, args.seconds, args.rate, args.connections)
                s2 = prog_stats(agent.proc.pid)
                if sampler:
                    sampled.append((sampler.stop((NGINX_COMM, H2LOAD_COMM)), n))
                rounds.append(per_request(delta(s2, s1), delta(s1, s0), n))
                total += n
            names = prog_names(s2)
        finally:
            counters = agent.stop()
        print(f"agent tracing {'every process' if args.all else f'comm {NGINX_COMM} and {H2LOAD_COMM}'}")
        print(f"rated load: {args.rounds} rounds of {args.seconds:.0f} s idle then {args.seconds:.0f} s "
              f"of h2load --h1 ({args.connections} connections, {args.rate} requests/s offered); "
              f"{total} requests")
        report(rounds, names)
        if sampled:
            perf_report(sampled)
        records = counters.get("events", 0) + counters.get("ringbuf_full", 0)
        print(f"ring-buffer records per request (written + lost to a full ring, whole agent run): "
              f"{records / total:.2f}")
        print(f"agent counters: { {k: v for k, v in counters.items() if isinstance(v, int) and v} }")
        if args.throughput:
            wrk_exe = named(tmp, "wrk", "l7bench-wrk")
            base = wrk_rps(wrk_exe, port, args.seconds, args.connections)
            agent = Agent(tmp, [NGINX_COMM, "l7bench-wrk"])
            try:
                on = wrk_rps(wrk_exe, port, args.seconds, args.connections)
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
