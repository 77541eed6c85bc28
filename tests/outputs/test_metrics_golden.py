"""With a process table, the agent's outputs write, for the fixed replay, byte for byte the
exchanges' and the metrics' JSON Lines the code before the per-connection process and
pair-name caches wrote (golden/replay_procs.jsonl, golden/replay_metrics.jsonl; how they were
made: tests/outputs/replay_metrics.py)."""
from __future__ import annotations

import json
from pathlib import Path

from tests.outputs.replay_metrics import replay_outputs

GOLDEN = Path(__file__).with_name("golden")


def test_replay_with_processes_writes_the_golden_lines():
    exchanges, metrics = replay_outputs()
    assert exchanges == (GOLDEN / "replay_procs.jsonl").read_text(encoding="ascii")
    assert metrics == (GOLDEN / "replay_metrics.jsonl").read_text(encoding="ascii")


def test_the_golden_metrics_cover_what_they_claim():
    records = [json.loads(line) for line in (GOLDEN / "replay_metrics.jsonl").open()]
    pairs = {(r["client"], r["server"]): r["requests"] for r in records
             if r["kind"] == "pair_metrics"}
    # renamed by an exec event (nginx), by revalidation (curl), reused under the same name in
    # another service (fetch), a service from a script, a container, a process /proc does not
    # know talking to a remote server
    assert pairs == {("curl", "nginx"): 3, ("curl2", "nginx"): 1, ("curl2", "nginx-new"): 3,
                     ("fetch", "nginx-new"): 0, ("late", "10.1.0.8:80"): 1,
                     ("python3 client6.py", "3f2504e04f89"): 1}
    assert sum(1 for r in records if r["kind"] == "top_n") == 6
    last = records[-1]
    assert (last["procs_loaded"], last["procs_reloaded"], last["procs_pid_reused"],
            last["procs_not_found"]) == (7, 1, 1, 1)
    exchanges = [json.loads(line) for line in (GOLDEN / "replay_procs.jsonl").open()]
    assert [(e["side"], e["comm"], e["peer_name"]) for e in exchanges if e["path"] == "/t"] == [
        ("server", "nginx", "curl2"), ("client", "curl2", "nginx")]
