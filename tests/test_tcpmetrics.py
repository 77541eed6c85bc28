"""TCP health: the L7_KIND_TCP record decoded, and the per-pair aggregation."""
from __future__ import annotations

import struct

from l7scope.capture import wire_layout as L
from l7scope.capture.events import ConnectionOpened, DataChunk, Role
from l7scope.capture.tcp_summary import ENDS, STATS, TcpOpen, TcpSummary, decode_open
from l7scope.capture.wire import WireDecoder
from l7scope.tcpmetrics import TcpMetrics, drop_reason_names, unavailable

EVENT = struct.Struct(L.L7_EVENT_FORMAT[: -len("4096s")])  # the header alone
C, S = ("10.0.0.1", 40000), ("10.0.0.2", 8080)


def record(role=1, tgid=7, comm=b"curl", outcome=0, **stats) -> bytes:
    values = dict.fromkeys((f[0] for f in L.L7_TCP_STATS_FIELDS), 0)
    values.update(outcome=outcome, **stats)
    head = EVENT.pack(100, 200, 0, tgid, 0, -1, 0, 0, 0, 0, 0,
                      L.ENUMS["l7_kind"]["L7_KIND_TCP"], 0, 16, role, 2, 0, 40000, 8080,
                      bytes([10, 0, 0, 1]).ljust(16, b"\0"), bytes([10, 0, 0, 2]).ljust(16, b"\0"),
                      comm.ljust(16, b"\0"))
    return head + STATS.pack(*(values[f[0]] for f in L.L7_TCP_STATS_FIELDS))


def summary(role=Role.CLIENT, local=C, remote=S, pid=7, comm="curl", outcome="established",
            **kw) -> TcpSummary:
    base = dict(ts=2, first_ts=1, role=role, local=local, remote=remote, pid=pid, comm=comm,
                outcome=outcome, connect_ns=0, srtt_us=0, rttvar_us=0, retransmits=0,
                resets_sent=0, resets_received=0, drops=(), drops_other=0, sk_err=0)
    return TcpSummary(**{**base, **kw})


def chunk(local, remote, egress, n, pid, comm, ts):
    return DataChunk(1, egress, ts, b"", n, 0, Role.UNKNOWN, local, remote, pid, pid, comm, 3,
                     "write", ts, ts + 1000, False)


def test_record_decodes_every_field():
    ev = WireDecoder().decode(record(connect_ns=1_500_000, srtt_us=310, rttvar_us=40,
                                     retransmits=5, resets_sent=1, resets_received=2,
                                     drop_reason0=12, drop_count0=3, drop_reason1=41,
                                     drop_count1=0, drops_other=4, sk_err=0))
    assert ev == summary(ts=200, first_ts=100, connect_ns=1_500_000, srtt_us=310, rttvar_us=40,
                         retransmits=5, resets_sent=1, resets_received=2, drops=((12, 3),),
                         drops_other=4)


def test_refused_and_truncated_records():
    assert WireDecoder().decode(record(outcome=1, sk_err=111)).outcome == "refused"
    d = WireDecoder()
    assert d.decode(record()[:-4]) is None and d.malformed == 1


def test_both_ends_local_count_once_and_name_both_processes():
    m = TcpMetrics(reasons={12: "NETFILTER_DROP"})
    m.feed([ConnectionOpened(9, 1, Role.SERVER, S, C, pid=17, comm="nginx"),
            chunk(C, S, True, 300, 7, "curl", 10), chunk(C, S, True, 200, 7, "curl", 20),
            chunk(C, S, False, 5000, 7, "curl", 30), chunk(S, C, False, 500, 17, "nginx", 11),
            chunk(S, C, True, 5000, 17, "nginx", 25),
            summary(connect_ns=2_000_000, srtt_us=120, retransmits=2, drops=((12, 1),)),
            summary(role=Role.SERVER, local=S, remote=C, pid=None, comm=None, srtt_us=80,
                    retransmits=1, resets_received=1)])
    [r] = m.snapshot(0, 10)
    assert (r["client"], r["server"], r["client_pid"], r["server_pid"]) == (
        "curl", "nginx", 7, 17)
    assert (r["connects"], r["accepts"], r["connect_failures"]) == (1, 1, 0)
    assert (r["bytes_sent"], r["bytes_received"]) == (500, 5000)
    assert (r["write_calls"], r["read_calls"]) == (3, 2)
    assert r["connect_ms"]["count"] == 1 and r["connect_ms"]["sum"] == 2.0
    assert r["rtt_us"]["count"] == 2 and r["rtt_us"]["sum"] == 200
    assert (r["retransmits"], r["resets_sent"], r["resets_received"]) == (3, 0, 0)
    assert r["drops"] == {"NETFILTER_DROP": 1}
    assert m.snapshot(10, 20) == []  # the interval starts afresh


def test_remote_ends_are_named_by_address_and_failures_by_reason():
    m = TcpMetrics(reasons={})
    m.feed([summary(outcome="refused", resets_received=1, remote=("10.0.0.9", 81)),
            summary(outcome="timed_out", retransmits=2, remote=("10.0.0.9", 81)),
            summary(role=Role.SERVER, local=S, remote=C, pid=None, comm=None,
                    resets_sent=1)])
    recs = {r["server"]: r for r in m.snapshot(0, 1)}
    failed = recs["10.0.0.9:81"]
    assert failed["connect_failures_by_reason"] == {"refused": 1, "timed_out": 1}
    assert (failed["connects"], failed["retransmits"], failed["resets_received"]) == (0, 2, 1)
    served = recs["10.0.0.2:8080"]  # an accepted socket whose owner was never seen
    assert (served["client"], served["accepts"], served["resets_received"]) == ("10.0.0.1", 1, 1)


def test_owned_only_and_bounds_are_counted():
    m = TcpMetrics(owned_only=True, max_sockets=2, reasons={})
    m.feed([summary(role=Role.SERVER, pid=None, comm=None)])
    assert m.snapshot(0, 1) == [] and m.counters["tcp_unowned_skipped"] == 1
    m.feed([chunk(("10.0.0.1", p), S, True, 1, 7, "curl", p) for p in (1, 2, 3)])
    assert m.counters["tcp_sockets_evicted"] == 1
    m.feed([summary(local=("10.0.0.1", p)) for p in (1, 2, 3)])
    assert len(m._closed) == 2 and m.counters["tcp_summaries_dropped"] == 1


def test_drop_reason_names_come_from_the_tracepoint_format(tmp_path):
    fmt = tmp_path / "format"
    fmt.write_text('print fmt: "reason: %s", __print_symbolic(REC->reason, '
                   '{ 2, "NOT_SPECIFIED" }, { 0x1c, "NETFILTER_DROP" })\n')
    assert drop_reason_names(str(fmt)) == {2: "NOT_SPECIFIED", 28: "NETFILTER_DROP"}
    assert drop_reason_names(str(tmp_path / "missing")) == {}


def test_unavailable_names_what_missing_tracepoints_feed():
    assert unavailable(["tracepoint/tcp/tcp_receive_reset", "raw_tp/kfree_skb"]) == [
        "drops", "resets_received"]
    assert unavailable(["raw_tp/tcp_destroy_sock"]) == ["retransmits", "tcp_metrics"]


def test_exec_and_exit_records_decode_without_endpoints():
    from l7scope.capture.proc_events import ProcessExec, ProcessExit

    def proc(kind, data=b""):
        head = EVENT.pack(5, 6, 0, 42, 43, -1, 0, 0, 0, 0, len(data),
                          L.ENUMS["l7_kind"][kind], 0, 0, 0, 0, 0, 0, 0, b"", b"",
                          b"python3".ljust(16, b"\0"))
        return head + data
    d = WireDecoder()
    assert d.decode(proc("L7_KIND_EXEC", b"/usr/bin/python3\0")) == ProcessExec(
        42, 6, "python3", "/usr/bin/python3")
    assert d.decode(proc("L7_KIND_EXIT")) == ProcessExit(42, 6, "python3")
    assert d.decode(proc("L7_KIND_EXEC", b"/usr/bin/python3\0")[:-5]) is None
    assert d.malformed == 1


def open_value(role=1, local=C, remote=S, **stats) -> bytes:
    """A tcp_health map value: struct l7_tcp_stats, then struct l7_conn_ends."""
    values = dict.fromkeys((f[0] for f in L.L7_TCP_STATS_FIELDS), 0)
    values.update(**stats)
    st = STATS.pack(*(values[f[0]] for f in L.L7_TCP_STATS_FIELDS)).ljust(L.L7_TCP_STATS_SIZE,
                                                                            b"\0")
    ip = lambda a: bytes(map(int, a.split("."))).ljust(16, b"\0")  # noqa: E731
    ends = ENDS.pack(5, role, 0, 0, 2, local[1], remote[1], ip(local[0]), ip(remote[0]))
    return st + ends + bytes(48)  # the kernel-only rest of the entry


def test_open_socket_entries_decode():
    o = decode_open(open_value(retransmits=4, resets_received=1, drop_reason0=12, drop_count0=2))
    assert o == TcpOpen(Role.CLIENT, C, S, 4, 0, 1, ((12, 2),), 0)
    assert decode_open(open_value(local=("10.0.0.1", 0), retransmits=1)) is None  # no port yet
    assert decode_open(open_value(srtt_us=50, connect_ns=9)) is None  # nothing counted yet
    assert decode_open(open_value(retransmits=1)[:70]) is None


def test_an_open_connection_reports_each_interval_and_the_rest_at_close():
    live = []
    m = TcpMetrics(reasons={12: "NETFILTER_DROP"}, live=lambda: live)
    m.feed([ConnectionOpened(9, 1, Role.SERVER, S, C, pid=17, comm="nginx"),
            chunk(C, S, True, 300, 7, "curl", 10), chunk(S, C, False, 300, 17, "nginx", 11),
            chunk(S, C, True, 4000, 17, "nginx", 12), chunk(C, S, False, 4000, 7, "curl", 13)])
    live[:] = [TcpOpen(Role.CLIENT, C, S, 3, 0, 0, ((12, 2),), 0),
               TcpOpen(Role.SERVER, S, C, 1, 0, 0, (), 0)]
    [r] = m.snapshot(0, 10)
    assert (r["client"], r["server"], r["bytes_sent"], r["bytes_received"]) == (
        "curl", "nginx", 300, 4000)
    assert (r["retransmits"], r["drops"], r["connects"], r["accepts"]) == (
        4, {"NETFILTER_DROP": 2}, 0, 0)
    assert r["rtt_us"]["count"] == 0
    assert m.snapshot(10, 20) == []  # nothing moved meanwhile: no record
    m.feed([chunk(C, S, True, 50, 7, "curl", 30), chunk(S, C, False, 50, 17, "nginx", 31)])
    live[:] = []  # closed: the entries are gone, the summaries carry the totals
    m.feed([summary(connect_ns=1_000_000, srtt_us=100, retransmits=5, drops=((12, 3),)),
            summary(role=Role.SERVER, local=S, remote=C, pid=None, comm=None, srtt_us=90,
                    retransmits=1)])
    [r] = m.snapshot(20, 30)
    assert (r["bytes_sent"], r["bytes_received"], r["connects"], r["accepts"]) == (50, 0, 1, 1)
    assert (r["retransmits"], r["drops"], r["rtt_us"]["count"]) == (
        2, {"NETFILTER_DROP": 1}, 2)


def test_sockets_older_than_the_agent_are_told_client_or_server_by_listening_ports():
    # both ends of a local connection accepted before the agent: the kernel knows no role
    nginx, client = ("127.0.0.1", 8080), ("127.0.0.1", 55336)
    m = TcpMetrics(reasons={}, listening=frozenset({8080}))
    m.feed([chunk(nginx, client, True, 5000, 17, "nginx", 10),
            chunk(nginx, client, False, 300, 17, "nginx", 5),
            chunk(client, nginx, True, 300, 7, "wrk", 4),
            chunk(client, nginx, False, 5000, 7, "wrk", 11)])
    [r] = m.snapshot(0, 10)
    assert (r["client"], r["server"], r["client_pid"], r["server_pid"]) == ("wrk", "nginx", 7, 17)
    assert (r["bytes_sent"], r["bytes_received"]) == (300, 5000)
    # the server's side alone (its peer not traced): still the server, the peer the client
    m = TcpMetrics(reasons={}, listening=frozenset({8080}))
    m.feed([chunk(nginx, ("10.0.0.9", 41000), True, 700, 17, "nginx", 10)])
    [r] = m.snapshot(0, 10)
    assert (r["client"], r["server"], r["server_pid"]) == ("10.0.0.9", "nginx", 17)
