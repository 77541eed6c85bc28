"""The HTTP/2 analyzer alone (Http2Analyzer: framing, HPACK, streams, pairing): the compiled
analyzer (l7scope/dataplane/h2conn.c) against the Python analyzer it replaced
(tests/protocols/http2_reference.py, which runs over the compiled frame splitter and HPACK
decoder), on recorded h2 conversations (two `h2` peers in memory, write by write as the agent
sees them).

    python bench/bench_h2_frames.py [--rounds 9] [--connections 20] [--requests 100]

Workloads: `small` (GET, 2-octet 200 responses, 10 streams in flight per connection, as
h2load against nginx `return 200`), `grpc` (unary calls, 5-octet messages, trailers), `bodies`
(GET, 48 KiB responses in 16 KiB DATA frames). Per workload and round both analyzers run, in
alternating order (shared machine); CPU time (process_time) per exchange. Prints the median
per analyzer and the median of the per-round ratios, with their spread.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l7scope.protocols import http2  # noqa: E402
from l7scope.protocols.message import ExchangeParsed  # noqa: E402
from tests.conn.h2_peers import H2Peers, get  # noqa: E402
from tests.protocols import http2_reference  # noqa: E402

GRPC = [(":method", "POST"), (":scheme", "http"), (":authority", "grpc.test"),
        (":path", "/pkg.Service/Call"), ("content-type", "application/grpc"), ("te", "trailers")]


def record(workload: str, requests: int, in_flight: int = 10) -> list[tuple[bool, bytes]]:
    peers = H2Peers()
    peers.start()
    for first in range(0, requests, in_flight):
        batch = range(first, min(first + in_flight, requests))
        if workload == "grpc":
            sids = [peers.request(GRPC, b"\x00\x00\x00\x00\x05hello") for _ in batch]
        else:
            sids = [peers.request(get(f"/r/{i}")) for i in batch]
        for sid in sids:
            if workload == "grpc":
                peers.respond(sid, [(":status", "200"), ("content-type", "application/grpc")],
                              b"\x00\x00\x00\x00\x02ok", trailers=[("grpc-status", "0")])
            elif workload == "bodies":
                peers.server.send_headers(sid, [(":status", "200")])
                for last in (False, False, True):
                    peers.server.send_data(sid, b"b" * 16384, end_stream=last)
                    peers.pump()  # the client's WINDOW_UPDATEs
            else:
                peers.respond(sid, [(":status", "200"), ("content-type", "text/plain")], b"ok")
    return peers.writes


ANALYZERS = {"compiled": http2.Http2Analyzer, "python": http2_reference.Http2Analyzer}


def analyze(analyzer_type, conversations) -> tuple[float, int]:
    exchanges = 0
    start = time.process_time()
    for writes in conversations:
        analyzer = analyzer_type()
        for ts, (from_client, data) in enumerate(writes, start=1):
            for event in analyzer.feed(from_client, data, ts):
                exchanges += type(event) is ExchangeParsed
        exchanges += sum(type(e) is ExchangeParsed for e in analyzer.eof(len(writes) + 1))
    return time.process_time() - start, exchanges


def measure(workload: str, conversations, rounds: int) -> dict:
    per_exchange: dict[str, list[float]] = {name: [] for name in ANALYZERS}
    ratios = []
    for r in range(rounds):
        order = list(ANALYZERS) if r % 2 == 0 else list(reversed(ANALYZERS))
        this = {}
        for name in order:
            seconds, exchanges = analyze(ANALYZERS[name], conversations)
            this[name] = seconds / exchanges * 1e6
            per_exchange[name].append(this[name])
        ratios.append(this["compiled"] / this["python"])
    return {"workload": workload, "exchanges": exchanges,
            **{f"{n}_us": statistics.median(v) for n, v in per_exchange.items()},
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="per connection")
    parser.add_argument("--dump", metavar="FILE", help="write the small workload's conversation "
                        "for bench/bench_h2_c.c and stop")
    args = parser.parse_args()
    if args.dump:
        with open(args.dump, "wb") as out:
            for from_client, data in record("small", args.requests):
                out.write(bytes([from_client]) + len(data).to_bytes(4, "big") + data)
        return
    print("workload  exchanges  python us/exchange  compiled us/exchange  ratio (min-max)")
    for workload in ("small", "grpc", "bodies"):
        conversation = record(workload, args.requests)
        result = measure(workload, [conversation] * args.connections, args.rounds)
        print(f"{workload:8}  {result['exchanges']:9}  {result['python_us']:18.2f}  "
              f"{result['compiled_us']:20.2f}  {result['ratio']:.2f}x "
              f"({result['ratio_min']:.2f}-{result['ratio_max']:.2f})")


if __name__ == "__main__":
    main()
