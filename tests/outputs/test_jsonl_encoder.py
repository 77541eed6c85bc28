"""The compiled Exchange line (dataplane/_jsonlmodule.c) is the json module's line, byte for
byte: for hostile text (every code point, lone surrogates, control characters), huge and
negative numbers, trace contexts and notes; values it has no exact form for go to json."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.dataplane._jsonl import Encoder
from l7scope.exchange import Exchange, TraceContext
from l7scope.outputs.jsonl import JsonlSink, exchange_line

JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def exchange(**kw) -> Exchange:
    base = dict(protocol="http1", side="server", pid=4242, comm="nginx", local="10.0.0.1:80",
                remote="10.0.0.2:45000", peer_pid=None, conn_id=(7 << 32) | 9, stream_id=None,
                method="GET", path="/", authority="example.com", status=200, grpc_status=None,
                request_bytes=78, response_bytes=187, start_ns=1_000, end_ns=4_500,
                time="2026-11-30T21:00:00.000001Z", trace=None, request_id=None, tls=False,
                partial=False, notes=())
    base.update(kw)
    return Exchange(**base)


def test_a_plain_record_is_the_json_modules_line():
    ex = exchange()
    assert exchange_line(ex) == JSON(ex.to_dict())
    assert exchange_line(ex).startswith('{"protocol":"http1","side":"server","pid":4242,')
    assert '"duration_ns":3500,' in exchange_line(ex)


def test_escapes_as_ensure_ascii():
    ex = exchange(path='/a"b\\c\n\t\x00\x1f\x7f\u00e9\u2028\ud800\U0001f600', comm="n\u00efnx")
    line = exchange_line(ex)
    assert line == JSON(ex.to_dict())
    assert r'/a\"b\\c\n\t\u0000\u001f\u007f\u00e9\u2028\ud800\ud83d\ude00' in line
    assert line.isascii()


def test_numbers_past_64_bits_and_negative_durations():
    ex = exchange(conn_id=2**64 - 1, pid=-3, status=10**30, start_ns=9, end_ns=2)
    assert exchange_line(ex) == JSON(ex.to_dict())
    assert '"duration_ns":0,' in exchange_line(ex)


def test_trace_and_notes():
    trace = TraceContext("w3c", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
                         sampled=True)
    ex = exchange(trace=trace, request_id="r-1", partial=True, notes=("gap", "truncated: body"))
    line = exchange_line(ex)
    assert line == JSON(ex.to_dict())
    assert ('"trace":{"provider":"w3c","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",'
            '"span_id":"00f067aa0ba902b7","parent_span_id":null,"sampled":true,'
            '"segment_id":null}') in line
    assert '"notes":["gap","truncated: body"]' in line


@pytest.mark.parametrize("value, text", [(1.5, "1.5"), ({1: "x"}, '{"1":"x"}'),
                                         (float("nan"), "NaN")])
def test_what_it_has_no_exact_form_for_is_left_to_json(value, text):
    with pytest.raises(TypeError):
        Encoder((("x", 0),), 0, 0)((value,))
    ex = exchange(status=value)
    assert f'"status":{text},' in exchange_line(ex)
    assert exchange_line(ex) == JSON(ex.to_dict())


def test_unserialisable_values_still_raise():
    with pytest.raises(TypeError):
        exchange_line(exchange(status=object()))


def test_with_headers_lines_are_unchanged(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path), with_headers=True)
    ex = exchange()
    sink(ex)
    sink.close()
    assert path.read_text() == JSON(ex.to_dict(with_headers=True)) + "\n"


def test_the_sink_writes_the_compiled_line(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    records = [exchange(conn_id=i, path=f"/{i}\u00e9") for i in range(3)]
    for ex in records:
        sink(ex)
    sink.close()
    assert path.read_text() == "".join(JSON(ex.to_dict()) + "\n" for ex in records)


TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
OPT_TEXT = st.none() | TEXT
INTS = st.integers(min_value=-(2**70), max_value=2**70)
TRACES = st.none() | st.builds(TraceContext, st.sampled_from(["w3c", "zipkin", "skywalking"]),
                               TEXT, OPT_TEXT, OPT_TEXT, st.none() | st.booleans(), OPT_TEXT)


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({
    "protocol": TEXT, "side": OPT_TEXT, "pid": st.none() | INTS, "comm": OPT_TEXT,
    "local": OPT_TEXT, "remote": OPT_TEXT, "peer_pid": st.none() | INTS, "conn_id": INTS,
    "stream_id": st.none() | INTS, "method": OPT_TEXT, "path": OPT_TEXT, "authority": OPT_TEXT,
    "status": st.none() | INTS, "grpc_status": st.none() | INTS, "request_bytes": INTS,
    "response_bytes": INTS, "start_ns": INTS, "end_ns": INTS, "time": TEXT, "trace": TRACES,
    "request_id": OPT_TEXT, "tls": st.booleans(), "partial": st.booleans(),
    "notes": st.lists(TEXT, max_size=4).map(tuple), "peer_name": OPT_TEXT, "name": OPT_TEXT,
    "exe": OPT_TEXT, "container_id": OPT_TEXT, "thread": OPT_TEXT}))
def test_any_record_is_the_json_modules_line(fields):
    ex = Exchange(**fields)
    assert exchange_line(ex) == JSON(ex.to_dict())


class _Traceish:
    """Has to_dict() but is no JSON value: only the trace field is written through it."""

    def __init__(self, truth=True):
        self.truth = truth

    def __bool__(self):
        return self.truth

    def to_dict(self):
        return {"provider": "x", "n": 1}


def test_only_the_trace_field_goes_through_to_dict():
    ex = exchange(trace=_Traceish())
    assert '"trace":{"provider":"x","n":1},' in exchange_line(ex)
    assert exchange_line(ex) == JSON(ex.to_dict())
    assert '"trace":null,' in exchange_line(exchange(trace=_Traceish(truth=False)))
    with pytest.raises(TypeError):  # json refuses it elsewhere, and so does the line
        exchange_line(exchange(path=_Traceish()))
