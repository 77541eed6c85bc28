"""The pair panel's TCP tab in a real browser (Playwright driving Debian's chromium, headless)
over /api/tcp and a store filled with the scripted run of scenario.py and its tcp_metrics
records: the totals a user reads (bytes, retransmits, resets, drops by reason, connect time and
RTT), the charts, an edge whose server is named by its service in the record, a remote client,
a pair without TCP records, a link to the tab, and a live refresh that brings new records.

A browser that cannot start is a failure, never a skip.
"""
from __future__ import annotations

import pytest

from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.web.api import Api
from tests.web import scenario as sc
from tests.web.scenario import fill
from tests.web.test_ui_browser import Watched, edge, screenshot, serve, texts


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store = SqliteStore(str(tmp_path_factory.mktemp("ui-tcp") / "l7scope.db"))
    fill(store).close()
    base, stop = serve(Api(store, now_ns=lambda: sc.NOW, source="kernel", node="host-a"))
    yield base
    stop()
    store.close()


def open_tcp(page, client, server, protocol="http1"):
    edge(page, client, server, protocol).click()
    page.get_by_test_id("tab-tcp").click()


def totals(page) -> dict:
    return {el.get_attribute("data-testid")[len("tcp-total-"):]: el.text_content()
            for el in page.locator("[data-testid^=tcp-total-]").all()}


def test_the_tcp_tab_shows_the_pairs_totals_and_charts(page, tmp_path):
    from playwright.sync_api import expect

    open_tcp(page, "proc:curl", "proc:nginx")
    expect(page.get_by_test_id("tab-tcp")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("summary-tcp")).to_have_text(
        "TCP: 8 connects, 1 failed, 1,600 B sent, 6,400 B received, 3 retransmits, 1 reset, "
        "3 drops, step 10 s")
    assert totals(page) == {
        "connects": "8", "accepts": "8", "connect_failures": "1 (refused 1)",
        "connect_ms": "mean 0.713 ms · p50 ≤ 0.5 ms · p99 ≤ 5 ms (8 connects)",
        "bytes_sent": "1,600 B (1.6 KiB)", "bytes_received": "6,400 B (6.3 KiB)",
        "rtt_us": "mean 293.333 µs · p50 ≤ 100 µs · p99 ≤ 2,500 µs (9 sockets)",
        "retransmits": "3", "resets_sent": "0", "resets_received": "1",
        "drops": "3 (NETFILTER_DROP 2, TCP_OFO_DROP 1)",
        "calls": "10 writes (0.25 ms), 12 reads",
    }
    figures = page.locator("[data-testid=charts-tcp] figure")
    assert [f.get_attribute("data-testid") for f in figures.all()] == [
        "chart-tcp-bytes", "chart-tcp-rtt", "chart-tcp-retransmits", "chart-tcp-resets",
        "chart-tcp-connect", "chart-tcp-connects", "chart-tcp-drops"]
    assert texts(page.locator("[data-testid=chart-tcp-drops-totals] li")) == [
        "NETFILTER_DROP: 2", "TCP_OFO_DROP: 1"]
    # the retransmits chart: a point per step with retransmits, its value on hover
    dots = page.locator("[data-testid=chart-tcp-retransmits] circle title")
    assert [t.split(" ", 1)[1] for t in texts(dots)] == ["retransmits: 2", "retransmits: 1"]
    assert "tab=tcp" in page.url
    screenshot(page, tmp_path, "ui-tcp")


def test_ends_named_as_the_topology_names_them(page):
    from playwright.sync_api import expect

    open_tcp(page, "proc:nginx", "proc:python3")  # the record said "python3 app.py"
    expect(page.get_by_test_id("summary-tcp")).to_have_text(
        "TCP: 2 connects, 0 failed, 300 B sent, 900 B received, 0 retransmits, 0 resets, "
        "0 drops, step 10 s")
    expect(page.get_by_test_id("tcp-total-rtt_us")).to_have_text(
        "mean 37.5 µs · p50 ≤ 50 µs · p99 ≤ 50 µs (4 sockets)")
    open_tcp(page, "remote:192.168.1.5", "proc:nginx")
    expect(page.get_by_test_id("summary-tcp")).to_have_text(
        "TCP: 0 connects, 0 failed, 200 B sent, 400 B received, 0 retransmits, 1 reset, "
        "0 drops, step 10 s")
    assert (totals(page)["accepts"], totals(page)["resets_sent"]) == ("2", "1")
    assert texts(page.locator("[data-testid=chart-tcp-drops-totals] li")) == ["none"]


def test_a_pair_without_tcp_records_says_so(page):
    from playwright.sync_api import expect

    open_tcp(page, "proc:app", "remote:10.1.1.1:50051", "grpc")
    expect(page.get_by_test_id("tcp-empty")).to_contain_text(
        "No TCP connection between these two closed in this window")
    assert page.locator("[data-testid=charts-tcp]").count() == 0


def test_a_link_opens_the_tcp_tab_and_a_window_narrows_it(browser, site):
    from playwright.sync_api import expect

    w = Watched(browser, site)
    try:
        w.page.goto(site + "/#/topology?edge=proc:curl|proc:nginx|http1&tab=tcp&since=300")
        expect(w.page.get_by_test_id("tab-tcp")).to_have_attribute("aria-selected", "true")
        expect(w.page.get_by_test_id("tcp-total-retransmits")).to_have_text("3")
        expect(w.page.get_by_test_id("summary-tcp")).to_contain_text("step 10 s")
        w.page.get_by_test_id("window").select_option("86400")
        expect(w.page.get_by_test_id("summary-tcp")).to_have_text(
            "TCP: 8 connects, 1 failed, 1,600 B sent, 6,400 B received, 3 retransmits, "
            "1 reset, 3 drops, step 720 s")
        assert w.errors == []
    finally:
        w.close()


def test_new_records_reach_the_open_tab_by_the_poll(browser, tmp_path):
    from playwright.sync_api import expect

    store = SqliteStore(str(tmp_path / "l7scope.db"))
    sink = fill(store)
    base, stop = serve(Api(store, now_ns=lambda: sc.NOW))
    w = Watched(browser, base)
    try:
        w.page.goto(base + "/")
        open_tcp(w.page, "proc:curl", "proc:nginx")
        expect(w.page.get_by_test_id("tcp-total-retransmits")).to_have_text("3")
        sink.on_tcp_metrics([sc.tcp_record("curl", "nginx", 100, 200, 110, connect_ms=(0.4,),
                                           bytes_sent=4096, bytes_received=1048576,
                                           retransmits=4, drops={"TCP_OFO_DROP": 2})])
        assert sink.flush()
        expect(w.page.get_by_test_id("tcp-total-retransmits")).to_have_text("7")
        expect(w.page.get_by_test_id("tcp-total-bytes_received")).to_have_text(
            "1,054,976 B (1 MiB)")
        expect(w.page.get_by_test_id("tcp-total-drops")).to_have_text(
            "5 (TCP_OFO_DROP 3, NETFILTER_DROP 2)")
        expect(w.page.get_by_test_id("tab-tcp")).to_have_attribute("aria-selected", "true")
        assert w.errors == []
    finally:
        w.close()
        sink.close()
        stop()
        store.close()
