"""Tasks wired into a run as app._tasks does it, with a fake capture (its live filter recorded)
and a /proc laid out in a directory: the pipeline keeps only the task's process's exchanges,
the sampler samples them by the task's rules, exec records reach the controller, routes are
mounted, counters join the run's."""
from types import SimpleNamespace

from l7scope import app
from l7scope.capture.proc_events import ProcessExec
from l7scope.config import Config, SamplingConfig, SamplingRule
from l7scope.exchange import WallClock
from l7scope.metrics import MetricsAggregator
from l7scope.outputs import FanOut
from l7scope.pipeline import Pipeline
from l7scope.procs.procfs import ProcFS
from l7scope.procs.table import ProcessTable
from l7scope.sampling import Sampler
from l7scope.tasks.model import parse_task
from tests.procs.test_table import Clock, FakeProc
from tests.tasks.test_controller import FakeCapture
from tests.test_pipeline import EPOCH_2023, client_events, server_events


class Routes:
    def __init__(self):
        self.routes = []

    def add_route(self, method, prefix, handler):
        self.routes.append((method, prefix))


def wired(tmp_path, monkeypatch, capture_mode=False):
    proc = FakeProc(tmp_path)
    proc.add(100, "curl", exe="/usr/bin/curl")
    proc.add(200, "nginx", exe="/usr/sbin/nginx")
    monkeypatch.setattr("l7scope.tasks.controller.ProcFS", lambda: ProcFS(str(tmp_path)))
    config = Config(sampling=SamplingConfig(rules=(SamplingRule(min_duration_ms=500),)))
    fan = FanOut([], metrics=MetricsAggregator(), sampler=Sampler(config.sampling),
                 interval_ns=10**10)
    got = []
    table = None if capture_mode else ProcessTable(procfs=ProcFS(str(tmp_path)), clock=Clock(),
                                                   container_names=None)
    pipeline = Pipeline(observers=[got.append, fan.sampler.offer], processes=table,
                        clock=WallClock(offset_ns=EPOCH_2023), capture_mode=capture_mode)
    capture = FakeCapture()
    source = SimpleNamespace(capture_mode=capture_mode,
                             **({} if capture_mode else {"set_filter": capture.set_filter}))
    web = SimpleNamespace(web=SimpleNamespace(listener=Routes()))
    settings = app.Settings(command="run", comms=("api",))
    tasks = app._tasks(settings, config, source, fan, web, pipeline)
    return tasks, pipeline, fan, got, capture, web.web.listener


def test_a_task_keeps_its_process_alone_and_samples_it_by_its_rules(tmp_path, monkeypatch):
    tasks, pipeline, fan, got, capture, routes = wired(tmp_path, monkeypatch)
    assert routes.routes == [("GET", "/api/tasks"), ("POST", "/api/tasks"),
                             ("DELETE", "/api/tasks"), ("GET", "/api/processes")]
    task = tasks.start(parse_task({"processes": {"names": ["nginx"]},
                                   "sampling": {"min_duration_ms": 100, "when_5xx": False}}))
    assert capture.now == ([200], ["nginx"])
    pipeline.feed(client_events() + server_events())  # curl's and nginx's records of a 503
    assert [(ex.side, ex.name) for ex in got] == [("server", "nginx")]
    (top,) = fan.sampler.drain().values()
    assert [s.reason for s in top.all()] == ["slow"]  # the task's rule: 5xx off, 100 ms
    fan.sinks[-1].on_tick(0, dict)
    counters = fan.counters()
    assert (counters["tasks_started"], counters["tasks_exchanges_outside"],
            counters["tasks_running"]) == (1, 1, 1)
    tasks.stop(task.id)
    assert capture.now == ([], ["api"])  # the command line's --comm
    got.clear()
    pipeline.feed(client_events(conn_id=3) + server_events(conn_id=4))
    assert sorted(ex.side for ex in got) == ["client", "server"]
    reasons = [s.reason for top in fan.sampler.drain().values() for s in top.all()]
    assert reasons == ["5xx", "5xx"]  # the configuration's rule


def test_exec_records_reach_the_controller_through_the_pipeline(tmp_path, monkeypatch):
    tasks, pipeline, fan, got, capture, _ = wired(tmp_path, monkeypatch)
    tasks.start(parse_task({"processes": {"exe": ["/opt/app/*"]}}))
    assert capture.now == ([], [])
    FakeProc(tmp_path).add(300, "app", exe="/opt/app/server")
    pipeline.feed([ProcessExec(300, 5, "app", "/opt/app/server")])
    assert capture.now == ([300], [])


def test_a_packet_source_has_tasks_that_only_shape_sampling(tmp_path, monkeypatch):
    tasks, pipeline, fan, got, capture, _ = wired(tmp_path, monkeypatch, capture_mode=True)
    tasks.start(parse_task({"processes": {"pids": [999]},
                            "sampling": {"min_duration_ms": 100, "when_5xx": False}}))
    assert tasks.filter_kind == "none" and capture.calls == []
    pipeline.feed(client_events())
    assert len(got) == 1  # nothing filtered
    (top,) = fan.sampler.drain().values()
    assert [s.reason for s in top.all()] == ["slow"]


def test_no_api_no_tasks(tmp_path):
    assert app._tasks(app.Settings(command="run"), Config(), None, None, None, None) is None
