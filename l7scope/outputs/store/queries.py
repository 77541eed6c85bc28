"""What the API asks the store, independent of the backend: query specs, their validation from
URL parameters, and the shaping of backend rows into the JSON of docs/api.md.

Theory of operation
-------------------
Each endpoint has a frozen spec (TopologyQuery, ExchangeQuery, SampleQuery, MetricsQuery,
TcpQuery)
built by ``parse_*`` from the URL's parameters: every parameter is optional, each is checked
by an explicit rule and a bad one raises BadRequest with a one-line reason (the API answers
400). A backend (sqlite.py, clickhouse.py) answers a spec with plain rows; the shaping
here turns them into the contract's JSON, so every backend gives the same answer.

Percentiles come from log-scale buckets (schema.bucket_of, 16 per doubling) carried with the
minimum and maximum value seen in each bucket: the nearest-rank position is found by bucket and
placed linearly between that bucket's min and max, so equal values come out exact and others
within about 4 %. Rows carry a weight (1, or N when the store kept 1 in N exchanges), so counts
and percentiles stay estimates of the whole traffic above the store's rate.

``path_regex`` is user input run against stored paths: the pattern is capped at 256
characters, nested repetition (``(a+)+``, ``(a+){10}``) and repeated alternation
(``(a|aa)+``), the catastrophic backtracking shapes, are refused, it is
matched against at most the first 4096 characters of a path, and over at most MAX_CANDIDATES
newest rows that pass the other filters (the answer says when it stopped there).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from l7scope.outputs.store.rollup import SLOT_S

try:  # Python 3.11+: the regex parser is re._parser
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover
    import sre_parse as _sre_parse

MAX_LIMIT = 1000
MAX_SINCE_S = 10 * 365 * 86400
MAX_POINTS = 1440
MAX_REGEX = 256
MAX_CANDIDATES = 100_000
PROTOCOLS = ("http1", "http2", "grpc")
LISTS = ("slow", "4xx", "5xx")
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


class BadRequest(ValueError):
    """A query parameter the API refuses; the message is the one-line reason."""


class StoreUnavailable(Exception):
    """A backend could not answer (a server refused or could not be reached): the API's 503."""


@dataclass(frozen=True, slots=True)
class TopologyQuery:
    since_s: float | None = None


@dataclass(frozen=True, slots=True)
class ExchangeQuery:
    since_s: float | None = None
    client: str | None = None
    server: str | None = None
    protocol: str | None = None
    status_min: int | None = None
    status_max: int | None = None
    min_duration_ms: float | None = None
    path_regex: re.Pattern | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class SampleQuery:
    client: str | None = None
    server: str | None = None
    list: str | None = None
    since_s: float | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    client: str | None = None
    server: str | None = None
    protocol: str | None = None
    since_s: float | None = None
    step_s: float | None = None


@dataclass(frozen=True, slots=True)
class TcpQuery:
    client: str | None = None
    server: str | None = None
    since_s: float | None = None
    step_s: float | None = None


# --- parameter parsing -------------------------------------------------------------------

def _one(query: dict, name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name}: given more than once")
    return values[0]


def _check_known(query: dict, known: tuple[str, ...]) -> None:
    for name in query:
        if name not in known:
            raise BadRequest(f"unknown parameter {name!r}; known: {', '.join(known)}")


def _number(query: dict, name: str, low: float, high: float) -> float | None:
    text = _one(query, name)
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,9})?", text):
        raise BadRequest(f"{name}: expected a non-negative decimal number, got {text[:40]!r}")
    value = float(text)
    if not low <= value <= high:
        raise BadRequest(f"{name}: {text} is outside {low:g}..{high:g}")
    return value


def _integer(query: dict, name: str, low: int, high: int) -> int | None:
    text = _one(query, name)
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise BadRequest(f"{name}: expected an integer, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadRequest(f"{name}: {value} is outside {low}..{high}")
    return value


def _choice(query: dict, name: str, choices: tuple[str, ...]) -> str | None:
    text = _one(query, name)
    if text is not None and text not in choices:
        raise BadRequest(f"{name}: expected one of {'|'.join(choices)}, got {text[:40]!r}")
    return text


def _node(query: dict, name: str) -> str | None:
    text = _one(query, name)
    if text is not None and (len(text) > 512 or not text.startswith(("proc:", "remote:"))):
        raise BadRequest(f"{name}: expected a node id (proc:NAME, remote:IP or remote:IP:PORT)")
    return text


def _since(query: dict) -> float | None:
    return _number(query, "since", 0.001, MAX_SINCE_S)


def parse_topology(query: dict) -> TopologyQuery:
    _check_known(query, ("since",))
    return TopologyQuery(_since(query))


def parse_exchanges(query: dict) -> ExchangeQuery:
    _check_known(query, ("since", "client", "server", "protocol", "status_min", "status_max",
                         "min_duration_ms", "path_regex", "limit"))
    q = ExchangeQuery(
        since_s=_since(query), client=_node(query, "client"), server=_node(query, "server"),
        protocol=_choice(query, "protocol", PROTOCOLS),
        status_min=_integer(query, "status_min", 100, 999),
        status_max=_integer(query, "status_max", 100, 999),
        min_duration_ms=_number(query, "min_duration_ms", 0, 86_400_000),
        path_regex=compile_path_regex(_one(query, "path_regex")),
        limit=_integer(query, "limit", 1, MAX_LIMIT) or 100)
    if q.status_min is not None and q.status_max is not None and q.status_min > q.status_max:
        raise BadRequest(f"status_min {q.status_min} is above status_max {q.status_max}")
    return q


def parse_samples(query: dict) -> SampleQuery:
    _check_known(query, ("client", "server", "list", "since", "limit"))
    return SampleQuery(client=_node(query, "client"), server=_node(query, "server"),
                       list=_choice(query, "list", LISTS), since_s=_since(query),
                       limit=_integer(query, "limit", 1, MAX_LIMIT) or 50)


def parse_metrics(query: dict) -> MetricsQuery:
    _check_known(query, ("client", "server", "protocol", "since", "step"))
    return MetricsQuery(client=_node(query, "client"), server=_node(query, "server"),
                        protocol=_choice(query, "protocol", PROTOCOLS), since_s=_since(query),
                        step_s=_number(query, "step", 1, 86400))


def parse_tcp(query: dict) -> TcpQuery:
    _check_known(query, ("client", "server", "since", "step"))
    return TcpQuery(client=_node(query, "client"), server=_node(query, "server"),
                    since_s=_since(query), step_s=_number(query, "step", 1, 86400))


def compile_path_regex(text: str | None) -> re.Pattern | None:
    if text is None:
        return None
    if len(text) > MAX_REGEX:
        raise BadRequest(f"path_regex: longer than {MAX_REGEX} characters")
    try:
        parsed = _sre_parse.parse(text)
        pattern = re.compile(text)
    except (re.error, RecursionError, OverflowError) as e:
        raise BadRequest(f"path_regex: not a regular expression: {e}") from None
    if _nested_repeat(parsed, inside=False):
        raise BadRequest("path_regex: nested repetition such as (a+)+ or a repeated "
                         "alternation such as (a|aa)+ is not allowed")
    return pattern


_REPEATS = {_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT,
            getattr(_sre_parse, "POSSESSIVE_REPEAT", None)}


def _nested_repeat(parsed, inside: bool) -> bool:
    """True when a repetition that may match more than once holds a repetition of variable
    length or an alternation: the shapes that backtrack exponentially ((a+)+, (a|aa)+) or
    polynomially ((a+){10})."""
    for op, arg in parsed:
        if op in _REPEATS:
            low, high, sub = arg
            unbounded = high is _sre_parse.MAXREPEAT
            if inside and (unbounded or high > low):
                return True
            if _nested_repeat(sub, inside or unbounded or high > 1):
                return True
        elif op is _sre_parse.SUBPATTERN:
            if _nested_repeat(arg[-1], inside):
                return True
        elif op is _sre_parse.BRANCH:
            if inside:  # (a|aa)+: overlapping alternatives backtrack exponentially too
                return True
            if any(_nested_repeat(b, inside) for b in arg[1]):
                return True
        elif op in (_sre_parse.ASSERT, _sre_parse.ASSERT_NOT):
            if _nested_repeat(arg[1], inside):
                return True
    return False


# --- time axis ---------------------------------------------------------------------------

def time_steps(since_s: float | None, step_s: float | None, now: int,
               oldest_ts) -> tuple[int, int, int]:
    """(t0, step_s, points) of a time series: t0 ``since_s`` back from ``now`` (else the
    oldest row, ``oldest_ts()``, else a minute back) floored to a slot; the step rounded up to
    whole slots (default: the range over 120); BadRequest above MAX_POINTS points."""
    if since_s is not None:
        t0 = now - int(since_s * 1e9)
    else:
        oldest = oldest_ts()
        t0 = min(oldest, now) if oldest is not None else now - 60 * 10**9
    t0 -= t0 % (SLOT_S * 10**9)
    span_s = max(1e-9, (now - t0) / 1e9)
    step = step_s or math.ceil(span_s / 120)
    step = max(1, math.ceil(step / SLOT_S)) * SLOT_S
    points = math.ceil(span_s / step)
    if points > MAX_POINTS:
        raise BadRequest(f"step: {span_s:.0f} s in steps of {step:g} s is {points} points, "
                         f"more than {MAX_POINTS}; raise step")
    return t0, step, points


# --- shaping -------------------------------------------------------------------------------

def quantile(buckets: list[tuple[int, int, int, int]], q: float) -> int | None:
    """Nearest-rank quantile from (bucket, weight, min, max) rows (None when empty)."""
    total = sum(w for _, w, _, _ in buckets)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for _, w, low, high in sorted(buckets):
        if seen + w >= rank:
            k = rank - seen  # 1..w within this bucket
            return low if w <= 1 else round(low + (high - low) * (k - 1) / (w - 1))
        seen += w
    return sorted(buckets)[-1][3]


def ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def percentiles(buckets: list, scale=ms) -> dict:
    return {name: scale(quantile(buckets, q)) for name, q in QUANTILES}


def node_kind(node_id: str) -> str:
    return "process" if node_id.startswith("proc:") else "remote"


def regex_filter(rows, pattern: re.Pattern | None, limit: int,
                 max_candidates: int = MAX_CANDIDATES) -> tuple[list[dict], bool]:
    """The first ``limit`` rows whose path matches; True when the candidate bound stopped the
    scan before ``limit`` matches were found."""
    out = []
    for n, row in enumerate(rows):
        if n >= max_candidates:
            return out, True
        if pattern is not None and not pattern.search((row.get("path") or "")[:4096]):
            continue
        out.append(row)
        if len(out) >= limit:
            break
    return out, False
