"""The composition root: settings -> source -> pipeline -> outputs, with one cleanup path.

Theory of operation
-------------------
``run(settings)`` is the whole life of ``l7scope run`` and ``l7scope pcap``:

    config      the YAML file (errors.ConfigProblem)
    source      sources.py: kernel, interface or capture file (checked before any output exists)
    outputs     outputs/sinks.py: JSON Lines files, metrics file, aggregator, sampler,
                exporters, Prometheus, live view, store + API + UI (one listener)
    pipeline    pipeline.py, whose batch observers are the sinks' on_exchanges
    loop        agent.py, until a signal, --duration or the end of the file
    finish      last interval, sinks stopped, final counters, stop line on stderr

One ``try/finally`` closes whatever was opened, in reverse order, whatever happened: an
output that cannot open leaves nothing attached, and a run that fails after the outputs are
open (a capture file with nothing readable, a full disk) closes every sink with
``aborted=True``: an output file this run created and wrote nothing to is removed; one that
holds records is kept, and a line on stderr names it as a partial result before the
error's own line. A capture file read
with ``--ui`` keeps its listener serving after the stop line until Ctrl-C.

Settings are a frozen dataclass made by cli.py; nothing below the command line sees argparse.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time

from l7scope import agent
from l7scope.config import Config, ConfigError, load_config
from l7scope.errors import ConfigProblem, OutputError
from l7scope.outputs import FanOut
from l7scope.outputs import sinks as S

DEFAULT_UI = "127.0.0.1:7070"
STORE_FILE = "l7scope.db"
INTERRUPTED = 130


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs from the command line."""

    command: str  # "run" | "pcap"
    file: str | None = None  # pcap
    interface: str | None = None  # run: AF_PACKET instead of eBPF
    pids: tuple[int, ...] = ()
    comms: tuple[str, ...] = ()
    duration_s: float | None = None
    max_payload: int = 65536
    ringbuf_mb: int = 16
    debug_bpf: bool = False
    outputs: tuple[str, ...] = ()  # JSON Lines paths, "-" = stdout
    metrics_outputs: tuple[str, ...] = ()
    metrics_interval_s: float | None = None  # None: the config's
    config_path: str | None = None
    with_headers: bool = False
    metrics_listen: str | None = None
    max_parser_memory_mb: int = 64
    live_view: bool = True  # on a terminal, unless --no-summary
    ui: str | None = DEFAULT_UI  # HOST:PORT, None = off
    store: str | None = None  # None: the default for the command; "off"; a path; clickhouse://
    data_dir: str | None = None

    def store_spec(self) -> tuple[str | None, bool]:
        """(store spec or None for no store, temporary): the file under the data directory
        for ``run``; a capture file's run stores only when asked (``--store``) or for its
        UI (a temporary store, removed at exit); ``off`` with the UI on is temporary too."""
        spec = self.store
        if spec is None and self.command == "run":
            from l7scope.outputs.store import default_data_dir

            return os.path.join(self.data_dir or default_data_dir(), STORE_FILE), False
        if spec in (None, "off"):
            return (None, self.ui is not None)
        return spec, False

    def show_live_view(self, stdout_isatty: bool) -> bool:
        return (self.command == "run" and self.live_view and stdout_isatty
                and "-" not in self.outputs)


def load(path: str | None) -> Config:
    if not path:
        return Config.default()
    try:
        return load_config(path)
    except ConfigError as e:
        raise ConfigProblem(f"config: {e}") from None


def open_source(s: Settings):
    from l7scope import sources

    if s.command == "pcap":
        return sources.FileSource(s.file)
    if s.interface:
        return sources.InterfaceSource(s.interface)
    return sources.KernelSource(s.pids, s.comms, s.max_payload, s.ringbuf_mb, s.debug_bpf)


class _Run:
    """The parts of one run, each None until opened; ``close`` undoes what was done."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.source = None
        self.outputs: FanOut | None = None
        self.web = None
        self.signals: agent.Signals | None = None
        self.processes = None  # procs.ProcessTable of a kernel run
        self.tasks = None  # tasks.TaskController when the API is served
        self._source_open = False

    def close_source(self) -> None:
        if self._source_open:
            self._source_open = False
            self.source.close()

    def close(self, aborted: bool) -> None:
        try:
            if self.outputs is not None:
                self.outputs.close(aborted)
        finally:
            self.close_source()
            if self.signals is not None:
                self.signals.restore()


def run(settings: Settings) -> int:
    config = load(settings.config_path)
    r = _Run(settings)
    aborted = True
    try:
        r.signals = agent.Signals()
        r.source = open_source(settings)
        r._source_open = True
        status = _run(r, config)
        aborted = False
        return status
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            raise
        raise OutputError(f"output failed: {e.strerror or e}") from None
    finally:
        r.close(aborted)
        if aborted:
            _say_partial(r)


def _run(r: _Run, config: Config) -> int:
    s, source = r.settings, r.source
    pipeline, clock = _assemble(r, config)
    progress = agent.Progress.maybe(source) if s.command == "pcap" else None
    ended = agent.loop(source, pipeline, r.outputs, r.signals, clock, duration_s=s.duration_s,
                       on_reload=lambda: _reload(s, r.outputs, r.tasks), progress=progress)
    if progress is not None:
        progress.clear()
    pipeline.finish()
    clock.last_ts = pipeline.last_ts
    final = r.outputs.finish(clock.wall_ns(),
                             lambda: agent.all_counters(pipeline, r.outputs, source))
    r.close_source()
    interrupted = s.command == "pcap" and not ended
    _report(s, final, pipeline, source, interrupted)
    if s.command == "pcap" and r.web is not None and ended:
        print(f"l7scope: {s.file} read; the web UI stays at {r.web.web.url} (Ctrl-C stops)",
              file=sys.stderr, flush=True)
        r.signals.wait()
    return INTERRUPTED if interrupted else 0


def _assemble(r: _Run, config: Config):
    """Outputs, then the pipeline feeding them; the first lines on stderr. (pipeline, clock)"""
    from l7scope.conn.listeners import ListeningPorts
    from l7scope.conn.table import ConnectionTable
    from l7scope.pipeline import Pipeline
    from l7scope.redact import Redactor

    s, source = r.settings, r.source
    redactor = Redactor.from_config(config.redact)
    clock = agent.RunClock(source)
    r.processes = _processes(s, source)
    now_ns = clock.wall_ns if s.command == "pcap" else time.time_ns
    r.outputs = build_outputs(s, config, redactor, source.clock, source.label, now_ns,
                              processes=r.processes)
    r.web = web_of(r.outputs)
    listening = None if source.capture_mode else ListeningPorts()  # the host's listening ports
    if not source.capture_mode:  # the kernel source's TCP health records (docs/metrics.md)
        from l7scope.tcpmetrics import TcpMetrics

        r.outputs.tcp = TcpMetrics(owned_only=bool(s.pids or s.comms),
                                   name=r.outputs.metrics.name,  # pairs named alike
                                   live=getattr(source, "tcp_open", None),  # open sockets
                                   listening=listening)
        store = next((x for x in r.outputs.sinks if isinstance(x, S.Store)), None)
        if store is not None:  # the store names TCP pairs' processes as its topology does
            store.sink.process_name = r.processes.name
    table = ConnectionTable(listening=listening,
                            max_memory=s.max_parser_memory_mb << 20)
    r.outputs.on_error = lambda exc: table.record_internal_error("output", exc)
    pipeline = Pipeline(table=table, clock=source.clock,
                        batch_observers=r.outputs.batch_observers(),
                        capture_mode=source.capture_mode, redact_path=redactor.redact_path,
                        processes=r.processes)
    r.tasks = _tasks(s, config, source, r.outputs, r.web, pipeline)
    _announce(s, source, r.web)
    live = next((x for x in r.outputs.sinks if isinstance(x, S.LiveView)), None)
    if live is not None and r.web is not None:
        live.summary.view.note = f"web UI {r.web.web.url}"
    return pipeline, clock


def _tasks(s: Settings, config: Config, source, outputs: FanOut, web, pipeline):
    """Analysis tasks (docs/tasks.md), started and stopped through the API: the kernel's live
    filter (``set_filter``) follows them; the pipeline keeps and the sampler samples their
    processes' exchanges by their rules. None without the API."""
    if web is None:
        return None
    from l7scope.tasks.controller import TaskController, TasksSink
    from l7scope.web.tasks_api import TasksApi

    tasks = TaskController(capture_filter=getattr(source, "set_filter", None),
                           packets=source.capture_mode,
                           default_pids=s.pids, default_comms=s.comms, sampling=config.sampling)
    outputs.sinks.append(TasksSink(tasks))
    outputs.sampler.rules_for = tasks.rules_for
    pipeline.admit, pipeline.on_process_event = tasks.admit, tasks.on_process_event
    TasksApi(tasks).mount(web.web.listener)
    return tasks


def _processes(s: Settings, source):
    """The run's process table (kernel runs; packet captures name no process), after the
    warnings about --comm and --pid on stderr."""
    if source.capture_mode:
        return None
    from l7scope.procs import ProcessTable, comm_filter_warnings, pid_warnings

    for line in comm_filter_warnings(s.comms or ()) + pid_warnings(s.pids or ()):
        print(f"l7scope: warning: {line}", file=sys.stderr, flush=True)
    return ProcessTable()


def build_outputs(s: Settings, config: Config, redactor, clock, label: str, now_ns,
                  processes=None) -> FanOut:
    """Every sink of the run, opened in order (``clock``: the source's WallClock, ``label``
    the source for the API, ``now_ns`` the run's wall clock); when one cannot open, the ones
    already open are closed before the error goes up. With a process table, pairs are named
    by service (metrics.service_names) in the metrics, sampling and Prometheus alike."""
    from l7scope.metrics import MetricsAggregator, process_name, service_names
    from l7scope.sampling import Sampler

    names = process_name if processes is None else service_names(processes)
    metrics = MetricsAggregator(name=names)

    def pair_key(ex):  # the metrics' pair, from its cache of routes
        return metrics.route(ex, ex.peer_name)[0]

    sampler = Sampler(config.sampling, redactor=redactor, pair_key=pair_key)
    interval_s = s.metrics_interval_s or config.metrics_interval_s
    fan = FanOut([], metrics=metrics, sampler=sampler, interval_ns=int(interval_s * 1e9))
    try:
        _open_sinks(fan, s, config, redactor, clock, label, now_ns, names)
    except BaseException:
        fan.close(aborted=True)
        raise
    return fan


def web_of(fan: FanOut):
    return next((x for x in fan.sinks if isinstance(x, S.Web)), None)


def _open_sinks(fan: FanOut, s: Settings, config: Config, redactor, clock, label, now_ns,
                names):
    live = s.show_live_view(sys.stdout.isatty())
    paths = list(s.outputs) or ([] if live else ["-"])
    for p in paths:
        fan.sinks.append(_jsonl(p, with_headers=s.with_headers, redact=redactor.redact_headers))
    fan.sinks.append(S.Metrics(fan.metrics))
    if live:
        from l7scope.summary import LiveSummary

        fan.sinks.append(S.LiveView(LiveSummary(redactor=redactor, name=names)))
    fan.sinks.append(S.Sampling(fan.sampler))
    for exporter in _exporters(config, clock, redactor, names):
        fan.sinks.append(S.Exporter(exporter))
    prometheus = _prometheus(s, names)
    shared = prometheus is not None and s.ui is not None and _same_address(s.metrics_listen, s.ui)
    web = _store_and_web(s, clock, label, now_ns, prometheus.handle if shared else None)
    if web is not None:
        fan.sinks.append(web)
    if prometheus is not None:
        try:
            fan.sinks.append(S.Prometheus(prometheus, own_listener=not shared))
        except OSError as e:
            raise OutputError(f"--metrics-listen {s.metrics_listen}: {e.strerror or e}") from None
    for p in s.metrics_outputs:
        fan.sinks.append(_jsonl(p, metrics=True))


def _jsonl(path: str, **kw) -> S.JsonlFile:
    try:
        return S.JsonlFile(path, **kw)
    except OSError as e:
        raise OutputError(f"cannot open output {path}: {e.strerror}") from None


def _exporters(config: Config, clock, redactor, names) -> list:
    out, ex = [], config.exporters
    to_wall = clock.offset_ns.__add__
    if ex.zipkin:
        from l7scope.export.zipkin import ZipkinExporter

        out.append(ZipkinExporter(ex.zipkin, to_wall, redactor=redactor))
    if ex.otlp:
        from l7scope.export.otlp import OtlpExporter

        out.append(OtlpExporter(ex.otlp, to_wall, service_name=config.service_name,
                                redactor=redactor, names=names))
    if ex.skywalking:
        from l7scope.export.skywalking import SkyWalkingExporter

        out.append(SkyWalkingExporter(ex.skywalking, to_wall, redactor=redactor))
    return out  # started one by one as sinks (a failure closes those already started)


def _prometheus(s: Settings, names):
    """The Prometheus exporter, not yet serving (its own listener starts in its sink; one
    sharing the web UI's address becomes that listener's /metrics route)."""
    if not s.metrics_listen:
        return None
    from l7scope.export.prometheus import PrometheusExporter

    try:
        return PrometheusExporter(s.metrics_listen, service_name=names)
    except ValueError as e:
        raise OutputError(f"--metrics-listen {s.metrics_listen}: {e}") from None


def _same_address(a: str, b: str) -> bool:
    from l7scope.outputs.http import parse_listen_address

    return parse_listen_address(a) == parse_listen_address(b)


def _store_and_web(s: Settings, clock, label: str, now_ns, prometheus_route):
    """The store with the API and UI on one listener, the store alone (--ui off), or None."""
    spec, temporary = s.store_spec()
    if spec is None and not temporary:
        return None
    temp_dir = tempfile.mkdtemp(prefix="l7scope-store-") if temporary else None
    if temp_dir is not None:
        spec = os.path.join(temp_dir, STORE_FILE)
    to_wall = clock.offset_ns.__add__
    try:
        if s.ui is None:
            return _store_only(spec, to_wall, now_ns, temp_dir)
        from l7scope.web.server import WebError, WebOutput

        try:
            web = WebOutput.open(ui=s.ui, store=spec, to_wall_ns=to_wall, source=label,
                                 now_ns=now_ns, prometheus=prometheus_route)
        except WebError as e:
            hint = ("; another l7scope? choose --ui HOST:PORT or --ui off"
                    if "in use" in str(e) else "")
            raise OutputError(f"{e}{hint}") from None
        return S.Web(web, temp_dir)
    except BaseException:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise


def _store_only(spec: str, to_wall, now_ns, temp_dir):
    from l7scope.outputs.store import StoreError, StoreSink, open_store

    try:
        store = open_store(spec)
    except StoreError as e:
        raise OutputError(str(e)) from None
    return S.Store(StoreSink(store, to_wall_ns=to_wall, now_ns=now_ns), store, temp_dir)


def _announce(s: Settings, source, web) -> None:
    """The first lines on stderr: the web UI's address (and a warning beyond loopback), then
    what is captured."""
    if web is not None:
        for line in web.web.banner(s.ui):
            print(line, file=sys.stderr, flush=True)
    if s.metrics_listen and not (web is not None and _same_address(s.metrics_listen, s.ui)):
        from l7scope.outputs.http import listen_warning

        warning = listen_warning(s.metrics_listen)
        if warning:
            print(f"l7scope: warning: {warning}", file=sys.stderr, flush=True)
    if s.command == "pcap":
        return
    what = (f"pids {list(s.pids)}" if s.pids else f"commands {list(s.comms)}" if s.comms
            else "all processes")
    if s.interface:
        where = f" on {s.interface}"
    else:
        tls = getattr(source, "tls_library", None)
        where = f"; TLS via {tls}" if tls else \
            f"; TLS not traced ({getattr(source, 'tls_problem', None)})"
    print(f"l7scope: capturing HTTP/1.x, HTTP/2 and gRPC traffic of {what}{where} (Ctrl-C stops)",
          file=sys.stderr, flush=True)


def _reload(s: Settings, outputs: FanOut, tasks=None) -> None:
    try:
        config = load_config(s.config_path) if s.config_path else Config.default()
    except ConfigError as e:
        print(f"l7scope: config not reloaded: {e}", file=sys.stderr, flush=True)
        return
    outputs.sampler.reconfigure(config.sampling)
    if tasks is not None:
        tasks.sampling = config.sampling  # the default task's rules
    for sink in outputs.sinks:
        problem = sink.reopen() if isinstance(sink, S.JsonlFile) else None
        if problem:
            print(f"l7scope: {problem}", file=sys.stderr, flush=True)
    print("l7scope: sampling rules reloaded", file=sys.stderr, flush=True)


def _report(s: Settings, final: dict, pipeline, source, interrupted: bool) -> None:
    if final.get("capture_errors") and s.command == "pcap":
        print(f"l7scope: {s.file}: {final.get('capture_error_message', 'capture damaged')}",
              file=sys.stderr)
    print(agent.stop_line(final, pipeline.table.internal_errors), file=sys.stderr, flush=True)
    if interrupted:
        print(f"l7scope: interrupted; the outputs hold a partial result (the exchanges of the "
              f"first {int(source.progress() * 100)}% of {s.file})",
              file=sys.stderr, flush=True)


def _say_partial(r: _Run) -> None:
    """After a failed run: name the output files left with records (a partial result)."""
    if r.outputs is None:
        return
    kept = [x.path for x in r.outputs.sinks
            if isinstance(x, S.JsonlFile) and x.path != "-" and x.written]
    if kept:
        print(f"l7scope: the run failed; partial output kept in {', '.join(kept)}",
              file=sys.stderr, flush=True)
