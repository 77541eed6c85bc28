"""The web UI in a real browser (Playwright driving Debian's chromium, headless) over the API
and a store filled by the sink with the scripted run of scenario.py (curl -> nginx -> python3,
fast, slow, 404 and 500 calls, sampled with their raw text). What a user would check: the
topology's pairs, the pair panel's numbers, the sampled requests with their raw text and a curl
command, the search by status, the counters page, a live refresh that keeps the selection.

A browser that cannot start is a failure, never a skip.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.outputs.store.writer import StoreSink
from l7scope.web.api import Api
from l7scope.web.ui import UiFiles
from tests.web import scenario as sc
from tests.web.scenario import fill

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000  # two shared cores: generous, never a timing assertion
SHOTS = os.environ.get("L7SCOPE_UI_SHOTS")  # a folder to keep the screenshots in


# --- serving and the browser (also used by tests/kernel/test_ui_kernel.py) ----------------

def serve(api: Api) -> tuple[str, callable]:
    """API + UI on a loopback port of the agent's HTTP listener -> (base url, stop)."""
    from l7scope.outputs.http import HttpListener

    listener = HttpListener("127.0.0.1:0", name="ui-test")
    api.mount(listener)
    UiFiles().mount(listener)
    listener.start()
    return "http://%s:%d" % listener.address, listener.stop


def start_browser():
    """(playwright, browser); pytest.fail when chromium or Playwright is missing or cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"Playwright is not installed (pip install -e .[test]): {e}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing (make install installs Debian's chromium)", pytrace=False)
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    pw = sync_playwright().start()
    try:
        return pw, pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
    except Exception as e:  # noqa: BLE001 - the reason, as a failure
        pw.stop()
        pytest.fail(f"chromium did not start: {str(e).splitlines()[0]}", pytrace=False)


class Watched:
    """A page that records the page's own errors; a test ends with none."""

    def __init__(self, browser, base: str):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.base = base
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" and "400 (Bad Request)" not in m.text else None)

    def close(self) -> None:
        self.context.close()


def edge(page, client: str, server: str, protocol: str = "http1"):
    return page.locator(f'[data-testid=edge][data-client="{client}"][data-server="{server}"]'
                        f'[data-protocol="{protocol}"]')


def texts(locator) -> list[str]:
    return [t.strip() for t in locator.all_text_contents()]


def screenshot(page, tmp_path: Path, name: str) -> Path:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    return path


# --- fixtures -------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store = SqliteStore(str(tmp_path_factory.mktemp("ui") / "l7scope.db"))
    fill(store).close()
    base, stop = serve(Api(store, now_ns=lambda: sc.NOW, source="pcap", node="host-a"))
    yield base
    stop()
    store.close()


# --- tests ----------------------------------------------------------------------------------

def test_topology_shows_each_pair_with_rate_and_error_colour(page):
    from playwright.sync_api import expect

    curl_nginx = edge(page, "proc:curl", "proc:nginx")
    expect(curl_nginx).to_have_count(1)
    # 900 s window: 9 requests -> 36/h; 1 of 9 is a 500 (11 %: red)
    assert texts(curl_nginx.locator(".edge-label")) == ["HTTP/1.x · p99 600 ms", "9 req · 36/h · 1 err"]
    nginx_py = edge(page, "proc:nginx", "proc:python3")
    assert texts(nginx_py.locator(".edge-label")) == ["HTTP/1.x · p99 590 ms", "3 req · 12/h · 1 err"]
    remote = edge(page, "remote:192.168.1.5", "proc:nginx")
    assert texts(remote.locator(".edge-label")) == ["HTTP/1.x · p99 30.0 ms", "2 req · 8/h"]
    assert "err-red" in curl_nginx.get_attribute("class")
    assert "err-red" in nginx_py.get_attribute("class")
    assert "err-green" in remote.get_attribute("class")
    assert "err-red" in edge(page, "proc:app", "remote:10.1.1.1:50051", "grpc").get_attribute("class")
    # and nginx -> 10.9.9.9:5432, TCP only (tests/web/test_ui_tcp_topology_browser.py)
    assert page.locator("[data-testid=edge]").count() == 6
    names = texts(page.locator("[data-testid=node] .node-name"))
    assert sorted(names) == sorted(["app", "curl", "nginx", "python3", "192.168.1.5",
                                    "10.1.1.1:50051", "93.184.216.34:443", "10.9.9.9:5432"])

    def x(node_id):
        return page.locator(f'[data-testid=node][data-id="{node_id}"]').bounding_box()["x"]

    assert x("proc:curl") < x("proc:nginx") < x("proc:python3")  # clients left, servers right
    assert x("remote:192.168.1.5") == x("proc:curl")


def test_a_click_on_an_edge_opens_the_pair_with_its_metrics(page):
    from playwright.sync_api import expect

    expect(page.get_by_test_id("pair")).to_be_hidden()
    edge(page, "proc:curl", "proc:nginx").click()
    expect(page.get_by_test_id("pair-title")).to_have_text("curl → nginx")
    expect(page.get_by_test_id("tab-http1")).to_have_attribute("aria-selected", "true")
    tcp = page.get_by_test_id("tab-tcp")
    expect(tcp).to_be_enabled()
    expect(tcp).to_have_text("TCP")  # its numbers: test_ui_tcp_browser.py
    expect(page.get_by_test_id("summary-http1")).to_have_text(
        "HTTP/1.x: 9 requests (36/h), 1 error (11.1 %), step 10 s")
    assert texts(page.locator("[data-testid=chart-status-http1-totals] li")) == ["200: 6", "404: 2", "500: 1"]
    assert page.locator("[data-testid=charts-http1] figure").count() == 4
    expect(edge(page, "proc:curl", "proc:nginx")).to_have_attribute("aria-pressed", "true")
    assert "edge=proc%3Acurl%7Cproc%3Anginx%7Chttp1" in page.url
    page.get_by_test_id("tab-http2").click()
    expect(page.get_by_test_id("metrics-empty")).to_have_text(
        "No HTTP/2 or gRPC requests between these two in this window.")
    # a wider window: same pair, same counts, coarser step
    page.get_by_test_id("window").select_option("3600")
    page.get_by_test_id("tab-http1").click()
    expect(page.get_by_test_id("summary-http1")).to_have_text(
        "HTTP/1.x: 9 requests (9/h), 1 error (11.1 %), step 30 s")
    page.get_by_test_id("pair-close").click()
    expect(page.get_by_test_id("pair")).to_be_hidden()


def test_grpc_edge_opens_on_its_tab_and_keyboard_opens_an_edge(page):
    from playwright.sync_api import expect

    grpc = edge(page, "proc:app", "remote:10.1.1.1:50051", "grpc")
    grpc.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("tab-http2")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("summary-grpc")).to_have_text(
        "gRPC: 1 request (4/h), 1 error (100.0 %), step 10 s")
    assert grpc.get_attribute("aria-label") == (
        "app to 10.1.1.1:50051, gRPC: 1 requests (4/h), 1 errors, p50 40.0 ms, p99 40.0 ms")


def test_requests_tab_lists_the_slow_and_500_calls_with_raw_text(page, tmp_path):
    from playwright.sync_api import expect

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    edge(page, "proc:curl", "proc:nginx").click()
    page.get_by_test_id("tab-requests").click()
    slow = page.locator("[data-testid=samples-slow] [data-testid=sample-row]")
    expect(slow).to_have_count(2)
    rows = [(r.get_attribute("data-path"), r.get_attribute("data-status"),
             r.locator("td").nth(1).text_content(), r.locator("td").nth(4).text_content())
            for r in slow.all()]
    assert rows == [("/slow", "200", "client", "601 ms"), ("/slow", "200", "server", "600 ms")]
    fivexx = page.locator("[data-testid=samples-5xx] [data-testid=sample-row]")
    assert [(r.get_attribute("data-path"), r.get_attribute("data-status")) for r in fivexx.all()] == [
        ("/boom?token=abc", "500")] * 2
    assert page.locator("[data-testid=samples-4xx] [data-testid=sample-row]").count() == 4
    fivexx.first.click()
    assert page.get_by_test_id("sample-request").text_content() == (
        "GET /boom?token=[REDACTED] HTTP/1.1\r\nhost: shop.test\r\nauthorization: [REDACTED]\r\n\r\n")
    assert page.get_by_test_id("sample-response").text_content() == "HTTP/1.1 500 \r\ncontent-length: 0\r\n\r\n"
    expect(page.get_by_test_id("sample-trace-id")).to_have_text("4bf92f3577b34da6a3ce929d0e0e4736 (w3c)")
    command = "curl 'http://shop.test/boom?token=[REDACTED]' -H 'authorization: [REDACTED]'"
    expect(page.get_by_test_id("curl-command")).to_have_text(command)
    page.get_by_test_id("copy-curl").click()
    expect(page.get_by_test_id("copy-curl")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == command
    shot = screenshot(page, tmp_path, "ui-requests")
    print(f"screenshot: {shot}")
    slow.first.click()
    assert page.get_by_test_id("sample-request").text_content().startswith("GET /slow HTTP/1.1\r\n")
    expect(page.get_by_test_id("sample-trace-id")).to_have_text("none")


def test_a_link_opens_the_same_pair_and_tab(browser, site):
    from playwright.sync_api import expect

    w = Watched(browser, site)
    try:
        w.page.goto(site + "/#/topology?edge=proc:nginx|proc:python3|http1&tab=requests")
        expect(w.page.get_by_test_id("pair-title")).to_have_text("nginx → python3")
        expect(w.page.locator("[data-testid=samples-5xx] [data-testid=sample-row]")).to_have_count(2)
        assert w.page.locator("[data-testid=samples-5xx] [data-testid=sample-row]").first.get_attribute(
            "data-path") == "/boom"
        expect(edge(w.page, "proc:nginx", "proc:python3")).to_have_attribute("aria-pressed", "true")
        assert w.errors == []
    finally:
        w.close()


def test_search_filters_by_status_and_shows_a_bad_request_as_its_line(page):
    from playwright.sync_api import expect

    page.get_by_test_id("nav-search").click()
    page.get_by_test_id("search-status_min").fill("500")
    page.get_by_test_id("search-submit").click()
    expect(page.get_by_test_id("search-status")).to_have_text("4 exchanges, newest first")
    rows = page.locator("[data-testid=search-row]")
    assert [(r.get_attribute("data-status"), r.get_attribute("data-path")) for r in rows.all()] == [
        ("500", "/boom"), ("500", "/boom"), ("500", "/boom?token=abc"), ("500", "/boom?token=abc")]
    page.get_by_test_id("search-status_min").fill("404")
    page.get_by_test_id("search-status_max").fill("404")
    page.get_by_test_id("search-client").fill("proc:curl")
    page.get_by_test_id("search-submit").click()
    expect(page.get_by_test_id("search-status")).to_have_text("4 exchanges, newest first")
    assert {(r.get_attribute("data-status"), r.get_attribute("data-path")) for r in rows.all()} == {
        ("404", "/missing")}
    page.get_by_test_id("search-path_regex").fill("(a+)+")
    page.get_by_test_id("search-submit").click()
    expect(page.get_by_test_id("search-error")).to_have_text(
        "path_regex: nested repetition such as (a+)+ or a repeated alternation such as (a|aa)+ "
        "is not allowed")
    expect(rows).to_have_count(0)


def test_status_page_names_drops_and_parse_errors(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_test_id("nav-status").click()
    drops = page.get_by_test_id("drops")
    expect(drops.locator('[data-counter="ringbuf_dropped"] td')).to_have_text("2")
    parse = page.get_by_test_id("parse-errors")
    expect(parse.locator('[data-counter="parse_error_bad_start"] td')).to_have_text("1")
    assert parse.locator('[data-counter="ringbuf_dropped"]').count() == 0
    assert drops.locator('[data-counter="parse_error_bad_start"]').count() == 0
    expect(page.get_by_test_id("counters").locator('[data-counter="exchanges"] td')).to_have_text("28")
    expect(page.get_by_test_id("drops-summary")).to_have_text("2 lost or not kept (see Drops)")
    assert "source\npcap" in page.get_by_test_id("status-meta").inner_text()
    screenshot(page, tmp_path, "ui-status")


def test_live_refresh_keeps_the_selection(browser, tmp_path):
    """New exchanges reach the open page by the poll alone; the selected pair stays selected."""
    from playwright.sync_api import expect

    store = SqliteStore(str(tmp_path / "l7scope.db"))
    sink = fill(store)
    base, stop = serve(Api(store, now_ns=lambda: sc.NOW))
    w = Watched(browser, base)
    try:
        w.page.goto(base + "/")
        nginx_py = edge(w.page, "proc:nginx", "proc:python3")
        nginx_py.click()
        expect(w.page.get_by_test_id("summary-http1")).to_contain_text("3 requests")
        for t in (110, 111):
            for ex in sc.both_sides("127.0.0.1:50000", "127.0.0.1:8000", 201, 300, 200, 8, t, "/fast"):
                sink(ex)
        assert sink.flush()
        expect(nginx_py.locator(".edge-label").nth(1)).to_have_text("5 req · 20/h · 1 err")
        expect(nginx_py).to_have_attribute("aria-pressed", "true")
        assert "selected" in nginx_py.get_attribute("class")
        expect(w.page.get_by_test_id("pair-title")).to_have_text("nginx → python3")
        expect(w.page.get_by_test_id("summary-http1")).to_have_text(
            "HTTP/1.x: 5 requests (20/h), 1 error (20.0 %), step 10 s")
        assert w.errors == []
    finally:
        w.close()
        sink.close()
        stop()
        store.close()


CURL_CASES = [
    ({"exchange": {"protocol": "http2", "tls": True, "authority": "api.test", "side": "client"},
      "request": 'POST /v1/items HTTP/2\r\ncontent-type: application/json\r\ncontent-length: 13\r\n'
                 '\r\n{"a": "it\'s"}'},
     "curl --http2 -X 'POST' 'https://api.test/v1/items' -H 'content-type: application/json' "
     "--data-raw '{\"a\": \"it'\\''s\"}'", []),
    ({"exchange": {"protocol": "http1", "tls": False, "authority": None, "side": "server",
                   "local": "127.0.0.1:8000"},
      "request": "PUT /blob HTTP/1.1\r\ncontent-type: image/png\r\n\r\n<binary 5000 bytes>"},
     "curl -X 'PUT' 'http://127.0.0.1:8000/blob' -H 'content-type: image/png'",
     ["the body is binary (binary 5000 bytes): not included"]),
    ({"exchange": {"protocol": "http1", "authority": "h"},
      "request": "GET / HTTP/1.1\r\nx-evil: a\x1b[31mb'c\r\n\r\n"},
     "curl 'http://h/' -H $'x-evil: a\\x1b[31mb\\'c'", []),
    ({"exchange": {"protocol": "http1", "authority": "h"}, "request": "GET /cut HTTP/1.1\r\nacc"},
     "curl 'http://h/cut'",
     ["the request text was cut at the capture limit: headers or body may be missing"]),
    ({"exchange": {"protocol": "http1"}, "request": None}, None, ["the request text was not captured"]),
]


def test_copy_as_curl_quotes_everything_and_says_what_it_left_out(page):
    got = page.evaluate("""async (cases) => {
        const { buildCurl } = await import("/curl.js");
        return cases.map((c) => buildCurl(c));
    }""", [c[0] for c in CURL_CASES])
    assert [(g["command"], g["notes"]) for g in got] == [(c[1], c[2]) for c in CURL_CASES]


def test_captured_text_is_never_markup(browser, tmp_path):
    """A path or header carrying HTML is shown as text (no element, no script run)."""
    from playwright.sync_api import expect

    store = SqliteStore(str(tmp_path / "l7scope.db"))
    sink = StoreSink(store, node="host-a", peer_name=sc.peer_name, to_wall_ns=lambda ns: ns,
                     now_ns=lambda: sc.NOW)
    evil = '/<img src=x onerror="window.pwned=1">'
    for ex in sc.both_sides("10.0.0.1:45000", "10.0.0.2:80", 100, 200, 500, 5, 50, evil, raw=True):
        sink(ex)
    sink.close()
    base, stop = serve(Api(store, now_ns=lambda: sc.NOW))
    w = Watched(browser, base)
    try:
        w.page.goto(base + "/#/search")
        w.page.get_by_test_id("search-submit").click()
        expect(w.page.locator("[data-testid=search-row]")).to_have_count(2)
        assert w.page.locator("[data-testid=search-row] td.path").first.text_content() == evil
        assert w.page.locator("main img").count() == 0
        assert w.page.evaluate("window.pwned") is None
    finally:
        w.close()
        stop()
        store.close()


def test_api_answers_the_page_reads(site):
    """The numbers checked in the page are the API's (so a failure above is the UI's)."""
    import urllib.request

    with urllib.request.urlopen(site + "/api/topology?since=900", timeout=10) as r:
        doc = json.loads(r.read())
    got = {(e["client"], e["server"]): (e["requests"], e["errors"]) for e in doc["edges"]}
    assert got[("proc:curl", "proc:nginx")] == (9, 1) and got[("proc:nginx", "proc:python3")] == (3, 1)


def test_a_long_edge_gets_its_own_lane(page):
    """A client calling a server three columns away (a browser polling the agent while
    curl -> nginx -> python3 -> that same server) passes beside nginx and python3, not
    behind them."""
    got = page.evaluate("""async () => {
        const { layout } = await import("/topology.js");
        const ids = ["proc:Chrome", "proc:curl", "proc:nginx", "proc:python3", "remote:127.0.0.1:7070"];
        const e = (client, server, requests) => ({ client, server, protocol: "http1", requests, errors: 0 });
        const edges = [e("proc:Chrome", "remote:127.0.0.1:7070", 26), e("proc:curl", "proc:nginx", 6),
                       e("proc:nginx", "proc:python3", 6), e("proc:python3", "remote:127.0.0.1:7070", 5)];
        const { pos, routes } = layout(ids.map((id) => ({ id })), edges);
        const at = (p) => [p.col, p.y];
        return { nodes: Object.fromEntries(ids.map((id) => [id, at(pos.get(id))])),
                 lane: routes.get("proc:Chrome|remote:127.0.0.1:7070|http1").map(at) };
    }""")
    nodes, lane = got["nodes"], got["lane"]
    assert [c for c, _ in nodes.values()] == [0, 0, 1, 2, 3]
    assert [c for c, _ in lane] == [1, 2]
    assert lane[0] != nodes["proc:nginx"] and lane[1] != nodes["proc:python3"]
    assert nodes["proc:curl"][1] == nodes["proc:nginx"][1] == nodes["proc:python3"][1]  # one line


def test_a_refresh_redraws_the_lists_but_keeps_the_open_sample(page):
    """The raw text being read (or selected to copy) is not rebuilt by the 5-second poll."""
    page.goto(page.url.split("#")[0] + "#/topology?edge=proc:curl|proc:nginx|http1&tab=requests")
    rows = page.locator("[data-testid=samples-5xx] [data-testid=sample-row]")
    rows.first.click()
    page.get_by_test_id("sample-request").evaluate("el => { el.dataset.marker = 'kept'; }")
    rows.first.evaluate("el => { el.dataset.marker = 'old'; }")
    page.wait_for_function(  # the next poll redraws the lists: the marked row is gone
        "() => !document.querySelector('[data-testid=sample-row][data-marker=old]')",
        timeout=TIMEOUT_MS)
    assert page.get_by_test_id("sample-request").get_attribute("data-marker") == "kept"
    assert rows.first.get_attribute("aria-pressed") == "true"  # still the selected row


def test_an_agent_that_stops_answering_is_said_and_the_page_stays(browser, tmp_path):
    from playwright.sync_api import expect

    store = SqliteStore(str(tmp_path / "l7scope.db"))
    fill(store).close()
    base, stop = serve(Api(store, now_ns=lambda: sc.NOW))
    w = Watched(browser, base)
    try:
        w.page.goto(base + "/")
        curl_nginx = edge(w.page, "proc:curl", "proc:nginx")
        curl_nginx.click()
        expect(w.page.get_by_test_id("live")).to_have_class("live ok")
        stop()
        live = w.page.get_by_test_id("live")
        expect(live).to_have_class("live error")
        expect(live).to_contain_text("topology: the agent is not answering")
        expect(curl_nginx).to_have_attribute("aria-pressed", "true")  # the last picture stays
        expect(w.page.get_by_test_id("pair-title")).to_have_text("curl → nginx")
        # a poll in flight when the server stops is reset, later ones are refused
        gone = ("ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET")
        assert [e for e in w.errors if not any(g in e for g in gone)] == []
    finally:
        w.close()
        store.close()


def test_a_loop_has_room_under_its_node(page):
    """A process calling itself: its loop and label sit between it and the next box."""
    got = page.evaluate("""async () => {
        const { layout } = await import("/topology.js");
        const e = (client, server) => ({ client, server, protocol: "http1", requests: 9, errors: 0 });
        const ids = ["proc:Unknown", "proc:curl", "proc:nginx"];
        const { pos } = layout(ids.map((id) => ({ id })), [e("proc:Unknown", "proc:Unknown"), e("proc:curl", "proc:nginx")]);
        return ids.map((id) => [pos.get(id).col, pos.get(id).y]);
    }""")
    (c_self, y_self), (c_curl, y_curl), (c_nginx, _) = got
    assert (c_self, c_curl, c_nginx) == (0, 0, 1)
    assert y_curl - y_self >= 96 + 50  # a row, and the loop with its two label lines
