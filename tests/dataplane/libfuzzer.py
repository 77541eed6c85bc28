"""Bounded libFuzzer runs of the compiled data plane's C libraries (one harness per library).

Each harness is built with clang's fuzzer, AddressSanitizer and UndefinedBehaviorSanitizer (all
installed by `make install`) and run from its committed seed corpus for a fixed number of
inputs; any crash, sanitizer report, leak or broken invariant fails the run. A longer run of
each is documented at the top of its fuzz_*.c.
"""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS = 20_000


def build(tmp_path: pathlib.Path, name: str, libraries: list[str]) -> pathlib.Path:
    """tests/dataplane/fuzz_<name>.c with l7scope/dataplane/<libraries>, sanitizers on."""
    clang = shutil.which("clang")
    assert clang, "clang is installed by make install (scripts/install-deps.sh)"
    sources = [ROOT / f"tests/dataplane/fuzz_{name}.c",
               *(ROOT / "l7scope/dataplane" / lib for lib in libraries)]
    binary = tmp_path / f"fuzz_{name}"
    subprocess.run([clang, "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
                    "-fno-sanitize-recover=undefined", "-Wall", "-Wextra", "-Werror",
                    f"-I{ROOT / 'l7scope/dataplane'}", *map(str, sources), "-o", str(binary)],
                   check=True, capture_output=True, text=True)
    return binary


def seeds(name: str) -> list[pathlib.Path]:
    return sorted((ROOT / f"tests/dataplane/{name}_corpus").iterdir())


def run_bounded(tmp_path: pathlib.Path, binary: pathlib.Path, name: str) -> None:
    """RUNS inputs from the seed corpus; nothing found, at least 1,000 inputs run."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run([str(binary), f"-runs={RUNS}", "-max_total_time=50", "-seed=7",
                          f"-artifact_prefix={tmp_path}/", str(corpus),
                          str(ROOT / f"tests/dataplane/{name}_corpus")],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done and int(done[1]) >= 1000, run.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*"))
