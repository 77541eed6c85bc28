"""Command line: `l7scope run` (kernel or live interface capture) and `l7scope pcap FILE`.

Argument parsing only: the arguments become an app.Settings (frozen) and app.run does the
rest; errors.UserError comes back as one line and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from l7scope.app import DEFAULT_UI, Settings
from l7scope.errors import UserError

MAX_RINGBUF_MB = 1024


def _output_spec(value: str) -> str:
    """``jsonl:PATH[?max_mb=N&keep=K]`` -> the text after ``jsonl:`` (checked)."""
    from l7scope.outputs.jsonl import parse_spec

    kind, sep, spec = value.partition(":")
    if kind != "jsonl" or not sep or not spec:
        raise argparse.ArgumentTypeError(f"{value!r}: expected jsonl:PATH (PATH '-' is stdout)")
    try:
        parse_spec(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r}: {e}") from None
    return spec


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


def _ringbuf_mb(value: str) -> int:
    v = _positive_int(value)
    if v > MAX_RINGBUF_MB:
        raise argparse.ArgumentTypeError(f"{value!r}: at most {MAX_RINGBUF_MB} (MiB)")
    return v


def _listen(value: str) -> str:
    from l7scope.outputs.http import parse_listen_address

    try:
        parse_listen_address(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r}: {e}") from None
    return value


def _ui(value: str) -> str:
    return "off" if value == "off" else _listen(value)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("l7scope")
    except Exception:  # noqa: BLE001 - run from a checkout that is not installed
        return "unknown"


def _common(p: argparse.ArgumentParser, ui_default: str) -> None:
    p.add_argument("--output", action="append", type=_output_spec, default=[], metavar="jsonl:PATH",
                   help="write Exchange records as JSON Lines (PATH '-' = stdout; a file rotates "
                        "at 100 MiB keeping 5: PATH?max_mb=N&keep=K); repeatable")
    p.add_argument("--metrics-output", action="append", type=_output_spec, default=[],
                   metavar="jsonl:PATH", help="write per-process-pair metric snapshots")
    p.add_argument("--metrics-interval", type=_positive, default=None, metavar="SECONDS",
                   help="metrics interval (default: config metrics_interval_s, else 10)")
    p.add_argument("--config", metavar="PATH", help="YAML config: sampling rules, exporters, redaction")
    p.add_argument("--with-headers", action="store_true",
                   help="add request_headers/response_headers (redacted) to each record")
    p.add_argument("--metrics-listen", metavar="HOST:PORT", type=_listen,
                   help="serve Prometheus metrics on this address (the web UI's own address "
                        "gives its /metrics route; ':PORT' is loopback)")
    p.add_argument("--ui", type=_ui, default=None, metavar="HOST:PORT|off",
                   help=f"serve the web UI and its API here (default: {ui_default}; "
                        "':PORT' is loopback; another address prints a warning)")
    p.add_argument("--store", metavar="PATH|clickhouse://HOST:8123/DB|off",
                   help="where exchanges and metrics are kept for the UI (run default: "
                        "DATA_DIR/l7scope.db; pcap default: a temporary store with --ui, "
                        "else none)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="directory of the default store (default /var/lib/l7scope for root, "
                        "else ~/.local/share/l7scope)")
    p.add_argument("--max-parser-memory", type=_positive_int, default=64, metavar="MB",
                   help="memory budget of all connections' parser state in MiB; over it, the "
                        "least recently used connections are shed and counted (default 64)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l7scope", description=(
        "Reports HTTP/1.x, HTTP/2 and gRPC exchanges between the processes of this host."))
    parser.add_argument("--version", action="version", version=f"l7scope {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="capture live traffic with eBPF (root)")
    _common(run, DEFAULT_UI)
    run.add_argument("--pid", action="append", type=int, default=[], help="trace only this pid; repeatable")
    run.add_argument("--comm", action="append", default=[], help="trace only this command name; repeatable")
    run.add_argument("--duration", type=_positive, metavar="SECONDS", help="stop after this long")
    run.add_argument("--max-payload", type=_positive_int, default=65536, metavar="BYTES",
                     help="payload bytes copied per syscall (default 65536)")
    run.add_argument("--ringbuf-mb", type=_ringbuf_mb, default=16,
                     help=f"ring buffer size in MiB, 1-{MAX_RINGBUF_MB} (default 16)")
    run.add_argument("--interface", metavar="IFACE",
                     help="capture packets from this interface (AF_PACKET) instead of eBPF")
    run.add_argument("--no-summary", action="store_true", help="no live table even on a terminal")
    run.add_argument("--debug-bpf", action="store_true", help="print libbpf's messages")
    pcap = sub.add_parser("pcap", help="analyse a pcap/pcapng capture file")
    _common(pcap, "off")
    pcap.add_argument("file", help="pcap or pcapng file")
    return parser


def settings(args: argparse.Namespace) -> Settings:
    """The parsed arguments as the app's settings (nothing below sees argparse)."""
    pcap = args.command == "pcap"
    ui = args.ui if args.ui is not None else ("off" if pcap else DEFAULT_UI)
    return Settings(
        command=args.command, file=getattr(args, "file", None),
        interface=getattr(args, "interface", None), pids=tuple(getattr(args, "pid", ())),
        comms=tuple(getattr(args, "comm", ())), duration_s=getattr(args, "duration", None),
        max_payload=getattr(args, "max_payload", 65536),
        ringbuf_mb=getattr(args, "ringbuf_mb", 16), debug_bpf=getattr(args, "debug_bpf", False),
        outputs=tuple(args.output), metrics_outputs=tuple(args.metrics_output),
        metrics_interval_s=args.metrics_interval, config_path=args.config,
        with_headers=args.with_headers, metrics_listen=args.metrics_listen,
        max_parser_memory_mb=args.max_parser_memory,
        live_view=not getattr(args, "no_summary", False),
        ui=None if ui == "off" else ui, store=args.store, data_dir=args.data_dir)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from l7scope import app

    try:
        return app.run(settings(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`| head`): stop quietly, as shell tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except UserError as e:
        print(f"l7scope: {e}", file=sys.stderr)
        return e.exit_status


if __name__ == "__main__":
    sys.exit(main())
