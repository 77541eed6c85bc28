"""A batch of Exchanges written by one compiled call (JsonlSink.write_exchanges) gives the
files that writing the records one by one gives: the same lines, the same rotations at the same
places (between lines), the same counters; a record the encoder fails on is returned as its
exception and the rest are written."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.dataplane._jsonl import Encoder
from l7scope.outputs.jsonl import _EXCHANGE_LINE, JsonlSink
from tests.outputs.test_jsonl_encoder import JSON, exchange


def _files(path) -> dict:
    out = {}
    for name in sorted(os.listdir(os.path.dirname(path))):
        with open(os.path.join(os.path.dirname(path), name), encoding="ascii") as f:
            out[name] = f.read()
    return out


def _write(path, records, splits, max_bytes, keep, batched, preset=""):
    if preset:
        with open(path, "w") as f:
            f.write(preset)
    sink = JsonlSink(str(path), max_bytes=max_bytes, keep=keep)
    if batched:
        at = 0
        for cut in sorted(splits) + [len(records)]:
            assert sink.write_exchanges(records[at:cut]) == []
            at = max(at, cut)
    else:
        for ex in records:
            sink(ex)
    sink.close()
    return _files(path), sink.counters(), sink.written


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=0, max_size=40),
       st.lists(st.integers(0, 40), max_size=5), st.integers(0, 3000), st.integers(1, 3),
       st.text("x", max_size=400))
def test_batches_write_the_files_one_by_one_writes(tmp_path_factory, pads, splits, max_bytes,
                                                   keep, preset):
    records = [exchange(path="/" + "p" * pad, conn_id=i) for i, pad in enumerate(pads)]
    one = tmp_path_factory.mktemp("one") / "x.jsonl"
    many = tmp_path_factory.mktemp("many") / "x.jsonl"
    expected = _write(one, records, splits, max_bytes, keep, False, preset)
    assert _write(many, records, splits, max_bytes, keep, True, preset) == expected


def test_a_batch_is_the_json_modules_lines_and_counted(tmp_path):
    records = [exchange(conn_id=i, path=f"/{i}") for i in range(5)]
    sink = JsonlSink(str(tmp_path / "x.jsonl"))
    assert sink.write_exchanges(records) == []
    sink.close()
    assert (tmp_path / "x.jsonl").read_text() == "".join(JSON(r.to_dict()) + "\n" for r in records)
    assert sink.written == 5


def test_values_without_an_exact_form_go_to_the_json_module(tmp_path):
    records = [exchange(status=200.5), exchange(conn_id=2), exchange(request_bytes=1.0)]
    sink = JsonlSink(str(tmp_path / "x.jsonl"))
    assert sink.write_exchanges(records) == []
    sink.close()
    assert (tmp_path / "x.jsonl").read_text() == "".join(JSON(r.to_dict()) + "\n" for r in records)


class _BadTrace:
    def __bool__(self):
        return True

    def to_dict(self):
        raise RuntimeError("a bug in to_dict")


def test_a_record_that_fails_is_returned_and_the_others_written(tmp_path):
    records = [exchange(conn_id=1), exchange(conn_id=2, trace=_BadTrace()), exchange(conn_id=3)]
    sink = JsonlSink(str(tmp_path / "x.jsonl"))
    errors = sink.write_exchanges(records)
    sink.close()
    assert [type(e) for e in errors] == [RuntimeError]
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    assert [json.loads(x)["conn_id"] for x in lines] == [1, 3]
    assert sink.written == 2


def test_a_batch_past_one_mib_is_written_whole_in_several_calls(tmp_path):
    records = [exchange(conn_id=i, path="/" + "a" * 5000) for i in range(400)]  # ~2.1 MB
    text, end, rotate = _EXCHANGE_LINE.lines(records, 0, 0, 0, True, None)
    assert 1 << 20 <= len(text) < (1 << 20) + 6000 and 0 < end < 400 and rotate is False
    sink = JsonlSink(str(tmp_path / "x.jsonl"))
    sink.write_exchanges(records)
    sink.close()
    assert (tmp_path / "x.jsonl").read_text() == "".join(JSON(r.to_dict()) + "\n" for r in records)


def test_failed_rotation_in_a_batch_is_counted_as_one_by_one(tmp_path):
    records = [exchange(conn_id=i) for i in range(5)]
    n = len(JSON(records[0].to_dict())) + 1
    path = tmp_path / "x.jsonl"
    sink = JsonlSink(str(path), max_bytes=2 * n, keep=1)
    os.mkdir(f"{path}.1")  # rename refused
    os.mkdir(f"{path}.1/x")
    assert sink.write_exchanges(records) == []
    sink.close()
    assert sink.counters()["jsonl_rotation_failed"] == 2  # before the 3rd and the 5th line
    assert [json.loads(x)["conn_id"] for x in path.read_text().splitlines()] == list(range(5))


def test_with_headers_batches_use_the_json_path(tmp_path):
    sink = JsonlSink(str(tmp_path / "x.jsonl"), with_headers=True)
    assert sink.write_exchanges([exchange()]) == []
    sink.close()
    assert json.loads((tmp_path / "x.jsonl").read_text())["request_headers"] == []


@pytest.mark.parametrize("args", [
    ((exchange(),), 0, 0, 0, True, None),       # not a list
    ([exchange()], -1, 0, 0, True, None),       # negative start
    ([exchange()], 0, -5, 0, True, None),       # negative size
])
def test_bad_arguments_raise(args):
    with pytest.raises((TypeError, ValueError)):
        _EXCHANGE_LINE.lines(*args)


def test_hostile_batch_items_and_fallbacks_raise_without_writing():
    with pytest.raises(TypeError):  # not a record, and the fallback returns a non-ASCII str
        _EXCHANGE_LINE.lines([object()], 0, 0, 0, True, lambda r: "\u00e9")
    with pytest.raises(TypeError):
        _EXCHANGE_LINE.lines([exchange(status=1.5)], 0, 0, 0, True, lambda r: 5)
    assert _EXCHANGE_LINE.lines([], 0, 0, 0, True, None) == ("", 0, False)
    assert _EXCHANGE_LINE.lines([exchange()], 7, 0, 0, True, None) == ("", 7, False)
    assert isinstance(Encoder, type)


def test_a_fallback_that_empties_the_batch_stops_the_call_safely():
    batch = [exchange(status=1.5), exchange(), exchange()]

    def fallback(r):
        batch.clear()
        return JSON(r.to_dict())

    text, end, rotate = _EXCHANGE_LINE.lines(batch, 0, 0, 0, True, fallback)
    assert text.count("\n") == 1 and end == 1 and rotate is False
