"""TCP health end to end: the real agent with its store and UI, nginx proxying to a Python app,
three curl calls (one connection each) from a copy of curl with a name of its own (the agent
traces every process on the host, other runs' curl and nginx included: the pair
``proc:l7tcpcurl -> proc:nginx`` is this test's alone). The store's tcp_metrics rows, read through
/api/tcp with the topology's node ids, add up to the agent's own tcp_metrics records
(--metrics-output), the bytes match the exchanges' sizes exactly, and the page's TCP tab shows
those numbers, as does the topology's http1 line of that pair. A pair that speaks a
protocol l7scope does not recognise (raw_tcp.py) is a ``tcp`` edge of the topology with its
exact bytes and connects, and a click on it in the page opens its TCP tab.

A browser that cannot start is a failure, never a skip.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kernel.conftest import APPS, _spawn, _stop, free_port, need_tool
from tests.kernel.test_ui_kernel import wait_api
from tests.web.test_ui_browser import Watched, edge, start_browser

pytestmark = pytest.mark.kernel

CALLS = 3
CLIENT = "l7tcpcurl"


def record_sums(records: list[dict], client: str, server: str) -> dict:
    out = {"connects": 0, "bytes_sent": 0, "bytes_received": 0}
    for r in records:
        if r.get("kind") == "tcp_metrics" and (r["client"], r["server"]) == (client, server):
            for k in out:
                out[k] += r[k]
    return out


def test_a_real_run_puts_tcp_rows_in_the_store_and_the_tab_shows_them(agent, nginx,
                                                                       python_server, tmp_path):
    py_port, py_pid = python_server
    python = "proc:" + Path(f"/proc/{py_pid}/comm").read_text().strip()
    ui_port = free_port()
    a = agent("--ui", f"127.0.0.1:{ui_port}", "--store", str(tmp_path / "store"),
              "--metrics-interval", "2")
    base = f"http://127.0.0.1:{ui_port}"
    client = tmp_path / CLIENT
    shutil.copy(need_tool("curl"), client)
    for i in range(CALLS):  # one curl process, so one connection, per call
        res = subprocess.run([str(client), "-sS", "-o", "/dev/null",
                              f"http://127.0.0.1:{nginx.port}/py/hello?n={i}"],
                             capture_output=True, timeout=30)
        assert res.returncode == 0, res.stderr

    pair = f"/api/tcp?client=proc:{CLIENT}&server=proc:nginx&since=600"
    doc = wait_api(base, pair, lambda d: d["totals"]["connects"] >= CALLS, timeout=60)
    t = doc["totals"]
    assert t["connects"] == CALLS, t
    assert (t["connect_failures"], t["resets_sent"]) == (0, 0), t
    assert t["rtt_us"]["count"] >= CALLS and t["connect_ms"]["count"] == CALLS, t

    # the bytes are what curl wrote and read: the client side's exchanges, exactly
    client_side = (lambda d: [e for e in d["exchanges"] if e["side"] == "client"])
    mine = client_side(wait_api(
        base, f"/api/exchanges?client=proc:{CLIENT}&server=proc:nginx&since=600&limit=1000",
        lambda d: len(client_side(d)) >= CALLS, timeout=20))
    seen = [(r["side"], r["comm"], r["pid"], r["path"], r["partial"], r["notes"])
            for r in a.records(nginx.port)]
    assert len(mine) == CALLS, (seen, a.stderr[-5:])
    assert t["bytes_sent"] == sum(e["request_bytes"] for e in mine)
    assert t["bytes_received"] == sum(e["response_bytes"] for e in mine)

    # the stored rows add up to the agent's own records of that pair
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        sums = record_sums(a.metric_records(), CLIENT, "nginx")
        if sums["connects"] >= CALLS:
            break
        time.sleep(0.5)
    assert sums == {k: t[k] for k in sums}, (sums, t)
    # the topology's http1 line of that pair carries the same figures (its ends named alike)
    topo = wait_api(base, "/api/topology?since=600", lambda d: any(
        (e["client"], e["server"], e["protocol"]) == (f"proc:{CLIENT}", "proc:nginx", "http1")
        for e in d["edges"]))
    [line] = [e for e in topo["edges"] if (e["client"], e["server"]) == (f"proc:{CLIENT}",
                                                                          "proc:nginx")]
    assert (line["protocol"], line["requests"]) == ("http1", CALLS), line
    assert line["tcp"] == {k: t[k] for k in line["tcp"]} and line["tcp"]["connects"] == CALLS
    upstream = wait_api(base, f"/api/tcp?client=proc:nginx&server={python}&since=600",
                        lambda d: d["totals"]["connects"] >= 1)
    assert upstream["totals"]["bytes_sent"] > 0, upstream["totals"]
    status = wait_api(base, "/api/status",  # the counters snapshot: refreshed each second
                      lambda d: d["counters"].get("store_tcp_rows_written", 0) >= 1)["counters"]
    assert status["store_tcp_rows_written"] >= 1
    assert status["store_tcp_dropped_queue_full"] == 0

    pw, browser = start_browser()
    w = Watched(browser, base)
    try:
        from playwright.sync_api import expect

        page = w.page
        page.goto(base + "/")
        edge(page, f"proc:{CLIENT}", "proc:nginx").click()
        page.get_by_test_id("tab-tcp").click()
        expect(page.get_by_test_id("tcp-total-connects")).to_have_text(str(CALLS))
        expect(page.get_by_test_id("tcp-total-bytes_sent")).to_contain_text(
            f"{t['bytes_sent']:,} B")
        expect(page.get_by_test_id("tcp-total-bytes_received")).to_contain_text(
            f"{t['bytes_received']:,} B")
        assert w.errors == []
    finally:
        w.close()
        browser.close()
        pw.stop()
    assert a.stop() == 0
    log = "".join(a.stderr)
    assert "Traceback" not in log, log


RAW_CONNECTIONS, RAW_REQUEST, RAW_REPLY = 4, 1000, 5000


def test_a_pair_without_a_recognised_protocol_is_a_tcp_edge(agent, tmp_path):
    ui_port, port = free_port(), free_port()
    a = agent("--ui", f"127.0.0.1:{ui_port}", "--store", str(tmp_path / "store"),
              "--metrics-interval", "2")
    base = f"http://127.0.0.1:{ui_port}"
    server = _spawn([sys.executable, str(APPS / "raw_tcp.py"), "server", "l7rawsrv", str(port)],
                    port)
    try:
        res = subprocess.run([sys.executable, str(APPS / "raw_tcp.py"), "client", "l7rawcli",
                              str(port), str(RAW_CONNECTIONS), str(RAW_REQUEST), str(RAW_REPLY)],
                             capture_output=True, text=True, timeout=30)
        assert (res.returncode, res.stdout) == (0, "done\n"), res.stderr

        def raw_edges(doc):
            return [e for e in doc["edges"]
                    if (e["client"], e["server"]) == ("proc:l7rawcli", "proc:l7rawsrv")]

        doc = wait_api(base, "/api/topology?since=600",
                       lambda d: [e["tcp"]["connects"] for e in raw_edges(d)] == [RAW_CONNECTIONS],
                       timeout=60)
        assert raw_edges(doc) == [{
            "client": "proc:l7rawcli", "server": "proc:l7rawsrv", "protocol": "tcp",
            "requests": 0, "errors": 0, "p50_ms": None, "p99_ms": None,
            "tcp": {"connects": RAW_CONNECTIONS, "accepts": RAW_CONNECTIONS,
                    "connect_failures": 0, "bytes_sent": RAW_CONNECTIONS * RAW_REQUEST,
                    "bytes_received": RAW_CONNECTIONS * RAW_REPLY, "retransmits": 0,
                    "resets_sent": 0, "resets_received": 0, "drops": 0}}], (
            raw_edges(doc), a.stderr[-5:])
        ids = {n["id"]: n for n in doc["nodes"]}
        assert ids["proc:l7rawsrv"]["kind"] == "process", ids.get("proc:l7rawsrv")

        pw, browser = start_browser()
        w = Watched(browser, base)
        try:
            from playwright.sync_api import expect

            w.page.goto(base + "/")
            edge(w.page, "proc:l7rawcli", "proc:l7rawsrv", "tcp").click()
            expect(w.page.get_by_test_id("tab-tcp")).to_have_attribute("aria-selected", "true")
            expect(w.page.get_by_test_id("tcp-total-connects")).to_have_text(str(RAW_CONNECTIONS))
            expect(w.page.get_by_test_id("tcp-total-bytes_received")).to_have_text(
                f"{RAW_CONNECTIONS * RAW_REPLY:,} B (20 KiB)")
            assert w.errors == []
        finally:
            w.close()
            browser.close()
            pw.stop()
    finally:
        _stop(server)
    assert a.stop() == 0
    assert "Traceback" not in "".join(a.stderr)
