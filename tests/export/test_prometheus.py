"""Prometheus exporter: scrape over HTTP, parse the text format, check exact samples."""
from __future__ import annotations

import re
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from l7scope.export.prometheus import PrometheusExporter, escape_label_value, parse_listen_address
from l7scope.metrics_types import Histogram
from tests.export import make_pair_metrics, wait_for

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def _unescape(value: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse_exposition(text: str) -> tuple[dict, dict]:
    """(samples {(name, frozenset(labels)): value}, types {family: type}) from format 0.0.4."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            types[family] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        labels = {}
        body = (m.group(2) or "{}")[1:-1]
        pos = 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            assert lm, f"bad labels in {line!r}"
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
        key = (m.group(1), frozenset(labels.items()))
        assert key not in samples, f"duplicate series {line!r}"
        samples[key] = float(m.group(3))
    return samples, types


@pytest.fixture
def exporter():
    exp = PrometheusExporter("127.0.0.1:0")
    exp.start()
    yield exp
    exp.stop()


def _scrape(exp) -> tuple[dict, dict, str]:
    host, port = exp.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        ctype = resp.headers["Content-Type"]
        samples, types = parse_exposition(resp.read().decode("utf-8"))
    return samples, types, ctype


def _s(name, **labels):
    return name, frozenset(labels.items())


PAIR = dict(client="curl(100)", server="nginx(200)", protocol="http1")


def test_cumulative_counters_and_histograms(exporter):
    exporter.update([make_pair_metrics()])
    exporter.update([make_pair_metrics(requests=2, statuses=(("200", 2),), sizes=(70, 70),
                                       durations_ms=(1000, 20000))])
    samples, types, ctype = _scrape(exporter)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    assert types["l7scope_requests_total"] == "counter"
    assert types["l7scope_server_duration_seconds"] == "histogram"
    assert samples[_s("l7scope_requests_total", **PAIR)] == 5
    assert samples[_s("l7scope_responses_total", status="200", **PAIR)] == 4
    assert samples[_s("l7scope_responses_total", status="503", **PAIR)] == 1
    dur = "l7scope_server_duration_seconds"
    expected_buckets = {"0.0005": 1, "0.001": 1, "0.0025": 1, "0.005": 2, "0.01": 2,
                        "0.025": 2, "0.05": 2, "0.1": 2, "0.25": 2, "0.5": 2, "1.0": 4,
                        "2.5": 4, "5.0": 4, "10.0": 4, "+Inf": 5}
    got = {dict(labels)["le"]: v for (name, labels), v in samples.items()
           if name == dur + "_bucket"}
    assert got == expected_buckets
    assert samples[_s(dur + "_count", **PAIR)] == 5
    assert samples[_s(dur + "_sum", **PAIR)] == pytest.approx(21.7034)
    size = "l7scope_request_size_bytes"
    assert samples[_s(size + "_bucket", le="64.0", **PAIR)] == 0
    assert samples[_s(size + "_bucket", le="256.0", **PAIR)] == 3
    assert samples[_s(size + "_bucket", le="+Inf", **PAIR)] == 5
    assert samples[_s(size + "_sum", **PAIR)] == 5540
    assert samples[_s("l7scope_response_size_bytes_count", **PAIR)] == 5
    # no client-side observations yet: the family is declared, with no series
    assert not [k for k in samples if k[0].startswith("l7scope_client_duration_seconds")]


def test_agent_counters_and_escaped_labels(exporter):
    exporter.update([make_pair_metrics(client='we"ird\\pro\ncess', server="10.0.0.1:80")])
    exporter.set_agent_counters({"dropped_events.ringbuf_full": 3,
                                 "dropped_events.conn_table_full": 1, "lost_samples": 9})
    samples, types, _ = _scrape(exporter)
    assert samples[_s("l7scope_requests_total", client='we"ird\\pro\ncess',
                      server="10.0.0.1:80", protocol="http1")] == 3
    assert samples[_s("l7scope_dropped_events_total", reason="ringbuf_full")] == 3
    assert samples[_s("l7scope_dropped_events_total", reason="conn_table_full")] == 1
    assert samples[_s("l7scope_lost_samples_total")] == 9
    assert types["l7scope_dropped_events_total"] == "counter"
    exporter.set_agent_counters({"lost_samples": 10})
    samples, _, _ = _scrape(exporter)
    assert samples[_s("l7scope_lost_samples_total")] == 10
    assert _s("l7scope_dropped_events_total", reason="ringbuf_full") not in samples


def test_escape_label_value():
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_mismatched_bounds_counted_not_mixed(exporter):
    exporter.update([make_pair_metrics()])
    pm = make_pair_metrics()
    odd = Histogram((1.0, 2.0), (1, 0, 0), 1.0, 1)
    exporter.update([type(pm)(**{**{f: getattr(pm, f) for f in pm.__slots__},
                                 "server_duration_ms": odd})])
    samples, _, _ = _scrape(exporter)
    assert samples[_s("l7scope_server_duration_seconds_count", **PAIR)] == 3
    assert samples[_s("l7scope_exporter_dropped_total", reason="histogram_bounds_mismatch")] == 1


def test_unknown_path_is_404(exporter):
    host, port = exporter.address
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{host}:{port}/other", timeout=10)
    assert err.value.code == 404


def test_series_are_bounded():
    exp = PrometheusExporter("127.0.0.1:0", max_series=1)
    exp.update([make_pair_metrics(client="a", statuses=()), make_pair_metrics(client="b", statuses=())])
    samples, _ = parse_exposition(exp.render())
    assert [dict(k[1])["client"] for k in samples if k[0] == "l7scope_requests_total"] == ["a"]
    assert exp.stats()["series_limit"] >= 1


@pytest.mark.parametrize("addr, expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), (":9464", ("127.0.0.1", 9464)),
    ("0.0.0.0:9464", ("0.0.0.0", 9464)),
    ("[::1]:9464", ("::1", 9464))])
def test_parse_listen_address(addr, expected):
    assert parse_listen_address(addr) == expected


@pytest.mark.parametrize("addr", ["9464", "host:", "host:99999", "host:http", "::1:9464"])
def test_parse_listen_address_rejects(addr):
    with pytest.raises(ValueError):
        parse_listen_address(addr)


def test_port_only_listens_on_loopback():
    exp = PrometheusExporter(":0")
    exp.start()
    try:
        assert exp.address[0] == "127.0.0.1"
    finally:
        exp.stop()


def test_200_concurrent_scrapes_are_all_answered(exporter):
    exporter.update([make_pair_metrics()])
    expected, _, _ = _scrape(exporter)
    barrier = threading.Barrier(200)

    def scrape(_):
        barrier.wait(30)
        return _scrape(exporter)[0]

    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(scrape, range(200)))
    assert len(results) == 200 and all(r == expected for r in results)
    assert exporter.stats()["http_rejected_over_cap"] == 0


def test_500_slow_connections_hold_no_thread_and_scrapes_resume(exporter):
    threads_before = threading.active_count()
    slow = []
    try:
        for _ in range(500):
            s = socket.create_connection(exporter.address, timeout=10)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: slow")
            slow.append(s)
        wait_for(lambda: exporter.stats()["http_accepted"]
                 + exporter.stats()["http_rejected_over_cap"] == 500)
        stats = exporter.stats()
        assert (stats["http_open"], stats["http_rejected_over_cap"]) == (64, 436)
        assert threading.active_count() == threads_before
    finally:
        for s in slow:
            s.close()
    wait_for(lambda: exporter.stats()["http_open"] == 0)
    samples, _, _ = _scrape(exporter)
    assert samples[_s("l7scope_exporter_dropped_total", reason="series_limit")] == 0


def test_served_from_a_shared_listener():
    from l7scope.outputs.http import HttpListener

    listener = HttpListener("127.0.0.1:0")
    listener.add_route("GET", "/api", lambda r: (200, "application/json", b"{}"))
    exp = PrometheusExporter("127.0.0.1:0", listener=listener)
    exp.update([make_pair_metrics()])
    listener.start()
    try:
        exp.start()  # the listener is not its own: nothing to start
        samples, _, ctype = _scrape(exp)
        assert ctype == "text/plain; version=0.0.4; charset=utf-8"
        assert samples[_s("l7scope_requests_total", **PAIR)] == 3
        exp.stop()  # nor to stop
        assert _scrape(exp)[0] == samples
        host, port = listener.address
        with pytest.raises(urllib.error.HTTPError) as err:  # "/" stays the listener's
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=10)
        assert err.value.code == 404
    finally:
        listener.stop()
