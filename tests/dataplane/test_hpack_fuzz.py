"""A bounded libFuzzer run of the compiled HPACK decoder (tests/dataplane/fuzz_hpack.c; how: libfuzzer.py)."""
from __future__ import annotations

from tests.dataplane.libfuzzer import build, run_bounded, seeds


def test_seed_corpus_is_committed():
    found = seeds("hpack")
    assert len(found) >= 10 and all(s.stat().st_size > 20 for s in found)


def test_bounded_libfuzzer_run_finds_nothing(tmp_path):
    run_bounded(tmp_path, build(tmp_path, "hpack", ["hpack.c"]), "hpack")
