"""TCP-only pairs on the topology in a real browser (Playwright driving Debian's chromium,
headless): over the scripted run of scenario.py plus a pair that talks TCP with no recognised
protocol (``app -> 10.5.5.5:6379``, a cache), the page draws that pair as a dashed line
labelled with its bytes and connections, a click opens the pair on its TCP tab with that
pair's figures (the HTTP tabs disabled), a link opens the same place, and an L7 line names its
pair's TCP figures in its description; TCP-only lines beyond the bound are said.

A browser that cannot start is a failure, never a skip.
"""
from __future__ import annotations

import json
import urllib.request

import pytest

from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.web.api import Api
from tests.web import scenario as sc
from tests.web.scenario import fill
from tests.web.test_ui_browser import Watched, edge, screenshot, serve, texts

CACHE = ("proc:app", "remote:10.5.5.5:6379")


def cache_record() -> dict:
    """app -> 10.5.5.5:6379 at 60 s: 3 connects, 1 refused, 4,200 B out, 91,000 B back."""
    return sc.tcp_record("app", "10.5.5.5:6379", 400, None, 60, connect_ms=(0.3, 0.5, 0.7),
                         failures={"refused": 1}, bytes_sent=4200, bytes_received=91000,
                         write_calls=7, read_calls=9, rtt_us=(150, 250, 250), retransmits=2,
                         drops={"TCP_OFO_DROP": 1})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store = SqliteStore(str(tmp_path_factory.mktemp("ui-tcp-topo") / "l7scope.db"))
    sink = fill(store)
    sink.on_tcp_metrics([cache_record()])
    assert sink.flush()
    sink.close()
    base, stop = serve(Api(store, now_ns=lambda: sc.NOW, source="kernel", node="host-a"))
    yield base
    stop()
    store.close()


def totals(page) -> dict:
    return {el.get_attribute("data-testid")[len("tcp-total-"):]: el.text_content()
            for el in page.locator("[data-testid^=tcp-total-]").all()}


def dash(locator) -> str:
    return locator.locator(".edge-line").evaluate("el => getComputedStyle(el).strokeDasharray")


def test_the_api_gives_the_cache_pair_as_a_tcp_edge(site):
    """The figures the page shows below are the API's (so a failure there is the UI's)."""
    with urllib.request.urlopen(site + "/api/topology?since=900", timeout=10) as r:
        doc = json.loads(r.read())
    [cache] = [e for e in doc["edges"] if (e["client"], e["server"]) == CACHE]
    assert cache == {
        "client": "proc:app", "server": "remote:10.5.5.5:6379", "protocol": "tcp",
        "requests": 0, "errors": 0, "p50_ms": None, "p99_ms": None,
        "tcp": {"connects": 3, "accepts": 0, "connect_failures": 1, "bytes_sent": 4200,
                "bytes_received": 91000, "retransmits": 2, "resets_sent": 0,
                "resets_received": 0, "drops": 1}}


def test_a_tcp_only_pair_is_a_dashed_line_labelled_with_its_bytes(page, tmp_path):
    from playwright.sync_api import expect

    cache = edge(page, *CACHE, "tcp")
    expect(cache).to_have_count(1)
    assert texts(cache.locator(".edge-label")) == [
        "TCP · 4.1 KiB → · 89 KiB ←", "3 conns · 1 failed · 2 retrans"]
    assert "tcp-only" in cache.get_attribute("class")
    assert dash(cache) == "7px, 4px"
    assert dash(edge(page, "proc:curl", "proc:nginx")) == "none"  # L7 lines stay solid
    assert cache.get_attribute("aria-label") == (
        "app to 10.5.5.5:6379, TCP only (no recognised protocol): 3 connections, "
        "1 failed connects, 4.1 KiB sent, 89 KiB received, 2 retransmits, 0 resets, 1 drop")
    # the scenario's own TCP-only pair: a connect that timed out, nothing sent
    db = edge(page, "proc:nginx", "remote:10.9.9.9:5432", "tcp")
    assert texts(db.locator(".edge-label")) == ["TCP · 0 B → · 0 B ←", "0 conns · 1 failed"]
    assert page.locator("[data-testid=edge]").count() == 7
    assert page.get_by_test_id("tcp-only-left-out").count() == 0  # none left out
    assert page.locator('[data-testid=node][data-id="remote:10.5.5.5:6379"] .node-name'
                        ).text_content() == "10.5.5.5:6379"
    screenshot(page, tmp_path, "ui-tcp-topology")


def test_a_click_on_it_opens_the_pairs_tcp_tab(page):
    from playwright.sync_api import expect

    edge(page, *CACHE, "tcp").click()
    expect(page.get_by_test_id("pair-title")).to_have_text("app → 10.5.5.5:6379")
    expect(page.get_by_test_id("tab-tcp")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("summary-tcp")).to_have_text(
        "TCP: 3 connects, 1 failed, 4,200 B sent, 91,000 B received, 2 retransmits, 0 resets, "
        "1 drop, step 10 s")
    assert totals(page) == {
        "connects": "3", "accepts": "0", "connect_failures": "1 (refused 1)",
        "connect_ms": "mean 0.5 ms · p50 ≤ 0.5 ms · p99 ≤ 1 ms (3 connects)",
        "bytes_sent": "4,200 B (4.1 KiB)", "bytes_received": "91,000 B (89 KiB)",
        "rtt_us": "mean 216.667 µs · p50 ≤ 250 µs · p99 ≤ 250 µs (3 sockets)",
        "retransmits": "2", "resets_sent": "0", "resets_received": "0",
        "drops": "1 (TCP_OFO_DROP 1)", "calls": "7 writes (0 ms), 9 reads",
    }
    # no HTTP on this pair: those tabs are disabled, saying why
    for tab in ("tab-http1", "tab-http2", "tab-requests"):
        expect(page.get_by_test_id(tab)).to_be_disabled()
    assert "TCP-only pair" in page.get_by_test_id("tab-http1").get_attribute("title")
    assert "edge=proc%3Aapp%7Cremote%3A10.5.5.5%3A6379%7Ctcp" in page.url
    # another line opens on its own default tab again, with its tabs enabled
    edge(page, "proc:curl", "proc:nginx").click()
    expect(page.get_by_test_id("tab-http1")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("tab-requests")).to_be_enabled()


def test_a_link_opens_the_tcp_only_pair(browser, site):
    from playwright.sync_api import expect

    w = Watched(browser, site)
    try:
        w.page.goto(site + "/#/topology?edge=proc:app|remote:10.5.5.5:6379|tcp")
        expect(w.page.get_by_test_id("tab-tcp")).to_have_attribute("aria-selected", "true")
        expect(w.page.get_by_test_id("tcp-total-bytes_received")).to_have_text(
            "91,000 B (89 KiB)")
        expect(edge(w.page, *CACHE, "tcp")).to_have_attribute("aria-pressed", "true")
        assert w.errors == []
    finally:
        w.close()


def test_an_l7_line_names_its_pairs_tcp_figures(page):
    label = edge(page, "proc:curl", "proc:nginx").get_attribute("aria-label")
    assert label.endswith("; TCP: 8 connections, 1 failed connects, 1.6 KiB sent, "
                          "6.3 KiB received, 3 retransmits, 1 reset, 3 drops")
    grpc = edge(page, "proc:app", "remote:10.1.1.1:50051", "grpc").get_attribute("aria-label")
    assert "TCP" not in grpc  # no TCP record for that pair


def test_tcp_only_lines_left_out_are_said(browser, site, monkeypatch):
    from playwright.sync_api import expect

    from l7scope.web import api as api_module

    monkeypatch.setattr(api_module, "MAX_TCP_ONLY_EDGES", 1)  # the busiest: the cache pair
    w = Watched(browser, site)
    try:
        w.page.goto(site + "/")
        expect(w.page.get_by_test_id("tcp-only-left-out")).to_have_text(
            "1 more TCP-only pair not drawn: the busiest by bytes are shown.")
        assert [e.get_attribute("data-server") for e in
                w.page.locator("[data-testid=edge].tcp-only").all()] == ["remote:10.5.5.5:6379"]
        assert w.errors == []
    finally:
        w.close()
