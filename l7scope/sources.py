"""Packet sources for the pipeline: capture files and live interfaces, through TCP reassembly.

Both give the same capture events as the kernel source, so every later stage is shared.
"""
from __future__ import annotations

import os
import time

from l7scope.capture.packet import CaptureError


def check_capture_file(path: str) -> None:
    """UserError (one line) unless path is a readable file."""
    from l7scope.agent import UserError

    if not os.path.exists(path):
        raise UserError(f"{path}: no such capture file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: not a capture file (a directory or a device)")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable")


def capture_file_events(path: str):
    """(events iterator, counters function) for a pcap/pcapng file; errors become counters."""
    from l7scope.agent import UserError
    from l7scope.capture.pcap import pcap_events
    from l7scope.capture.tcp_reassembly import TcpReassembler

    check_capture_file(path)
    counters: dict[str, int] = {}
    errors: list[CaptureError] = []
    tcp = TcpReassembler()

    def on_error(err: CaptureError) -> None:
        if err.fatal and not err.offset:
            # nothing of the file could be read (empty, not a capture, unsupported link type):
            # a user error (exit 2), not an empty analysis
            raise UserError(f"{path}: {err.message}")
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


class InterfaceSource:
    """Live packets from an interface (AF_PACKET), reassembled; same poll/drain as the kernel."""

    def __init__(self, interface: str):
        from l7scope.capture.afpacket import LiveCapture
        from l7scope.capture.tcp_reassembly import TcpReassembler

        try:
            self.capture = LiveCapture(interface)
            self.capture.open()
        except OSError as e:
            from l7scope.agent import UserError

            raise UserError(f"cannot capture on {interface}: {e.strerror or e}") from None
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

    def counters(self) -> dict[str, int]:
        out = {f"tcp_{k}": v for k, v in self.tcp.counters.items()}
        out.update({f"afpacket_{k}": v for k, v in self.capture.statistics().items()})
        out["capture_errors"] = self.errors
        return out

    def close(self) -> None:
        self.capture.close()
