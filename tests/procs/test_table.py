"""The process table against a /proc laid out in a directory: names, reuse, exits, bounds."""
import os
import shutil

import pytest

from l7scope.procs.cmdline import REDACTED
from l7scope.procs.procfs import ProcFS, parse_stat, parse_tgid
from l7scope.procs.table import ProcessTable

CID = "3f2504e04f8911d39a0c0305e82c33014f1d7b2a9e5c6d8f0a1b2c3d4e5f6a7b"
S = 1_000_000_000


class FakeProc:
    """A /proc tree: one directory per pid with stat, status, comm, cmdline, cgroup, exe."""

    def __init__(self, root):
        self.root = root

    def add(self, pid, comm, start=100, args=(), cgroup="0::/\n", exe=None, tgid=None, ppid=1):
        d = self.root / str(pid)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        rest = ["S", str(ppid)] + ["0"] * 17 + [str(start), "0", "0"]
        (d / "stat").write_text(f"{pid} ({comm}) {' '.join(rest)}\n")
        (d / "status").write_text(f"Name:\t{comm}\nUmask:\t0022\nState:\tS\nTgid:\t{tgid or pid}\n")
        (d / "comm").write_text(comm + "\n")
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in args))
        (d / "cgroup").write_text(cgroup)
        if exe:
            os.symlink(exe, d / "exe")

    def remove(self, pid):
        shutil.rmtree(self.root / str(pid))


class Clock:
    def __init__(self):
        self.now = 10 * S

    def __call__(self):
        return self.now


@pytest.fixture
def proc(tmp_path):
    return FakeProc(tmp_path)


def table(proc, clock=None, **kw):
    kw.setdefault("container_names", None)
    return ProcessTable(procfs=ProcFS(str(proc.root)), clock=clock or Clock(), **kw)


def test_stat_and_status_parsing():
    st = parse_stat("42 (my (odd) name) S 7 42 42 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0")
    assert (st.comm, st.ppid, st.start_time) == ("my (odd) name", 7, 98765)
    assert parse_stat("42 (x) S 7 1 2") is None and parse_stat("garbage") is None
    assert parse_stat("42 (x) S -7 " + "0 " * 15 + "1 0") is None
    assert parse_tgid("Name:\tx\nTgid:\t314\nPid:\t315\n") == 314 and parse_tgid("Pid: 1") is None


def test_lookup_fields(proc):
    proc.add(300, "python3", start=555, args=("python3", "/srv/app.py", "--token", "t0k"),
             cgroup=f"0::/system.slice/docker-{CID}.scope\n", exe="/usr/bin/python3.11 (deleted)",
             ppid=7)
    info = table(proc).lookup(300)
    assert (info.pid, info.name, info.exe, info.exe_deleted, info.ppid, info.start_time) == (
        300, "python3", "/usr/bin/python3.11", True, 7, 555)
    assert info.cmdline == f"python3 /srv/app.py --token {REDACTED}"
    assert info.args == ("python3", "/srv/app.py", "--token", REDACTED)
    assert info.cgroup == f"/system.slice/docker-{CID}.scope"
    assert (info.container_id, info.container_runtime, info.service) == (CID, "docker", CID[:12])


def test_service_from_unit_and_interpreter(proc):
    proc.add(10, "nginx", args=("nginx: worker process",), cgroup="0::/system.slice/nginx.service\n")
    proc.add(11, "node", args=("node", "server.js"), cgroup="0::/user.slice/user-0.slice/session-1.scope\n")
    t = table(proc)
    assert (t.lookup(10).service, t.lookup(10).systemd_unit) == ("nginx", "nginx.service")
    assert t.lookup(11).service == "node server.js" and t.lookup(11).systemd_unit is None


def test_container_name_resolved_once_per_container(proc):
    calls = []

    def names(cid):
        calls.append(cid)
        return "checkout-7f9c"
    for pid in (20, 21):
        proc.add(pid, "app", cgroup=f"0::/docker/{CID}\n")
    t = table(proc, container_names=names)
    assert [t.lookup(p).service for p in (20, 21)] == ["checkout-7f9c", "checkout-7f9c"]
    assert t.lookup(20).container_name == "checkout-7f9c" and calls == [CID]


def test_thread_id_answers_for_the_process(proc):
    proc.add(500, "python3", args=("python3", "srv.py"))
    proc.add(503, "event_engine", tgid=500)  # /proc/TID is readable though not listed
    t = table(proc)
    assert t.lookup(503).name == "python3" and t.lookup(503).pid == 500
    assert t.thread_name(503) == "event_engine"


def test_cached_lookup_reads_nothing(proc):
    clock = Clock()
    proc.add(40, "a")
    t = table(proc, clock=clock)
    assert t.lookup(40).name == "a"
    proc.add(40, "b", start=999)  # changed under us: not seen until revalidation
    clock.now += S
    assert t.lookup(40).name == "a"
    assert t.counters()["procs_loaded"] == 1


def test_reused_pid_is_a_new_process(proc):
    clock = Clock()
    proc.add(40, "a", start=100)
    t = table(proc, clock=clock)
    assert t.lookup(40).name == "a"
    proc.add(40, "a", start=200, args=("a", "--second"))  # same name, a new process
    clock.now += 3 * S
    info = t.lookup(40)
    assert (info.start_time, info.cmdline) == (200, "a --second")
    assert t.counters()["procs_pid_reused"] == 1


def test_rename_seen_at_revalidation(proc):
    clock = Clock()
    proc.add(41, "a")
    t = table(proc, clock=clock)
    t.lookup(41)
    proc.add(41, "b")
    clock.now += 3 * S
    assert t.lookup(41).name == "b" and t.counters()["procs_reloaded"] == 1


def test_exec_event_reloads_at_once(proc):
    clock = Clock()
    proc.add(42, "bash", args=("bash", "run.sh"))
    t = table(proc, clock=clock)
    assert t.lookup(42).service == "bash run.sh"
    proc.add(42, "server", args=("/opt/server",), exe="/opt/server")  # exec: same start time
    t.on_exec(42)
    info = t.lookup(42)
    assert (info.name, info.exe, info.service) == ("server", "/opt/server", "server")


def test_exec_hint_names_a_process_already_gone(proc):
    t = table(proc)
    t.on_exec(43, comm="curl", filename="/usr/bin/curl")
    info = t.lookup(43)
    assert (info.name, info.exe, info.service) == ("curl", "/usr/bin/curl", "curl")


def test_exit_keeps_info_for_grace_then_expires(proc):
    clock = Clock()
    proc.add(44, "client")
    t = table(proc, clock=clock, grace_s=30)
    t.lookup(44)
    t.on_exit(44, clock.now)
    proc.remove(44)
    clock.now += 20 * S
    assert t.lookup(44).name == "client"  # a late record still gets the name
    clock.now += 11 * S
    assert t.expire() == 1 and len(t) == 0
    assert t.lookup(44) is None
    c = t.counters()
    assert (c["procs_exited"], c["procs_expired"], c["procs_not_found"]) == (1, 1, 1)


def test_vanished_without_event_noticed_at_revalidation(proc):
    clock = Clock()
    proc.add(45, "client")
    t = table(proc, clock=clock, grace_s=30)
    t.lookup(45)
    proc.remove(45)
    clock.now += 3 * S
    assert t.lookup(45).name == "client" and t.counters()["procs_exited"] == 1
    clock.now += 31 * S
    assert t.lookup(45) is None and t.counters()["procs_expired"] == 1


def test_pid_reused_during_grace(proc):
    clock = Clock()
    proc.add(46, "old", start=1)
    t = table(proc, clock=clock)
    t.lookup(46)
    t.on_exit(46)
    proc.add(46, "new", start=2)
    clock.now += 3 * S
    assert t.lookup(46).name == "new" and t.counters()["procs_pid_reused"] == 1


def test_unknown_pid_cached_as_missing(proc):
    clock = Clock()
    t = table(proc, clock=clock)
    assert t.lookup(999) is None and t.lookup(999) is None
    assert t.counters()["procs_not_found"] == 1
    proc.add(999, "late")
    clock.now += 3 * S
    assert t.lookup(999).name == "late"


def test_bounded_by_entries_lru(proc):
    for pid in range(1, 6):
        proc.add(pid, f"p{pid}")
    t = table(proc, max_entries=3)
    for pid in (1, 2, 3):
        t.lookup(pid)
    t.lookup(1)  # most recently used now
    t.lookup(4)
    t.lookup(5)
    assert len(t) == 3 and t.counters()["procs_evicted"] == 2
    assert sorted(t._entries) == [1, 4, 5]


def test_bounded_by_bytes(proc):
    for pid in range(1, 11):
        proc.add(pid, "app", args=("app", "x" * 3000))
    probe = table(proc)
    probe.lookup(1)
    one = probe.memory()  # every entry here is the same size
    assert one > 6000  # the two copies of the 3000-byte argument are counted
    shared = {}
    t = table(proc, max_bytes=5 * one, counters=shared)
    for pid in range(1, 11):
        assert t.lookup(pid).name == "app"
    assert t.memory() == 5 * one and len(t) == 5 and sorted(t._entries) == [6, 7, 8, 9, 10]
    assert shared["procs_evicted"] == 5 == t.counters()["procs_evicted"]


def test_cmdline_cut_counted(proc):
    proc.add(7, "app", args=("app", "y" * 100))
    t = table(proc, max_cmdline_bytes=50)
    info = t.lookup(7)
    assert info.cmdline == "app " + "y" * 46 + "..." and t.counters()["procs_cmdline_cut"] == 1


def test_kernel_thread_and_missing_files(proc):
    proc.add(2, "kthreadd")
    (proc.root / "2" / "cgroup").unlink()
    info = table(proc).lookup(2)
    assert (info.name, info.exe, info.cmdline, info.cgroup, info.service) == (
        "kthreadd", None, "", None, "kthreadd")


def test_real_proc_self():
    t = ProcessTable(container_names=None)
    info = t.lookup(os.getpid())
    with open("/proc/self/comm") as f:
        assert info.name == f.read().strip()
    assert info.exe == os.path.realpath("/proc/self/exe")
