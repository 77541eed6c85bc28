"""The compiled Exchange builder (dataplane/_buildmodule.c) against the Python builder it
replaced (tests/dataplane/build_reference.py): the same record, field by field and type by
type, the same counters, the same process-table lookups in the same order; its time text,
grpc-status, trace-header and path-redaction decisions against their Python rules; hostile
values counted at the pipeline's boundary; no memory kept per call."""
from __future__ import annotations

import sys
import tracemalloc
import unicodedata
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.capture.events import Role
from l7scope.conn.table import Connection
from l7scope.dataplane import _build
from l7scope.exchange import WallClock
from l7scope.pipeline import Pipeline
from l7scope.protocols.message import ExchangeParsed, HttpMessage
from l7scope.redact import DEFAULT_QUERY_PARAMS, Redactor
from l7scope.tracecontext import HEADER_NAMES, _collect
from tests.dataplane import build_reference as ref

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NAMES = ["Host", "user-agent", "accept", "grpc-status", "GRPC-Status", "Grpc-Status ",
         "traceparent", "TraceParent", "tracestate", "sw8", "SW8", "b3", "B3",
         "x-b3-traceid", "X-B3-TraceId", "x-b3-spanid", "x-b3-sampled", "x-b3-flags",
         "x-b3-parentspanid", "x-request-id", "X-Request-ID", "x-request-ie",
         "\u212arpc-status", "x-b3-flag\u017f", "trace\u0130arent", "content-length"]
VALUES = ["0", " 14\t", "007", "1000", "\u00b2", "", "5 ", "1 4", "-1", "\u0661",
          TRACEPARENT, "4bf92f3577b34da6-00f067aa0ba902b7-1", "abc", "req-1", "9" * 40]
PATHS = ["/", "", "/index.html?id=7", "/a?token=x", "/a?TOKEN=1", "/a#x=1", "/a?b=1#key=2",
         "/u@h", "/a?%74oken=1", "/a?x[token]=1", "/a?\u00e9=1", "/\u00e9", "/a?b=1;sid=2",
         "/a?id=1&id=2", "/a?=1", "/a?&&", "/a??token=1", "/a#?token=1", "/a?x#", "/a" + "b" * 300,
         "/a?" + "n" * 300 + "=1", "http://u:p@h/x?y=1"]
NOTES = ["gap in headers", "cut", "shed: parser memory budget"]

headers = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=5).map(tuple)
paths = st.one_of(st.sampled_from(PATHS), st.text(alphabet="/?#&;=@%+[]abkeyTOKENsid\u00e9",
                                                   max_size=24), st.none())
notes = st.lists(st.sampled_from(NOTES), max_size=3).map(tuple)
times = st.one_of(st.integers(0, 2**64 - 1), st.integers(-2**70, 2**70),
                  st.sampled_from([0, 10**21, -10**21, 2**200, -2**200]))


@st.composite
def messages(draw, is_request: bool):
    if not draw(st.booleans()):
        return None
    start = draw(times)
    return HttpMessage(
        is_request, start, start + draw(st.integers(0, 10**9)), draw(st.integers(0, 2**70)),
        draw(headers), method="GET" if is_request else None,
        path=draw(paths) if is_request else None, authority=draw(st.sampled_from([None, "h"])),
        status=None if is_request else draw(st.sampled_from([200, 503, None])),
        trailers=draw(headers), complete=draw(st.booleans()), notes=draw(notes))


class Info:
    def __init__(self, name, exe=None, cid=None):
        self.name, self.exe, self.container_id = name, exe, cid


class Table:
    """A process table that logs its lookups and hands out a new ProcessInfo every
    ``renew`` lookups (a revalidation), as the real one may."""

    def __init__(self, renew: int, log: bool = True):
        self.calls: list = []
        self.log = log
        self.renew = renew
        self.infos = {100: Info("python3", "/usr/bin/python3", "c" * 64), 200: Info(""),
                      300: Info("nginx", "/usr/sbin/nginx")}

    def lookup(self, pid):
        self.calls.append(pid)
        if not self.log:
            self.calls.clear()
        if self.renew and len(self.calls) % self.renew == 0 and pid in self.infos:
            old = self.infos[pid]
            self.infos[pid] = Info(old.name, old.exe, old.container_id)
        return self.infos.get(pid)


def setup_pipeline(cfg) -> Pipeline:
    p = Pipeline(clock=WallClock(offset_ns=cfg["offset"]), capture_mode=cfg["capture"],
                 redact_path=cfg["redact"],
                 processes=Table(cfg["renew"]) if cfg["procs"] else None)
    if cfg["peer"] is not None:  # the other end, traced
        p.peers.learn(99, cfg["remote"], cfg["local"], cfg["peer"], "peer-comm")
    return p


def connection(cfg) -> Connection:
    return Connection(1, role=cfg["role"], local=cfg["local"], remote=cfg["remote"],
                      pid=cfg["pid"], comm="worker", tls=cfg["tls"])


configs = st.fixed_dictionaries({
    "offset": st.sampled_from([0, 1_700_000_000 * 10**9, -5 * 10**9]),
    "capture": st.booleans(), "procs": st.booleans(), "renew": st.sampled_from([0, 2, 3]),
    "redact": st.sampled_from([None, Redactor().redact_path,
                               Redactor(defaults=False).redact_path,
                               Redactor(query_params=["id"]).redact_path,
                               lambda s: s.replace("x", "[X]")]),
    "peer": st.sampled_from([None, 100, 200, 300, 4242]),
    "role": st.sampled_from([Role.CLIENT, Role.SERVER, Role.UNKNOWN]),
    "pid": st.sampled_from([None, 100, 200, 4242]), "tls": st.booleans(),
    "local": st.sampled_from([("10.0.0.1", 45000), ("::1", 8080)]),
    "remote": st.sampled_from([("10.0.0.2", 8080), ("fe80::2", 443)]),
})


@settings(max_examples=1500, deadline=None)
@given(cfg=configs, req=messages(True), resp=messages(False), ep_notes=notes,
       stream_id=st.sampled_from([None, 1, 2**40]))
def test_the_record_is_the_python_builders(cfg, req, resp, ep_notes, stream_id):
    ep = ExchangeParsed("grpc", req, resp, stream_id=stream_id, notes=ep_notes)
    ours, theirs = setup_pipeline(cfg), setup_pipeline(cfg)
    c_ours, c_theirs = connection(cfg), connection(cfg)
    for _ in range(3):  # the second and third see what the first kept on the connection
        got, want = ours.build(c_ours, ep), ref.build(theirs, c_theirs, ep)
        assert got == want
        if want is not None:
            assert type(got) is type(want)
            assert [type(v) for v in got] == [type(v) for v in want]
    assert ours.counters == theirs.counters and ours.trace_errors == theirs.trace_errors
    assert c_ours.endpoint_text == c_theirs.endpoint_text
    kept = [c.identity and (c.identity[0].name, c.identity[1]) for c in (c_ours, c_theirs)]
    assert kept[0] == kept[1]
    if cfg["procs"]:
        assert ours.processes.calls == theirs.processes.calls


def test_a_request_and_response_as_a_user_reads_them():
    p = Pipeline(clock=WallClock(offset_ns=1_700_000_000 * 10**9), redact_path=Redactor().redact_path)
    conn = Connection(7, role=Role.SERVER, local=("10.0.0.2", 8080), remote=("10.0.0.1", 45000),
                      pid=200, comm="nginx")
    req = HttpMessage(True, 1_000_123_456, 1_000_200_000, 80, (("X-Request-Id", "r-1"),),
                      method="GET", path="/a?id=1&token=s3cret", authority="h")
    resp = HttpMessage(False, 1_200_000_000, 1_250_000_000, 40, (), status=200,
                       trailers=(("grpc-status", " 5"),))
    d = p.build(conn, ExchangeParsed("grpc", req, resp, stream_id=1)).to_dict()
    assert (d["side"], d["local"], d["remote"], d["path"], d["request_id"], d["grpc_status"],
            d["time"], d["duration_ns"], d["partial"], d["notes"], d["comm"], d["thread"]) == (
        "server", "10.0.0.2:8080", "10.0.0.1:45000", "/a?id=1&token=[REDACTED]", "r-1", 5,
        "2023-11-14T22:13:21.000123Z", 249_876_544, False, [], "nginx", "nginx")


@given(st.one_of(times, st.integers()), st.sampled_from([0, 1_700_000_000 * 10**9, -10**12, 2**80]))
def test_time_text_is_the_datetime_text(mono, offset):
    assert _build.rfc3339(mono, offset) == ref.rfc3339(mono, offset)


@pytest.mark.parametrize("mono, text", [
    (0, "1970-01-01T00:00:00.000000Z"), (999, "1970-01-01T00:00:00.000000Z"),
    (951_782_400 * 10**9 + 1_000, "2000-02-29T00:00:00.000001Z"),  # a leap day
    (253_402_300_799 * 10**9 + 999_999_999, "9999-12-31T23:59:59.999999Z"),
    (-1, "1970-01-01T00:00:00.999999Z"),  # floor division: second -1 held to 0
])
def test_time_text_at_the_edges(mono, text):
    assert WallClock(offset_ns=0).rfc3339(mono) == text


def test_time_of_a_non_int_is_a_type_error():
    with pytest.raises(TypeError):
        _build.rfc3339(1.5, 0)
    with pytest.raises(TypeError):
        _build.rfc3339(1, None)


@settings(max_examples=500)
@given(headers)
def test_trace_headers_are_found_exactly_where_extract_reads_some(hdrs):
    found = _build.has_trace_header(hdrs)
    assert found == bool(_collect(hdrs)) or (found and any(not k.isascii() for k, _ in hdrs))


def test_no_non_ascii_name_lowercases_to_a_name_looked_for():
    """Why _buildmodule.c compares ASCII names only: KELVIN SIGN is the one code point whose
    lowercase is ASCII, and no name it looks for has a 'k'."""
    to_ascii = [c for c in range(0x80, sys.maxunicode + 1) if chr(c).lower().isascii()]
    assert to_ascii == [0x212A] and unicodedata.name(chr(0x212A)) == "KELVIN SIGN"
    assert not any("k" in n for n in list(HEADER_NAMES) + ["grpc-status"])


@settings(max_examples=500)
@given(headers, headers)
def test_grpc_status_is_the_python_rule(hdrs, trailers):
    resp = HttpMessage(False, 0, 0, 0, hdrs, status=200, trailers=trailers)
    assert _build.grpc_status(resp) == ref.grpc_status(resp)


@pytest.mark.parametrize("path, unchanged", [
    ("/index.html", True), ("/index.html?id=7", True), ("/a?id=1#top", True),
    ("/a?token=x", False), ("/a?Token=x", False), ("/a?x=1;sid=2", False), ("/a#key=1", False),
    ("/u@h", False), ("/a?%74oken=1", False), ("/a?b+c=1", False), ("/a?x[y]=1", False),
    ("/a?\u00e9=1", False), ("/\u00e9", False), ("", True),
])
def test_path_redaction_is_skipped_only_where_it_changes_nothing(path, unchanged):
    names = Redactor().query_params
    assert _build.path_unchanged(path, names) is unchanged
    if unchanged:
        assert Redactor().redact_path(path) == path


@settings(max_examples=1000)
@given(paths.filter(lambda p: p is not None),
       st.sampled_from([(), ("id",), DEFAULT_QUERY_PARAMS, ("a[b]", "\u00e9")]))
def test_a_path_said_unchanged_is_unchanged(path, params):
    r = Redactor(query_params=params, defaults=False)
    if _build.path_unchanged(path, r.query_params):
        assert r.redact_path(path) == path


def test_hostile_values_are_counted_at_the_boundary_not_built():
    p = Pipeline(clock=WallClock(offset_ns=0))
    conn = Connection(1, role=Role.CLIENT, local=("10.0.0.1", 1), remote=("10.0.0.2", 2), pid=1)
    p.table.conns[1] = conn
    good = HttpMessage(True, 0, 1, 10, (), method="GET", path="/")
    hostile = [
        ExchangeParsed("http1", ("not", "a", "message"), None),
        ExchangeParsed("http1", good._replace(headers="Host: x"), None),  # a header list as text
        ExchangeParsed("http1", None, HttpMessage(False, 0, 1, 1, (("grpc-status", 0),))),
        ExchangeParsed("http1", good._replace(start_ns=1.5), None),
    ]
    for ep in hostile:  # what C cannot read is a TypeError; the text the Python parser's own
        with pytest.raises((TypeError, ValueError)):
            p.build(conn, ep)
    bytes_name = HttpMessage(False, 0, 1, 1, ((b"grpc-status", b"0"),))  # no str name: no match
    assert p.build(conn, ExchangeParsed("http1", None, bytes_name)).grpc_status is None
    got = []
    p.observers.append(got.append)
    p._analyzer_event(conn, hostile[0])
    assert p.table.counters["internal_error_http1"] == 1 and got == []


def test_a_huge_time_is_held_to_the_year_9999():
    p = Pipeline(clock=WallClock(offset_ns=0), capture_mode=True)
    conn = Connection(1, local=("10.0.0.1", 1), remote=("10.0.0.2", 2))
    ex = p.build(conn, ExchangeParsed("http1", HttpMessage(True, 2**200, 2**200, 1), None))
    assert ex.time == "9999-12-31T23:59:59.835301Z" and ex.start_ns == 2**200  # 2**200 % 10**9


def test_no_memory_is_kept_per_record():
    p = Pipeline(clock=WallClock(offset_ns=0), redact_path=Redactor().redact_path,
                 processes=Table(renew=1, log=False))
    p.peers.learn(99, ("10.0.0.2", 2), ("10.0.0.1", 1), 100, "peer")
    conn = Connection(1, role=Role.CLIENT, local=("10.0.0.1", 1), remote=("10.0.0.2", 2),
                      pid=200, comm="c")
    req = HttpMessage(True, 5, 6, 10, (("traceparent", TRACEPARENT), ("x-request-id", "r")),
                      method="GET", path="/a?token=1", notes=("cut",))
    resp = HttpMessage(False, 7, 8, 10, (), status=200, trailers=(("grpc-status", "0"),),
                       complete=False)
    eps = [ExchangeParsed("grpc", req, resp, notes=("gap",)), ExchangeParsed("http1", None, None)]

    def run(n):
        for _ in range(n):
            for ep in eps:
                p.build(conn, ep)
    run(2_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown
    assert p.trace_errors == Counter()
