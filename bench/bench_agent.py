"""Agent benchmark (run by hand, as root; never in CI): what the agent costs and what it keeps.

nginx (one worker, `return 200`) on loopback is driven by h2load, HTTP/1.1 keep-alive (--h1) and
HTTP/2 h2c (10 connections x 10 streams); the agent traces both ends (--comm of this
benchmark's own nginx and load generator, see bench/common.py) with the UI and store off. Per
protocol:

- traced-app throughput at full speed with the agent off / on (HTTP/1.1: wrk, HTTP/2: h2load),
  --rounds pairs run alternately, medians;
- for each offered rate (default 5,000 / 20,000 / 50,000 requests/s; h2load --rps): the achieved
  rate, completeness per side (exchanges the agent wrote to JSON Lines with this port at one end
  / requests h2load completed), requests/s per agent core ((server + client exchanges) / 2 over
  the agent's CPU seconds, utime + stime of all its threads from the first request until it
  has caught up: its CPU use falls below 10% of a core), agent peak RSS (VmHWM of a fresh agent per point) and the
  agent's drop counters (last agent_counters record of --metrics-output);
- "metrics only" at the first rate: the agent has no switch that turns the per-exchange output
  off, so this point writes JSON Lines to /dev/null (records are still built and serialised);
  requests/s per core there is nginx's served requests over agent CPU, no completeness (the
  agent's `exchanges` counter also counts halves after a loss): marked * when drops occurred;
- completeness counts complete exchanges only (method and status, not partial); the others
  are reported as "incomplete";
- the per-stage breakdown at the first rate (py-spy, by l7scope module; bench/stages.py);
- BPF ns per request (HTTP/1.1 only): bench/bench_bpf.py of this tree when present, or of
  --bpf-script (run against this tree's agent), else n/a.

Prints one table and writes the same as JSON (--json). Every point is bounded (--seconds of
load, then at most 30 s for the agent to catch up); every process started is stopped. The machine's load
average is recorded with each point: on a shared machine the figures are indicative.

    python bench/bench_agent.py                          # everything, 10 s per point
    python bench/bench_agent.py --protocols h1 --rates 5000 --seconds 5 --skip pyspy,bpf
    python bench/bench_agent.py --json bench-after.json --tree /path/to/another/checkout
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import stages  # noqa: E402
from bench.common import (H2LOAD_COMM, NGINX_COMM, ROOT, WRK_COMM, Agent, Servers,  # noqa: E402
                          drops, h2load_cmd, load_average, records_per_side, run_h2load,
                          run_wrk)

PARTS = ("throughput", "rates", "metrics", "pyspy", "bpf")
H2_CONNECTIONS, H2_STREAMS = 10, 10


def h1_connections(rate: int, fixed: int) -> int:
    """HTTP/1.1 has one request in flight per connection: at most 500 requests/s each."""
    return fixed or max(10, math.ceil(rate / 500))


def rated_cmd(servers: Servers, proto: str, seconds: float, rate: int, conns: int) -> list[str]:
    if proto == "h1":
        return h2load_cmd(servers.h2load, servers.h1_port, seconds, conns, 1, rate, h1=True)
    return h2load_cmd(servers.h2load, servers.h2_port, seconds, H2_CONNECTIONS, H2_STREAMS,
                      rate, h1=False)


def port_of(servers: Servers, proto: str) -> int:
    return servers.h1_port if proto == "h1" else servers.h2_port


def full_speed(servers: Servers, proto: str, seconds: float, conns: int) -> dict:
    if proto == "h1":
        return run_wrk(servers.wrk, servers.h1_port, seconds, conns)
    return run_h2load(rated_cmd(servers, proto, seconds, 0, 0), seconds)


def throughput(servers: Servers, proto: str, args, tmp: Path) -> dict:
    """Full speed without the agent, then with it, --rounds times alternately (medians: on a
    shared machine one pair of runs says little); the agent's completeness and drops there."""
    conns = args.h1_connections or 10
    comms = [NGINX_COMM, WRK_COMM if proto == "h1" else H2LOAD_COMM]
    off, on, served, got, rss, cpu, lost = [], [], 0, {"server": 0, "client": 0}, 0.0, 0.0, {}
    for _ in range(args.rounds):
        off.append(full_speed(servers, proto, args.seconds, conns)["rps"])
        servers.served()  # the agent-off run's requests, left out
        with Agent(args.tree, tmp, comms, tmp / "ex.jsonl") as agent:
            on.append(full_speed(servers, proto, args.seconds, conns)["rps"])
            agent.settle()
            st = agent.stop()
        for side, n in records_per_side(agent.output, port_of(servers, proto)).items():
            got[side] = got.get(side, 0) + n
        (tmp / "ex.jsonl").unlink(missing_ok=True)
        served += servers.served().get(port_of(servers, proto), 0)
        rss, cpu = max(rss, st["rss_mb"]), cpu + st["cpu_s"]
        for k, v in drops(st["counters"]).items():
            lost[k] = lost.get(k, 0) + v
    return {"off_rps": median(off), "on_rps": median(on), "off_runs": off, "on_runs": on,
            "on_vs_off": median(on) / median(off) if median(off) else None, "served": served,
            "reported": got, "agent_cpu_s": cpu, "rss_mb": rss, "drops": lost,
            "load_avg": load_average()}


def rated_point(servers: Servers, proto: str, args, tmp: Path, rate: int, mode: str) -> dict:
    """One offered rate with a fresh agent: mode "jsonl" (file), "devnull" or "pyspy"."""
    conns = h1_connections(rate, args.h1_connections) if proto == "h1" else H2_CONNECTIONS
    output = None if mode == "devnull" else tmp / "ex.jsonl"
    load_before = load_average()
    servers.served(0)
    with Agent(args.tree, tmp, [NGINX_COMM, H2LOAD_COMM], output) as agent:
        spy = stages.record(agent.pid, args.seconds, tmp / "pyspy.txt") if mode == "pyspy" else None
        res = run_h2load(rated_cmd(servers, proto, args.seconds, rate, conns), args.seconds)
        agent.settle()
        st = agent.stop()
    served = servers.served().get(port_of(servers, proto), 0)
    point = {"mode": mode, "offered": rate, "connections": conns, "achieved_rps": res["rps"],
             "done": res["done"], "served": served, "agent_cpu_s": st["cpu_s"], "rss_mb": st["rss_mb"],
             "drops": drops(st["counters"]), "load_avg": load_before}
    if output is not None:
        got = records_per_side(output, port_of(servers, proto))
        output.unlink(missing_ok=True)
        point.update(reported=got, **{f"completeness_{s}": got[s] / max(served, 1)
                                       for s in ("server", "client")})
        requests = (got["server"] + got["client"]) / 2
    else:  # no exchange file: served requests; with drops, the figure is marked (table: *)
        requests = served
        point["exchanges_counter"] = st["counters"].get("exchanges", 0)
    point["requests_per_core"] = requests / st["cpu_s"] if st["cpu_s"] > 0 else None
    if spy is not None:
        point["stages"] = _profile(spy, tmp / "pyspy.txt")
    return point


def _profile(spy: subprocess.Popen, raw: Path) -> dict:
    try:
        _, err = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if not raw.exists():
        return {"error": (err or "py-spy wrote nothing").strip().splitlines()[-1:]}
    return stages.breakdown(raw.read_text())


def bpf_cost(args) -> dict:
    """BPF ns per request from bench_bpf.py (this tree's, or --bpf-script run on this tree)."""
    own = args.tree / "bench" / "bench_bpf.py"
    script = own if own.exists() else args.bpf_script
    if script is None or not Path(script).exists():
        return {"ns_per_request": None, "note": "n/a: no bench/bench_bpf.py in this tree"}
    bpf_args = ["--seconds", str(int(args.seconds)), "--rate", "5000", "--rounds", "1"]
    if Path(script) == own:
        cmd = [sys.executable, str(own), *bpf_args]
    else:  # another tree's script, its agent and nginx started from this tree
        shim = ("import importlib.util, pathlib, sys\n"
                f"root = pathlib.Path({str(args.tree)!r}); sys.path.insert(0, str(root))\n"
                f"spec = importlib.util.spec_from_file_location('bench_bpf_ext', {str(script)!r})\n"
                "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
                "m.ROOT = root; sys.path.insert(0, str(root))\n"
                f"sys.argv = ['bench_bpf.py', *{bpf_args!r}]; m.main()\n")
        cmd = [sys.executable, "-c", shim]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds * 3 + 180,
                         cwd=args.tree)
    m = re.search(r"BPF per request:\s+(\d+) ns", out.stdout)
    return {"ns_per_request": int(m.group(1)) if m else None, "script": str(script),
            "output": out.stdout.strip().splitlines() or out.stderr.strip().splitlines()[-3:],
            "load_avg": load_average()}


def run_protocol(proto: str, args, servers: Servers, tmp: Path) -> dict:
    res: dict = {"protocol": "HTTP/1.1 keep-alive" if proto == "h1" else
                 f"HTTP/2 h2c ({H2_CONNECTIONS} connections x {H2_STREAMS} streams)"}
    if "throughput" not in args.skip:
        res["throughput"] = throughput(servers, proto, args, tmp)
        _progress(proto, "throughput", res["throughput"])
    if "rates" not in args.skip:
        res["rates"] = []
        for rate in args.rates:
            res["rates"].append(rated_point(servers, proto, args, tmp, rate, "jsonl"))
            _progress(proto, f"rate {rate}", res["rates"][-1])
    if "metrics" not in args.skip:
        res["metrics_only"] = rated_point(servers, proto, args, tmp, args.rates[0], "devnull")
        _progress(proto, "output /dev/null", res["metrics_only"])
    if "pyspy" not in args.skip:
        res["pyspy"] = rated_point(servers, proto, args, tmp, args.rates[0], "pyspy")
        _progress(proto, "py-spy", res["pyspy"])
    if proto == "h1" and "bpf" not in args.skip:
        res["bpf"] = bpf_cost(args)
    return res


def _progress(proto: str, what: str, d: dict) -> None:
    brief = {k: v for k, v in d.items() if k not in ("stages",)}
    print(f"[{time.strftime('%H:%M:%S')}] {proto} {what}: {json.dumps(brief)}", file=sys.stderr,
          flush=True)


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.3f}%"


def _num(x, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def print_table(result: dict) -> None:
    print(f"l7scope agent benchmark  {result['date']}  commit {result['commit']}  "
          f"tree {result['tree']}")
    for res in result["protocols"]:
        print(f"\n== {res['protocol']}")
        t = res.get("throughput")
        if t:
            print(f"full speed, agent off / on: {_num(t['off_rps'])} / {_num(t['on_rps'])} "
                  f"requests/s ({_pct(t['on_vs_off'])}; medians of {len(t['on_runs'])} pairs, off "
                  f"{', '.join(_num(x) for x in t['off_runs'])}, on "
                  f"{', '.join(_num(x) for x in t['on_runs'])}); agent wrote server "
                  f"{t['reported']['server']:,} client {t['reported']['client']:,} (incomplete "
                  f"{t['reported'].get('incomplete', 0):,}) of "
                  f"{t['served']:,} served; peak RSS {t['rss_mb']:.0f} MiB; drops {t['drops']}; "
                  f"load {t['load_avg']}")
        head = (f"{'output':8s} {'offered':>8s} {'achieved':>9s} {'served':>9s} {'server':>9s} "
                f"{'client':>9s} {'req/s/core':>10s} {'CPU s':>6s} {'RSS MiB':>7s}  load  drops")
        rows = res.get("rates", []) + [res[k] for k in ("metrics_only", "pyspy") if k in res]
        if rows:
            print(head)
        for p in rows:
            print(f"{p['mode']:8s} {p['offered']:>8,} {p['achieved_rps']:>9,.0f} {p['served']:>9,} "
                  f"{_pct(p.get('completeness_server')):>9s} {_pct(p.get('completeness_client')):>9s} "
                  f"{_num(p['requests_per_core']) + ('*' if p['mode'] == 'devnull' and p['drops'] else ''):>10s} "
                  f"{p['agent_cpu_s']:>6.1f} "
                  f"{p['rss_mb']:>7.0f}  {p['load_avg'].split()[0]}  {p['drops'] or '-'}")
        if any(p.get("reported", {}).get("incomplete") for p in rows):
            print("incomplete exchanges (halves, partial) per point: "
                  + ", ".join(f"{p['mode']} {p['offered']:,}: {p['reported']['incomplete']:,}"
                              for p in rows if "reported" in p))
        if "bpf" in res:
            b = res["bpf"]
            print(f"BPF per request: {_num(b['ns_per_request'])} ns"
                  + ("" if b["ns_per_request"] else f" ({b.get('note', 'see output')})"))
        st = res.get("pyspy", {}).get("stages")
        if st and "stages" in st:
            print(f"where the agent's busy time goes (py-spy, {st['samples']} samples):")
            print("  " + ", ".join(f"{s} {x * 100:.0f}%" for s, x in st["stages"] if x >= 0.005))
            print("  by module: " + ", ".join(f"{m} {x * 100:.0f}%" for m, x in st["modules"][:12]))


def to_markdown(result: dict) -> str:
    """The same figures as one Markdown table per protocol (for docs/benchmarks.md)."""
    out = [f"{result['date']}, commit {result['commit']}, load average at start "
           f"{result['load_avg_start']}, {result['seconds_per_point']:.0f} s per point.", ""]
    for res in result["protocols"]:
        out += [f"**{res['protocol']}**", "",
                "| point | achieved req/s | completeness server / client | requests/s per agent core "
                "| agent peak RSS | drops | load (1 min) |", "|---|---|---|---|---|---|---|"]
        if t := res.get("throughput"):
            out.append(f"| full speed, agent off / on | {_num(t['off_rps'])} / {_num(t['on_rps'])} "
                       f"({_pct(t['on_vs_off'])}) | {_pct(t['reported']['server'] / max(t['served'], 1))}"
                       f" / {_pct(t['reported']['client'] / max(t['served'], 1))} | - | "
                       f"{t['rss_mb']:.0f} MiB | {_drops_md(t['drops'])} | {t['load_avg'].split()[0]} |")
        for p in res.get("rates", []) + [res[k] for k in ("metrics_only", "pyspy") if k in res]:
            name = {"jsonl": "JSON Lines", "devnull": "output /dev/null", "pyspy": "JSON Lines + py-spy"}
            core = _num(p["requests_per_core"]) + (" (drops)" if p["mode"] == "devnull" and p["drops"] else "")
            out.append(f"| {p['offered']:,}/s offered, {name[p['mode']]} | {p['achieved_rps']:,.0f} | "
                       f"{_pct(p.get('completeness_server'))} / {_pct(p.get('completeness_client'))} | "
                       f"{core} | {p['rss_mb']:.0f} MiB | {_drops_md(p['drops'])} | "
                       f"{p['load_avg'].split()[0]} |")
        if "bpf" in res:
            out.append(f"| BPF per request (5,000/s) | | | {_num(res['bpf']['ns_per_request'])} ns | | | "
                       f"{res['bpf'].get('load_avg', '-').split()[0]} |")
        st = res.get("pyspy", {}).get("stages")
        if st and "stages" in st:
            out += ["", "py-spy: " + ", ".join(f"{s} {x * 100:.0f}%" for s, x in st["stages"] if x >= 0.005)]
        out.append("")
    return "\n".join(out)


def _drops_md(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in d.items()) or "none"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocols", default="h1,h2", help="h1, h2 or h1,h2")
    ap.add_argument("--rates", default="5000,20000,50000", help="offered requests/s, comma-separated")
    ap.add_argument("--seconds", type=float, default=10, help="load per point")
    ap.add_argument("--rounds", type=int, default=3, help="agent off/on pairs at full speed")
    ap.add_argument("--h1-connections", type=int, default=0,
                    help="HTTP/1.1 connections (default: max(10, rate/500); 10 at full speed)")
    ap.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {','.join(PARTS)}")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose agent runs")
    ap.add_argument("--bpf-script", type=Path, help="bench_bpf.py of another tree, when this one has none")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--markdown", action="store_true", help="also print the figures as Markdown")
    ap.add_argument("--from-json", type=Path, help="print a saved run (--json) and run nothing")
    ap.add_argument("--commit", help="label for the tree's commit (default: git rev-parse of --tree)")
    args = ap.parse_args(argv)
    args.protocols = [p for p in args.protocols.split(",") if p]
    args.rates = [int(r) for r in args.rates.split(",") if r]
    args.skip = {s for s in args.skip.split(",") if s}
    if bad := (set(args.protocols) - {"h1", "h2"}) | (args.skip - set(PARTS)):
        ap.error(f"unknown: {sorted(bad)}")
    args.tree = args.tree.resolve()
    return args


def _commit(tree: Path) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--", "l7scope"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (l7scope/ modified)" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        print_table(result)
        if args.markdown:
            print("\n" + to_markdown(result))
        return
    result = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": args.commit or _commit(args.tree),
              "tree": str(args.tree), "seconds_per_point": args.seconds,
              "load_avg_start": load_average(), "protocols": []}
    tmp = Path(tempfile.mkdtemp(prefix="l7bench-agent-"))
    try:
        with Servers() as servers:
            for proto in args.protocols:
                result["protocols"].append(run_protocol(proto, args, servers, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_avg_end"] = load_average()
    print_table(result)
    if args.markdown:
        print("\n" + to_markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
