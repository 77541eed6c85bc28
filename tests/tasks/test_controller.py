"""The task controller against a /proc laid out in a directory and a fake capture filter: the
filter in force follows starts, stops, expiry, exec/exit records and rescans; refusals change
nothing."""
import pytest

from l7scope.capture.proc_events import ProcessExec, ProcessExit
from l7scope.config import SamplingConfig
from l7scope.procs.procfs import ProcFS
from l7scope.tasks.controller import TaskController, TasksSink
from l7scope.tasks.model import Invalid, parse_task
from tests.export import make_exchange
from tests.procs.test_table import FakeProc

S = 1_000_000_000


class Clock:
    def __init__(self):
        self.now = 1_000 * S

    def __call__(self):
        return self.now


class FakeCapture:
    """KernelCapture.set_filter's contract: takes effect at once; ValueError over capacity."""

    def __init__(self, max_pids=1024):
        self.calls: list[tuple[list[int], list[str]]] = []
        self.max_pids = max_pids

    def set_filter(self, pids, comms):
        if len(pids) > self.max_pids:
            raise ValueError(f"{len(pids)} pids to trace: the kernel filter holds at most {self.max_pids}")
        self.calls.append((list(pids), list(comms)))

    @property
    def now(self):
        return self.calls[-1] if self.calls else None


@pytest.fixture
def host(tmp_path):
    proc = FakeProc(tmp_path)
    proc.add(10, "nginx", exe="/usr/sbin/nginx")
    proc.add(11, "nginx", exe="/usr/sbin/nginx")
    proc.add(20, "python3", exe="/usr/bin/python3.11")
    proc.add(30, "curl", exe="/usr/bin/curl")
    return proc


def controller(host, capture=None, clock=None, **kw):
    capture = capture if capture is not None else FakeCapture()
    kw.setdefault("default_pids", (7,))
    kw.setdefault("default_comms", ("api",))
    return TaskController(capture_filter=capture.set_filter, procfs=ProcFS(str(host.root)),
                          clock=clock or Clock(), wall_clock=lambda: 42 * S, **kw), capture


def start(c, **doc):
    doc.setdefault("duration_s", 60)
    return c.start(parse_task(doc))


def ex(pid, name, exe=None):
    return make_exchange(pid=pid, comm=name)._replace(name=name, exe=exe)


def test_a_task_narrows_the_filter_and_its_stop_restores_the_default(host):
    c, cap = controller(host)
    t = start(c, processes={"names": ["nginx"], "pids": [30]})
    assert cap.now == ([10, 11, 30], ["nginx"])
    running, ended, resolved, applied, problem = c.snapshot()
    assert ([x.id for x in running], ended, problem) == (["t1"], (), None)
    assert [(p.pid, p.name) for p in resolved["t1"]] == [(10, "nginx"), (11, "nginx"), (30, "curl")]
    assert c.admit(ex(11, "nginx")) and c.admit(ex(30, "curl"))
    assert not c.admit(ex(20, "python3"))
    assert c.stop(t.id).end_reason == "stopped"
    assert cap.now == ([7], ["api"])  # the command line's --pid/--comm again
    assert c.admit(ex(20, "python3"))
    assert c.counters() == {"tasks_started": 1, "tasks_stopped": 1, "tasks_expired": 0,
                            "tasks_refused": 0, "tasks_filter_updates": 2,
                            "tasks_filter_over_capacity": 0, "tasks_exchanges_outside": 1,
                            "tasks_running": 0}


def test_two_tasks_capture_their_union_and_one_ending_leaves_the_other(host):
    clock = Clock()
    c, cap = controller(host, clock=clock)
    start(c, processes={"exe": ["/usr/sbin/*"]}, duration_s=10)
    clock.now += 2 * S
    start(c, processes={"names": ["python3"]}, duration_s=60)
    assert cap.now == ([10, 11, 20], ["python3"])
    clock.now += 8 * S
    c.tick()  # t1's end
    assert cap.now == ([20], ["python3"])
    assert [t.id for t in c.snapshot()[1]] == ["t1"]
    clock.now += 52 * S
    c.tick()
    assert cap.now == ([7], ["api"])
    assert c.counters()["tasks_expired"] == 2 and len(cap.calls) == 4


def test_a_start_that_does_not_fit_is_refused_and_changes_nothing(host):
    c, cap = controller(host, capture=FakeCapture(max_pids=2))
    assert start(c, processes={"pids": [20]}).id == "t1"
    refused = start(c, processes={"names": ["nginx"]})
    assert refused == Invalid("3 pids to trace: the kernel filter holds at most 2")
    assert cap.now == ([20], []) and [t.id for t in c.table.running()] == ["t1"]
    big = start(c, processes={"pids": list(range(100, 1100))})
    assert big == Invalid("1001 pids to trace: the kernel filter holds at most 2")
    assert c.counters()["tasks_refused"] == 2 and c.table.get("t2") is None


def test_the_union_is_checked_against_the_kernels_capacity_before_it_is_tried(host):
    c, cap = controller(host)
    start(c, processes={"pids": list(range(1000, 2024))})  # 1024: fits
    refused = start(c, processes={"pids": [20]})
    assert refused == Invalid("the running tasks would trace 1025 processes, more than the 1024 "
                              "the kernel filter holds")
    assert len(cap.calls) == 1


def test_an_exec_of_a_named_program_joins_at_once_and_an_exit_leaves(host):
    c, cap = controller(host)
    start(c, processes={"exe": ["*/python3*"]})
    assert cap.now == ([20], [])
    host.add(21, "python3", exe="/usr/bin/python3.11")
    c.on_process_event(ProcessExec(21, 5, "python3", "/usr/bin/python3"))
    assert cap.now == ([20, 21], [])
    c.on_process_event(ProcessExec(31, 6, "curl", "/usr/bin/curl"))  # not the task's
    assert len(cap.calls) == 2
    c.on_process_event(ProcessExit(20, 7, "python3"))
    assert cap.now == ([20, 21], [])  # settled at the next tick
    c.tick()
    assert cap.now == ([21], [])


def test_a_rescan_finds_processes_started_without_an_exec(host):
    clock = Clock()
    c, cap = controller(host, clock=clock, rescan_s=5)
    start(c, processes={"names": ["nginx"]}, duration_s=600)
    host.add(12, "nginx", exe="/usr/sbin/nginx")  # a new worker, forked
    clock.now += 4 * S
    c.tick()
    assert cap.now == ([10, 11], ["nginx"])
    clock.now += 1 * S
    c.tick()
    assert cap.now == ([10, 11, 12], ["nginx"])
    assert [p.pid for p in c.snapshot()[2]["t1"]] == [10, 11, 12]


def test_a_packet_source_filters_nothing_and_every_task_covers_every_exchange(host):
    c = TaskController(capture_filter=None, packets=True, procfs=ProcFS(str(host.root)),
                       sampling=SamplingConfig(top_n=3))
    start(c, processes={"pids": [1]}, sampling={"min_duration_ms": 0})
    assert c.filter_kind == "none"
    packet = make_exchange(pid=None, comm=None)
    assert c.admit(packet) and c.rules_for(packet).top_n == 3


def test_the_sink_ticks_the_controller_and_reports_its_counters(host):
    clock = Clock()
    c, cap = controller(host, clock=clock)
    sink = TasksSink(c)
    start(c, processes={"pids": [20]}, duration_s=1)
    clock.now += 1 * S
    sink.on_tick(0, dict)
    assert cap.now == ([7], ["api"]) and sink.counters()["tasks_expired"] == 1
