"""The pipeline names processes from the process table: the process's name (never a worker
thread's) in comm and name, exe, container id, the table's name for a local peer, counters."""
from l7scope.capture.proc_events import ProcessExec, ProcessExit
from l7scope.exchange import WallClock
from l7scope.pipeline import Pipeline
from l7scope.procs.procfs import ProcFS
from l7scope.procs.table import ProcessTable
from tests.procs.test_table import CID, Clock, FakeProc
from tests.test_pipeline import EPOCH_2023, client_events, server_events


def run(tmp_path, events, **kw):
    proc = FakeProc(tmp_path)
    proc.add(100, "python3", args=("python3", "/srv/client.py"), exe="/usr/bin/python3.12",
             cgroup=f"0::/system.slice/docker-{CID}.scope\n")
    proc.add(200, "nginx", args=("nginx: worker process",), exe="/usr/sbin/nginx")
    table = ProcessTable(procfs=ProcFS(str(tmp_path)), clock=Clock(), container_names=None)
    got = []
    p = Pipeline(observers=[got.append], clock=WallClock(offset_ns=EPOCH_2023),
                 processes=table, **kw)
    p.feed(events)
    return p, got


def test_record_names_the_process_not_the_thread(tmp_path):
    p, [ex] = run(tmp_path, client_events(comm="event_engine"))
    d = ex.to_dict()
    assert (d["pid"], d["comm"], d["name"], d["thread"]) == (100, "python3", "python3",
                                                               "event_engine")
    assert (d["exe"], d["container_id"]) == ("/usr/bin/python3.12", CID)


def test_peer_name_from_the_table(tmp_path):
    events = sorted(client_events(comm="worker-1") + server_events(comm="nginx-thread"),
                    key=lambda ev: ev.ts)
    p, got = run(tmp_path, events)
    by_side = {ex.side: ex for ex in got}
    assert (by_side["client"].peer_pid, by_side["client"].peer_name) == (200, "nginx")
    assert (by_side["server"].peer_pid, by_side["server"].peer_name) == (100, "python3")
    assert by_side["server"].comm == "nginx" and by_side["server"].thread == "nginx-thread"


def test_unknown_pid_keeps_the_kernel_name(tmp_path):
    p, [ex] = run(tmp_path, client_events(pid=4242, comm="curl"))
    assert (ex.comm, ex.name, ex.exe, ex.container_id, ex.thread) == (
        "curl", None, None, None, "curl")


def test_table_counters_reach_the_pipeline_counters_on_tick(tmp_path):
    p, _ = run(tmp_path, client_events(pid=4242))
    p.tick(p.last_ts)
    assert p.counters["procs_not_found"] == 1 and p.counters["procs_loaded"] == 0


def test_capture_mode_names_no_process(tmp_path):
    p, [ex] = run(tmp_path, client_events(), capture_mode=True)
    assert (ex.pid, ex.comm, ex.name, ex.exe, ex.container_id, ex.thread) == (None,) * 6


def test_exec_record_renames_the_process_at_once(tmp_path):
    p, got = run(tmp_path, client_events(conn_id=1))
    FakeProc(tmp_path).add(100, "bash", exe="/usr/bin/bash")  # the same process ran bash
    p.feed([ProcessExec(100, 2 * 10**9, "bash", "/usr/bin/bash")]
           + client_events(conn_id=3, t0=3 * 10**9))
    assert [(ex.comm, ex.exe) for ex in got] == [("python3", "/usr/bin/python3.12"),
                                                 ("bash", "/usr/bin/bash")]


def test_exit_record_keeps_the_name_for_late_records(tmp_path):
    p, got = run(tmp_path, [])
    p.processes.lookup(100)
    FakeProc(tmp_path).remove(100)
    p.feed([ProcessExit(100, 5, "python3")] + client_events())
    assert [ex.comm for ex in got] == ["python3"]
    assert p.processes.counters()["procs_exited"] == 1
