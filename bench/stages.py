"""Per-stage breakdown of the agent's CPU time from py-spy samples (run by hand, as root).

`py-spy record --format raw` writes collapsed stacks, one per line: frames from the outermost
to the innermost, separated by ';', each "function (path:line)", then a space and a sample
count. Each sample is charged to the innermost frame that belongs to the l7scope package (time
in the standard library or in C called from l7scope counts for its caller's module); samples
with no l7scope frame are "other". Only busy samples are taken (py-spy leaves idle threads out),
so the shares are of the agent's busy time.
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME_FILE = re.compile(r"\((.*?)(?::\d+)?\)$")
# module prefix (under l7scope/) -> stage, first match wins
STAGES = (
    ("capture/", "ring buffer, record decoding"),
    ("protocols/http1", "HTTP/1 parsing and pairing"),
    ("protocols/http2", "HTTP/2 framing and pairing"),
    ("protocols/hpack", "HPACK"),
    ("protocols/", "protocol detection, messages"),
    ("conn/", "connection table and stream"),
    ("outputs/jsonl", "JSON Lines output"),
    ("exchange", "Exchange building"),
    ("metrics", "metrics"),
    ("sampling", "sampling"),
    ("outputs/", "other outputs (fan-out)"),
    ("procs/", "process names"),
    ("pipeline", "dispatch (pipeline)"),
    ("agent", "run loop"),
    ("sources", "source"),
)


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen:
    """Start py-spy sampling `pid` for `seconds` without pausing it (--nonblocking)."""
    exe = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(exe) if exe.exists() else "py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", str(rate), "--nonblocking", "--format", "raw",
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def module_of(frame: str) -> str | None:
    m = FRAME_FILE.search(frame)
    if not m:
        return None
    path = m.group(1)
    i = path.rfind("l7scope/")
    if i < 0 or "/bench/" in path:
        return None
    return path[i + len("l7scope/"):].removesuffix(".py")


def by_module(raw: str) -> Counter:
    """module (path under l7scope/, no .py) -> samples; "other" for stacks without l7scope."""
    counts: Counter = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        module = next((m for f in reversed(stack.split(";")) if (m := module_of(f))), "other")
        counts[module] += int(n)
    return counts


def stage_of(module: str) -> str:
    return next((stage for prefix, stage in STAGES if module.startswith(prefix)), "other")


def breakdown(raw: str) -> dict:
    """{"samples": n, "modules": [(module, share)], "stages": [(stage, share)]}, biggest first."""
    modules = by_module(raw)
    total = sum(modules.values()) or 1
    stages: Counter = Counter()
    for module, n in modules.items():
        stages[stage_of(module)] += n
    return {"samples": sum(modules.values()),
            "modules": [(m, n / total) for m, n in modules.most_common()],
            "stages": [(s, n / total) for s, n in stages.most_common()]}
