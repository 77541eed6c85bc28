"""The ClickHouse backend's HTTP side against a local stdlib server that checks what arrives:
the URL (password never shown), the schema statements, the insert payload (POST, the INSERT
and the database in the URL's query, JSON rows carrying the node, basic auth), and a server
that answers 500, 400 or hangs: retries with backoff, the byte bound, drops counted by reason,
and capture that goes on."""
from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from l7scope.outputs.store import StoreError, open_store
from l7scope.outputs.store.clickhouse import ClickHouseStore
from l7scope.outputs.store.clickhouse_http import ClickHouseError, Outbox, parse_url
from l7scope.outputs.store.writer import StoreSink
from l7scope.web.api import Api
from tests.web import scenario as sc

SECRET = "s3cr@t:pw"
USER_URL = "clickhouse://alice:s3cr%40t%3Apw@127.0.0.1:{port}/obs?node=edge-1"


class Server:
    """Records every request; ``plan`` is a list of what to do with the next requests
    ("ok", "500", "400", "403", "hang"), "ok" when it runs out; SELECTs get ``answer``."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: list[str] = []
        self.answer = b""
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                url = urlsplit(self.path)
                with outer.lock:
                    outer.requests.append({"method": "POST", "path": url.path,
                                           "query": parse_qs(url.query), "body": body,
                                           "auth": self.headers.get("Authorization")})
                    action = outer.plan.pop(0) if outer.plan else "ok"
                if action == "hang":
                    time.sleep(1.0)
                    return
                status = {"ok": 200, "500": 500, "400": 400, "403": 403}[action]
                out = outer.answer if status == 200 and body.startswith(b"SELECT") else b""
                if status != 200:
                    out = f"Code: 999. DB::Exception: planned {status}\n".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def inserts(self) -> list[dict]:
        return [r for r in self.requests if "query" in r["query"]]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def store_for(server, clock=None, **kw) -> ClickHouseStore:
    kw.setdefault("insert_every_s", 0)
    return ClickHouseStore(parse_url(USER_URL.format(port=server.port)), timeout_s=0.3,
                           now=clock or time.monotonic, **kw)


def sink_for(store) -> StoreSink:
    return StoreSink(store, peer_name=sc.peer_name, to_wall_ns=lambda ns: ns,
                     now_ns=lambda: sc.NOW, start=False)


# --- the URL -------------------------------------------------------------------------------

def test_url_parts_and_the_password_never_shown():
    ep = parse_url("clickhouse://alice:s3cr%40t%3Apw@ch.example:9000/obs?node=edge-1&ttl=3600")
    assert (ep.host, ep.port, ep.database, ep.user, ep.password, ep.node, ep.ttl_s) == (
        "ch.example", 9000, "obs", "alice", SECRET, "edge-1", 3600)
    assert ep.redacted() == "clickhouse://alice@ch.example:9000/obs"
    assert SECRET not in repr(ep) and "s3cr" not in repr(ep)
    assert ep.auth_header() == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    plain = parse_url("clickhouse://ch")
    assert (plain.port, plain.database, plain.user, plain.node, plain.ttl_s,
            plain.auth_header()) == (8123, "l7scope", None, None, 86400, None)


@pytest.mark.parametrize("url, reason", [
    ("clickhouse://u:pw0rd@h/bad-name", "store: ClickHouse database 'bad-name': letters"),
    ("clickhouse://u:pw0rd@h/db?pool=3", "store: ClickHouse URL: unknown option 'pool'"),
    ("clickhouse://u:pw0rd@h/db?ttl=5", "store: ClickHouse URL: ttl must be seconds"),
    ("clickhouse://u:pw0rd@h:port/db", "store: bad ClickHouse URL"),
    ("clickhouse:///db", "store: bad ClickHouse URL"),
    ("clickhous://u:pw0rd@h/db", "store clickhous://...: unknown kind"),
])
def test_a_bad_url_is_one_line_without_the_password(url, reason):
    with pytest.raises(StoreError) as err:
        open_store(url)
    assert str(err.value).startswith(reason) and "pw0rd" not in str(err.value)
    assert "\n" not in str(err.value)


# --- schema and inserts ----------------------------------------------------------------------

def test_open_store_creates_the_schema_with_basic_auth(server):
    store = open_store(USER_URL.format(port=server.port))
    auth = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert [r["auth"] for r in server.requests] == [auth] * 8
    statements = [r["body"].decode() for r in server.requests]
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `obs`"
    assert [s.split("(")[0] for s in statements[1:]] == [
        f"CREATE TABLE IF NOT EXISTS `obs`.`{t}` " for t in
        ("exchanges", "pair_metrics", "samples", "processes", "agent_counters", "pair_slots",
         "tcp_metrics")]
    assert all(r["query"] == {"database": ["obs"]} for r in server.requests)
    assert (store.kind, store.path, store.node) == (
        "clickhouse", f"clickhouse://alice@127.0.0.1:{server.port}/obs", "edge-1")
    store.close()


def test_the_password_may_come_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("L7SCOPE_CLICKHOUSE_PASSWORD", SECRET)
    store = open_store(f"clickhouse://alice@127.0.0.1:{server.port}/obs")
    auth = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert {r["auth"] for r in server.requests} == {auth}
    assert store.path == f"clickhouse://alice@127.0.0.1:{server.port}/obs"
    store.close()


def test_open_store_that_cannot_reach_or_is_refused_is_one_line(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(StoreError) as err:
        open_store(USER_URL.format(port=free))
    assert str(err.value).startswith(f"store clickhouse://alice@127.0.0.1:{free}/obs: "
                                     f"127.0.0.1:{free}: ConnectionRefusedError")
    server.plan = ["403"]
    with pytest.raises(StoreError) as err:
        open_store(USER_URL.format(port=server.port))
    assert str(err.value).endswith("HTTP 403: Code: 999. DB::Exception: planned 403")
    assert "s3cr" not in str(err.value)


def test_insert_payload(server):
    store = store_for(server)
    sink = sink_for(store)
    records = sc.records()
    for ex in records:
        sink(ex)
    sink._write_some()
    by_table = {}
    for r in server.inserts():
        assert r["method"] == "POST" and r["path"] == "/"
        assert r["query"]["database"] == ["obs"]
        [statement] = r["query"]["query"]
        assert statement.startswith("INSERT INTO `obs`.`") and statement.endswith(
            "` FORMAT JSONEachRow")
        assert r["auth"] == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
        rows = [json.loads(line) for line in r["body"].decode("ascii").splitlines()]
        assert {row["node"] for row in rows} == {"edge-1"}  # the URL's node on every row
        by_table[statement.split("`")[3]] = rows
    assert sorted(by_table) == ["exchanges", "pair_slots", "processes"]
    assert len(by_table["exchanges"]) == len(records) == 28
    seqs = [row["seq"] for row in by_table["exchanges"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 28
    assert [row["path"] for row in by_table["exchanges"]] == [ex.path for ex in records]
    c = sink.counters()
    assert (c["store_exchanges_written"], c["store_clickhouse_inserts"],
            c["store_clickhouse_retries"]) == (28, 3, 0)
    store.close()


def test_500_is_retried_with_backoff_then_sent_once(server):
    clock = Clock()
    store = store_for(server, clock)
    sink = sink_for(store)
    server.plan = ["500", "500"]
    sink(sc.make("server", 200, "10.0.0.2:80", "192.168.1.5:51000", None, 200, 10, 10, "/a"))
    sink._write_some()  # exchanges: 500; the round stops there
    assert len(server.inserts()) == 1
    assert store.counters()["store_clickhouse_retries"] == 1
    store.poll()  # within the backoff (0.5 s): nothing sent
    assert len(server.inserts()) == 1
    clock.t += 0.5
    store.poll()  # second 500: backoff doubles to 1 s
    clock.t += 0.9
    store.poll()
    assert len(server.inserts()) == 2
    clock.t += 0.1
    store.poll()  # ok: this chunk and the tables after it
    inserts = server.inserts()
    assert [r["query"]["query"][0].split("`")[3] for r in inserts] == [
        "exchanges", "exchanges", "exchanges", "processes", "pair_slots"]
    assert inserts[0]["body"] == inserts[2]["body"]
    c = store.counters()
    assert (c["store_clickhouse_retries"], c["store_clickhouse_inserts"],
            c["store_clickhouse_rows_sent"]) == (2, 3, 1 + 1 + 5)
    assert sum(v for k, v in c.items() if "dropped" in k) == 0
    assert c["store_clickhouse_buffer_bytes"] == 0
    assert store.last_error.endswith("HTTP 500: Code: 999. DB::Exception: planned 500")
    store.close()


def test_a_hanging_server_times_out_counts_a_retry_and_capture_goes_on(server):
    clock = Clock()
    store = store_for(server, clock)
    sink = StoreSink(store, peer_name=sc.peer_name, to_wall_ns=lambda ns: ns,
                     now_ns=lambda: sc.NOW, flush_every_s=0.01)
    server.plan = ["hang"]
    for i in range(50):
        sink(sc.make("server", 200, "10.0.0.2:80", "192.168.1.5:51000", None, 200, 10, 10, "/a",
                     conn_id=i))
    assert sink.flush(timeout=5)
    c = sink.counters()
    assert c["store_exchanges_written"] == 50  # handed to the outbox
    assert c["store_clickhouse_retries"] == 1 and "TimeoutError" in store.last_error
    assert c["store_clickhouse_buffer_rows"] == 50 + 1 + 5  # all still waiting, none lost
    clock.t += 1
    sink.close()  # the last round sends all of it
    c = sink.counters()
    assert (c["store_clickhouse_rows_sent"], c["store_clickhouse_buffer_rows"]) == (56, 0)
    assert sum(v for k, v in c.items() if "dropped" in k) == 0
    store.close()


def test_400_drops_that_chunk_and_sends_the_rest(server):
    store = store_for(server)
    sink = sink_for(store)
    server.plan = ["400"]
    for i in range(3):
        sink(sc.make("server", 200, "10.0.0.2:80", "192.168.1.5:51000", None, 200, 10, 10, "/a",
                     conn_id=i))
    sink._write_some()
    c = store.counters()
    assert (c["store_clickhouse_dropped_rejected"], c["store_clickhouse_retries"],
            c["store_clickhouse_rows_sent"]) == (3, 0, 1 + 5)
    assert len(server.inserts()) == 3
    store.close()


def test_give_up_after_max_attempts_and_drop_at_close(server):
    clock = Clock()
    store = store_for(server, clock, max_attempts=3)
    server.plan = ["500"] * 10
    sink = sink_for(store)
    sink(sc.make("server", 200, "10.0.0.2:80", "192.168.1.5:51000", None, 200, 10, 10, "/a"))
    sink._write_some()
    for _ in range(3):
        clock.t += 60
        store.poll()
    c = store.counters()
    # exchanges: 3 attempts, given up; the process row and 5 rollup cells wait
    assert (c["store_clickhouse_dropped_gave_up"], c["store_clickhouse_retries"]) == (1, 3)
    store.close()  # one more attempt (500), the rest counted
    c = store.counters()
    assert (c["store_clickhouse_dropped_at_close"], c["store_clickhouse_rows_sent"]) == (1 + 5, 0)
    assert c["store_clickhouse_buffer_bytes"] == 0


def test_the_outbox_is_bounded_by_bytes_and_drops_the_oldest():
    sent, fail = [], [True]

    def send(table, body):
        if fail[0]:
            raise ClickHouseError("down")
        sent.append((table, body))

    box = Outbox(send, max_bytes=1000, insert_every_s=0, now=lambda: 0.0, backoff_s=0)
    line = b"x" * 99  # 100 bytes with its newline
    box.add("a", [line] * 5)
    box.poll()  # sealed, failed: 5 rows waiting
    box.add("a", [line] * 6)  # 1100 > 1000: the oldest chunk goes
    assert box.counters()["store_clickhouse_dropped_buffer_full"] == 5
    box.add("b", [line] * 5)  # nothing older to drop: these 5 go
    c = box.counters()
    assert (c["store_clickhouse_dropped_buffer_full"], c["store_clickhouse_buffer_rows"],
            c["store_clickhouse_buffer_bytes"]) == (10, 6, 600)
    fail[0] = False
    box.poll()
    assert sent == [("a", b"\n".join([line] * 6) + b"\n")]
    assert box.counters()["store_clickhouse_buffer_bytes"] == 0


def test_inserts_are_batched_per_interval():
    sent = []
    clock = Clock()
    box = Outbox(lambda t, b: sent.append((t, b.count(b"\n"))), insert_every_s=1.0, now=clock)
    for _ in range(4):
        box.add("exchanges", [b"{}"] * 10)
        box.poll()
        clock.t += 0.3
    box.poll()  # 1.2 s after the last seal
    assert sent == [("exchanges", 40)]
    box.add("exchanges", [b"{}"] * 3)
    assert box.flush() and sent[-1] == ("exchanges", 3)


# --- reads ---------------------------------------------------------------------------------

def test_reads_send_the_select_and_a_server_error_is_503(server):
    store = store_for(server)
    server.answer = b'{"name":"nginx","pid":200,"exe":null,"container_id":null,"ts_ns":5}\n'
    assert store.processes() == [{"name": "nginx", "pid": 200, "exe": None,
                                  "container_id": None, "ts_ns": 5}]
    [select] = server.requests
    assert select["query"] == {"database": ["obs"]}
    assert select["body"].startswith(b"SELECT ") and select["body"].endswith(
        b" FORMAT JSONEachRow")
    server.plan = ["500"]
    status, _, body = Api(store, now_ns=lambda: sc.NOW).handle("GET", "/api/topology", {}, b"")
    error = json.loads(body)["error"]
    assert status == 503 and error.startswith(f"store: 127.0.0.1:{server.port}: HTTP 500")
    server.answer = b"not json"
    status, _, body = Api(store).handle("GET", "/api/samples", {}, b"")
    assert status == 503 and "not JSON lines" in json.loads(body)["error"]
    store.close()
