"""The agent's sinks (the interface is in outputs/__init__.py): JSON Lines files, the metrics
file, the metrics aggregator and the sampler, exporters, Prometheus, the live view and the
store with its web UI. Each adapts one output module to the Sink interface and nothing more.
"""
from __future__ import annotations

import os
import shutil
import time

from l7scope.outputs import Sink
from l7scope.outputs.jsonl import JsonlSink, parse_spec


class JsonlFile(Sink):
    """Exchange records (or, with ``metrics=True``, interval records) as JSON Lines.

    A file this run created is removed at an aborted close when nothing was written to it; a
    file with records is kept as it is (the run's last line on stderr says it is partial)."""

    name = "jsonl"

    def __init__(self, spec: str, *, with_headers: bool = False, redact=None,
                 metrics: bool = False):
        """``spec``: ``PATH[?max_mb=N&keep=K]`` or ``-`` (outputs/jsonl.py)."""
        self.path = path = parse_spec(spec).path
        self.created = path != "-" and not os.path.lexists(path)
        self.out = JsonlSink.from_spec(spec, with_headers=with_headers, redact=redact)
        if not metrics:
            self.on_exchange = self.out  # JsonlSink.__call__ (one record)
            self.on_exchanges = self.out.write_exchanges  # a batch: one compiled call
        else:
            self.on_interval = self._interval
            self.on_tcp_metrics = self._tcp_metrics

    @property
    def written(self) -> int:
        return self.out.written

    def on_tick(self, now_wall_ns, counters_fn) -> None:
        self.out.flush()

    def reopen(self) -> str | None:
        """SIGHUP: write to a new file at the path (after logrotate moved it); a problem as
        one line, else None."""
        return self.out.reopen()

    def counters(self) -> dict:
        return self.out.counters()

    def _tcp_metrics(self, records) -> None:
        for r in records:
            self.out.write(r)

    def _interval(self, snapshot, top_n, counters, now_wall_ns) -> None:
        for pm in snapshot:
            self.out.write({"kind": "pair_metrics", **pm.to_dict()})
        for key, lists in top_n.items():
            self.out.write(top_n_record(key, lists))
        if counters is not None:
            record = {"kind": "agent_counters", "time_ns": now_wall_ns}
            record.update(counters)
            self.out.write(record)
        self.out.flush()

    def close(self, aborted: bool = False) -> None:
        try:
            if aborted and self.path == "-":
                return  # stdout may be a closed pipe: nothing more is written to it
            self.out.close()
        finally:
            if aborted and self.created and self.out.written == 0:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass


def top_n_record(key, lists) -> dict:
    client, server, protocol = key if isinstance(key, tuple) and len(key) == 3 else (str(key), "", "")

    def item(s):
        d = s.exchange.to_dict()
        d["reason"] = s.reason
        return d

    return {"kind": "top_n", "client": client, "server": server, "protocol": protocol,
            "slowest": [item(s) for s in lists.slowest],
            "status_4xx": [item(s) for s in lists.status_4xx],
            "status_5xx": [item(s) for s in lists.status_5xx]}


class Metrics(Sink):
    """Every exchange into the per-pair aggregator (the fan-out takes its snapshots)."""

    name = "metrics"

    def __init__(self, aggregator):
        self.aggregator = aggregator
        record = aggregator.record
        self.on_exchange = lambda ex: record(ex, ex.peer_name)
        self.on_exchanges = aggregator.record_batch  # a batch: one compiled call


class Sampling(Sink):
    """Every exchange offered to the sampler (the fan-out drains its top-N lists)."""

    name = "sampler"

    def __init__(self, sampler):
        self.sampler = sampler
        self.on_exchange = sampler.offer
        self.on_exchanges = sampler.offer_batch  # the common case set aside in compiled code


class Exporter(Sink):
    """Zipkin, OTLP or SkyWalking: sampled exchanges and pair metrics each interval, every
    exchange to ``observe`` when the exporter has one (OTLP's duration histograms)."""

    def __init__(self, exporter):
        self.exporter = exporter
        self.name = type(exporter).__name__.replace("Exporter", "").lower()
        observe = getattr(exporter, "observe", None)
        if observe is not None:
            self.on_exchange = lambda ex: observe(ex, ex.peer_name)
        tcp_metrics = getattr(exporter, "tcp_metrics", None)
        if tcp_metrics is not None:  # OTLP: sent with the interval's metrics export
            self.on_tcp_metrics = tcp_metrics
        self._stopped = False
        exporter.start()

    def on_interval(self, snapshot, top_n, counters, now_wall_ns) -> None:
        if self._stopped:
            return
        sampled = [s for lists in top_n.values() for s in lists.all()]
        if sampled:
            self.exporter.export_events(sampled)
        if hasattr(self.exporter, "export_metrics"):
            self.exporter.export_metrics(snapshot)

    def stop(self) -> None:
        self._stopped = True
        self.exporter.stop()

    def counters(self) -> dict:
        return {f"{self.name}_{k}": v for k, v in self.exporter.stats().items()}

    def close(self, aborted: bool = False) -> None:
        if not self._stopped:
            self._stopped = True
            self.exporter.stop()


class Prometheus(Sink):
    """Every exchange (``observe``), pair metrics and the agent's counters for scraping;
    served on its own listener
    (``own_listener``) or as the web UI listener's /metrics route."""

    name = "prometheus"

    def __init__(self, exporter, own_listener: bool):
        self.exporter = exporter
        self.own_listener = own_listener
        observe = getattr(exporter, "observe", None)
        if observe is not None:  # every exchange into its series (then pair metrics are unused)
            self.on_exchange = lambda ex: observe(ex, ex.peer_name)
        tcp_metrics = getattr(exporter, "tcp_metrics", None)
        if tcp_metrics is not None:  # the interval's tcp_metrics records into l7scope_tcp_*
            self.on_tcp_metrics = tcp_metrics
        if own_listener:
            exporter.start()

    def on_interval(self, snapshot, top_n, counters, now_wall_ns) -> None:
        if snapshot:
            self.exporter.update(snapshot)
        if counters is not None:
            self.exporter.set_agent_counters(
                {k: v for k, v in counters.items() if type(v) is int})

    def counters(self) -> dict:
        return {f"prometheus_{k}": v for k, v in self.exporter.stats().items()}

    def close(self, aborted: bool = False) -> None:
        if self.own_listener:
            self.exporter.stop()


class LiveView(Sink):
    """The live terminal table (summary.py): every exchange, redrawn from the loop."""

    name = "live"

    def __init__(self, summary):
        self.summary = summary
        observe = summary.observe
        self.on_exchange = lambda ex: observe(ex, ex.peer_name)

    def on_tick(self, now_wall_ns, counters_fn) -> None:
        self.summary.maybe_draw(counters_fn)

    def stop(self) -> None:
        self.summary.close()  # the terminal back in cooked mode before the stop line
        try:
            self.summary.out.write("\n")  # the stop line starts below the table
            self.summary.out.flush()
        except (OSError, ValueError):
            pass

    def close(self, aborted: bool = False) -> None:
        self.summary.close()


class Store(Sink):
    """Every exchange into the store's queue (outputs/store: the writer thread batches them),
    each interval's metrics, samples, counters and TCP records. ``stop()`` writes what is queued; the
    store stays open (for the API) until ``close()``. A temporary store's directory is
    removed at close."""

    name = "store"

    def __init__(self, sink, store, temp_dir: str | None = None):
        self.sink, self.store, self.temp_dir = sink, store, temp_dir
        self.on_exchange = sink
        self._stopped = False

    def on_interval(self, snapshot, top_n, counters, now_wall_ns) -> None:
        if snapshot or top_n or counters is not None:
            self.sink.on_interval(snapshot, top_n, counters)  # after stop(): written at once

    def on_tcp_metrics(self, records) -> None:
        """The interval's tcp_metrics records into the store's tcp_metrics table."""
        self.sink.on_tcp_metrics(records)

    def stop(self) -> None:
        self._stopped = True
        self.sink.close()

    def counters(self) -> dict:
        return self.sink.counters()

    def close(self, aborted: bool = False) -> None:
        try:
            if not self._stopped:
                self._stopped = True
                self.sink.close(timeout=5.0)
            self._close_store()
        finally:
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _close_store(self) -> None:
        self.store.close()


class Web(Store):
    """The store with its API and web UI on one listener (web/server.py's WebOutput). The
    API's status reads a counters snapshot refreshed once a second on the loop's thread (the
    listener's thread reads only that copy). The listener serves until ``close()``."""

    name = "web"
    COUNTERS_EVERY_NS = 1_000_000_000

    def __init__(self, web, temp_dir: str | None = None):
        super().__init__(web.sink, web.store, temp_dir)
        self.web = web
        self._last = 0

    def on_tick(self, now_wall_ns, counters_fn) -> None:
        now = time.monotonic_ns()
        if now - self._last >= self.COUNTERS_EVERY_NS:
            self._last = now
            self.web.set_counters(counters_fn())

    def on_interval(self, snapshot, top_n, counters, now_wall_ns) -> None:
        if counters is not None:
            self.web.set_counters(counters)
        super().on_interval(snapshot, top_n, counters, now_wall_ns)

    def counters(self) -> dict:
        return self.web.counters()

    def _close_store(self) -> None:
        self.web.stop()  # the listener, then the store
