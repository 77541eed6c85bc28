"""What a process's cgroup says about it: path, container, Kubernetes pod, systemd unit.

Theory of operation
-------------------
``/proc/PID/cgroup`` has one line per hierarchy, ``ID:CONTROLLERS:PATH``: cgroup v2 is the line
``0::PATH``; cgroup v1 hierarchies have an ID and controller names (``4:memory:/docker/<id>``,
``1:name=systemd:/system.slice/nginx.service``). ``parse_cgroup`` is a pure function of that
text (sans-IO: the table reads the file, this module only reads the string):

* ``path``: the v2 path when it is not the root; else the ``name=systemd`` v1 path; else the
  first v1 path that is not the root; else the root ``/`` (or None for empty text).
* container id: the first path segment, innermost first, that names a container the way a
  runtime does -- ``docker-<64hex>.scope`` (docker, systemd driver), ``/docker/<64hex>``
  (docker, cgroupfs driver), ``cri-containerd-<64hex>.scope`` (containerd under Kubernetes),
  ``crio-<64hex>.scope`` (CRI-O), ``libpod-<64hex>.scope`` (podman), ``nerdctl-<64hex>.scope``,
  or a bare ``<64hex>`` segment (Kubernetes cgroupfs driver: ``/kubepods/<qos>/pod<uid>/<id>``,
  containerd's namespaces). Monitor scopes (``crio-conmon-``, ``libpod-conmon-``) are the
  runtime's own helper, not the container. Only exactly 64 lowercase hex digits count.
* Kubernetes pod uid: ``pod<uid>`` with the uid's groups joined by dashes (cgroupfs) or
  underscores (systemd slices); returned with dashes.
* systemd unit: the innermost segment ending in ``.service``.

Every line is looked at (all hierarchies), the chosen path first. Malformed lines are skipped;
text is cut at MAX_CGROUP_CHARS before parsing, so hostile or huge input costs bounded work.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CGROUP_CHARS = 16 * 1024

_HEX64 = r"[0-9a-f]{64}"
# (runtime, pattern of one path segment); group 1 is the container id.
_SEGMENT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("docker", re.compile(rf"docker-({_HEX64})\.scope")),
    ("containerd", re.compile(rf"cri-containerd-({_HEX64})\.scope")),
    ("cri-o", re.compile(rf"crio-({_HEX64})\.scope")),
    ("podman", re.compile(rf"libpod-({_HEX64})\.scope")),
    ("nerdctl", re.compile(rf"nerdctl-({_HEX64})\.scope")),
    ("", re.compile(rf"({_HEX64})")),
)
_POD_UID = re.compile(
    r"pod([0-9a-f]{8})[-_]([0-9a-f]{4})[-_]([0-9a-f]{4})[-_]([0-9a-f]{4})[-_]([0-9a-f]{12})"
    r"(?![0-9a-f])")
_V1_PREFERRED = "name=systemd"


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """What one process's cgroup lines say; every field None when they say nothing."""

    path: str | None
    container_id: str | None = None
    runtime: str | None = None  # "docker", "containerd", "cri-o", "podman", "nerdctl", "kubernetes"
    pod_uid: str | None = None
    systemd_unit: str | None = None


def parse_cgroup(text: str) -> CgroupInfo:
    """``/proc/PID/cgroup`` text -> CgroupInfo (see the module's theory of operation)."""
    paths = _paths(text[:MAX_CGROUP_CHARS])
    if not paths:
        return CgroupInfo(path=None)
    chosen = _choose(paths)
    ordered = [chosen] + [p for _, p in paths if p != chosen]
    cid, runtime, pod, unit = None, None, None, None
    for path in ordered:
        if cid is None:
            cid, runtime = container_of(path)
        pod = pod or pod_uid_of(path)
        unit = unit or systemd_unit_of(path)
    if cid is not None and runtime == "":
        runtime = "kubernetes" if pod else _runtime_from_parents(ordered)
    return CgroupInfo(path=chosen, container_id=cid, runtime=runtime or None, pod_uid=pod,
                      systemd_unit=unit)


def _paths(text: str) -> list[tuple[str, str]]:
    """(controllers, path) of each well-formed line; v2's controllers are ''."""
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
            continue
        out.append((parts[1] if parts[0] != "0" else "", parts[2]))
    return out


def _choose(paths: list[tuple[str, str]]) -> str:
    """The path that names the process's place best (see the module doc)."""
    for controllers, path in paths:
        if controllers == "" and path != "/":
            return path
    for controllers, path in paths:
        if controllers == _V1_PREFERRED and path != "/":
            return path
    for _, path in paths:
        if path != "/":
            return path
    return "/"


def container_of(path: str) -> tuple[str | None, str | None]:
    """(container id, runtime) of the innermost segment that names one, else (None, None).
    The runtime is "" for a bare 64-hex segment (the caller tells docker from Kubernetes)."""
    for segment in reversed(path.split("/")):
        if "conmon" in segment:
            continue
        for runtime, rule in _SEGMENT_RULES:
            m = rule.fullmatch(segment)
            if m:
                return m.group(1), runtime
    return None, None


def _runtime_from_parents(paths: list[str]) -> str:
    for path in paths:
        if "/docker/" in path:
            return "docker"
    return ""


def pod_uid_of(path: str) -> str | None:
    """The Kubernetes pod uid in ``path`` (dashed form), else None."""
    m = _POD_UID.search(path)
    return "-".join(m.groups()) if m else None


def systemd_unit_of(path: str) -> str | None:
    """The innermost ``*.service`` segment of ``path``, else None."""
    for segment in reversed(path.split("/")):
        if segment.endswith(".service") and len(segment) > len(".service"):
            return segment
    return None
