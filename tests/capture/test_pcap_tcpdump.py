"""Real captures: tcpdump on lo while a Python client talks to a Python server on 127.0.0.1.

The file is read back (pcap with us and ns timestamps, pcapng via editcap, a snap-length-cut
capture) and reassembled; the streams must equal what was sent, byte for byte.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk, Role
from l7scope.capture.pcap import pcap_events, read_capture
from tests.capture import LoopbackServer, loopback_exchange, require_root


def tcpdump_capture(path: Path, extra: list[str], request_len: int, reply_len: int):
    """Start tcpdump (port-filtered) before the exchange and stop it after; return the exchange."""
    require_root("tcpdump capture on lo")
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is not installed (the project's machines install it)")
    server = LoopbackServer()
    cmd = ["tcpdump", "-i", "lo", "-B", "131072", "-U", "--immediate-mode", "-n", "-Z", "root", "-w", str(path), *extra,
           "tcp", "port", str(server.port)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # "listening on lo, ..." once the capture is live
        assert "listening on" in line, line
        result = loopback_exchange(request_len, reply_len, server=server)
        time.sleep(0.3)
    finally:
        proc.terminate()
        _, summary = proc.communicate(timeout=10)
    # A capture that lost packets cannot be compared byte for byte: say so instead.
    assert re.search(r"^0 packets dropped by kernel$", summary, re.M), \
        f"tcpdump lost packets: {summary}"
    return result


def streams(path: Path) -> tuple[list, bytes, bytes, int, int]:
    errors: list = []
    events = list(pcap_events(path, on_error=errors.append))
    assert errors == []
    up = b"".join(e.data for e in events if isinstance(e, DataChunk) and e.egress)
    down = b"".join(e.data for e in events if isinstance(e, DataChunk) and not e.egress)
    up_missing = sum(e.missing for e in events if isinstance(e, DataChunk) and e.egress)
    down_missing = sum(e.missing for e in events if isinstance(e, DataChunk) and not e.egress)
    return events, up, down, up_missing, down_missing


@pytest.mark.parametrize("precision", ["micro", "nano"])
def test_tcpdump_capture_reassembles_exactly(tmp_path, precision):
    path = tmp_path / "lo.pcap"
    cport, sport, request, reply = tcpdump_capture(
        path, ["--time-stamp-precision", precision], 500_000, 300_000)
    events, up, down, up_missing, down_missing = streams(path)
    opened = [e for e in events if isinstance(e, ConnectionOpened)]
    assert [(o.role, o.local, o.remote) for o in opened] == \
        [(Role.CLIENT, ("127.0.0.1", cport), ("127.0.0.1", sport))]
    assert (up, down, up_missing, down_missing) == (request, reply, 0, 0)
    assert isinstance(events[-1], ConnectionClosed)
    packets = [p for p in read_capture(path)]
    assert abs(packets[0].ts_ns - time.time_ns()) < 120 * 10**9  # epoch-based wall clock


def test_tcpdump_capture_converted_to_pcapng(tmp_path):
    if shutil.which("editcap") is None:
        pytest.fail("editcap (wireshark tools) is not installed")
    path = tmp_path / "lo.pcap"
    _c, _s, request, reply = tcpdump_capture(path, [], 200_000, 100_000)
    ng = tmp_path / "lo.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(path), str(ng)], check=True)
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert list(read_capture(ng)) == list(read_capture(path))
    _events, up, down, _um, _dm = streams(ng)
    assert (up, down) == (request, reply)


def test_snaplen_cut_capture_gives_known_length_holes(tmp_path):
    path = tmp_path / "cut.pcap"
    _c, _s, request, reply = tcpdump_capture(path, ["-s", "200"], 200_000, 100_000)
    events, _up, _down, up_missing, down_missing = streams(path)
    chunks = [e for e in events if isinstance(e, DataChunk)]
    assert up_missing > 0 and down_missing > 0
    for egress, sent in ((True, request), (False, reply)):
        mine = [c for c in chunks if c.egress == egress]
        assert sum(c.length for c in mine) == len(sent)  # every byte accounted for
        base = mine[0].seq
        for c in mine:  # the captured prefix of each chunk sits at its exact stream position
            off = (c.seq - base) & 0xFFFFFFFF
            assert c.data == sent[off:off + len(c.data)]
