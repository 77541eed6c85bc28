"""The store and its sink: file permissions, the rate bound, a full queue, a full / locked
store (capture goes on, counted), retention by age and by size, and the agent's pipeline
feeding the sink."""
from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from l7scope.exchange import WallClock
from l7scope.metrics import MetricsAggregator
from l7scope.outputs.store import StoreError, default_data_dir, open_store
from l7scope.outputs.store.retention import Retention
from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.outputs.store.writer import ITEM_OVERHEAD, StoreSink
from l7scope.pipeline import Pipeline
from l7scope.web.api import Api
from tests.test_pipeline import EPOCH_2023, client_events, server_events
from tests.web import scenario as sc


def sink_for(store, **kw) -> StoreSink:
    kw.setdefault("now_ns", lambda: sc.NOW)
    return StoreSink(store, node="host-a", peer_name=sc.peer_name, to_wall_ns=lambda ns: ns, **kw)


def fast(i: int, t_s: float = 10, path: str = "/fast"):
    return sc.make("server", 200, "10.0.0.2:80", "192.168.1.5:51000", None, 200, 10, t_s, path,
                   conn_id=i)


def topology_requests(store) -> int:
    doc = Api(store, now_ns=lambda: sc.NOW).topology({})
    return sum(e["requests"] for e in doc["edges"])


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "l7scope.db"))
    yield s
    s.close()


def test_data_directory_0700_and_file_0600(tmp_path):
    s = open_store(str(tmp_path / "data") + "/")
    assert s.path == str(tmp_path / "data" / "l7scope.db")
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
    s.close()
    assert open_store(f"sqlite://{tmp_path}/other.db").path == f"{tmp_path}/other.db"


def test_default_data_directory(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_data_dir() == "/var/lib/l7scope"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", "/home/u/.data")
    assert default_data_dir() == "/home/u/.data/l7scope"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    assert default_data_dir() == "/home/u/.local/share/l7scope"


def test_a_store_that_cannot_open_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match=r"^store .*/file/l7scope.db: Not a directory$"):
        open_store(str(tmp_path / "file" / "l7scope.db"))
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        open_store(str(tmp_path / "junk.db"))
    with pytest.raises(StoreError, match="unknown kind"):
        open_store("postgres://127.0.0.1:5432/db")


def test_close_writes_everything_queued(store):
    sink = sink_for(store, flush_every_s=5)
    for i in range(300):
        sink(fast(i))
    sink.close()
    assert store.row_count("exchanges") == 300
    assert sink.counters()["store_exchanges_written"] == 300


def test_final_counters_after_close_are_written(store):
    sink = sink_for(store)
    sink(fast(1))
    sink.close()
    sink.on_interval((), None, {"exchanges": 1, **sink.counters()})
    assert store.row_count("agent_counters") == 1
    doc = Api(store).status({})
    assert (doc["counters"]["exchanges"], doc["counters"]["store_exchanges_written"]) == (1, 1)


def test_full_queue_is_a_counted_drop_and_capture_goes_on(store):
    sink = sink_for(store, start=False, max_queue_items=5)
    for i in range(8):
        sink(fast(i))  # the writer is not running: nothing leaves the queue
    c = sink.counters()
    assert (c["store_queue_items"], c["store_dropped_queue_full"]) == (5, 3)
    sink._thread.start()
    assert sink.flush()
    assert store.row_count("exchanges") == 5
    sink.close()


def test_queue_bounded_by_bytes(store):
    path = "/p" + "x" * 998
    sink = sink_for(store, start=False, max_queue_bytes=3 * (ITEM_OVERHEAD + len(path)))
    for i in range(5):
        sink(fast(i, path=path))
    assert sink.counters()["store_dropped_queue_full"] == 2


def test_rate_bound_keeps_one_in_n_with_weights(store):
    sink = sink_for(store, max_rate=10)
    for i in range(35):
        sink(fast(i, t_s=10.5))  # all in one second
    for i in range(30):
        sink(fast(i, t_s=11.5))  # the next: N = ceil(35 / 10) = 4
    assert sink.flush()
    c = sink.counters()
    # second 1: 10 stored, then 1 in 2 of the other 25 (12, weight 2); second 2: 10, then 5 of 20
    assert (c["store_exchanges_written"], c["store_exchanges_not_stored"]) == (22 + 15, 13 + 15)
    # the stored rows stand for their weight; the rollup counts every exchange exactly
    assert store._reader().execute("SELECT SUM(weight) FROM exchanges").fetchone()[0] == \
        (10 + 12 * 2) + (10 + 5 * 4)
    assert topology_requests(store) == 65
    sink.close()


def test_full_disk_is_counted_and_capture_goes_on(tmp_path):
    probe = SqliteStore(str(tmp_path / "probe.db"))
    pages = probe._db.execute("PRAGMA page_count").fetchone()[0]
    probe.close()
    store = SqliteStore(str(tmp_path / "full.db"), max_page_count=pages + 4)
    sink = sink_for(store, batch_items=100)
    for i in range(1000):
        sink(fast(i, path="/" + "y" * 500))
    assert sink.flush()
    c = sink.counters()
    assert c["store_write_errors"] >= 1
    assert c["store_exchanges_written"] + c["store_dropped_write_error"] == 1000
    assert c["store_exchanges_written"] == store.row_count("exchanges") < 1000
    assert "full" in sink.last_error
    sink.close()
    store.close()


def test_locked_store_is_counted_then_writes_resume(store):
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    sink = sink_for(store)
    for i in range(10):
        sink(fast(i))
    assert sink.flush()
    c = sink.counters()
    assert (c["store_write_errors"], c["store_dropped_write_error"]) == (1, 10)
    assert "locked" in sink.last_error
    other.execute("ROLLBACK")
    other.close()
    for i in range(7):
        sink(fast(i))
    assert sink.flush()
    assert (sink.counters()["store_exchanges_written"], store.row_count("exchanges")) == (7, 7)
    sink.close()


def test_a_record_the_rows_cannot_take_is_counted_and_the_rest_written(store):
    sink = sink_for(store)
    sink(fast(1))
    sink(fast(2)._replace(request_bytes=None))  # not an int: the row builder fails
    sink(fast(3))
    assert sink.flush()
    c = sink.counters()
    assert (c["store_internal_errors"], c["store_exchanges_written"]) == (1, 2)
    assert sink.last_error.startswith("internal: TypeError")
    sink.close()


def fill_scenario(store, **kw) -> StoreSink:
    sink = sink_for(store, **kw)
    recs = sc.records()
    agg = MetricsAggregator()
    for ex in recs:
        sink(ex)
        agg.record(ex, sc.peer_name(ex))
    sink.on_interval(agg.snapshot(sc.T0, sc.NOW), sc.sampled(recs), {"exchanges": 28})
    assert sink.flush()
    return sink


def test_pair_metrics_stored_as_the_exporters_see_them(store):
    fill_scenario(store).close()
    rows = store._reader().execute(
        "SELECT client, server, requests, errors, status_counts FROM pair_metrics "
        "ORDER BY client, server").fetchall()
    assert ("curl", "nginx", 9, 1, '{"200":6,"404":2,"500":1}') in [tuple(r) for r in rows]
    assert len(rows) == 5


def test_retention_by_age(store):
    sink = fill_scenario(store)
    sink.close()
    before = {t: store.row_count(t) for t in ("exchanges", "samples", "pair_metrics",
                                              "agent_counters", "processes", "pair_slots")}
    retention = Retention(max_age_s=75)  # now = T0+120 s: rows before T0+45 s go
    retention.enforce(store, sc.NOW)
    # left: exchanges at t=50, 60, 100, 101; the gRPC sample (t=60); the counters snapshot
    # (taken at NOW); processes seen since: nginx 200 (t=101), app (t=60). The pair metrics
    # interval starts at T0.
    assert (store.row_count("exchanges"), store.row_count("samples"),
            store.row_count("pair_metrics"), store.row_count("agent_counters"),
            store.row_count("processes")) == (4, 1, 0, 1, 2)
    # rollup rows of the slots at 50 s (3: status, error, request size), 60 s (6: the gRPC
    # call adds its duration, response size and client duration) and 100 s (5: no error,
    # a server duration)
    assert store.row_count("pair_slots") == 3 + 6 + 5
    assert retention.counters()["store_rows_deleted_age"] == 24 + 12 + 5 + 3 + (
        before["pair_slots"] - 14)


def test_the_writer_runs_retention(store):
    sink = fill_scenario(store, retention=Retention(max_age_s=75, check_every_s=0))
    sink.close()
    assert store.row_count("exchanges") == 4
    assert store.row_count("pair_slots") == 14


def test_retention_by_size_deletes_the_oldest(store):
    sink = sink_for(store, max_rate=10**9)
    total = 20_000
    for i in range(total):
        sink(fast(i, t_s=i / 1000, path=f"/item/{i}/" + "z" * 150))
    sink.close()
    assert store.size_bytes() > 4 << 20
    retention = Retention(max_age_s=10**9, max_bytes=2 << 20)
    retention.enforce(store, sc.NOW)
    left = store.row_count("exchanges")
    assert store.size_bytes() <= 2 << 20
    assert os.path.getsize(store.path) <= 2 << 20
    assert 0 < left < total
    assert retention.counters()["store_rows_deleted_size"] == total - left
    newest, oldest = store._reader().execute(
        "SELECT MAX(conn_id), MIN(conn_id) FROM exchanges").fetchone()
    assert (newest, oldest) == (total - 1, total - left)  # the newest kept, in one piece


def test_pipeline_feeds_the_sink_as_the_agent_will(store):
    pipeline = None
    sink = StoreSink(store, node="host-a", peer_name=lambda ex: pipeline.peer_comm(ex),
                     to_wall_ns=WallClock(offset_ns=EPOCH_2023).offset_ns.__add__,
                     now_ns=lambda: EPOCH_2023 + 5 * 10**9)
    pipeline = Pipeline(clock=WallClock(offset_ns=EPOCH_2023), observers=[sink])
    c, s = client_events(), server_events()
    pipeline.feed([c[0], s[0], c[1], s[1], s[2], c[2]])
    assert sink.flush()
    doc = Api(store, now_ns=lambda: EPOCH_2023 + 5 * 10**9).topology({})
    assert [(e["client"], e["server"], e["requests"], e["errors"], e["p50_ms"])
            for e in doc["edges"]] == [("proc:curl", "proc:nginx", 1, 1, 248.8)]
    rows = Api(store).exchanges({})["exchanges"]
    assert sorted((r["side"], r["peer_name"], r["status"]) for r in rows) == [
        ("client", "nginx", 503), ("server", "curl", 503)]
    sink.close()
