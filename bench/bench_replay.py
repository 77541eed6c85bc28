"""The agent's user-space path on a deterministic replay, no kernel needed (run by hand).

    .venv/bin/python bench/bench_replay.py                       # this checkout, by stage
    .venv/bin/python bench/bench_replay.py --exchanges 200000 --repeat 5
    .venv/bin/python bench/bench_replay.py --trees /tmp/base,. --runs 5   # interleaved, ratios
    .venv/bin/python bench/bench_replay.py --profile 25          # cProfile of the full path

What is replayed: HTTP/1.1 keep-alive requests between a client and a server process, both
ends traced, as raw ring-buffer records (struct l7_event, laid out by
l7scope/capture/wire_layout.py): per request the client's write of the request, the server's
read of it, the server's one writev of head and body (nginx), the client's read of the
response (4 records, 2 exchanges), round robin over ``--connections`` connections, each
opened (OPEN records) before and closed after. Times advance 5 us a record.

Stages, each the whole replay through a longer part of the real path (CPU seconds of this
process, ``time.process_time``, the best of ``--repeat``), reported as the difference to the
stage before, per exchange:

    decode    the kernel source's decoding of every record (capture/wire.py), in the ring
              buffer's batches
    table     + the connection table: streams, detection, the HTTP/1 analyzer (conn/table.py)
    build     + the Pipeline building each Exchange (pipeline.py), no observers
    jsonl     + the JSON Lines sink writing every Exchange to a file (outputs/jsonl.py), a
              batch per feed where the tree's sinks take batches
    agent     the agent's whole loop instead (agent.loop): the outputs as ``l7scope run
              --output jsonl:FILE --ui off --store off`` builds them (JSON Lines, metrics,
              sampling), the process table, TCP metrics, ticks; the metrics JSON Lines
              (pair metrics, top-N, counters) to FILE.metrics

``--http2``: the same exchanges as HTTP/2 (h2c with prior knowledge, as h2load): per
connection the client's preface and SETTINGS, the server's SETTINGS and both ACKs; per request
the client's HEADERS frame (END_STREAM) and the server's HEADERS + DATA frames in one writev,
header blocks from an HPACK encoder per direction (dynamic table in use).

``--trees A,B``: each tree's copy of this harness (this file's code, that tree's l7scope) in a
child process, alternately A, B, A, B... ``--runs`` times; the medians of each stage and B/A.
The JSON Lines files of the trees' last runs (exchanges, and the agent stage's metrics) are
compared byte for byte and the result printed.
"""
from __future__ import annotations

import argparse
import cProfile
import ipaddress
import json
import os
import pstats
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = Path(os.environ.get("L7SCOPE_TREE", Path(__file__).resolve().parents[1]))
if str(TREE) not in sys.path:
    sys.path.insert(0, str(TREE))

from l7scope.capture import wire_layout as L  # noqa: E402

HEADER = struct.Struct(L.L7_EVENT_FORMAT[: -len("4096s")])
K = L.ENUMS["l7_kind"]
DATA, OPEN, CLOSE = K["L7_KIND_DATA"], K["L7_KIND_OPEN"], K["L7_KIND_CLOSE"]
EGRESS, INGRESS = L.ENUMS["l7_direction"]["L7_DIR_EGRESS"], L.ENUMS["l7_direction"]["L7_DIR_INGRESS"]
CLIENT, SERVER = 1, 2
SYS = L.ENUMS["l7_syscall"]
BATCH = 512  # records per ring-buffer poll
BASE_TS = 1_000_000_000_000
SERVER_PORT = 8080
NEWLINE = b"\n"

REQUEST = (b"GET /index.html?id=%d HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
           b"user-agent: h2load nghttp2/1.52.0\r\naccept: */*\r\n\r\n")
BODY = b"hello from the benchmark\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 21:00:00 GMT\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n"
            b"Connection: keep-alive\r\n\r\n" % len(BODY)) + BODY


def _addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed.ljust(16, b"\0")


LOOPBACK = _addr("127.0.0.1")


class Side:
    """One traced socket: its identity and its stream positions."""

    def __init__(self, conn_id, tgid, comm, role, lport, rport):
        self.conn_id, self.tgid, self.comm, self.role = conn_id, tgid, comm.ljust(16, b"\0"), role
        self.lport, self.rport = lport, rport
        self.seq = {EGRESS: 1000, INGRESS: 5000}

    def record(self, kind, direction, ts, payload=b"", syscall=0) -> bytes:
        seq = self.seq.get(direction, 0)
        if kind == DATA:
            self.seq[direction] = (seq + len(payload)) & 0xFFFFFFFF
        head = HEADER.pack(ts, ts + 2000, self.conn_id, self.tgid, self.tgid, 7, seq,
                           len(payload), 0, len(payload), len(payload), kind, direction, syscall,
                           self.role, 2, 0, self.lport, self.rport, LOOPBACK, LOOPBACK, self.comm)
        return head + payload


class Peers:
    """Two idle processes named like the benchmark's server and client (symlinks to sleep), so
    the process table names real pids; the same pair serves every tree of a comparison."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="l7replay-procs-")
        self.procs = []
        for name in ("l7bench-nginx", "l7bench-h2load"):
            link = Path(self.dir.name, name)
            link.symlink_to("/usr/bin/sleep")
            self.procs.append(subprocess.Popen([str(link), "3600"]))
        self.pids = tuple(p.pid for p in self.procs)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.dir.cleanup()


def records(exchanges: int, connections: int, pids: tuple[int, int]) -> list[bytes]:
    """Raw records of exchanges/2 requests, both ends traced (see the module docstring)."""
    server_pid, client_pid = pids
    pairs = [(Side(1000 + i, client_pid, b"l7bench-h2load", CLIENT, 40000 + i, SERVER_PORT),
              Side(2000 + i, server_pid, b"l7bench-nginx", SERVER, SERVER_PORT, 40000 + i))
             for i in range(connections)]
    out, ts = [], BASE_TS
    for c, s in pairs:
        out += [c.record(OPEN, 0, ts), s.record(OPEN, 0, ts + 1000)]
        ts += 5000
    for n in range(exchanges // 2):
        c, s = pairs[n % connections]
        req = REQUEST % n
        out += [c.record(DATA, EGRESS, ts, req, SYS["L7_SYS_WRITE"]),
                s.record(DATA, INGRESS, ts + 5000, req, SYS["L7_SYS_RECVFROM"]),
                s.record(DATA, EGRESS, ts + 10000, RESPONSE, SYS["L7_SYS_WRITEV"]),
                c.record(DATA, INGRESS, ts + 15000, RESPONSE, SYS["L7_SYS_READ"])]
        ts += 20000
    for c, s in pairs:
        out += [c.record(CLOSE, 0, ts), s.record(CLOSE, 0, ts + 1000)]
        ts += 5000
    return out


def h2_frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + \
        payload


def records_h2(exchanges: int, connections: int, pids: tuple[int, int]) -> list[bytes]:
    """--http2: raw records of exchanges/2 HTTP/2 requests (see the module docstring)."""
    import hpack

    server_pid, client_pid = pids
    pairs = [(Side(1000 + i, client_pid, b"l7bench-h2load", CLIENT, 40000 + i, SERVER_PORT),
              Side(2000 + i, server_pid, b"l7bench-nginx", SERVER, SERVER_PORT, 40000 + i),
              hpack.Encoder(), hpack.Encoder()) for i in range(connections)]
    settings = h2_frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64\x00\x04\x00\x00\xff\xff")
    out, ts = [], BASE_TS

    def write(sender, receiver, data):
        nonlocal ts
        out.extend([sender.record(DATA, EGRESS, ts, data, SYS["L7_SYS_WRITE"]),
                    receiver.record(DATA, INGRESS, ts + 5000, data, SYS["L7_SYS_READ"])])
        ts += 10000

    for c, s, _, _ in pairs:
        out += [c.record(OPEN, 0, ts), s.record(OPEN, 0, ts + 1000)]
        ts += 5000
        write(c, s, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings)
        write(s, c, settings + h2_frame(4, 1, 0))
        write(c, s, h2_frame(4, 1, 0))
    for n in range(exchanges // 2):
        c, s, enc_c, enc_s = pairs[n % connections]
        sid = 1 + 2 * (n // connections)
        request = enc_c.encode([(":method", "GET"), (":scheme", "http"),
                                (":authority", "127.0.0.1:8080"), (":path", f"/index.html?id={n}"),
                                ("user-agent", "h2load nghttp2/1.52.0"), ("accept", "*/*")])
        write(c, s, h2_frame(1, 0x5, sid, request))
        response = enc_s.encode([(":status", "200"), ("server", "nginx/1.22.1"),
                                 ("date", "Mon, 30 Nov 2026 21:00:00 GMT"),
                                 ("content-type", "application/octet-stream"),
                                 ("content-length", str(len(BODY)))])
        write(s, c, h2_frame(1, 0x4, sid, response) + h2_frame(0, 0x1, sid, BODY))
    for c, s, _, _ in pairs:
        out += [c.record(CLOSE, 0, ts), s.record(CLOSE, 0, ts + 1000)]
        ts += 5000
    return out


def batches(recs: list[bytes]):
    return [recs[i:i + BATCH] for i in range(0, len(recs), BATCH)]


def batch_decoder():
    """records -> events as the kernel source decodes a ring-buffer batch (the decoder's
    decode_batch where it has one, else one decode per record, as older trees did)."""
    from l7scope.capture.wire import WireDecoder

    decoder = WireDecoder()
    batch = getattr(decoder, "decode_batch", None)
    if batch is not None:
        return decoder, batch
    decode = decoder.decode
    return decoder, lambda recs: [ev for ev in map(decode, recs) if ev is not None]


class ReplaySource:
    """The kernel source's interface over recorded records (capture_mode False)."""

    capture_mode = False
    label = "replay"

    def __init__(self, recs: list[bytes]):
        from l7scope.exchange import WallClock

        self.decoder, self._decode = batch_decoder()
        self._batches = iter(batches(recs))
        self.clock = WallClock(offset_ns=1_700_000_000 * 10**9 - BASE_TS)
        self.done = False

    def poll(self, timeout_ms: int) -> list:
        batch = next(self._batches, None)
        if batch is None:
            self.done = True
            return []
        return self._decode(batch)

    def drain(self) -> list:
        return []

    @staticmethod
    def now_ns(last_ts: int) -> int:
        return last_ts

    def wall_ns(self, last_ts: int) -> int:
        return self.clock.offset_ns + last_ts

    def counters(self) -> dict:
        return {"malformed_records": self.decoder.malformed}

    def close(self) -> None:
        pass


# -- the stages ---------------------------------------------------------------------------------

def stage_decode(recs, out_path):
    _, decode = batch_decoder()
    for batch in batches(recs):
        decode(batch)


def stage_table(recs, out_path):
    from l7scope.conn.table import ConnectionTable

    (_, decode), table = batch_decoder(), ConnectionTable()
    handle = table.handle
    for batch in batches(recs):
        for ev in decode(batch):
            handle(ev)
    table.close_all(0)


def _pipeline(recs, observers, batch_observers=()):
    from l7scope.conn.table import ConnectionTable
    from l7scope.pipeline import Pipeline

    _, decode = batch_decoder()
    src = ReplaySource([])
    more = {"batch_observers": batch_observers} if batch_observers else {}  # older trees: none
    p = Pipeline(table=ConnectionTable(), clock=src.clock, observers=observers, **more)
    for batch in batches(recs):
        p.feed(decode(batch))
        p.tick(p.last_ts)
    p.finish()
    return p


def stage_build(recs, out_path):
    _pipeline(recs, [])


def stage_jsonl(recs, out_path):
    from l7scope.outputs.sinks import JsonlFile

    sink = JsonlFile(out_path)
    if hasattr(sink, "takes_exchanges"):  # a tree whose sinks take batches
        _pipeline(recs, [], [sink.on_exchanges])
    else:
        _pipeline(recs, [sink.on_exchange])
    sink.close()


def stage_agent(recs, out_path):
    from l7scope import agent, app

    source = ReplaySource(recs)
    original = app.open_source
    app.open_source = lambda s: source
    try:
        settings = app.Settings(command="run", outputs=(out_path,), ui=None, store="off",
                                live_view=False, metrics_outputs=(out_path + ".metrics",))
        with open(os.devnull, "w") as quiet:
            saved, sys.stderr = sys.stderr, quiet
            try:
                status = app.run(settings)
            finally:
                sys.stderr = saved
    finally:
        app.open_source = original
    assert status == 0, status
    del agent


STAGES = {"decode": stage_decode, "table": stage_table, "build": stage_build,
          "jsonl": stage_jsonl, "agent": stage_agent}


def measure(exchanges, connections, repeat, out_dir, pids, http2=False) -> dict:
    """{stage: best CPU seconds per exchange over `repeat` runs} (cumulative stages)."""
    recs = (records_h2 if http2 else records)(exchanges, connections, pids)
    best = {}
    for _ in range(repeat):
        for name, fn in STAGES.items():
            path = os.path.join(out_dir, f"{name}.jsonl")
            for old in (path, path + ".metrics"):
                if os.path.exists(old):
                    os.unlink(old)
            t0 = time.process_time()
            fn(recs, path)
            dt = (time.process_time() - t0) / exchanges
            best[name] = min(best.get(name, dt), dt)
    return best


def by_stage(cumulative: dict) -> dict:
    """Per-stage microseconds from the cumulative figures."""
    us = {k: v * 1e6 for k, v in cumulative.items()}
    return {"decode": us["decode"], "table": us["table"] - us["decode"],
            "build": us["build"] - us["table"], "jsonl": us["jsonl"] - us["build"],
            "jsonl path": us["jsonl"], "agent (all)": us["agent"]}


def show(stages: dict) -> None:
    for name, us in stages.items():
        print(f"  {name:12s} {us:7.2f} us/exchange")
    print(f"  => {1e6 / stages['agent (all)']:,.0f} exchanges per CPU second through the agent "
          f"({1e6 / stages['agent (all)'] / 2:,.0f} requests/s per core, both ends traced)")


def profile(exchanges, connections, top, pids, http2=False) -> None:
    recs = (records_h2 if http2 else records)(exchanges, connections, pids)
    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile()
        prof.enable()
        stage_agent(recs, os.path.join(tmp, "out.jsonl"))
        prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def compare(trees, runs, args, pids) -> None:
    """Alternate the trees' runs in child processes; medians per stage and the ratio."""
    results = {t: [] for t in trees}
    outs = {}
    for _ in range(runs):
        for t in trees:
            out_dir = tempfile.mkdtemp(prefix="l7replay-")
            env = dict(os.environ, L7SCOPE_TREE=str(Path(t).resolve()),
                       PYTHONPATH=str(Path(t).resolve()))
            cmd = [sys.executable, __file__, "--exchanges", str(args.exchanges), "--connections",
                   str(args.connections), "--repeat", str(args.repeat), "--json", "--keep", out_dir,
                   "--pids", "%d,%d" % pids] + (["--http2"] if args.http2 else [])
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[t].append(json.loads(done.stdout.splitlines()[-1]))
            outs[t] = out_dir
    medians = {t: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for t, rs in results.items()}
    base = trees[0]
    print(f"{args.exchanges} exchanges, {runs} interleaved runs per tree, best of {args.repeat} "
          f"each, medians (us per exchange; ratio to {base}):")
    for k in medians[base]:
        cells = [f"{medians[t][k]:8.2f}" + (f" ({medians[t][k] / medians[base][k]:.2f}x)"
                                              if t != base else "") for t in trees]
        print(f"  {k:12s} " + "  ".join(cells))
    for t in trees[1:]:
        for name in ("jsonl", "agent", "agent.jsonl.metrics"):
            file = name if name.endswith(".metrics") else f"{name}.jsonl"
            a = Path(outs[base], file).read_bytes()
            b = Path(outs[t], file).read_bytes()
            print(f"  {file} of {t} vs {base}: {'identical' if a == b else 'DIFFERENT'} "
                  f"({len(b):,} bytes, {b.count(NEWLINE):,} lines)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exchanges", type=int, default=100_000)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--trees", help="comma-separated checkouts to compare, the first the base")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", type=int, metavar="TOP", help="cProfile the agent stage")
    ap.add_argument("--json", action="store_true", help="one JSON line of per-stage figures")
    ap.add_argument("--keep", metavar="DIR", help="write the JSON Lines outputs into DIR")
    ap.add_argument("--pids", help="SERVER,CLIENT pids the records name (default: two "
                    "processes started for the run)")
    ap.add_argument("--http2", action="store_true", help="the exchanges as HTTP/2 (h2c)")
    args = ap.parse_args()
    peers = None if args.pids else Peers()
    pids = tuple(map(int, args.pids.split(","))) if args.pids else peers.pids
    try:
        run(args, pids)
    finally:
        if peers is not None:
            peers.close()


def run(args, pids) -> None:
    if args.trees:
        compare(args.trees.split(","), args.runs, args, pids)
        return
    if args.profile:
        profile(args.exchanges, args.connections, args.profile, pids, args.http2)
        return
    out_dir = args.keep or tempfile.mkdtemp(prefix="l7replay-")
    os.makedirs(out_dir, exist_ok=True)
    stages = by_stage(measure(args.exchanges, args.connections, args.repeat, out_dir, pids,
                              args.http2))
    if args.json:
        print(json.dumps(stages))
        return
    print(f"{args.exchanges} exchanges over {args.connections} connections, best of "
          f"{args.repeat} ({L.__file__.rsplit('/l7scope/', 1)[0]}):")
    show(stages)


if __name__ == "__main__":
    main()
