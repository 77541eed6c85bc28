"""HTTP/2 agent benchmark (run by hand, as root): bench/bench_agent.py for h2c alone.

h2load against nginx h2c (10 connections x 10 streams), the agent tracing both ends: full speed
with the agent off / on, completeness, requests/s per agent core and peak RSS at each offered
rate, output to /dev/null, py-spy breakdown. Every option of bench_agent.py applies.

    python bench/bench_h2.py [--rates 5000,20000,50000] [--seconds 10] [--json PATH]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_agent import main  # noqa: E402

if __name__ == "__main__":
    main(["--protocols", "h2", *sys.argv[1:]])
