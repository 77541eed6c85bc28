"""GET/POST/DELETE /api/tasks and GET /api/processes: exact JSON, bad input as 400 with one
line, served on the agent's HTTP listener beside the rest of the API."""
import json
import urllib.error
import urllib.request

import pytest

from l7scope.config import SamplingConfig, SamplingRule
from l7scope.outputs.http import HttpListener, Request
from l7scope.procs.procfs import ProcFS
from l7scope.tasks.controller import TaskController
from l7scope.web.tasks_api import TasksApi
from tests.procs.test_table import FakeProc
from tests.tasks.test_controller import Clock, FakeCapture

S = 1_000_000_000
JSON = {"Content-Type": "application/json"}
WALL = 1_700_000_000 * S


@pytest.fixture
def setup(tmp_path):
    proc = FakeProc(tmp_path)
    proc.add(10, "nginx", exe="/usr/sbin/nginx")
    proc.add(20, "python3", exe="/usr/bin/python3.11")
    clock, capture = Clock(), FakeCapture()
    tasks = TaskController(capture_filter=capture.set_filter, procfs=ProcFS(str(tmp_path)),
                           clock=clock, wall_clock=lambda: WALL, default_comms=("api",),
                           sampling=SamplingConfig(top_n=5, rules=(SamplingRule(min_duration_ms=250),)))
    return TasksApi(tasks), clock, capture


JSON_HEAD = (("content-type", "application/json"),)


def call(api, method, path, body=b"", query="", headers=JSON_HEAD):
    route = {"GET": api.list, "POST": api.create, "DELETE": api.delete}[method]
    if path == "/api/processes":
        route = api.processes
    request = Request(method, path, query, "HTTP/1.1", (("host", "127.0.0.1:7070"), *headers), body)
    status, ctype, raw = api._guarded(route)(request)
    assert ctype == "application/json" and raw.endswith(b"\n") and raw.count(b"\n") == 1
    return status, json.loads(raw)


def post(api, doc):
    return call(api, "POST", "/api/tasks", json.dumps(doc).encode())


TASK_T1 = {
    "id": "t1", "label": "checkout", "state": "running", "end_reason": None,
    "processes": {"pids": [], "names": ["nginx"], "exe": []},
    "sampling": {"uri_regex": "^/api/", "min_duration_ms": 0, "when_4xx": True, "when_5xx": True,
                 "capture_request": True, "capture_response": False},
    "duration_s": 120, "started_ns": WALL, "ends_ns": WALL + 120 * S, "ended_ns": None,
    "remaining_s": 120.0, "resolved": [{"pid": 10, "name": "nginx", "exe": "/usr/sbin/nginx"}],
    "resolved_count": 1,
}


def test_start_list_stop_with_exact_json(setup):
    api, clock, capture = setup
    status, doc = call(api, "GET", "/api/tasks")
    assert status == 200
    assert doc == {"tasks": [],
                   "capture": {"filter": "kernel", "mode": "default", "pids": [], "names": ["api"],
                               "every_process": False, "problem": None, "note": None},
                   "default": {"processes": {"pids": [], "names": ["api"]},
                               "sampling": {"top_n": 5, "rules": [
                                   {"uri_regex": None, "min_duration_ms": 250, "when_4xx": True,
                                    "when_5xx": True, "capture_request": True,
                                    "capture_response": True}]}},
                   "limits": {"max_tasks": 32, "max_duration_s": 86400, "max_filter_pids": 1024,
                              "max_filter_names": 256}}
    status, doc = post(api, {"processes": {"names": ["nginx"]}, "label": "checkout",
                             "sampling": {"uri_regex": "^/api/", "min_duration_ms": 0,
                                          "capture_response": False}, "duration_s": 120})
    assert (status, doc) == (201, {"task": TASK_T1})
    assert capture.now == ([10], ["nginx"])
    clock.now += 30 * S
    status, doc = call(api, "GET", "/api/tasks")
    assert doc["tasks"] == [dict(TASK_T1, remaining_s=90.0)]
    assert doc["capture"] == {"filter": "kernel", "mode": "tasks", "pids": [10], "names": ["nginx"],
                              "every_process": False, "problem": None, "note": None}
    assert call(api, "GET", "/api/tasks/t1") == (200, {"task": dict(TASK_T1, remaining_s=90.0)})
    status, doc = call(api, "DELETE", "/api/tasks/t1")
    ended = dict(TASK_T1, state="ended", end_reason="stopped", ended_ns=WALL + 30 * S,
                 remaining_s=0.0, resolved=[], resolved_count=0)
    assert (status, doc) == (200, {"task": ended})
    assert capture.now == ([], ["api"])
    status, doc = call(api, "GET", "/api/tasks")
    assert (doc["tasks"], doc["capture"]["mode"]) == ([ended], "default")


def test_an_expired_task_is_listed_as_ended_at_its_end(setup):
    api, clock, capture = setup
    post(api, {"processes": {"pids": [20]}, "duration_s": 5})
    clock.now += 60 * S
    (task,) = call(api, "GET", "/api/tasks")[1]["tasks"]
    assert (task["state"], task["end_reason"], task["ended_ns"], task["remaining_s"]) == \
        ("ended", "expired", WALL + 5 * S, 0.0)
    assert capture.now == ([], ["api"])


@pytest.mark.parametrize("body, error", [
    (b"", "body: not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'{"processes": {}}', "processes: name at least one process (pids, names or exe)"),
    (b'{"processes": {"pids": [1]}, "sampling": {"uri_regex": "(a|aa)+"}}',
     "sampling.uri_regex: nested repetition such as (a+)+ or a repeated alternation such as (a|aa)+ is not allowed"),
    (b'{"processes": {"pids": [1]}, "duration_s": 100000}', "duration_s: must be a number from 1 to 86400"),
    (b" " * 16385, "body: more than 16384 bytes"),
])
def test_bad_input_is_a_400_with_one_line(setup, body, error):
    api, _, capture = setup
    assert call(api, "POST", "/api/tasks", body) == (400, {"error": error})
    assert capture.calls == [] and api.tasks.counters()["tasks_refused"] == 0  # never reached


def test_unknown_ids_and_paths(setup):
    api, _, _ = setup
    assert call(api, "DELETE", "/api/tasks/t9") == (404, {"error": "no such task: t9"})
    assert call(api, "DELETE", "/api/tasks") == (400, {"error": "DELETE /api/tasks/<id> stops one task"})
    assert call(api, "DELETE", "/api/tasks/t1/x") == (400, {"error": "DELETE /api/tasks/<id> stops one task"})
    assert call(api, "GET", "/api/tasks/t9") == (404, {"error": "no such task: t9"})
    assert call(api, "GET", "/api/tasks", query="x=1") == (400, {"error": "/api/tasks takes no parameters"})
    assert call(api, "POST", "/api/tasks/t1", b"{}") == (404, {"error": "POST a task to /api/tasks"})


def test_changes_from_another_site_are_refused(setup):
    api, _, capture = setup
    body = b'{"processes": {"pids": [20]}}'
    assert call(api, "POST", "/api/tasks", body, headers=()) == \
        (415, {"error": "POST /api/tasks takes Content-Type: application/json"})
    assert call(api, "POST", "/api/tasks", body, headers=(("content-type", "text/plain"),)) == \
        (415, {"error": "POST /api/tasks takes Content-Type: application/json"})
    evil = (*JSON_HEAD, ("origin", "http://evil.example"))
    assert call(api, "POST", "/api/tasks", body, headers=evil) == \
        (403, {"error": "refused: a request from another site (Origin http://evil.example) may not change tasks"})
    assert call(api, "DELETE", "/api/tasks/t1", headers=evil)[0] == 403
    assert capture.calls == []
    same = (("content-type", "application/json; charset=utf-8"), ("origin", "http://127.0.0.1:7070"))
    assert call(api, "POST", "/api/tasks", body, headers=same)[0] == 201
    assert call(api, "GET", "/api/tasks", headers=evil)[0] == 200  # reading is not changing


def test_processes_to_choose_from(setup):
    api, _, _ = setup
    assert call(api, "GET", "/api/processes") == (200, {"processes": [
        {"pid": 10, "name": "nginx", "exe": "/usr/sbin/nginx"},
        {"pid": 20, "name": "python3", "exe": "/usr/bin/python3.11"}], "truncated": False})


def test_a_bug_is_a_500_counted_not_an_exception(setup):
    api, _, _ = setup
    api.tasks.snapshot = None  # a broken controller
    assert call(api, "GET", "/api/tasks") == (500, {"error": "internal error: TypeError"})
    assert api.internal_errors == 1


def test_served_over_http_beside_the_other_routes(setup):
    api, _, capture = setup
    listener = HttpListener("127.0.0.1:0", name="tasks-test")
    listener.add_route("GET", "/api", lambda r: (200, "application/json", b'{"other":true}\n'))
    api.mount(listener)
    listener.start()
    base = "http://%s:%d" % listener.address
    try:
        req = urllib.request.Request(base + "/api/tasks", method="POST", headers=JSON,
                                     data=b'{"processes": {"names": ["python3"]}}')
        with urllib.request.urlopen(req, timeout=5) as r:
            assert (r.status, json.loads(r.read())["task"]["id"]) == (201, "t1")
        with urllib.request.urlopen(base + "/api/tasks", timeout=5) as r:
            assert [t["id"] for t in json.loads(r.read())["tasks"]] == ["t1"]
        with urllib.request.urlopen(base + "/api/status", timeout=5) as r:
            assert json.loads(r.read()) == {"other": True}  # the rest of /api is untouched
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(base + "/api/tasks", method="PUT",
                                                          data=b"{}"), timeout=5)
        assert e.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(base + "/api/tasks", method="POST",
                                                          headers=JSON, data=b'{"processes": 1}'),
                                   timeout=5)
        assert (e.value.code, json.loads(e.value.read())) == \
            (400, {"error": "processes: must be a JSON object"})
        req = urllib.request.Request(base + "/api/tasks/t1", method="DELETE")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["task"]["end_reason"] == "stopped"
        assert capture.calls == [([20], ["python3"]), ([], ["api"])]
    finally:
        listener.stop()
