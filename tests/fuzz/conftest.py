"""Shared by the fuzz tests: where the corpora are, and how to run a target in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = HERE / "corpus"
REGRESSIONS = HERE / "regressions"


def inputs(top: Path) -> list[tuple[str, Path]]:
    """(target, file) for every input under top/TARGET/."""
    if not top.exists():
        return []
    return [(d.name, f) for d in sorted(top.iterdir()) if d.is_dir()
            for f in sorted(d.iterdir()) if f.is_file()]


@pytest.fixture
def fuzz(tmp_path):
    """fuzz(target, runs) runs the target under atheris from its seed corpus, in a
    subprocess; returns the CompletedProcess (output in .stdout)."""
    def run(target: str, runs: int, seed: int = 1) -> subprocess.CompletedProcess:
        work = tmp_path / target
        work.mkdir()
        cmd = [sys.executable, "-m", "tests.fuzz.run", target, f"-runs={runs}", f"-seed={seed}",
               "-timeout=20", "-rss_limit_mb=2048", f"-artifact_prefix={work}/",
               str(work), str(CORPUS / target)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", timeout=600)

    return run
