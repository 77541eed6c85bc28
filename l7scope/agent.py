"""Runs a capture source through the pipeline into the outputs, with clean start and stop.

Sources: the kernel (eBPF), a live interface (AF_PACKET) or a capture file. Outputs: JSON
Lines sinks, metrics snapshots, sampling with top-N lists, exporters, Prometheus, the live
summary. SIGINT/SIGTERM stop and flush everything; SIGHUP re-reads the config's sampling rules.
"""
from __future__ import annotations

import signal
import sys
import time

from l7scope.config import Config, ConfigError, load_config
from l7scope.exchange import WallClock
from l7scope.metrics import MetricsAggregator, pair_of
from l7scope.outputs.jsonl import JsonlSink
from l7scope.pipeline import Pipeline
from l7scope.redact import Redactor
from l7scope.sampling import Sampler


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def _load(path: str | None) -> Config:
    if not path:
        return Config.default()
    try:
        return load_config(path)
    except ConfigError as e:
        raise UserError(f"config: {e}") from None


def _open_sink(path: str, **kw) -> JsonlSink:
    try:
        return JsonlSink(path, **kw)
    except OSError as e:
        raise UserError(f"cannot open output {path}: {e.strerror}") from None


class Outputs:
    """Everything downstream of an Exchange record."""

    def __init__(self, args, config: Config, clock: WallClock, pipeline_ref, show_summary: bool):
        self.config = config
        self.clock = clock
        self._pipeline = pipeline_ref
        self.redactor = Redactor.from_config(config.redact)
        paths = list(args.output) or ([] if show_summary else ["-"])
        self.sinks = [_open_sink(p, with_headers=args.with_headers,
                                 redact=self.redactor.redact_headers) for p in paths]
        self.metric_sinks = [_open_sink(p) for p in args.metrics_output]
        self.metrics = MetricsAggregator()
        self.interval_ns = int((args.metrics_interval or config.metrics_interval_s) * 1e9)
        self.interval_start: int | None = None
        self.sampler = Sampler(config.sampling, redactor=self.redactor, pair_key=self._pair_key)
        self.exporters = self._exporters(config)
        self.prometheus = None
        if args.metrics_listen:
            from l7scope.export.prometheus import PrometheusExporter

            try:
                self.prometheus = PrometheusExporter(args.metrics_listen)
                self.prometheus.start()
            except (OSError, ValueError) as e:
                raise UserError(f"--metrics-listen {args.metrics_listen}: {e}") from None
        self.summary = None
        if show_summary:
            from l7scope.summary import LiveSummary

            self.summary = LiveSummary()

    def _pair_key(self, ex) -> tuple[str, str, str]:
        client, server, _, _ = pair_of(ex, self._pipeline().peer_comm(ex))
        return client, server, ex.protocol

    def _exporters(self, config: Config) -> list:
        out, ex = [], config.exporters
        to_wall = self.clock.offset_ns.__add__
        if ex.zipkin:
            from l7scope.export.zipkin import ZipkinExporter

            out.append(ZipkinExporter(ex.zipkin, to_wall, redactor=self.redactor))
        if ex.otlp:
            from l7scope.export.otlp import OtlpExporter

            out.append(OtlpExporter(ex.otlp, to_wall, service_name=config.service_name,
                                    redactor=self.redactor))
        if ex.skywalking:
            from l7scope.export.skywalking import SkyWalkingExporter

            out.append(SkyWalkingExporter(ex.skywalking, to_wall, redactor=self.redactor))
        for e in out:
            e.start()
        return out

    def reload(self, config: Config) -> None:
        self.sampler.reconfigure(config.sampling)
        self.config = config

    def __call__(self, ex) -> None:
        for observe in self.observers():
            observe(ex)

    def observers(self) -> list:
        """Each output as its own pipeline observer: one failing (an internal error, counted)
        does not keep the Exchange from the others."""
        return [*self.sinks, self._record_metrics, self.sampler.offer]

    def _record_metrics(self, ex) -> None:
        peer_comm = self._pipeline().peer_comm(ex)
        self.metrics.record(ex, peer_comm)
        if self.summary is not None:
            self.summary.observe(ex, peer_comm)

    def tick(self, now_wall_ns: int, counters_fn) -> None:
        if self.interval_start is None:
            self.interval_start = now_wall_ns
        if now_wall_ns - self.interval_start >= self.interval_ns:
            self.export_interval(now_wall_ns)
            self.write_counters(now_wall_ns, counters_fn())
        if self.summary is not None:
            self.summary.maybe_draw(counters_fn)
        for sink in self.sinks:
            sink.flush()

    def export_interval(self, now_wall_ns: int) -> None:
        """The interval's pair metrics and top-N samples to the metric sinks and exporters."""
        start = self.interval_start if self.interval_start is not None else now_wall_ns
        snapshot = self.metrics.snapshot(start, now_wall_ns)
        top = self.sampler.drain()
        self.interval_start = now_wall_ns
        for sink in self.metric_sinks:
            for pm in snapshot:
                sink.write({"kind": "pair_metrics", **pm.to_dict()})
            for key, lists in top.items():
                sink.write(_top_n_record(key, lists, self.redactor))
        sampled = [s for lists in top.values() for s in lists.all()]
        for e in self.exporters:
            if sampled:
                e.export_events(sampled)
            if hasattr(e, "export_metrics"):
                e.export_metrics(snapshot)
        if self.prometheus is not None:
            self.prometheus.update(snapshot)

    def write_counters(self, now_wall_ns: int, counters: dict) -> None:
        pipeline = self._pipeline()
        reasons = list(pipeline.table.internal_errors) if pipeline is not None else []
        for sink in self.metric_sinks:
            record = {"kind": "agent_counters", "time_ns": now_wall_ns, **counters}
            if reasons:
                record["internal_error_reasons"] = reasons  # the latest, oldest first (16 at most)
            sink.write(record)
            sink.flush()
        if self.prometheus is not None:
            self.prometheus.set_agent_counters(counters)

    def counters(self) -> dict[str, int]:
        out = {f"sampler_{k}": v for k, v in self.sampler.counters.items()}
        for e in self.exporters:
            name = type(e).__name__.replace("Exporter", "").lower()
            out.update({f"{name}_{k}": v for k, v in e.stats().items()})
        out["metrics_overflow_records"] = self.metrics.overflow_records
        return out

    def close(self, counters_fn) -> dict:
        """Last interval out, exporters drained and stopped, then the final counters (which
        so include what the stop sent or dropped); returns them."""
        now = self._now_wall()
        self.export_interval(now)
        for e in self.exporters:
            e.stop()
        final = counters_fn()
        self.write_counters(now, final)
        if self.prometheus is not None:
            self.prometheus.stop()
        for sink in self.sinks + self.metric_sinks:
            sink.close()
        return final

    def _now_wall(self) -> int:
        return time.time_ns() if self.clock.offset_ns else (self._pipeline().last_ts or time.time_ns())


def _top_n_record(key, lists, redactor) -> dict:
    client, server, protocol = key if isinstance(key, tuple) and len(key) == 3 else (str(key), "", "")

    def item(s):
        d = s.exchange.to_dict()
        d["reason"] = s.reason
        return d

    return {"kind": "top_n", "client": client, "server": server, "protocol": protocol,
            "slowest": [item(s) for s in lists.slowest],
            "status_4xx": [item(s) for s in lists.status_4xx],
            "status_5xx": [item(s) for s in lists.status_5xx]}


class _Signals:
    def __init__(self):
        self.stop = False
        self.reload = False
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGHUP, self._hup)

    def _stop(self, *_):
        self.stop = True

    def _hup(self, *_):
        self.reload = True


def main(args) -> int:
    if args.command == "pcap":
        return run_pcap(args)
    return run_live(args)


def _all_counters(pipeline: Pipeline, outputs: Outputs, source_counters: dict) -> dict:
    c = dict(source_counters)
    c.update(pipeline.table.counters)
    c.update({f"parse_error_{k}": v for k, v in pipeline.parse_errors.items()})
    c.update({f"trace_context_{k}": v for k, v in pipeline.trace_errors.items()})
    c.update(pipeline.counters)
    c["exchanges"] = pipeline.exchanges
    c.update(outputs.counters())
    return c


def run_live(args) -> int:
    config = _load(args.config)
    sig = _Signals()
    if args.interface:
        from l7scope.sources import InterfaceSource

        source = InterfaceSource(args.interface)
        clock = WallClock(offset_ns=0)
    else:
        from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions

        opts = KernelOptions(pids=tuple(args.pid), comms=tuple(args.comm),
                             max_payload=args.max_payload, ringbuf_bytes=args.ringbuf_mb << 20)
        debug = (lambda lvl, text: sys.stderr.write(text)) if args.debug_bpf else None
        try:
            source = KernelCapture(opts, debug_print=debug)
        except CaptureUnavailable as e:
            raise UserError(str(e)) from None
        clock = WallClock()
    pipeline: Pipeline | None = None
    show_summary = sys.stdout.isatty() and not args.no_summary and "-" not in args.output
    try:
        outputs = Outputs(args, config, clock, lambda: pipeline, show_summary)
    except BaseException:
        source.close()  # one cleanup path: nothing stays attached when an output cannot open
        raise
    from l7scope.conn.listeners import ListeningPorts
    from l7scope.conn.table import ConnectionTable

    table = ConnectionTable(listening=None if args.interface else ListeningPorts(),
                            max_memory=_max_memory(args))
    pipeline = Pipeline(table=table, clock=clock, observers=outputs.observers(),
                        capture_mode=bool(args.interface),
                        redact_path=outputs.redactor.redact_path)
    what = f"pids {args.pid}" if args.pid else f"commands {args.comm}" if args.comm else "all processes"
    tls = getattr(source, "tls_library", None)
    tls_note = "" if args.interface else (
        f"; TLS via {tls}" if tls else f"; TLS not traced ({getattr(source, 'tls_problem', None)})")
    print(f"l7scope: capturing HTTP/1.x, HTTP/2 and gRPC traffic of {what}"
          + (f" on {args.interface}" if args.interface else "") + tls_note + " (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.duration if args.duration else None
    counters = lambda: _all_counters(pipeline, outputs, source.counters())  # noqa: E731
    try:
        while not sig.stop and (deadline is None or time.monotonic() < deadline):
            pipeline.feed(source.poll(100))
            if sig.reload:
                sig.reload = False
                _reload(args, outputs)
            now_mono = time.monotonic_ns()
            pipeline.tick(now_mono if not args.interface else time.time_ns())
            outputs.tick(time.time_ns(), counters)
        pipeline.feed(source.drain())
        pipeline.finish()
        final = outputs.close(counters)
    finally:
        source.close()
    _report(final, pipeline.table.internal_errors)
    return 0


def _max_memory(args) -> int:
    """--max-parser-memory MB as bytes (the table's default when not given)."""
    from l7scope.conn.table import DEFAULT_MAX_MEMORY

    mb = getattr(args, "max_parser_memory", None)
    return mb << 20 if mb else DEFAULT_MAX_MEMORY


def _reload(args, outputs: Outputs) -> None:
    try:
        config = load_config(args.config) if args.config else Config.default()
    except ConfigError as e:
        print(f"l7scope: config not reloaded: {e}", file=sys.stderr, flush=True)
        return
    outputs.reload(config)
    print("l7scope: sampling rules reloaded", file=sys.stderr, flush=True)


_DROP_WORDS = ("full", "drop", "malformed", "lost", "evicted", "fault", "shed", "discard")


def stop_line(counters: dict, reasons=()) -> str:
    """The one line printed at stop: drops, parse errors and internal errors, each named."""
    internal = {k: v for k, v in counters.items() if v and k.startswith("internal_error_")}
    parse = {k: v for k, v in counters.items() if v and k.startswith("parse_error_")}
    drops = {k: v for k, v in counters.items() if v and k not in internal and k not in parse
             and any(w in k for w in _DROP_WORDS)}

    def listed(d: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in d.items())

    line = f"l7scope: stopped; {counters.get('exchanges', 0)} exchanges"
    line += f"; dropped: {listed(drops)}" if drops else "; nothing dropped"
    line += f"; parse errors: {listed(parse)}" if parse else "; no parse errors"
    if internal:
        latest = list(dict.fromkeys(reversed(list(reasons))))[:4]
        line += f"; internal errors: {listed(internal)}"
        line += f" (latest: {'; '.join(latest)})" if latest else ""
    else:
        line += "; no internal errors"
    return line


def _report(counters: dict, reasons=()) -> None:
    print(stop_line(counters, reasons), file=sys.stderr, flush=True)


def run_pcap(args) -> int:
    from l7scope.sources import capture_file_events, check_capture_file

    config = _load(args.config)
    check_capture_file(args.file)  # before any output file is created
    clock = WallClock(offset_ns=0)
    pipeline: Pipeline | None = None
    outputs = Outputs(args, config, clock, lambda: pipeline, show_summary=False)
    from l7scope.conn.table import ConnectionTable

    pipeline = Pipeline(table=ConnectionTable(max_memory=_max_memory(args)), clock=clock,
                        observers=outputs.observers(), capture_mode=True,
                        redact_path=outputs.redactor.redact_path)
    events, source_counters = capture_file_events(args.file)
    batch = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= 512:
            pipeline.feed(batch)
            batch.clear()
            pipeline.tick(pipeline.last_ts)
            outputs.tick(pipeline.last_ts, lambda: _all_counters(pipeline, outputs, source_counters()))
    pipeline.feed(batch)
    pipeline.finish()
    final = outputs.close(lambda: _all_counters(pipeline, outputs, source_counters()))
    if final.get("capture_errors"):
        print(f"l7scope: {args.file}: {final.get('capture_error_message', 'capture damaged')}",
              file=sys.stderr)
    _report(final, pipeline.table.internal_errors)
    return 0
