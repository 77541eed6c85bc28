"""A bounded libFuzzer run of the compiled HTTP/2 analyzer (tests/dataplane/fuzz_h2conn.c; how: libfuzzer.py)."""
from __future__ import annotations

from tests.dataplane.libfuzzer import build, run_bounded, seeds

LIBRARIES = ["h2conn.c", "h2conn_streams.c", "h2frames.c", "hpack.c"]


def test_seed_corpus_is_committed():
    found = seeds("h2conn")
    assert len(found) >= 20 and all(s.stat().st_size > 20 for s in found)


def test_bounded_libfuzzer_run_finds_nothing(tmp_path):
    run_bounded(tmp_path, build(tmp_path, "h2conn", LIBRARIES), "h2conn")
