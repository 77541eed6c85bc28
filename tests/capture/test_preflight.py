"""Checks before a capture: --ringbuf-mb against the kernel's rules, --interface against the
process's capabilities; each problem is one line naming what to change."""
from __future__ import annotations

import errno
import shutil
import subprocess
import sys

import pytest

from l7scope.capture import preflight as P

GIB = 1 << 30
MIB = 1 << 20


@pytest.mark.parametrize("mb, size", [(1, MIB), (16, 16 * MIB), (17, 32 * MIB),
                                      (100, 128 * MIB), (1024, GIB), (2048, 2 * GIB)])
def test_ringbuf_bytes_is_the_next_power_of_two(mb, size):
    assert P.ringbuf_bytes(mb, page_size=4096) == size


def test_ringbuf_bytes_is_at_least_a_page():
    assert P.ringbuf_bytes(1, page_size=4 * MIB) == 4 * MIB


@pytest.mark.parametrize("mb", [0, -1, 2049, 100000])
def test_out_of_range_ringbuf_is_one_line(mb):
    line = P.ringbuf_problem(mb, mem_available=64 * GIB)
    assert line == (f"--ringbuf-mb {mb}: the kernel's ring buffer is 1 to 2048 MiB (a power "
                    "of two; 16 is the default)")


def test_ringbuf_bigger_than_half_the_available_memory_is_refused():
    line = P.ringbuf_problem(1000, mem_available=1536 * MIB)
    assert line == ("--ringbuf-mb 1000: a 1024 MiB ring buffer is more than half the 1536 MiB "
                    "of memory this host has available; use a smaller size")
    assert P.ringbuf_problem(1000, mem_available=2048 * MIB) is None


def test_ringbuf_note_when_rounded():
    assert P.ringbuf_note(16) is None
    assert P.ringbuf_note(100) == "--ringbuf-mb 100: rounded up to 128 MiB (a power of two)"


def test_ringbuf_load_errors():
    assert P.ringbuf_load_error(errno.ENOMEM, 512) == (
        "--ringbuf-mb 512: the kernel could not allocate a 512 MiB ring buffer (out of memory, "
        "or the memory cgroup's limit); use a smaller size")
    assert P.ringbuf_load_error(errno.EINVAL, 3).startswith(
        "--ringbuf-mb 3: the kernel refused a 4 MiB ring buffer (")
    assert P.ringbuf_load_error(errno.EPERM, 16) is None


def test_meminfo_available():
    text = "MemTotal:       24683520 kB\nMemFree: 1 kB\nMemAvailable:   22880000 kB\n"
    assert P.meminfo_available(text) == 22880000 * 1024
    assert P.meminfo_available("MemAvailable: \u0661\u0662 kB\n") is None
    assert P.meminfo_available("MemAvailable: 12 MB\n") is None
    assert P.meminfo_available("MemTotal: 1 kB\n") is None
    assert P.meminfo_available() > 0  # this host's /proc/meminfo


def _status(capeff: str) -> str:
    return f"Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t{capeff}\nCapBnd:\t000001ffffffffff\n"


def test_effective_capabilities_parse():
    assert P.effective_capabilities(_status("000001ffffffffff")) == 0x1FFFFFFFFFF
    assert P.effective_capabilities(_status("0000000000002000")) == 1 << 13
    assert P.effective_capabilities(_status("zz")) is None
    assert P.effective_capabilities(_status("1" * 17)) is None
    assert P.effective_capabilities("Name:\tx\n") is None


def test_interface_without_cap_net_raw_is_one_line(tmp_path):
    (tmp_path / "lo").mkdir()
    line = P.interface_problem("lo", _status("0000000000000000"),
                               sys_class_net=str(tmp_path))
    assert line == ("capturing on lo needs the CAP_NET_RAW capability, which this process does "
                    "not have: run it as root (sudo) or grant it (systemd: "
                    "AmbientCapabilities=CAP_NET_RAW)")
    assert P.interface_problem("lo", _status("0000000000002000"), str(tmp_path)) is None


def test_missing_interface_lists_the_ones_there(tmp_path):
    for name in ("lo", "eth0"):
        (tmp_path / name).mkdir()
    caps = _status("0000000000002000")
    assert P.interface_problem("eth9", caps, str(tmp_path)) == (
        "no network interface named 'eth9' (interfaces here: eth0, lo)")
    assert P.interface_problem("../lo", caps, str(tmp_path)).startswith("no network interface")
    assert P.interface_problem("", caps, str(tmp_path)).startswith("no network interface")


def test_real_process_without_cap_net_raw_is_told():
    """A root process whose capabilities were dropped (setpriv) gets the line; this process,
    root with its capabilities, gets None for the loopback interface."""
    setpriv = shutil.which("setpriv")
    code = "from l7scope.capture.preflight import interface_problem as p; print(p('lo'))"
    if setpriv is None:  # no way to drop capabilities here: the check on this process only
        assert P.interface_problem("lo") is None or "CAP_NET_RAW" in P.interface_problem("lo")
        return
    r = subprocess.run([setpriv, "--bounding-set", "-all", "--inh-caps", "-all",
                        sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("capturing on lo needs the CAP_NET_RAW capability")
    r = subprocess.run([setpriv, "--bounding-set", "-all,+net_raw", "--inh-caps", "-all",
                        sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout == "None\n", r.stderr
