#!/bin/sh
# The longer fuzz run (docs/fuzzing.md): every target for SECONDS (default 120), niced, one at a
# time, going on past known crashes (run.py --keep-going). New findings land in OUT/found/TARGET/
# (input + traceback .txt), timeouts and out-of-memory inputs as libFuzzer artifacts beside them;
# the grown corpora stay in OUT/corpus/TARGET. Usage: tests/fuzz/long_run.sh [SECONDS] [OUT]
set -u
SECONDS_EACH=${1:-120}
OUT=${2:-/tmp/l7scope-fuzz}
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
TARGETS=$($PY -c 'from tests.fuzz.targets import TARGETS; print(" ".join(TARGETS))')
for t in $TARGETS; do
    mkdir -p "$OUT/corpus/$t" "$OUT/found/$t"
    start=$(date +%s)
    nice -n 19 "$PY" -m tests.fuzz.run "$t" --keep-going "$OUT/found/$t" \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/found/$t/" "$OUT/corpus/$t" "tests/fuzz/corpus/$t" \
        > "$OUT/$t.log" 2>&1
    rc=$?
    runs=$(grep -a "stat::number_of_executed_units" "$OUT/$t.log" | awk '{print $2}')
    found=$(find "$OUT/found/$t" -type f ! -name '*.txt' | wc -l)
    echo "$t: exit $rc, ${runs:-?} runs in $(( $(date +%s) - start )) s, $found findings"
done
