"""cgroup parsing on the lines each runtime really writes to /proc/PID/cgroup."""
import pytest

from l7scope.procs.cgroup import MAX_CGROUP_CHARS, CgroupInfo, parse_cgroup

CID = "3f2504e04f8911d39a0c0305e82c33014f1d7b2a9e5c6d8f0a1b2c3d4e5f6a7b"
POD = "6e1a1b2c-3d4e-4f50-8a9b-0c1d2e3f4a5b"
POD_ = POD.replace("-", "_")


@pytest.mark.parametrize("text, cid, runtime, pod, unit", [
    # docker, systemd cgroup driver, cgroup v2
    (f"0::/system.slice/docker-{CID}.scope\n", CID, "docker", None, None),
    # docker, cgroupfs driver, cgroup v1 (several hierarchies)
    (f"12:pids:/docker/{CID}\n11:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n0::/\n",
     CID, "docker", None, None),
    # Kubernetes + containerd, systemd driver, v2
    (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice/"
     f"cri-containerd-{CID}.scope\n", CID, "containerd", POD, None),
    # Kubernetes, cgroupfs driver, v1
    (f"11:memory:/kubepods/besteffort/pod{POD}/{CID}\n1:name=systemd:/kubepods/besteffort/"
     f"pod{POD}/{CID}\n", CID, "kubernetes", POD, None),
    # CRI-O, v2
    (f"0::/kubepods.slice/kubepods-pod{POD_}.slice/crio-{CID}.scope\n", CID, "cri-o", POD, None),
    # podman rootless, v2 (cgroup namespace: the container's own "container" leaf)
    (f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container\n",
     CID, "podman", None, "user@1000.service"),
    # podman rootful
    (f"0::/machine.slice/libpod-{CID}.scope\n", CID, "podman", None, None),
    (f"0::/system.slice/nerdctl-{CID}.scope\n", CID, "nerdctl", None, None),
    # a systemd service, no container
    ("0::/system.slice/nginx.service\n", None, None, None, "nginx.service"),
    ("1:name=systemd:/system.slice/postgresql@16-main.service\n0::/\n", None, None, None,
     "postgresql@16-main.service"),
    # a login session, the init scope: no unit
    ("0::/user.slice/user-0.slice/session-3.scope\n", None, None, None, None),
    ("0::/init.scope\n", None, None, None, None),
])
def test_runtimes(text, cid, runtime, pod, unit):
    info = parse_cgroup(text)
    assert (info.container_id, info.runtime, info.pod_uid, info.systemd_unit) == (
        cid, runtime, pod, unit)


def test_monitor_scopes_are_not_the_container():
    for prefix in ("crio-conmon-", "libpod-conmon-"):
        assert parse_cgroup(f"0::/machine.slice/{prefix}{CID}.scope\n").container_id is None


def test_path_choice_v2_then_systemd_then_first_v1():
    assert parse_cgroup("0::/system.slice/a.service\n").path == "/system.slice/a.service"
    hybrid = ("9:name=systemd:/system.slice/b.service\n4:memory:/process_api/557402b2\n0::/\n")
    assert parse_cgroup(hybrid).path == "/system.slice/b.service"
    assert parse_cgroup("4:memory:/process_api/557402b2\n1:cpu:/\n0::/\n").path == \
        "/process_api/557402b2"
    assert parse_cgroup("1:cpu:/\n0::/\n").path == "/"
    assert parse_cgroup("") == CgroupInfo(path=None)


def test_container_found_on_any_hierarchy():
    text = f"4:memory:/process_api/x\n3:pids:/docker/{CID}\n0::/\n"
    info = parse_cgroup(text)
    assert info.path == "/process_api/x" and info.container_id == CID


@pytest.mark.parametrize("segment", [
    CID[:63], CID + "0", CID.upper(), f"docker-{CID[:63]}.scope", f"docker-{CID}.service",
    "557402b2dbc10f6fb0a15dce479d7953"])
def test_not_container_ids(segment):
    assert parse_cgroup(f"0::/system.slice/{segment}\n").container_id is None


def test_malformed_lines_skipped_and_size_bounded():
    text = "garbage\nx:y:/docker/zz\n:::\n5:cpu:relative\n" + f"0::/docker/{CID}\n"
    assert parse_cgroup(text).container_id == CID
    huge = "0::/" + "a/" * MAX_CGROUP_CHARS + f"docker-{CID}.scope\n"
    assert parse_cgroup(huge).container_id is None  # beyond the bound: not looked at
    assert parse_cgroup("\0\xff:\n").path is None
