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

A ThreadingHTTPServer on its own daemon thread answers ``GET /metrics`` (and ``/``).
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from l7scope.metrics_types import Histogram, PairMetrics

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
    def __init__(self, addr: str, *, max_series: int = MAX_SERIES):
        self._host, self._port = parse_listen_address(addr)
        self._max_series = max_series
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._responses: dict[tuple[str, str, str, str], int] = {}
        self._hists: dict[str, dict[tuple[str, str, str], _HistogramTotal]] = {
            family: {} for family, *_ in _HISTOGRAMS}
        self._agent: dict[str, int] = {}
        self._dropped = {"series_limit": 0, "histogram_bounds_mismatch": 0}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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

    # --- HTTP server ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port once started with port 0."""
        if self._server is not None:
            host, port = self._server.server_address[:2]
            return str(host), int(port)
        return self._host, self._port

    def start(self) -> None:
        if self._server is not None:
            return
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = exporter.render().encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        server_cls = _server_class(self._host)
        self._server = server_cls((self._host, self._port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name="l7scope-prometheus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._dropped, series=len(self._requests) + len(self._responses))


def parse_listen_address(addr: str) -> tuple[str, int]:
    """"host:port", "[v6]:port" or ":port" (all interfaces) -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics listen address {addr!r}: expected host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    import socket

    if ":" not in host:
        return ThreadingHTTPServer

    class V6Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    return V6Server
