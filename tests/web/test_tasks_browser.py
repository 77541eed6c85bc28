"""The Tasks page in a real browser (Playwright + Debian's chromium) over the tasks API with a
fake /proc and capture filter: the picker fills the form, a bad rule is shown as the API's
one line, a started task is listed with its processes and stopped from its row, and the
filter in force follows. A browser that cannot start is a failure, never a skip."""
import pytest

from l7scope.outputs.http import HttpListener
from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.procs.procfs import ProcFS
from l7scope.tasks.controller import TaskController
from l7scope.web.api import Api
from l7scope.web.tasks_api import TasksApi
from l7scope.web.ui import UiFiles
from tests.procs.test_table import FakeProc
from tests.tasks.test_controller import FakeCapture
from tests.web.test_ui_browser import Watched, start_browser


@pytest.fixture
def site(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    proc.root.mkdir()
    proc.add(10, "nginx", exe="/usr/sbin/nginx")
    proc.add(11, "nginx", exe="/usr/sbin/nginx")
    proc.add(20, "python3", exe="/usr/bin/python3.11")
    capture = FakeCapture()
    tasks = TaskController(capture_filter=capture.set_filter, procfs=ProcFS(str(proc.root)))
    store = SqliteStore(str(tmp_path / "l7scope.db"))
    listener = HttpListener("127.0.0.1:0", name="ui-test")
    Api(store).mount(listener)
    TasksApi(tasks).mount(listener)
    UiFiles().mount(listener)
    listener.start()
    yield "http://%s:%d" % listener.address, capture
    listener.stop()
    store.close()


def test_start_a_task_from_the_form_and_stop_it_from_its_row(site):
    from playwright.sync_api import expect

    base, capture = site
    pw, browser = start_browser()
    w = Watched(browser, base)
    try:
        page = w.page
        page.goto(base + "/")
        page.get_by_test_id("nav-tasks").click()
        expect(page.get_by_test_id("tasks-empty")).to_have_text("no tasks yet")
        expect(page.get_by_test_id("tasks-capture")).to_have_text(
            "No task running: every process is captured (the default task).")
        page.get_by_test_id("task-add-pid").click()
        expect(page.get_by_test_id("task-error")).to_have_text("choose a running process first")
        picker = page.get_by_test_id("task-pick")
        assert picker.locator("option").all_text_contents() == [
            "choose…", "nginx (10) /usr/sbin/nginx", "nginx (11) /usr/sbin/nginx",
            "python3 (20) /usr/bin/python3.11"]
        picker.select_option("20")
        page.get_by_test_id("task-add-pid").click()
        page.get_by_test_id("task-add-pid").click()  # once only
        picker.select_option("10")
        page.get_by_test_id("task-add-name").click()
        expect(page.get_by_test_id("task-pids")).to_have_value("20")
        expect(page.get_by_test_id("task-names")).to_have_value("nginx")
        page.get_by_test_id("task-uri_regex").fill("(a+)+")
        page.get_by_test_id("task-start").click()
        expect(page.get_by_test_id("task-error")).to_have_text(
            "sampling.uri_regex: nested repetition such as (a+)+ or a repeated alternation "
            "such as (a|aa)+ is not allowed")
        assert capture.calls == []
        page.get_by_test_id("task-uri_regex").fill("^/api/")
        page.get_by_test_id("task-when_4xx").uncheck()
        page.get_by_test_id("task-duration_s").fill("90")
        page.get_by_test_id("task-start").click()
        expect(page.get_by_test_id("task-message")).to_have_text("task t1 started: 3 processes now")
        row = page.locator("[data-testid=task-row][data-task-id=t1]")
        expect(row.get_by_test_id("task-resolved")).to_have_text("3: nginx(10), nginx(11), python3(20)")
        expect(row.locator("td").nth(5)).to_have_text(
            "uri ~ ^/api/, ≥ 500 ms, 5xx, keeps request + response")
        expect(page.get_by_test_id("tasks-capture")).to_have_text(
            "Capturing only the running tasks' processes (kernel filter): 3 pids, names nginx.")
        assert capture.calls == [([10, 11, 20], ["nginx"])]
        row.get_by_test_id("task-stop").click()
        expect(row.get_by_test_id("task-state")).to_have_text("ended (stopped)")
        expect(row.get_by_test_id("task-stop")).to_have_count(0)
        expect(page.get_by_test_id("tasks-capture")).to_have_attribute("data-mode", "default")
        assert capture.calls[-1] == ([], [])
        assert w.errors == []
    finally:
        w.close()
        browser.close()
        pw.stop()
