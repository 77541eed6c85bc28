"""The compiled aggregator (dataplane/_sinksmodule.c) against the pure-Python one it
replaced (tests/metrics_reference.py): the same PairMetrics for any records, batched or one by
one; hostile records dropped and counted; a failing name function costs only its record."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.exchange import Exchange
from l7scope.metrics import MetricsAggregator
from l7scope.protocols import registry
from tests import metrics_reference as ref
from tests.test_metrics import record

MS = 1_000_000

RECORDS = st.builds(
    lambda side, pid, comm, peer_pid, peer, remote, proto, status, grpc, req, resp, start, dur:
    record(side=side, pid=pid, comm=comm, peer_pid=peer_pid, peer_name=peer, remote=remote,
           protocol=proto, status=status, grpc_status=grpc, request_bytes=req,
           response_bytes=resp, start_ns=start, end_ns=start + dur),
    st.sampled_from(["client", "server", None, "other"]), st.sampled_from([1, 2, 3]),
    st.sampled_from([None, "curl", "nginx", ""]), st.sampled_from([None, 7, 8]),
    st.sampled_from([None, "nginx", "curl"]),
    st.sampled_from([None, "10.0.0.2:80", "[::1]:8080", "10.0.0.9:1"]),
    st.sampled_from(["http1", "http2", "grpc", "redis"]),
    st.none() | st.integers(-5, 1000) | st.sampled_from([200, 404, 500, 503]),
    st.none() | st.integers(0, 16), st.integers(0, 5_000_000), st.integers(0, 5_000_000),
    st.integers(0, 10**15), st.integers(-10 * MS, 20_000 * MS))


def _dicts(pms) -> list:
    return [pm.to_dict() for pm in pms]


class _Versioned:
    """A name function whose names and version the test moves."""

    def __init__(self):
        self.v, self.suffix = 0, ""

    def __call__(self, comm, pid):
        return (comm or "?") + self.suffix

    def version(self):
        return self.v


@settings(max_examples=200, deadline=None)
@given(st.lists(RECORDS, max_size=60), st.integers(1, 6), st.lists(st.integers(0, 60), max_size=4))
def test_the_same_pair_metrics_as_the_python_aggregator(records, max_pairs, cuts):
    old, new = ref.MetricsAggregator(max_pairs=max_pairs), MetricsAggregator(max_pairs=max_pairs)
    for ex in records:
        old.record(ex, ex.peer_name)
    at = 0
    for cut in sorted(cuts) + [len(records)]:
        assert new.record_batch(records[at:cut]) == []
        at = max(at, cut)
    assert _dicts(new.snapshot(5, 10**9)) == _dicts(old.snapshot(5, 10**9))
    assert new.overflow_records == old.overflow_records and new.bad_records == 0


def test_many_statuses_in_one_pair():
    old, new = ref.MetricsAggregator(), MetricsAggregator()
    recs = [record(status=s) for s in list(range(100, 130)) * 2 + [None, None]]
    for ex in recs:
        old.record(ex)
    new.record_batch(recs)
    [a], [b] = old.snapshot(0, 1), new.snapshot(0, 1)
    assert a == b and len(b.status_counts) == 31


def test_names_are_worked_out_again_when_the_version_moves():
    name = _Versioned()
    agg = MetricsAggregator(name=name)
    agg.record_batch([record(), record()])
    name.suffix = "-renamed"  # without a new version the cached route stays
    agg.record_batch([record()])
    name.v = 1
    agg.record_batch([record()])
    assert [(pm.client, pm.requests) for pm in agg.snapshot(0, 1)] == [("curl", 3),
                                                                        ("curl-renamed", 1)]
    assert agg.route(record())[0] == ("curl-renamed", "10.0.0.2:8080", "http1")


def test_a_version_of_none_keeps_no_route():
    name = _Versioned()
    name.version = lambda: None
    agg = MetricsAggregator(name=name)
    agg.record_batch([record()])
    name.suffix = "-x"
    agg.record_batch([record()])
    assert [pm.client for pm in agg.snapshot(0, 1)] == ["curl", "curl-x"]


def test_a_failing_name_function_costs_only_its_record():
    def name(comm, pid):
        if comm == "bad":
            raise ZeroDivisionError("bug")
        return comm

    agg = MetricsAggregator(name=name)
    errors = agg.record_batch([record(), record(comm="bad"), record()])
    assert [type(e) for e in errors] == [ZeroDivisionError]
    assert [(pm.client, pm.requests) for pm in agg.snapshot(0, 1)] == [("curl", 2)]


@pytest.mark.parametrize("hostile", [
    dict(status=2**70), dict(status=200.0), dict(request_bytes=-2**64), dict(start_ns="0"),
    dict(end_ns=2**63 - 1, start_ns=-2**63 + 5), dict(grpc_status=True), dict(status=-2**63)])
def test_records_it_cannot_read_are_dropped_and_counted(hostile):
    agg = MetricsAggregator()
    assert agg.record_batch([record(**hostile), record()]) == []
    assert agg.bad_records == 1
    assert [pm.requests for pm in agg.snapshot(0, 1)] == [1]


def test_not_records_are_dropped_and_counted():
    agg = MetricsAggregator()
    assert agg.record_batch([None, (1, 2), "x", record()]) == []
    assert agg.bad_records == 3


def test_an_unhashable_field_is_that_records_error():
    agg = MetricsAggregator()
    errors = agg.record_batch([record(comm=["list"]), record()])
    assert [type(e) for e in errors] == [TypeError]
    assert [pm.requests for pm in agg.snapshot(0, 1)] == [1]


def test_a_protocol_other_than_http_asks_the_registry():
    from l7scope.dataplane._sinks import Aggregator
    from l7scope.metrics import _FIELDS
    from l7scope.metrics_types import DURATION_MS_BOUNDS, SIZE_BYTES_BOUNDS

    asked = []

    def is_error(ex):
        asked.append(ex.protocol)
        return ex.status == 201

    agg = MetricsAggregator()
    agg._agg = Aggregator(_FIELDS, agg._route_of, None, is_error, 10, 10, SIZE_BYTES_BOUNDS,
                          DURATION_MS_BOUNDS)
    agg.record_batch([record(protocol="redis", status=201), record(status=201),
                      record(protocol="redis", status=500)])
    assert asked == ["redis", "redis"]
    assert [(pm.protocol, pm.errors) for pm in agg.snapshot(0, 1)] == [("http1", 0), ("redis", 1)]


def test_routes_are_bounded():
    agg = MetricsAggregator()
    for i in range(3):
        agg.record_batch([record(pid=p) for p in range(i * 10_000, (i + 1) * 10_000)])
    [pm] = agg.snapshot(0, 1)
    assert pm.requests == 30_000


def test_the_registry_decides_which_protocols_are_http():
    from l7scope.metrics import http_records

    assert http_records() == frozenset({"http1", "http2", "grpc"})
    assert registry.is_error(record(protocol="redis", status=None))


def test_a_batch_of_exchanges_keeps_no_reference():
    import sys

    ex = record(peer_name="nginx", peer_pid=8)
    before = sys.getrefcount(ex)
    agg = MetricsAggregator()
    for _ in range(100):
        agg.record_batch([ex])
    assert sys.getrefcount(ex) == before
    agg.snapshot(0, 1)
    assert isinstance(ex, Exchange)


def test_a_failing_error_rule_leaves_what_the_python_aggregator_left(monkeypatch):
    def boom(ex):
        raise ValueError("registry bug")

    old, new = ref.MetricsAggregator(), MetricsAggregator()
    monkeypatch.setattr(registry, "is_error", boom)
    bad = record(protocol="redis")
    with pytest.raises(ValueError):
        old.record(bad)
    assert [type(e) for e in new.record_batch([bad])] == [ValueError]
    assert _dicts(new.snapshot(0, 1)) == _dicts(old.snapshot(0, 1))
