"""Secrets stay in: planted credentials reach no output with the default redaction config.

A capture file carries exchanges that all get sampled (every response is a 5xx) and carry a B3
context, so each one reaches every output: JSON Lines (with and without --with-headers), the
top_n records of --metrics-output, Zipkin JSON, OTLP protobuf (spans, span events, metrics),
SkyWalking span-attached events, the live summary and stderr. Every secret contains "SEKRIT";
each payload is scanned as the bytes that left the agent.
"""
from __future__ import annotations

import io
import json
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from l7scope import cli
from l7scope.pipeline import Pipeline
from l7scope.sources import capture_file_events
from l7scope.summary import LiveSummary
from tests.capture.test_pcap_reader import eth, write_pcap
from tests.conn.h2_peers import H2Peers, get
from tests.export import HttpReceiver, skywalking_collector

PLANT = b"SEKRIT"
CLIENT, SERVER = "10.0.0.1", "10.0.0.2"
B3 = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"


def _http1(method: str, target: str, headers: list[str], body: bytes = b"",
           resp_headers: tuple[str, ...] = (), resp_body: bytes = b"failed") -> list:
    head = [f"{method} {target} HTTP/1.1", "Host: api.test", f"b3: {B3}", *headers]
    if body:
        head.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    response = ("\r\n".join(["HTTP/1.1 500 Internal Server Error", *resp_headers,
                             f"Content-Length: {len(resp_body)}"]) + "\r\n\r\n").encode()
    return [(True, request), (False, response + resp_body)]


def _http2() -> list:
    peers = H2Peers()
    peers.start()
    sid = peers.request(get("/v2/items?access_token=SEKRIT12&page=1") + [
        ("b3", B3), ("authorization", "Bearer SEKRIT13"), ("content-type", "application/json")],
        b'{"refresh_token": "SEKRIT14"}')
    peers.respond(sid, [(":status", "503"), ("content-type", "application/json")],
                  b'{"client_secret": "SEKRIT15"}')
    return peers.writes


CONVERSATIONS = [
    _http1("GET", "/login?token=SEKRIT1&x=1",
           ["Authorization: Bearer SEKRIT4", "Cookie: sid=SEKRIT5"]),
    _http1("GET", "/v1/items?API_KEY=SEKRIT6&page=2", ["Referer: https://a.test/?code=SEKRIT7"],
           resp_headers=("Set-Cookie: session=SEKRIT8", "Location: /cb#access_token=SEKRIT9")),
    _http1("POST", "/api/login", ["Content-Type: application/json"],
           b'{"user": "ann", "password": "SEKRIT2"}',
           ("Content-Type: application/json",), b'{"access_token": "SEKRIT10", "ok": false}'),
    _http1("POST", "/form", [], b"user=ann&password=SEKRIT3"),
    _http1("POST", "/text", ["Content-Type: text/plain"], b'{"Pass\\u0077ord": "SEKRIT11", "a": 1'),
    _http2(),
]


def _frames() -> list[bytes]:
    frames = []
    for i, writes in enumerate(CONVERSATIONS):
        port, seq = 40000 + i, {True: 1000, False: 9000}
        frames += [eth(IP(src=CLIENT, dst=SERVER) / TCP(sport=port, dport=80, seq=999, flags="S")),
                   eth(IP(src=SERVER, dst=CLIENT) /
                       TCP(sport=80, dport=port, seq=8999, ack=1000, flags="SA"))]
        for from_client, data in writes:
            src, dst, sport, dport = ((CLIENT, SERVER, port, 80) if from_client
                                      else (SERVER, CLIENT, 80, port))
            frames.append(eth(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport,
                                                         seq=seq[from_client], flags="PA")
                              / Raw(data)))
            seq[from_client] += len(data)
    return frames


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "secrets.pcap"
    path.write_bytes(write_pcap(_frames(), nanos=True))
    return path


def _run(tmp_path, capture, config, name: str, *extra: str) -> tuple[bytes, bytes]:
    out, metrics = tmp_path / f"{name}.jsonl", tmp_path / f"{name}-metrics.jsonl"
    assert cli.main(["pcap", "--config", str(config), "--output", f"jsonl:{out}",
                     "--metrics-output", f"jsonl:{metrics}", *extra, str(capture)]) == 0
    return out.read_bytes(), metrics.read_bytes()


def test_planted_secrets_reach_no_output_with_the_default_config(tmp_path, capture, capsys):
    zipkin, otlp = HttpReceiver(), HttpReceiver(status=200)
    try:
        with skywalking_collector() as (oap, address):
            config = tmp_path / "l7scope.yaml"
            config.write_text(
                "exporters:\n"
                f"  zipkin: {{url: 'http://127.0.0.1:{zipkin.port}/api/v2/spans'}}\n"
                f"  otlp: {{endpoint: 'http://127.0.0.1:{otlp.port}'}}\n"
                f"  skywalking: {{address: '{address}'}}\n")
            plain, metrics = _run(tmp_path, capture, config, "plain")
            headers, metrics_h = _run(tmp_path, capture, config, "headers", "--with-headers")
            sky = [ev.SerializeToString() for stream in oap.streams for ev in stream]
    finally:
        zipkin.close()
        otlp.close()
    summary = _summary_text(capture)
    payloads = {
        "jsonl": plain, "jsonl --with-headers": headers, "top_n": metrics + metrics_h,
        "zipkin": b"".join(body for _, _, body in zipkin.posts),
        "otlp traces": b"".join(b for p, _, b in otlp.posts if p == "/v1/traces"),
        "otlp metrics": b"".join(b for p, _, b in otlp.posts if p == "/v1/metrics"),
        "skywalking": b"".join(sky), "summary": summary.encode(),
        "stderr/stdout": "".join(capsys.readouterr()).encode(),
    }
    leaks = {name: data[data.find(PLANT) - 40:data.find(PLANT) + 20]
             for name, data in payloads.items() if PLANT in data}
    assert leaks == {}
    _assert_every_output_carried_the_exchanges(plain, headers, metrics, zipkin, otlp, sky, summary)


def _assert_every_output_carried_the_exchanges(plain, headers, metrics, zipkin, otlp, sky,
                                               summary) -> None:
    """The scan above is only worth something if every output got every exchange."""
    n = len(CONVERSATIONS)
    records = [json.loads(line) for line in plain.splitlines()]
    assert sorted(r["path"] for r in records) == sorted([
        "/login?token=[REDACTED]&x=1", "/v1/items?API_KEY=[REDACTED]&page=2", "/api/login",
        "/form", "/text", "/v2/items?access_token=[REDACTED]&page=1"])
    assert len(headers.splitlines()) == n and b"request_headers" in headers
    top_n = [json.loads(line) for line in metrics.splitlines()
             if json.loads(line).get("kind") == "top_n"]
    assert sum(len(t["status_5xx"]) for t in top_n) == n
    assert sum(len(json.loads(body)) for _, _, body in zipkin.posts) == 2 * n  # two runs
    assert {p for p, _, _ in otlp.posts} == {"/v1/traces", "/v1/metrics"}
    assert len(sky) == 2 * 2 * n  # request and response events, two runs
    assert b"[REDACTED]" in b"".join(sky) and "/login?token=[REDACTED]&x=1" in summary


def _summary_text(capture) -> str:
    """The live table, fed the records of the same capture."""
    summary = LiveSummary(out=io.StringIO(), every_s=0.0, recent=20)
    pipeline = Pipeline(observers=[summary.observe], capture_mode=True)
    events, _ = capture_file_events(str(capture))
    pipeline.feed(events)
    pipeline.finish()
    summary._last = time.monotonic() - 1.0
    summary.maybe_draw(dict)
    return summary.out.getvalue()
