"""An analysis task started from the web UI limits the real agent's capture to its process.

The real agent (kernel capture, store and UI on a free loopback port), two Python HTTP servers
with process names of their own and curl as the client. In a real browser (Playwright +
Debian's chromium) the Tasks page starts a task for one server by name; requests to both
servers then leave records of that server alone (curl and the other server are not captured:
the kernel's live filter); the task stopped from the page, both are captured again, from
both ends. Counts are exact, read from the agent's JSON Lines and from its API (the store).

A browser that cannot start is a failure, never a skip.
"""
from __future__ import annotations

import sys
import time
from collections import Counter

import pytest

from tests.kernel.conftest import APPS, _spawn, _stop, curl, free_port
from tests.kernel.test_ui_kernel import api, wait_api
from tests.web.test_ui_browser import Watched, screenshot, start_browser

pytestmark = pytest.mark.kernel

NAME_A, NAME_B = "l7t-task-srv-a", "l7t-task-srv-b"  # 14 bytes: kept whole by the kernel
SETTLE_S = 2.0  # after the expected records: time for any unexpected one to show up


@pytest.fixture
def servers():
    """Two named HTTP servers -> {name: (port, pid)}."""
    procs, out = [], {}
    try:
        for name in (NAME_A, NAME_B):
            port = free_port()
            proc = _spawn([sys.executable, str(APPS / "named_server.py"), name, str(port)], port)
            procs.append(proc)
            out[name] = (port, proc.pid)
        yield out
    finally:
        for proc in procs:
            _stop(proc)


def requests(port: int, tag: str, n: int) -> None:
    urls = [f"http://127.0.0.1:{port}/hello?{tag}={i}" for i in range(n)]
    res = curl(*[x for u in urls for x in ("-o", "/dev/null", u)])
    assert res.returncode == 0, res.stderr


def seen(agent, port: int, tag: str) -> Counter:
    """(side, comm) -> records on ``port`` whose path carries ``tag``."""
    return Counter((r["side"], r["comm"]) for r in agent.records(port)
                   if (r["path"] or "").startswith(f"/hello?{tag}="))


def wait_seen(agent, port: int, tag: str, want: Counter, timeout: float = 20.0) -> Counter:
    deadline = time.monotonic() + timeout
    got = seen(agent, port, tag)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = seen(agent, port, tag)
    return got


def test_a_task_started_from_the_page_limits_capture_to_its_process(agent, servers, tmp_path):
    (port_a, pid_a), (port_b, _) = servers[NAME_A], servers[NAME_B]
    ui_port = free_port()
    a = agent("--ui", f"127.0.0.1:{ui_port}", "--store", str(tmp_path / "store"),
              "--metrics-interval", "2")
    base = f"http://127.0.0.1:{ui_port}"
    pw, browser = start_browser()
    w = Watched(browser, base)
    try:
        from playwright.sync_api import expect

        page = w.page
        page.goto(base + "/#/tasks")
        expect(page.get_by_test_id("tasks-capture")).to_have_attribute("data-mode", "default")
        expect(page.get_by_test_id("tasks-capture")).to_contain_text("every process is captured")
        page.get_by_test_id("task-pick").select_option(str(pid_a))
        page.get_by_test_id("task-add-name").click()
        expect(page.get_by_test_id("task-names")).to_have_value(NAME_A)
        page.get_by_test_id("task-min_duration_ms").fill("0")
        page.get_by_test_id("task-duration_s").fill("600")
        page.get_by_test_id("task-label").fill("only a")
        page.get_by_test_id("task-start").click()
        expect(page.get_by_test_id("task-message")).to_have_text("task t1 started: 1 process now")
        row = page.locator("[data-testid=task-row][data-task-id=t1]")
        expect(row).to_have_attribute("data-state", "running")
        expect(row.get_by_test_id("task-resolved")).to_have_text(f"1: {NAME_A}({pid_a})")
        expect(page.get_by_test_id("tasks-capture")).to_have_attribute("data-mode", "tasks")
        tasks = api(base, "/api/tasks")
        assert tasks["capture"]["filter"] == "kernel"
        assert (tasks["capture"]["pids"], tasks["capture"]["names"]) == ([pid_a], [NAME_A])

        # under the task: only server a's own records (curl and server b are not traced)
        requests(port_a, "t1a", 3)
        requests(port_b, "t1b", 2)
        assert wait_seen(a, port_a, "t1a", Counter({("server", NAME_A): 3})) == \
            Counter({("server", NAME_A): 3})
        time.sleep(SETTLE_S)
        assert seen(a, port_a, "t1a") == Counter({("server", NAME_A): 3})
        assert seen(a, port_b, "t1b") == Counter()
        stored = wait_api(base, "/api/exchanges?path_regex=t1[ab]%3D&limit=100",
                          lambda d: len(d["exchanges"]) >= 3)
        assert sorted((e["comm"], e["side"], e["path"]) for e in stored["exchanges"]) == \
            [(NAME_A, "server", f"/hello?t1a={i}") for i in range(3)]
        print(f"screenshot: {screenshot(page, tmp_path, 'tasks-running')}")

        # stopped from the page: both servers and curl are captured again
        row.get_by_test_id("task-stop").click()
        expect(page.get_by_test_id("task-message")).to_have_text("task t1 stopped")
        expect(row).to_have_attribute("data-state", "ended")
        expect(row.get_by_test_id("task-state")).to_have_text("ended (stopped)")
        expect(page.get_by_test_id("tasks-capture")).to_have_attribute("data-mode", "default")
        requests(port_a, "t2a", 3)
        requests(port_b, "t2b", 2)
        want_a = Counter({("server", NAME_A): 3, ("client", "curl"): 3})
        want_b = Counter({("server", NAME_B): 2, ("client", "curl"): 2})
        assert wait_seen(a, port_a, "t2a", want_a) == want_a
        assert wait_seen(a, port_b, "t2b", want_b) == want_b
        time.sleep(SETTLE_S)
        assert (seen(a, port_a, "t2a"), seen(a, port_b, "t2b")) == (want_a, want_b)
        assert seen(a, port_b, "t1b") == Counter()  # nothing of the task's time came late
        status = api(base, "/api/status")["counters"]
        assert (status["tasks_started"], status["tasks_stopped"], status["tasks_running"]) == \
            (1, 1, 0)
        assert w.errors == []
    finally:
        w.close()
        browser.close()
        pw.stop()
    assert a.stop() == 0
    log = "".join(a.stderr)
    assert "Traceback" not in log, log
