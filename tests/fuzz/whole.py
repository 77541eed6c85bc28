"""Fuzz targets for whole paths: raw ring-buffer records through the agent's pipeline and
outputs, capture files through TCP reassembly, the config loader, redaction.

pipeline: the script's opcodes become struct l7_event records (capture/wire.py layout) for four
sockets (two client sockets and the server sockets they talk to, the last one TLS): data, a
hole, open, close, end of stream, or the argument itself taken as a whole record; the records go
through WireDecoder and a Pipeline whose observers are the agent's own outputs as
app.build_outputs makes them (JSON Lines with headers, metrics, the sampler with redaction of
JSON fields), the path redacted by the Redactor as the agent does, and at the end the sampled
exchanges are rendered as span events and top-N records. Invariant: no exception, no
internal_error counter, every output record a JSON object with a status of three digits or null,
(where the table accounts memory) the table within its budget after every record, every
record's path, trace context, grpc-status and time what the Python rules make of its messages
(the compiled builder's decisions, dataplane/_buildmodule.c), the batch-written JSON Lines file
the json module's lines, and the compiled aggregator's pair metrics (fed batches) the reference
Python aggregator's (fed each record).
"""
from __future__ import annotations

import inspect
import io
import json
import os
import tempfile
from types import SimpleNamespace

from l7scope import agent, app
from l7scope.capture import wire
from l7scope.capture.events import ConnectionClosed, ConnectionOpened, DataChunk, StreamEnded
from l7scope.capture.packet import CaptureError
from l7scope.capture.pcap import pcap_events
from l7scope.capture.tcp_reassembly import TcpReassembler
from l7scope.config import ConfigError, load_config, parse_config
from l7scope.conn.table import ConnectionTable
from l7scope.exchange import WallClock
from l7scope.metrics import MetricsAggregator
from l7scope.outputs.jsonl import exchange_line
from l7scope.outputs.sinks import top_n_record
from l7scope.pipeline import Pipeline
from l7scope.redact import REDACTED, Redactor
from l7scope.sampling import Sampler
from l7scope.spanevents import build_span_events
from l7scope.tracecontext import extract
from tests.dataplane import build_reference

from tests import metrics_reference

from .parsers import SMALL_LIMITS, hole_length
from .script import Finding, check, check_memory, ops

_DIR = tempfile.mkdtemp(prefix="l7scope-fuzz-")
SECRET_FIELDS = ["password", "token", "secret", "api_key", "authorization"]
PIPELINE_CONFIG = {"redact": {"json_fields": SECRET_FIELDS},
                   "sampling": {"top_n": 3, "rules": [{"min_duration_ms": 0}]}}
RECORD_CHUNK = 4096  # the kernel's record payload size
IDLE_JUMP_NS = 400 * 10**9  # past the table's idle timeout

# conn index -> (local port, remote port, role, flags); 2 and 3 are the server ends of 0 and 1
SOCKETS = ((40000, 8080, 1, 0), (40001, 8080, 1, 0), (8080, 40000, 2, 0),
           (8080, 40001, 2, wire.FLAG_TLS))
LOOPBACK = bytes([127, 0, 0, 1]) + bytes(12)


def record(kind: int, conn: int, egress: bool, ts: int, seq: int = 0, data: bytes = b"",
           chunk_len: int | None = None, role: int | None = None) -> bytes:
    lport, rport, sock_role, flags = SOCKETS[conn]
    return wire.HEADER.pack(
        ts, ts + 10, conn + 1, 1000 + conn, 1000 + conn, 5, seq, len(data), 0,
        len(data) if chunk_len is None else chunk_len, len(data), kind,
        wire.DIR_EGRESS if egress else wire.DIR_INGRESS, 2 if egress else 1,
        sock_role if role is None else role, wire.AF_INET, flags, lport, rport, LOOPBACK,
        LOOPBACK, b"fuzzed") + data


class RecordScript:
    """Turns a script into records, tracking each direction's stream position."""

    def __init__(self):
        self.seq: dict[tuple[int, bool], int] = {}
        self.ts = 10**12

    def records(self, op: int, arg: bytes) -> list[bytes]:
        egress, conn, event = bool(op & 1), (op >> 1) & 3, (op >> 3) & 7
        role = 0 if op >> 6 == 3 else None
        key = (conn, egress)
        if event <= 2:
            out = []
            for i in range(0, max(len(arg), 1), RECORD_CHUNK):
                piece = arg[i:i + RECORD_CHUNK]
                out.append(record(wire.KIND_DATA, conn, egress, self.ts, self.seq.get(key, 0),
                                  piece, role=role))
                self.seq[key] = (self.seq.get(key, 0) + len(piece)) & 0xFFFFFFFF
            return out
        if event == 6:  # a hole: bytes the kernel did not copy
            n = hole_length(arg)
            rec = record(wire.KIND_DATA, conn, egress, self.ts, self.seq.get(key, 0), b"", n,
                         role=role)
            self.seq[key] = (self.seq.get(key, 0) + n) & 0xFFFFFFFF
            return [rec]
        if event == 7:
            return [arg]
        kind = {3: wire.KIND_OPEN, 4: wire.KIND_CLOSE, 5: wire.KIND_EOF}[event]
        if kind == wire.KIND_OPEN:
            self.seq[(conn, True)] = self.seq[(conn, False)] = 0
        return [record(kind, conn, egress, self.ts, role=role)]


def _settings(out: str, metrics: str, with_headers: bool) -> app.Settings:
    return app.Settings(command="pcap", outputs=(out,), metrics_outputs=(metrics,),
                        with_headers=with_headers, metrics_interval_s=3600, ui=None)


def _table(config: int) -> ConnectionTable:
    from l7scope.protocols.message import AnalyzerLimits

    kw = {"limits": AnalyzerLimits(**SMALL_LIMITS) if config & 1 else AnalyzerLimits(),
          "max_connections": 2 if config & 2 else 16384}
    if config & 4 and "max_memory" in inspect.signature(ConnectionTable).parameters:
        kw["max_memory"] = 32 * 1024
    return ConnectionTable(**kw)


def check_table_budget(table: ConnectionTable) -> None:
    """Where the table keeps a memory budget (max_memory), after every record both its
    running total (memory_total) and the memory its analyzers and undecided bytes really hold
    (each analyzer's memory(), fresh) are within the budget."""
    budget = getattr(table, "max_memory", None)
    if budget is None:
        return
    total = getattr(table, "memory_total", None)
    check(total is None or 0 <= total <= budget, f"table memory_total {total} over {budget}")
    held = 0
    for conn in table.conns.values():
        held += len(conn.pending)
        if conn.analyzer is not None and hasattr(conn.analyzer, "memory"):
            held += conn.analyzer.memory()
    check(held <= budget, f"analyzers hold {held} octets, budget {budget}")


def watch_internal_errors(table: ConnectionTable) -> list[BaseException]:
    """The exceptions the table's error boundary counts (where it has one), kept so that a
    finding shows the bug's own traceback."""
    caught: list[BaseException] = []
    record = getattr(table, "record_internal_error", None)
    if record is not None:
        def keep(protocol: str, exc: BaseException) -> None:
            caught.append(exc)
            record(protocol, exc)

        table.record_internal_error = keep
    return caught


def check_counters(counters: dict, caught: list[BaseException]) -> None:
    bad = {k: v for k, v in counters.items() if k.startswith("internal_error") and v}
    if bad or caught:
        first = caught[0] if caught else None
        reason = f"{type(first).__name__}: {str(first)[:120]}" if first else ""
        raise Finding(f"internal errors counted: {bad} {reason}") from first


def check_output_lines(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            check(type(d) is dict, f"output line {line[:80]!r}")
            status = d.get("status")
            check(status is None or (type(status) is int and 100 <= status <= 999),
                  f"status {status!r} in an output record")
            grpc = d.get("grpc_status")
            check(grpc is None or type(grpc) is int, f"grpc_status {grpc!r}")


def _tcp_pair(max_sockets: int):
    """The agent's TCP metrics, and one whose per-socket counting is the Python reference."""
    from l7scope.tcpmetrics import TcpMetrics, _Bytes

    from ..dataplane.sockbytes_reference import ReferenceSocketBytes

    compiled = TcpMetrics(max_sockets=max_sockets, reasons={})
    reference = TcpMetrics(max_sockets=max_sockets, reasons={})
    reference._open = ReferenceSocketBytes(max_sockets, reference.counters, _Bytes)
    return compiled, reference


def check_same_tcp(compiled, reference, ts: int) -> None:
    """Both count the same: the interval's records (taken from the compiled one here, so
    outputs.finish reports an empty interval after) and the counters."""
    a, b = compiled.snapshot(0, ts), reference.snapshot(0, ts)
    check(a == b, f"tcp_metrics records differ: {a[:2]} vs {b[:2]}")
    check(compiled.counters == reference.counters,
          f"tcp counters differ: {compiled.counters} vs {reference.counters}")


def pipeline(data: bytes) -> None:
    """Raw records -> WireDecoder -> Pipeline -> the agent's outputs (module docstring).
    Config bits: 0 small analyzer limits, 1 two connections at most, 2 a 32 KiB memory budget
    (where the table has one), 3 headers in the records. The events also feed the agent's TCP
    metrics (TcpMetrics, its per-socket counting in C) and one counting in Python (the
    reference, tests/dataplane/sockbytes_reference.py): the same tcp_metrics records and
    counters from both."""
    if not data:
        return
    config = data[0]
    out, metrics = os.path.join(_DIR, "ex.jsonl"), os.path.join(_DIR, "metrics.jsonl")
    for path in (out, metrics):
        if os.path.exists(path):
            os.unlink(path)
    decoder, script = wire.WireDecoder(), RecordScript()
    cfg, clock = parse_config(PIPELINE_CONFIG), WallClock()
    redactor = Redactor.from_config(cfg.redact)
    outputs = app.build_outputs(_settings(out, metrics, bool(config & 8)), cfg, redactor, clock,
                                "fuzz", lambda: script.ts)
    lines: list = []
    built = lambda ex: _check_built(ex, clock, redactor)  # noqa: E731
    compiled, reference = MetricsAggregator(max_pairs=3), metrics_reference.MetricsAggregator(
        max_pairs=3)
    pipe = Pipeline(table=_table(config), clock=clock, redact_path=redactor.redact_path,
                    batch_observers=outputs.batch_observers() + [compiled.record_batch],
                    observers=[built, lambda ex: lines.append(_both_lines(ex)),
                               lambda ex: reference.record(ex, ex.peer_name)])
    caught = watch_internal_errors(pipe.table)
    source = SimpleNamespace(counters=lambda: {"malformed": decoder.malformed})
    counters = lambda: agent.all_counters(pipe, outputs, source)  # noqa: E731
    outputs.tcp, tcp_reference = _tcp_pair(2 if config & 2 else 64)
    for op, arg in ops(data, 1):
        script.ts += IDLE_JUMP_NS if op >> 6 == 2 else 1_000_000
        events = decoder.decode_batch(script.records(op, arg))
        pipe.feed(events)
        outputs.tcp.feed(events)
        tcp_reference.feed(events)
        if op >> 6:
            pipe.tick(script.ts)
        check_table_budget(pipe.table)
    pipe.finish()
    check_same_tcp(outputs.tcp, tcp_reference, script.ts)
    _render_samples(outputs, clock, redactor)
    final = outputs.finish(script.ts, counters)
    outputs.close()
    check_counters(final, caught)
    check_output_lines(out)
    check_output_lines(metrics)
    for line, by_json in lines:
        check(line == by_json, f"compiled line {line[:200]!r} is not json's {by_json[:200]!r}")
    if not config & 8:  # the batch writer's file: json's lines, in order
        with open(out, encoding="ascii") as f:
            check(f.read() == "".join(j + "\n" for _, j in lines), "batch lines differ")
    check([pm.to_dict() for pm in compiled.snapshot(0, 1)] ==
          [pm.to_dict() for pm in reference.snapshot(0, 1)], "compiled metrics differ")


def _check_built(ex, clock, redactor) -> None:
    """The record's fields the compiled builder decides, against the Python rules."""
    req = ex.request
    if req is not None:
        want = redactor.redact_path(req.path) if req.path is not None else None
        check(ex.path == want, f"path {ex.path!r}, the redactor says {want!r}")
        trace = extract(req.headers)
        check((ex.trace, ex.request_id) == trace, f"trace {ex.trace!r}, extract says {trace!r}")
    grpc = build_reference.grpc_status(ex.response)
    check(ex.grpc_status == grpc, f"grpc_status {ex.grpc_status!r}, the Python rule {grpc!r}")
    text = build_reference.rfc3339(ex.start_ns, clock.offset_ns)
    check(ex.time == text, f"time {ex.time!r}, datetime says {text!r}")


_JSON_LINE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _both_lines(ex) -> tuple[str, str]:
    """An Exchange's JSON Lines line as the compiled encoder and the json module write it."""
    return exchange_line(ex), _JSON_LINE(ex.to_dict())


def _render_samples(outputs, clock, redactor) -> None:
    """What the exporters and the top-N records make of the sampled exchanges."""
    top = outputs.sampler.drain()
    for key, lists in top.items():
        json.dumps(top_n_record(key, lists))
        for sampled in lists.all():
            for event in build_span_events(sampled, clock.offset_ns.__add__, redactor):
                json.dumps(event.tags)


# --- capture files ------------------------------------------------------------------------

def pcap(data: bytes) -> None:
    """A capture file (pcap or pcapng) -> packet decoding -> TCP reassembly -> the pipeline.
    Invariant: CaptureError values and capture events only, then the pipeline's."""
    errors: list = []
    counters: dict = {}
    events = pcap_events(io.BytesIO(data), reassembler=TcpReassembler(), on_error=errors.append,
                         counters=counters)
    seen: list = []
    pipe = Pipeline(clock=WallClock(offset_ns=0), capture_mode=True, observers=[seen.append])
    caught = watch_internal_errors(pipe.table)
    batch = []
    for ev in events:
        check(type(ev) in (ConnectionOpened, ConnectionClosed, DataChunk, StreamEnded),
              f"capture event of type {type(ev).__name__}")
        batch.append(ev)
        if len(batch) >= 64:
            pipe.feed(batch)
            batch.clear()
    pipe.feed(batch)
    pipe.finish()
    check(all(type(e) is CaptureError for e in errors), "on_error got something else")
    check_counters(pipe.table.counters, caught)
    for ex in seen:
        json.dumps(ex.to_dict(True))


# --- config -------------------------------------------------------------------------------

_CONFIG_PATH = os.path.join(_DIR, "config.yaml")


def config(data: bytes) -> None:
    """load_config on a file with these bytes: a Config, or ConfigError (one line)."""
    with open(_CONFIG_PATH, "wb") as f:
        f.write(data)
    try:
        cfg = load_config(_CONFIG_PATH)
    except ConfigError as e:
        check("\n" not in str(e), f"ConfigError of several lines: {str(e)[:200]!r}")
        return
    Redactor.from_config(cfg.redact)
    Sampler(cfg.sampling)


# --- redaction ----------------------------------------------------------------------------

def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def redaction(data: bytes) -> None:
    """Input: json_fields (comma-separated; none: the default config), content-type,
    content-encoding, path, body, separated by NUL octets. Invariant: text out; when the
    rendered body is JSON, every field to redact (any case) holds the redaction mark."""
    parts = data.split(b"\0", 4) + [b""] * 4
    fields = [f for f in _text(parts[0]).split(",") if f]
    try:
        cfg = parse_config({"redact": {"json_fields": fields}} if fields else {})
    except ConfigError:
        cfg = parse_config({})
    redactor = Redactor.from_config(cfg.redact)
    headers = [("content-type", _text(parts[1])), ("content-encoding", _text(parts[2])),
               ("authorization", "Bearer fuzz")]
    body = parts[4]
    check(all(v == REDACTED for k, v in redactor.redact_headers(headers) if k == "authorization"),
          "authorization header kept")
    rendered = redactor.render_body(headers, body, len(body))
    check(type(rendered) is str, f"render_body gave {type(rendered).__name__}")
    check(type(redactor.redact_json_text(_text(body))) is str, "redact_json_text not text")
    redact_path = getattr(redactor, "redact_path", None)
    if redact_path is not None:
        check(type(redact_path(_text(parts[3]))) is str, "redact_path not text")
    fields = getattr(redactor, "body_fields", None)
    if fields is None:  # before body fields had their own name
        fields = cfg.redact.json_fields
    _check_fields_redacted(rendered, {f.lower() for f in fields})


def _check_fields_redacted(rendered: str, fields: set[str]) -> None:
    if not fields:
        return
    try:
        doc = json.loads(rendered)
    except (ValueError, RecursionError):
        return
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if k.lower() in fields:
                    check(isinstance(v, str) and v.startswith(REDACTED[:-1]),
                          f"field {k!r} left as {str(v)[:40]!r}")
                else:
                    stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
