"""Window statistics: exact nearest-rank percentiles while small, bounded reservoir past it."""
from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.outputs.live.window import Window, status_class


def test_exact_percentiles_and_classes():
    w = Window(window_s=10)
    for ms in range(1, 101):
        w.add(100.2, ms / 1000, status_class(200 if ms <= 90 else 404 if ms <= 97 else 503, None))
    w.add(100.3, None, status_class(None, None))  # no response: counted, not ranked
    w.add(100.4, 0.5, status_class(200, 5))  # gRPC NOT_FOUND
    f = w.figures(101.0)
    assert f.classes == (90, 0, 7, 3, 2) and f.total == 102
    assert (f.p50, f.p99, f.exact) == (0.051, 0.1, True)  # 101 ranked values


def test_values_leave_with_their_slice():
    w = Window(window_s=10)
    w.add(100.0, 9.0, 0)
    w.add(105.0, 1.0, 0)
    assert w.figures(109.9).p99 == 9.0
    f = w.figures(110.0)  # second 100 is out of the window 101..110
    assert (f.total, f.p50, f.p99) == (1, 1.0, 1.0)
    assert w.figures(200.0).total == 0 and not w


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.99]))
def test_exact_equals_sorted_nearest_rank(values, q):
    w = Window(window_s=10, per_slice=512)
    for i, v in enumerate(values):
        w.add(50.0 + (i % 5), v, 0)
    f = w.figures(55.0)
    ordered = sorted(values)
    expected = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    assert (f.p50 if q == 0.5 else f.p99) == expected
    assert f.exact


def test_reservoir_bounded_and_estimate_marked():
    w = Window(window_s=10, per_slice=100, rng=random.Random(1))
    values = [i / 1000 for i in range(10_000)]
    random.Random(2).shuffle(values)
    for v in values:
        w.add(7.0, v, 0)
    f = w.figures(7.5)
    assert len(w._slices[0].durations) == 100
    assert f.total == 10_000 and not f.exact
    assert 3.5 < f.p50 < 6.5  # a uniform sample of 0..10 s: median near 5 s
