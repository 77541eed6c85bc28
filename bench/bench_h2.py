"""HTTP/2 benchmark (run by hand, as root): h2load against nginx (h2c), agent off and on.

Prints requests/s without and with the agent and the agent's completeness per side (records
reported / requests h2load completed), agent CPU per 1,000 exchanges and drops.

    python bench/bench_h2.py [--requests 100000] [--clients 10] [--streams 10] [--rate 10000]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_agent import AgentRun, _drops  # noqa: E402

H2_SERVER = """    server {{ listen 127.0.0.1:{port} http2; location / {{ return 200 "hello over h2c\\n"; }} }}"""


def h2load(port: int, n: int, clients: int, streams: int, rps: float = 0) -> tuple[int, float]:
    cmd = ["h2load", "-n", str(n), "-c", str(clients), "-m", str(streams), f"http://127.0.0.1:{port}/"]
    if rps:
        cmd[1:1] = [f"--rps={rps / clients:g}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    done = int(re.search(r"(\d+) succeeded", out).group(1))
    rps = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out).group(1))
    return done, rps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--rate", type=float, default=10000, help="requests/s for the agent-on run (0: full speed)")
    args = ap.parse_args()
    from tests.kernel.conftest import free_port, nginx_config, wait_port

    tmp = Path(tempfile.mkdtemp(prefix="l7bench-h2-"))
    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_config(tmp, H2_SERVER.format(port=port), user_root=False))
    nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")])
    wait_port(port)
    try:
        n0, rps0 = h2load(port, args.requests, args.clients, args.streams)
        print(f"without agent: {rps0:10.0f} requests/s ({n0} requests)")
        agent = AgentRun(tmp, ["--comm", "nginx", "--comm", "h2load"])
        t0 = time.monotonic()
        n, rps = h2load(port, args.requests, args.clients, args.streams, args.rate)
        time.sleep(1)
        st = agent.stop()
        got = agent.records(port)
        print(f"with agent:    {rps:10.0f} requests/s ({n} requests in {time.monotonic() - t0:.1f}s)")
        for side in ("server", "client"):
            print(f"  completeness {side}: {got.get(side, 0) / n * 100:.3f}% ({got.get(side, 0)}/{n})")
        print(f"  agent CPU {st['cpu_s']:.2f}s = {st['cpu_s'] / (2 * n) * 1e6:.1f} ms per 1,000 "
              f"exchanges; peak RSS {st['rss_mb']:.1f} MiB; drops {_drops(st['counters'])}")
    finally:
        nginx.terminate()
        nginx.wait()


if __name__ == "__main__":
    main()
