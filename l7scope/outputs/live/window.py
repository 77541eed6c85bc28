"""Sliding-window statistics of one live-view row: status classes and exact percentiles.

Theory of operation
-------------------
The window (``window_s`` seconds, 10 by default) is cut into one-second slices kept in a
deque; a slice older than the window is dropped whole when the next value arrives or a
figure is read. Each slice counts its exchanges by class (2xx, 3xx, 4xx, 5xx, err = a gRPC
call with a non-OK status or an exchange without a response) and keeps their durations in an
``array('d')`` of at most ``per_slice`` values. While a slice has seen no more than that,
it holds every duration and the percentiles over the window are exact (nearest rank: the
value at rank ceil(q * n) of the sorted durations). Past it the slice keeps a uniform
reservoir (Algorithm R) and each kept value stands for count / kept exchanges; the
percentile is then the weighted nearest rank, and ``Figures.exact`` says it is an estimate.
Memory per row is bounded: slices x per_slice x 8 bytes (80 KiB with the defaults).
"""
from __future__ import annotations

import math
import random
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

CLASSES = ("2xx", "3xx", "4xx", "5xx", "err")


def status_class(status: int | None, grpc_status: int | None) -> int:
    """Index into CLASSES; 1xx counts with 2xx (an interim answer that went on)."""
    if status is None or grpc_status not in (None, 0):
        return 4
    if status >= 500:
        return 3
    if status >= 400:
        return 2
    return 1 if status >= 300 else 0


@dataclass(slots=True)
class _Slice:
    second: int
    count: int = 0
    ranked: int = 0  # durations offered (exchanges with a response)
    classes: list = field(default_factory=lambda: [0] * len(CLASSES))
    durations: array = field(default_factory=lambda: array("d"))


class Figures(NamedTuple):
    """What a row shows: counts by class over the window, p50/p99 in seconds."""

    total: int
    classes: tuple[int, ...]
    p50: float | None
    p99: float | None
    exact: bool


class Window:
    def __init__(self, window_s: int = 10, per_slice: int = 512, rng: random.Random | None = None):
        self.window_s = window_s
        self.per_slice = per_slice
        self._rng = rng or random.Random(0x17)
        self._slices: deque[_Slice] = deque()

    def add(self, now_s: float, duration_s: float | None, klass: int) -> None:
        """One exchange; ``duration_s`` None when it has no response (counted, not ranked)."""
        second = int(now_s)
        self._expire(second)
        if not self._slices or self._slices[-1].second != second:
            self._slices.append(_Slice(second))
        s = self._slices[-1]
        s.count += 1
        s.classes[klass] += 1
        if duration_s is None:
            return
        s.ranked += 1
        if len(s.durations) < self.per_slice:
            s.durations.append(duration_s)
        else:
            j = self._rng.randrange(s.ranked)  # Algorithm R: keep with probability k/n
            if j < self.per_slice:
                s.durations[j] = duration_s

    def _expire(self, second: int) -> None:
        while self._slices and self._slices[0].second <= second - self.window_s:
            self._slices.popleft()

    def figures(self, now_s: float) -> Figures:
        self._expire(int(now_s))
        classes = [0] * len(CLASSES)
        weighted: list[tuple[float, float]] = []
        exact = True
        for s in self._slices:
            for i, c in enumerate(s.classes):
                classes[i] += c
            if s.durations:
                weight = s.ranked / len(s.durations)
                exact = exact and s.ranked == len(s.durations)
                weighted.extend((d, weight) for d in s.durations)
        total = sum(classes)
        return Figures(total, tuple(classes), _rank(weighted, 0.5), _rank(weighted, 0.99), exact)

    def __bool__(self) -> bool:
        return bool(self._slices)


def _rank(weighted: list[tuple[float, float]], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value whose cumulative weight reaches q * n."""
    if not weighted:
        return None
    weighted.sort()
    target = math.ceil(q * sum(w for _, w in weighted) - 1e-9)
    seen = 0.0
    for value, weight in weighted:
        seen += weight
        if seen >= target - 1e-9:
            return value
    return weighted[-1][0]
