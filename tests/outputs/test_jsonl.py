"""JSON Lines outputs: the jsonl: settings, rotation by size (names, sizes, modes, counts),
reopen after the file was moved away, and stdout left alone."""
from __future__ import annotations

import io
import json
import os
import stat
import sys

import pytest

from l7scope.outputs.jsonl import DEFAULT_KEEP, DEFAULT_MAX_MB, JsonlSink, JsonlSpec, parse_spec

MIB = 1 << 20


def _record(i: int, pad: int = 0) -> dict:
    return {"i": i, "pad": "x" * pad}


def _line_len(i: int, pad: int = 0) -> int:
    return len(json.dumps(_record(i, pad), separators=(",", ":"))) + 1


def _lines(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


# --- settings -----------------------------------------------------------------------------

def test_spec_defaults_are_100_mib_and_5_files():
    assert parse_spec("/var/log/x.jsonl") == JsonlSpec("/var/log/x.jsonl", 100 * MIB, 5)
    assert (DEFAULT_MAX_MB, DEFAULT_KEEP) == (100, 5)


def test_spec_settings():
    assert parse_spec("/d/x.jsonl?max_mb=1&keep=3") == JsonlSpec("/d/x.jsonl", MIB, 3)
    assert parse_spec("x.jsonl?keep=2") == JsonlSpec("x.jsonl", 100 * MIB, 2)
    assert parse_spec("x.jsonl?max_mb=0.5") == JsonlSpec("x.jsonl", MIB // 2, 5)
    assert parse_spec("x.jsonl?max_mb=0") == JsonlSpec("x.jsonl", 0, 5)  # never rotates


def test_spec_path_with_question_mark_ends_with_one_more():
    assert parse_spec("/d/a?b.jsonl?") == JsonlSpec("/d/a?b.jsonl", 100 * MIB, 5)
    assert parse_spec("/d/a?b.jsonl?keep=1") == JsonlSpec("/d/a?b.jsonl", 100 * MIB, 1)


def test_spec_stdout():
    assert parse_spec("-") == JsonlSpec("-", 0, 0)
    with pytest.raises(ValueError, match="stdout"):
        parse_spec("-?max_mb=1")


@pytest.mark.parametrize("text, words", [
    ("", "expected jsonl:PATH"),
    ("?keep=1", "expected jsonl:PATH"),
    ("x?size=1", "unknown setting 'size=1'"),
    ("x?keep", "unknown setting 'keep'"),
    ("x?keep=0", "keep='0'"),
    ("x?keep=1001", "keep='1001'"),
    ("x?keep=-1", "keep='-1'"),
    ("x?keep=\u0663", "keep="),  # an Arabic-Indic digit is not a number here
    ("x?max_mb=-1", "max_mb='-1'"),
    ("x?max_mb=nan", "max_mb='nan'"),
    ("x?max_mb=inf", "max_mb='inf'"),
    ("x?max_mb=lots", "max_mb='lots'"),
    ("x?keep=1&keep=2", "given twice"),
])
def test_spec_refusals_are_one_line(text, words):
    with pytest.raises(ValueError) as e:
        parse_spec(text)
    assert words in str(e.value) and "\n" not in str(e.value)


# --- rotation ---------------------------------------------------------------------------------

def test_rotation_names_sizes_and_order(tmp_path):
    path = tmp_path / "x.jsonl"
    n = _line_len(0, 100)  # every record below has this length (single-digit i)
    sink = JsonlSink(str(path), max_bytes=3 * n, keep=2)
    for i in range(8):  # 3 + 3 + 2 lines: x.jsonl.2, x.jsonl.1, x.jsonl
        sink.write(_record(i, 100))
    sink.close()
    assert [r["i"] for r in _lines(path)] == [6, 7]
    assert [r["i"] for r in _lines(f"{path}.1")] == [3, 4, 5]
    assert [r["i"] for r in _lines(f"{path}.2")] == [0, 1, 2]
    assert os.path.getsize(f"{path}.1") == 3 * n
    assert sorted(os.listdir(tmp_path)) == ["x.jsonl", "x.jsonl.1", "x.jsonl.2"]
    assert sink.counters()["jsonl_rotations"] == 2
    assert sink.counters()["jsonl_rotated_files_removed"] == 0
    assert sink.written == 8


def test_rotation_keeps_only_keep_files_and_counts_the_removed(tmp_path):
    path = tmp_path / "x.jsonl"
    n = _line_len(0)
    sink = JsonlSink(str(path), max_bytes=n, keep=2)  # one line per file
    for i in range(6):
        sink.write(_record(i))
    sink.close()
    assert sorted(os.listdir(tmp_path)) == ["x.jsonl", "x.jsonl.1", "x.jsonl.2"]
    assert [_lines(p)[0]["i"] for p in (path, f"{path}.1", f"{path}.2")] == [5, 4, 3]
    c = sink.counters()
    assert (c["jsonl_rotations"], c["jsonl_rotated_files_removed"]) == (5, 3)


def test_no_file_passes_max_bytes_and_lines_are_never_split(tmp_path):
    path = tmp_path / "x.jsonl"
    sink = JsonlSink(str(path), max_bytes=1000, keep=50)
    for i in range(300):
        sink.write(_record(i, i % 37))
    sink.close()
    files = [path] + sorted((p for p in tmp_path.iterdir() if p.name != "x.jsonl"),
                            key=lambda p: -int(p.suffix[1:]))
    assert all(os.path.getsize(p) <= 1000 for p in files)
    # oldest file first, every record once and in order
    assert [r["i"] for p in files[1:] + files[:1] for r in _lines(p)] == list(range(300))


def test_a_line_longer_than_max_bytes_goes_whole_to_a_fresh_file(tmp_path):
    path = tmp_path / "x.jsonl"
    sink = JsonlSink(str(path), max_bytes=50, keep=3)
    sink.write(_record(0))
    sink.write(_record(1, 200))
    sink.write(_record(2))
    sink.close()
    assert [r["i"] for r in _lines(f"{path}.2")] == [0]
    assert [r["i"] for r in _lines(f"{path}.1")] == [1]
    assert [r["i"] for r in _lines(path)] == [2]


def test_existing_file_size_counts_toward_rotation(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"old":1}\n')
    os.chmod(path, 0o600)
    sink = JsonlSink(str(path), max_bytes=len('{"old":1}\n') + 1, keep=1)
    sink.write(_record(0))
    sink.close()
    assert _lines(f"{path}.1") == [{"old": 1}]
    assert [r["i"] for r in _lines(path)] == [0]


def test_rotated_and_new_files_are_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "x.jsonl"
        sink = JsonlSink(str(path), max_bytes=_line_len(0), keep=3)
        for i in range(4):
            sink.write(_record(i))
        sink.close()
    finally:
        os.umask(old)
    for name in ("x.jsonl", "x.jsonl.1", "x.jsonl.2", "x.jsonl.3"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_max_bytes_zero_never_rotates(tmp_path):
    path = tmp_path / "x.jsonl"
    sink = JsonlSink(str(path), max_bytes=0)
    for i in range(100):
        sink.write(_record(i, 100))
    sink.close()
    assert os.listdir(tmp_path) == ["x.jsonl"] and len(_lines(path)) == 100


def test_rotation_does_not_follow_a_link_planted_at_the_path(tmp_path):
    """Between two rotations someone replaces PATH by a link: the new open refuses it, the
    rotation is counted as failed and the lines go on into the file already open."""
    path = tmp_path / "x.jsonl"
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    n = _line_len(0)
    sink = JsonlSink(str(path), max_bytes=n, keep=1)
    sink.write(_record(0))
    os.replace(path, tmp_path / "moved")  # the sink's file is now "moved"
    os.symlink(victim, path)
    sink.write(_record(1))  # rotation: PATH (the link) -> PATH.1, open PATH: new regular file
    sink.close()
    assert victim.read_text() == "keep me\n"
    assert os.path.islink(f"{path}.1") and not os.path.islink(path)
    assert [r["i"] for r in _lines(tmp_path / "moved")] == [0]
    assert [r["i"] for r in _lines(path)] == [1]


def test_failed_rotation_is_counted_and_writing_goes_on(tmp_path):
    path = tmp_path / "x.jsonl"
    n = _line_len(0)
    sink = JsonlSink(str(path), max_bytes=2 * n, keep=1)
    sink.write(_record(0))
    sink.write(_record(1))
    os.mkdir(f"{path}.1")  # a directory where the rotated file should go: rename fails
    os.mkdir(f"{path}.1/x")
    sink.write(_record(2))  # rotation tried, failed, counted
    sink.write(_record(3))  # no new try until another max_bytes were written
    assert sink.counters()["jsonl_rotation_failed"] == 1
    sink.write(_record(4))  # tried again
    sink.close()
    assert [r["i"] for r in _lines(path)] == [0, 1, 2, 3, 4]
    assert sink.counters()["jsonl_rotation_failed"] == 2
    assert sink.counters()["jsonl_rotations"] == 0


def test_dev_null_is_not_rotated():
    sink = JsonlSink(os.devnull, max_bytes=10, keep=1)
    for i in range(5):
        sink.write(_record(i))
    sink.close()
    assert sink.counters()["jsonl_rotations"] == 0 and sink.written == 5
    assert not os.path.exists(os.devnull + ".1")


def test_from_spec(tmp_path):
    path = tmp_path / "x.jsonl"
    sink = JsonlSink.from_spec(f"{path}?max_mb=1&keep=4")
    assert (sink.path, sink.max_bytes, sink.keep) == (str(path), MIB, 4)
    sink.close()


# --- reopen -----------------------------------------------------------------------------------

def test_reopen_after_the_file_was_moved_away(tmp_path):
    path = tmp_path / "x.jsonl"
    sink = JsonlSink(str(path), max_bytes=MIB)
    sink.write(_record(0))
    os.rename(path, tmp_path / "x.jsonl.old")  # logrotate without copytruncate
    sink.write(_record(1))  # still into the moved file
    assert sink.reopen() is None
    sink.write(_record(2))
    sink.close()
    assert [r["i"] for r in _lines(tmp_path / "x.jsonl.old")] == [0, 1]
    assert [r["i"] for r in _lines(path)] == [2]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sink.counters()["jsonl_reopens"] == 1


def test_reopen_restarts_the_size_count(tmp_path):
    path = tmp_path / "x.jsonl"
    n = _line_len(0)
    sink = JsonlSink(str(path), max_bytes=2 * n, keep=1)
    sink.write(_record(0))
    os.rename(path, tmp_path / "elsewhere")
    sink.reopen()
    sink.write(_record(1))
    sink.write(_record(2))  # 2 lines in the new file: no rotation yet
    sink.close()
    assert not os.path.exists(f"{path}.1")
    assert [r["i"] for r in _lines(path)] == [1, 2]


def test_reopen_refused_keeps_the_old_file_and_says_why(tmp_path):
    path = tmp_path / "x.jsonl"
    sink = JsonlSink(str(path))
    sink.write(_record(0))
    os.rename(path, tmp_path / "moved")
    os.symlink(tmp_path / "victim", path)
    reason = sink.reopen()
    sink.write(_record(1))
    sink.close()
    assert reason == f"cannot reopen output {path}: is a symbolic link; refusing to follow it"
    assert [r["i"] for r in _lines(tmp_path / "moved")] == [0, 1]
    assert sink.counters()["jsonl_reopen_failed"] == 1
    assert not os.path.exists(tmp_path / "victim")


def test_stdout_is_never_closed_rotated_or_reopened(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    sink = JsonlSink("-", max_bytes=10, keep=1)
    for i in range(3):
        sink.write(_record(i))
    assert sink.reopen() is None
    sink.close()
    assert not out.closed
    assert [json.loads(x)["i"] for x in out.getvalue().splitlines()] == [0, 1, 2]
    assert sink.counters() == {"jsonl_rotations": 0, "jsonl_rotated_files_removed": 0,
                               "jsonl_rotation_failed": 0, "jsonl_reopens": 0,
                               "jsonl_reopen_failed": 0}
