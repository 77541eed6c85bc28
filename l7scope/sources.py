"""Capture sources: the kernel (eBPF), a live interface (AF_PACKET) and a capture file.

Each gives the pipeline the same capture events through one small interface, so the run loop
(agent.py) does not know which one it drives:

    poll(timeout_ms) -> list     events ready now (a file: its next batch)
    drain() -> list              what is left at stop
    done                         True once a file is read to its end (never for live sources)
    now_ns(last_ts)              the pipeline's clock for expiry (monotonic, wall or packet time)
    wall_ns(last_ts)             the wall clock for the outputs (a file: its packets' time)
    counters() -> dict           the source's own counters, named for what they count
    clock                        WallClock turning event times into RFC 3339 text
    capture_mode                 True for packets (no pid, no side), False for the kernel
    label                        "kernel", "interface eth0", "pcap FILE": for the API's status
    close()                      idempotent

Problems the user can fix are raised as errors.py types; nothing here imports the agent.
"""
from __future__ import annotations

import os
import time

from l7scope.capture.packet import CaptureError
from l7scope.errors import CaptureFileError, CaptureUnavailableError
from l7scope.exchange import WallClock

FILE_BATCH = 512  # events per poll() of a capture file


def check_capture_file(path: str) -> None:
    """CaptureFileError (one line) unless path is a readable file."""
    if not os.path.exists(path):
        raise CaptureFileError(f"{path}: no such capture file")
    if not os.path.isfile(path):
        raise CaptureFileError(f"{path}: not a capture file (a directory or a device)")
    if not os.access(path, os.R_OK):
        raise CaptureFileError(f"{path}: not readable")


def capture_file_events(path, *, reassembler=None):
    """(events iterator, counters function) for a pcap/pcapng file (a path or a binary file
    object); damage becomes counters, a file with nothing readable a CaptureFileError."""
    from l7scope.capture.pcap import pcap_events
    from l7scope.capture.tcp_reassembly import TcpReassembler

    name = path if isinstance(path, str) else getattr(path, "name", "capture")
    counters: dict[str, int] = {}
    errors: list[CaptureError] = []
    tcp = reassembler or TcpReassembler()

    def on_error(err: CaptureError) -> None:
        if err.fatal and not err.offset:
            # nothing of the file could be read (empty, not a capture, unsupported link type):
            # a user error (exit 2), not an empty analysis
            raise CaptureFileError(f"{name}: {err.message}")
        counters["capture_errors"] = counters.get("capture_errors", 0) + 1
        if len(errors) < 1:
            errors.append(err)

    def all_counters() -> dict:
        out = {f"capture_{k}": v for k, v in counters.items() if isinstance(v, int)}
        out.update({f"tcp_{k}": v for k, v in tcp.counters.items()})
        if errors:
            out["capture_errors"] = counters.get("capture_errors", 0)
            out["capture_error_message"] = str(getattr(errors[0], "message", errors[0]))
        return out

    return pcap_events(path, reassembler=tcp, on_error=on_error, counters=counters), all_counters


class FileSource:
    """A capture file read in batches; ``progress()`` is the fraction of its bytes read."""

    capture_mode = True

    def __init__(self, path: str):
        check_capture_file(path)  # before any output file is created
        self.path = path
        self.label = f"pcap {path}"
        self.clock = WallClock(offset_ns=0)
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise CaptureFileError(f"{path}: {e.strerror or e}") from None
        self.size = os.fstat(self._file.fileno()).st_size
        self._events, self._counters = capture_file_events(self._file)
        self.done = False

    def poll(self, timeout_ms: int = 0) -> list:
        batch = []
        for ev in self._events:
            batch.append(ev)
            if len(batch) >= FILE_BATCH:
                return batch
        self.done = True
        return batch

    def drain(self) -> list:
        return []  # an interrupted file stops where it is: the rest is not read

    def progress(self) -> float:
        try:
            return min(1.0, self._file.tell() / self.size) if self.size else 1.0
        except (OSError, ValueError):
            return 1.0

    @staticmethod
    def now_ns(last_ts: int) -> int:
        return last_ts

    @staticmethod
    def wall_ns(last_ts: int) -> int:
        return last_ts or time.time_ns()

    def counters(self) -> dict:
        return self._counters()

    def close(self) -> None:
        self._file.close()


class InterfaceSource:
    """Live packets from an interface (AF_PACKET), reassembled; same poll/drain as the kernel."""

    capture_mode = True
    done = False

    def __init__(self, interface: str):
        from l7scope.capture.afpacket import LiveCapture
        from l7scope.capture.tcp_reassembly import TcpReassembler

        try:
            self.capture = LiveCapture(interface)
            self.capture.open()
        except PermissionError:
            raise CaptureUnavailableError(
                f"capturing on {interface} needs root or CAP_NET_RAW (run it with sudo)") from None
        except OSError as e:
            raise CaptureUnavailableError(
                f"cannot capture on {interface}: {e.strerror or e}") from None
        self.label = f"interface {interface}"
        self.clock = WallClock(offset_ns=0)
        self.tcp = TcpReassembler()
        self.errors = 0
        self._last_expire = time.monotonic()

    def poll(self, timeout_ms: int) -> list:
        out = []
        for item in self.capture.read(timeout_ms):
            if isinstance(item, CaptureError):
                self.errors += 1
                continue
            out += self.tcp.feed(item)
        if time.monotonic() - self._last_expire > 5:
            self._last_expire = time.monotonic()
            out += self.tcp.expire(time.time_ns())
        return out

    def drain(self) -> list:
        return self.poll(0) + self.tcp.flush(time.time_ns())

    @staticmethod
    def now_ns(last_ts: int) -> int:
        return time.time_ns()

    @staticmethod
    def wall_ns(last_ts: int) -> int:
        return time.time_ns()

    def counters(self) -> dict[str, int]:
        out = {f"tcp_{k}": v for k, v in self.tcp.counters.items()}
        out.update({f"afpacket_{k}": v for k, v in self.capture.statistics().items()})
        out["capture_errors"] = self.errors
        return out

    def close(self) -> None:
        self.capture.close()


class KernelSource:
    """The eBPF programs attached (capture/kernel.py), their ring buffer polled."""

    capture_mode = False
    done = False
    label = "kernel"

    def __init__(self, pids=(), comms=(), max_payload: int = 65536, ringbuf_mb: int = 16,
                 debug_bpf: bool = False):
        import sys

        from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions

        opts = KernelOptions(pids=tuple(pids), comms=tuple(comms), max_payload=max_payload,
                             ringbuf_bytes=ringbuf_mb << 20)
        debug = (lambda lvl, text: sys.stderr.write(text)) if debug_bpf else None
        try:
            self.capture = KernelCapture(opts, debug_print=debug)
        except CaptureUnavailable as e:
            raise CaptureUnavailableError(str(e)) from None
        self.clock = WallClock()
        self.tls_library = getattr(self.capture, "tls_library", None)
        self.tls_problem = getattr(self.capture, "tls_problem", None)

    def poll(self, timeout_ms: int) -> list:
        return self.capture.poll(timeout_ms)

    def drain(self) -> list:
        return self.capture.drain()

    def set_filter(self, pids, comms) -> None:
        """Who is traced, changed live (KernelCapture.set_filter); ValueError over capacity."""
        self.capture.set_filter(pids, comms)

    @staticmethod
    def now_ns(last_ts: int) -> int:
        return time.monotonic_ns()

    @staticmethod
    def wall_ns(last_ts: int) -> int:
        return time.time_ns()

    def counters(self) -> dict[str, int]:
        return self.capture.counters()

    def tcp_open(self) -> list:
        """The tracked TCP sockets' counters so far (tcpmetrics reports open ones per interval)."""
        return self.capture.tcp_open()

    def close(self) -> None:
        self.capture.close()
