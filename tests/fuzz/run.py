"""Runs one fuzz target under atheris (libFuzzer): python -m tests.fuzz.run TARGET [libFuzzer args].

    python -m tests.fuzz.run http1 -runs=2000 -seed=1 /tmp/new tests/fuzz/corpus/http1

The l7scope modules are imported with coverage instrumentation. Each input goes to the target
(tests/fuzz/targets.py); an exception out of it is a crash: libFuzzer prints the traceback and
writes the input to ``-artifact_prefix`` (crash-<sha1>), and the run stops.

``--keep-going DIR`` (before the libFuzzer args) is for long runs: a crash whose signature
(exception type and innermost l7scope frame) is new is written to DIR/<signature>-<sha1> with
its traceback beside it (.txt), and the run goes on, so one known bug does not hide the next.

``--replay FILE...`` runs inputs once, without atheris, and prints the outcome of each.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import traceback


def replay(name: str, paths: list[str]) -> int:
    from .targets import TARGETS

    failed = 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        try:
            TARGETS[name](data)
        except Exception as exc:  # noqa: BLE001 - reported, that is the point
            failed += 1
            print(f"{path}: {type(exc).__name__}: {str(exc)[:300]}")
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def signature(exc: BaseException) -> str:
    """Exception type and the innermost frame in l7scope (else in the harness)."""
    if exc.__cause__ is not None:  # a finding about a counted internal error: the bug itself
        exc = exc.__cause__
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/l7scope/" in f.filename] or frames
    where = f"{os.path.basename(ours[-1].filename)}:{ours[-1].lineno}" if ours else "?"
    text = f"{type(exc).__name__}-{where}"
    if type(exc).__name__ == "Finding":
        text += "-" + re.sub(r"[^a-z]+", "_", str(exc).lower())[:40]
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)


def keep_going(target, out_dir: str):
    os.makedirs(out_dir, exist_ok=True)
    seen: set[str] = set()

    def guarded(data: bytes) -> None:
        try:
            target(data)
        except Exception as exc:  # noqa: BLE001 - recorded, then the run goes on
            sig = signature(exc)
            if sig in seen:
                return
            seen.add(sig)
            base = os.path.join(out_dir, f"{sig}-{hashlib.sha1(data).hexdigest()[:12]}")
            with open(base, "wb") as f:
                f.write(data)
            with open(base + ".txt", "w") as f:
                f.write("".join(traceback.format_exception(exc)))
            print(f"NEW FINDING {sig}: {base}", file=sys.stderr, flush=True)

    return guarded


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, rest = argv[1], argv[2:]
    if rest[:1] == ["--replay"]:
        return replay(name, rest[1:])
    import atheris

    # the compiled targets' value generators too: their branches stand for the shapes of input
    # the C code (not instrumented) was given
    with atheris.instrument_imports(include=["l7scope", "tests.fuzz.compiled"]):
        from .targets import TARGETS
    if name not in TARGETS:
        print(f"unknown target {name!r}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    target = TARGETS[name]
    if rest[:1] == ["--keep-going"]:
        target, rest = keep_going(target, rest[1]), rest[2:]
    atheris.Setup([argv[0], *rest], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
