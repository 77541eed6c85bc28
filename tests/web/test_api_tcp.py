"""GET /api/tcp over a store filled with the scripted run of scenario.py (its tcp_metrics
records): the exact JSON a user reads, the filters, the default range, bad input as 400."""
from __future__ import annotations

import pytest

from l7scope.outputs.store.sqlite import SqliteStore
from l7scope.web.api import Api
from l7scope.web.tcp import bucket_quantile
from tests.web import scenario as sc
from tests.web.test_api import get, ok

S = sc.S


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    store = SqliteStore(str(tmp_path_factory.mktemp("tcp") / "l7scope.db"))
    sc.fill(store).close()
    yield Api(store, now_ns=lambda: sc.NOW, source="pcap", node="host-a")
    store.close()


def dist(count=0, mean=None, p50=None, p90=None, p99=None) -> dict:
    return {"count": count, "mean": mean, "p50": p50, "p90": p90, "p99": p99}


def point(**fields) -> dict:
    """A step's JSON: zero but for ``fields``."""
    out = {"connects": 0, "accepts": 0, "connect_failures": 0, "bytes_sent": 0,
           "bytes_received": 0, "write_calls": 0, "read_calls": 0, "retransmits": 0,
           "resets_sent": 0, "resets_received": 0, "drops": 0, "bytes_sent_per_s": 0.0,
           "bytes_received_per_s": 0.0, "write_ms": 0.0, "connect_ms": dist(),
           "rtt_us": dist(), "connect_failures_by_reason": {}, "drops_by_reason": {}}
    out.update(fields)
    return out


def test_a_pair_over_time_exact_json(api):
    doc = ok(api, "/api/tcp", client="proc:curl", server="proc:nginx", since=120, step=30)
    assert doc == {
        "from_ns": sc.T0, "to_ns": sc.NOW, "step_s": 30,
        "series": [
            {"t_ns": sc.T0, **point(
                connects=5, accepts=5, bytes_sent=1000, bytes_received=5000, write_calls=10,
                read_calls=12, retransmits=2, drops=1, bytes_sent_per_s=33.333,
                bytes_received_per_s=166.667, write_ms=0.25,
                connect_ms=dist(5, 0.9, 0.5, 5, 5), rtt_us=dist(6, 400.0, 100, 2500, 2500),
                drops_by_reason={"TCP_OFO_DROP": 1})},
            {"t_ns": sc.T0 + 30 * S, **point(
                connects=3, accepts=3, connect_failures=1, bytes_sent=600, bytes_received=1400,
                retransmits=1, resets_received=1, drops=2, bytes_sent_per_s=20.0,
                bytes_received_per_s=46.667, connect_ms=dist(3, 0.4, 0.5, 0.5, 0.5),
                rtt_us=dist(3, 80.0, 100, 100, 100),
                connect_failures_by_reason={"refused": 1},
                drops_by_reason={"NETFILTER_DROP": 2})},
            {"t_ns": sc.T0 + 60 * S, **point()},
            {"t_ns": sc.T0 + 90 * S, **point()},
        ],
        "totals": point(
            connects=8, accepts=8, connect_failures=1, bytes_sent=1600, bytes_received=6400,
            write_calls=10, read_calls=12, retransmits=3, resets_received=1, drops=3,
            bytes_sent_per_s=13.333, bytes_received_per_s=53.333, write_ms=0.25,
            connect_ms=dist(8, 0.713, 0.5, 5, 5), rtt_us=dist(9, 293.333, 100, 2500, 2500),
            connect_failures_by_reason={"refused": 1},
            drops_by_reason={"NETFILTER_DROP": 2, "TCP_OFO_DROP": 1}),
    }


def test_every_pair_and_the_default_range(api):
    doc = ok(api, "/api/tcp")
    # from the oldest tcp row (T0+10 s) to now, 10 s steps
    assert (doc["from_ns"], doc["step_s"], len(doc["series"])) == (sc.T0 + 10 * S, 10, 11)
    t = doc["totals"]
    assert (t["connects"], t["accepts"], t["connect_failures"], t["bytes_sent"],
            t["bytes_received"], t["retransmits"], t["resets_sent"], t["resets_received"],
            t["drops"]) == (10, 12, 2, 2100, 7700, 3, 1, 1, 3)
    assert t["connect_failures_by_reason"] == {"refused": 1, "timed_out": 1}
    assert t["rtt_us"] == dist(15, 319.333, 100, 2500, 2500)
    assert sum(p["connects"] for p in doc["series"]) == t["connects"]


@pytest.mark.parametrize("params, totals", [
    ({"server": "proc:python3"}, (2, 300, 900, 0, 0)),  # named "python3 app.py" in the record
    ({"client": "remote:192.168.1.5"}, (0, 200, 400, 0, 1)),
    ({"client": "proc:nginx", "server": "remote:10.9.9.9:5432"}, (0, 0, 0, 1, 0)),
    ({"client": "proc:nginx"}, (2, 300, 900, 1, 0)),
    ({"server": "proc:nginx"}, (8, 1800, 6800, 1, 1)),
    ({"server": "proc:nginx", "since": 30}, (0, 200, 400, 0, 1)),
    ({"server": "remote:nobody"}, (0, 0, 0, 0, 0)),
])
def test_filters(api, params, totals):
    t = ok(api, "/api/tcp", **params)["totals"]
    assert (t["connects"], t["bytes_sent"], t["bytes_received"], t["connect_failures"],
            t["resets_sent"]) == totals


@pytest.mark.parametrize("params, reason", [
    ({"client": "curl"}, "client: expected a node id"),
    ({"protocol": "http1"}, "unknown parameter 'protocol'"),
    ({"since": "86400", "step": "1"}, "step: 86400 s in steps of 10 s is 8640 points"),
    ({"step": "0"}, "step: 0 is outside 1..86400"),
    ({"since": "-1"}, "since: expected a non-negative decimal number"),
])
def test_bad_input_is_400(api, params, reason):
    status, doc = get(api, "/api/tcp", **params)
    assert status == 400 and doc["error"].startswith(reason), doc


def test_an_empty_store_answers_a_minute_of_zeros(tmp_path):
    store = SqliteStore(str(tmp_path / "empty.db"))
    doc = ok(Api(store, now_ns=lambda: sc.NOW), "/api/tcp")
    assert (doc["from_ns"], doc["step_s"], len(doc["series"])) == (sc.NOW - 60 * S, 10, 6)
    assert doc["totals"] == point()
    store.close()


def test_quantiles_read_bucket_upper_bounds():
    buckets = {"50": 1, "100": 2, "250": 0, "1000000": 0}
    assert [bucket_quantile(buckets, q) for q in (0.33, 0.34, 1.0)] == [50, 100, 100]
    # a rank in +Inf reads as the largest finite bound
    assert bucket_quantile({"0.5": 1, "10000": 0, "+Inf": 3}, 0.99) == 10000
    assert bucket_quantile({"0.5": 1, "2.5": 1}, 0.9) == 2.5
    assert bucket_quantile({}, 0.5) is None
    assert bucket_quantile({"x": 1}, 0.5) is None
