"""Prometheus exporter: scrape over HTTP, parse with prometheus_client's parsers (text 0.0.4 and
OpenMetrics), check exact samples, names, labels, HELP and the series bound."""
from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from l7scope.export import otlp
from l7scope.export.prometheus import (
    SECONDS_BOUNDS,
    PrometheusExporter,
    agent_family,
    parse_listen_address,
)
from l7scope.outputs.http import Request
from tests.export import make_exchange, make_pair_metrics, tcp_record, wait_for

SERVER = "http_server_request_duration_seconds"
CLIENT = "http_client_request_duration_seconds"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def parse_exposition(text: str, openmetrics: bool = False) -> tuple[dict, dict]:
    """(samples {(name, frozenset(labels)): value}, types {family: type}) by the library's
    parser; a duplicate series fails the test."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    samples, types = {}, {}
    for family in parse(text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
    return samples, types


def families_of(text: str, openmetrics: bool = False) -> dict:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {f.name: f for f in parse(text)}


@pytest.fixture
def exporter():
    exp = PrometheusExporter("127.0.0.1:0")
    exp.start()
    yield exp
    exp.stop()


def _scrape(exp, accept: str | None = None) -> tuple[dict, dict, str]:
    host, port = exp.address
    req = urllib.request.Request(f"http://{host}:{port}/metrics",
                                 headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        ctype = resp.headers["Content-Type"]
        text = resp.read().decode("utf-8")
    samples, types = parse_exposition(text, openmetrics=ctype.startswith(
        "application/openmetrics-text"))
    return samples, types, ctype


def _text(exp, accept: str | None = None) -> str:
    status, _ctype, body = exp.handle(Request("GET", "/metrics", "", "HTTP/1.1",
                                              (("accept", accept),) if accept else ()))
    assert status == 200
    return body.decode("utf-8")


def _s(name, **labels):
    return name, frozenset(labels.items())


def _series(samples: dict, name: str) -> dict:
    """{frozenset(labels): value} of one sample name."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def grpc_call(grpc_status: int, **kw):
    return make_exchange(protocol="grpc", path="/helloworld.Greeter/SayHello",
                         grpc_status=grpc_status, trace=None, comm="greeter", pid=300,
                         **kw)._replace(method="POST")


GRPC = dict(client="10.1.0.3", server="greeter", http_request_method="POST",
            http_response_status_code="200", network_protocol_name="http",
            network_protocol_version="2", rpc_system="grpc", rpc_service="helloworld.Greeter",
            rpc_method="SayHello")


@pytest.mark.parametrize("accept", [None, OPENMETRICS])
def test_grpc_ok_and_not_found_are_two_series_and_ten_errors(accept):
    exp = PrometheusExporter("127.0.0.1:0")
    for _ in range(10):
        exp.observe(grpc_call(0))
        exp.observe(grpc_call(5))
    samples, types = parse_exposition(_text(exp, accept), openmetrics=accept is not None)
    assert _series(samples, "l7scope_requests_total") == {
        frozenset({**GRPC, "rpc_grpc_status_code": "0"}.items()): 10,
        frozenset({**GRPC, "rpc_grpc_status_code": "5", "error_type": "NOT_FOUND"}.items()): 10}
    assert _series(samples, "l7scope_exchange_errors_total") == {
        frozenset({**GRPC, "rpc_grpc_status_code": "5", "error_type": "NOT_FOUND"}.items()): 10}
    assert samples[_s(SERVER + "_count", **GRPC, rpc_grpc_status_code="0")] == 10
    assert samples[_s(SERVER + "_count", **GRPC, rpc_grpc_status_code="5",
                      error_type="NOT_FOUND")] == 10
    assert _series(samples, CLIENT + "_count") == {}
    assert types["l7scope_requests"] == types["l7scope_exchange_errors"] == "counter"
    assert types[SERVER] == types[CLIENT] == "histogram"


def test_200_short_lived_curl_clients_add_no_series_per_client():
    exp = PrometheusExporter("127.0.0.1:0")
    for i in range(200):
        pid = 20_000 + i  # a new curl process each time, both ends traced
        client = make_exchange(side="client", comm="curl", pid=pid, peer_pid=80,
                               trace=None)._replace(peer_name="nginx", local="10.1.0.3:51234",
                                                    remote="10.1.0.2:8080")
        server = make_exchange(side="server", comm="nginx", pid=80, peer_pid=pid,
                               trace=None)._replace(peer_name="curl")
        exp.observe(client)
        exp.observe(server)
    samples, _ = parse_exposition(_text(exp))
    pair = dict(client="curl", server="nginx", http_request_method="GET",
                http_response_status_code="200", network_protocol_name="http",
                network_protocol_version="1.1")
    assert _series(samples, "l7scope_requests_total") == {frozenset(pair.items()): 200}
    assert _series(samples, SERVER + "_count") == {frozenset(pair.items()): 200}
    assert _series(samples, CLIENT + "_count") == {frozenset(pair.items()): 200}
    assert exp.stats()["series"] == 3
    assert {v for _, labels in samples for k, v in labels if k in ("client", "server")} == {
        "curl", "nginx"}


def test_durations_in_seconds_with_the_conventions_buckets():
    exp = PrometheusExporter("127.0.0.1:0")
    for ms in (3, 8, 300, 20_000):
        exp.observe(make_exchange(duration_ms=ms, trace=None))
    samples, _ = parse_exposition(_text(exp))
    labels = dict(client="10.1.0.3", server="api", http_request_method="GET",
                  http_response_status_code="200", network_protocol_name="http",
                  network_protocol_version="1.1")
    buckets = {dict(k)["le"]: v for k, v in _series(samples, SERVER + "_bucket").items()}
    assert buckets == {"0.005": 1, "0.01": 2, "0.025": 2, "0.05": 2, "0.075": 2, "0.1": 2,
                       "0.25": 2, "0.5": 3, "0.75": 3, "1.0": 3, "2.5": 3, "5.0": 3, "7.5": 3,
                       "10.0": 3, "+Inf": 4}
    assert samples[_s(SERVER + "_sum", **labels)] == pytest.approx(20.311)
    assert samples[_s(SERVER + "_count", **labels)] == 4
    assert SECONDS_BOUNDS == otlp.SECONDS_BOUNDS  # one set of boundaries for both exporters


def test_http_errors_by_side_and_cause():
    exp = PrometheusExporter("127.0.0.1:0")
    base = dict(trace=None, comm="app", pid=7)
    exp.observe(make_exchange(side="client", status=404, **base))  # server not traced
    exp.observe(make_exchange(side="server", status=503, **base))
    exp.observe(make_exchange(side="server", status=None, **base)._replace(response=None))
    exp.observe(make_exchange(side="server", **base)._replace(method="BREW"))
    samples, _ = parse_exposition(_text(exp))
    common = dict(network_protocol_name="http", network_protocol_version="1.1")
    client = dict(client="app", server="10.1.0.3:51234", http_request_method="GET",
                  http_response_status_code="404", **common)
    server = dict(client="10.1.0.3", server="app", **common)
    # a client histogram counts its 4xx as a failure (the conventions); the counters do not
    assert samples[_s(CLIENT + "_count", **client, error_type="404")] == 1
    assert samples[_s("l7scope_requests_total", **client)] == 1
    assert _series(samples, "l7scope_exchange_errors_total") == {
        frozenset({**server, "http_request_method": "GET", "http_response_status_code": "503",
                   "error_type": "503"}.items()): 1,
        frozenset({**server, "http_request_method": "GET", "error_type": "incomplete",
                   "network_protocol_version": "1.1"}.items()): 1}
    assert samples[_s("l7scope_requests_total", **server, http_request_method="_OTHER",
                      http_response_status_code="200")] == 1


def test_capture_records_count_as_server_records_and_names_can_be_services():
    exp = PrometheusExporter("127.0.0.1:0", service_name=lambda comm, pid: f"svc-{comm}")
    exp.observe(make_exchange(side=None, pid=None, comm=None, trace=None))  # a packet capture
    exp.observe(make_exchange(side="server", comm="api", trace=None))
    samples, _ = parse_exposition(_text(exp))
    common = dict(http_request_method="GET", http_response_status_code="200",
                  network_protocol_name="http", network_protocol_version="1.1")
    assert _series(samples, SERVER + "_count") == {
        frozenset(dict(common, client="10.1.0.2", server="10.1.0.3:51234").items()): 1,
        frozenset(dict(common, client="10.1.0.3", server="svc-api").items()): 1}
    assert _series(samples, CLIENT + "_count") == {}
    assert sum(_series(samples, "l7scope_requests_total").values()) == 2


def test_every_family_has_help_and_agent_counters_their_type():
    exp = PrometheusExporter("127.0.0.1:0")
    exp.observe(make_exchange(trace=None))
    exp.set_agent_counters({
        "exchanges": 1, "ringbuf_full": 2, "parse_error_framing_lost": 3,
        "http2_dropped_streams": 4, "ui_open": 5, "prometheus_http_peak_open": 6,
        "otlp_metrics_pending": 7, "some_new_counter": 8, "internal_error_reasons": ["x"],
        "store_bytes": 9})
    for openmetrics in (False, True):
        fams = families_of(_text(exp, OPENMETRICS if openmetrics else None), openmetrics)
        for name, fam in fams.items():
            assert fam.documentation and fam.documentation != "l7scope agent counter.", name
        kinds = {n: f.type for n, f in fams.items() if n.startswith("l7scope_agent_")}
        assert kinds == {
            "l7scope_agent_exchanges": "counter", "l7scope_agent_ringbuf_full": "counter",
            "l7scope_agent_parse_error_framing_lost": "counter",
            "l7scope_agent_http2_dropped_streams": "counter",
            "l7scope_agent_ui_open": "gauge", "l7scope_agent_prometheus_http_peak_open": "gauge",
            "l7scope_agent_otlp_metrics_pending": "gauge",
            "l7scope_agent_some_new_counter": "counter", "l7scope_agent_store_bytes": "gauge"}
        values = {n: f.samples[0].value for n, f in fams.items() if n in kinds}
        assert values["l7scope_agent_ringbuf_full"] == 2 and values["l7scope_agent_ui_open"] == 5
        doc = {n: f.documentation for n, f in fams.items()}
        assert doc["l7scope_agent_ringbuf_full"].startswith("Dropped in the kernel")
        assert "(not a drop)" in doc["l7scope_agent_parse_error_framing_lost"]
        assert doc["l7scope_agent_http2_dropped_streams"].startswith("Dropped by the http2")
        assert doc["l7scope_agent_some_new_counter"] == (
            "Agent counter some_new_counter (some new counter); no description in this version.")
    exp.set_agent_counters({"exchanges": 5})
    samples, _ = parse_exposition(_text(exp))
    assert samples[_s("l7scope_agent_exchanges_total")] == 5
    assert _s("l7scope_agent_ringbuf_full_total") not in samples


def test_series_are_bounded_and_the_overflow_counted():
    exp = PrometheusExporter("127.0.0.1:0", max_series=4)
    for i in range(10):  # each a new client: one histogram and one counter series
        exp.observe(make_exchange(trace=None)._replace(remote=f"10.9.0.{i}:40000"))
    samples, _ = parse_exposition(_text(exp))
    assert {dict(k).get("client") for k in _series(samples, "l7scope_requests_total")} == {
        "10.9.0.0", "10.9.0.1", None}
    assert samples[_s("l7scope_requests_total", otel_metric_overflow="true")] == 8
    assert samples[_s(SERVER + "_count", otel_metric_overflow="true")] == 8
    assert samples[_s(SERVER + "_bucket", otel_metric_overflow="true", le="+Inf")] == 8
    assert exp.stats()["series"] == 4 + 2
    assert exp.stats()["series_overflow_exchanges"] == 8


def test_content_type_follows_accept(exporter):
    exporter.observe(make_exchange(trace=None))
    samples, _, ctype = _scrape(exporter)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    om_samples, _, om_ctype = _scrape(exporter, OPENMETRICS)
    assert om_ctype.startswith("application/openmetrics-text; version=1.0.0")
    assert om_samples == samples
    assert _text(exporter, OPENMETRICS).endswith("# EOF\n")


def test_odd_names_survive_the_exposition():
    exp = PrometheusExporter("127.0.0.1:0")
    exp.observe(make_exchange(comm='we"ird\\pro\ncess', trace=None))
    samples, _ = parse_exposition(_text(exp))
    assert [dict(k)["server"] for k in _series(samples, "l7scope_requests_total")] == [
        'we"ird\\pro\ncess']


def test_pair_metrics_are_shown_until_exchanges_are_observed():
    exp = PrometheusExporter("127.0.0.1:0")
    exp.update([make_pair_metrics(), make_pair_metrics()])
    samples, _ = parse_exposition(_text(exp))
    pair = dict(client="curl", server="nginx", network_protocol_name="http")
    assert samples[_s("l7scope_requests_total", http_response_status_code="200", **pair)] == 4
    assert samples[_s("l7scope_requests_total", http_response_status_code="503", **pair)] == 2
    assert samples[_s("l7scope_exchange_errors_total", error_type="_OTHER", **pair)] == 2
    assert samples[_s(SERVER + "_bucket", le="0.0005", **pair)] == 2
    assert samples[_s(SERVER + "_count", **pair)] == 6
    exp.observe(make_exchange(trace=None))
    samples, _ = parse_exposition(_text(exp))
    assert {dict(k)["client"] for k in _series(samples, "l7scope_requests_total")} == {
        "10.1.0.3"}


def test_unknown_path_is_404(exporter):
    host, port = exporter.address
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{host}:{port}/other", timeout=10)
    assert err.value.code == 404


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
    exporter.observe(make_exchange(trace=None))
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
    exporter.observe(make_exchange(trace=None))
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
    assert sum(_series(samples, "l7scope_requests_total").values()) == 1


def test_served_from_a_shared_listener():
    from l7scope.outputs.http import HttpListener

    listener = HttpListener("127.0.0.1:0")
    listener.add_route("GET", "/api", lambda r: (200, "application/json", b"{}"))
    exp = PrometheusExporter("127.0.0.1:0", listener=listener)
    exp.observe(make_exchange(trace=None))
    listener.start()
    try:
        exp.start()  # the listener is not its own: nothing to start
        samples, _, ctype = _scrape(exp)
        assert ctype == "text/plain; version=0.0.4; charset=utf-8"
        assert sum(_series(samples, "l7scope_requests_total").values()) == 1
        exp.stop()  # nor to stop
        assert _scrape(exp)[0] == samples
        host, port = listener.address
        with pytest.raises(urllib.error.HTTPError) as err:  # "/" stays the listener's
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=10)
        assert err.value.code == 404
    finally:
        listener.stop()


def test_every_counter_name_the_code_declares_has_its_own_help():
    """Names from the modules' declared counter tuples: each needs a row in AGENT_HELP (a new
    name falls back to a generic HELP text; this test says which ones to describe)."""
    from l7scope.capture.wire import STATS
    from l7scope.conn.stream import TOTALS
    from l7scope.outputs.http import _COUNTERS as LISTENER
    from l7scope.procs.table import COUNTER_NAMES as PROCS
    from l7scope.protocols.http1_message import READER_COUNTERS
    from l7scope.protocols.http2 import COUNTER_NAMES as HTTP2

    names = [*STATS, "malformed_records", *TOTALS, *PROCS, *READER_COUNTERS,
             *(f"http2_{n}" for n in HTTP2), *(f"ui_{n}" for n in (*LISTENER, "open")),
             *(f"prometheus_http_{n}" for n in (*LISTENER, "peak_open")),
             "connections_evicted", "connections_expired", "bytes_before_detection",
             "connections_other", "connections_shed_memory", "bytes_shed_memory", "exchanges",
             "exchanges_without_messages", "prometheus_series",
             "prometheus_series_overflow_exchanges"]
    generic = [n for n in names if "no description" in agent_family(n)[2]]
    assert generic == []




def test_tcp_metrics_accumulate_over_intervals_by_pair(exporter):
    exporter.tcp_metrics([tcp_record(
        connects=3, accepts=3, connect_failures=1, connect_failures_by_reason={"refused": 1},
        connect_ms={"bounds": [0.5, 1.0, 2.5], "counts": [2, 1, 0, 0], "sum": 1.5, "count": 3},
        bytes_sent=100, bytes_received=2000,
        rtt_us={"bounds": [50, 100, 250], "counts": [0, 1, 1, 0], "sum": 280.0, "count": 2},
        retransmits=4, resets_received=1, drops={"NETFILTER_DROP": 2})])
    exporter.tcp_metrics([
        tcp_record(connects=1, bytes_sent=50, bytes_received=7, retransmits=1,
                    connect_failures=2, connect_failures_by_reason={"refused": 1,
                                                                    "timed_out": 1},
                    rtt_us={"bounds": [50, 100, 250], "counts": [0, 0, 0, 1], "sum": 300.0,
                            "count": 1},
                    resets_sent=2, drops={"NETFILTER_DROP": 1, "TCP_OFO_DROP": 3}),
        tcp_record(client="10.0.0.9", server="nginx", accepts=5, bytes_received=11)])
    samples, types, _ = _scrape(exporter)
    pair = {"client": "curl", "server": "nginx"}

    def value(name, **labels):
        return samples[(name, frozenset({**pair, **labels}.items()))]

    assert value("l7scope_tcp_connects_total") == 4
    assert value("l7scope_tcp_accepts_total") == 3
    assert value("l7scope_tcp_connect_failures_total", reason="refused") == 2
    assert value("l7scope_tcp_connect_failures_total", reason="timed_out") == 1
    assert value("l7scope_tcp_sent_bytes_total") == 150
    assert value("l7scope_tcp_received_bytes_total") == 2007
    assert value("l7scope_tcp_retransmits_total") == 5
    assert value("l7scope_tcp_resets_sent_total") == 2
    assert value("l7scope_tcp_resets_received_total") == 1
    assert value("l7scope_tcp_drops_total", reason="NETFILTER_DROP") == 3
    assert value("l7scope_tcp_drops_total", reason="TCP_OFO_DROP") == 3
    assert samples[("l7scope_tcp_accepts_total",
                    frozenset({"client": "10.0.0.9", "server": "nginx"}.items()))] == 5
    # histograms in seconds, cumulative buckets
    assert [value("l7scope_tcp_connect_duration_seconds_bucket", le=le)
            for le in ("0.0005", "0.001", "0.0025", "+Inf")] == [2, 3, 3, 3]
    assert value("l7scope_tcp_connect_duration_seconds_count") == 3
    assert value("l7scope_tcp_connect_duration_seconds_sum") == pytest.approx(0.0015)
    assert [value("l7scope_tcp_rtt_seconds_bucket", le=le)
            for le in ("5e-05", "0.0001", "0.00025", "+Inf")] == [0, 1, 2, 3]
    assert value("l7scope_tcp_rtt_seconds_count") == 3
    assert value("l7scope_tcp_rtt_seconds_sum") == pytest.approx(580e-6)
    assert types["l7scope_tcp_rtt_seconds"] == "histogram"
    assert types["l7scope_tcp_retransmits"] == "counter"
    # a pair without failures has no failure series (counters start at their first count)
    assert not any(n == "l7scope_tcp_connect_failures_total" and ("client", "10.0.0.9") in ls
                   for n, ls in samples)
    text = exporter.render()[1].decode()
    assert "# HELP l7scope_tcp_rtt_seconds The kernel's smoothed TCP RTT" in text


def test_tcp_metrics_series_are_bounded_and_the_overflow_counted():
    exp = PrometheusExporter("127.0.0.1:0", max_series=2)
    exp.tcp_metrics([tcp_record(client=f"c{i}", connects=1, retransmits=1) for i in range(4)])
    samples, _ = parse_exposition(exp.render()[1].decode())
    overflow = frozenset({"otel_metric_overflow": "true"}.items())
    assert samples[("l7scope_tcp_connects_total",
                    frozenset({"client": "c0", "server": "nginx"}.items()))] == 1
    assert samples[("l7scope_tcp_connects_total", overflow)] == 3
    assert samples[("l7scope_tcp_retransmits_total",
                    frozenset({"client": "c0", "server": "nginx"}.items()))] == 1
    assert samples[("l7scope_tcp_retransmits_total", overflow)] == 3
    assert exp.stats()["tcp_series_overflow_records"] == 3  # c1, c2 and c3's records
    assert exp.stats()["series"] == 4
