"""Backend-neutral query pieces: percentiles from buckets, the path_regex guard, the bounded
candidate scan, the rollup's cells."""
from __future__ import annotations

import pytest

from l7scope.outputs.store import queries
from l7scope.outputs.store.queries import BadRequest, compile_path_regex, quantile, regex_filter
from l7scope.outputs.store.rollup import SLOT_NS, Rollup
from l7scope.outputs.store.schema import bucket_of
from tests.web import scenario as sc


def test_quantile_nearest_rank_exact_for_equal_values():
    rows = [(bucket_of(10_000_000, 1000), 5, 10_000_000, 10_000_000),
            (bucket_of(600_000_000, 1000), 1, 600_000_000, 600_000_000)]
    assert quantile(rows, 0.5) == 10_000_000
    assert quantile(rows, 5 / 6) == 10_000_000  # rank 5
    assert quantile(rows, 0.84) == 600_000_000  # rank ceil(5.04) = 6
    assert quantile([], 0.5) is None


def test_quantile_interpolates_inside_a_bucket():
    # 3 values in one bucket between 1000 and 1040: ranks 1, 2, 3 -> 1000, 1020, 1040
    rows = [(7, 3, 1000, 1040)]
    assert [quantile(rows, q) for q in (0.1, 0.5, 1.0)] == [1000, 1020, 1040]


def test_buckets_are_16_per_doubling():
    assert [bucket_of(v) for v in (0, 1, 2, 4, 1024)] == [0, 1, 17, 33, 161]
    assert bucket_of(999, 1000) == 0 and bucket_of(1000, 1000) == 1


@pytest.mark.parametrize("pattern", ["(a+)+", "(a*)*b", "(?:x|y+)*", "((ab)+c)+", "(a{2,})+",
                                     "(a+){10}", "(a|aa)+b", "(/v1|/x2)*",
                                     "(?=(a+)+)b"])
def test_nested_repetition_refused(pattern):
    with pytest.raises(BadRequest, match="nested repetition"):
        compile_path_regex(pattern)


@pytest.mark.parametrize("pattern", ["^/api/", "a+b+", "(ab)+", "(a|b)?c*", "[a-z]+/[0-9]{1,4}",
                                     "(a{2})+", "items/99[0-9]",
                                     "^/(api|v2)/[a-z]+$", "(a|b)+"])
def test_plain_patterns_allowed(pattern):
    assert compile_path_regex(pattern).pattern == pattern


def test_candidate_scan_is_bounded():
    rows = [{"path": f"/p{i}"} for i in range(10)]
    assert regex_filter(iter(rows), compile_path_regex("9$"), 5, max_candidates=3) == ([], True)
    hits, truncated = regex_filter(iter(rows), compile_path_regex("^/p[0-4]$"), 2)
    assert ([h["path"] for h in hits], truncated) == (["/p0", "/p1"], False)
    assert regex_filter(iter(rows), None, 100, max_candidates=100) == (rows, False)


def test_rollup_cells_of_one_request_seen_by_both_sides():
    server, client = sc.both_sides("10.0.0.1:1", "10.0.0.2:80", 100, 200, 503, 20, 3, "/x")
    r = Rollup()
    for ex in (server, client):
        r.add(ex, ex.start_ns, "proc:curl", "proc:nginx")
    slot = sc.T0  # 3 s after T0 is in the slot starting at T0
    assert sc.T0 % SLOT_NS == 0
    d20, d21 = bucket_of(20 * sc.MS, 1000), bucket_of(21 * sc.MS, 1000)
    assert sorted(r.rows("h")) == sorted([
        (slot, "h", "proc:curl", "proc:nginx", "http1", "status", 503, 1, 0, 0),
        (slot, "h", "proc:curl", "proc:nginx", "http1", "error", 0, 1, 0, 0),
        (slot, "h", "proc:curl", "proc:nginx", "http1", "req_bytes", bucket_of(100), 1, 100, 100),
        (slot, "h", "proc:curl", "proc:nginx", "http1", "resp_bytes", bucket_of(200), 1, 200, 200),
        (slot, "h", "proc:curl", "proc:nginx", "http1", "dur", d20, 1, 20 * sc.MS, 20 * sc.MS),
        (slot, "h", "proc:curl", "proc:nginx", "http1", "dur_server", d20, 1, 20 * sc.MS, 20 * sc.MS),
        (slot, "h", "proc:curl", "proc:nginx", "http1", "dur_client", d21, 1, 21 * sc.MS, 21 * sc.MS),
    ])


def test_limits_are_what_docs_say():
    assert (queries.MAX_LIMIT, queries.MAX_POINTS, queries.MAX_REGEX) == (1000, 1440, 256)
