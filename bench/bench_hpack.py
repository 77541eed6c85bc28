"""HPACK decoding throughput: l7scope's Decoder against the `hpack` package, on the whole
hpack-test-case corpus (every story of every implementation except raw-data).

    python bench/bench_hpack.py [--rounds N]

Prints headers/s and MB/s (of encoded header blocks) for each decoder and their ratio. Each
story is decoded in order with a fresh decoder, as a connection would; the best of N rounds
is reported.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import hpack

from l7scope.protocols.hpack import Decoder

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "hpack-test-case"


def load_stories() -> list[list[tuple[int | None, bytes]]]:
    stories = []
    for impl in sorted(p for p in CORPUS.iterdir() if p.is_dir() and p.name != "raw-data"):
        for path in sorted(impl.glob("story_*.json")):
            cases = json.loads(path.read_text())["cases"]
            stories.append([(c.get("header_table_size"), bytes.fromhex(c["wire"])) for c in cases])
    if not stories:
        raise SystemExit(f"hpack-test-case corpus not found under {CORPUS}")
    return stories


def decode_ours(stories) -> int:
    count = 0
    for story in stories:
        decoder = Decoder()
        for table_size, wire in story:
            if table_size is not None:
                decoder.max_table_size = table_size
            count += len(decoder.decode(wire))
    return count


def decode_reference(stories) -> int:
    count = 0
    for story in stories:
        decoder = hpack.Decoder()
        for table_size, wire in story:
            if table_size is not None:
                decoder.max_allowed_table_size = table_size
            count += len(decoder.decode(wire))
    return count


def best_of(rounds: int, func, stories) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(rounds):
        start = time.perf_counter()
        count = func(stories)
        best = min(best, time.perf_counter() - start)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stories = load_stories()
    octets = sum(len(wire) for story in stories for _, wire in story)
    blocks = sum(len(story) for story in stories)
    print(f"corpus: {len(stories)} stories, {blocks} header blocks, {octets} octets")
    results = {}
    for name, func in (("l7scope", decode_ours), ("hpack " + hpack.__version__, decode_reference)):
        seconds, headers = best_of(args.rounds, func, stories)
        results[name] = seconds
        print(f"{name:14s} {headers / seconds:12,.0f} headers/s {octets / seconds / 1e6:8.2f} MB/s"
              f"  ({headers} headers in {seconds:.3f} s)")
    ours, reference = results.values()
    print(f"ratio: l7scope is {reference / ours:.2f}x the hpack package")


if __name__ == "__main__":
    main()
