"""Command-line errors: exit status 2 and one clear line saying what to fix."""
from __future__ import annotations

import subprocess
import sys

import pytest

from l7scope import cli


def _argparse_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("spec", ["bad", "jsonl", "jsonl:", "csv:out.csv", ":out.jsonl"])
def test_bad_output_spec(spec, capsys):
    assert _argparse_error(["run", "--output", spec], capsys) == (
        f"l7scope run: error: argument --output: {spec!r}: expected jsonl:PATH (PATH '-' is stdout)")


def test_bad_metrics_output_spec_on_pcap(capsys):
    assert _argparse_error(["pcap", "--metrics-output", "x.jsonl", "f.pcap"], capsys) == (
        "l7scope pcap: error: argument --metrics-output: 'x.jsonl': expected jsonl:PATH "
        "(PATH '-' is stdout)")


@pytest.mark.parametrize("value, reason", [("-1", "must be positive"), ("0", "must be positive"),
                                           ("abc", "is not a number")])
def test_bad_duration(value, reason, capsys):
    assert _argparse_error(["run", "--duration", value], capsys) == (
        f"l7scope run: error: argument --duration: {value!r} {reason}")


def test_bad_metrics_interval(capsys):
    assert _argparse_error(["pcap", "--metrics-interval", "-0.5", "f.pcap"], capsys) == (
        "l7scope pcap: error: argument --metrics-interval: '-0.5' must be positive")


def test_duration_nan_is_rejected(capsys):
    assert _argparse_error(["run", "--duration", "nan"], capsys) == (
        "l7scope run: error: argument --duration: 'nan' must be positive")


def test_missing_command(capsys):
    assert _argparse_error([], capsys) == (
        "l7scope: error: the following arguments are required: command")


def test_pcap_missing_file_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["pcap", "missing.pcap"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "l7scope: missing.pcap: no such capture file\n")


def test_pcap_not_a_capture_file_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_bytes(b"hello, not a capture\n")
    (tmp_path / "empty.pcap").write_bytes(b"")
    assert cli.main(["pcap", "notes.txt"]) == 2
    assert cli.main(["pcap", "empty.pcap"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("l7scope: notes.txt: not a pcap or pcapng file (magic 0x68656c6c)\n"
                   "l7scope: empty.pcap: file is empty\n")


def test_pcap_output_in_missing_directory_one_line(tmp_path, capsys):
    (tmp_path / "empty.pcap").write_bytes(b"")
    target = tmp_path / "no" / "out.jsonl"
    assert cli.main(["pcap", "--output", f"jsonl:{target}", str(tmp_path / "empty.pcap")]) == 2
    assert capsys.readouterr().err == (
        f"l7scope: cannot open output {target}: No such file or directory\n")


def test_missing_config_one_line(tmp_path, capsys):
    assert cli.main(["pcap", "--config", str(tmp_path / "none.yaml"), "x.pcap"]) == 2
    assert capsys.readouterr().err == (
        f"l7scope: config: {tmp_path / 'none.yaml'}: cannot read: No such file or directory\n")


def test_pcap_missing_file_creates_no_output(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert cli.main(["pcap", "--output", f"jsonl:{out}", str(tmp_path / "missing.pcap")]) == 2
    assert not out.exists()


def test_entry_point_pcap_missing_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "l7scope.cli", "pcap", "missing.pcap"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", "l7scope: missing.pcap: no such capture file\n")


def test_output_pipe_closed_early_is_not_an_error(tmp_path):
    """`l7scope pcap F --output jsonl:- | head -1`: the reader goes away; no traceback, exit 0."""
    import subprocess
    import sys

    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from tests.capture.test_pcap_reader import write_pcap

    frames, cseq, sseq = [], 1000, 9000
    for i in range(300):  # ~180 KB of JSON Lines: more than a pipe buffer holds
        req = f"GET /item/{i} HTTP/1.1\r\nHost: shop\r\n\r\n".encode()
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        frames.append(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2")
                            / TCP(sport=40000, dport=80, seq=cseq, flags="PA") / req))
        frames.append(bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1")
                            / TCP(sport=80, dport=40000, seq=sseq, flags="PA") / resp))
        cseq, sseq = cseq + len(req), sseq + len(resp)
    capture = tmp_path / "many.pcap"
    capture.write_bytes(write_pcap(frames))
    proc = subprocess.Popen([sys.executable, "-m", "l7scope.cli", "pcap", str(capture),
                             "--output", "jsonl:-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # like `head -1` exiting
    assert proc.wait(60) == 0
    assert b'"path":"/item/0"' in first
    assert proc.stderr.read() == b""


# -- --max-parser-memory and the stop line ------------------------------------------------------

def test_max_parser_memory_option():
    assert cli.build_parser().parse_args(["pcap", "f.pcap"]).max_parser_memory == 64
    args = cli.build_parser().parse_args(["run", "--max-parser-memory", "16"])
    assert args.max_parser_memory == 16


@pytest.mark.parametrize("value, reason", [("0", "must be positive"), ("1.5", "not a whole number")])
def test_bad_max_parser_memory(value, reason, capsys):
    assert reason in _argparse_error(["run", "--max-parser-memory", value], capsys)


def test_pcap_run_uses_the_parser_memory_budget(tmp_path, monkeypatch, capsys):
    from l7scope.conn import table as table_mod
    from tests.capture.test_pcap_reader import write_pcap

    budgets = []
    real_init = table_mod.ConnectionTable.__init__

    def init(self, *a, **kw):
        budgets.append(kw.get("max_memory"))
        real_init(self, *a, **kw)

    monkeypatch.setattr(table_mod.ConnectionTable, "__init__", init)
    capture = tmp_path / "empty.pcap"
    capture.write_bytes(write_pcap([]))
    assert cli.main(["pcap", str(capture), "--max-parser-memory", "3",
                     "--output", f"jsonl:{tmp_path / 'out.jsonl'}"]) == 0
    assert budgets == [3 << 20]
    assert capsys.readouterr().err.splitlines()[-1] == (
        "l7scope: stopped; 0 exchanges; nothing dropped; no parse errors; no internal errors")


def test_stop_line_names_drops_parse_errors_and_internal_errors_apart():
    from l7scope.agent import stop_line

    counters = {"exchanges": 12, "ringbuf_full": 3, "connections_shed_memory": 2,
                "bytes_shed_memory": 123456, "http1_dropped_pending": 1, "http1_lost_heads": 0,
                "parse_error_bad_status_line": 4, "internal_error_http2": 2,
                "internal_error_output": 1, "stream_gap_bytes": 9, "trace_context_b3_bad": 1}
    reasons = ["http2: KeyError in _on_frame", "output: ValueError in offer",
               "http2: KeyError in _on_frame"]
    assert stop_line(counters, reasons) == (
        "l7scope: stopped; 12 exchanges; dropped: ringbuf_full=3, connections_shed_memory=2, "
        "bytes_shed_memory=123456, http1_dropped_pending=1; parse errors: "
        "parse_error_bad_status_line=4; internal errors: internal_error_http2=2, "
        "internal_error_output=1 (latest: http2: KeyError in _on_frame; output: ValueError in offer)")
    assert stop_line({"exchanges": 0}) == (
        "l7scope: stopped; 0 exchanges; nothing dropped; no parse errors; no internal errors")


def _two_connections_pcap(path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from tests.capture.test_pcap_reader import write_pcap

    frames = []
    for sport, name in ((40001, "/ok"), (40002, "/BOOM")):
        req = f"GET {name} HTTP/1.1\r\nHost: shop\r\n\r\n".encode()
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        frames.append(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2")
                            / TCP(sport=sport, dport=80, seq=1000, flags="PA") / req))
        frames.append(bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1")
                            / TCP(sport=80, dport=sport, seq=9000, flags="PA") / resp))
    path.write_bytes(write_pcap(frames))


def test_an_internal_error_is_counted_in_the_stop_line_and_the_run_goes_on(tmp_path, monkeypatch,
                                                                            capsys):
    import json

    from l7scope.protocols import http1
    from l7scope.sampling import Sampler

    real = http1.Http1Analyzer.feed

    def feed(self, from_client, data, ts):
        if b"BOOM" in data:
            raise IndexError("simulated parser bug")
        return real(self, from_client, data, ts)

    monkeypatch.setattr(http1.Http1Analyzer, "feed", feed)
    monkeypatch.setattr(Sampler, "offer_batch", lambda self, batch: 1 / 0)
    capture, out, metrics = tmp_path / "two.pcap", tmp_path / "out.jsonl", tmp_path / "m.jsonl"
    _two_connections_pcap(capture)
    assert cli.main(["pcap", str(capture), "--output", f"jsonl:{out}",
                     "--metrics-output", f"jsonl:{metrics}"]) == 0
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == ["/ok"]
    assert capsys.readouterr().err.splitlines()[-1] == (
        "l7scope: stopped; 1 exchanges; nothing dropped; no parse errors; internal errors: "
        "internal_error_http1=1, internal_error_output=1 (latest: output: ZeroDivisionError in "
        "<lambda>; http1: IndexError in feed)")  # the sinks got the exchange at the batch's end
    [final] = [r for r in map(json.loads, metrics.read_text().splitlines())
               if r["kind"] == "agent_counters"]
    assert (final["internal_error_http1"], final["internal_error_output"]) == (1, 1)
    assert final["internal_error_reasons"] == ["http1: IndexError in feed",
                                               "output: ZeroDivisionError in <lambda>"]
    [pair] = [r for r in map(json.loads, metrics.read_text().splitlines())
              if r["kind"] == "pair_metrics"]
    assert pair["requests"] == 1  # metrics, an observer of their own, still saw the exchange
