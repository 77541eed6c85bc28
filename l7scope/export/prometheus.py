"""Prometheus exporter: exchange metrics by OpenTelemetry's HTTP/RPC conventions, rendered by
``prometheus_client`` (text 0.0.4 or OpenMetrics) and served over HTTP (``--metrics-listen``).

Theory of operation
-------------------
Every exchange is handed to ``observe(ex, peer_comm)`` (a pipeline observer, like the OTLP
exporter's). It lands in cumulative series named as Prometheus users query OpenTelemetry
instrumented services (the conventions' dots become underscores, units become suffixes):

    http_server_request_duration_seconds   histogram  server-side records (and packet captures)
    http_client_request_duration_seconds   histogram  client-side records
    l7scope_requests_total                 counter    each request once
    l7scope_exchange_errors_total          counter    each failed request once, by error_type

Labels (an empty value is left out, as Prometheus treats it as absent): ``client`` and
``server`` (service names: the process name, never a pid; a remote client as its IP, a remote
server as ip:port, as metrics.py names them), ``http_request_method`` (a known method or
``_OTHER``), ``http_response_status_code``, ``network_protocol_name`` ("http"),
``network_protocol_version``, ``rpc_system``/``rpc_service``/``rpc_method``/
``rpc_grpc_status_code`` for gRPC, and ``error_type``. Histograms carry the conventions'
``error.type`` for their side (a client counts a 4xx as its failure); the two counters use
the server's rule (no response, a status of 500 or more, a non-OK grpc-status), so a request
is an error or not whichever end was traced. When both ends are traced a request is counted
once, from the server's record (metrics.py's rule); each side's record still feeds its own
histogram. The histogram buckets are the conventions' advisory boundaries in seconds.

The error counter is l7scope's own name: the conventions define no errors metric (they read
errors off the duration histogram's ``error.type``), and names in the ``http_`` namespace are
theirs. ``l7scope_exchange_errors_total`` counts what ``l7scope_requests_total{error_type!=""}``
counts, kept as its own family because "errors per second by cause" is the everyday query.

Bounded: at most ``max_series`` label sets over all families; an exchange past the bound is
added to one overflow series per family (labelled ``otel_metric_overflow="true"``, the
OpenTelemetry SDK's convention) and counted (``series_overflow_exchanges`` in ``stats()``).

``set_agent_counters`` replaces the agent's own totals; each becomes
``l7scope_agent_<name>_total`` (a counter) or ``l7scope_agent_<name>`` (a gauge: open
connections, queue depths, series) with the HELP text of AGENT_HELP (see there).

``tcp_metrics(records)`` takes the interval's ``tcp_metrics`` records (tcpmetrics.py; deltas)
and adds them to cumulative ``l7scope_tcp_*`` families labelled ``client`` and ``server`` (and
``reason`` for connect failures and drops), bounded by ``max_series`` like the exchange
families with the same overflow series (counted in ``tcp_series_overflow_records``).

``service_name(comm, pid)`` names local processes (default: the command name); the process
identity table can supply service names through it.

``update(snapshot)`` takes the interval's PairMetrics. They are used only while nothing calls
``observe`` (a caller that has only pair metrics): then the same families are filled from
them, by the same names and units, without method or status labels on the histograms.

Exposition: a custom collector on its own CollectorRegistry, rendered by
``prometheus_client.exposition.choose_encoder`` from the scrape's Accept header (OpenMetrics
when asked for, else text 0.0.4). ``GET /metrics`` (and ``/``) is answered by an
``outputs.http.HttpListener``: its own or one shared with other endpoints (``listener=``).
"""
from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from l7scope.exchange import Exchange
from l7scope.export import semconv
from l7scope.metrics import pair_of
from l7scope.metrics_types import PairMetrics
from l7scope.outputs.http import HttpListener, Request, listen_warning, parse_listen_address

__all__ = ["AGENT_HELP", "PrometheusExporter", "agent_family", "listen_warning",
           "parse_listen_address"]

MAX_SERIES = 2000
SERVER_DURATION = "http_server_request_duration_seconds"
CLIENT_DURATION = "http_client_request_duration_seconds"
REQUESTS = "l7scope_requests"
ERRORS = "l7scope_exchange_errors"
HELP = {
    SERVER_DURATION: "Duration of HTTP server requests (gRPC calls included), first request "
                     "byte to last response byte as the server process saw them.",
    CLIENT_DURATION: "Duration of HTTP client requests (gRPC calls included), first request "
                     "byte to last response byte as the client process saw them.",
    REQUESTS: "Requests (HTTP exchanges and gRPC calls), each counted once: from the "
              "server's record when the server process is traced, else the client's.",
    ERRORS: "Failed requests, each counted once, by error_type: no response (incomplete, "
            "timeout), a status code of 500 or more, or the name of a non-OK grpc-status.",
}
# OpenTelemetry HTTP semantic conventions, http.server.request.duration: advisory explicit
# bucket boundaries, in seconds (the same as the OTLP exporter's).
SECONDS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                  10.0)
LABELS = ("client", "server", "http_request_method", "http_response_status_code",
          "network_protocol_name", "network_protocol_version", "rpc_system", "rpc_service",
          "rpc_method", "rpc_grpc_status_code", "error_type")
OVERFLOW = None  # the label set key of the overflow series
_OVERFLOW_LABELS = {"otel_metric_overflow": "true"}
_PID_SUFFIX = re.compile(r"\(\d+\)$")

Labels = tuple[str, ...]  # values in LABELS order; "" for absent


def _service(comm: str | None, pid: int | None) -> str:
    """A local process's service name: its command name (no pid: one series per program)."""
    return comm or "?"


def request_error_type(ex: Exchange) -> str:
    """The counters' error_type ("" for none): the server's rule for every record, so a 4xx
    (the client's fault) is not an error whichever end was traced."""
    if ex.side == "client":
        ex = ex._replace(side="server")
    return semconv.error_type(ex) or ""


def exchange_labels(ex: Exchange, client: str, server: str) -> Labels:
    """Every label but error_type, in LABELS order."""
    route = semconv.grpc_route(ex)
    grpc = ex.protocol == "grpc"
    return (client, server, semconv.method(ex), "" if ex.status is None else str(ex.status),
            "http", semconv.protocol_version(ex) or "", "grpc" if grpc else "",
            route[0] if route else "", route[1] if route else "",
            "" if not grpc or ex.grpc_status is None else str(ex.grpc_status))


class _Hist:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0


class _Series:
    """One set of cumulative series: histograms by (family, labels), counters by labels;
    at most ``max_series`` label sets in all, then the overflow series."""

    def __init__(self, max_series: int):
        self.max_series = max_series
        self.hists: dict[tuple[str, Labels | None], _Hist] = {}
        self.counters: dict[str, dict[Labels | None, int]] = {REQUESTS: {}, ERRORS: {}}
        self.overflow_exchanges = 0  # exchanges (or pair intervals) added to an overflow series
        self.overflowed = False  # set by hist()/add() when they used an overflow series

    def size(self) -> int:
        return len(self.hists) + sum(len(t) for t in self.counters.values())

    def _room(self, present: bool) -> bool:
        return present or self.size() < self.max_series

    def count_overflow(self) -> None:
        """One exchange (or pair interval) done: counted once if it reached an overflow."""
        if self.overflowed:
            self.overflowed = False
            self.overflow_exchanges += 1

    def hist(self, family: str, labels: Labels, bounds=SECONDS_BOUNDS) -> _Hist:
        key = (family, labels)
        h = self.hists.get(key)
        if h is None:
            if not self._room(False):
                self.overflowed = True
                key = (family, OVERFLOW)
                h = self.hists.get(key)
            if h is None:
                h = self.hists[key] = _Hist(bounds)
        return h

    def add(self, family: str, labels: Labels, n: int) -> None:
        table = self.counters[family]
        if not self._room(labels in table):
            self.overflowed = True
            labels = OVERFLOW
        table[labels] = table.get(labels, 0) + n


class PrometheusExporter:
    def __init__(self, addr: str, *, max_series: int = MAX_SERIES,
                 listener: HttpListener | None = None,
                 service_name: Callable[[str | None, int | None], str] = _service):
        self._addr = addr
        self._host, self._port = parse_listen_address(addr)
        self._service_name = service_name
        self._lock = threading.Lock()
        self._series = _Series(max_series)  # fed by observe()
        self._pairs = _Series(max_series)  # fed by update() (used while nothing observes)
        self._observed = 0
        self._agent: dict[str, int] = {}
        self._tcp = _TcpSeries(max_series)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self._listener = listener
        self._owns_listener = listener is None
        if listener is not None:
            self._add_routes(listener)

    # --- input ---------------------------------------------------------------------------

    def observe(self, ex: Exchange, peer_comm: str | None = None) -> None:
        """A pipeline observer: every exchange, once, as it is built."""
        if peer_comm is None:
            peer_comm = ex.peer_name
        client, server, _, _ = pair_of(ex, peer_comm, self._service_name)
        base = exchange_labels(ex, client, server)
        family = CLIENT_DURATION if ex.side == "client" else SERVER_DURATION
        seconds = ex.duration_ns / 1e9
        counted = ex.side != "client" or ex.peer_pid is None
        with self._lock:
            self._observed += 1
            h = self._series.hist(family, (*base, semconv.error_type(ex) or ""))
            h.counts[bisect_left(h.bounds, seconds)] += 1  # (bounds[i-1], bounds[i]]
            h.sum += seconds
            h.count += 1
            if counted:
                labels = (*base, request_error_type(ex))
                self._series.add(REQUESTS, labels, 1)
                if labels[-1]:
                    self._series.add(ERRORS, labels, 1)
            self._series.count_overflow()

    def update(self, metrics: list[PairMetrics]) -> None:
        """The interval's pair metrics (shown only while nothing calls ``observe``)."""
        with self._lock:
            if self._observed:
                return  # exchanges are counted: the pair metrics are not needed
            for pm in metrics:
                self._add_pair(pm)

    def _add_pair(self, pm: PairMetrics) -> None:
        grpc = pm.protocol == "grpc"
        version = "2" if pm.protocol in ("http2", "grpc") else ""
        base = (_PID_SUFFIX.sub("", pm.client), _PID_SUFFIX.sub("", pm.server), "", "",
                "http", version, "grpc" if grpc else "", "", "", "")
        for status, n in pm.status_counts:
            self._pairs.add(REQUESTS, (*base[:3], "" if status == "none" else status,
                                       *base[4:], ""), n)
        if pm.errors:
            self._pairs.add(ERRORS, (*base, "_OTHER"), pm.errors)  # the cause is not known
        for family, hist in ((CLIENT_DURATION, pm.client_duration_ms),
                             (SERVER_DURATION, pm.server_duration_ms)):
            if not hist.count:
                continue
            bounds = tuple(b / 1000 for b in hist.bounds)
            h = self._pairs.hist(family, (*base, ""), bounds)
            if h.bounds != bounds:
                continue  # another bucket layout: not addable (never from one aggregator)
            for i, c in enumerate(hist.counts):
                h.counts[i] += c
            h.sum += hist.sum / 1000
            h.count += hist.count
        self._pairs.count_overflow()

    def tcp_metrics(self, records: list[dict]) -> None:
        """The interval's ``tcp_metrics`` records (deltas), added to the cumulative series."""
        with self._lock:
            for r in records:
                self._tcp.add_record(r)

    def set_agent_counters(self, counters: dict[str, int]) -> None:
        with self._lock:
            self._agent = {k: v for k, v in counters.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool)}

    # --- output --------------------------------------------------------------------------

    def collect(self) -> list[Metric]:
        """The metric families as they stand (the collector's answer)."""
        with self._lock:  # a copy of the numbers only: observe() waits for no rendering
            series = self._series if self._observed else self._pairs
            hists = {k: (h.bounds, tuple(h.counts), h.sum, h.count)
                     for k, h in series.hists.items()}
            counters = {f: dict(t) for f, t in series.counters.items()}
            agent = self._agent
            tcp = self._tcp.families()
        families = [_histogram(f, hists) for f in (SERVER_DURATION, CLIENT_DURATION)]
        families += [_counter(f, counters[f]) for f in (REQUESTS, ERRORS)]
        return families + tcp + agent_families(agent)

    def render(self, accept: str | None = None) -> tuple[str, bytes]:
        """(Content-Type, body) of a scrape whose Accept header is ``accept``."""
        encoder, content_type = choose_encoder(accept or "")
        return content_type, encoder(self.registry)

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
        content_type, body = self.render(request.header("accept"))
        return 200, content_type, body

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
            s = self._series if self._observed else self._pairs
            out = {"series": s.size() + self._tcp.size(),
                   "series_overflow_exchanges": s.overflow_exchanges,
                   "tcp_series_overflow_records": self._tcp.overflow_records}
        if self._listener is not None:
            out.update({f"http_{k}": v for k, v in self._listener.stats().items()})
        return out


class _Collector(Collector):
    def __init__(self, exporter: PrometheusExporter):
        self._exporter = exporter

    def collect(self) -> Iterable[Metric]:
        return self._exporter.collect()


def _label_dict(labels: Labels | None) -> dict[str, str]:
    if labels is OVERFLOW:
        return dict(_OVERFLOW_LABELS)
    return {k: v for k, v in zip(LABELS, labels) if v}


def _histogram(family: str, hists: dict) -> Metric:
    m = Metric(family, HELP[family], "histogram", unit="seconds")
    for (name, labels), (bounds, counts, total, count) in sorted(hists.items(), key=_sort_key):
        if name != family:
            continue
        base = _label_dict(labels)
        cumulative = 0
        for i, n in enumerate(counts):
            cumulative += n
            le = bounds[i] if i < len(bounds) else float("inf")
            m.add_sample(family + "_bucket", {**base, "le": floatToGoString(le)}, cumulative)
        m.add_sample(family + "_count", base, count)
        m.add_sample(family + "_sum", base, total)
    return m


def _counter(family: str, table: dict) -> Metric:
    m = Metric(family, HELP[family], "counter")
    for labels, n in sorted(table.items(), key=lambda kv: (kv[0] is None, kv[0] or ())):
        m.add_sample(family + "_total", _label_dict(labels), n)
    return m


def _sort_key(item) -> tuple:
    (name, labels), _ = item
    return name, labels is None, labels or ()


# --- TCP health per process pair (tcp_metrics records) --------------------------------------

# (family, record field, HELP); a field holding a dict is counted by its keys as ``reason``.
TCP_COUNTERS = (
    ("l7scope_tcp_connects", "connects", "TCP connections established by the client."),
    ("l7scope_tcp_accepts", "accepts", "TCP connections accepted by a traced server socket."),
    ("l7scope_tcp_connect_failures", "connect_failures_by_reason",
     "TCP connects never established, by reason (refused, timed_out, aborted)."),
    ("l7scope_tcp_sent_bytes", "bytes_sent", "Payload bytes sent client -> server."),
    ("l7scope_tcp_received_bytes", "bytes_received", "Payload bytes sent server -> client."),
    ("l7scope_tcp_retransmits", "retransmits", "TCP segments retransmitted by either end."),
    ("l7scope_tcp_resets_sent", "resets_sent", "TCP resets the client sent."),
    ("l7scope_tcp_resets_received", "resets_received", "TCP resets the client received."),
    ("l7scope_tcp_drops", "drops", "Packets of the pair's sockets the kernel dropped, by "
                                   "skb drop reason."),
)
# (family, record field, the record's units per second, HELP)
TCP_HISTOGRAMS = (
    ("l7scope_tcp_connect_duration_seconds", "connect_ms", 1e3,
     "TCP connect latency (SYN_SENT to ESTABLISHED), client side."),
    ("l7scope_tcp_rtt_seconds", "rtt_us", 1e6,
     "The kernel's smoothed TCP RTT, one sample per socket when it closes."),
)
_TCP_HELP = {f: h for f, _, h in TCP_COUNTERS} | {f: h for f, _, _, h in TCP_HISTOGRAMS}


class _TcpSeries:
    """Cumulative tcp_metrics sums by (family, (client, server[, reason])), at most
    ``max_series`` label sets, then one overflow series per family."""

    def __init__(self, max_series: int):
        self.max_series = max_series
        self.counters: dict[str, dict[tuple | None, int]] = {f: {} for f, _, _ in TCP_COUNTERS}
        self.hists: dict[str, dict[tuple | None, _Hist]] = {f: {} for f, *_ in TCP_HISTOGRAMS}
        self.overflow_records = 0
        self._overflowed = False

    def size(self) -> int:
        return sum(map(len, self.counters.values())) + sum(map(len, self.hists.values()))

    def _key(self, table: dict, key: tuple) -> tuple | None:
        if key in table or self.size() < self.max_series:
            return key
        self._overflowed = True
        return OVERFLOW

    def add_record(self, r: dict) -> None:
        pair = (str(r.get("client") or "?"), str(r.get("server") or "?"))
        for family, field, _ in TCP_COUNTERS:
            value = r.get(field)
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for reason, n in items:
                if isinstance(n, int) and n > 0:
                    table = self.counters[family]
                    key = self._key(table, pair if reason is None else (*pair, str(reason)))
                    table[key] = table.get(key, 0) + n
        for family, field, per_second, _ in TCP_HISTOGRAMS:
            self._add_hist(family, pair, r.get(field), per_second)
        if self._overflowed:
            self._overflowed = False
            self.overflow_records += 1

    def _add_hist(self, family: str, pair: tuple, hist, per_second: float) -> None:
        if not isinstance(hist, dict) or not hist.get("count"):
            return
        bounds = tuple(b / per_second for b in hist["bounds"])
        table = self.hists[family]
        key = self._key(table, pair)
        h = table.get(key)
        if h is None:
            h = table[key] = _Hist(bounds)
        if h.bounds != bounds or len(hist["counts"]) != len(h.counts):
            return  # another bucket layout: not addable (never from one aggregator)
        for i, c in enumerate(hist["counts"]):
            h.counts[i] += c
        h.sum += hist["sum"] / per_second
        h.count += hist["count"]

    def families(self) -> list[Metric]:
        out = []
        for family, _, _ in TCP_COUNTERS:
            m = Metric(family, _TCP_HELP[family], "counter")
            for key, n in sorted(self.counters[family].items(), key=_tcp_order):
                m.add_sample(family + "_total", _tcp_labels(key), n)
            out.append(m)
        for family, *_ in TCP_HISTOGRAMS:
            m = Metric(family, _TCP_HELP[family], "histogram")
            for key, h in sorted(self.hists[family].items(), key=_tcp_order):
                _add_buckets(m, family, _tcp_labels(key), h)
            out.append(m)
        return out


def _tcp_order(item) -> tuple:
    return item[0] is None, item[0] or ()


def _tcp_labels(key: tuple | None) -> dict[str, str]:
    if key is OVERFLOW:
        return dict(_OVERFLOW_LABELS)
    return dict(zip(("client", "server", "reason"), key))


def _add_buckets(m: Metric, family: str, labels: dict, h: _Hist) -> None:
    cumulative = 0
    for i, n in enumerate(h.counts):
        cumulative += n
        le = h.bounds[i] if i < len(h.bounds) else float("inf")
        m.add_sample(family + "_bucket", {**labels, "le": floatToGoString(le)}, cumulative)
    m.add_sample(family + "_count", labels, h.count)
    m.add_sample(family + "_sum", labels, h.sum)


# --- the agent's own counters ----------------------------------------------------------------

# (pattern over the agent's counter name, type, HELP text; {0}, {1} are the pattern's groups).
# First match wins. Drops say "dropped"/"lost" and what was lost; parse errors say they are
# parse errors (the analysis of that connection stopped), not drops.
AGENT_HELP: tuple[tuple[str, str, str], ...] = (
    # the pipeline
    (r"exchanges", "counter", "Exchanges (a request with its response, or a request left "
                              "without one) the agent produced."),
    (r"exchanges_without_messages", "counter", "Analyzer outputs with neither a request nor a "
                                               "response, not made into exchanges."),
    (r"internal_error_(\w+)", "counter", "Internal errors (an l7scope bug met by captured "
                                         "bytes) in the {0} analysis; that connection's "
                                         "analysis was closed and the agent went on."),
    (r"parse_error_(\w+)", "counter", "Parse errors '{0}': a connection whose bytes broke the "
                                      "protocol's rules; its analysis stopped (not a drop)."),
    (r"trace_context_(\w+)", "counter", "Trace context headers not used: {0} (the exchange is "
                                        "kept, without that context)."),
    # the kernel capture
    (r"events", "counter", "Records read from the kernel ring buffer."),
    (r"ringbuf_full", "counter", "Dropped in the kernel: records lost because the ring buffer "
                                 "was full (raise --ringbuf-mb or lower the traffic traced)."),
    (r"active_full", "counter", "Dropped in the kernel: syscalls not traced because the "
                                "thread's BPF storage could not be made."),
    (r"bytes_not_captured", "counter", "Bytes of traced payloads beyond the per-record capture "
                                       "size, not copied to user space (lost for parsing)."),
    (r"bytes_suppressed", "counter", "Payload bytes not copied because the connection needs "
                                     "no more payload (e.g. a body being skipped)."),
    (r"conns_created", "counter", "Connections the kernel programs started tracking."),
    (r"read_faults", "counter", "Dropped in the kernel: payload copies that faulted "
                                "(bpf_probe_read_user failed)."),
    (r"tls_unmapped", "counter", "Dropped in the kernel: TLS library calls whose socket could "
                                 "not be found."),
    (r"tcp_synack_retrans", "counter", "SYN-ACKs the kernel retransmitted (for a handshake, "
                                       "before its socket exists)."),
    (r"tcp_synack_attributed", "counter", "Of the retransmitted SYN-ACKs, those charged to the "
                                          "socket their handshake made (the rest belong to "
                                          "handshakes that never completed)."),
    (r"bpf_runs_missed", "counter", "Dropped in the kernel: program runs skipped because another "
                                    "BPF program was running on that CPU (recursion misses)."),
    (r"tcp_health_runs_missed", "counter", "Of the skipped runs, those of the TCP health programs "
                                           "(a socket's record may be lost or incomplete)."),
    (r"tcp_health_runs_nested", "counter", "TCP health events the kernel skipped for their "
                                           "program (it was interrupting itself), run by its "
                                           "second program instead: not lost."),
    (r"tcp_health_entries_failed", "counter", "Dropped in the kernel: sockets whose TCP health "
                                              "entry could not be made (no record for them)."),
    (r"malformed_records", "counter", "Dropped: ring buffer records that could not be decoded."),
    # the connection table
    (r"connections_evicted", "counter", "Dropped: connections evicted from the full connection "
                                        "table, least recently used first."),
    (r"connections_expired", "counter", "Connections closed by the agent after being idle."),
    (r"connections_other", "counter", "Connections whose protocol is not analysed."),
    (r"connections_shed_memory", "counter", "Dropped: connections whose analysis was ended "
                                            "because the parser memory budget was exceeded."),
    (r"bytes_shed_memory", "counter", "Dropped: bytes held by connections shed for the parser "
                                      "memory budget."),
    (r"bytes_before_detection", "counter", "Bytes seen before a connection's protocol was "
                                           "recognised, not analysed."),
    (r"stream_gap_bytes", "counter", "Stream bytes never seen (lost records or holes)."),
    (r"stream_overlap_bytes", "counter", "Stream bytes seen twice and ignored."),
    (r"stream_resyncs", "counter", "Times a stream's parser was resynchronised after a gap."),
    # analyzers
    (r"http1_dropped_pending", "counter", "Dropped by the http1 analyzer: requests waiting for "
                                          "their response past the pipelining bound."),
    (r"http1_discarded_bytes", "counter", "Dropped by the http1 analyzer: bytes skipped while "
                                          "looking for a start line."),
    (r"http1_lost_heads", "counter", "Dropped by the http1 analyzer: incomplete heads too short "
                                     "to say what message they began."),
    (r"http1_ignored_bytes", "counter", "Bytes after a protocol switch or the connection's end, "
                                        "not analysed as HTTP/1.x."),
    (r"http1_interim_responses", "counter", "1xx interim responses (other than 101) seen."),
    (r"http2_dropped_streams", "counter", "Dropped by the http2 analyzer: open streams flushed "
                                          "because too many were open at once."),
    (r"http2_streams_shed_memory", "counter", "Dropped by the http2 analyzer: open streams "
                                              "flushed because they held too many bytes."),
    (r"http2_streams_without_headers", "counter", "Dropped by the http2 analyzer: streams with "
                                                  "only DATA frames (begun before the capture "
                                                  "or after a gap), not reported."),
    (r"http2_hpack_resets", "counter", "HPACK decoders reset after a lost header block (header "
                                       "fields of later requests may be missing)."),
    (r"http2_hpack_unknown_headers", "counter", "Header fields that referred to HPACK table "
                                                "entries not seen (missing from records)."),
    (r"http2_hpack_table_size_clamped", "counter", "HPACK table sizes above the accepted "
                                                   "maximum, clamped."),
    (r"http2_header_lists_truncated", "counter", "Decoded header lists cut at the header size "
                                                 "bound."),
    (r"http2_resync_abandoned", "counter", "HTTP/2 connections whose analysis was abandoned: "
                                           "no frame header found after lost bytes."),
    (r"(http1|http2)_(\w*dropped\w*|\w*lost\w*|\w*shed\w*|\w*discarded\w*)", "counter",
     "Dropped by the {0} analyzer: {1}."),
    (r"(http1|http2)_(\w+)", "counter", "Counted by the {0} analyzer: {1}."),
    # capture files and packet sources
    (r"capture_(\w+)", "counter", "Packet capture: {0}."),
    (r"tcp_(\w*dropped\w*|\w*gap\w*|\w*lost\w*|\w*truncated\w*)", "counter",
     "Lost in TCP reassembly of captured packets: {0}."),
    (r"tcp_(\w+)", "counter", "TCP reassembly of captured packets: {0}."),
    (r"procs_(\w+)", "counter", "Process table: {0}."),
    # outputs: gauges first
    (r"ui_open", "gauge", "HTTP listener of the web UI: connections open now."),
    (r"ui_peak_open", "gauge", "HTTP listener of the web UI: the most connections open at once."),
    (r"(\w+)_http_open", "gauge", "HTTP listener of the {0} output: connections open now."),
    (r"(\w+)_http_peak_open", "gauge", "HTTP listener of the {0} output: the most connections "
                                       "open at once."),
    (r"store_queue_items", "gauge", "Exchanges and samples waiting to be written to the store."),
    (r"store_bytes", "gauge", "Bytes the store takes on disk."),
    (r"(\w+)_pending", "gauge", "Items waiting in the {0} export queue."),
    (r"prometheus_series", "gauge", "Series the Prometheus exporter holds (bounded)."),
    (r"prometheus_series_overflow_exchanges", "counter",
     "Exchanges added to the overflow series because the series bound was reached."),
    (r"prometheus_tcp_series_overflow_records", "counter",
     "tcp_metrics records added to an overflow series because the series bound was reached."),
    (r"ui_(\w+)", "counter", "HTTP listener of the web UI: {0}."),
    (r"(\w+)_http_(\w+)", "counter", "HTTP listener of the {0} output: {1}."),
    (r"(\w+?)_dropped_(\w+)", "counter", "Dropped by the {0} output: {1}."),
    (r"(zipkin|otlp|skywalking)_(\w+)", "counter", "Export queue of the {0} exporter: {1}."),
    (r"(store|web|jsonl|prometheus)_(\w+)", "counter", "The {0} output: {1}."),
)
_AGENT_HELP = tuple((re.compile(p), t, h) for p, t, h in AGENT_HELP)
_NAME_OK = re.compile(r"[^a-zA-Z0-9_]")


def agent_family(name: str) -> tuple[str, str, str]:
    """(family name, type, HELP) of one agent counter. A name in no pattern is a counter
    with a HELP text made from its name (every agent counter counts events)."""
    base = "l7scope_agent_" + _NAME_OK.sub("_", name).removesuffix("_total")
    for pattern, kind, text in _AGENT_HELP:
        m = pattern.fullmatch(name)
        if m:
            words = [g.replace("_", " ") for g in m.groups()]
            return base, kind, text.format(*words)
    return base, "counter", (f"Agent counter {name} ({name.replace('_', ' ')}); "
                             f"no description in this version.")


def agent_families(counters: dict[str, int]) -> list[Metric]:
    out: dict[str, Metric] = {}
    for name in sorted(counters):
        family, kind, text = agent_family(name)
        if family in out:
            continue  # two names spelled alike once sanitised: the first is kept
        m = out[family] = Metric(family, text, kind)
        m.add_sample(family + ("_total" if kind == "counter" else ""), {}, counters[name])
    return list(out.values())
