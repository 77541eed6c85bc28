"""The fixed replay of tests/outputs/replay_records.py through the agent's outputs with a
process table: the exchanges' JSON Lines and the metrics JSON Lines (pair metrics, top-N
samples, counters) it writes.

Used by test_metrics_golden.py; golden/replay_procs.jsonl and golden/replay_metrics.jsonl were
written by this module against the code before the per-connection process and pair-name
caches (main at b46d815):

    PYTHONPATH=/path/to/that/checkout python -m tests.outputs.replay_metrics golden/

The process table reads a /proc laid out in a temporary directory (the replay's pids: a
service from its systemd unit, one from its interpreter's script, one from a container, plain
names, one pid /proc does not know) and a fixed clock that passes the table's revalidation
time between batches, so the lookups the path makes take every branch they take in a run:
cached, revalidated, loaded. The exec of pid 600 between two batches renames it mid-replay
(an exec event); pid 500 is renamed later with no event (found by revalidation), then reused
by a program of the same name in another service (the name stays, the pair's name changes).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

from tests.outputs.replay_records import WALL_OFFSET, records

CID = "3f2504e04f8911d39a0c0305e82c33014f1d7b2a9e5c6d8f0a1b2c3d4e5f6a7b"
# pid -> (name, args, cgroup); 800 ("late") has no /proc entry
PROCS = {
    500: ("curl", ("curl", "-s", "http://svc:8080/"), "0::/user.slice/session-1.scope\n"),
    501: ("curl", ("curl",), "0::/\n"),  # a thread id of nobody: never looked up
    600: ("nginx", ("nginx: worker process",), "0::/system.slice/nginx.service\n"),
    601: ("nginx", (), "0::/\n"),
    700: ("python3", ("python3", "/srv/client6.py"), "0::/\n"),
    900: ("server6", ("server6",), f"0::/system.slice/docker-{CID}.scope\n"),
}
BATCH = 7  # records per feed: the ticks between them move the clock
STEP_NS = 1_100_000_000  # the table's clock per batch (revalidation every 2 s)


def _proc_tree(root: str, pid: int, name: str, args, cgroup: str, start: int = 100) -> None:
    d = os.path.join(root, str(pid))
    shutil.rmtree(d, ignore_errors=True)
    os.mkdir(d)
    rest = ["S", "1"] + ["0"] * 17 + [str(start), "0", "0"]
    files = {"stat": f"{pid} ({name}) {' '.join(rest)}\n",
             "status": f"Name:\t{name}\nTgid:\t{pid}\n", "comm": name + "\n", "cgroup": cgroup}
    for fname, text in files.items():
        with open(os.path.join(d, fname), "w") as f:
            f.write(text)
    with open(os.path.join(d, "cmdline"), "wb") as f:
        f.write(b"".join(a.encode() + b"\0" for a in args))


class _Clock:
    def __init__(self):
        self.now = 10**12

    def __call__(self) -> int:
        return self.now


def replay_outputs() -> tuple[str, str]:
    """(exchanges JSON Lines, metrics JSON Lines) of records() with a process table."""
    from l7scope import agent, app
    from l7scope.capture.wire import WireDecoder
    from l7scope.config import parse_config
    from l7scope.conn.table import ConnectionTable
    from l7scope.exchange import WallClock
    from l7scope.pipeline import Pipeline
    from l7scope.procs.procfs import ProcFS
    from l7scope.procs.table import ProcessTable
    from l7scope.redact import Redactor

    with tempfile.TemporaryDirectory() as tmp:
        proc = os.path.join(tmp, "proc")
        os.mkdir(proc)
        for pid, (name, args, cgroup) in PROCS.items():
            _proc_tree(proc, pid, name, args, cgroup)
        clock = _Clock()
        table = ProcessTable(procfs=ProcFS(proc), clock=clock, container_names=None)
        ex_path, m_path = os.path.join(tmp, "ex.jsonl"), os.path.join(tmp, "metrics.jsonl")
        settings = app.Settings(command="run", outputs=(ex_path,), metrics_outputs=(m_path,),
                                metrics_interval_s=3600, ui=None, store="off", live_view=False)
        config = parse_config({"sampling": {"top_n": 2, "rules": [{"min_duration_ms": 0}]}})
        redactor = Redactor.from_config(config.redact)
        wall = WallClock(offset_ns=WALL_OFFSET)
        now = [WALL_OFFSET]
        outputs = app.build_outputs(settings, config, redactor, wall, "replay", lambda: now[0],
                                    processes=table)
        pipe = Pipeline(table=ConnectionTable(), clock=wall,
                        batch_observers=outputs.batch_observers(),
                        redact_path=redactor.redact_path, processes=table)
        decoder = WireDecoder()
        source = type("Src", (), {"counters": lambda self: {"malformed": decoder.malformed}})()
        counters = lambda: agent.all_counters(pipe, outputs, source)  # noqa: E731
        recs = records()
        for n, at in enumerate(range(0, len(recs), BATCH)):
            if n == 3:  # nginx execs a new program: the table forgets it, the name changes
                _proc_tree(proc, 600, "nginx-new", ("nginx-new",), "0::/\n", start=200)
                table.on_exec(600)
            if n == 2:  # curl renamed with no event: the table's revalidation finds it
                _proc_tree(proc, 500, "curl2", ("curl2",), "0::/\n")
            if n == 4:  # pid 500 reused by a program of the same name in another service
                _proc_tree(proc, 500, "curl2", ("curl2",), "0::/system.slice/fetch.service\n",
                           start=300)
            pipe.feed(decoder.decode_batch(recs[at:at + BATCH]))
            clock.now += STEP_NS
            pipe.tick(pipe.last_ts)
            now[0] = WALL_OFFSET + pipe.last_ts
            outputs.tick(now[0], counters)
        pipe.finish()
        outputs.interval(now[0] + 1, counters())
        outputs.finish(now[0] + 2, counters)
        outputs.close()
        with open(ex_path, encoding="ascii") as f, open(m_path, encoding="ascii") as g:
            return f.read(), g.read()


if __name__ == "__main__":
    exchanges, metrics = replay_outputs()
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    with open(os.path.join(out, "replay_procs.jsonl"), "w") as f:
        f.write(exchanges)
    with open(os.path.join(out, "replay_metrics.jsonl"), "w") as f:
        f.write(metrics)
