"""Sampling rules, reasons, top-N per process pair, raw message text."""
from __future__ import annotations

import gzip

from l7scope.config import CaptureSettings, SamplingConfig, SamplingRule, parse_config
from l7scope.redact import Redactor
from l7scope.sampling import Sampler, default_pair_key, sample_reason
from tests.export import make_exchange

PAIR = ("10.1.0.3", "api(42)", "http1")


def _sampler(rules, top_n=10, **kw) -> Sampler:
    return Sampler(SamplingConfig(top_n=top_n, rules=tuple(rules)), **kw)


def test_reason_priority_5xx_then_grpc_then_4xx_then_slow():
    rule = SamplingRule(min_duration_ms=100)
    assert sample_reason(make_exchange(status=503, duration_ms=900), rule) == "5xx"
    assert sample_reason(make_exchange(status=200, grpc_status=14, duration_ms=900), rule) == \
        "grpc_error"
    assert sample_reason(make_exchange(status=404, duration_ms=900), rule) == "4xx"
    assert sample_reason(make_exchange(status=200, duration_ms=100), rule) == "slow"
    assert sample_reason(make_exchange(status=200, duration_ms=99.9), rule) is None
    assert sample_reason(make_exchange(status=200, grpc_status=0, duration_ms=1), rule) is None


def test_switches_off():
    rule = SamplingRule(min_duration_ms=1000, when_4xx=False, when_5xx=False)
    assert sample_reason(make_exchange(status=500), rule) is None
    assert sample_reason(make_exchange(status=400), rule) is None
    assert sample_reason(make_exchange(status=200, grpc_status=2), rule) is None


def test_a_failed_grpc_call_with_a_4xx_goes_to_the_list_its_switch_picks():
    """The protocol's failures in order (grpc_error before 4xx): when_5xx puts the call in the
    5xx list; with when_5xx off it is sampled as the 4xx it also is."""
    ex = make_exchange(protocol="grpc", status=404, grpc_status=2, duration_ms=5)
    both = _sampler([SamplingRule(min_duration_ms=1000)])
    assert both.offer(ex).reason == "grpc_error"
    (top,) = both.drain().values()
    assert ([s.reason for s in top.status_5xx], top.status_4xx, top.slowest) == \
        (["grpc_error"], (), ())
    only_4xx = _sampler([SamplingRule(min_duration_ms=1000, when_5xx=False)])
    assert only_4xx.offer(ex).reason == "4xx"
    (top,) = only_4xx.drain().values()
    assert ([s.reason for s in top.status_4xx], top.status_5xx) == (["4xx"], ())


def test_no_response_and_status_over_599_are_not_sampling_reasons():
    rule = SamplingRule(min_duration_ms=100)
    assert sample_reason(make_exchange(status=None, duration_ms=5), rule) is None
    assert sample_reason(make_exchange(status=600, duration_ms=5), rule) is None
    assert sample_reason(make_exchange(status=None, duration_ms=100), rule) == "slow"


def test_raw_text_start_lines_of_an_http2_exchange():
    sampler = _sampler([SamplingRule(min_duration_ms=0)])
    ex = make_exchange(protocol="http2", path="/api/users?token=abc")
    ex = ex._replace(request=ex.request._replace(version="HTTP/2"),
                     response=ex.response._replace(version="HTTP/2"))
    got = sampler.offer(ex)
    assert got.request_raw.split(b"\r\n")[0] == b"GET /api/users?token=[REDACTED] HTTP/2"
    assert got.response_raw.split(b"\r\n")[0] == b"HTTP/2 200 "


def test_rule_selection_last_match_wins_query_ignored_default_otherwise():
    config = parse_config({"sampling": {"rules": [
        {"min_duration_ms": 1000},
        {"uri_regex": "^/api/", "min_duration_ms": 50},
        {"uri_regex": "users$", "min_duration_ms": 20},
    ]}})
    sampler = Sampler(config.sampling)
    got = sampler.offer(make_exchange(path="/api/users?slow=yes", duration_ms=25))
    assert got.rule.uri_regex == "users$" and got.reason == "slow"
    assert sampler.offer(make_exchange(path="/api/orders", duration_ms=25)) is None
    assert sampler.offer(make_exchange(path="/api/orders", duration_ms=60)).rule.uri_regex == "^/api/"
    # "?" starts the query: "users$" must not match "/other?x=users"
    assert sampler.offer(make_exchange(path="/other?x=users", duration_ms=60)) is None
    assert sampler.offer(make_exchange(path="/other", duration_ms=1000)).rule.uri_regex is None


def test_no_default_rule_means_unmatched_paths_are_not_sampled():
    sampler = _sampler([SamplingRule(uri_regex="^/api", min_duration_ms=0)])
    assert sampler.offer(make_exchange(path="/health", status=500)) is None
    assert sampler.offer(make_exchange(path="/api", status=500)).reason == "5xx"


def test_top_n_keeps_slowest_per_list_and_drain_resets():
    sampler = _sampler([SamplingRule(min_duration_ms=10)], top_n=2)
    kept = [sampler.offer(make_exchange(duration_ms=d)) is not None for d in (30, 20, 10, 40, 25)]
    assert kept == [True, True, False, True, False]  # 25 < the kept 30 and 40
    for d in (50, 60, 70):
        sampler.offer(make_exchange(status=502, duration_ms=d))
    sampler.offer(make_exchange(status=404, duration_ms=5))
    drained = sampler.drain()
    assert list(drained) == [PAIR]
    top = drained[PAIR]
    assert [s.exchange.duration_ns // 1_000_000 for s in top.slowest] == [40, 30]
    assert [s.exchange.duration_ns // 1_000_000 for s in top.status_5xx] == [70, 60]
    assert [s.reason for s in top.status_4xx] == ["4xx"]
    assert len(top.all()) == 5
    assert sampler.drain() == {}


def test_tie_keeps_the_earlier_exchange():
    sampler = _sampler([SamplingRule(min_duration_ms=0)], top_n=1)
    first = sampler.offer(make_exchange(duration_ms=10, start_ns=1))
    assert sampler.offer(make_exchange(duration_ms=10, start_ns=2)) is None
    assert sampler.drain()[PAIR].slowest == (first,)


def test_pairs_are_separate_and_key_injectable():
    sampler = _sampler([SamplingRule(min_duration_ms=0)], top_n=1,
                       pair_key=lambda ex: ex.comm)
    sampler.offer(make_exchange(comm="a"))
    sampler.offer(make_exchange(comm="b"))
    assert sorted(sampler.drain()) == ["a", "b"]


def test_pair_limit_counts_drops():
    sampler = _sampler([SamplingRule(min_duration_ms=0)], max_pairs=1)
    assert sampler.offer(make_exchange(comm="a"))
    assert sampler.offer(make_exchange(comm="b")) is None
    assert sampler.counters["dropped_pair_limit"] == 1


def test_default_pair_key():
    assert default_pair_key(make_exchange(side="server")) == ("10.1.0.3", "api(42)", "http1")
    assert default_pair_key(make_exchange(side="client")) == ("api(42)", "10.1.0.3:51234", "http1")
    assert default_pair_key(make_exchange(side="client", peer_pid=9)) == ("api(42)", "pid(9)", "http1")


def test_reconfigure_swaps_rules():
    sampler = _sampler([SamplingRule(min_duration_ms=1000)])
    assert sampler.offer(make_exchange(duration_ms=200)) is None
    sampler.reconfigure(SamplingConfig(rules=(SamplingRule(min_duration_ms=100),)))
    assert sampler.offer(make_exchange(duration_ms=200)).reason == "slow"


def test_raw_text_rebuilt_redacted_and_truncated():
    rule = SamplingRule(min_duration_ms=0, settings=CaptureSettings(max_response_bytes=40))
    sampler = _sampler([rule], redactor=Redactor(json_fields=["token"]))
    got = sampler.offer(make_exchange(
        request_body=b'{"token":"abc","q":1}',
        request_headers=(("Host", "svc"), ("Authorization", "Bearer s3cret"),
                         ("Content-Type", "application/json")),
        response_headers=(("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
        response_body=gzip.compress(b'{"result":"' + b"x" * 100 + b'"}')))
    assert got.request_raw == (b"GET /api/users?id=1 HTTP/1.1\r\nHost: svc\r\n"
                               b"Authorization: [REDACTED]\r\nContent-Type: application/json\r\n"
                               b'\r\n{"token":"[REDACTED]","q":1}')
    expected = (b"HTTP/1.1 200 \r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                b'\r\n{"result":"xxx')[:40]
    assert got.response_raw == expected and len(got.response_raw) == 40
    assert got.request_complete and got.response_complete


def test_capture_switches_and_require_complete():
    no_req = SamplingRule(min_duration_ms=0, settings=CaptureSettings(capture_request=False))
    got = _sampler([no_req]).offer(make_exchange())
    assert got.request_raw is None and got.response_raw is not None
    strict = SamplingRule(min_duration_ms=0,
                          settings=CaptureSettings(require_complete_response=True))
    sampler = _sampler([strict])
    assert sampler.offer(make_exchange(response_complete=False)) is None
    assert sampler.counters["skipped_incomplete"] == 1
    assert sampler.offer(make_exchange(response_complete=True)) is not None


def test_request_line_and_body_secrets_redacted_by_default():
    got = _sampler([SamplingRule(min_duration_ms=0)]).offer(make_exchange(
        path="/login?token=SEKRIT1&x=1", request_body=b"user=ann&password=SEKRIT3",
        request_headers=(("Host", "svc"), ("Referer", "https://a.test/?code=SEKRIT5"))))
    assert got.request_raw == (b"GET /login?token=[REDACTED]&x=1 HTTP/1.1\r\nHost: svc\r\n"
                               b"Referer: https://a.test/?code=[REDACTED]\r\n\r\n"
                               b"user=ann&password=[REDACTED]")


class _CountingRedactor(Redactor):
    __slots__ = ("rendered",)

    def render_body(self, headers, body, body_len):
        self.rendered += 1
        return super().render_body(headers, body, body_len)


def test_text_is_built_only_for_exchanges_that_take_a_place():
    redactor = _CountingRedactor()
    redactor.rendered = 0
    sampler = _sampler([SamplingRule(min_duration_ms=10)], top_n=1, redactor=redactor)
    assert sampler.offer(make_exchange(duration_ms=50)) is not None
    assert redactor.rendered == 2  # request and response of the kept call
    for _ in range(100):  # faster calls: no place, nothing rendered
        assert sampler.offer(make_exchange(duration_ms=20)) is None
    assert redactor.rendered == 2 and sampler.counters["not_kept"] == 100
    assert sampler.offer(make_exchange(duration_ms=60)) is not None
    assert redactor.rendered == 4 and sampler.counters["kept"] == 2
