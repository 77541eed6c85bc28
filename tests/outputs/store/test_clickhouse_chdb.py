"""The ClickHouse backend's DDL and every query it makes, run by ClickHouse's own engine (chDB,
in-process) on the scripted run of tests/web/scenario.py: each API answer must equal the
embedded SQLite store's, for every endpoint and filter combination the API tests use.

chDB is a test dependency: without it this module fails to import, and the run fails."""
from __future__ import annotations

import json

import chdb  # noqa: F401 - a missing chDB is a failure, never a skip
import pytest
from chdb import session as chdb_session

from l7scope.outputs.store import schema
from l7scope.outputs.store.clickhouse import ClickHouseStore, columns_of
from l7scope.outputs.store.clickhouse_http import parse_url
from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.outputs.store.writer import StoreSink
from l7scope.web.api import Api
from tests.web import scenario as sc
from tests.web.scenario import fill
from tests.web import test_api

# the scenario's records are from 2023: a TTL of ten years keeps them (a table TTL drops rows
# that are already expired when they are inserted)
URL = "clickhouse://localhost:8123/l7test?ttl=315360000"


class ChdbTransport:
    """The HTTP transport's contract over chDB: the same SQL text, the insert's rows after it
    (as ClickHouse joins the URL's query and the POST body)."""

    def __init__(self, sess):
        self.sess = sess
        self.statements: list[str] = []

    def run(self, sql: str, data: bytes | None = None) -> bytes:
        self.statements.append(sql)
        if data is not None:
            sql = sql + "\n" + data.decode("ascii")
        return self.sess.query(sql, "JSONEachRow").bytes()




@pytest.fixture(scope="module")
def chdb_sess(tmp_path_factory):
    sess = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    yield sess
    sess.close()


@pytest.fixture(scope="module")
def both(chdb_sess, tmp_path_factory):
    transport = ChdbTransport(chdb_sess)
    ch = ClickHouseStore(parse_url(URL), transport, insert_every_s=0)
    ch.create_schema()
    ch_sink = fill(ch)
    ch_sink.close()
    lite = SqliteStore(str(tmp_path_factory.mktemp("lite") / "l7scope.db"))
    lite_sink = fill(lite)
    lite_sink.close()
    yield ch, lite, ch_sink, lite_sink, transport
    ch.close()
    lite.close()


def answer(store, path, params):
    api = Api(store, now_ns=lambda: sc.NOW, source="pcap", node="host-a")
    status, ctype, body = api.handle("GET", path, {k: [str(v)] for k, v in params.items()}, b"")
    return status, json.loads(body)


def _filter_cases():
    """Every filter combination of test_api.test_exchange_filters, read from its marks."""
    [mark] = [m for m in test_api.test_exchange_filters.pytestmark if m.name == "parametrize"]
    return [params for params, _count in mark.args[1]]


CASES = [
    ("/api/topology", {}), ("/api/topology", {"since": 30}), ("/api/topology", {"since": 90}),
    ("/api/topology", {"since": 25}), ("/api/topology", {"since": 5}),
    ("/api/exchanges", {"limit": 1000}), ("/api/exchanges", {"limit": 3}),
    ("/api/exchanges", {}),
    ("/api/exchanges", {"path_regex": "^/(fa)+st$", "limit": 1000}),
    ("/api/exchanges", {"server": "proc:nginx", "status_min": 400, "status_max": 499,
                        "min_duration_ms": 5.5, "since": 100, "limit": 1000}),
    ("/api/samples", {}), ("/api/samples", {"list": "slow"}), ("/api/samples", {"list": "4xx"}),
    ("/api/samples", {"list": "5xx"}), ("/api/samples", {"limit": 2}),
    ("/api/samples", {"client": "proc:nginx", "server": "proc:python3"}),
    ("/api/samples", {"list": "5xx", "server": "proc:nginx"}),
    ("/api/samples", {"since": 85, "list": "4xx"}),
    ("/api/metrics", {"client": "proc:curl", "server": "proc:nginx", "since": 120, "step": 30}),
    ("/api/metrics", {"protocol": "grpc"}), ("/api/metrics", {"since": 120, "step": 120}),
    ("/api/metrics", {}), ("/api/metrics", {"server": "proc:nginx", "step": 10}),
    ("/api/tcp", {}), ("/api/tcp", {"since": 120, "step": 120}),
    ("/api/tcp", {"client": "proc:curl", "server": "proc:nginx", "since": 120, "step": 30}),
    ("/api/tcp", {"server": "proc:nginx", "step": 10}), ("/api/tcp", {"client": "proc:nginx"}),
    ("/api/tcp", {"client": "remote:192.168.1.5", "since": 30}),
    ("/api/tcp", {"server": "proc:python3", "since": 90, "step": 20}),
    ("/api/tcp", {"server": "remote:nobody"}),
] + [("/api/exchanges", {"limit": 1000, **params}) for params in _filter_cases()]


@pytest.mark.parametrize("path, params", CASES, ids=[f"{p}?{q}" for p, q in CASES])
def test_clickhouse_answers_equal_sqlite(both, path, params):
    ch, lite = both[0], both[1]
    expected = answer(lite, path, params)
    assert expected[0] == 200
    assert answer(ch, path, params) == expected


def test_the_cases_see_data(both):
    """The comparison is not between two empty answers."""
    _, doc = answer(both[0], "/api/topology", {})
    assert sum(e["requests"] for e in doc["edges"]) == 16
    assert len(answer(both[0], "/api/exchanges", {"limit": 1000})[1]["exchanges"]) == 28
    assert len(answer(both[0], "/api/samples", {})[1]["samples"]) == 13
    assert len(_filter_cases()) >= 14
    _, doc = answer(both[0], "/api/tcp", {})
    assert (doc["totals"]["retransmits"], doc["totals"]["bytes_sent"]) == (3, 2100)
    assert doc["totals"]["drops_by_reason"] == {"NETFILTER_DROP": 2, "TCP_OFO_DROP": 1}
    assert doc["totals"]["rtt_us"]["p99"] == 2500
    _, doc = answer(both[0], "/api/topology", {})  # the edges' TCP figures, read by ClickHouse
    figures = {(e["client"], e["server"], e["protocol"]): e["tcp"] for e in doc["edges"]}
    assert figures[("proc:curl", "proc:nginx", "http1")]["bytes_received"] == 6400
    assert figures[("proc:nginx", "remote:10.9.9.9:5432", "tcp")]["connect_failures"] == 1


@pytest.mark.parametrize("since", [None, sc.T0 + 30 * sc.S, sc.T0 + 60 * sc.S, sc.NOW])
def test_tcp_edges_rows_equal_sqlite(both, since):
    ch, lite = both[0], both[1]
    rows = [sorted(backend.tcp_edges(since), key=lambda r: (r["client"], r["server"]))
            for backend in (ch, lite)]
    assert rows[0] == rows[1]
    assert len(rows[0]) == {None: 4, sc.T0 + 30 * sc.S: 3, sc.T0 + 60 * sc.S: 1, sc.NOW: 0}[since]


def test_status_equal_but_for_the_store(both):
    ch, lite = both[0], both[1]
    _, a = answer(ch, "/api/status", {})
    _, b = answer(lite, "/api/status", {})
    assert a["store"] == {"kind": "clickhouse", "path": "clickhouse://localhost:8123/l7test",
                          "last_error": None}
    for doc in (a, b):
        for key in ("store", "uptime_s", "started_ns"):
            doc.pop(key)
    # the stored snapshot carries each backend's own store counters
    ch_only = {k: a["counters"].pop(k) for k in list(a["counters"])
               if k.startswith("store_clickhouse_")}
    a["drops"] = {k: v for k, v in a["drops"].items() if not k.startswith("store_clickhouse_")}
    for doc in (a, b):
        doc["counters"].pop("store_bytes")
    assert a == b
    assert ch_only["store_clickhouse_dropped_buffer_full"] == 0
    assert ch_only["store_clickhouse_retries"] == 0


def test_sink_and_backend_counters(both):
    ch_sink, transport = both[2], both[4]
    c = ch_sink.counters()
    assert (c["store_exchanges_written"], c["store_samples_written"]) == (28, 13)
    assert c["store_clickhouse_inserts"] == 7  # one INSERT per table: every row in one round
    # every row handed over arrived (one part per table: nothing merged yet)
    assert c["store_clickhouse_rows_sent"] == sum(both[0].row_count(t) for t in schema.TABLES)
    assert (c["store_clickhouse_buffer_rows"], c["store_clickhouse_buffer_bytes"]) == (0, 0)
    assert [both[0].row_count(t) for t in ("exchanges", "samples", "pair_metrics",
                                           "agent_counters", "tcp_metrics")] == [28, 13, 5, 1, 5]
    assert c["store_tcp_rows_written"] == 5
    inserts = [s for s in transport.statements if s.startswith("INSERT")]
    assert sorted(inserts) == sorted(f"INSERT INTO `l7test`.`{t}` FORMAT JSONEachRow"
                                     for t in schema.TABLES)


def test_tables_match_the_logical_schema(both, chdb_sess):
    for table in schema.TABLES:
        rows = [json.loads(line) for line in chdb_sess.query(
            f"DESCRIBE TABLE l7test.{table}", "JSONEachRow").bytes().splitlines()]
        assert [(r["name"], r["type"]) for r in rows] == columns_of(table)
        names = [r["name"] for r in rows]
        assert names[:len(schema.TABLES[table])] == [n for n, _ in schema.TABLES[table]]
        create = chdb_sess.query(f"SHOW CREATE TABLE l7test.{table}", "TSVRaw").bytes().decode()
        assert "TTL toDateTime(intDiv(ts_ns, 1000000000)) + toIntervalSecond(315360000)" in create
        engine = "AggregatingMergeTree" if table == "pair_slots" else "MergeTree"
        assert f"ENGINE = {engine}" in create
    slot_types = dict(columns_of("pair_slots"))
    assert slot_types["n"] == "SimpleAggregateFunction(sum, Int64)"
    assert columns_of("exchanges")[1] == ("node", "LowCardinality(String)")


def test_rollup_cells_merge_in_clickhouse(both, chdb_sess):
    """Cells of one slot written by two batches add up: the same answer after OPTIMIZE."""
    ch = both[0]
    before = answer(ch, "/api/topology", {})
    chdb_sess.query("OPTIMIZE TABLE l7test.pair_slots FINAL")
    assert answer(ch, "/api/topology", {}) == before


def test_path_regex_runs_in_clickhouse_and_re2_gaps_are_400(both):
    ch = both[0]
    status, doc = answer(ch, "/api/exchanges", {"path_regex": r"token=\w+$", "limit": 1000})
    assert status == 200 and [r["path"] for r in doc["exchanges"]] == ["/boom?token=abc"] * 2
    for pattern, why in ((r"(/x)\1", "a backreference"), (r"/(?=fast)", "a lookaround"),
                         (r"/(?!fast)", "a lookaround")):
        status, doc = answer(ch, "/api/exchanges", {"path_regex": pattern})
        assert status == 400
        assert doc["error"] == f"path_regex: {why} is not supported by ClickHouse's RE2"
    # the API's own checks come first, for every backend
    status, doc = answer(ch, "/api/exchanges", {"path_regex": "(a+)+$"})
    assert status == 400 and doc["error"].startswith("path_regex: nested repetition")
    status, doc = answer(ch, "/api/exchanges", {"path_regex": "a" * 257})
    assert status == 400 and doc["error"] == "path_regex: longer than 256 characters"


def test_hostile_text_round_trips(chdb_sess):
    """Quotes, backslashes, NUL, non-ASCII and a lone surrogate in a path and in a filter
    value: stored and read back as they were, and a filter value cannot break out of its
    literal."""
    store = ClickHouseStore(parse_url("clickhouse://localhost/l7hostile?ttl=315360000"),
                            ChdbTransport(chdb_sess), insert_every_s=0)
    store.create_schema()
    sink = StoreSink(store, node="n'1", peer_name=sc.peer_name, to_wall_ns=lambda ns: ns,
                     now_ns=lambda: sc.NOW)
    path = "/a'b\\c\0d\u00e9\udcff\"x"
    sink(sc.make("server", 200, "10.0.0.2:80", "192.168.1.5:51000", None, 200, 10, 10, path))
    assert sink.flush()
    sink.close()
    _, doc = answer(store, "/api/exchanges", {})
    assert [(r["path"], r["node"]) for r in doc["exchanges"]] == [(path, "n'1")]
    status, doc = answer(store, "/api/exchanges", {"client": "remote:x' OR 1 = 1 OR '"})
    assert (status, doc["exchanges"]) == (200, [])
    status, doc = answer(store, "/api/exchanges", {"path_regex": "'b\\\\c"})
    assert status == 200 and len(doc["exchanges"]) == 1
    store.close()


def test_latest_counters_prefer_this_node(chdb_sess):
    store = ClickHouseStore(parse_url("clickhouse://localhost/l7nodes?ttl=315360000"),
                            ChdbTransport(chdb_sess), node="b", insert_every_s=0)
    store.create_schema()
    batch = schema.Batch(agent_counters=[schema.counters_row({"x": 1}, sc.T0, "b"),
                                         schema.counters_row({"x": 2}, sc.T0 + 5, "a")])
    store.write(batch)
    assert store.latest_counters() == (sc.T0, '{"x":1}')
    assert (store.oldest_ts(), store.newest_ts()) == (None, None)
    store.close()
