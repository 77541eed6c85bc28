"""The fuzz harnesses inside the test suite (docs/fuzzing.md).

* Every seed and every regression input (a crash the fuzzer once found) is replayed through its
  target in-process: a regression test fails until the bug it records is fixed.
* Every target runs under atheris for a fixed number of inputs from its seed corpus (a bounded
  run, seconds each); any crash fails the test with the fuzzer's traceback.
"""
from __future__ import annotations

import pytest

from .conftest import CORPUS, REGRESSIONS, inputs
from .targets import TARGETS

BOUNDED_RUNS = 4000


def test_every_target_has_seeds():
    seeded = {target for target, _ in inputs(CORPUS)}
    assert seeded == set(TARGETS)


@pytest.mark.parametrize("target,path", inputs(CORPUS),
                         ids=[f"{t}/{p.name}" for t, p in inputs(CORPUS)])
def test_seed_runs_clean(target, path):
    TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target,path", inputs(REGRESSIONS),
                         ids=[f"{t}/{p.name}" for t, p in inputs(REGRESSIONS)])
def test_regression_input(target, path):
    TARGETS[target](path.read_bytes())


def _crash_report(output: str) -> str:
    at = output.find("=== Uncaught Python exception")
    if at < 0:
        at = max(output.find("ERROR: libFuzzer"), 0)
    return output[at:at + 4000]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_bounded_fuzz_run(fuzz, target):
    result = fuzz(target, BOUNDED_RUNS)
    assert result.returncode == 0, _crash_report(result.stdout)
    assert f"Done {BOUNDED_RUNS} runs" in result.stdout, result.stdout[-2000:]
