"""Capture reading benchmark (run by hand, as root): reader and reader+TCP reassembly speed.

    .venv/bin/python bench/bench_pcap.py                 # records ~100 MB of HTTP on lo first
    .venv/bin/python bench/bench_pcap.py --file x.pcap   # measures an existing capture

Recording: nginx on 127.0.0.1 (a private config in a temporary directory) serves small and
medium files; wrk drives it for a bounded time while tcpdump writes the capture; wrk stops
as soon as the file reaches the target size. Measuring runs in a fresh child process so its
peak RSS is ours alone; tshark's time on the same file is printed beside ours.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.kernel.conftest import nginx_config  # noqa: E402

SERVER = "    server {{ listen 127.0.0.1:{port}; root {tmp}/www; }}"

WRK_SCRIPT = """
local paths = {{{paths}}}
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", paths[i % #paths + 1])
end
"""


def record(path: Path, target_mb: int, port: int, max_seconds: int, small_only: bool) -> None:
    for tool in ("nginx", "wrk", "tcpdump"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        www = Path(tmp, "www")
        www.mkdir()
        (www / "small.txt").write_bytes(b"x" * 600)
        (www / "medium.bin").write_bytes(os.urandom(24_000))
        Path(tmp, "nginx.conf").write_text(nginx_config(tmp, SERVER.format(tmp=tmp, port=port)))
        paths = ['"/small.txt"'] * 3 + ([] if small_only else ['"/medium.bin"'])
        Path(tmp, "paths.lua").write_text(WRK_SCRIPT.format(paths=", ".join(paths)))
        nginx = subprocess.Popen(["nginx", "-c", f"{tmp}/nginx.conf", "-p", tmp])
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-B", "262144", "-n", "-Z", "root",
                                 "-w", str(path), "tcp", "port", str(port)],
                                stderr=subprocess.PIPE, text=True)
        try:
            dump.stderr.readline()
            wrk = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{max_seconds}s", "-s",
                                    f"{tmp}/paths.lua", f"http://127.0.0.1:{port}/"],
                                   stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + max_seconds + 5
            while wrk.poll() is None and time.monotonic() < deadline:
                if path.exists() and path.stat().st_size >= target_mb << 20:
                    wrk.terminate()
                    break
                time.sleep(0.2)
            wrk.wait(10)
            time.sleep(1.5)
        finally:
            dump.terminate()
            print("tcpdump:", " ".join(dump.communicate(timeout=30)[1].split()))
            nginx.terminate()
            nginx.wait(10)


def measure(path: Path) -> None:
    """Child process: time the reader alone, then reader + reassembly; print one line each."""
    from l7scope.capture.events import DataChunk
    from l7scope.capture.pcap import pcap_events, read_capture

    size_mb = path.stat().st_size / 1e6
    t0 = time.perf_counter()
    packets = sum(1 for _ in read_capture(path))
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    chunks = data = 0
    for event in pcap_events(path):
        if type(event) is DataChunk:
            chunks += 1
            data += event.length
    t_all = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"file            {size_mb:8.1f} MB, {packets} TCP packets, {data / 1e6:.1f} MB stream "
          f"bytes in {chunks} chunks")
    print(f"reader          {t_read:8.2f} s  {packets / t_read:10.0f} packets/s  "
          f"{size_mb / t_read:7.1f} MB/s")
    print(f"reader+reasm    {t_all:8.2f} s  {packets / t_all:10.0f} packets/s  "
          f"{size_mb / t_all:7.1f} MB/s")
    print(f"peak RSS        {rss_mb:8.1f} MB")


def time_tshark(path: Path) -> None:
    if shutil.which("tshark") is None:
        print("tshark not installed")
        return
    for args in (["-q", "-z", "io,stat,0"], ["-T", "fields", "-e", "http.request.method"]):
        t0 = time.perf_counter()
        subprocess.run(["tshark", "-n", "-r", str(path), *args], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        print(f"tshark {' '.join(args):30s} {time.perf_counter() - t0:8.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="measure this capture instead of recording one")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir(), "l7scope-bench.pcap"))
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--max-seconds", type=int, default=60)
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--small-only", action="store_true",
                    help="only 600-byte responses: many more packets per MB")
    args = ap.parse_args()
    if args.measure:
        measure(args.file)
        return
    path = args.file
    if path is None:
        path = args.out
        record(path, args.size_mb, args.port, args.max_seconds, args.small_only)
    subprocess.run([sys.executable, __file__, "--measure", "--file", str(path)], check=True)
    if not args.no_tshark:
        time_tshark(path)


if __name__ == "__main__":
    main()
