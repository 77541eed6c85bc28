"""Trace context, sampling rules and exporters end to end: the real agent, instrumented apps
(OpenTelemetry SDK, SkyWalking Python agent), and Zipkin/OTLP/SkyWalking/Prometheus receivers
running in this test process on 127.0.0.1."""
from __future__ import annotations

import calendar
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from skywalking.protocol.language_agent.Tracing_pb2 import SpanAttachedEvent

from tests.export import HttpReceiver, SkyWalkingCollector, skywalking_collector
from tests.export.test_prometheus import parse_exposition
from tests.kernel.conftest import APPS, _spawn, _stop, curl, free_port

pytestmark = pytest.mark.kernel

REQUEST_EVENT, RESPONSE_EVENT = "HTTP Request Sampling", "HTTP Response Sampling"
ANNOTATIONS = [f"Start {REQUEST_EVENT}", f"Finished {REQUEST_EVENT}",
               f"Start {RESPONSE_EVENT}", f"Finished {RESPONSE_EVENT}"]
REASON = {"/slow?ms=700": "slow", "/status/500": "5xx"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"  # of the requests the tests send with curl


# --- receivers ---------------------------------------------------------------------------

@pytest.fixture
def zipkin():
    r = HttpReceiver(status=202)
    yield r
    r.close()


@pytest.fixture
def otlp():
    r = HttpReceiver(status=200)
    yield r
    r.close()


@pytest.fixture
def oap():
    with skywalking_collector() as (collector, address):
        yield collector, address


# Other processes on the host are traced too: what a test checks is what carries its trace ids.

def zipkin_spans(r: HttpReceiver, trace_ids: set[str]) -> list[dict]:
    return [s for path, _, body in list(r.posts) if path == "/api/v2/spans"
            for s in json.loads(body) if s["traceId"] in trace_ids]


def otlp_spans(r: HttpReceiver, trace_ids: set[str]) -> list[tuple[dict, trace_pb2.Span]]:
    """(resource attributes, span) of the spans received on /v1/traces."""
    out = []
    for path, _, body in list(r.posts):
        if path != "/v1/traces":
            continue
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            attrs = attributes(rs.resource.attributes)
            out += [(attrs, s) for ss in rs.scope_spans for s in ss.spans
                    if s.trace_id.hex() in trace_ids]
    return out


def attributes(kvs) -> dict:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs}


def attached_events(collector: SkyWalkingCollector, trace_ids: set[str]) -> list[SpanAttachedEvent]:
    return [e for stream in list(collector.streams) for e in stream
            if e.traceContext.traceId in trace_ids]


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# --- helpers -----------------------------------------------------------------------------

def write_config(tmp_path: Path, text: str, name: str = "l7scope.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_app(script: str, *args: str) -> tuple[int, list[dict]]:
    """Runs an app from tests/kernel/apps; (its pid, the JSON it printed)."""
    proc = subprocess.Popen([sys.executable, str(APPS / script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return proc.pid, json.loads(out)


def wall_us(rfc3339: str) -> int:
    """Microseconds since the epoch of a record's "time" field."""
    t = datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(t.timetuple()) * 1_000_000 + t.microsecond


def instant_ns(instant) -> int:
    return instant.seconds * 1_000_000_000 + instant.nanos


def metric_kind(a, kind: str) -> list[dict]:
    return [m for m in a.metric_records() if m["kind"] == kind]


def why(a, recs: list[dict]) -> str:
    """Failure context: what was recorded, and the agent's non-zero loss counters."""
    counters = (metric_kind(a, "agent_counters") or [{}])[-1]
    lost = {k: v for k, v in counters.items() if v and any(
        w in k for w in ("full", "drop", "lost", "evicted", "fault", "malformed", "parse_error"))}
    seen = [(r["side"], r["path"], r["status"], r["partial"], r["notes"]) for r in recs]
    return f"records {seen}; agent losses {lost}"


def trace_of(call: dict, provider: str) -> dict:
    return {"provider": provider, "trace_id": call["trace_id"], "span_id": call["span_id"],
            "parent_span_id": None, "sampled": True, "segment_id": call.get("segment_id")}


# --- 1. OpenTelemetry app: W3C, B3 single, B3 multi -> Zipkin and OTLP --------------------

def check_zipkin_span(s: dict, call: dict, rec: dict) -> None:
    """One Zipkin span against the app's call and the agent's record of it at that side."""
    assert "parentId" not in s and s["name"] == "GET"  # OpenTelemetry: the method
    assert s.get("shared", False) is (s["kind"] == "SERVER")
    assert [an["value"] for an in s["annotations"]] == ANNOTATIONS
    assert s["timestamp"] == wall_us(rec["time"])
    assert s["duration"] == rec["duration_ns"] // 1000
    stamps = [an["timestamp"] for an in s["annotations"]]
    assert stamps == sorted(stamps) and stamps[0] == s["timestamp"]
    assert stamps[3] - s["timestamp"] in (s["duration"], s["duration"] + 1)  # us rounding
    tags = s["tags"]
    assert (tags["l7scope.sampling_reason"], tags["http.path"], tags["http.status_code"],
            tags["process.pid"]) == (REASON[call["path"]], call["path"], str(call["status"]),
                                     str(rec["pid"]))


def check_otlp_span(resource: dict, sp: trace_pb2.Span, call: dict, rec: dict) -> None:
    assert resource == {"service.name": rec["comm"], "process.pid": rec["pid"]}
    assert [e.name for e in sp.events] == [REQUEST_EVENT, RESPONSE_EVENT]
    assert sp.start_time_unix_nano // 1000 == wall_us(rec["time"])
    assert sp.end_time_unix_nano - sp.start_time_unix_nano == rec["duration_ns"]
    assert sp.events[0].time_unix_nano == sp.start_time_unix_nano
    assert attributes(sp.events[1].attributes)["end_time_unix_nano"] == sp.end_time_unix_nano
    assert sp.parent_span_id == b"" and sp.flags == 1
    error = trace_pb2.Status.STATUS_CODE_ERROR if call["status"] == 500 else 0
    assert sp.status.code == error
    attrs = attributes(sp.attributes)
    assert (attrs["url.path"], attrs["l7scope.sampling_reason"]) == (
        call["path"].split("?")[0], REASON[call["path"]])


def otlp_server_calls(r: HttpReceiver, server: str, port: int) -> int:
    """Calls counted by the http.server.request.duration points of the calls to ``server``
    (its service name) on ``port``. CUMULATIVE points repeat the totals so far, and one post
    may carry several intervals' points of a series: per series the latest point counts. DELTA
    points (the fallback before exchanges feed the histograms) are summed."""
    delta, latest = 0, {}
    for path, _, body in list(r.posts):
        if path != "/v1/metrics":
            continue
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics:
            for m in rm.scope_metrics[0].metrics:
                if m.name != "http.server.request.duration":
                    continue
                assert m.unit == "s"
                for p in m.histogram.data_points:
                    attrs = attributes(p.attributes)
                    if not _ours(attrs, server, port):
                        continue
                    if m.histogram.aggregation_temporality == 1:  # DELTA
                        delta += p.count
                        continue
                    key = tuple(sorted(attrs.items()))
                    if key not in latest or p.time_unix_nano >= latest[key][0]:
                        latest[key] = (p.time_unix_nano, p.count)
    return sum(count for _, count in latest.values()) if latest else delta


def _ours(attrs: dict, server: str, port: int) -> bool:
    """The points of the calls to ``server`` (its service name) on ``port``; never a pid."""
    assert not [k for k in attrs if "pid" in k]
    return attrs["l7scope.server"] == server and attrs.get("server.port") == port


def test_otel_app_slow_and_failing_calls_exported_with_the_apps_ids(
        agent, python_server, tmp_path, zipkin, otlp):
    port, server_pid = python_server
    cfg = write_config(tmp_path, f"""
sampling:
  rules:
    - min_duration_ms: 500
      when_5xx: true
exporters:
  zipkin: {{url: "http://127.0.0.1:{zipkin.port}/api/v2/spans"}}
  otlp: {{endpoint: "http://127.0.0.1:{otlp.port}"}}
""")
    a = agent("--config", str(cfg), "--metrics-interval", "1")
    app_pid, calls = run_app("traced_otel.py", str(port), "w3c", "b3", "b3multi")
    assert [(c["format"], c["path"], c["status"]) for c in calls] == [
        (f, p, s) for f in ("w3c", "b3", "b3multi")
        for p, s in (("/slow?ms=700", 200), ("/status/500", 500), ("/hello", 200))]
    recs = a.wait_for(lambda r: len(r) >= 18, port)
    assert len(recs) == 18, why(a, recs)
    provider = {"w3c": "w3c", "b3": "zipkin", "b3multi": "zipkin"}
    by_span = {(r["trace"]["span_id"], r["side"]): r for r in recs}
    for call in calls:
        for side, pid in (("client", app_pid), ("server", server_pid)):
            rec = by_span[call["span_id"], side]
            assert (rec["pid"], rec["path"], rec["status"]) == (pid, call["path"], call["status"])
            assert rec["trace"] == trace_of(call, provider[call["format"]])

    ours = {c["trace_id"] for c in calls}
    assert wait_until(lambda: len(zipkin_spans(zipkin, ours)) >= 12
                      and len(otlp_spans(otlp, ours)) >= 12)
    assert a.stop() == 0
    # the slow and the failing calls at both sides; nothing of the /hello calls
    expected = {(c["trace_id"], c["span_id"], kind) for c in calls if c["path"] != "/hello"
                for kind in ("CLIENT", "SERVER")}
    call_of = {c["span_id"]: c for c in calls}
    spans = zipkin_spans(zipkin, ours)
    assert len(spans) == 12
    assert {(s["traceId"], s["id"], s["kind"]) for s in spans} == expected
    for s in spans:
        check_zipkin_span(s, call_of[s["id"]], by_span[s["id"], s["kind"].lower()])
    got = otlp_spans(otlp, ours)
    assert len(got) == 12
    kind = {trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT", trace_pb2.Span.SPAN_KIND_SERVER: "SERVER"}
    assert {(sp.trace_id.hex(), sp.span_id.hex(), kind[sp.kind]) for _, sp in got} == expected
    for resource, sp in got:
        span_id = sp.span_id.hex()
        check_otlp_span(resource, sp, call_of[span_id], by_span[span_id, kind[sp.kind].lower()])
    from l7scope.procs import ProcessTable

    server = ProcessTable().lookup(server_pid).service  # series are named by service
    assert otlp_server_calls(otlp, server, port) == 9


# --- 2. SkyWalking app: sw8 -> SpanAttachedEvents -----------------------------------------

def test_skywalking_app_slow_and_failing_calls_reach_the_oap(agent, python_server, tmp_path, oap):
    port, server_pid = python_server
    collector, address = oap
    cfg = write_config(tmp_path, f"""
sampling:
  rules:
    - min_duration_ms: 500
      when_5xx: true
exporters:
  skywalking: {{address: "{address}"}}
""")
    a = agent("--config", str(cfg), "--metrics-interval", "1")
    app_pid, calls = run_app("traced_skywalking.py", str(port), f"127.0.0.1:{free_port()}")
    assert [(c["path"], c["status"], c["span_id"]) for c in calls] == [
        ("/slow?ms=700", 200, "1"), ("/status/500", 500, "2"), ("/hello", 200, "3")]
    recs = a.wait_for(lambda r: len(r) >= 6, port)
    assert len(recs) == 6, why(a, recs)
    by_call = {(r["path"], r["side"]): r for r in recs}
    for call in calls:
        for side, pid in (("client", app_pid), ("server", server_pid)):
            rec = by_call[call["path"], side]
            assert (rec["pid"], rec["status"]) == (pid, call["status"])
            assert rec["trace"] == trace_of(call, "skywalking")

    ours = {calls[0]["trace_id"]}
    assert wait_until(lambda: len(attached_events(collector, ours)) >= 8)
    assert a.stop() == 0
    assert len(attached_events(collector, ours)) == 8
    events = {}
    for ev in attached_events(collector, ours):
        call = next(c for c in calls if c["span_id"] == ev.traceContext.spanId)
        ref = ev.traceContext
        assert (ref.type, ref.traceId, ref.traceSegmentId) == (
            SpanAttachedEvent.SKYWALKING, call["trace_id"], call["segment_id"])
        tags = {t.key: t.value for t in ev.tags}
        events[call["path"], tags["connection_role"], ev.event] = ev, tags
    assert sorted(events) == sorted((c["path"], side, name) for c in calls[:2]
                                    for side in ("client", "server")
                                    for name in (REQUEST_EVENT, RESPONSE_EVENT))
    for call in calls[:2]:
        for side in ("client", "server"):
            rec = by_call[call["path"], side]
            (req, req_tags), (resp, resp_tags) = (events[call["path"], side, name]
                                                  for name in (REQUEST_EVENT, RESPONSE_EVENT))
            assert instant_ns(req.startTime) // 1000 == wall_us(rec["time"])
            assert instant_ns(resp.endTime) - instant_ns(req.startTime) == rec["duration_ns"]
            assert instant_ns(req.startTime) <= instant_ns(req.endTime) \
                <= instant_ns(resp.startTime) <= instant_ns(resp.endTime)
            assert (req_tags["data_direction"], req_tags["http.method"], req_tags["http.path"],
                    req_tags["sampling_reason"], req_tags["process_id"]) == (
                "request", "GET", call["path"], REASON[call["path"]], str(rec["pid"]))
            assert (resp_tags["data_direction"], resp_tags["http.status_code"]) == (
                "response", str(call["status"]))
            assert {s.key: s.value for s in req.summary} == {
                "data_size": rec["request_bytes"], "body_size": 0}
            assert {s.key: s.value for s in resp.summary}["data_size"] == rec["response_bytes"]


# --- 3. SIGHUP reload of the sampling rules ----------------------------------------------

def b3_call(port: int, path: str, span_id: str) -> None:
    res = curl("-o", "/dev/null", "-H", f"b3: {TRACE_ID}-{span_id}-1",
               f"http://127.0.0.1:{port}{path}")
    assert res.returncode == 0, res.stderr


def wait_stderr(a, text: str) -> str:
    assert wait_until(lambda: any(text in line for line in a.stderr)), "".join(a.stderr)
    return next(line for line in a.stderr if text in line).rstrip("\n")


def next_counters(a, after: int) -> dict:
    """The first agent_counters record written after the first ``after`` ones."""
    assert wait_until(lambda: len(metric_kind(a, "agent_counters")) > after)
    return metric_kind(a, "agent_counters")[after]


HUP_RULES = """
sampling:
  rules:
{rules}
exporters:
  zipkin: {{url: "http://127.0.0.1:{port}/api/v2/spans"}}
"""


def test_sighup_swaps_rules_and_keeps_them_on_a_bad_file(agent, python_server, tmp_path, zipkin):
    port, _ = python_server
    never = '    - {uri_regex: "^/never", min_duration_ms: 0}'
    cfg = write_config(tmp_path, HUP_RULES.format(rules=never, port=zipkin.port))
    a = agent("--config", str(cfg), "--metrics-interval", "1")
    b3_call(port, "/slow?ms=300", "000000000000000a")
    assert len(a.wait_for(lambda r: len(r) >= 2, port)) == 2
    counters = next_counters(a, len(metric_kind(a, "agent_counters")))
    assert counters["sampler_offered"] >= 2 and counters["sampler_kept"] == 0
    assert metric_kind(a, "top_n") == [] and zipkin_spans(zipkin, {TRACE_ID}) == []

    slow = '    - {uri_regex: "/slow", min_duration_ms: 100}'
    write_config(tmp_path, HUP_RULES.format(rules=slow, port=zipkin.port))
    a.proc.send_signal(signal.SIGHUP)
    assert wait_stderr(a, "reloaded") == "l7scope: sampling rules reloaded"
    b3_call(port, "/slow?ms=300", "000000000000000b")
    assert wait_until(lambda: len(zipkin_spans(zipkin, {TRACE_ID})) >= 2)
    assert sorted((s["id"], s["kind"]) for s in zipkin_spans(zipkin, {TRACE_ID})) == [
        ("000000000000000b", "CLIENT"), ("000000000000000b", "SERVER")]
    kept = [x for t in metric_kind(a, "top_n") for x in t["slowest"] + t["status_4xx"]
            + t["status_5xx"] if x["local"].endswith(f":{port}") or x["remote"].endswith(f":{port}")]
    assert sorted((x["side"], x["path"], x["reason"]) for x in kept) == [
        ("client", "/slow?ms=300", "slow"), ("server", "/slow?ms=300", "slow")]

    for bad, field in (
            (slow + "\n" + slow.replace("100", "200"),
             "sampling.rules[1].uri_regex: duplicate of sampling.rules[0].uri_regex"),
            (slow.replace("}", ", settings: {max_request_bytes: -1}}"),
             "sampling.rules[0].settings.max_request_bytes: must be a positive integer")):
        write_config(tmp_path, HUP_RULES.format(rules=bad, port=zipkin.port))
        a.proc.send_signal(signal.SIGHUP)
        assert wait_stderr(a, field) == f"l7scope: config not reloaded: {field}"
    assert a.proc.poll() is None
    assert sum("reloaded" in line and "not" not in line for line in a.stderr) == 1
    b3_call(port, "/slow?ms=300", "000000000000000c")  # the /slow rule still applies
    assert wait_until(lambda: len(zipkin_spans(zipkin, {TRACE_ID})) >= 4)
    b3_call(port, "/never", "000000000000000d")  # 404 in 0 ms: the ^/never rule is gone
    assert a.stop() == 0
    assert sorted((s["id"], s["kind"]) for s in zipkin_spans(zipkin, {TRACE_ID})) == [
        (i, k) for i in ("000000000000000b", "000000000000000c") for k in ("CLIENT", "SERVER")]


# --- 4. invalid config at start ----------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("sampling:\n  rules:\n    - settings: {max_request_bytes: -1}\n",
     "sampling.rules[0].settings.max_request_bytes: must be a positive integer"),
    ("exporters:\n  zipkin: {endpoint: 'http://127.0.0.1:9411'}\n",
     "exporters.zipkin.endpoint: unknown key "
     "(known: batch_size, max_retries, queue_size, timeout_s, url)"),
    ("sampling:\n  rules:\n    - {uri_regex: '^/a', min_duration_ms: '5'}\n",
     "sampling.rules[0].min_duration_ms: must be a number >= 0"),
    ("sampling:\n  rules:\n    - {uri_regex: '^/a'}\n    - {uri_regex: '^/a', when_4xx: false}\n",
     "sampling.rules[1].uri_regex: duplicate of sampling.rules[0].uri_regex"),
    ("sampling:\n  rules:\n    - {uri_regex: '^/a'\n",
     # libyaml ("did not find expected ',' or '}'") and PyYAML's own parser ("expected ',' or
     # '}', but got '<stream end>'") word the cause apart: the line up to the cause is ours
     "{cfg}: not valid YAML: line 4 column 1: ..."),
], ids=["max_request_bytes", "unknown_key", "quoted_number", "duplicate_regex", "yaml_syntax"])
def test_invalid_config_at_start_exits_2_naming_the_field(tmp_path, text, message):
    cfg = write_config(tmp_path, text, "bad.yaml")
    message = message.replace("{cfg}", str(cfg))
    res = subprocess.run([sys.executable, "-m", "l7scope.cli", "run", "--no-summary",
                          "--duration", "1", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (2, "")
    lines = res.stderr.splitlines()
    if message.endswith("..."):
        assert len(lines) == 1 and lines[0].startswith(f"l7scope: config: {message[:-3]}"), lines
        assert "expected ',' or '}'" in lines[0]
    else:
        assert lines == [f"l7scope: config: {message}"]


# --- 5. exporters down and slow never cost an exchange -----------------------------------

def test_exporters_down_and_slow_lose_no_exchange_and_count_failures(
        agent, python_server, tmp_path, otlp):
    port, server_pid = python_server
    otlp.hold.clear()  # every OTLP request hangs until the test ends
    cfg = write_config(tmp_path, f"""
sampling:
  rules:
    - min_duration_ms: 200
exporters:
  zipkin: {{url: "http://127.0.0.1:{free_port()}/api/v2/spans", max_retries: 1, timeout_s: 1}}
  otlp: {{endpoint: "http://127.0.0.1:{otlp.port}", max_retries: 0, timeout_s: 1,
          queue_size: 4, batch_size: 2}}
""")
    # only this test's processes: a load elsewhere on the host must not fill the ring buffer
    a = agent("--config", str(cfg), "--metrics-interval", "1", "--comm", "curl",
              "--comm", Path(f"/proc/{server_pid}/comm").read_text().strip())
    paths = ["/slow?ms=250"] * 8 + ["/status/503"] * 12 + ["/hello"] * 180
    urls = [f"http://127.0.0.1:{port}{p}" for p in paths]
    res = curl("-H", f"traceparent: 00-{TRACE_ID}-00f067aa0ba902b7-01",
               *[x for u in urls for x in ("-o", "/dev/null", u)], timeout=60)
    assert res.returncode == 0, res.stderr

    def failures_counted(c: dict) -> bool:
        return (c["zipkin_dropped_send_failed"] > 0 and c["otlp_traces_send_errors"] > 0
                and c["otlp_traces_dropped_send_failed"] > 0)

    assert wait_until(lambda: any(failures_counted(c) for c in metric_kind(a, "agent_counters"))), {
        k: v for k, v in metric_kind(a, "agent_counters")[-1].items() if "otlp" in k or "zipkin" in k}
    a.proc.send_signal(signal.SIGINT)
    assert a.proc.wait(30) == 0  # exporter stop is bounded by its own timeouts
    recs = a.records(port)
    last = a.stderr[-1]  # the stop line names every drop counter
    for side in ("client", "server"):
        assert [r["path"] for r in recs if r["side"] == side] == paths, last
    assert len(recs) == 400
    final = metric_kind(a, "agent_counters")[-1]
    assert failures_counted(final)
    assert final["zipkin_sent_items"] == final["otlp_traces_sent_items"] == 0
    assert last.startswith(f"l7scope: stopped; {final['exchanges']} exchanges; dropped: ")
    assert f"zipkin_dropped_send_failed={final['zipkin_dropped_send_failed']}" in last


# --- 6. Prometheus endpoint --------------------------------------------------------------

def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return parse_exposition(resp.read().decode("utf-8"))[0]


def sample_of(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_prometheus_counts_the_curl_to_python_pair(agent, python_server, tmp_path):
    port, server_pid = python_server
    listen = free_port()
    # /metrics is a route of the web UI's listener when both are given one address
    a = agent("--metrics-listen", f"127.0.0.1:{listen}", "--ui", f"127.0.0.1:{listen}",
              "--store", str(tmp_path / "store.db"), "--metrics-interval", "1")
    # curl under a name of its own: series are per program name, other tests run curl too
    name = f"pcurl{os.getpid()}"[:15]
    shutil.copy(shutil.which("curl"), tmp_path / name)
    paths = ["/hello"] * 4 + ["/status/404"] * 2 + ["/status/503", "/slow?ms=300"]
    client = subprocess.Popen([str(tmp_path / name), "-sS", *[x for p in paths for x in (
        "-o", "/dev/null", f"http://127.0.0.1:{port}{p}")]], stderr=subprocess.PIPE)
    assert client.wait(30) == 0, client.stderr.read()
    # series are named by service: the Python server's is "python <script>" (docs/processes.md)
    from l7scope.procs import ProcessTable

    server_service = ProcessTable().lookup(server_pid).service
    pair = {"client": name, "server": server_service, "http_request_method": "GET",
            "network_protocol_name": "http", "network_protocol_version": "1.1"}

    def of_pair(samples, family):
        """{status: value} of the pair's series of one sample name."""
        return {dict(labels).get("http_response_status_code"): v
                for (n, labels), v in samples.items() if n == family and pair.items() <= labels}

    def both_sides_in(samples) -> bool:  # each side's histogram is fed by its own records
        return all(sum(of_pair(samples, f).values()) == 8 for f in (
            "l7scope_requests_total", "http_server_request_duration_seconds_count",
            "http_client_request_duration_seconds_count"))

    wait_until(lambda: both_sides_in(scrape(listen)))
    samples = scrape(listen)
    recs = [r for r in a.records(port) if r["side"] == "server"]
    assert len(recs) == 8, ([r["path"] for r in recs], [r["path"] for r in a.records(port)])
    # counted once although both ends are traced; the server's 503 is the one error
    assert of_pair(samples, "l7scope_requests_total") == {"200": 5, "404": 2, "503": 1}
    assert sample_of(samples, "l7scope_exchange_errors_total", http_response_status_code="503",
                     error_type="503", **pair) == 1
    assert sum(of_pair(samples, "l7scope_exchange_errors_total").values()) == 1
    for family in ("http_server_request_duration_seconds", "http_client_request_duration_seconds"):
        assert of_pair(samples, family + "_count") == {"200": 5, "404": 2, "503": 1}, family
    client_404 = dict(pair, http_response_status_code="404", error_type="404")  # client rule
    assert sample_of(samples, "http_client_request_duration_seconds_count", **client_404) == 2
    server = "http_server_request_duration_seconds"
    ok = dict(pair, http_response_status_code="200")
    assert sample_of(samples, server + "_bucket", le="0.25", **ok) == 4  # all but the 300 ms
    assert sample_of(samples, server + "_bucket", le="0.5", **ok) == 5
    assert sample_of(samples, server + "_bucket", le="+Inf", **ok) == 5
    assert sum(of_pair(samples, server + "_sum").values()) == pytest.approx(
        sum(r["duration_ns"] for r in recs) / 1e9, rel=1e-9)
    assert not [labels for _, labels in samples if f"({server_pid})" in str(labels)]


# --- 7. redaction end to end -------------------------------------------------------------

SECRETS = {"authorization": "bearer-Xk3", "cookie": "cookie-Yp7",
           "x-internal-token": "internal-Wm2", "password": "pw-Qr5", "token": "tok-Lz9",
           "set-cookie": "srv-session-Zq81"}


@pytest.fixture
def error_server():
    port = free_port()
    proc = _spawn([sys.executable, str(APPS / "traced_error_server.py"), str(port)], port)
    yield port, proc.pid
    _stop(proc)


def test_secrets_redacted_in_every_export_and_in_the_records(
        agent, error_server, tmp_path, zipkin, otlp, oap):
    port, server_pid = error_server
    collector, address = oap
    cfg = write_config(tmp_path, f"""
exporters:
  zipkin: {{url: "http://127.0.0.1:{zipkin.port}/api/v2/spans"}}
  otlp: {{endpoint: "http://127.0.0.1:{otlp.port}"}}
  skywalking: {{address: "{address}"}}
redact:
  headers: [X-Internal-Token]
  json_fields: [password, token]
metrics_interval_s: 1
""")
    a = agent("--config", str(cfg), "--with-headers")
    body = json.dumps({"user": "ann", "password": SECRETS["password"],
                       "profile": {"token": SECRETS["token"], "theme": "dark"}})
    res = curl("-o", "/dev/null", "-X", "POST", "--data-binary", body,
               "-H", "Content-Type: application/json",
               "-H", f"Authorization: Bearer {SECRETS['authorization']}",
               "-H", f"Cookie: sid={SECRETS['cookie']}",
               "-H", f"X-Internal-Token: {SECRETS['x-internal-token']}",
               "-H", f"b3: {TRACE_ID}-00000000000000e1-1", f"http://127.0.0.1:{port}/login")
    assert res.returncode == 0, res.stderr
    recs = a.wait_for(lambda r: len(r) >= 2, port)
    assert sorted(r["side"] for r in recs) == ["client", "server"]
    ours = {TRACE_ID}
    assert wait_until(lambda: len(zipkin_spans(zipkin, ours)) >= 2
                      and len(otlp_spans(otlp, ours)) >= 2
                      and len(attached_events(collector, ours)) >= 4)
    assert a.stop() == 0

    redacted = json.dumps({"user": "ann", "password": "[REDACTED]",  # the body's own formatting
                           "profile": {"token": "[REDACTED]", "theme": "dark"}})
    for rec in a.records(port):
        request_headers = {k.lower(): v for k, v in rec["request_headers"]}
        assert {k: request_headers[k] for k in ("authorization", "cookie", "x-internal-token")} \
            == dict.fromkeys(("authorization", "cookie", "x-internal-token"), "[REDACTED]")
        assert request_headers["content-type"] == "application/json"
        assert dict((k.lower(), v) for k, v in rec["response_headers"])["set-cookie"] == "[REDACTED]"
        assert rec["status"] == 500 and rec["trace"]["span_id"] == "00000000000000e1"
    spans = zipkin_spans(zipkin, ours)
    assert sorted(s["kind"] for s in spans) == ["CLIENT", "SERVER"]
    for s in spans:
        assert s["tags"]["request.data_content"] == redacted
        assert s["tags"]["response.data_content"] == redacted
    for _, sp in otlp_spans(otlp, ours):
        assert [attributes(e.attributes)["data_content"] for e in sp.events] == [redacted] * 2
    events = attached_events(collector, ours)
    assert len(events) == 4
    assert all(ev.traceContext.type == SpanAttachedEvent.ZIPKIN for ev in events)
    assert [{t.key: t.value for t in ev.tags}["data_content"] for ev in events] == [redacted] * 4
    # nothing anywhere carries a secret value
    outputs = {"zipkin": b"".join(b for _, _, b in zipkin.posts),
               "otlp": b"".join(b for _, _, b in otlp.posts),
               "skywalking": b"".join(ev.SerializeToString() for ev in events),
               "records": a.out.read_bytes(), "metrics": a.metrics.read_bytes()}
    for name, data in outputs.items():
        leaked = [v for v in SECRETS.values() if v.encode() in data]
        assert leaked == [], name
    assert all(b"[REDACTED]" in outputs[n] for n in ("zipkin", "otlp", "skywalking", "records"))


def test_final_counters_include_what_the_stop_flush_sent(agent, python_server, tmp_path, zipkin):
    """At stop the agent exports the last interval's samples and drains its exporters; the
    final agent_counters record must count that work (sent, or dropped at stop)."""
    port, _ = python_server
    cfg = write_config(tmp_path, f"""
exporters:
  zipkin: {{url: "http://127.0.0.1:{zipkin.port}/api/v2/spans"}}
""")
    a = agent("--config", str(cfg), "--metrics-interval", "60")
    b3_call(port, "/slow?ms=600", "00000000000000f1")
    assert len(a.wait_for(lambda r: len(r) >= 2, port)) == 2
    assert a.stop() == 0
    assert [s["id"] for s in zipkin_spans(zipkin, {TRACE_ID})] == ["00000000000000f1"] * 2
    final = metric_kind(a, "agent_counters")[-1]
    assert (final["zipkin_queued"], final["zipkin_sent_items"], final["zipkin_pending"]) == (2, 2, 0)
