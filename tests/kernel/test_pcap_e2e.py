"""Packet captures end to end: tcpdump records real clients and servers on lo, `l7scope pcap`
decodes the file, and tshark decodes the same file as the reference.

One module-wide recording (curl, nghttp, h2load and grpcio against nginx, nghttpd, the Python
server and the grpc server) feeds the tshark comparison (pcap, nanosecond pcap, pcapng) and the
damaged-capture tests (packets removed, duplicated, swapped; a cut file; a garbage file). A live
AF_PACKET test and a 100 MB bounded-memory test use their own traffic.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest

from tests.kernel.conftest import (
    APPS, Nginx, _spawn, _stop, cannot_run, curl, free_port, need_tool, nginx_config,
)

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
PCAP_HEADER = 24  # pcap global header; every record then has a 16-byte header
HTTP1_PORTS = ("python", "nginx")
HTTP2_PORTS = ("nginx_h2c", "nghttpd", "grpc")


def l7scope_command() -> list[str]:
    script = Path(sys.executable).with_name("l7scope")
    return [str(script)] if script.exists() else [sys.executable, "-m", "l7scope.cli"]


@dataclass
class PcapRun:
    returncode: int
    records: list[dict]
    stderr: str


def run_pcap(path: Path, out_dir: Path, *extra: str) -> PcapRun:
    """`l7scope pcap PATH --with-headers`; records read back from the JSON Lines output."""
    out = out_dir / f"{path.name}.jsonl"
    out.unlink(missing_ok=True)  # the sink appends
    res = subprocess.run([*l7scope_command(), "pcap", str(path), "--output", f"jsonl:{out}",
                          "--with-headers", *extra], capture_output=True, text=True, timeout=120)
    recs = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return PcapRun(res.returncode, recs, res.stderr)


# --- the recording -------------------------------------------------------------------------

@dataclass
class Recording:
    pcap: Path
    ports: dict[str, int]
    dir: Path


class Tcpdump:
    """tcpdump on lo for some ports, started before the traffic and stopped once all of it is
    in the file (a sentinel request is polled for in the written bytes)."""

    def __init__(self, path: Path, ports: list[int], sentinel_port: int, bulk: bool = False):
        self.path, self.sentinel_port = path, sentinel_port
        ports_filter = " or ".join(f"port {p}" for p in ports)
        # bulk: a bigger buffer and no per-packet wakeups, so a flood is not dropped
        mode = ["-B", "262144"] if bulk else ["-B", "131072", "--immediate-mode"]
        self.proc = subprocess.Popen(
            [need_tool("tcpdump"), "-i", "lo", *mode, "-U", "-n",
             "-Z", "root", "-w", str(path), f"tcp and ({ports_filter})"],
            stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            self.proc.kill()
            cannot_run(f"tcpdump did not start: {line.strip()}")
        self.wait_for_in_file("probe-start")

    def wait_for_in_file(self, marker: str, timeout: float = 15.0) -> None:
        """Send GET /hello?MARKER to the sentinel port until its bytes are in the file."""
        url = f"http://127.0.0.1:{self.sentinel_port}/hello?{marker}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert curl("-o", "/dev/null", url).returncode == 0
            time.sleep(0.1)
            if self.path.exists() and marker.encode() in self._tail():
                return
        raise AssertionError(f"tcpdump never wrote {marker}")

    def _tail(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(max(0, self.path.stat().st_size - (1 << 20)))
            return f.read()

    def stop(self, allow_drops: bool = False) -> int:
        """Stop after the traffic; the number of packets the kernel dropped (asserted 0 unless
        ALLOW_DROPS: a capture that lost packets cannot be compared exactly)."""
        self.wait_for_in_file("probe-end")
        time.sleep(0.3)  # the sentinel connection's close
        self.proc.terminate()
        _, summary = self.proc.communicate(timeout=20)
        dropped = re.search(r"^(\d+) packets dropped by kernel$", summary, re.M)
        assert dropped, summary
        assert allow_drops or dropped.group(1) == "0", summary
        return int(dropped.group(1))


def _traffic(ports: dict[str, int], tmp: Path) -> None:
    """Every client against every server; each step must succeed."""
    ng, py = f"http://127.0.0.1:{ports['nginx']}", f"http://127.0.0.1:{ports['python']}"
    keep_alive = [a for u in ("/hello", "/missing", "/error", "/static/small.txt",
                              "/static/large.bin", "/py/hello", "/py/status/503")
                  for a in ("-o", "/dev/null", ng + u)]
    body = tmp / "body.json"
    body.write_text('{"item": "' + "v" * 3000 + '"}')
    steps = [
        ["-H", "X-Test-Header: e2e value", *keep_alive],
        ["-o", "/dev/null", "-H", "Content-Type: application/json", "-H",
         "Transfer-Encoding: chunked", "--data-binary", f"@{body}", ng + "/py/echo"],
        ["-H", "X-Test-Header: direct", *[a for u in ("/hello", "/status/404", "/status/500",
                                                       "/chunked?n=5", "/big?bytes=200000")
                                          for a in ("-o", "/dev/null", py + u)],
         "--next", "-o", "/dev/null", "-d", "a=1&b=2", py + "/echo"],
    ]
    for args in steps:
        res = curl(*args)
        assert res.returncode == 0, res.stderr
    for port, headers, paths in (
            (ports["nghttpd"], ["x-custom: value-one", "x-request-id: req-42"],
             ["/index.html", "/data.bin", "/nope"]),
            (ports["nginx_h2c"], ["x-trace-me: yes please"], ["/a?x=1", "/missing"])):
        res = subprocess.run([need_tool("nghttp"), "-n", *[a for h in headers for a in ("-H", h)],
                              *[f"http://127.0.0.1:{port}{p}" for p in paths]],
                             capture_output=True, timeout=30)
        assert res.returncode == 0, res.stderr
    res = subprocess.run([need_tool("h2load"), "-n", "200", "-c", "2", "-m", "4",
                          f"http://127.0.0.1:{ports['nginx_h2c']}/load"],
                         capture_output=True, text=True, timeout=60)
    assert "200 succeeded" in res.stdout, res.stdout
    res = subprocess.run([sys.executable, str(APPS / "grpc_app.py"), "client",
                          str(ports["grpc"]), "unary:4,stream:5,fail"],
                         capture_output=True, text=True, timeout=60)
    assert "done" in res.stdout, res.stderr


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    if os.geteuid() != 0:
        cannot_run("capturing on lo needs root")
    for tool in ("tcpdump", "tshark", "editcap", "nghttp", "nghttpd", "h2load", "curl"):
        need_tool(tool)
    os.environ["PATH"] += ":/usr/sbin"
    need_tool("nginx")
    tmp = tmp_path_factory.mktemp("pcap_e2e")
    procs = []
    try:
        py = free_port()
        procs.append(_spawn([sys.executable, str(APPS / "http_server.py"), str(py)], py))
        nginx = Nginx(tmp / "nginx", py)
        procs.append(nginx.proc)
        nh = free_port()
        root = tmp / "h2root"
        root.mkdir()
        (root / "index.html").write_text("nghttpd index\n")
        (root / "data.bin").write_bytes(b"\x07" * 100_000)
        procs.append(_spawn([need_tool("nghttpd"), "--no-tls", "-d", str(root), str(nh)], nh))
        gr = free_port()
        procs.append(_spawn([sys.executable, str(APPS / "grpc_app.py"), "server", str(gr)], gr))
        ports = {"python": py, "nginx": nginx.port, "nginx_h2c": nginx.h2port, "nghttpd": nh,
                 "grpc": gr}
        path = tmp / "all.pcap"
        dump = Tcpdump(path, list(ports.values()), sentinel_port=py)
        try:
            _traffic(ports, tmp)
        finally:
            dump.stop()
    finally:
        for p in procs:
            _stop(p)
    return Recording(path, ports, tmp)


@pytest.fixture(scope="module")
def baseline(recording) -> list[dict]:
    run = run_pcap(recording.pcap, recording.dir)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "nothing dropped" in run.stderr, run.stderr
    return run.records


# --- tshark as the reference -----------------------------------------------------------------

def _as_list(v) -> list:
    return [] if v is None else v if isinstance(v, list) else [v]


def _find(obj, key: str):
    """First value of KEY anywhere in a tshark JSON tree."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find(v, key)
            if found is not None:
                return found
    return None


def _header_lines(lines) -> list[tuple[str, str]]:
    out = []
    for line in _as_list(lines):
        name, _, value = line.rstrip("\r\n").partition(":")
        out.append((name, value.strip()))
    return out


def tshark_exchanges(path: Path, ports: dict[str, int]) -> dict:
    """{(client port, server port): [(method, path, status, req headers, resp headers)...]}
    for HTTP/1 (in order) and {(client port, server port, stream id): (...)} for HTTP/2."""
    decode = [a for name in HTTP1_PORTS for a in ("-d", f"tcp.port=={ports[name]},http")]
    decode += [a for name in HTTP2_PORTS for a in ("-d", f"tcp.port=={ports[name]},http2")]
    res = subprocess.run(["tshark", "-n", "-r", str(path), "-o", "tcp.desegment_tcp_streams:TRUE",
                          *decode, "-Y", "http or http2", "-T", "json", "--no-duplicate-keys",
                          "-J", "tcp http http2"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    servers = set(ports.values())
    h1_requests: dict = {}
    h1_responses: dict = {}
    h2: dict = {}
    for packet in json.loads(res.stdout):
        layers = packet["_source"]["layers"]
        src, dst = int(layers["tcp"]["tcp.srcport"]), int(layers["tcp"]["tcp.dstport"])
        conn = (src, dst) if dst in servers else (dst, src)
        for msg in _as_list(layers.get("http")):
            if "http.request.line" in msg or _find(msg, "http.request.method"):
                h1_requests.setdefault(conn, []).append(
                    (_find(msg, "http.request.method"), _find(msg, "http.request.uri"),
                     _header_lines(msg.get("http.request.line"))))
            elif _find(msg, "http.response.code"):
                h1_responses.setdefault(conn, []).append(
                    (int(_find(msg, "http.response.code")),
                     _header_lines(msg.get("http.response.line"))))
        for layer in _as_list(layers.get("http2")):
            for frame in _as_list(layer.get("http2.stream")):
                if frame.get("http2.type") not in ("1", "9"):
                    continue  # HEADERS and CONTINUATION carry the header blocks
                sid = int(frame["http2.streamid"])
                entry = h2.setdefault((*conn, sid), ([], []))
                for h in _as_list(frame.get("http2.header")):
                    entry[0 if dst in servers else 1].append(
                        (h["http2.header.name"], h.get("http2.header.value", "")))
    out: dict = {}
    for conn, reqs in h1_requests.items():
        resps = h1_responses.get(conn, [])
        assert len(resps) == len(reqs), (conn, reqs, resps)
        out[conn] = [(m, u, code, rq, rs) for (m, u, rq), (code, rs) in zip(reqs, resps)]
    for key, (req, resp) in h2.items():
        if not req:
            continue  # stream opened by a PRIORITY-only or server frame: no request
        pseudo = dict(req)
        status = dict(resp).get(":status")
        out[key] = (pseudo.get(":method"), pseudo.get(":path"),
                    int(status) if status else None, req, resp)
    return out


def our_exchanges(records: list[dict]) -> dict:
    """Our records in the same shape as tshark_exchanges()."""
    out: dict = {}
    for r in sorted(records, key=lambda r: r["start_ns"]):
        conn = (int(r["local"].rsplit(":", 1)[1]), int(r["remote"].rsplit(":", 1)[1]))
        req = [tuple(h) for h in r.get("request_headers", [])]
        resp = [tuple(h) for h in r.get("response_headers", [])]
        row = (r["method"], r["path"], r["status"], req, resp)
        if r["protocol"] == "http1":
            out.setdefault(conn, []).append(row)
        else:
            assert (*conn, r["stream_id"]) not in out, r
            out[(*conn, r["stream_id"])] = row
    return out


def _without_trailers(rows: list) -> list:
    """tshark lists an HTTP/1 chunked body's trailer fields apart from the headers."""
    return [(m, p, s, rq, [h for h in rs if h[0] != "X-Checksum"]) for m, p, s, rq, rs in rows]


EXPECTED_HTTP1 = [  # (method, path, status): curl to nginx, nginx to the Python server, curl to it
    ("GET", "/hello", 200), ("GET", "/missing", 404), ("GET", "/error", 500),
    ("GET", "/static/small.txt", 200), ("GET", "/static/large.bin", 200),
    ("GET", "/py/hello", 200), ("GET", "/hello", 200), ("GET", "/py/status/503", 503),
    ("GET", "/status/503", 503), ("POST", "/py/echo", 200), ("POST", "/echo", 200),
    ("GET", "/hello", 200), ("GET", "/status/404", 404), ("GET", "/status/500", 500),
    ("GET", "/chunked?n=5", 200), ("GET", "/big?bytes=200000", 200), ("POST", "/echo", 200)]
EXPECTED_HTTP2 = Counter({
    ("GET", "/index.html", 200): 1, ("GET", "/data.bin", 200): 1, ("GET", "/nope", 404): 1,
    ("GET", "/a?x=1", 200): 1, ("GET", "/missing", 404): 1, ("GET", "/load", 200): 200,
    ("POST", "/l7scope.test.Echo/Echo", 200): 4,
    ("POST", "/l7scope.test.Echo/ServerStream", 200): 1,
    ("POST", "/l7scope.test.Echo/Fail", 200): 1})


def _convert(recording: Recording, fmt: str) -> Path:
    if fmt == "pcap":
        return recording.pcap
    path = recording.dir / f"all.{fmt}"
    if not path.exists():
        subprocess.run(["editcap", "-F", fmt, str(recording.pcap), str(path)], check=True,
                       capture_output=True)
    return path


@pytest.mark.parametrize("fmt", ["pcap", "nsecpcap", "pcapng"])
def test_every_exchange_tshark_decodes_is_decoded_identically(recording, baseline, fmt):
    path = _convert(recording, fmt)
    run = run_pcap(path, recording.dir)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    ours, theirs = our_exchanges(run.records), tshark_exchanges(path, recording.ports)
    for key in theirs:
        if len(key) == 2:  # HTTP/1: a list per connection, compared in order
            assert _without_trailers(ours.get(key, [])) == theirs[key], key
        else:
            assert ours.get(key) == theirs[key], key
    assert set(ours) == set(theirs)
    # the traffic really is what the comparison covers
    http1 = sorted(row[:3] for k, rows in theirs.items() if len(k) == 2 for row in rows
                   if not row[1].startswith("/hello?probe-"))
    assert http1 == sorted(EXPECTED_HTTP1)
    h2 = Counter(v[:3] for k, v in theirs.items() if len(k) == 3)
    assert h2 == EXPECTED_HTTP2
    statuses = {(r["protocol"], r["path"]): (r["status"], r["grpc_status"]) for r in run.records}
    assert statuses[("http1", "/error")] == (500, None)
    assert statuses[("http1", "/py/status/503")] == (503, None)
    assert statuses[("http2", "/nope")] == (404, None)
    assert statuses[("grpc", "/l7scope.test.Echo/Fail")] == (200, 5)
    assert all(not r["partial"] and r["side"] is None and r["pid"] is None for r in run.records)
    if fmt != "pcap":  # same packets, same timestamps: the same records
        assert run.records == baseline


# --- damaged captures ------------------------------------------------------------------------

@dataclass
class Record:
    """One pcap record, kept as its raw bytes (timestamps stay exact) with what it carries."""
    raw: bytes
    ts_ns: int
    conn: tuple[int, int]  # (client port, server port)
    to_server: bool
    payload: int


def pcap_records(path: Path, servers: set[int]) -> tuple[bytes, list[Record]]:
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "tcpdump writes little-endian microsecond pcap"
    out, pos = [], PCAP_HEADER
    while pos < len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16:pos + 16 + caplen]
        tcp = dpkt.ethernet.Ethernet(frame).data.data
        conn = (tcp.sport, tcp.dport) if tcp.dport in servers else (tcp.dport, tcp.sport)
        out.append(Record(data[pos:pos + 16 + caplen], sec * 10**9 + usec * 1000, conn,
                          tcp.dport in servers, len(tcp.data)))
        pos += 16 + caplen
    return data[:PCAP_HEADER], out


@dataclass
class Damage:
    path: Path
    removed_at: dict[tuple[int, int], int]  # connection -> time of its first removed packet
    touched: set[tuple[int, int]]  # connections with a duplicated or reordered packet


def damage(recording: Recording, seed: int, remove: bool, n_dup: int = 15,
           n_swap: int = 15) -> Damage:
    """Remove one payload packet from half the connections (when REMOVE), duplicate N_DUP
    packets and swap N_SWAP pairs of neighbour segments, all chosen by a seeded generator.

    A swap exchanges a segment with the next one of the same connection and direction when
    no packet of that connection lies between them: TCP reordering. (Swapping packets of the
    two directions would change what the capture says happened first, not damage it.)"""
    rng = random.Random(seed)
    header, recs = pcap_records(recording.pcap, set(recording.ports.values()))
    conns = sorted({r.conn for r in recs if r.payload})
    removed: dict[tuple[int, int], int] = {}
    if remove:
        for conn in rng.sample(conns, len(conns) // 2):
            victim = rng.choice([r for r in recs if r.conn == conn and r.payload])
            removed[conn] = victim.ts_ns
            recs.remove(victim)
    touched = set()
    for i in sorted(rng.sample(range(len(recs)), n_dup), reverse=True):
        recs.insert(i + 1, recs[i])
        touched.add(recs[i].conn)
    swaps = 0
    while swaps < n_swap:
        i = rng.randrange(len(recs) - 1)
        j = next(k for k in range(i + 1, len(recs) + 1)
                 if k == len(recs) or recs[k].conn == recs[i].conn)
        if j < len(recs) and recs[j].to_server == recs[i].to_server and recs[j].payload:
            recs[i], recs[j] = recs[j], recs[i]
            touched.add(recs[i].conn)
            swaps += 1
    path = recording.dir / f"damaged-{seed}-{int(remove)}.pcap"
    path.write_bytes(header + b"".join(r.raw for r in recs))
    return Damage(path, removed, touched)


def conn_of(rec: dict) -> tuple[int, int]:
    return int(rec["local"].rsplit(":", 1)[1]), int(rec["remote"].rsplit(":", 1)[1])


def comparable(rec: dict) -> dict:
    """A record without conn_id: ids are handed out in order of first packet, and a swap of
    two connections' first packets swaps their ids."""
    return {k: v for k, v in rec.items() if k != "conn_id"}


def by_conn(records: list[dict]) -> dict[tuple[int, int], list[dict]]:
    out: dict = {}
    for r in sorted(records, key=lambda r: (r["start_ns"], r["stream_id"] or 0)):
        out.setdefault(conn_of(r), []).append(comparable(r))
    return out


def counterpart(rec: dict, undamaged: list[dict]) -> dict:
    """The undamaged record REC stands for: same stream, or (HTTP/1, sequential on each
    connection) the one whose time span holds its start (a response whose request was lost
    starts at the response)."""
    if rec["stream_id"] is not None:
        found = [u for u in undamaged if u["stream_id"] == rec["stream_id"]]
    else:
        found = [u for u in undamaged if u["start_ns"] <= rec["start_ns"] <= u["end_ns"]]
    assert len(found) == 1, ("no single undamaged exchange matches", rec, found)
    return found[0]


TIMING = ("start_ns", "end_ns", "duration_ns", "time")
DECODED_FIELDS = ("protocol", "method", "path", "authority", "status", "grpc_status",
                  "request_id")


def assert_never_wrong(rec: dict, truth: dict) -> None:
    """Whatever a damaged record shows equals the undamaged decode; gaps are partial + notes."""
    for field in DECODED_FIELDS:
        assert rec[field] in (None, truth[field]), (field, rec, truth)
    for key in ("request_headers", "response_headers"):
        extra = Counter(map(tuple, rec[key])) - Counter(map(tuple, truth[key]))
        assert not extra, (key, extra, rec, truth)
    if rec["partial"]:
        assert rec["notes"], rec
    else:
        # Not partial: every decoded value is exact. What may move (docs/pcap.md): the timing
        # of an HTTP/1 message with a hole in its body (counted, not partial; it ends when the
        # hole is declared), and HTTP/2 sizes (frames lost in a hole after END_STREAM, such
        # as WINDOW_UPDATE, cannot be counted).
        loose = TIMING + (("request_bytes", "response_bytes") if rec["stream_id"] else ())
        untimed = {k: v for k, v in rec.items() if k not in loose}
        assert untimed == {k: v for k, v in truth.items() if k not in loose}, (rec, truth)


def assert_clean_run(run: PcapRun) -> None:
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "Error" not in run.stderr, run.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicated_and_reordered_packets_change_nothing(recording, baseline, seed):
    dmg = damage(recording, seed, remove=False)
    run = run_pcap(dmg.path, recording.dir)
    assert_clean_run(run)
    assert dmg.touched
    assert by_conn(run.records) == by_conn(baseline)


@pytest.mark.parametrize("seed", range(1, 13))
def test_removed_packets_never_give_a_wrong_value(recording, baseline, seed):
    dmg = damage(recording, seed, remove=True)
    run = run_pcap(dmg.path, recording.dir)
    assert_clean_run(run)
    truth, got = by_conn(baseline), by_conn(run.records)
    assert set(got) <= set(truth)
    for conn, undamaged in truth.items():
        if conn not in dmg.removed_at:
            assert got.get(conn) == undamaged, conn  # intact connections decode exactly
            continue
        damaged = got.get(conn, [])
        before = [u for u in undamaged if u["end_ns"] < dmg.removed_at[conn]]
        assert [d for d in damaged if d in before] == before, conn  # complete before the hole
        shown = []
        for rec in damaged:
            truth_rec = counterpart(rec, undamaged)
            assert_never_wrong(rec, truth_rec)
            shown.append(truth_rec)
        assert [u for u in undamaged if u not in shown] == [], "an exchange vanished"
    partial = [r for r in run.records if r["partial"]]
    assert partial, "removing request/response bytes must show somewhere"
    print(f"seed {seed}: {len(dmg.removed_at)} connections lost a packet; "
          f"{len(run.records)}/{len(baseline)} records, {len(partial)} partial; notes "
          f"{Counter(n for r in partial for n in r['notes']).most_common(6)}")


def test_file_cut_mid_record_keeps_everything_before_the_cut(recording, baseline):
    header, recs = pcap_records(recording.pcap, set(recording.ports.values()))
    cut_at = len(recs) * 3 // 5
    cut_record = recs[cut_at]
    path = recording.dir / "cut.pcap"
    path.write_bytes(header + b"".join(r.raw for r in recs[:cut_at]) + cut_record.raw[:30])
    run = run_pcap(path, recording.dir)
    assert run.returncode == 0, run.stderr  # what was read is reported; docs/pcap.md
    assert "Traceback" not in run.stderr
    assert f"l7scope: {path}: file ends in the middle of a record\n" in run.stderr
    got = [comparable(r) for r in run.records]
    done = [comparable(r) for r in baseline if r["end_ns"] < cut_record.ts_ns]
    assert done and [r for r in got if r in done] == done
    truth = by_conn(baseline)
    for rec in run.records:
        if comparable(rec) not in done:  # cut short: partial, never wrong
            assert_never_wrong(comparable(rec), counterpart(rec, truth[conn_of(rec)]))
            assert rec["partial"], rec


@pytest.mark.parametrize("content", [b"", b"hello, not a capture\n",
                                     random.Random(5).randbytes(20_000),
                                     b"\xd4\xc3\xb2\xa1" + b"\x00" * 10])
def test_file_that_is_not_a_capture_is_one_line_and_exit_2(tmp_path, content):
    path = tmp_path / "input.pcap"
    path.write_bytes(content)
    run = run_pcap(path, tmp_path)
    assert run.returncode == 2
    assert run.records == []
    line = run.stderr.strip()
    assert "\n" not in line and line.startswith(f"l7scope: {path}: "), run.stderr
    assert any(w in line for w in ("empty", "not a pcap", "ends in the middle")), line


# --- live capture ----------------------------------------------------------------------------

def test_live_interface_capture_on_lo(agent, python_server):
    port, _ = python_server
    a = agent("--interface", "lo", "--with-headers")
    base = f"http://127.0.0.1:{port}"
    res = curl("-H", "X-Live: yes", *[x for u in ("/hello", "/status/404", "/chunked?n=3")
                                      for x in ("-o", "/dev/null", base + u)],
               "--next", "-o", "/dev/null", "-d", "live=1", base + "/echo")
    assert res.returncode == 0, res.stderr
    expected = [("GET", "/hello", 200), ("GET", "/status/404", 404),
                ("GET", "/chunked?n=3", 200), ("POST", "/echo", 200)]
    recs = a.wait_for(lambda r: len(r) >= len(expected), port)
    time.sleep(0.5)  # a duplicate (each lo packet is seen twice by AF_PACKET) would show now
    recs = sorted(a.records(port), key=lambda r: r["start_ns"])
    assert [(r["method"], r["path"], r["status"]) for r in recs] == expected
    assert len({r["local"] for r in recs[:3]}) == 1  # one keep-alive connection
    for r in recs:
        assert (r["side"], r["pid"], r["comm"], r["protocol"]) == (None, None, None, "http1")
        assert r["remote"] == f"127.0.0.1:{port}" and not r["partial"], r
    assert dict(recs[0]["request_headers"])["X-Live"] == "yes"
    assert dict(recs[0]["response_headers"])["X-Served-By"] == "l7scope-test"
    assert a.stop() == 0


# --- a large capture in bounded memory -------------------------------------------------------

LOAD_SERVER = "    server {{ listen 127.0.0.1:{port}; root {tmp}/www; }}"
WRK_PATHS = """
local paths = {"/small.txt", "/small.txt", "/medium.bin"}
local i = 0
request = function() i = i + 1; return wrk.format("GET", paths[i % #paths + 1]) end
"""
TARGET_BYTES = 100 << 20
WRK_CONNECTIONS = 4


def record_load(tmp: Path) -> tuple[Path, list[str]]:
    """nginx + wrk until tcpdump has written TARGET_BYTES; (capture, nginx access log lines).
    A flood on a busy machine can make tcpdump drop packets: then it is recorded again."""
    for attempt in range(3):
        run_dir = tmp / f"attempt{attempt}"
        run_dir.mkdir()
        path, served, dropped = _record_load_once(run_dir)
        if not dropped:
            return path, served
    pytest.fail(f"tcpdump dropped {dropped} packets in each of 3 recordings")


def _record_load_once(tmp: Path) -> tuple[Path, list[str], int]:
    os.environ["PATH"] += ":/usr/sbin"
    need_tool("nginx"), need_tool("wrk")
    (tmp / "www").mkdir()
    (tmp / "www" / "small.txt").write_bytes(b"s" * 600)
    (tmp / "www" / "medium.bin").write_bytes(random.Random(1).randbytes(24_000))
    (tmp / "paths.lua").write_text(WRK_PATHS)
    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_config(
        tmp, LOAD_SERVER.format(tmp=tmp, port=port), access_log=f"{tmp}/access.log counted",
        log_format="log_format counted '$status $request_uri';"))
    nginx = _spawn([shutil.which("nginx"), "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], port)
    path = tmp / "load.pcap"
    try:
        dump = Tcpdump(path, [port], sentinel_port=port, bulk=True)
        try:
            wrk = subprocess.Popen(["wrk", "-t1", f"-c{WRK_CONNECTIONS}", "-d30s", "-s",
                                    str(tmp / "paths.lua"), f"http://127.0.0.1:{port}/"],
                                   stdout=subprocess.DEVNULL)
            while wrk.poll() is None and path.stat().st_size < TARGET_BYTES:
                time.sleep(0.05)
            wrk.terminate()
            wrk.wait(10)
        finally:
            dropped = dump.stop(allow_drops=True)
    finally:
        _stop(nginx)
    return path, (tmp / "access.log").read_text().splitlines(), dropped


def test_100mb_capture_in_bounded_memory(tmp_path):
    if os.geteuid() != 0:
        cannot_run("capturing on lo needs root")
    path, served = record_load(tmp_path)
    assert path.stat().st_size >= TARGET_BYTES
    assert all(line.startswith(("200 ", "404 /hello?probe-")) for line in served)
    assert any("?probe-" in line for line in served)
    out = path.with_suffix(".jsonl")
    # The agent's own peak RSS. Not wait4() on a child of this test process: a child forked
    # (or vforked) from the large pytest process inherits its high-water mark through exec, so
    # a small launcher forks the agent and reports the agent's ru_maxrss (KiB) on stdout.
    launcher = ("import os, sys\n"
                "pid = os.fork()\n"
                "if pid == 0:\n"
                "    os.execv(sys.argv[1], sys.argv[1:])\n"
                "_, status, usage = os.wait4(pid, 0)\n"
                "print(usage.ru_maxrss)\n"
                "sys.exit(os.waitstatus_to_exitcode(status))\n")
    cmd = l7scope_command()
    if cmd[0] != sys.executable:
        cmd = [sys.executable, *cmd]  # the launcher execs a program path: the script's interpreter
    res = subprocess.run([sys.executable, "-c", launcher, *cmd, "pcap", str(path),
                          "--output", f"jsonl:{out}"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    peak_mb = int(res.stdout.split()[-1]) / 1024
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    # Readiness probes are retried until tcpdump shows one, so the first may predate the
    # capture: they are left out of both counts.
    served = [line for line in served if "?probe-" not in line]
    recs = [r for r in recs if "?probe-" not in (r["path"] or "")]
    # Every request nginx served is an exchange. wrk is stopped mid-flight: up to one request
    # per connection may have been sent and not read by nginx (an exchange with "no response"
    # but no log line) or answered while the connection closed (logged, response partial).
    assert len(served) <= len(recs) <= len(served) + WRK_CONNECTIONS
    complete = Counter(f"{r['status']} {r['path']}" for r in recs if not r["partial"])
    logged = Counter(served)
    assert all(complete[k] <= n for k, n in logged.items()) and set(complete) <= set(logged)
    assert sum(complete.values()) >= len(served) - WRK_CONNECTIONS
    print(f"{path.stat().st_size / 1e6:.0f} MB, {len(served)} requests served, {len(recs)} "
          f"exchanges ({sum(complete.values())} complete), peak RSS {peak_mb:.0f} MB")
