"""HPACK decoding throughput: the compiled decoder (l7scope/dataplane/hpack.c) against the
Python decoder it replaced (kept as the test reference, tests/protocols/hpack_reference.py)
and the `hpack` package, on the whole hpack-test-case corpus (every story of every
implementation except raw-data).

    python bench/bench_hpack.py [--rounds N]

Each story is decoded in order with a fresh decoder, as a connection would, strictly
(`decode`) and as the HTTP/2 analyzer does (`ObserverDecoder.decode_observed`). The machine is
shared, so the decoders run interleaved, round after round, and the figures are the best round
of each; ratios are taken between those. Prints headers/s and MB/s of encoded header blocks.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import hpack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from l7scope.protocols import hpack as compiled  # noqa: E402
from tests.protocols import hpack_reference as reference  # noqa: E402

CORPUS = ROOT / ".." / "shared" / "corpora" / "hpack-test-case"


def load_stories() -> list[list[tuple[int | None, bytes]]]:
    stories = []
    for impl in sorted(p for p in CORPUS.iterdir() if p.is_dir() and p.name != "raw-data"):
        for path in sorted(impl.glob("story_*.json")):
            cases = json.loads(path.read_text())["cases"]
            stories.append([(c.get("header_table_size"), bytes.fromhex(c["wire"])) for c in cases])
    if not stories:
        raise SystemExit(f"hpack-test-case corpus not found under {CORPUS}")
    return stories


def strict(module):
    def run(stories) -> int:
        count = 0
        for story in stories:
            decoder = module.Decoder()
            for table_size, wire in story:
                if table_size is not None:
                    decoder.max_table_size = table_size
                count += len(decoder.decode(wire))
        return count
    return run


def observed(module):
    def run(stories) -> int:
        count = 0
        for story in stories:
            decoder = module.ObserverDecoder()
            for table_size, wire in story:
                if table_size is not None:
                    decoder.max_table_size = table_size
                count += len(decoder.decode_observed(wire).headers)
        return count
    return run


def decode_package(stories) -> int:
    count = 0
    for story in stories:
        decoder = hpack.Decoder()
        for table_size, wire in story:
            if table_size is not None:
                decoder.max_allowed_table_size = table_size
            count += len(decoder.decode(wire))
    return count


DECODERS = {
    "compiled strict": strict(compiled),
    "python strict": strict(reference),
    "compiled observer": observed(compiled),
    "python observer": observed(reference),
    "hpack " + hpack.__version__: decode_package,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stories = load_stories()
    octets = sum(len(wire) for story in stories for _, wire in story)
    blocks = sum(len(story) for story in stories)
    print(f"corpus: {len(stories)} stories, {blocks} header blocks, {octets} octets")
    best = {name: float("inf") for name in DECODERS}
    headers = {}
    for _ in range(args.rounds):  # interleaved: each round runs every decoder once
        for name, func in DECODERS.items():
            start = time.perf_counter()
            headers[name] = func(stories)
            best[name] = min(best[name], time.perf_counter() - start)
    for name, seconds in best.items():
        print(f"{name:18s} {headers[name] / seconds:12,.0f} headers/s "
              f"{octets / seconds / 1e6:8.2f} MB/s  ({headers[name]} headers in {seconds:.3f} s)")
    package = best["hpack " + hpack.__version__]
    for mode in ("strict", "observer"):
        ours, before = best[f"compiled {mode}"], best[f"python {mode}"]
        print(f"{mode}: compiled is {before / ours:.2f}x the Python decoder, "
              f"{package / ours:.2f}x the hpack package")


if __name__ == "__main__":
    main()
