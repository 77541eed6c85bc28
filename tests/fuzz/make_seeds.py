"""Writes the seed corpus (tests/fuzz/corpus/TARGET/*): python -m tests.fuzz.make_seeds

Seeds are small real traffic: HTTP/1 exchanges as clients and servers send them, HTTP/2 and gRPC
conversations recorded from two h2 peers (tests/conn/h2_peers.py), HPACK blocks of the
hpack-test-case corpus when it is at hand (../shared/corpora), capture files of those exchanges,
configs from docs/configuration.md. The output is committed; run this again only to change it.
"""
from __future__ import annotations

import gzip
import json
import shutil
import struct
import zlib
from pathlib import Path

from tests.conn.h2_peers import H2Peers, get

from .script import encode

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
HPACK_STORIES = HERE.parents[2] / "shared" / "corpora" / "hpack-test-case"

H1_CONVERSATIONS = {
    "get": [(True, b"GET /hello?token=s3cret&x=1 HTTP/1.1\r\nHost: api.test\r\n"
                   b"User-Agent: curl/8\r\n"
                   b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"),
            (False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n"
                    b"hello")],
    "post_json_chunked": [
        (True, b"POST /login HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\n"
               b"Content-Length: 39\r\n\r\n{\"user\":\"ann\",\"password\":\"hunter2xyz\"}\n"),
        (False, b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: application/json\r\n\r\n"
                b"c\r\n{\"token\":\"t\"\r\n1\r\n}\r\n0\r\n\r\n")],
    "pipelined": [
        (True, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"),
        (False, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                b"HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n")],
    "close_delimited": [
        (True, b"GET /old HTTP/1.0\r\n\r\n"),
        (False, b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nbody until close")],
    "h2c_upgrade": [
        (True, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"),
        (False, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x88")],
    "odd_digits": [
        (True, b"GET /n HTTP/1.1\r\nHost: x\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\ngrpc-status: \xd9\xa3\r\nContent-Length: 1\r\n\r\nx")],
}

GRPC_REQUEST = [(":method", "POST"), (":scheme", "http"), (":authority", "grpc.test"),
                (":path", "/pkg.Service/Call"), ("content-type", "application/grpc"),
                ("te", "trailers"), ("sw8", "1-MQ==-MQ==-0-c2Vydg==-aW5zdA==-L2E=-aG9zdDo4MA==")]


def h2_conversations() -> dict[str, list[tuple[bool, bytes]]]:
    out = {}
    peers = H2Peers()
    peers.start()
    sid = peers.request(get("/h2?api_key=k"))
    peers.respond(sid, [(":status", "200"), ("content-type", "text/plain")], b"hello h2")
    sid = peers.request(get("/h2?api_key=k"))  # the same headers again: dynamic table indexes
    peers.respond(sid, [(":status", "404")])
    out["two_streams"] = peers.writes
    peers = H2Peers()
    peers.start()
    sid = peers.request(GRPC_REQUEST, b"\x00\x00\x00\x00\x03abc")
    peers.respond(sid, [(":status", "200"), ("content-type", "application/grpc")],
                  b"\x00\x00\x00\x00\x02ok", trailers=[("grpc-status", "13"),
                                                       ("grpc-message", "boom")])
    out["grpc"] = peers.writes
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff"  # table 2^32-1
    data_only = b"\x00\x00\x03\x00\x01\x00\x00\x00\x05abc"  # DATA, END_STREAM, stream 5
    out["data_only_huge_table"] = [(True, preface + settings + data_only),
                                   (False, b"\x00\x00\x02\x00\x01\x00\x00\x00\x05ok")]
    out["garbage_after_preface"] = [(True, preface + b"\xff" * 200 + settings)]
    return out


def script_ops(conversation) -> list[tuple[int, bytes]]:
    return [(1 if from_client else 0, data) for from_client, data in conversation]


SEED_MESSAGE_CAP = 12_000  # octets of one message kept in a seed


def hostile_seeds() -> None:
    """The classes of the hostile kernel test (tests/kernel/test_hostile_kernel.py), as seeds
    of the analyzers and of the pipeline, messages cut to SEED_MESSAGE_CAP."""
    from tests.kernel.test_hostile_kernel import PREFACE, hostile_classes

    for name, conv in hostile_classes().items():
        conv = [(c, d[:SEED_MESSAGE_CAP]) for c, d in conv]
        slug = "hostile_" + name.strip("/").replace("^", "").replace("-", "_")
        h2 = conv[0][1].startswith(PREFACE) or not conv[0][1][:1].isalpha()
        write("http2" if h2 else "http1", slug, encode(2 if h2 else 0, script_ops(conv)))
        steps = ([(3 << 3, b"")] + [(int(c), d) for c, d in conv]
                 + [(int(not c) | 2 << 1, d) for c, d in conv] + [(4 << 3 | 64, b"")])
        write("pipeline", slug, encode(8, steps))


def write(target: str, name: str, data: bytes) -> None:
    (CORPUS / target).mkdir(parents=True, exist_ok=True)
    (CORPUS / target / name).write_bytes(data)


def analyzer_seeds(h1, h2) -> None:
    for name, conv in h1.items():
        write("http1", name, encode(0, script_ops(conv)))
        write("detect", f"h1_{name}", conv[0][1][:200])
    write("http1", "unterminated_head", encode(0, [(1, b"GET / HTTP/1.1\r\nX: " + b"a" * 9000)]))
    write("http1", "get_small_limits", encode(1, script_ops(h1["post_json_chunked"])))
    write("http1", "get_with_hole", encode(0, [(1, h1["get"][0][1]), (2, b"\x05\x00"),
                                               (0, h1["get"][1][1])]))
    for name, conv in h2.items():
        write("http2", name, encode(2, script_ops(conv)))
        write("http2", f"{name}_midstream", encode(1, script_ops(conv[2:] or conv)))
        write("detect", f"h2_{name}", conv[0][1][:200])
        client = b"".join(d for c, d in conv if c)
        server = b"".join(d for c, d in conv if not c)
        write("h2frames", f"{name}_client", encode(3, [(0, client)]))
        write("h2frames", f"{name}_server", encode(6, [(0, server[:30]), (2, b"\x04\x00"),
                                                       (0, server[34:])]))


def hpack_seeds(h2) -> None:
    stories = sorted(HPACK_STORIES.glob("*/story_0[0-2].json")) if HPACK_STORIES.exists() else []
    for path in stories[:12]:
        cases = json.loads(path.read_text())["cases"][:8]
        blocks = [(0, bytes.fromhex(c["wire"])) for c in cases]
        name = f"{path.parent.name}_{path.stem}"
        write("hpack", name, encode(0, blocks))
        write("hpack_observer", name, encode(0x80, blocks[2:] + [(12, b"")] + blocks[:2]))
    # the header blocks of the recorded conversations (HEADERS frames of stream 1 and 3)
    for name, conv in h2.items():
        blocks = [(0, frame[9:]) for c, data in conv for frame in _frames(data) if frame[3] == 1]
        if blocks:
            write("hpack", f"h2_{name}", encode(0, blocks))
            write("hpack_observer", f"h2_{name}", encode(0, blocks + [(14, b"\x00\x01\x00\x00")]))


def _frames(data: bytes):
    if data.startswith(b"PRI * HTTP/2.0"):
        data = data[24:]
    pos = 0
    while pos + 9 <= len(data):
        n = int.from_bytes(data[pos:pos + 3], "big")
        yield data[pos:pos + 9 + n]
        pos += 9 + n


def trace_seeds() -> None:
    write("tracecontext", "w3c", b"\x01 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n"
          b"\x02 vendor=opaque,other=1\n\x09 req-42")
    write("tracecontext", "sw8", b"\x00 1-NGJmOTJmMzU3N2IzNGRhNmEzY2U5MjlkMGUwZTQ3MzY=-"
          b"c2VnbWVudA==-3-c2Vydg==-aW5zdA==-L2FwaQ==-aG9zdDo4MA==")
    write("tracecontext", "b3_single", b"\x03 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-"
          b"05e3ac9a4f6e3b90")
    write("tracecontext", "b3_multi", b"\x04 463ac35c9f6413ad48485a3953bb6124\n"
          b"\x05 a2fb4a1d1a96d312\n\x07 1\nX-Request-Id: abc")


def pipeline_seeds(h1, h2) -> None:
    # op: bit 0 egress, bits 1-2 socket (0, 1 clients; 2, 3 their servers, 3 TLS),
    # bits 3-5 event (0 data, 3 open, 4 close, 5 end of stream, 6 hole, 7 raw record),
    # bits 6-7 (1 tick, 2 jump past the idle timeout, 3 role unknown)
    def as_client(conv, sock=0):
        return ([(3 << 3 | sock << 1, b"")]
                + [(int(c) | sock << 1, d) for c, d in conv] + [(4 << 3 | sock << 1 | 64, b"")])

    def as_server(conv, sock=2):
        return [(int(not c) | sock << 1, d) for c, d in conv] + [(5 << 3 | sock << 1, b"")]

    write("pipeline", "h1_both_ends", encode(8, as_client(h1["get"]) + as_server(h1["get"])))
    write("pipeline", "h1_json_small", encode(1 | 8, as_client(h1["post_json_chunked"], 1)))
    write("pipeline", "h1_tls_server", encode(0, as_server(h1["pipelined"], 3)))
    write("pipeline", "h2c", encode(0, as_client(h1["h2c_upgrade"])))
    for name, conv in h2.items():
        write("pipeline", f"h2_{name}", encode(8, as_client(conv) + as_server(conv)))
    head = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 20000
    write("pipeline", "h1_unterminated_heads_budget",
          encode(4, as_client([(True, head)]) [:2] + as_client([(True, head)], 1)[:2]
                 + as_server([(True, head)])[:1]))
    write("pipeline", "h1_idle_budget", encode(4 | 2, as_client(h1["get"])[:2]
                                               + [(128, b"")] + as_client(h1["get"], 1)))
    # both ends' TCP summaries (raw records) mid-conversation, then more traffic of those ends
    summaries = [(7 << 3, tcp_summary_record(sock)) for sock in (0, 2)]
    write("pipeline", "h1_tcp_summaries", encode(8, as_client(h1["get"])[:2] + summaries
                                                 + as_server(h1["get"]) + as_client(h1["get"])))


def tcp_summary_record(sock: int) -> bytes:
    """An L7_KIND_TCP record of one of the pipeline target's sockets (tests/fuzz/whole.py)."""
    from l7scope.capture import wire
    from l7scope.capture.tcp_summary import STATS, _STATS_NAMES

    from .whole import record

    stats = dict.fromkeys(_STATS_NAMES, 0) | {"srtt_us": 90, "retransmits": 2,
                                               "drop_reason0": 2, "drop_count0": 1}
    return record(wire.KIND_TCP, sock, False, 10**12, data=STATS.pack(*stats.values()))


def _tcp(src, dst, seq, ack, flags, payload=b""):
    sip, sport = src
    dip, dport = dst
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 1, 0x4000, 64, 6,
                     0, bytes(sip), bytes(dip))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload


def packets(conv):
    c, s = ((10, 0, 0, 1), 45000), ((10, 0, 0, 2), 80)
    cseq, sseq = 1000, 5000
    out = [_tcp(c, s, cseq, 0, 0x02), _tcp(s, c, sseq, cseq + 1, 0x12),
           _tcp(c, s, cseq + 1, sseq + 1, 0x10)]
    cseq, sseq = cseq + 1, sseq + 1
    for from_client, data in conv:
        if from_client:
            out.append(_tcp(c, s, cseq, sseq, 0x18, data))
            cseq += len(data)
        else:
            out.append(_tcp(s, c, sseq, cseq, 0x18, data))
            sseq += len(data)
    out += [_tcp(c, s, cseq, sseq, 0x11), _tcp(s, c, sseq, cseq + 1, 0x11),
            _tcp(c, s, cseq + 1, sseq + 1, 0x10)]
    return out


def pcap_file(conv) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, pkt in enumerate(packets(conv)):
        out += struct.pack("<IIII", 1_700_000_000, i * 1000, len(pkt), len(pkt)) + pkt
    return out


def pcapng_file(conv) -> bytes:
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535))
    for i, pkt in enumerate(packets(conv)):
        ts = 1_700_000_000_000_000 + i * 1000
        epb = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(pkt), len(pkt))
        out += block(6, epb + pkt)
    return out


def capture_seeds(h1, h2) -> None:
    write("pcap", "h1_get.pcap", pcap_file(h1["get"]))
    write("pcap", "h1_pipelined.pcapng", pcapng_file(h1["pipelined"]))
    write("pcap", "h2_grpc.pcap", pcap_file(h2["grpc"]))


def config_seeds() -> None:
    doc = (HERE.parents[1] / "docs" / "configuration.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    write("config", "documented.yaml", example.encode())
    write("config", "redact_only.yaml", b"redact:\n  json_fields: [password, token]\n")
    write("config", "flow.yaml", b"sampling: {top_n: 3, rules: [{uri_regex: '^/a'}, {}]}\n")
    write("config", "empty.yaml", b"")
    write("config", "invalid_utf8.yaml", b"redact:\n  json_fields: [\xff\xfe]\n")
    write("config", "deep.yaml", b"[" * 3000 + b"]" * 3000)


def redact_seeds() -> None:
    body = b'{"user":"ann","password":"hunter2","nested":[{"token":"t0k"}],"n":1}'
    write("redact", "json", b"password,token\0application/json\0\0/login?token=abc&x=1\0" + body)
    write("redact", "gzip", b"password\0application/json\0gzip\0/\0" + gzip.compress(body, mtime=0))
    write("redact", "deflate", b"token\0application/json\0deflate\0/\0" + zlib.compress(body))
    write("redact", "plain_json", b"\0text/plain\0\0/?api_key=1\0" + body)
    write("redact", "truncated", b"secret\0application/json\0\0/p\0" + body[:30])
    write("redact", "deep", b"password\0application/json\0\0/\0{\"password\":\"x\",\"d\":"
          + b"[" * 3000 + b"]" * 3000 + b"}")
    write("redact", "form", b"\0application/x-www-form-urlencoded\0\0/f?password=x\0"
          b"user=ann&password=hunter2")


def main() -> None:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    h1, h2 = H1_CONVERSATIONS, h2_conversations()
    analyzer_seeds(h1, h2)
    hpack_seeds(h2)
    trace_seeds()
    pipeline_seeds(h1, h2)
    hostile_seeds()
    capture_seeds(h1, h2)
    config_seeds()
    redact_seeds()
    for target in sorted(CORPUS.iterdir()):
        print(f"{target.name}: {len(list(target.iterdir()))} seeds")


if __name__ == "__main__":
    main()
