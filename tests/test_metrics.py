"""MetricsAggregator, pair_of, is_error: per-process-pair metrics from Exchange records."""
from __future__ import annotations

import pytest

from l7scope.exchange import Exchange
from l7scope.metrics import MetricsAggregator, is_error, pair_of, service_names
from l7scope.metrics_types import DURATION_MS_BOUNDS, SIZE_BYTES_BOUNDS

MS = 1_000_000
N_DUR = len(DURATION_MS_BOUNDS) + 1
N_SIZE = len(SIZE_BYTES_BOUNDS) + 1


def record(**kw) -> Exchange:
    base = dict(protocol="http1", side="client", pid=100, comm="curl", local="10.0.0.1:45000",
                remote="10.0.0.2:8080", peer_pid=None, conn_id=1, stream_id=None, method="GET",
                path="/", authority="h", status=200, grpc_status=None, request_bytes=100,
                response_bytes=1000, start_ns=0, end_ns=10 * MS, time="", trace=None,
                request_id=None, tls=False, partial=False, notes=())
    base.update(kw)
    return Exchange(**base)


def client_rec(**kw) -> Exchange:
    return record(**kw)


def server_rec(**kw) -> Exchange:
    kw = {"side": "server", "pid": 200, "comm": "nginx", "local": "10.0.0.2:8080",
          "remote": "10.0.0.1:45000", **kw}
    return record(**kw)


def one_hot(n: int, i: int) -> tuple[int, ...]:
    return tuple(1 if j == i else 0 for j in range(n))


# -- pair names ----------------------------------------------------------------------------------

def test_pair_of_both_ends_traced():
    assert pair_of(client_rec(peer_pid=200), "nginx") == ("curl", "nginx", 100, 200)
    assert pair_of(server_rec(peer_pid=100), "curl") == ("curl", "nginx", 100, 200)


def test_remote_server_is_named_by_ip_and_port():
    assert pair_of(client_rec()) == ("curl", "10.0.0.2:8080", 100, None)
    assert pair_of(client_rec(remote="[2001:db8::2]:443")) == ("curl", "[2001:db8::2]:443", 100, None)


def test_remote_client_is_named_by_ip_only():
    assert pair_of(server_rec()) == ("10.0.0.1", "nginx", None, 200)
    assert pair_of(server_rec(remote="[2001:db8::1]:51000")) == ("2001:db8::1", "nginx", None, 200)


def test_capture_record_local_is_the_client():
    rec = record(side=None, pid=None, comm=None)
    assert pair_of(rec) == ("10.0.0.1", "10.0.0.2:8080", None, None)


def test_unknown_comm_is_a_question_mark():
    assert pair_of(client_rec(comm=None))[0] == "?"


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, grpc_status, error", [
    (200, None, False), (404, None, False), (499, None, False), (500, None, True),
    (503, None, True), (None, None, True), (200, 0, False), (200, 2, True), (200, 14, True),
])
def test_is_error(status, grpc_status, error):
    assert is_error(record(status=status, grpc_status=grpc_status)) is error


# -- aggregation ---------------------------------------------------------------------------------

def test_both_sides_traced_counts_the_request_once_and_each_side_its_duration():
    agg = MetricsAggregator()
    agg.record(server_rec(peer_pid=100, start_ns=0, end_ns=20 * MS, request_bytes=64,
                          response_bytes=65), "curl")
    agg.record(client_rec(peer_pid=200, start_ns=0, end_ns=30 * MS, request_bytes=64,
                          response_bytes=65), "nginx")
    [pm] = agg.snapshot(1_000, 61 * 10**9 + 1_000)
    assert (pm.protocol, pm.client, pm.server, pm.client_pid, pm.server_pid) == (
        "http1", "curl", "nginx", 100, 200)
    assert (pm.requests, pm.status_counts, pm.errors) == (1, (("200", 1),), 0)
    assert pm.server_duration_ms.counts == one_hot(N_DUR, DURATION_MS_BOUNDS.index(25))
    assert pm.client_duration_ms.counts == one_hot(N_DUR, DURATION_MS_BOUNDS.index(50))
    assert (pm.server_duration_ms.sum, pm.client_duration_ms.sum) == (20.0, 30.0)
    assert pm.request_bytes.counts == one_hot(N_SIZE, 0)  # 64 is in the (..64] bucket
    assert pm.response_bytes.counts == one_hot(N_SIZE, 1)  # 65 is in (64, 256]
    assert (pm.request_bytes.count, pm.response_bytes.count) == (1, 1)


def test_client_only_traced_counts_from_the_client_record():
    agg = MetricsAggregator()
    agg.record(client_rec(status=502, end_ns=3 * MS))
    [pm] = agg.snapshot(0, 10**9)
    assert (pm.client, pm.server, pm.requests, pm.errors) == ("curl", "10.0.0.2:8080", 1, 1)
    assert pm.status_counts == (("502", 1),)
    assert pm.client_duration_ms.counts == one_hot(N_DUR, DURATION_MS_BOUNDS.index(5))
    assert pm.server_duration_ms.count == 0


def test_server_only_traced_remote_clients_share_one_pair_per_ip():
    agg = MetricsAggregator()
    for port in (40000, 40001, 40002):
        agg.record(server_rec(remote=f"10.0.0.1:{port}", end_ns=MS))
    [pm] = agg.snapshot(0, 10**9)
    assert (pm.client, pm.server, pm.requests) == ("10.0.0.1", "nginx", 3)
    assert pm.server_duration_ms.counts == tuple(3 if i == 1 else 0 for i in range(N_DUR))
    assert pm.client_duration_ms.count == 0


def test_capture_records_feed_both_durations():
    agg = MetricsAggregator()
    agg.record(record(side=None, pid=None, comm=None, end_ns=MS // 2))
    [pm] = agg.snapshot(0, 10**9)
    assert (pm.client, pm.server, pm.requests) == ("10.0.0.1", "10.0.0.2:8080", 1)
    assert pm.client_duration_ms.counts == one_hot(N_DUR, 0) == pm.server_duration_ms.counts


def test_histogram_bucket_upper_bounds_are_inclusive():
    agg = MetricsAggregator()
    for ms in (0, 0.5, 0.501, 1, 10000, 10000.5, 99999):
        agg.record(client_rec(start_ns=0, end_ns=int(ms * MS)))
    [pm] = agg.snapshot(0, 1)
    assert pm.client_duration_ms.counts == (2, 2) + (0,) * 11 + (1, 2)
    assert pm.client_duration_ms.count == 7


def test_size_histogram_counts():
    agg = MetricsAggregator()
    for size in (0, 64, 65, 256, 4194304, 4194305):
        agg.record(client_rec(request_bytes=size, response_bytes=size))
    [pm] = agg.snapshot(0, 1)
    assert pm.request_bytes.counts == (2, 2, 0, 0, 0, 0, 0, 0, 1, 1)
    assert pm.response_bytes.counts == pm.request_bytes.counts
    assert pm.request_bytes.sum == 0 + 64 + 65 + 256 + 4194304 + 4194305


def test_no_response_counts_the_request_as_error_without_duration_or_response_size():
    agg = MetricsAggregator()
    agg.record(client_rec(status=None, response_bytes=0, end_ns=5 * MS))
    [pm] = agg.snapshot(0, 1)
    assert (pm.requests, pm.errors, pm.status_counts) == (1, 1, (("none", 1),))
    assert pm.request_bytes.count == 1
    assert (pm.response_bytes.count, pm.client_duration_ms.count) == (0, 0)


def test_protocols_are_separate_pairs():
    agg = MetricsAggregator()
    agg.record(client_rec(protocol="http2"))
    agg.record(client_rec(protocol="grpc", grpc_status=3))
    out = agg.snapshot(0, 1)
    assert [(pm.protocol, pm.requests, pm.errors) for pm in out] == [("grpc", 1, 1), ("http2", 1, 0)]


def test_overflow_pair_beyond_max_pairs():
    agg = MetricsAggregator(max_pairs=2)
    agg.record(client_rec(remote="10.0.0.2:1"))
    agg.record(client_rec(remote="10.0.0.2:2"))
    agg.record(client_rec(remote="10.0.0.2:3"))
    agg.record(client_rec(remote="10.0.0.2:4", status=500))
    agg.record(client_rec(remote="10.0.0.2:1"))  # an existing pair still has its own series
    out = {(pm.client, pm.server): pm for pm in agg.snapshot(0, 1)}
    assert sorted(out) == [("(overflow)", "(overflow)"), ("curl", "10.0.0.2:1"),
                           ("curl", "10.0.0.2:2")]
    assert out["(overflow)", "(overflow)"].requests == 2
    assert out["(overflow)", "(overflow)"].errors == 1
    assert out["curl", "10.0.0.2:1"].requests == 2
    assert agg.overflow_records == 2


def test_snapshot_starts_a_fresh_interval():
    agg = MetricsAggregator(max_pairs=1)
    agg.record(client_rec())
    agg.record(client_rec(remote="10.0.0.3:80"))
    first = agg.snapshot(0, 10**9)
    assert [(pm.server, pm.requests) for pm in first] == [("(overflow)", 1), ("10.0.0.2:8080", 1)]
    assert agg.snapshot(10**9, 2 * 10**9) == []
    agg.record(client_rec(remote="10.0.0.3:80"))
    [pm] = agg.snapshot(2 * 10**9, 3 * 10**9)
    assert (pm.server, pm.requests, pm.interval_start_ns, pm.interval_end_ns) == (
        "10.0.0.3:80", 1, 2 * 10**9, 3 * 10**9)


def test_pair_metrics_dict():
    agg = MetricsAggregator()
    for _ in range(3):
        agg.record(client_rec())
    [pm] = agg.snapshot(0, 30 * 10**9)
    d = pm.to_dict()
    assert (d["requests"], d["requests_per_min"], d["status_counts"]) == (3, 6.0, {"200": 3})
    assert d["client_duration_ms"]["counts"][DURATION_MS_BOUNDS.index(10)] == 3
    assert d["client_duration_ms"]["bounds"] == list(DURATION_MS_BOUNDS)
    assert pm.client_duration_ms.quantile(0.5) == 10


# -- names without pids (issue: short-lived clients add no series) ------------------------------

def test_200_client_pids_of_one_program_are_one_client_series():
    agg = MetricsAggregator()
    for pid in range(1000, 1200):
        agg.record(client_rec(pid=pid, comm="curl", peer_pid=200, status=200), "nginx")
        agg.record(server_rec(peer_pid=pid), "curl")
    [pm] = agg.snapshot(0, 1)
    assert (pm.client, pm.server, pm.requests) == ("curl", "nginx", 200)
    assert (pm.client_pid, pm.server_pid) == (1199, 200)  # the last seen
    assert pm.client_duration_ms.count == 200 and pm.server_duration_ms.count == 200


class _Info:
    def __init__(self, name, service):
        self.name, self.service = name, service


class _Table:
    def __init__(self, infos):
        self.infos = infos

    def lookup(self, pid):
        return self.infos.get(pid)


def test_service_names_from_the_process_table():
    table = _Table({100: _Info("python3", "python3 client.py"), 101: _Info("python3", None),
                    200: _Info("nginx", "nginx")})
    name = service_names(table)
    agg = MetricsAggregator(name=name)
    agg.record(client_rec(pid=100, comm="python3", peer_pid=200), "nginx")
    agg.record(client_rec(pid=101, comm="python3", peer_pid=200), "nginx")
    agg.record(client_rec(pid=999, comm="curl", peer_pid=200), "nginx")  # unknown to the table
    out = [(pm.client, pm.server) for pm in agg.snapshot(0, 1)]
    assert out == [("curl", "nginx"), ("python3", "nginx"), ("python3 client.py", "nginx")]
    assert name(None, 4242) == "?"


def test_pair_names_follow_the_process_table_when_the_name_stays(tmp_path):
    """A pid reused by another program of the same name (another script, another service):
    the pair's name changes with the table, though every field of the record stays the same
    (the names are kept per record identity only while the table's version holds)."""
    from l7scope.procs.procfs import ProcFS
    from l7scope.procs.table import ProcessTable
    from tests.procs.test_table import Clock, FakeProc

    proc, clock = FakeProc(tmp_path), Clock()
    proc.add(100, "python3", start=10, args=("python3", "/srv/billing.py"))
    table = ProcessTable(procfs=ProcFS(str(tmp_path)), clock=clock, container_names=None)
    agg = MetricsAggregator(name=service_names(table))
    table.lookup(100)  # as the pipeline does for each record
    agg.record(client_rec(pid=100, comm="python3"))
    agg.record(client_rec(pid=100, comm="python3"))
    proc.add(100, "python3", start=99, args=("python3", "/srv/search.py"))  # pid reused
    clock.now += 3 * 10**9  # past revalidation
    assert table.lookup(100).service == "python3 search.py"
    agg.record(client_rec(pid=100, comm="python3"))
    out = [(pm.client, pm.requests) for pm in agg.snapshot(0, 1)]
    assert out == [("python3 billing.py", 2), ("python3 search.py", 1)]
