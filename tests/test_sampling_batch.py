"""Sampler.offer_batch (the common case set aside by dataplane/_sinksmodule.c, ``candidates``)
keeps and counts what offering each record keeps and counts."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.config import SamplingConfig, SamplingRule
from l7scope.dataplane._sinks import candidates
from l7scope.sampling import _CANDIDATE_FIELDS, Sampler
from tests.export import make_exchange

EXCHANGES = st.builds(
    lambda status, grpc, ms, proto, path, neg: make_exchange(
        status=status, grpc_status=grpc, duration_ms=-ms if neg else ms, protocol=proto,
        path=path),
    st.none() | st.sampled_from([200, 204, 301, 399, 400, 404, 499, 500, 503, 600, 99]),
    st.none() | st.sampled_from([0, 1, 14]), st.floats(0, 3000, allow_nan=False),
    st.sampled_from(["http1", "http2", "grpc", "redis"]), st.sampled_from(["/", "/api/x", "/slow"]),
    st.booleans())
RULES = st.lists(st.builds(
    SamplingRule, uri_regex=st.none() | st.sampled_from(["^/api", "slow"]),
    min_duration_ms=st.sampled_from([0, 0.5, 1, 10, 99.9999, 100, 1000, 2500.25]),
    when_4xx=st.booleans(), when_5xx=st.booleans()), max_size=3)


def _state(sampler):
    drained = {k: [[(s.exchange.conn_id, s.exchange.duration_ns, s.reason) for s in lst]
                   for lst in (t.slowest, t.status_4xx, t.status_5xx)]
               for k, t in sampler.drain().items()}
    return drained, dict(sampler.counters)


@settings(max_examples=200, deadline=None)
@given(st.lists(EXCHANGES, max_size=40), RULES, st.integers(1, 3))
def test_a_batch_keeps_and_counts_what_offering_each_does(exchanges, rules, top_n):
    exchanges = [ex._replace(conn_id=i) for i, ex in enumerate(exchanges)]
    config = SamplingConfig(top_n=top_n, rules=tuple(rules))
    one, batched = Sampler(config), Sampler(config)
    for ex in exchanges:
        one.offer(ex)
    assert batched.offer_batch(exchanges) == []
    assert _state(batched) == _state(one)


def test_the_common_case_never_reaches_python():
    sampler = Sampler(SamplingConfig(top_n=5, rules=(SamplingRule(min_duration_ms=100),)))
    offered = []
    sampler.offer = lambda ex: offered.append(ex.status)
    batch = [make_exchange(status=200, duration_ms=5), make_exchange(status=500, duration_ms=5),
             make_exchange(status=200, duration_ms=100), make_exchange(status=404),
             make_exchange(status=None), make_exchange(grpc_status=2),
             make_exchange(protocol="redis")]
    assert sampler.offer_batch(batch) == []
    assert offered == [500, 200, 404, None, 200, 200]
    assert sampler.counters["offered"] == 1  # the others count in offer()


def test_floors():
    fast, slow = make_exchange(duration_ms=1), make_exchange(duration_ms=2000)
    assert candidates([fast, slow], _CANDIDATE_FIELDS, 1 << 64, frozenset({"http1"})) == []
    assert candidates([fast, slow], _CANDIDATE_FIELDS, -(1 << 70), frozenset({"http1"})) == [
        fast, slow]
    assert candidates([fast, slow], _CANDIDATE_FIELDS, math.ceil(1.5e6),
                      frozenset({"http1"})) == [slow]


def test_records_it_cannot_read_go_to_python():
    odd = [None, (1,), make_exchange(status=200.0), make_exchange()._replace(end_ns=2**64),
           make_exchange()._replace(start_ns="0")]
    assert candidates(odd, _CANDIDATE_FIELDS, 1 << 64, frozenset({"http1"})) == odd


def test_tasks_rules_send_every_record_to_offer():
    sampler = Sampler(SamplingConfig(top_n=5, rules=(SamplingRule(min_duration_ms=100),)))
    sampler.rules_for = lambda ex: None
    offered = []
    sampler.offer = lambda ex: offered.append(ex)
    sampler.offer_batch([make_exchange(duration_ms=1)])
    assert len(offered) == 1


def test_a_failing_offer_is_returned_and_the_others_offered():
    sampler = Sampler(SamplingConfig(top_n=5, rules=(SamplingRule(min_duration_ms=0),)))
    real = sampler.offer

    def offer(ex):
        if ex.path == "/bad":
            raise KeyError("bug")
        return real(ex)

    sampler.offer = offer
    errors = sampler.offer_batch([make_exchange(), make_exchange(path="/bad"), make_exchange()])
    assert [type(e) for e in errors] == [KeyError]
    assert sampler.counters["kept"] == 2


def test_an_unhashable_protocol_goes_to_offer_and_fails_there_alone():
    sampler = Sampler(SamplingConfig(top_n=5, rules=(SamplingRule(min_duration_ms=0),)))
    errors = sampler.offer_batch([make_exchange(), make_exchange(protocol=["x"]),
                                  make_exchange()])
    assert [type(e) for e in errors] == [TypeError]
    assert sampler.counters["offered"] == 3 and sampler.counters["kept"] == 2
