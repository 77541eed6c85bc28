"""--comm and --pid checks, and matching names to running processes."""
import os

from l7scope.procs.filters import comm_filter_warnings, kernel_name, pid_warnings, process_names_to_pids
from l7scope.procs.procfs import ProcFS
from tests.procs.test_table import FakeProc


def test_comm_longer_than_kernel_keeps_warns():
    assert comm_filter_warnings(["python3", "a" * 15]) == []
    (line,) = comm_filter_warnings(["kube-controller-manager"])
    assert line == ("--comm 'kube-controller-manager': the kernel keeps only the first 15 bytes "
                    "of a process name; tracing processes named 'kube-controller'")
    assert comm_filter_warnings([""]) == ["--comm '': an empty name matches no process"]
    assert kernel_name("é" * 8) == "é" * 7  # 15 bytes: whole characters only


def test_pid_warnings(tmp_path):
    fake = FakeProc(tmp_path)
    fake.add(10, "python3")
    fake.add(12, "worker", tgid=10)
    fs = ProcFS(str(tmp_path))
    assert pid_warnings([10], fs) == []
    assert pid_warnings([11, 0], fs) == [
        "--pid 11: no such process (nothing will be traced for it unless a process with that id starts)",
        "--pid 0: no such process (nothing will be traced for it unless a process with that id starts)"]
    assert pid_warnings([12], fs) == [
        "--pid 12: is a thread of process 10; the filter matches process ids, use --pid 10"]


def test_pid_warnings_real():
    assert pid_warnings([os.getpid()]) == []
    assert len(pid_warnings([2 ** 22 + 12345])) == 1  # above pid_max: cannot exist


def test_names_to_pids(tmp_path):
    fake = FakeProc(tmp_path)
    fake.add(10, "python3")
    fake.add(30, "python3")
    fake.add(20, "kube-controller")
    fake.add(21, "nginx")
    got = process_names_to_pids(["python3", "kube-controller-manager", "redis"], ProcFS(str(tmp_path)))
    assert got == {"python3": [10, 30], "kube-controller-manager": [20], "redis": []}
