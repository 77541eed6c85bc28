"""Environment checks of the kernel source: the one-line reasons the agent gives."""
from __future__ import annotations

import pytest

from l7scope.capture import kernel


@pytest.mark.parametrize("release, expected", [
    ("6.18.44-fc-v657", (6, 18)), ("5.17.0", (5, 17)), ("5.4.0-150-generic", (5, 4)),
    ("4.19.0+", (4, 19)), ("garbage", (0, 0)), ("6", (0, 0)),
])
def test_kernel_version(release, expected):
    assert kernel.kernel_version(release) == expected


def test_old_kernel_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(kernel, "kernel_version", lambda release=None: (5, 10))
    with pytest.raises(kernel.CaptureUnavailable) as err:
        kernel.check_environment()
    assert "needs Linux 5.17 or newer" in str(err.value) and "\n" not in str(err.value)


def test_not_root_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(kernel.os, "geteuid", lambda: 1000)
    with pytest.raises(kernel.CaptureUnavailable, match="needs root"):
        kernel.check_environment()


def test_object_keeps_cfg_where_the_agent_writes_it():
    """The built object's BTF places `cfg` in .rodata with the size of the generated l7_config
    (opening an object needs no privileges; `make install` builds it)."""
    from l7scope.capture import libbpf

    obj = libbpf.BpfObject(kernel.object_path())
    try:
        offset, size = obj.section_variable(".rodata", "cfg")
        assert (offset, size) == (0, kernel.CONFIG.size)
        with pytest.raises(libbpf.LibbpfError, match="no_such_knob not in .rodata"):
            obj.section_variable(".rodata", "no_such_knob")
        with pytest.raises(libbpf.LibbpfError, match="no BTF for section .nosuch"):
            obj.section_variable(".nosuch", "cfg")
    finally:
        obj.close()
