"""WebOutput, the agent's store + API + UI output: one listener serving the UI, the API and a
Prometheus route, the sink feeding the store, the status page reading the handed-over
counters, one-line errors for a bad address or store, and a clean close."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from l7scope.web.server import WebError, WebOutput
from tests.web import scenario as sc


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.fixture
def web(tmp_path):
    w = WebOutput.open(ui="127.0.0.1:0", store=str(tmp_path / "data") + "/",
                       to_wall_ns=lambda ns: ns, peer_name=sc.peer_name, source="kernel",
                       now_ns=lambda: sc.NOW,
                       prometheus=lambda r: (200, "text/plain; version=0.0.4", b"up 1\n"))
    yield w
    w.close()


def test_one_listener_serves_ui_api_and_metrics(web, tmp_path):
    assert web.url.startswith("http://127.0.0.1:") and web.url.endswith("/")
    assert web.banner("127.0.0.1:0") == [
        f"l7scope: web UI at {web.url} (store {tmp_path / 'data' / 'l7scope.db'})"]
    status, ctype, body = get(web.url)
    assert (status, ctype) == (200, "text/html; charset=utf-8") and b'src="/app.js"' in body
    assert get(web.url + "metrics") == (200, "text/plain; version=0.0.4", b"up 1\n")
    for ex in sc.records():
        web.sink(ex)
    assert web.sink.flush()
    status, _, body = get(web.url + "api/topology")
    edges = {(e["client"], e["server"]): e["requests"] for e in json.loads(body)["edges"]}
    assert status == 200 and edges[("proc:curl", "proc:nginx")] == 9
    web.set_counters({"exchanges": 28, "ringbuf_dropped": 3})
    doc = json.loads(get(web.url + "api/status")[2])
    assert (doc["source"], doc["counters"], doc["drops"]) == (
        "kernel", {"exchanges": 28, "ringbuf_dropped": 3}, {"ringbuf_dropped": 3})
    c = web.counters()
    assert c["store_exchanges_written"] == 28 and c["ui_requests"] == 4


def test_close_writes_the_final_counters_and_stops_listening(tmp_path):
    w = WebOutput.open(ui="127.0.0.1:0", store=str(tmp_path / "s.db"), to_wall_ns=lambda ns: ns,
                       now_ns=lambda: sc.NOW)  # else the 2023 record is past retention
    host, port = w.listener.address
    w.sink(sc.records()[0])
    w.close({"exchanges": 1})
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()
    from l7scope.outputs.store.sqlite import SqliteStore
    from l7scope.web.api import Api

    again = SqliteStore(str(tmp_path / "s.db"))
    assert again.row_count("exchanges") == 1
    assert Api(again).status({})["counters"]["exchanges"] == 1
    again.close()


def test_bad_address_busy_port_and_bad_store_are_one_line(tmp_path):
    with pytest.raises(WebError, match=r"^--ui nonsense: expected HOST:PORT"):
        WebOutput.open(ui="nonsense", store=str(tmp_path / "a.db"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(WebError, match=r"^store .*/file/l7scope.db: Not a directory$"):
        WebOutput.open(ui="127.0.0.1:0", store=str(tmp_path / "file" / "l7scope.db"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(WebError, match=rf"^--ui 127.0.0.1:{port}: Address already in use$"):
            WebOutput.open(ui=f"127.0.0.1:{port}", store=str(tmp_path / "b.db"))


def test_beyond_loopback_prints_a_warning(tmp_path):
    w = WebOutput.open(ui="0.0.0.0:0", store=str(tmp_path / "c.db"))
    try:
        lines = w.banner("0.0.0.0:0")
        assert len(lines) == 2 and lines[1].startswith("l7scope: warning: listening on 0.0.0.0:0: reachable")
    finally:
        w.close()


def test_the_status_names_the_stores_node():
    """With ``clickhouse://...?node=NAME`` the rows are written as NAME: the API's status says
    that name, not the host's."""
    from tests.outputs.store.test_clickhouse_http import Server

    server = Server()
    try:
        w = WebOutput.open(ui="127.0.0.1:0", store=f"clickhouse://127.0.0.1:{server.port}/obs"
                           "?node=edge-7", to_wall_ns=lambda ns: ns, now_ns=lambda: sc.NOW)
        try:
            assert w.sink.node == "edge-7"
            doc = json.loads(get(w.url + "api/status")[2])
            assert (doc["node"], doc["store"]["kind"]) == ("edge-7", "clickhouse")
            assert socket.gethostname() != "edge-7"
        finally:
            w.close()
    finally:
        server.stop()
