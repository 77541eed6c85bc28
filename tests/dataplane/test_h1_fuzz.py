"""A bounded libFuzzer run of the compiled HTTP/1 analyzer (tests/dataplane/fuzz_h1.c; how: libfuzzer.py)."""
from __future__ import annotations

from tests.dataplane.libfuzzer import build, run_bounded, seeds


def test_seed_corpus_is_committed():
    found = seeds("h1")
    assert len(found) >= 20 and all(s.stat().st_size > 20 for s in found)


def test_bounded_libfuzzer_run_finds_nothing(tmp_path):
    run_bounded(tmp_path, build(tmp_path, "h1", ["h1.c", "h1_reader.c", "h1_text.c"]), "h1")
