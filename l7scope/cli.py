"""Command line: `l7scope run` (kernel or live interface capture) and `l7scope pcap FILE`."""
from __future__ import annotations

import argparse
import math
import os
import sys


def _output_spec(value: str) -> str:
    kind, sep, path = value.partition(":")
    if kind != "jsonl" or not sep or not path:
        raise argparse.ArgumentTypeError(f"{value!r}: expected jsonl:PATH (PATH '-' is stdout)")
    return path


def _positive(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be positive")
    return v


def _positive_int(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be positive")
    return v


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", action="append", type=_output_spec, default=[], metavar="jsonl:PATH",
                   help="write Exchange records as JSON Lines (PATH '-' = stdout); repeatable")
    p.add_argument("--metrics-output", action="append", type=_output_spec, default=[],
                   metavar="jsonl:PATH", help="write per-process-pair metric snapshots")
    p.add_argument("--metrics-interval", type=_positive, default=None, metavar="SECONDS",
                   help="metrics interval (default: config metrics_interval_s, else 10)")
    p.add_argument("--config", metavar="PATH", help="YAML config: sampling rules, exporters, redaction")
    p.add_argument("--with-headers", action="store_true",
                   help="add request_headers/response_headers (redacted) to each record")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics on this address")
    p.add_argument("--max-parser-memory", type=_positive_int, default=64, metavar="MB",
                   help="memory budget of all connections' parser state in MiB; over it, the "
                        "least recently used connections are shed and counted (default 64)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l7scope", description=(
        "Reports HTTP/1.x, HTTP/2 and gRPC exchanges between the processes of this host."))
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="capture live traffic with eBPF (root)")
    _common(run)
    run.add_argument("--pid", action="append", type=int, default=[], help="trace only this pid; repeatable")
    run.add_argument("--comm", action="append", default=[], help="trace only this command name; repeatable")
    run.add_argument("--duration", type=_positive, metavar="SECONDS", help="stop after this long")
    run.add_argument("--max-payload", type=_positive_int, default=65536, metavar="BYTES",
                     help="payload bytes copied per syscall (default 65536)")
    run.add_argument("--ringbuf-mb", type=_positive_int, default=16,
                     help="ring buffer size in MiB (default 16)")
    run.add_argument("--interface", metavar="IFACE",
                     help="capture packets from this interface (AF_PACKET) instead of eBPF")
    run.add_argument("--no-summary", action="store_true", help="no live table even on a terminal")
    run.add_argument("--debug-bpf", action="store_true", help="print libbpf's messages")
    pcap = sub.add_parser("pcap", help="analyse a pcap/pcapng capture file")
    _common(pcap)
    pcap.add_argument("file", help="pcap or pcapng file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from l7scope import agent

    try:
        return agent.main(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`| head`): stop quietly, as shell tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except agent.UserError as e:
        print(f"l7scope: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
