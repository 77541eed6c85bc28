"""Sampling of slow and failing exchanges: rules, reasons, and a bounded top-N per pair.

Theory of operation
-------------------
Every finished Exchange is offered to the Sampler. It picks one rule by the request path
(query string removed): each rule with a ``uri_regex`` is tried with ``re.search`` and the LAST
one that matches wins; when none matches the default rule (the one without a regex) applies;
with no default rule the exchange is not sampled.

The rule then gives at most one reason: the first of the exchange's failures, as its
protocol's registry entry lists them (protocols/registry.py, most serious first), that the rule
asks for (an error with ``when_5xx``, a refused request with ``when_4xx``), else "slow". For
HTTP and gRPC that is, in priority order:

    5xx         status 500-599                      (when_5xx)
    grpc_error  gRPC status present and non-zero    (when_5xx: a failed call, like a 5xx)
    4xx         status 400-499                      (when_4xx)
    slow        duration >= min_duration_ms

An exchange with a reason competes for a place in its process pair's list for that reason:
"slowest" (slow), "status_4xx" (a refused request: 4xx) or "status_5xx" (an error: 5xx and
grpc_error). Each list is a
min-heap of at most ``top_n`` entries ordered by duration, so every list keeps the slowest
calls of its kind for the interval; on a tie the earlier call stays. ``offer`` returns the
SampledExchange when it took a place (a later, slower call may still displace it) and None
otherwise. ``drain()`` hands over all lists, sorted slowest first, and starts a new interval.

The raw request/response text (start line as the protocol's registry entry renders it,
headers, rendered body, trailers) is built only for exchanges that take a place (checked
before the text is built, so a storm of errors does not render bodies that are then thrown
away), with secrets redacted (credential headers, secret query parameters in the request line
and URL headers, secret body fields), and truncated to the rule's ``max_*_bytes``.
``offer_batch`` offers the pipeline's batch: compiled code (dataplane/_sinksmodule.c,
``candidates``) sets aside the common case, a call of an HTTP protocol without a failure faster
than every rule's ``min_duration_ms`` (which no rule samples: ``floor_ns``), and ``offer``
sees the rest; every record counts as offered. With ``rules_for`` set (tasks) each record goes
to ``offer``.
``reconfigure`` swaps the rule set in one assignment (SIGHUP reload). ``rules_for`` (None
by default) may give an exchange a rule set of its own (``top_n`` and ``select(path)``), or
None for the configured one: analysis tasks sample their processes by their own rules
(l7scope/tasks).
"""
from __future__ import annotations

import heapq
import itertools
import math
import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from l7scope.config import SamplingConfig, SamplingRule
from l7scope.dataplane._sinks import candidates
from l7scope.exchange import Exchange
from l7scope.metrics import http_records, pair_of
from l7scope.outputs import each
from l7scope.protocols import registry
from l7scope.protocols.message import HttpMessage
from l7scope.redact import Redactor

PairKey = Hashable
MAX_PAIRS = 10_000  # bound on process pairs tracked per interval


@dataclass(frozen=True, slots=True)
class SampledExchange:
    exchange: Exchange
    reason: str  # "5xx" | "grpc_error" | "4xx" | "slow"
    rule: SamplingRule
    request_raw: bytes | None
    response_raw: bytes | None
    request_complete: bool
    response_complete: bool


@dataclass(frozen=True, slots=True)
class TopN:
    """One process pair's sampled exchanges for an interval, slowest first in each list."""

    slowest: tuple[SampledExchange, ...]
    status_4xx: tuple[SampledExchange, ...]
    status_5xx: tuple[SampledExchange, ...]

    def all(self) -> tuple[SampledExchange, ...]:
        return self.status_5xx + self.status_4xx + self.slowest


SLOWEST, REFUSED, FAILED = 0, 1, 2  # TopN lists, in TopN's field order


def _display_name(comm: str | None, pid: int | None) -> str:
    """"comm(pid)"; a traced peer's comm is not in the record, so it is "pid(N)"."""
    return f"{comm}({pid})" if comm else f"pid({pid})"


def default_pair_key(ex: Exchange) -> tuple[str, str, str]:
    """(client, server, protocol) display names, by the rules PairMetrics names pairs with
    (metrics.pair_of): "ip" for a remote client, "ip:port" for a remote server, local as the
    client in packet captures."""
    client, server, _, _ = pair_of(ex, name=_display_name)
    return client, server, ex.protocol


_CANDIDATE_FIELDS = tuple(Exchange._fields.index(f) for f in (
    "protocol", "status", "grpc_status", "start_ns", "end_ns"))
_NO_FLOOR = 1 << 64  # past every duration


class _Rules:
    """An immutable, compiled rule set (swapped whole on reconfigure)."""

    __slots__ = ("top_n", "matching", "default", "floor_ns", "floor_int")

    def __init__(self, config: SamplingConfig):
        self.top_n = config.top_n
        self.matching: list[tuple[re.Pattern, SamplingRule]] = []
        self.default: SamplingRule | None = None
        for rule in config.rules:
            if rule.uri_regex is None:
                self.default = rule
            else:
                self.matching.append((rule.pattern or re.compile(rule.uri_regex), rule))
        # no rule samples a call without a failure that is faster than every rule's minimum
        self.floor_ns = min((r.min_duration_ms * 1_000_000 for r in config.rules),
                            default=math.inf)
        # an int duration d: d < floor_ns exactly when d < ceil(floor_ns)
        self.floor_int = _NO_FLOOR if math.isinf(self.floor_ns) else math.ceil(self.floor_ns)

    def select(self, path: str | None) -> SamplingRule | None:
        target = (path or "").split("?", 1)[0]
        chosen = self.default
        for pattern, rule in self.matching:
            if pattern.search(target):
                chosen = rule  # the last matching rule wins
        return chosen


def sample_reason(ex: Exchange, rule: SamplingRule) -> str | None:
    chosen = _reason(ex, rule)
    return chosen[0] if chosen is not None else None


def _reason(ex: Exchange, rule: SamplingRule) -> tuple[str, int] | None:
    """(reason, list) by the rule: the first wanted failure of the exchange, else slow."""
    for failure in registry.failures(ex):
        if failure.sample and (rule.when_5xx if failure.is_error else rule.when_4xx):
            return failure.reason, FAILED if failure.is_error else REFUSED
    if ex.duration_ns >= rule.min_duration_ms * 1_000_000:
        return "slow", SLOWEST
    return None


class Sampler:
    def __init__(self, sampling_config: SamplingConfig, *,
                 pair_key: Callable[[Exchange], PairKey] = default_pair_key,
                 redactor: Redactor | None = None, max_pairs: int = MAX_PAIRS):
        self._rules = _Rules(sampling_config)
        self._pair_key = pair_key
        self._redactor = redactor or Redactor()
        self._max_pairs = max_pairs
        self.rules_for: Callable[[Exchange], _Rules | None] | None = None
        self._lock = threading.Lock()
        self._seq = itertools.count()
        # pair -> three heaps of (duration_ns, -seq, SampledExchange|None)
        self._heaps: dict[PairKey, tuple[list, list, list]] = {}
        self.counters: dict[str, int] = {"offered": 0, "kept": 0, "not_kept": 0,
                                         "dropped_pair_limit": 0, "skipped_incomplete": 0}

    def reconfigure(self, sampling_config: SamplingConfig) -> None:
        self._rules = _Rules(sampling_config)  # one reference assignment: atomic

    def offer(self, exchange: Exchange) -> SampledExchange | None:
        rules = self._rules
        if self.rules_for is not None:
            rules = self.rules_for(exchange) or rules
        self.counters["offered"] += 1
        floor = getattr(rules, "floor_ns", None)
        if floor is not None and max(0, exchange.end_ns - exchange.start_ns) < floor \
                and not registry.failures(exchange):
            return None  # what _reason would say for any rule, without choosing one
        rule = rules.select(exchange.path)
        chosen = _reason(exchange, rule) if rule is not None else None
        if chosen is None:
            return None
        reason, which = chosen
        if _incomplete(exchange, rule.settings):
            self.counters["skipped_incomplete"] += 1
            return None
        key = self._pair_key(exchange)
        if not self._has_place(key, which, exchange.duration_ns, rules.top_n):
            self.counters["not_kept"] += 1
            return None
        sampled = self._build(exchange, reason, rule)
        if not self._admit(key, which, exchange.duration_ns, sampled, rules.top_n):
            self.counters["not_kept"] += 1  # a slower call took the place meanwhile
            return None
        self.counters["kept"] += 1
        return sampled

    def offer_batch(self, batch: list) -> list[Exception]:
        """Every record offered (module docstring); the exceptions of those ``offer`` failed
        on, the others offered."""
        rules = self._rules
        if self.rules_for is not None:
            return each(self.offer, batch)
        rest = candidates(batch, _CANDIDATE_FIELDS, rules.floor_int, http_records())
        self.counters["offered"] += len(batch) - len(rest)
        return each(self.offer, rest) if rest else []

    def _has_place(self, key: PairKey, which: int, duration: int, top_n: int) -> bool:
        with self._lock:
            lists = self._heaps.get(key)
            if lists is None:
                if len(self._heaps) >= self._max_pairs:
                    self.counters["dropped_pair_limit"] += 1
                    return False
                return True
            heap = lists[which]
            return len(heap) < top_n or duration > heap[0][0]

    def _admit(self, key: PairKey, which: int, duration: int, sampled: SampledExchange,
               top_n: int) -> bool:
        entry = (duration, -next(self._seq), sampled)
        with self._lock:
            lists = self._heaps.get(key)
            if lists is None:
                if len(self._heaps) >= self._max_pairs:
                    self.counters["dropped_pair_limit"] += 1
                    return False
                lists = self._heaps[key] = ([], [], [])
            heap = lists[which]
            if len(heap) < top_n:
                heapq.heappush(heap, entry)
                return True
            if duration > heap[0][0]:
                heapq.heapreplace(heap, entry)
                return True
            return False

    def drain(self) -> dict[PairKey, TopN]:
        with self._lock:
            heaps, self._heaps = self._heaps, {}
        top_n = self._rules.top_n
        return {key: TopN(*(_slowest_first(h, top_n) for h in lists))
                for key, lists in heaps.items()}

    def _build(self, ex: Exchange, reason: str, rule: SamplingRule) -> SampledExchange:
        s = rule.settings
        req_complete = ex.request is not None and ex.request.complete
        resp_complete = ex.response is not None and ex.response.complete
        req_raw = (self.raw_text(ex.request, s.max_request_bytes, ex.protocol)
                   if s.capture_request and ex.request is not None else None)
        resp_raw = (self.raw_text(ex.response, s.max_response_bytes, ex.protocol)
                    if s.capture_response and ex.response is not None else None)
        return SampledExchange(ex, reason, rule, req_raw, resp_raw, req_complete,
                               resp_complete)

    def raw_text(self, msg: HttpMessage, limit: int, protocol: str = "http1") -> bytes:
        """The message rebuilt as text, secrets redacted, at most ``limit`` bytes; the start
        line as ``protocol``'s registry entry renders it."""
        lines = [registry.start_line(protocol, msg, self._redactor.redact_path)]
        lines += [f"{k}: {v}" for k, v in self._redactor.redact_headers(msg.headers)
                  if not k.startswith(":")]
        text = "\r\n".join(lines) + "\r\n\r\n"
        text += self._redactor.render_body(msg.headers, msg.body, msg.body_len)
        if msg.trailers:
            text += "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in
                                     self._redactor.redact_headers(msg.trailers))
        return text.encode("utf-8", "replace")[:limit]


def _incomplete(ex: Exchange, s) -> bool:
    """The rule wants a message whole and it was not seen whole."""
    if s.require_complete_request and not (ex.request is not None and ex.request.complete):
        return True
    return s.require_complete_response and not (ex.response is not None and
                                                ex.response.complete)


def _slowest_first(heap: list, top_n: int) -> tuple[SampledExchange, ...]:
    ordered = sorted(heap, key=lambda e: (-e[0], -e[1]))[:top_n]
    return tuple(e[2] for e in ordered)
