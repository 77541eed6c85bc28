"""The HTTP API over a store filled by the sink with the scripted run of scenario.py: every
endpoint with exact counts, bad input answered 400, and the handlers served over HTTP."""
from __future__ import annotations

import http.server
import json
import threading
import types
import urllib.error
import urllib.parse
import urllib.request

import pytest

from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.web.api import Api
from tests.web import scenario as sc


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    store = SqliteStore(str(tmp_path_factory.mktemp("store") / "l7scope.db"))
    sink = sc.fill(store)
    sink.close()
    yield store, sink
    store.close()


@pytest.fixture
def api(filled):
    return Api(filled[0], now_ns=lambda: sc.NOW, source="pcap", node="host-a")


def get(api, path, **params):
    status, ctype, body = api.handle("GET", path, {k: [str(v)] for k, v in params.items()}, b"")
    assert ctype == "application/json"
    assert body.endswith(b"\n") and body.count(b"\n") == 1  # one line
    return status, json.loads(body)


def ok(api, path, **params):
    status, doc = get(api, path, **params)
    assert status == 200, doc
    return doc


def edge_tuples(doc):
    return [(e["client"], e["server"], e["protocol"], e["requests"], e["errors"], e["p50_ms"],
             e["p99_ms"]) for e in doc["edges"]]


def test_sink_wrote_every_record_and_the_interval(filled):
    store, sink = filled
    c = sink.counters()
    assert (c["store_exchanges_written"], c["store_samples_written"]) == (28, 13)
    assert (c["store_dropped_queue_full"], c["store_write_errors"],
            c["store_exchanges_not_stored"]) == (0, 0, 0)
    assert [store.row_count(t) for t in ("exchanges", "samples", "pair_metrics", "agent_counters",
                                         "processes")] == [28, 13, 5, 1, 5]


def test_topology_counts_each_request_once(api):
    doc = ok(api, "/api/topology")
    assert edge_tuples(doc) == [
        ("proc:curl", "proc:nginx", "http1", 9, 1, 10.0, 600.0),
        ("proc:nginx", "proc:python3", "http1", 3, 1, 18.0, 590.0),
        ("remote:192.168.1.5", "proc:nginx", "http1", 2, 0, 30.0, 30.0),
        ("proc:app", "remote:10.1.1.1:50051", "grpc", 1, 1, 40.0, 40.0),
        ("proc:nginx", "remote:93.184.216.34:443", "http1", 1, 1, None, None),
        ("proc:nginx", "remote:10.9.9.9:5432", "tcp", 0, 0, None, None),  # TCP only: last
    ]
    assert doc["nodes"] == [
        {"id": "proc:app", "kind": "process", "pid": 400, "name": "app", "exe": None,
         "container_id": None},
        {"id": "proc:curl", "kind": "process", "pid": 100, "name": "curl", "exe": None,
         "container_id": None},
        # both nginx workers are one node; its pid is the one seen last (t=101)
        {"id": "proc:nginx", "kind": "process", "pid": 200, "name": "nginx", "exe": None,
         "container_id": None},
        {"id": "proc:python3", "kind": "process", "pid": 300, "name": "python3", "exe": None,
         "container_id": None},
        {"id": "remote:10.1.1.1:50051", "kind": "remote", "pid": None, "name": "10.1.1.1:50051",
         "exe": None, "container_id": None},
        {"id": "remote:10.9.9.9:5432", "kind": "remote", "pid": None, "name": "10.9.9.9:5432",
         "exe": None, "container_id": None},
        {"id": "remote:192.168.1.5", "kind": "remote", "pid": None, "name": "192.168.1.5",
         "exe": None, "container_id": None},
        {"id": "remote:93.184.216.34:443", "kind": "remote", "pid": None,
         "name": "93.184.216.34:443", "exe": None, "container_id": None},
    ]


def tcp(**fields) -> dict:
    """An edge's ``tcp``: zero but for ``fields``."""
    return {"connects": 0, "accepts": 0, "connect_failures": 0, "bytes_sent": 0,
            "bytes_received": 0, "retransmits": 0, "resets_sent": 0, "resets_received": 0,
            "drops": 0, **fields}


def test_topology_edges_carry_their_pairs_tcp_figures_exact_json(api):
    edges = ok(api, "/api/topology")["edges"]
    assert edges == [
        {"client": "proc:curl", "server": "proc:nginx", "protocol": "http1", "requests": 9,
         "errors": 1, "p50_ms": 10.0, "p99_ms": 600.0,
         "tcp": tcp(connects=8, accepts=8, connect_failures=1, bytes_sent=1600,
                    bytes_received=6400, retransmits=3, resets_received=1, drops=3)},
        # the record named its server "python3 app.py" (its service): the same node here
        {"client": "proc:nginx", "server": "proc:python3", "protocol": "http1", "requests": 3,
         "errors": 1, "p50_ms": 18.0, "p99_ms": 590.0,
         "tcp": tcp(connects=2, accepts=2, bytes_sent=300, bytes_received=900)},
        {"client": "remote:192.168.1.5", "server": "proc:nginx", "protocol": "http1",
         "requests": 2, "errors": 0, "p50_ms": 30.0, "p99_ms": 30.0,
         "tcp": tcp(accepts=2, bytes_sent=200, bytes_received=400, resets_sent=1)},
        {"client": "proc:app", "server": "remote:10.1.1.1:50051", "protocol": "grpc",
         "requests": 1, "errors": 1, "p50_ms": 40.0, "p99_ms": 40.0, "tcp": None},
        {"client": "proc:nginx", "server": "remote:93.184.216.34:443", "protocol": "http1",
         "requests": 1, "errors": 1, "p50_ms": None, "p99_ms": None, "tcp": None},
        # TCP and no recognised protocol (a database): an edge of its own, after the L7 ones
        {"client": "proc:nginx", "server": "remote:10.9.9.9:5432", "protocol": "tcp",
         "requests": 0, "errors": 0, "p50_ms": None, "p99_ms": None,
         "tcp": tcp(connect_failures=1)},
    ]


def test_tcp_only_edges_are_bounded_busiest_first_and_the_rest_counted(tmp_path, monkeypatch):
    from l7scope.web import api as api_module

    monkeypatch.setattr(api_module, "MAX_TCP_ONLY_EDGES", 2)
    store = SqliteStore(str(tmp_path / "many.db"))
    sink = sc.fill(store)
    sink.on_tcp_metrics([sc.tcp_record("app", f"10.5.5.{i}:6379", 400, None, 60, connect_ms=(1,),
                                       bytes_sent=100 * i, bytes_received=10)
                         for i in range(1, 5)])
    assert sink.flush()
    sink.close()
    doc = ok(Api(store, now_ns=lambda: sc.NOW), "/api/topology")
    tcp_only = [(e["server"], e["tcp"]["bytes_sent"]) for e in doc["edges"]
                if e["protocol"] == "tcp"]
    # 5 pairs without L7 (4 to the cache, nginx's timed-out connect): the 2 busiest are drawn
    assert tcp_only == [("remote:10.5.5.4:6379", 400), ("remote:10.5.5.3:6379", 300)]
    assert doc["tcp_only_left_out"] == 3
    assert "remote:10.5.5.1:6379" not in {n["id"] for n in doc["nodes"]}
    assert sum(e["protocol"] != "tcp" for e in doc["edges"]) == 5  # every L7 edge stays
    store.close()


def test_an_l7_pair_with_two_protocols_has_its_tcp_figures_on_each(tmp_path):
    store = SqliteStore(str(tmp_path / "two.db"))
    sink = sc.fill(store)
    sink(sc.make("server", 300, "127.0.0.1:8000", "127.0.0.1:50002", 201, 200, 7, 60,
                 "/shop.Cart/Get", protocol="grpc", grpc_status=0, conn_id=9))
    assert sink.flush()
    sink.close()
    edges = ok(Api(store, now_ns=lambda: sc.NOW), "/api/topology")["edges"]
    both = {e["protocol"]: e["tcp"] for e in edges
            if (e["client"], e["server"]) == ("proc:nginx", "proc:python3")}
    figures = tcp(connects=2, accepts=2, bytes_sent=300, bytes_received=900)
    assert both == {"http1": figures, "grpc": figures}
    store.close()


def test_topology_since(api):
    assert edge_tuples(ok(api, "/api/topology", since=30)) == [
        ("remote:192.168.1.5", "proc:nginx", "http1", 2, 0, 30.0, 30.0)]
    doc = ok(api, "/api/topology", since=90)
    assert edge_tuples(doc) == [
        ("proc:curl", "proc:nginx", "http1", 3, 1, 5.0, 20.0),
        ("remote:192.168.1.5", "proc:nginx", "http1", 2, 0, 30.0, 30.0),
        ("proc:app", "remote:10.1.1.1:50051", "grpc", 1, 1, 40.0, 40.0),
        ("proc:nginx", "proc:python3", "http1", 1, 1, 18.0, 18.0),
        ("proc:nginx", "remote:93.184.216.34:443", "http1", 1, 1, None, None),
        ("proc:nginx", "remote:10.9.9.9:5432", "tcp", 0, 0, None, None),  # TCP only: last
    ]
    # the TCP records whose interval starts in the window: curl -> nginx's at 30 s only, and
    # none of nginx -> python3 (at 10 s), whose L7 edge stays
    figures = {(e["client"], e["server"]): e["tcp"] for e in doc["edges"]}
    assert figures[("proc:curl", "proc:nginx")] == tcp(
        connects=3, accepts=3, connect_failures=1, bytes_sent=600, bytes_received=1400,
        retransmits=1, resets_received=1, drops=2)
    assert figures[("proc:nginx", "proc:python3")] is None
    # since starts at the beginning of its 10-second slot: 25 s back is 95 s -> the slot at 90 s
    assert ok(api, "/api/topology", since=25) == ok(api, "/api/topology", since=30)
    assert ok(api, "/api/topology", since=5) == {"nodes": [], "edges": [],
                                                  "tcp_only_left_out": 0}


def test_exchanges_newest_first_with_every_field(api):
    doc = ok(api, "/api/exchanges", limit=1000)
    rows = doc["exchanges"]
    assert len(rows) == 28 and doc["truncated"] is False
    starts = [r["start_ns"] for r in rows]
    assert starts == sorted(starts, reverse=True)
    [grpc] = [r for r in rows if r["protocol"] == "grpc"]
    expected = sc.make("client", 400, "10.0.0.3:40001", "10.1.1.1:50051", None, 200, 40, 60,
                       "/shop.Cart/Add", protocol="grpc", grpc_status=14, conn_id=7).to_dict()
    del expected["thread"]  # the store keeps the process, not the thread that made the syscalls
    assert grpc == {**expected, "name": "app", "exe": None, "container_id": None,
                    "peer_name": None, "node": "host-a", "client": "proc:app",
                    "server": "remote:10.1.1.1:50051"}
    [boom] = [r for r in rows if r["path"] == "/boom?token=abc" and r["side"] == "server"]
    assert boom["trace"] == sc.TRACE.to_dict() and boom["peer_name"] == "curl"
    [lost] = [r for r in rows if r["status"] is None]
    assert (lost["partial"], lost["notes"]) == (True, ["no response"])


@pytest.mark.parametrize("params, count", [
    ({"server": "proc:nginx"}, 20),  # both observing sides of curl->nginx, and the remote client
    ({"client": "proc:nginx"}, 7),
    ({"client": "proc:nginx", "server": "proc:python3"}, 6),
    ({"status_min": 400, "status_max": 499}, 4),
    ({"status_min": 500}, 4),
    ({"min_duration_ms": 500}, 4),
    ({"min_duration_ms": 590.5}, 3),
    ({"path_regex": "^/mis"}, 4),
    ({"path_regex": r"token=\w+$"}, 2),
    ({"protocol": "grpc"}, 1),
    ({"protocol": "http2"}, 0),
    ({"since": 70}, 4),
    ({"since": 70, "server": "proc:nginx", "path_regex": "fast"}, 2),
    ({"client": "remote:192.168.1.5"}, 2),
])
def test_exchange_filters(api, params, count):
    assert len(ok(api, "/api/exchanges", limit=1000, **params)["exchanges"]) == count


def test_exchanges_limit_keeps_the_newest(api):
    rows = ok(api, "/api/exchanges", limit=3)["exchanges"]
    assert [(r["start_ns"] - sc.T0) // sc.S for r in rows] == [101, 100, 60]
    assert len(ok(api, "/api/exchanges")["exchanges"]) == 28  # default limit 100


def test_samples_lists(api):
    slow = ok(api, "/api/samples", list="slow")["samples"]
    assert [(s["exchange"]["duration_ns"] // sc.MS, s["exchange"]["side"]) for s in slow] == [
        (601, "client"), (600, "server"), (591, "client"), (590, "server")]
    assert {s["reason"] for s in slow} == {"slow"}
    assert len(ok(api, "/api/samples", list="4xx")["samples"]) == 4
    five = ok(api, "/api/samples", list="5xx")["samples"]
    assert sorted((s["exchange"]["path"], s["reason"]) for s in five) == [
        ("/boom", "5xx"), ("/boom", "5xx"), ("/boom?token=abc", "5xx"), ("/boom?token=abc", "5xx"),
        ("/shop.Cart/Add", "grpc_error")]
    assert len(ok(api, "/api/samples")["samples"]) == 13
    assert len(ok(api, "/api/samples", limit=2)["samples"]) == 2
    pair = ok(api, "/api/samples", client="proc:nginx", server="proc:python3")["samples"]
    assert len(pair) == 4


def test_sample_raw_text_is_redacted_and_carries_the_trace(api):
    five = ok(api, "/api/samples", list="5xx", server="proc:nginx")["samples"]
    assert len(five) == 2
    server = next(s for s in five if s["exchange"]["side"] == "server")
    # the header part exactly (the request line's query may be redacted by the sampler too)
    assert server["request"].startswith("GET /boom?token=")
    assert server["request"].endswith(" HTTP/1.1\r\nhost: shop.test\r\n"
                                      "authorization: [REDACTED]\r\n\r\n")
    assert sc.SECRET not in server["request"]
    assert server["response"] == "HTTP/1.1 500 \r\ncontent-length: 0\r\n\r\n"
    assert server["trace"] == sc.TRACE.to_dict()
    assert server["exchange"]["client"] == "proc:curl" and server["exchange"]["peer_name"] == "curl"


def test_metrics_series(api):
    doc = ok(api, "/api/metrics", client="proc:curl", server="proc:nginx", since=120, step=30)
    assert (doc["from_ns"], doc["to_ns"], doc["step_s"]) == (sc.T0, sc.NOW, 30)
    s = doc["series"]
    assert [p["t_ns"] for p in s] == [sc.T0 + i * 30 * sc.S for i in range(4)]
    assert [(p["requests"], p["errors"], p["status"]) for p in s] == [
        (6, 0, {"200": 6}), (3, 1, {"404": 2, "500": 1}), (0, 0, {}), (0, 0, {})]
    assert (s[0]["requests_per_s"], s[1]["errors_per_s"], s[1]["error_ratio"]) == (
        0.2, round(1 / 30, 6), round(1 / 3, 6))
    assert s[0]["server_duration_ms"] == {"p50": 10.0, "p90": 600.0, "p99": 600.0}
    assert s[0]["client_duration_ms"] == {"p50": 11.0, "p90": 601.0, "p99": 601.0}
    assert s[1]["server_duration_ms"] == {"p50": 5.0, "p90": 20.0, "p99": 20.0}
    assert s[0]["request_bytes"] == {"p50": 100, "p90": 100, "p99": 100}
    assert s[0]["response_bytes"] == {"p50": 200, "p90": 200, "p99": 200}
    assert s[2]["server_duration_ms"] == {"p50": None, "p90": None, "p99": None}
    assert s[2]["error_ratio"] is None


def test_metrics_default_range_and_protocol(api):
    doc = ok(api, "/api/metrics", protocol="grpc")
    assert doc["from_ns"] == sc.T0 + 10 * sc.S and doc["step_s"] == 10  # oldest record .. now
    assert sum(p["requests"] for p in doc["series"]) == 1
    assert sum(p["errors"] for p in doc["series"]) == 1
    whole = ok(api, "/api/metrics", since=120, step=120)["series"]
    assert [(p["requests"], p["errors"]) for p in whole] == [(16, 4)]


def test_status_reports_counters_by_kind(api, filled):
    doc = ok(api, "/api/status")
    assert (doc["version"], doc["source"], doc["node"]) == ("0.1.0", "pcap", "host-a")
    assert doc["store"]["kind"] == "sqlite"
    assert doc["counters_time_ns"] == sc.NOW
    assert doc["counters"]["exchanges"] == 28 and doc["counters"]["ringbuf_dropped"] == 2
    assert doc["drops"]["ringbuf_dropped"] == 2 and "exchanges" not in doc["drops"]
    assert doc["parse_errors"] == {"parse_error_bad_start": 1}
    live = Api(filled[0], counters=lambda: {"exchanges": 5, "store_dropped_queue_full": 1})
    doc = ok(live, "/api/status")
    assert doc["counters"] == {"exchanges": 5, "store_dropped_queue_full": 1}
    assert doc["drops"] == {"store_dropped_queue_full": 1}


@pytest.mark.parametrize("path, params, reason", [
    ("/api/topology", {"since": "-5"}, "since: expected a non-negative decimal number"),
    ("/api/topology", {"since": "abc"}, "since: expected a non-negative decimal number"),
    ("/api/topology", {"since": "0"}, "since: 0 is outside"),
    ("/api/topology", {"sinse": "5"}, "unknown parameter 'sinse'"),
    ("/api/exchanges", {"limit": "0"}, "limit: 0 is outside 1..1000"),
    ("/api/exchanges", {"limit": "5000"}, "limit: 5000 is outside 1..1000"),
    ("/api/exchanges", {"limit": "1e3"}, "limit: expected an integer"),
    ("/api/exchanges", {"status_min": "600", "status_max": "500"}, "status_min 600 is above"),
    ("/api/exchanges", {"status_min": "99"}, "status_min: 99 is outside 100..999"),
    ("/api/exchanges", {"protocol": "ftp"}, "protocol: expected one of http1|http2|grpc"),
    ("/api/exchanges", {"client": "nginx"}, "client: expected a node id"),
    ("/api/exchanges", {"path_regex": "(a+)+$"}, "path_regex: nested repetition"),
    ("/api/exchanges", {"path_regex": "(x|[ab]*)*c"}, "path_regex: nested repetition"),
    ("/api/exchanges", {"path_regex": "([a"}, "path_regex: not a regular expression"),
    ("/api/exchanges", {"path_regex": "a" * 257}, "path_regex: longer than 256"),
    ("/api/samples", {"list": "3xx"}, "list: expected one of slow|4xx|5xx"),
    ("/api/metrics", {"since": "86400", "step": "1"},
     "step: 86400 s in steps of 10 s is 8640 points, more than 1440"),
    ("/api/metrics", {"step": "0.5"}, "step: 0.5 is outside 1..86400"),
    ("/api/status", {"verbose": "1"}, "unknown parameter 'verbose'"),
])
def test_bad_input_is_400_with_a_one_line_reason(api, path, params, reason):
    status, doc = get(api, path, **params)
    assert status == 400
    assert doc["error"].startswith(reason), doc["error"]


def test_repeated_parameter_unknown_path_and_method(api):
    status, _, body = api.handle("GET", "/api/exchanges", {"limit": ["1", "2"]}, b"")
    assert (status, json.loads(body)) == (400, {"error": "limit: given more than once"})
    status, _, body = api.handle("GET", "/api/nothing", {}, b"")
    assert status == 404
    status, _, body = api.handle("POST", "/api/topology", {}, b"{}")
    assert (status, json.loads(body)) == (405, {"error": "POST not allowed; use GET"})


def test_a_regex_that_is_allowed_still_runs_on_bounded_input(api):
    doc = ok(api, "/api/exchanges", path_regex="^/(fa)+st$", limit=1000)
    assert len(doc["exchanges"]) == 14 and doc["truncated"] is False


def test_a_store_failure_is_503_not_a_traceback(tmp_path):
    store = SqliteStore(str(tmp_path / "s.db"))
    store._reader().close()  # a reader that fails as a broken file would
    status, _, body = Api(store).handle("GET", "/api/topology", {}, b"")
    assert status == 503 and json.loads(body)["error"].startswith("store: ")
    store.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    """A stdlib server in front of Api.handle, as the agent's listener mounts it."""

    api: Api = None

    def do_GET(self):  # noqa: N802 - http.server's naming
        path, _, query = self.path.partition("?")
        status, ctype, body = self.api.handle("GET", path, urllib.parse.parse_qs(query), b"")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_served_over_http(api):
    handler = type("H", (_Handler,), {"api": api})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(f"{base}/api/topology?since=30", timeout=5) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            assert edge_tuples(json.load(r)) == [
                ("remote:192.168.1.5", "proc:nginx", "http1", 2, 0, 30.0, 30.0)]
        with urllib.request.urlopen(f"{base}/api/exchanges?server=proc%3Anginx&limit=1000",
                                    timeout=5) as r:
            assert len(json.load(r)["exchanges"]) == 20
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/api/exchanges?limit=abc", timeout=5)
        assert err.value.code == 400
        assert json.load(err.value) == {"error": "limit: expected an integer, got 'abc'"}
    finally:
        server.shutdown()
        server.server_close()


def test_route_takes_the_listener_request(api):
    """Api.route is what Api.mount registers on the agent's HttpListener (outputs/http.py):
    it takes that listener's Request (method, path, query text, body)."""
    req = types.SimpleNamespace(method="GET", path="/api/exchanges",
                                query="client=proc%3Anginx&limit=1000", body=b"")
    status, _, body = api.route(req)
    assert (status, len(json.loads(body)["exchanges"])) == (200, 7)
    req.query = "&".join(f"p{i}=1" for i in range(65))
    status, _, body = api.route(req)
    assert (status, json.loads(body)) == (400, {"error": "more than 64 query parameters"})
    routes = []
    api.mount(types.SimpleNamespace(add_route=lambda *a: routes.append(a)))
    assert routes == [("GET", "/api", api.route)]
