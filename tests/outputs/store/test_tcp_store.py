"""The store's tcp_metrics table: the agent's per-pair TCP records written by the store sink and
read back with their exact values, from SQLite and from ClickHouse's engine (chDB); the ends
named as the topology names them; a full queue, a failed write and a record of the wrong shape
counted; retention by age; the fan-out feeding the store each interval."""
from __future__ import annotations

import json

import chdb  # noqa: F401 - a missing chDB is a failure, never a skip
import pytest
from chdb import session as chdb_session

from l7scope.outputs import FanOut
from l7scope.outputs import sinks as S
from l7scope.outputs.store import schema, writer
from l7scope.outputs.store.clickhouse import ClickHouseStore
from l7scope.outputs.store.clickhouse_http import parse_url
from l7scope.outputs.store.retention import Retention
from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.outputs.store.writer import StoreSink
from tests.outputs.store.test_clickhouse_chdb import ChdbTransport
from tests.web import scenario as sc

S_ = sc.S
COLUMNS = [name for name, _ in schema.TCP_COLUMNS]

# the scenario's first record, curl -> nginx at T0+10 s, as its row
CURL_NGINX_AT_10 = {
    "ts_ns": sc.T0 + 10 * S_, "node": "host-a", "interval_end_ns": sc.T0 + 20 * S_,
    "client": "proc:curl", "server": "proc:nginx", "client_name": "curl", "server_name": "nginx",
    "client_pid": 100, "server_pid": 200, "connects": 5, "accepts": 5, "connect_failures": 0,
    "connect_failures_by_reason": "{}", "connect_ms_count": 5, "connect_us_sum": 4500,
    "connect_ms_buckets": '{"0.5":3,"1":1,"5":1,"10000":0}',
    "bytes_sent": 1000, "bytes_received": 5000, "write_calls": 10, "read_calls": 12,
    "write_us": 250, "rtt_us_count": 6, "rtt_us_sum": 2400,
    "rtt_us_buckets": '{"50":1,"100":2,"250":2,"2500":1,"1000000":0}',
    "retransmits": 2, "resets_sent": 0, "resets_received": 0, "drops": 1,
    "drops_by_reason": '{"TCP_OFO_DROP":1}',
}
# every record's ends as node ids, in the order of sc.tcp_records()
ENDS = [("proc:curl", "proc:nginx"), ("proc:curl", "proc:nginx"),
        ("proc:nginx", "proc:python3"), ("remote:192.168.1.5", "proc:nginx"),
        ("proc:nginx", "remote:10.9.9.9:5432")]


def sqlite_rows(store) -> list[dict]:
    return [dict(r) for r in store._reader().execute(
        "SELECT * FROM tcp_metrics ORDER BY ts_ns, client, server")]


def new_sink(store, **kw) -> StoreSink:
    kw.setdefault("process_name", sc.NAMES.get)
    return StoreSink(store, node="host-a", peer_name=sc.peer_name, to_wall_ns=lambda ns: ns,
                     now_ns=lambda: sc.NOW, **kw)


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "l7scope.db"))
    yield s
    s.close()


def test_sqlite_round_trip_exact_values(store):
    sink = new_sink(store)
    sink.on_tcp_metrics(sc.tcp_records())
    assert sink.flush()
    sink.close()
    rows = sqlite_rows(store)
    assert rows[0] == CURL_NGINX_AT_10
    by_time = sorted(zip(sc.tcp_records(), ENDS), key=lambda p: (
        p[0]["interval_start_ns"], p[1]))
    assert [(r["client"], r["server"]) for r in rows] == [ends for _, ends in by_time]
    assert [r["server_name"] for r in rows if r["server"] == "proc:python3"] == ["python3 app.py"]
    refused = [r for r in rows if r["connect_failures"]]
    assert [(r["client"], r["connect_failures_by_reason"]) for r in refused] == [
        ("proc:curl", '{"refused":1}'), ("proc:nginx", '{"timed_out":1}')]
    c = sink.counters()
    assert (c["store_tcp_rows_written"], c["store_tcp_dropped_queue_full"],
            c["store_internal_errors"]) == (5, 0, 0)


def test_chdb_round_trip_equals_sqlite(store, tmp_path):
    sess = chdb_session.Session(str(tmp_path / "chdb"))
    try:
        ch = ClickHouseStore(parse_url("clickhouse://localhost/l7tcp?ttl=315360000"),
                             ChdbTransport(sess), insert_every_s=0)
        ch.create_schema()
        for backend in (ch, store):
            sink = new_sink(backend)
            sink.on_tcp_metrics(sc.tcp_records())
            assert sink.flush()
            sink.close()
        got = [json.loads(line) for line in sess.query(
            "SELECT * EXCEPT seq FROM l7tcp.tcp_metrics ORDER BY ts_ns, client, server",
            "JSONEachRow").bytes().splitlines()]
        assert got == sqlite_rows(store)
        assert got[0] == CURL_NGINX_AT_10
        ch.close()
    finally:
        sess.close()


def test_ends_unknown_to_the_process_table_take_the_names_of_stored_exchanges(store):
    sink = new_sink(store, process_name=lambda pid: None)
    for ex in sc.records():
        sink(ex)
    sink.on_tcp_metrics(sc.tcp_records())
    assert sink.flush()
    sink.close()
    assert [(r["client"], r["server"]) for r in sqlite_rows(store)][:2] == [
        ("proc:curl", "proc:nginx"), ("proc:nginx", "proc:python3")]


def test_without_any_name_an_end_keeps_the_records_own(store):
    sink = new_sink(store, process_name=None)
    sink.on_tcp_metrics([sc.tcp_record("nginx", "python3 app.py", 201, 300, 10)])
    assert sink.flush()
    sink.close()
    assert [(r["client"], r["server"]) for r in sqlite_rows(store)] == [
        ("proc:nginx", "proc:python3 app.py")]


def test_a_full_queue_is_a_counted_drop(store, monkeypatch):
    monkeypatch.setattr(writer, "MAX_TCP_QUEUED", 3)
    sink = new_sink(store, start=False)
    sink.on_tcp_metrics(sc.tcp_records())
    assert sink.counters()["store_tcp_dropped_queue_full"] == 2
    sink._write_some()
    assert store.row_count("tcp_metrics") == 3
    sink.on_tcp_metrics(sc.tcp_records()[:1])  # room again
    sink._write_some()
    assert store.row_count("tcp_metrics") == 4


def test_a_record_of_the_wrong_shape_is_counted_and_the_rest_written(store):
    sink = new_sink(store)
    bad = dict(sc.tcp_records()[0], retransmits="many")
    worse = dict(sc.tcp_records()[0], drops={"X": -1})
    sink.on_tcp_metrics([bad, "not a record", worse] + sc.tcp_records()[1:])
    assert sink.flush()
    sink.close()
    c = sink.counters()
    assert (c["store_internal_errors"], c["store_tcp_rows_written"]) == (3, 4)
    assert store.row_count("tcp_metrics") == 4


class FailingStore:
    kind = "test"

    def write(self, batch):
        raise OSError(28, "No space left on device")

    def size_bytes(self):
        return 0


def test_a_failed_write_is_counted_and_capture_goes_on():
    sink = new_sink(FailingStore(), retention=Retention(max_age_s=10**9, check_every_s=10**9))
    sink.on_tcp_metrics(sc.tcp_records())
    assert sink.flush()
    sink.close()
    c = sink.counters()
    assert (c["store_write_errors"], c["store_tcp_dropped_write_error"],
            c["store_tcp_rows_written"]) == (1, 5, 0)


def test_retention_by_age_deletes_old_tcp_rows(store):
    sink = new_sink(store)
    sink.on_tcp_metrics(sc.tcp_records())
    assert sink.flush()
    sink.close()
    Retention(max_age_s=75).enforce(store, sc.NOW)  # rows before T0+45 s go
    assert [r["ts_ns"] for r in sqlite_rows(store)] == [sc.T0 + 50 * S_, sc.T0 + 100 * S_]


def test_after_close_records_are_written_at_once(store):
    sink = new_sink(store)
    sink.close()
    sink.on_tcp_metrics(sc.tcp_records()[:2])
    assert store.row_count("tcp_metrics") == 2


class _Aggregate:
    def snapshot(self, start, end):
        return []


class _Sampler:
    counters: dict = {}

    def drain(self):
        return {}


class _Tcp:
    counters: dict = {}

    def __init__(self):
        self.records = sc.tcp_records()

    def snapshot(self, start, end):
        out, self.records = self.records, []
        return out


def test_the_fan_out_feeds_each_intervals_records_to_the_store(store):
    sink = new_sink(store)
    fan = FanOut([S.Store(sink, store)], metrics=_Aggregate(), sampler=_Sampler(),
                 interval_ns=10 * S_)
    fan.tcp = _Tcp()
    fan.tick(sc.T0, dict)
    fan.tick(sc.T0 + 10 * S_, dict)  # the interval ends: its tcp records go to every sink
    fan.finish(sc.T0 + 11 * S_, dict)
    assert store.row_count("tcp_metrics") == 5
    assert sink.counters()["store_tcp_rows_written"] == 5
