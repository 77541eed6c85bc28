"""Install and run wiring: `make run` keeps stdout for the agent, `make install` installs
only what the agent needs, `make test` adds the test tools and runs the whole suite."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = ROOT / "Makefile"
INSTALL_DEPS = ROOT / "scripts" / "install-deps.sh"

TEST_ONLY = {"nginx-light", "nghttp2-client", "nghttp2-server", "wrk", "tcpdump", "tshark",
             "curl", "tmux", "chromium"}


def _rules() -> dict[str, tuple[str, list[str]]]:
    """target -> (prerequisites, recipe lines) of the Makefile's explicit rules."""
    rules, current = {}, None
    for line in MAKEFILE.read_text().splitlines():
        if line.startswith("\t") and current is not None:
            rules[current][1].append(line[1:])
        elif m := re.match(r"^([^\s:=#][^:=]*):(?!=)(.*)$", line):
            current = m.group(1).strip()
            rules[current] = (m.group(2).strip(), [])
        elif line.strip() and not line.startswith("#"):
            current = None
    return rules


def _exe(path: Path, text: str) -> None:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)


def test_run_recipe_is_silent_and_sends_the_install_to_stderr():
    prereqs, recipe = _rules()["run"]
    assert prereqs == ""  # a prerequisite's recipe would echo onto stdout
    assert recipe, "run has no recipe"
    for line in recipe:
        assert line.startswith("@"), f"echoed by make: {line!r}"
        if "$(MAKE)" in line:
            assert line.rstrip().endswith(">&2") and "--no-print-directory" in line, line
    assert recipe[-1].startswith("@$(VENV)/bin/l7scope run $(ARGS)")


def test_make_test_runs_the_whole_suite_with_the_kernel_required():
    prereqs, recipe = _rules()["test"]
    assert "test-install" in prereqs.split()
    assert any(r.startswith("L7SCOPE_REQUIRE_KERNEL=1 ") and r.rstrip().endswith(" tests")
               and "--ignore" not in r for r in recipe), recipe


def test_install_takes_the_runtime_profile_and_test_the_test_profile():
    rules = _rules()
    assert rules["deps"][1] == ["@scripts/install-deps.sh runtime"]
    assert rules["test-deps"][1] == ["@scripts/install-deps.sh test"]
    assert set(rules["install"][0].split()) == {"deps", "venv", "bpf"}
    assert {"install", "test-deps", "$(VENV)/.installed-test"} <= set(
        rules["test-install"][0].split())
    venv = " ".join(rules["$(VENV)/.installed"][1])
    assert "'.[export]'" in venv and ",test" not in venv
    assert "'.[export,test]'" in " ".join(rules["$(VENV)/.installed-test"][1])


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_prints_nothing_but_the_agents_output(tmp_path):
    """`make run` on a tree whose venv and BPF object are out of date: pip and the compiler
    run (stand-ins that print noise on stdout) and their echoed commands too, all on stderr;
    stdout is the agent's line alone. Real Makefile, temporary venv and object."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    _exe(venv / "bin" / "python", "echo python noise\n")
    _exe(venv / "bin" / "pip", "echo pip noise\n")
    _exe(venv / "bin" / "l7scope", "printf '{\"argv\":\"%s\"}\\n' \"$*\"\n")
    clang = tmp_path / "clang"
    _exe(clang, 'echo clang noise\nfor a; do out=$a; done\ntouch "$out"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    r = subprocess.run(
        ["make", "run", f"VENV={venv}", f"PYTHON={venv}/bin/python", f"CLANG={clang}",
         f"BPF_OBJ={tmp_path}/l7scope.bpf.o", "ARGS=--output jsonl:-"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{"argv":"run --output jsonl:-"}\n'
    assert "pip noise" in r.stderr and "clang noise" in r.stderr
    assert "pip install" in r.stderr  # make's echo of the recipe, diverted


def _profile(profile: str, tmp_path: Path) -> tuple[int, str]:
    """install-deps.sh with every package missing and a non-root user: the list it names."""
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    _exe(bin_ / "dpkg-query", "exit 1\n")
    _exe(bin_ / "id", "echo 1000\n")
    r = subprocess.run(["bash", str(INSTALL_DEPS), profile], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"})
    assert r.stdout == ""  # messages go to stderr only
    return r.returncode, r.stderr


def test_runtime_profile_has_no_test_tools(tmp_path):
    rc, err = _profile("runtime", tmp_path)
    assert rc == 1
    named = set(err.split("missing Debian packages: ")[1].split(" (")[0].split())
    assert named == {"clang", "llvm", "libbpf-dev", "libbpf1", "bpftool", "libelf-dev", "make",
                     "gcc", "python3-dev", "python3-venv"}


def test_test_profile_adds_the_test_tools(tmp_path):
    rc, err = _profile("test", tmp_path)
    named = set(err.split("missing Debian packages: ")[1].split(" (")[0].split())
    assert rc == 1 and TEST_ONLY <= named and {"clang", "libbpf1", "gcc"} <= named


def test_install_deps_without_a_profile_says_how(tmp_path):
    rc, err = _profile("", tmp_path)
    assert rc == 2 and err.startswith("usage: ") and "runtime|test" in err
