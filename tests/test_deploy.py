"""deploy/: the systemd unit, the container recipe and the DaemonSet say what the agent needs,
and their command lines are ones the agent's own parser accepts."""
from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from l7scope.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "l7scope.service"
INSTALLED = "/opt/l7scope/.venv/bin/l7scope"
CAPS = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_NET_RAW"}


def _unit() -> configparser.ConfigParser:
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())  # continuation lines
    cp = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",),
                                   comment_prefixes=("#", ";"))
    cp.optionxform = str
    cp.read_string(text)
    return cp


def _accepted(argv: list[str]) -> None:
    """The agent's parser takes these arguments (SystemExit 2 with a message otherwise)."""
    build_parser().parse_args(argv)


def test_unit_runs_the_installed_agent_without_the_live_view():
    svc = _unit()["Service"]
    argv = shlex.split(svc["ExecStart"])
    assert argv[0] == INSTALLED and argv[1] == "run" and "--no-summary" in argv
    _accepted(argv[1:])
    out = argv[argv.index("--output") + 1]
    assert out.startswith("jsonl:/var/log/l7scope/")  # the LogsDirectory, never stdout
    assert argv[argv.index("--data-dir") + 1] == "/var/lib/l7scope"


def test_unit_restarts_keeps_state_and_has_only_the_bpf_capabilities():
    svc = _unit()["Service"]
    assert svc["Restart"] == "on-failure"
    assert svc["StateDirectory"] == "l7scope" and svc["LogsDirectory"] == "l7scope"
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert set(svc["CapabilityBoundingSet"].split()) == CAPS
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    assert "AF_PACKET" in svc["RestrictAddressFamilies"].split()  # --interface
    for breaks_bpf in ("MemoryDenyWriteExecute", "SystemCallFilter", "ProtectKernelTunables",
                       "PrivateDevices", "PrivatePIDs", "PrivateNetwork"):
        assert breaks_bpf not in svc, breaks_bpf
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """systemd's own check (with the checkout's agent in place of the installed path, which
    must exist for verify); unknown keys or bad values make it print, so nothing may be."""
    tool = shutil.which("systemd-analyze")
    agent = ROOT / ".venv" / "bin" / "l7scope"
    if tool is None or not agent.exists():
        _unit()  # at least: it parses, with the sections and keys the tests above read
        return
    unit = tmp_path / "l7scope.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(agent)))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


# --- container ----------------------------------------------------------------------------

def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_container_recipe_copies_files_that_exist_and_builds_with_make():
    steps = _instructions(DEPLOY / "Dockerfile")
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == ["debian:bookworm AS build", "debian:bookworm-slim"]
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from="):
            *sources, _dest = rest.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "scripts/install-deps.sh runtime" in runs and "make install" in runs
    assert "libbpf1" in runs and "python3" in runs


def test_container_command_is_one_the_agent_accepts():
    steps = dict((w, r) for w, r in _instructions(DEPLOY / "Dockerfile") if w in ("ENTRYPOINT", "CMD"))
    entry, cmd = json.loads(steps["ENTRYPOINT"]), json.loads(steps["CMD"])
    assert entry == [INSTALLED]
    assert cmd[:2] == ["run", "--no-summary"]
    _accepted(cmd)


def test_container_context_leaves_out_the_hosts_build():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", "l7scope/bpf/*.o", "bpf/vmlinux.h"} <= set(ignored)


# --- Kubernetes -------------------------------------------------------------------------------

def test_daemonset_sees_the_host_and_mounts_what_bpf_needs():
    docs = list(yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text()))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    (c,) = pod["containers"]
    assert c["securityContext"]["privileged"] is True
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/bpf", "/var/lib/l7scope"} <= mounts
    paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert {m["mountPath"] for m in c["volumeMounts"]} == set(paths.values())
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"][
        "labels"].items()
    env = {e["name"] for e in c["env"]}
    argv = [re.sub(r"\$\((\w+)\)", lambda m: {"POD_IP": "10.0.0.7"}[m.group(1)], a)
            for a in c["args"]]
    assert set(re.findall(r"\$\((\w+)\)", " ".join(c["args"]))) <= env
    _accepted(argv)
