"""Prometheus exporter: text exposition format 0.0.4 served over HTTP (``--metrics-listen``).

Theory of operation
-------------------
The aggregator hands each interval's PairMetrics to ``update``; they are added into totals
kept for the process lifetime, as Prometheus expects counters and histograms to be
cumulative. Per (client, server, protocol):

    l7scope_requests_total                     counter
    l7scope_responses_total{...,status}        counter
    l7scope_request_size_bytes                 histogram (bytes)
    l7scope_response_size_bytes                histogram (bytes)
    l7scope_client_duration_seconds            histogram (seconds; PairMetrics holds ms)
    l7scope_server_duration_seconds            histogram (seconds)

Histogram buckets are rendered cumulative (``_bucket{le=".."}``, ``le="+Inf"`` equal to
``_count``), with ``_sum`` and ``_count``. A histogram whose bounds differ from the ones already
accumulated for its series is not added (counted ``histogram_bounds_mismatch``).

``set_agent_counters`` replaces the agent's own totals. A key ``"family.reason"`` becomes
``l7scope_family_total{reason="reason"}`` and a key ``"name"`` becomes ``l7scope_name_total``;
e.g. ``{"dropped_events.ringbuf_full": 3}`` -> ``l7scope_dropped_events_total{reason=
"ringbuf_full"} 3``. The number of series is bounded (``max_series``); series beyond it are
dropped and counted (``series_limit``), visible as ``l7scope_exporter_dropped_total``.

``GET /metrics`` (and ``/``) is answered by an ``outputs.http.HttpListener``: one event-loop
thread with a connection cap and read timeouts, its own or one shared with other endpoints
(``listener=``). ``:PORT`` binds loopback only; see ``outputs.http.listen_warning``.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from l7scope.metrics_types import Histogram, PairMetrics
from l7scope.outputs.http import HttpListener, Request, listen_warning, parse_listen_address

__all__ = ["PrometheusExporter", "escape_label_value", "format_float", "listen_warning",
           "parse_listen_address"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_SERIES = 50_000

_HISTOGRAMS = (
    # (family, PairMetrics attribute, scale to base unit, help)
    ("l7scope_request_size_bytes", "request_bytes", 1.0, "Request size (header+body) in bytes."),
    ("l7scope_response_size_bytes", "response_bytes", 1.0,
     "Response size (header+body) in bytes."),
    ("l7scope_client_duration_seconds", "client_duration_ms", 0.001,
     "Duration seen by the client process, first request byte to last response byte."),
    ("l7scope_server_duration_seconds", "server_duration_ms", 0.001,
     "Duration seen by the server process, first request byte to last response byte."),
)
_NAME_OK = re.compile(r"[^a-zA-Z0-9_:]")


def escape_label_value(value: str) -> str:
    # Exposition format: "label_value can be any sequence of UTF-8 characters, but the
    # backslash (\), double-quote ("), and line feed (\n) characters have to be escaped as
    # \\, \", and \n, respectively."
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_float(value: float) -> str:
    """Go-style float text as Prometheus clients print it ("+Inf", "1.0", "0.0005")."""
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class _HistogramTotal:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def add(self, h: Histogram) -> None:
        for i, c in enumerate(h.counts):
            self.counts[i] += c
        self.sum += h.sum
        self.count += h.count


class PrometheusExporter:
    def __init__(self, addr: str, *, max_series: int = MAX_SERIES,
                 listener: HttpListener | None = None):
        self._addr = addr
        self._host, self._port = parse_listen_address(addr)
        self._max_series = max_series
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._responses: dict[tuple[str, str, str, str], int] = {}
        self._hists: dict[str, dict[tuple[str, str, str], _HistogramTotal]] = {
            family: {} for family, *_ in _HISTOGRAMS}
        self._agent: dict[str, int] = {}
        self._dropped = {"series_limit": 0, "histogram_bounds_mismatch": 0}
        self._listener = listener
        self._owns_listener = listener is None
        if listener is not None:
            self._add_routes(listener)

    # --- input ---------------------------------------------------------------------------

    def update(self, metrics: list[PairMetrics]) -> None:
        with self._lock:
            for pm in metrics:
                self._add_pair(pm)

    def set_agent_counters(self, counters: dict[str, int]) -> None:
        with self._lock:
            self._agent = dict(counters)

    def _series_room(self, table: dict, key) -> bool:
        if key in table or len(table) < self._max_series:
            return True
        self._dropped["series_limit"] += 1
        return False

    def _add_pair(self, pm: PairMetrics) -> None:
        key = (pm.client, pm.server, pm.protocol)
        if self._series_room(self._requests, key):
            self._requests[key] = self._requests.get(key, 0) + pm.requests
        for status, n in pm.status_counts:
            rkey = (*key, status)
            if self._series_room(self._responses, rkey):
                self._responses[rkey] = self._responses.get(rkey, 0) + n
        for family, attr, _scale, _help in _HISTOGRAMS:
            hist: Histogram = getattr(pm, attr)
            if hist.count == 0:
                continue
            table = self._hists[family]
            if not self._series_room(table, key):
                continue
            total = table.setdefault(key, _HistogramTotal(hist.bounds))
            if total.bounds != hist.bounds or len(hist.counts) != len(total.counts):
                self._dropped["histogram_bounds_mismatch"] += 1
                continue
            total.add(hist)

    # --- output --------------------------------------------------------------------------

    def render(self) -> str:
        with self._lock:
            lines: list[str] = []
            self._render_counters(lines)
            for family, _attr, scale, help_text in _HISTOGRAMS:
                self._render_histogram(lines, family, scale, help_text)
            self._render_agent(lines)
        return "\n".join(lines) + "\n"

    def _render_counters(self, lines: list[str]) -> None:
        lines += ["# HELP l7scope_requests_total Requests from a client to a server process.",
                  "# TYPE l7scope_requests_total counter"]
        for (c, s, p), n in sorted(self._requests.items()):
            lines.append(f"l7scope_requests_total"
                         f"{_labels([('client', c), ('server', s), ('protocol', p)])} {n}")
        lines += ["# HELP l7scope_responses_total Responses by status (\"none\": no response).",
                  "# TYPE l7scope_responses_total counter"]
        for (c, s, p, st), n in sorted(self._responses.items()):
            labels = _labels([("client", c), ("server", s), ("protocol", p), ("status", st)])
            lines.append(f"l7scope_responses_total{labels} {n}")

    def _render_histogram(self, lines: list[str], family: str, scale: float,
                          help_text: str) -> None:
        lines += [f"# HELP {family} {help_text}", f"# TYPE {family} histogram"]
        for (c, s, p), total in sorted(self._hists[family].items()):
            base = [("client", c), ("server", s), ("protocol", p)]
            cumulative = 0
            for i, n in enumerate(total.counts):
                cumulative += n
                le = total.bounds[i] * scale if i < len(total.bounds) else float("inf")
                lines.append(f"{family}_bucket{_labels(base + [('le', format_float(le))])} "
                             f"{cumulative}")
            lines.append(f"{family}_sum{_labels(base)} {format_float(total.sum * scale)}")
            lines.append(f"{family}_count{_labels(base)} {total.count}")

    def _render_agent(self, lines: list[str]) -> None:
        families: dict[str, list[tuple[str | None, int]]] = {}
        for key, value in self._agent.items():
            family, _, reason = key.partition(".")
            families.setdefault(_NAME_OK.sub("_", family), []).append((reason or None, value))
        families.setdefault("exporter_dropped", []).extend(
            (reason, n) for reason, n in self._dropped.items())
        for family in sorted(families):
            name = f"l7scope_{family}_total"
            lines += [f"# HELP {name} l7scope agent counter.", f"# TYPE {name} counter"]
            for reason, value in sorted(families[family], key=lambda rv: rv[0] or ""):
                labels = _labels([("reason", reason)]) if reason else ""
                lines.append(f"{name}{labels} {value}")

    # --- HTTP endpoint -------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port once started with port 0."""
        if self._listener is not None:
            return self._listener.address
        return self._host, self._port

    def _add_routes(self, listener: HttpListener) -> None:
        listener.add_route("GET", "/metrics", self.handle)
        if self._owns_listener:  # a shared listener keeps "/" for its other endpoints
            listener.add_route("GET", "/", self.handle)

    def handle(self, request: Request) -> tuple[int, str, bytes]:
        """The route handler: ``listener.add_route("GET", "/metrics", exporter.handle)``."""
        if request.path not in ("/metrics", "/"):
            return 404, "text/plain; charset=utf-8", b"404 Not Found\n"
        return 200, CONTENT_TYPE, self.render().encode("utf-8")

    def start(self) -> None:
        """Bind and serve (OSError when the address cannot be bound)."""
        if not self._owns_listener:
            return
        if self._listener is None:
            listener = HttpListener(self._addr, name="prometheus")
            self._add_routes(listener)
            listener.start()
            self._listener = listener

    def stop(self) -> None:
        if self._owns_listener and self._listener is not None:
            self._listener.stop()
            self._listener = None

    def stats(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._dropped, series=len(self._requests) + len(self._responses))
        if self._listener is not None:
            out.update({f"http_{k}": v for k, v in self._listener.stats().items()})
        return out
