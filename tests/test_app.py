"""The composition root: settings from the command line, the fan-out of sinks, and one
cleanup path (a failed or interrupted capture-file run, a capture file served with --ui)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from l7scope import app, cli
from l7scope.outputs import FanOut, Sink
from l7scope.outputs.sinks import JsonlFile
from l7scope.pipeline import Pipeline
from tests.test_cli import _two_connections_pcap


def settings(*argv: str) -> app.Settings:
    return cli.settings(cli.build_parser().parse_args(list(argv)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """No listener on it (connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def store_dirs() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("l7scope-store-")}


# --- settings ------------------------------------------------------------------------------

def test_run_defaults_ui_on_loopback_and_the_store_under_the_data_dir(tmp_path):
    s = settings("run", "--data-dir", str(tmp_path))
    assert (s.command, s.ui, s.store, s.live_view) == ("run", "127.0.0.1:7070", None, True)
    assert s.store_spec() == (str(tmp_path / "l7scope.db"), False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.ui = None


def test_pcap_defaults_no_ui_no_store_and_a_temporary_store_for_its_ui():
    assert settings("pcap", "f.pcap").ui is None
    assert settings("pcap", "f.pcap").store_spec() == (None, False)
    assert settings("pcap", "f.pcap", "--ui", ":7071").store_spec() == (None, True)
    assert settings("pcap", "f.pcap", "--ui", ":7071", "--store", "s.db").store_spec() == (
        "s.db", False)


def test_ui_off_and_store_off():
    s = settings("run", "--ui", "off", "--store", "off")
    assert (s.ui, s.store_spec()) == (None, (None, False))
    assert settings("run", "--store", "off").store_spec() == (None, True)  # the UI's, temporary
    assert settings("run", "--store", "clickhouse://h:8123/db").store_spec() == (
        "clickhouse://h:8123/db", False)


def test_settings_carry_every_option():
    s = settings("run", "--pid", "7", "--comm", "nginx", "--duration", "3", "--max-payload", "10",
                 "--ringbuf-mb", "32", "--output", "jsonl:a.jsonl?max_mb=1", "--metrics-output",
                 "jsonl:m.jsonl", "--metrics-interval", "2", "--with-headers", "--no-summary",
                 "--metrics-listen", ":9100", "--max-parser-memory", "8", "--ui", ":7071")
    assert s == app.Settings(command="run", pids=(7,), comms=("nginx",), duration_s=3.0,
                             max_payload=10, ringbuf_mb=32, outputs=("a.jsonl?max_mb=1",),
                             metrics_outputs=("m.jsonl",), metrics_interval_s=2.0,
                             with_headers=True, live_view=False, metrics_listen=":9100",
                             max_parser_memory_mb=8, ui=":7071")


@pytest.mark.parametrize("argv, line", [
    (["run", "--ui", "7070"], "l7scope run: error: argument --ui: '7070': expected HOST:PORT "
                              "(':PORT' is 127.0.0.1:PORT)"),
    (["run", "--ringbuf-mb", "100000"],
     "l7scope run: error: argument --ringbuf-mb: '100000': at most 1024 (MiB)"),
    (["run", "--output", "jsonl:x?keep=0"],
     "l7scope run: error: argument --output: 'jsonl:x?keep=0': keep='0': expected a whole "
     "number of files, 1 to 1000"),
])
def test_bad_values_are_one_line(argv, line, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == line


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("l7scope ")


# --- the fan-out -----------------------------------------------------------------------------

class Recorder(Sink):
    def __init__(self, name, log, fail=()):
        self.name, self.log, self.fail = name, log, fail
        self.on_exchange = self._exchange

    def _exchange(self, ex):
        self.log.append((self.name, "exchange", ex.path))
        if "exchange" in self.fail:
            raise KeyError("boom")

    def on_interval(self, snapshot, top_n, counters, now):
        self.log.append((self.name, "interval", len(snapshot), counters))
        if "interval" in self.fail:
            raise ValueError("bad")

    def stop(self):
        self.log.append((self.name, "stop"))

    def counters(self):
        return {f"{self.name}_seen": 1, "shared": 2}

    def close(self, aborted=False):
        self.log.append((self.name, "close", aborted))


class Empty:
    overflow_records = 0
    counters = {"offered": 0}

    def snapshot(self, start, end):
        return []

    def drain(self):
        return {}


def test_a_failing_sink_is_counted_and_the_others_still_get_everything():
    from tests.test_pipeline import client_events

    log, errors = [], []
    fan = FanOut([Recorder("a", log, fail=("exchange", "interval")), Recorder("b", log)],
                 metrics=Empty(), sampler=Empty(), interval_ns=10, on_error=errors.append)
    p = Pipeline(batch_observers=fan.batch_observers())
    p.feed(client_events())
    assert [e for e in log if e[1] == "exchange"] == [("a", "exchange", "/api/items?limit=5"),
                                                       ("b", "exchange", "/api/items?limit=5")]
    assert p.table.counters["internal_error_output"] == 1
    fan.tick(100, lambda: {"exchanges": 1})
    fan.tick(120, lambda: {"exchanges": 1})
    assert [e for e in log if e[1] == "interval"] == [("a", "interval", 0, {"exchanges": 1}),
                                                       ("b", "interval", 0, {"exchanges": 1})]
    assert [type(e) for e in errors] == [ValueError]
    assert fan.counters() == {"sampler_offered": 0, "metrics_overflow_records": 0,
                              "a_seen": 1, "b_seen": 1, "shared": 4}


def test_finish_order_last_interval_stop_final_counters_close():
    log = []
    fan = FanOut([Recorder("a", log)], metrics=Empty(), sampler=Empty(), interval_ns=10)
    final = fan.finish(5, lambda: {"exchanges": 3})
    fan.close()
    fan.close()  # once only
    assert final == {"exchanges": 3}
    assert log == [("a", "interval", 0, None), ("a", "stop"), ("a", "interval", 0, {"exchanges": 3}),
                   ("a", "close", False)]


def test_aborted_close_removes_an_empty_file_it_created_and_keeps_the_others(tmp_path):
    new, old, written = tmp_path / "new.jsonl", tmp_path / "old.jsonl", tmp_path / "w.jsonl"
    old.write_text("")
    sinks = [JsonlFile(str(new)), JsonlFile(str(old)), JsonlFile(str(written))]
    sinks[2].out.write({"a": 1})
    fan = FanOut(sinks, metrics=Empty(), sampler=Empty(), interval_ns=10)
    fan.close(aborted=True)
    assert (new.exists(), old.exists(), written.read_text()) == (False, True, '{"a":1}\n')


# --- one cleanup path --------------------------------------------------------------------------

def test_pcap_on_a_bad_file_after_outputs_are_open_cleans_up(tmp_path, capsys):
    bad, out, metrics = tmp_path / "notes.pcap", tmp_path / "out.jsonl", tmp_path / "m.jsonl"
    bad.write_bytes(b"hello, not a capture\n")
    port, before = free_port(), store_dirs()
    assert cli.main(["pcap", str(bad), "--output", f"jsonl:{out}", "--metrics-output",
                     f"jsonl:{metrics}", "--ui", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"l7scope: {bad}: not a pcap or pcapng file (magic 0x68656c6c)"
    assert err[0] == f"l7scope: web UI at http://127.0.0.1:{port}/ (store " \
                     f"{tempfile.gettempdir()}/{err[0].split(tempfile.gettempdir() + '/')[1]}"
    assert not out.exists() and not metrics.exists()  # created by the run, empty: removed
    assert port_is_free(port)  # the listener stopped
    assert store_dirs() <= before  # the temporary store removed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back


def test_a_failure_mid_run_keeps_the_partial_output_and_says_so(tmp_path, monkeypatch, capsys):
    import errno

    capture, out = tmp_path / "two.pcap", tmp_path / "out.jsonl"
    _two_connections_pcap(capture)
    real = Pipeline.finish

    def finish(self, ts=None):
        real(self, ts)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Pipeline, "finish", finish)
    assert cli.main(["pcap", str(capture), "--output", f"jsonl:{out}"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"l7scope: the run failed; partial output kept in {out}",
        "l7scope: output failed: No space left on device"]
    assert len(out.read_text().splitlines()) == 2


def test_ctrl_c_during_pcap_stops_with_a_partial_result_and_a_line(tmp_path, monkeypatch, capsys):
    from l7scope import sources

    capture, out, metrics = tmp_path / "two.pcap", tmp_path / "out.jsonl", tmp_path / "m.jsonl"
    _two_connections_pcap(capture)
    monkeypatch.setattr(sources, "FILE_BATCH", 1)
    real = sources.FileSource.poll

    def poll(self, timeout_ms=0):
        batch = real(self, timeout_ms)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the first event
        return batch

    monkeypatch.setattr(sources.FileSource, "poll", poll)
    assert cli.main(["pcap", str(capture), "--output", f"jsonl:{out}",
                     "--metrics-output", f"jsonl:{metrics}"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "l7scope: stopped; 0 exchanges; nothing dropped; no parse errors; " \
                     "no internal errors"
    assert err[1].startswith("l7scope: interrupted; the outputs hold a partial result (the "
                             "exchanges of the first ") and err[1].endswith(f"% of {capture})")
    assert out.read_text() == ""
    [final] = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert (final["kind"], final["exchanges"]) == ("agent_counters", 0)


def test_pcap_with_ui_serves_after_the_file_until_ctrl_c(tmp_path):
    capture = tmp_path / "two.pcap"
    _two_connections_pcap(capture)
    port, before = free_port(), store_dirs()
    proc = subprocess.Popen([sys.executable, "-m", "l7scope", "pcap", str(capture), "--ui",
                             f":{port}", "--output", f"jsonl:{tmp_path / 'o.jsonl'}"],
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline() for _ in range(3)]
        assert lines[0].startswith(f"l7scope: web UI at http://127.0.0.1:{port}/ (store ")
        assert lines[1] == ("l7scope: stopped; 2 exchanges; nothing dropped; no parse errors; "
                            "no internal errors\n")
        assert lines[2] == (f"l7scope: {capture} read; the web UI stays at "
                            f"http://127.0.0.1:{port}/ (Ctrl-C stops)\n")
        base = f"http://127.0.0.1:{port}"
        doc = _wait(base + "/api/topology", lambda d: d["edges"])
        assert [(e["client"], e["server"], e["requests"], e["errors"]) for e in doc["edges"]] == [
            ("remote:10.0.0.1", "remote:10.0.0.2:80", 2, 0)]
        paths = sorted(e["path"] for e in _get(base + "/api/exchanges")["exchanges"])
        assert paths == ["/BOOM", "/ok"]
        status = _get(base + "/api/status")
        assert (status["source"], status["counters"]["exchanges"]) == (f"pcap {capture}", 2)
        time.sleep(0.3)
        assert proc.poll() is None  # still serving
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    assert proc.stderr.read() == ""
    assert port_is_free(port) and store_dirs() <= before


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait(url: str, predicate, timeout: float = 20.0) -> dict:
    deadline, doc = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        doc = _get(url)
        if predicate(doc):
            return doc
        time.sleep(0.2)
    return doc


def test_the_live_view_shows_the_web_ui_address_under_its_title():
    import io

    from l7scope.summary import LiveSummary

    summary = LiveSummary(out=io.StringIO(), keyboard=False, size=(80, 24))
    summary.view.note = "web UI http://127.0.0.1:7070/"
    summary.draw({}, 0.0)
    lines = summary.out.getvalue().replace("\x1b[H\x1b[2J", "").splitlines()
    assert lines[0].startswith("l7scope live") and lines[1] == "web UI http://127.0.0.1:7070/"
