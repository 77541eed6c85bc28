"""A bounded libFuzzer run of the compiled HTTP/2 frame splitter (tests/dataplane/fuzz_h2frames.c).

The harness is built with clang's fuzzer, AddressSanitizer and UndefinedBehaviorSanitizer (all
installed by `make install`) and run from the committed seed corpus for a fixed number of
inputs; any crash, sanitizer report, leak or broken invariant fails the run. A longer run is
documented at the top of fuzz_h2frames.c.
"""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "tests/dataplane/fuzz_h2frames.c", ROOT / "l7scope/dataplane/h2frames.c"]
SEEDS = ROOT / "tests/dataplane/h2frames_corpus"
RUNS = 20_000


def build(tmp_path: pathlib.Path) -> pathlib.Path:
    clang = shutil.which("clang")
    assert clang, "clang is installed by make install (scripts/install-deps.sh)"
    binary = tmp_path / "fuzz_h2frames"
    subprocess.run([clang, "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
                    "-fno-sanitize-recover=undefined", "-Wall", "-Wextra", "-Werror",
                    f"-I{ROOT / 'l7scope/dataplane'}", *map(str, SOURCES), "-o", str(binary)],
                   check=True, capture_output=True, text=True)
    return binary


def test_seed_corpus_is_committed():
    seeds = sorted(SEEDS.iterdir())
    assert len(seeds) >= 20 and all(s.stat().st_size > 20 for s in seeds)


def test_bounded_libfuzzer_run_finds_nothing(tmp_path):
    binary = build(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run([str(binary), f"-runs={RUNS}", "-max_total_time=50", "-seed=7",
                          f"-artifact_prefix={tmp_path}/", str(corpus), str(SEEDS)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done and int(done[1]) >= 1000, run.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*"))
