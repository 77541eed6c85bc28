"""The web UI end to end: the real agent (store and UI on), nginx proxying to a Python app, curl
making fast, slow, 404 and 500 calls; then, in a real browser (Playwright + Debian's chromium),
the topology shows curl -> nginx and nginx -> python, and the Requests tab lists the slow and
500 calls with their raw text.

Needs the agent's ``--ui HOST:PORT`` and ``--store PATH`` (docs/ui.md). A browser that cannot
start is a failure, never a skip.
"""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.kernel.conftest import curl, free_port
from tests.web.test_ui_browser import Watched, edge, screenshot, start_browser, texts

pytestmark = pytest.mark.kernel


def api(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())


def wait_api(base: str, path: str, predicate, timeout: float = 40.0) -> dict:
    deadline = time.monotonic() + timeout
    doc = None
    while time.monotonic() < deadline:
        doc = api(base, path)
        if predicate(doc):
            return doc
        time.sleep(0.5)
    return doc


def counts(doc: dict, client: str, server: str) -> tuple[int, int] | None:
    for e in doc["edges"]:
        if (e["client"], e["server"], e["protocol"]) == (client, server, "http1"):
            return e["requests"], e["errors"]
    return None


def test_ui_shows_the_agents_traffic(agent, nginx, python_server, tmp_path):
    py_port, py_pid = python_server
    python = "proc:" + Path(f"/proc/{py_pid}/comm").read_text().strip()
    ui_port = free_port()
    a = agent("--ui", f"127.0.0.1:{ui_port}", "--store", str(tmp_path / "store"),
              "--metrics-interval", "2")
    base = f"http://127.0.0.1:{ui_port}"
    assert any(f"{base}/" in line for line in a.stderr[:6]), a.stderr  # the address, first lines
    n = f"http://127.0.0.1:{nginx.port}"
    urls = [f"{n}/py/hello"] * 3 + [f"{n}/py/slow?ms=700", f"{n}/py/status/404", f"{n}/py/status/500"]
    res = curl(*[x for u in urls for x in ("-o", "/dev/null", u)])
    assert res.returncode == 0, res.stderr

    # the API first: every request once per pair, the 500 an error on both hops
    topo = wait_api(base, "/api/topology?since=600",
                    lambda d: counts(d, "proc:curl", "proc:nginx") == (6, 1)
                    and counts(d, "proc:nginx", python) == (6, 1))
    assert counts(topo, "proc:curl", "proc:nginx") == (6, 1), topo
    assert counts(topo, "proc:nginx", python) == (6, 1), topo
    sampled = wait_api(base, "/api/samples?client=proc:curl&server=proc:nginx&list=5xx",
                       lambda d: len(d["samples"]) >= 1)
    assert {s["exchange"]["path"] for s in sampled["samples"]} == {"/py/status/500"}

    pw, browser = start_browser()
    w = Watched(browser, base)
    try:
        from playwright.sync_api import expect

        page = w.page
        page.goto(base + "/")
        curl_nginx = edge(page, "proc:curl", "proc:nginx")
        expect(curl_nginx.locator(".edge-label").nth(1)).to_contain_text("6 req")
        expect(edge(page, "proc:nginx", python).locator(".edge-label").nth(1)).to_contain_text("6 req")
        assert "err-red" in curl_nginx.get_attribute("class")  # 1 in 6 is a 500
        curl_nginx.click()
        expect(page.get_by_test_id("pair-title")).to_have_text(f"curl → nginx")
        expect(page.get_by_test_id("summary-http1")).to_contain_text("HTTP/1.x: 6 requests")
        page.get_by_test_id("tab-requests").click()
        slow = page.locator("[data-testid=samples-slow] [data-testid=sample-row]")
        expect(slow.first).to_have_attribute("data-path", "/py/slow?ms=700")
        fivexx = page.locator("[data-testid=samples-5xx] [data-testid=sample-row]")
        expect(fivexx.first).to_have_attribute("data-path", "/py/status/500")
        assert {r.get_attribute("data-status") for r in fivexx.all()} == {"500"}
        fivexx.first.click()
        request = page.get_by_test_id("sample-request").text_content()
        assert request.startswith("GET /py/status/500 HTTP/1.1\r\n"), request
        assert f"host: 127.0.0.1:{nginx.port}\r\n" in request.lower()
        assert page.get_by_test_id("sample-response").text_content().startswith("HTTP/1.1 500")
        expect(page.get_by_test_id("curl-command")).to_contain_text(f"'http://127.0.0.1:{nginx.port}/py/status/500'")
        slow.first.click()
        assert page.get_by_test_id("sample-request").text_content().startswith("GET /py/slow?ms=700 HTTP/1.1\r\n")
        print(f"screenshot: {screenshot(page, tmp_path, 'ui-kernel')}")
        assert w.errors == []
        edge(page, "proc:nginx", python).click()
        expect(page.get_by_test_id("pair-title")).to_have_text(f"nginx → {python[5:]}")
        page.get_by_test_id("tab-requests").click()
        expect(page.locator("[data-testid=samples-5xx] [data-testid=sample-row]").first).to_have_attribute(
            "data-path", "/status/500")
    finally:
        w.close()
        browser.close()
        pw.stop()
    assert a.stop() == 0
    log = "".join(a.stderr)
    assert "Traceback" not in log, log
