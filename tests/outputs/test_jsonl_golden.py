"""The agent's path writes, for a fixed replay of raw records, byte for byte the JSON Lines that
the code before the compiled decoder and encoder wrote (golden/replay.jsonl; how it was made:
tests/outputs/replay_records.py)."""
from __future__ import annotations

import json
from pathlib import Path

from tests.outputs.replay_records import replay_lines

GOLDEN = Path(__file__).with_name("golden") / "replay.jsonl"


def test_replay_writes_the_golden_lines():
    assert replay_lines() == GOLDEN.read_text(encoding="ascii")


def test_the_golden_replay_covers_what_it_claims():
    records = [json.loads(line) for line in GOLDEN.read_text().splitlines()]
    assert len(records) == 19
    assert {r["path"] for r in records} >= {"/a?token=[REDACTED]&x=1", '/q?x="\\\u00c3\u00a9'}
    assert [r["notes"] for r in records if r["partial"]] == [["response lost in gap"],
                                                             ["no response"]]
    assert {(r["trace"] or {}).get("provider") for r in records} == {None, "w3c", "zipkin"}
    assert {r["grpc_status"] for r in records} == {None, 7}
    assert {r["status"] for r in records} == {200, 201, 404, 500, None}
    assert "[fd00::2]:9090" in {r["local"] for r in records}
    assert [r["path"] for r in records if r["conn_id"] == 12][5:7] == ["/p1", "/p2"]
