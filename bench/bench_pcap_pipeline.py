"""Full `l7scope pcap` benchmark (run by hand, as root): records/s and MB/s next to tshark.

    .venv/bin/python bench/bench_pcap_pipeline.py                # records two ~100 MB captures
    .venv/bin/python bench/bench_pcap_pipeline.py --file x.pcap --port 8080 --proto http1

Recording: HTTP/1.1 is nginx + wrk (bench_pcap.record: 600-byte and 24 kB files); HTTP/2 is
nginx h2c + h2load (-m 10, 4000-byte responses), each under tcpdump until the file reaches the
target size. Measuring: `l7scope pcap FILE --output jsonl:...` in a child process (wall time,
records written, its own peak RSS from wait4), then tshark decoding the same file with the
http or http2 dissector (`-d tcp.port==PORT,...`) and printing one line per request.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from tests.kernel.conftest import nginx_config  # noqa: E402

H2_SERVER = "    server {{ listen 127.0.0.1:{port} http2; location / {{ root {tmp}/www; }} }}"


def record_h2(path: Path, target_mb: int, port: int, max_seconds: int) -> None:
    """nginx h2c + h2load under tcpdump until the capture reaches TARGET_MB."""
    for tool in ("nginx", "h2load", "tcpdump"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "nginx.conf").write_text(
            nginx_config(tmp, H2_SERVER.format(tmp=tmp, port=port)))
        Path(tmp, "www").mkdir()
        Path(tmp, "www", "h2").write_bytes(b"h" * 4000)
        nginx = subprocess.Popen(["nginx", "-c", f"{tmp}/nginx.conf", "-p", tmp])
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-B", "262144", "-n", "-Z", "root",
                                 "-w", str(path), "tcp", "port", str(port)],
                                stderr=subprocess.PIPE, text=True)
        try:
            dump.stderr.readline()
            time.sleep(0.5)
            load = subprocess.Popen(["h2load", "-c", "8", "-m", "10", "-n", "10000000",
                                     "-H", "x-bench: pcap-pipeline", f"http://127.0.0.1:{port}/h2"],
                                    stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + max_seconds + 5
            while load.poll() is None and time.monotonic() < deadline:
                if path.exists() and path.stat().st_size >= target_mb << 20:
                    load.terminate()
                    break
                time.sleep(0.2)
            load.wait(10)
            time.sleep(1.5)
        finally:
            dump.terminate()
            print("tcpdump:", " ".join(dump.communicate(timeout=30)[1].split()))
            nginx.terminate()
            nginx.wait(10)


def run_l7scope(path: Path) -> tuple[float, int, float]:
    """(seconds, records, peak RSS MB) of `l7scope pcap PATH`."""
    out = path.with_suffix(".jsonl")
    out.unlink(missing_ok=True)
    script = Path(sys.executable).with_name("l7scope")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "l7scope.cli"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "pcap", str(path), "--output", f"jsonl:{out}"],
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"l7scope pcap failed on {path}")
    with open(out, "rb") as f:
        records = sum(1 for _ in f)
    out.unlink()
    return seconds, records, usage.ru_maxrss / 1024


def run_tshark(path: Path, port: int, proto: str) -> tuple[float, int]:
    """(seconds, requests printed) of tshark decoding PATH with the http or http2 dissector."""
    if proto == "http1":
        args = ["-d", f"tcp.port=={port},http", "-Y", "http.request", "-T", "fields",
                "-e", "http.request.method", "-e", "http.request.uri"]
    else:
        args = ["-d", f"tcp.port=={port},http2", "-Y", "http2.headers.method", "-T", "fields",
                "-e", "http2.headers.method", "-e", "http2.headers.path"]
    t0 = time.perf_counter()
    res = subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True,
                         text=True, check=False)
    seconds = time.perf_counter() - t0
    # one line per packet; several requests in one packet are comma-separated
    return seconds, sum(len(line.split("\t")[0].split(",")) for line in res.stdout.splitlines())


def measure(path: Path, port: int, proto: str, tshark: bool) -> None:
    size_mb = path.stat().st_size / 1e6
    seconds, records, rss = run_l7scope(path)
    print(f"{proto:6s} {size_mb:7.1f} MB  l7scope pcap  {seconds:7.2f} s  {records:8d} records  "
          f"{records / seconds:9.0f} rec/s  {size_mb / seconds:6.1f} MB/s  peak RSS {rss:.0f} MB")
    if tshark and shutil.which("tshark"):
        seconds, found = run_tshark(path, port, proto)
        print(f"{proto:6s} {size_mb:7.1f} MB  tshark        {seconds:7.2f} s  {found:8d} requests "
              f"{found / seconds:9.0f} rec/s  {size_mb / seconds:6.1f} MB/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="measure this capture instead of recording")
    ap.add_argument("--port", type=int, default=18080, help="server port (HTTP/1; HTTP/2 +1)")
    ap.add_argument("--proto", choices=("http1", "http2"), help="with --file: its protocol")
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--max-seconds", type=int, default=60)
    ap.add_argument("--no-tshark", action="store_true")
    args = ap.parse_args()
    if args.file:
        measure(args.file, args.port, args.proto or "http1", not args.no_tshark)
        return
    import bench_pcap

    tmp = Path(tempfile.gettempdir())
    h1, h2 = tmp / "l7scope-bench-h1.pcap", tmp / "l7scope-bench-h2.pcap"
    bench_pcap.record(h1, args.size_mb, args.port, args.max_seconds, small_only=False)
    record_h2(h2, args.size_mb, args.port + 1, args.max_seconds)
    measure(h1, args.port, "http1", not args.no_tshark)
    measure(h2, args.port + 1, "http2", not args.no_tshark)


if __name__ == "__main__":
    main()
