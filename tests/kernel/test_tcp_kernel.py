"""TCP health with real traffic: two network namespaces joined by a veth pair, nftables dropping
about 3% of the TCP segments both ways so retransmissions really happen (one segment per packet:
the veths carry no GSO super-packets, so the loss is per segment, as on a real link), and the
first SYN-ACK so the server retransmits one before its socket exists.

The kernel programs are loaded (capture/kernel.py) and their records fed to the aggregator the
agent runs (l7scope/tcpmetrics.py); what it reports is compared with what the kernel itself
says: nstat's TcpRetransSegs deltas in both namespaces, `ss -ti` for the client's socket, the
byte counts the scripts moved, the client's own connect timing, a refused connect, a connect
that times out, and the reset a zero-linger close sends.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l7scope.capture.tcp_summary import TcpSummary
from tests.kernel.conftest import cannot_run, need_tool

# Names and addresses of this run's own: runs in parallel (other checkouts) must not share a
# namespace, and the capture sees every namespace's sockets.
_RUN = os.getpid()
NS_C, NS_S = f"l7t-tcp-c{_RUN}", f"l7t-tcp-s{_RUN}"
VETH_C, VETH_S = f"l7c{_RUN}", f"l7s{_RUN}"
C_ADDR, S_ADDR = f"10.77.{_RUN % 250}.1", f"10.77.{_RUN % 250}.2"
PORT, CLOSED_PORT, BLACKHOLE_PORT = 8080, 8081, 8082
SEND, REPLY = 3_000_000, 1_500_000

SERVER = f"""
import socket, sys
# dual-stack: the IPv4 connection is accepted as an IPv6 socket with v4-mapped addresses
srv = socket.socket(socket.AF_INET6); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", {PORT})); srv.listen()
print("listening", flush=True)
c, _ = srv.accept()
got = 0
while got < {SEND}:
    d = c.recv(65536)
    if not d:
        break
    got += len(d)
c.sendall(b"r" * {REPLY})
try:
    while c.recv(65536):
        pass
    print("eof", got, flush=True)
except ConnectionResetError:
    print("reset", got, flush=True)
c.close()
"""

CLIENT = f"""
import socket, struct, sys, time
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "transfer":
        s = socket.socket()
        t0 = time.monotonic_ns(); s.connect(("{S_ADDR}", {PORT})); took = time.monotonic_ns() - t0
        s.sendall(b"s" * {SEND})
        got = 0
        while got < {REPLY}:
            got += len(s.recv(65536))
        print("moved", took, s.getsockname()[1], got, flush=True)
    elif cmd == "reset":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
        print("closed", flush=True)
    elif cmd in ("refused", "timeout"):
        port = {CLOSED_PORT} if cmd == "refused" else {BLACKHOLE_PORT}
        s = socket.socket(); s.settimeout(30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)  # the timeout in ~3 s
        try:
            s.connect(("{S_ADDR}", port))
        except OSError as e:
            print("failed", e.errno, flush=True)
"""


ROUND, ROUND_REPLY = 1_000_000, 400_000
KEEP_SERVER = f"""
import socket
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{S_ADDR}", {PORT})); srv.listen()
print("listening", flush=True)
c, _ = srv.accept()
for _ in range(2):
    got = 0
    while got < {ROUND}:
        got += len(c.recv(65536))
    c.sendall(b"r" * {ROUND_REPLY})
while c.recv(65536):
    pass
c.close()
print("closed", flush=True)
"""

KEEP_CLIENT = f"""
import socket, sys
s = socket.socket()
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "connect":
        s.connect(("{S_ADDR}", {PORT}))
        print("port", s.getsockname()[1], flush=True)
    elif cmd == "round":
        s.sendall(b"s" * {ROUND})
        got = 0
        while got < {ROUND_REPLY}:
            got += len(s.recv(65536))
        print("round", got, flush=True)
    elif cmd == "close":
        s.close()
        print("closed", flush=True)
"""


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


def in_ns(ns: str, *cmd: str) -> str:
    return sh("ip", "netns", "exec", ns, *cmd)


@pytest.fixture
def lossy_link():
    for tool in ("ip", "nft", "nstat", "ss"):
        need_tool(tool)
    for ns in (NS_C, NS_S):
        sh("ip", "netns", "del", ns, check=False)
    try:
        sh("ip", "netns", "add", NS_C)
        sh("ip", "netns", "add", NS_S)
        sh("ip", "link", "add", VETH_C, "netns", NS_C, "type", "veth", "peer", "name", VETH_S,
           "netns", NS_S)
        for ns, dev, addr in ((NS_C, VETH_C, C_ADDR), (NS_S, VETH_S, S_ADDR)):
            in_ns(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            in_ns(ns, "ip", "link", "set", dev, "gso_max_segs", "1", "up")
            in_ns(ns, "ip", "link", "set", "lo", "up")
            # resets are never dropped: a lost zero-linger reset would leave the server waiting
            in_ns(ns, "nft", f"add table inet l7loss; add chain inet l7loss in "
                  f"{{ type filter hook input priority 0; }}; add rule inet l7loss in "
                  f"tcp dport {BLACKHOLE_PORT} drop; add rule inet l7loss in "
                  f"tcp flags & (syn | ack) == syn | ack numgen inc mod 1000000 == 0 drop; "
                  f"add rule inet l7loss in meta l4proto tcp tcp flags & rst == 0 "
                  f"numgen random mod 100 < 3 counter drop")
    except subprocess.CalledProcessError as e:
        cannot_run(f"cannot build the test network: {e.stderr.strip()}")
    yield
    for ns in (NS_C, NS_S):
        sh("ip", "netns", "del", ns, check=False)


def retrans_segs(namespaces=(NS_C, NS_S)) -> int:
    total = 0
    for ns in namespaces:
        m = re.search(r"TcpRetransSegs\s+(\d+)", in_ns(ns, "nstat", "-az", "TcpRetransSegs"))
        total += int(m.group(1))
    return total


def ss_rtt_us(local_port: int) -> float:
    out = in_ns(NS_C, "ss", "-tinH", "sport", f"= :{local_port}")
    return float(re.search(r"\brtt:([\d.]+)/", out).group(1)) * 1000


class Pump:
    """The capture polled into the aggregator (and every TCP summary kept) while a test runs."""

    def __init__(self, capture, metrics):
        import threading
        self.capture, self.metrics, self.summaries = capture, metrics, []
        self.lock = threading.Lock()  # feed (this thread) and snapshot (the test) apart
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            self._take(self.capture.poll(50))

    def _take(self, events):
        with self.lock:
            self.metrics.feed(events)
        self.summaries += [e for e in events if type(e) is TcpSummary]

    def finish(self):
        time.sleep(0.3)
        self.stop = True
        self.thread.join()
        self._take(self.capture.drain())
        self.counters = self.capture.counters()

    def snapshot(self, start: int, end: int) -> list[dict]:
        time.sleep(0.3)  # the records of what just happened polled in
        with self.lock:
            return self.metrics.snapshot(start, end)

    def wait_for(self, local: tuple[str, int] | None = None, timeout: float = 10.0,
                 remote: tuple[str, int] | None = None) -> None:
        """Until the summary of the socket at ``local`` (or connected to ``remote``) is in (a
        socket's comes at its close)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(
                s.local == local or s.remote == remote for s in self.summaries):
            time.sleep(0.05)


def start(ns: str, script: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ask(proc: subprocess.Popen, cmd: str) -> list[str]:
    proc.stdin.write(cmd + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().split()


def test_tcp_health_across_a_lossy_link(lossy_link):
    from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions
    from l7scope.tcpmetrics import TcpMetrics

    server, client = start(NS_S, SERVER), start(NS_C, CLIENT)
    try:
        assert server.stdout.readline().strip() == "listening"
        # pairs are named by process name, never by pid (the pids are the records' own)
        names = {p.pid: Path(f"/proc/{p.pid}/comm").read_text().strip() for p in (client, server)}
        try:  # the two scripts only: their ip-netns-exec'd python pids
            capture = KernelCapture(KernelOptions(pids=(server.pid, client.pid), tls=False))
        except CaptureUnavailable as e:
            cannot_run(str(e))
        metrics = TcpMetrics(owned_only=True)
        pump = Pump(capture, metrics)
        try:
            before_c, before_s = retrans_segs((NS_C,)), retrans_segs((NS_S,))
            _, took, cport, got = ask(client, "transfer")
            rtt_ss = ss_rtt_us(int(cport))
            assert ask(client, "reset") == ["closed"]
            assert server.stdout.readline().split() == ["reset", str(SEND)]
            # both sockets closed: nothing more of this connection can be retransmitted
            retrans_c = retrans_segs((NS_C,)) - before_c
            retrans_s = retrans_segs((NS_S,)) - before_s
            assert ask(client, "refused") == ["failed", "111"]
            # the client's namespace only: on the lossy link the server's sockets of the earlier
            # connections may still be retransmitting while the SYN waits
            before = retrans_segs((NS_C,))
            assert ask(client, "timeout")[0] == "failed"
            syn_retries = retrans_segs((NS_C,)) - before
            assert server.wait(10) == 0
            pump.wait_for((S_ADDR, PORT))  # the server socket's summary: at the server's close
            pump.wait_for(remote=(S_ADDR, BLACKHOLE_PORT))  # the timed-out connect's
            pump.finish()
        finally:
            capture.close()
    finally:
        for p in (client, server):
            p.kill()
            p.wait()
    records = metrics.snapshot(0, 1)
    by_server = {r["server"]: r for r in records}
    main = next((r for r in records if r["server_pid"] == server.pid), None)
    # every socket's summary, whatever ran on the CPU meanwhile: a state change the kernel
    # skipped (its program interrupting itself) is run by the second program and counted
    seen = "\n".join(map(str, [*records, *pump.summaries, metrics.counters, pump.counters]))
    assert main is not None and f"{S_ADDR}:{BLACKHOLE_PORT}" in by_server, seen
    assert (pump.counters["tcp_health_runs_missed"],
            pump.counters["tcp_health_entries_failed"]) == (0, 0), seen
    assert (main["client"], main["server"]) == (names[client.pid], names[server.pid])
    assert (main["connects"], main["accepts"], main["connect_failures"]) == (1, 1, 0)
    assert (main["bytes_sent"], main["bytes_received"]) == (SEND, REPLY) == (SEND, int(got))
    ours = [s for s in pump.summaries if S_ADDR in (s.local[0], s.remote[0])]
    shown = "\n".join(map(str, [retrans_c, retrans_s, main, *ours, metrics.counters,
                                 pump.counters]))
    assert retrans_c > 0 and retrans_s > 0, "the lossy link made no retransmissions: " + shown
    # each socket against its own namespace's count, exactly (the socket's own counter is what
    # the namespace's adds up; the server's includes the SYN-ACK it retransmitted before its
    # socket existed), and the pair against the kernel's total for both namespaces
    client_sock = next(x for x in pump.summaries if x.local == (C_ADDR, int(cport)))
    server_sock = next(x for x in pump.summaries
                       if (x.local, x.remote) == ((S_ADDR, PORT), (C_ADDR, int(cport))))
    assert (client_sock.retransmits, server_sock.retransmits) == (retrans_c, retrans_s), shown
    assert main["retransmits"] == retrans_c + retrans_s, shown
    # the host's counters (other handshakes may retransmit SYN-ACKs meanwhile)
    assert pump.counters["tcp_synack_retrans"] >= pump.counters["tcp_synack_attributed"] >= 1
    # runs the kernel skipped (a tracepoint in an interrupt on top of another BPF program) are
    # shown; the TCP health ones were all run by their second program (checked above)
    assert pump.counters["bpf_runs_missed"] >= pump.counters["tcp_health_runs_missed"] == 0
    assert (main["resets_sent"], main["resets_received"]) == (1, 0)
    cm = main["connect_ms"]
    assert cm["count"] == 1 and 0 < cm["sum"] <= int(took) / 1e6
    mine = next(s for s in pump.summaries if s.local == (C_ADDR, int(cport)))
    assert abs(mine.srtt_us - rtt_ss) <= 0.2 * rtt_ss, (mine.srtt_us, rtt_ss)
    assert main["rtt_us"]["count"] == 2, shown  # one sample per socket
    assert sum(main["drops"].values()) > 0 and "NETFILTER_DROP" in main["drops"], main["drops"]
    refused = by_server[f"{S_ADDR}:{CLOSED_PORT}"]
    assert refused["connect_failures_by_reason"] == {"refused": 1}
    assert (refused["connects"], refused["resets_received"]) == (0, 1)
    timed_out = by_server.get(f"{S_ADDR}:{BLACKHOLE_PORT}")
    assert timed_out is not None, "no record of the timed-out connect:\n" + "\n".join(
        map(str, [*records, *pump.summaries]))
    assert timed_out["connect_failures_by_reason"] == {"timed_out": 1}, shown
    assert timed_out["retransmits"] == syn_retries > 0, (syn_retries, shown)


def test_agent_writes_tcp_metrics_per_pair(agent, python_server, tmp_path):
    """The agent's --metrics-output carries one tcp_metrics record per pair and interval: a
    keep-alive connection with its exact bytes, and a refused connect."""
    import shutil

    from tests.kernel.conftest import free_port

    port, _ = python_server
    name = "tcpm-curl"
    shutil.copy(shutil.which("curl"), tmp_path / name)
    a = agent("--comm", name, "--metrics-interval", "1")
    res = subprocess.run([str(tmp_path / name), "-sS", "-o", "/dev/null", "-o", "/dev/null",
                          f"http://127.0.0.1:{port}/hello", f"http://127.0.0.1:{port}/status/404"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    closed = free_port()  # nothing listens here: the connect is refused
    refused = subprocess.run([str(tmp_path / name), "-sS", f"http://127.0.0.1:{closed}/"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 7
    recs = a.wait_for(lambda r: len([x for x in r if x["side"] == "client"]) >= 2, port)
    time.sleep(2.5)  # the summaries come at socket close, then one more interval
    assert a.stop() == 0
    client = [r for r in recs if r["side"] == "client"]
    tcp = [m for m in a.metric_records() if m.get("kind") == "tcp_metrics"]
    ok = [m for m in tcp if m["server"] == f"127.0.0.1:{port}"]
    assert sum(m["connects"] for m in ok) == 1 and sum(m["connect_failures"] for m in ok) == 0
    assert sum(m["bytes_sent"] for m in ok) == sum(r["request_bytes"] for r in client)
    assert sum(m["bytes_received"] for m in ok) == sum(r["response_bytes"] for r in client)
    assert sum(m["rtt_us"]["count"] for m in ok) == 1
    bad = [m for m in tcp if m["server"] == f"127.0.0.1:{closed}"]
    assert sum(m["connect_failures"] for m in bad) == 1
    assert {k: v for m in bad for k, v in m["connect_failures_by_reason"].items()} == {"refused": 1}
    assert all(m["client"].startswith(name) for m in ok + bad)


def test_an_open_connection_reports_every_interval(lossy_link):
    """A connection kept open over two intervals: each interval's record has the bytes moved in
    it, exactly, and the retransmissions the kernel counted in it; the close brings the connect
    and the rest."""
    from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions
    from l7scope.tcpmetrics import TcpMetrics

    server, client = start(NS_S, KEEP_SERVER), start(NS_C, KEEP_CLIENT)
    try:
        assert server.stdout.readline().strip() == "listening"
        try:
            capture = KernelCapture(KernelOptions(pids=(server.pid, client.pid), tls=False))
        except CaptureUnavailable as e:
            cannot_run(str(e))
        pump = Pump(capture, TcpMetrics(owned_only=True, live=capture.tcp_open))
        records, kernel = [], []
        try:
            start_c, start_s = retrans_segs((NS_C,)), retrans_segs((NS_S,))
            cport = int(ask(client, "connect")[1])
            for i in range(2):
                assert ask(client, "round") == ["round", str(ROUND_REPLY)]
                time.sleep(1.0)  # the last segments' retransmissions, if any, done
                kernel.append((retrans_segs((NS_C,)) - start_c, retrans_segs((NS_S,)) - start_s))
                records.append(pump.snapshot(i, i + 1))
            assert ask(client, "close") == ["closed"]
            assert server.stdout.readline().strip() == "closed"
            pump.wait_for((S_ADDR, PORT))
            pump.wait_for((C_ADDR, cport))
            kernel.append((retrans_segs((NS_C,)) - start_c, retrans_segs((NS_S,)) - start_s))
            pump.finish()
            records.append(pump.metrics.snapshot(2, 3))
        finally:
            capture.close()
    finally:
        for p in (client, server):
            p.kill()
            p.wait()
    shown = "\n".join(map(str, [kernel, *records, pump.counters]))
    mains = [[r for r in recs if r["server_pid"] == server.pid] for recs in records]
    assert [len(m) for m in mains] == [1, 1, 1], shown
    (first,), (second,), (last,) = mains
    for r in (first, second):
        assert (r["bytes_sent"], r["bytes_received"]) == (ROUND, ROUND_REPLY), shown
        assert (r["connects"], r["accepts"], r["rtt_us"]["count"]) == (0, 0, 0), shown
    assert (last["bytes_sent"], last["bytes_received"]) == (0, 0), shown
    assert (last["connects"], last["accepts"], last["rtt_us"]["count"]) == (1, 1, 2), shown
    totals = [sum(k) for k in kernel]
    assert totals[0] > 0, "the lossy link made no retransmissions: " + shown
    assert [r["retransmits"] for r in (first, second, last)] == [
        totals[0], totals[1] - totals[0], totals[2] - totals[1]], shown



class _TestRunOpts(__import__("ctypes").Structure):
    """struct bpf_test_run_opts (libbpf's bpf.h)."""

    import ctypes as _c
    _fields_ = [("sz", _c.c_size_t), ("data_in", _c.c_void_p), ("data_out", _c.c_void_p),
                ("data_size_in", _c.c_uint32), ("data_size_out", _c.c_uint32),
                ("ctx_in", _c.c_void_p), ("ctx_out", _c.c_void_p),
                ("ctx_size_in", _c.c_uint32), ("ctx_size_out", _c.c_uint32),
                ("retval", _c.c_uint32), ("repeat", _c.c_int), ("duration", _c.c_uint32),
                ("flags", _c.c_uint32), ("cpu", _c.c_uint32), ("batch_size", _c.c_uint32)]


def _run_on_cpu0(prog_fd: int) -> None:
    """One run of a raw tracepoint program (BPF_PROG_TEST_RUN, arguments all 0) on CPU 0."""
    import ctypes

    from l7scope.capture import libbpf
    args = (ctypes.c_uint64 * 2)()
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), ctx_in=ctypes.addressof(args),
                        ctx_size_in=ctypes.sizeof(args), flags=1, cpu=0)  # ON_CPU
    run = libbpf.lib().bpf_prog_test_run_opts
    run.argtypes, run.restype = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)], ctypes.c_int
    assert run(prog_fd, ctypes.byref(opts)) == 0, ctypes.get_errno()


def test_a_run_the_kernel_skips_is_run_by_the_second_program():
    """Each TCP health tracepoint has two programs: the second runs an event only while the
    first is running on that CPU (the kernel then skips the first: it interrupts itself), and
    counts it. Driven directly (BPF_PROG_TEST_RUN) on the SYN-ACK pair, whose body only counts:
    the second does nothing while the first is not running, runs the event under the first's
    busy mark, and the first clears its mark when done."""
    import struct

    from l7scope.capture import libbpf
    from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions

    try:
        capture = KernelCapture(KernelOptions(pids=(1,), tls=False))  # pid 1 makes no SYN-ACKs
    except CaptureUnavailable as e:
        cannot_run(str(e))
    try:
        fds = dict(capture._prog_fds)
        busy = capture._obj.map_fd("tcp_health_busy")
        slot = struct.pack("<I", 3)  # TCP_BUSY_SYNACK (bpf/l7scope.bpf.c)
        ncpu = libbpf.possible_cpus()

        def counts():  # (SYN-ACKs counted: the host's, so at least ours; runs by the second)
            c = capture.counters()
            return c["tcp_synack_retrans"], c["tcp_health_runs_nested"]

        synacks, nested = counts()
        _run_on_cpu0(fds["tcp_nested_synack"])  # the first is not running: not its event
        assert counts()[1] == nested
        libbpf.map_update(busy, slot, struct.pack("<Q", 1) * ncpu)  # as while the first runs
        _run_on_cpu0(fds["tcp_nested_synack"])
        now = counts()
        assert now[1] == nested + 1 and now[0] >= synacks + 1
        _run_on_cpu0(fds["tcp_health_synack"])  # the first itself: runs, then clears its mark
        assert counts()[0] >= synacks + 2
        assert libbpf.map_lookup(busy, slot, 8 * ncpu)[:4] == b"\0\0\0\0"  # CPU 0's mark
        _run_on_cpu0(fds["tcp_nested_synack"])
        assert counts()[1] == nested + 1
        assert capture.counters()["tcp_health_runs_missed"] == 0
    finally:
        capture.close()
