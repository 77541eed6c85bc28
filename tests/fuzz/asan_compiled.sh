#!/bin/sh
# The wire and jsonl fuzz targets against AddressSanitizer + UBSan builds of the compiled
# modules they drive, with the C code's coverage guiding libFuzzer (docs/fuzzing.md):
#
#     tests/fuzz/asan_compiled.sh 300 /tmp/l7scope-asan     # seconds per target, output directory
#
# The sanitized _wire and _jsonl modules are built with clang into a copy of l7scope/ and
# tests/ under OUT/tree (the checkout's own builds are left alone); the targets run from
# there with atheris's ASan runtime preloaded (it ships with atheris). A memory error stops
# the run with the sanitizer's report; a crash input is written to OUT/TARGET/.
set -eu
SECONDS_PER_TARGET=${1:-300}
OUT=${2:-/tmp/l7scope-asan}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
INC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
SUFFIX=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
RUNTIME=$("$PY" -c "import atheris; print(atheris.path())")/asan_with_fuzzer.so

rm -rf "$OUT/tree"
mkdir -p "$OUT/tree"
cp -r "$ROOT/l7scope" "$ROOT/tests" "$OUT/tree/"
for m in wire jsonl; do
    clang -shared -fPIC -O1 -g -fno-omit-frame-pointer \
        -fsanitize=address,undefined,fuzzer-no-link -I"$INC" \
        "$ROOT/l7scope/dataplane/_${m}module.c" -o "$OUT/tree/l7scope/dataplane/_${m}$SUFFIX"
done
cd "$OUT/tree"
for t in wire jsonl; do
    mkdir -p "$OUT/$t/corpus"
    PYTHONPATH="$OUT/tree" LD_PRELOAD="$RUNTIME" \
        ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
        nice -n 19 "$PY" -m tests.fuzz.run "$t" -max_total_time="$SECONDS_PER_TARGET" \
        -timeout=20 -rss_limit_mb=4096 -artifact_prefix="$OUT/$t/" \
        "$OUT/$t/corpus" "tests/fuzz/corpus/$t" > "$OUT/$t/log" 2>&1 \
        && echo "$t: $(grep -a '^Done' "$OUT/$t/log")" \
        || echo "$t: FAILED, see $OUT/$t/log"
done
