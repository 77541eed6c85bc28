"""The analysis tasks' HTTP API (docs/api.md, docs/tasks.md): list, start, stop; and the host's
processes to choose from.

    GET    /api/tasks          {"tasks": [...], "capture": {...}, "default": {...}, "limits": {...}}
    POST   /api/tasks          a JSON task -> 201 {"task": {...}}; bad input 400 {"error": one line}
    DELETE /api/tasks/<id>     200 {"task": {...}} (ended); 404 for an unknown id
    GET    /api/processes      {"processes": [{"pid", "name", "exe"}], "truncated": bool}

Handlers run on the listener's thread; the controller (l7scope/tasks/controller.py) locks.

Requests that change something come from the page or a script, never from another site: a
POST must be ``Content-Type: application/json`` (415 otherwise; a browser asks before it sends
that, or a DELETE, across sites, and this listener grants nothing), and a request whose
``Origin`` is not the address it was sent to is 403.
This module is the error boundary of these requests, like web/api.py: our own bug is a 500
counted in ``internal_errors``, never an exception into the listener.
"""
from __future__ import annotations

from l7scope.tasks import resolve as R
from l7scope.tasks.controller import MAX_SHOWN, TaskController
from l7scope.tasks.model import MAX_DURATION_S, MAX_TASKS, Invalid, Task, parse_body
from l7scope.web.api import reply

MAX_PROCESSES = 4096  # listed by /api/processes
NO_FILTER_NOTE = ("this capture source has no process filter (packets name no process): "
                  "tasks shape sampling only, and their rules apply to every exchange")


def task_json(task: Task, now_ns: int, resolved: tuple[R.Proc, ...]) -> dict:
    """One task as the API shows it (docs/api.md: field names are a contract)."""
    ends_wall = task.started_wall_ns + int(task.spec.duration_s * 1e9)
    ended_wall = (None if task.ended_ns is None
                  else task.started_wall_ns + (task.ended_ns - task.started_ns))
    return {"id": task.id, "label": task.spec.label,
            "state": "running" if task.running else "ended", "end_reason": task.end_reason,
            "processes": task.spec.selector.to_json(), "sampling": task.spec.rules.to_json(),
            "duration_s": task.spec.duration_s, "started_ns": task.started_wall_ns,
            "ends_ns": ends_wall, "ended_ns": ended_wall,
            "remaining_s": task.remaining_s(now_ns),
            "resolved": [p.to_json() for p in resolved[:MAX_SHOWN]],
            "resolved_count": len(resolved)}


class TasksApi:
    def __init__(self, controller: TaskController):
        self.tasks = controller
        self.internal_errors = 0

    def mount(self, listener) -> None:
        """Routes on an outputs/http.py HttpListener (the longest prefix wins over /api)."""
        for method, handler in (("GET", self.list), ("POST", self.create),
                                ("DELETE", self.delete)):
            listener.add_route(method, "/api/tasks", self._guarded(handler))
        listener.add_route("GET", "/api/processes", self._guarded(self.processes))

    def _guarded(self, handler):
        def route(request):
            refused = _cross_site(request)
            if refused is not None:
                return refused
            try:
                return handler(request)
            except Exception as e:  # noqa: BLE001 - the request's error boundary
                self.internal_errors += 1
                return reply(500, {"error": f"internal error: {type(e).__name__}"})
        return route

    # --- endpoints -------------------------------------------------------------------------

    def list(self, request):
        if request.query:
            return reply(400, {"error": f"{request.path[:60]} takes no parameters"})
        task_id = _task_id(request.path)
        if task_id is None:
            return reply(200, self.describe())
        task = self.tasks.table.get(task_id) if task_id else None
        if task is None:
            return reply(404, {"error": f"no such task: {task_id[:40]}"})
        return reply(200, {"task": self._one(task)})

    def create(self, request):
        if request.path.rstrip("/") != "/api/tasks":
            return reply(404, {"error": "POST a task to /api/tasks"})
        ctype = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return reply(415, {"error": "POST /api/tasks takes Content-Type: application/json"})
        spec = parse_body(request.body)
        if isinstance(spec, Invalid):
            return reply(400, {"error": spec.reason})
        task = self.tasks.start(spec)
        if isinstance(task, Invalid):
            return reply(400, {"error": task.reason})
        return reply(201, {"task": self._one(task)})

    def delete(self, request):
        task_id = _task_id(request.path)
        if not task_id:
            return reply(400, {"error": "DELETE /api/tasks/<id> stops one task"})
        task = self.tasks.stop(task_id)
        if task is None:
            return reply(404, {"error": f"no such task: {task_id[:40]}"})
        return reply(200, {"task": self._one(task)})

    def processes(self, request):
        if request.query:
            return reply(400, {"error": "GET /api/processes takes no parameters"})
        procs = self.tasks.processes(MAX_PROCESSES + 1)
        shown = sorted(procs[:MAX_PROCESSES], key=lambda p: (p.name or "", p.pid))
        return reply(200, {"processes": [p.to_json() for p in shown],
                           "truncated": len(procs) > MAX_PROCESSES})

    # --- shaping ---------------------------------------------------------------------------

    def _one(self, task: Task) -> dict:
        _, _, resolved, _, _ = self.tasks.snapshot()
        return task_json(task, self.tasks.table.clock(), resolved.get(task.id, ()))

    def describe(self) -> dict:
        running, ended, resolved, (pids, names), problem = self.tasks.snapshot()
        now = self.tasks.table.clock()
        tasks = [task_json(t, now, resolved.get(t.id, ())) for t in running]
        tasks += [task_json(t, now, ()) for t in reversed(ended)]
        default_pids, default_names = self.tasks.default
        return {"tasks": tasks,
                "capture": {"filter": self.tasks.filter_kind,
                            "mode": "tasks" if running else "default",
                            "pids": sorted(pids), "names": sorted(names),
                            "every_process": not (pids or names),
                            "problem": problem,
                            "note": NO_FILTER_NOTE if self.tasks.packets else None},
                "default": {"processes": {"pids": sorted(default_pids),
                                          "names": sorted(default_names)},
                            "sampling": _sampling_json(self.tasks.sampling)},
                "limits": {"max_tasks": MAX_TASKS, "max_duration_s": MAX_DURATION_S,
                           "max_filter_pids": R.MAX_FILTER_PIDS,
                           "max_filter_names": R.MAX_FILTER_NAMES}}


def _cross_site(request):
    """403 for a request a page of another site sent (its Origin is not this address)."""
    origin = request.header("origin")
    if request.method == "GET" or origin is None:
        return None
    host = request.header("host") or ""
    if origin.lower() in (f"http://{host}".lower(), f"https://{host}".lower()):
        return None
    return reply(403, {"error": "refused: a request from another site (Origin "
                                f"{origin[:60]}) may not change tasks"})


def _task_id(path: str) -> str | None:
    """None for /api/tasks itself, the id of /api/tasks/<id> ("" when it has more parts)."""
    rest = path[len("/api/tasks"):].strip("/")
    if not rest:
        return None
    return "" if "/" in rest else rest


def _sampling_json(config) -> dict:
    return {"top_n": config.top_n,
            "rules": [{"uri_regex": r.uri_regex, "min_duration_ms": r.min_duration_ms,
                       "when_4xx": r.when_4xx, "when_5xx": r.when_5xx,
                       "capture_request": r.settings.capture_request,
                       "capture_response": r.settings.capture_response}
                      for r in config.rules]}
