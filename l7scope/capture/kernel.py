"""The kernel capture source: environment checks, load/attach, ring-buffer reading, counters.

Lifecycle (libbpf-bootstrap shape): check -> open -> configure (.rodata knobs, map sizes,
autoload only tracepoints this kernel has) -> load -> attach -> poll ... -> close. One cleanup
path: KernelCapture.close(), also used when any step fails.
"""
from __future__ import annotations

import ctypes
import errno
import glob
import os
import struct
import threading
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from l7scope.capture import libbpf, wire_layout
from l7scope.capture.tcp_summary import decode_open
from l7scope.capture.wire import STATS, WireDecoder

TRACEFS = "/sys/kernel/tracing"
BPFFS = "/sys/fs/bpf"
BTF = "/sys/kernel/btf/vmlinux"

# struct l7_config in bpf/l7scope.h (generated layout); where the object keeps it comes from BTF
CONFIG = struct.Struct(wire_layout.L7_CONFIG_FORMAT)
CONFIG_FIELDS = tuple(f[0] for f in wire_layout.L7_CONFIG_FIELDS)
assert CONFIG.size == wire_layout.L7_CONFIG_SIZE
# struct l7_filter_state: the one entry of the filter_state array (who is traced, live)
FILTER_STATE = struct.Struct(wire_layout.L7_FILTER_STATE_FORMAT)
assert FILTER_STATE.size == wire_layout.L7_FILTER_STATE_SIZE
PID_FILTER_MAX = wire_layout.CONSTANTS["L7_PID_FILTER_MAX"]
COMM_FILTER_MAX = wire_layout.CONSTANTS["L7_COMM_FILTER_MAX"]
COMM_KEY_LEN = wire_layout.CONSTANTS["L7_COMM_LEN"]
# the TCP health programs' own counters (enum l7_tcp_count: the tcp_health_counts array)
_TCP_COUNT = wire_layout.ENUMS["l7_tcp_count"]
TCP_COUNT_NESTED, TCP_COUNT_NO_ENTRY = (_TCP_COUNT["L7_TCP_COUNT_NESTED"],
                                        _TCP_COUNT["L7_TCP_COUNT_NO_ENTRY"])
TCP_COUNT_MAX = _TCP_COUNT["L7_TCP_COUNT_MAX"]
# the reader is woken once this much is pending (else it finds records at its poll timeout)
WAKEUP_BYTES_MAX = 256 << 10

# TLS plaintext: libssl functions and the entry program for each; one return program for all
LIBSSL_CANDIDATES = ("/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                     "/lib/aarch64-linux-gnu/libssl.so.3", "/usr/lib64/libssl.so.3",
                     "/usr/lib/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.1.1")
# (SSL_do_handshake moves no plaintext: its syscalls name the SSL object's socket early)
SSL_FUNCTIONS = {"SSL_write": "ssl_write_enter", "SSL_write_ex": "ssl_write_ex_enter",
                 "SSL_read": "ssl_read_enter", "SSL_read_ex": "ssl_read_ex_enter",
                 "SSL_do_handshake": "ssl_handshake_enter"}
SSL_RETURN_PROGRAM = "ssl_exit"
# entry only: the SSL object's plaintext stream ends
SSL_END_FUNCTIONS = {"SSL_free": "ssl_free_enter"}


class CaptureUnavailable(RuntimeError):
    """The kernel capture cannot run here; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class KernelOptions:
    pids: tuple[int, ...] = ()
    comms: tuple[str, ...] = ()
    max_payload: int = 65536
    ringbuf_bytes: int = 16 << 20
    capture_all: bool = False  # payload of every TCP connection, not only HTTP-looking ones
    max_checks: int = 8
    wakeup_bytes: int | None = None  # None: a sixteenth of the ring, at most WAKEUP_BYTES_MAX
    tls: bool = True  # TLS plaintext through uprobes on libssl, when it is found


def object_path() -> str:
    override = os.environ.get("L7SCOPE_BPF_OBJECT")
    if override:
        return override
    return str(resources.files("l7scope").joinpath("bpf/l7scope.bpf.o"))


def _mount(fstype: str, target: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p]
    if libc.mount(fstype.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        e = ctypes.get_errno()
        if e != errno.EBUSY:
            raise CaptureUnavailable(f"cannot mount {fstype} at {target}: {os.strerror(e)}")


MIN_KERNEL = (5, 17)  # bpf_loop


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a release string such as "6.18.44-fc-v657"; (0, 0) if unreadable."""
    release = release or os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def check_environment() -> None:
    """Raise CaptureUnavailable with one clear line when the agent cannot run; mount what's missing."""
    version = kernel_version()
    if version != (0, 0) and version < MIN_KERNEL:
        raise CaptureUnavailable(
            f"kernel {os.uname().release} is too old: l7scope run needs Linux "
            f"{MIN_KERNEL[0]}.{MIN_KERNEL[1]} or newer (use `l7scope pcap` or --interface instead)")
    if os.geteuid() != 0:
        raise CaptureUnavailable("l7scope run needs root (CAP_BPF, CAP_PERFMON): run it with sudo")
    if not os.path.exists(BTF):
        raise CaptureUnavailable(f"kernel BTF not found at {BTF}: the kernel needs CONFIG_DEBUG_INFO_BTF=y")
    try:
        lockdown = Path("/sys/kernel/security/lockdown").read_text()
        if "[confidentiality]" in lockdown:
            raise CaptureUnavailable("kernel lockdown is 'confidentiality': BPF cannot read memory here")
    except OSError:
        pass
    if not os.path.isdir(os.path.join(TRACEFS, "events")):
        _mount("tracefs", TRACEFS)
        if not os.path.isdir(os.path.join(TRACEFS, "events")):
            raise CaptureUnavailable(f"tracefs is missing at {TRACEFS} and could not be mounted")
    if os.path.isdir(BPFFS) and not os.path.ismount(BPFFS):
        _mount("bpf", BPFFS)
    if not os.path.exists(object_path()):
        raise CaptureUnavailable(f"BPF object {object_path()} is missing: run `make install`")


def _tracepoint_exists(section: str) -> bool:
    # "tracepoint/syscalls/sys_enter_read" -> events/syscalls/sys_enter_read;
    # "raw_tp/tcp_retransmit_skb" -> events/*/tcp_retransmit_skb
    parts = section.split("/")
    if len(parts) == 2 and parts[0] == "raw_tp":
        return bool(glob.glob(os.path.join(TRACEFS, "events", "*", parts[1])))
    if len(parts) != 3 or parts[0] not in ("tracepoint", "tp"):
        return True
    return os.path.isdir(os.path.join(TRACEFS, "events", parts[1], parts[2]))


class KernelCapture:
    """Loads and attaches the programs; poll() returns decoded capture events."""

    def __init__(self, options: KernelOptions, debug_print=None):
        check_environment()
        self.options = options
        self.decoder = WireDecoder()
        self.missing_tracepoints: list[str] = []
        self.tls_library: str | None = None  # the libssl hooked, None when TLS is not traced
        self.tls_problem: str | None = None
        self._obj = None
        self._rb = None
        self._filter_lock = threading.Lock()
        self._pid_keys: set[bytes] = set()  # what pid_filter / comm_filter hold now
        self._comm_keys: set[bytes] = set()
        self._generation = 0
        self._prog_fds: list[tuple[str, int]] = []
        log: list[str] = []
        libbpf.set_print(debug_print or (lambda lvl, text: log.append(text) if lvl <= 1 else None))
        try:
            self._open_and_attach(options)
        except libbpf.LibbpfError as e:
            self.close()
            hint = log[-1].strip() if log else ""
            if e.errno == errno.EPERM:
                raise CaptureUnavailable(f"BPF load refused (EPERM): {hint or e}") from None
            raise CaptureUnavailable(f"{e}{': ' + hint if hint else ''}") from None
        except ValueError as e:  # the initial filter is over capacity
            self.close()
            raise CaptureUnavailable(str(e)) from None

    def _open_and_attach(self, o: KernelOptions) -> None:
        obj = self._obj = libbpf.BpfObject(object_path())
        offset, size = obj.section_variable(".rodata", "cfg")
        if size != CONFIG.size:
            raise CaptureUnavailable(f"BPF object {object_path()} has a {size}-byte l7_config, "
                                     f"this agent writes {CONFIG.size}: run `make install`")
        obj.write_initial_value(".rodata", config_bytes(o, os.getpid()), offset)
        obj.set_max_entries("events", _pow2(o.ringbuf_bytes))
        progs = obj.programs()
        for prog, name, section in progs:
            if not _tracepoint_exists(section):
                obj.set_autoload(prog, False)
                self.missing_tracepoints.append(section)
        obj.load()
        self.set_filter(o.pids, o.comms)
        for prog, name, section in progs:
            if section not in self.missing_tracepoints and not section.startswith("uprobe") \
                    and not section.startswith("uretprobe"):
                obj.attach(prog, name)
        if o.tls:
            self._attach_tls({name: prog for prog, name, _ in progs})
        self._rb = libbpf.RingBuffer(obj.map_fd("events"))
        self._stats_fd = obj.map_fd("stats")
        self._prog_fds = [(name, fd) for name, fd in ((n, libbpf.prog_fd(p)) for p, n, _ in progs)
                          if fd >= 0]
        self._ncpu = libbpf.possible_cpus()

    def _attach_tls(self, programs: dict[str, int]) -> None:
        """Hook libssl when it is there; TLS is then traced, else the reason is kept (not fatal)."""
        library = next((p for p in LIBSSL_CANDIDATES if os.path.exists(p)), None)
        if library is None:
            self.tls_problem = "libssl not found"
            return
        try:
            for func, entry in SSL_FUNCTIONS.items():
                self._obj.attach_uprobe(programs[entry], library, func, retprobe=False)
                self._obj.attach_uprobe(programs[SSL_RETURN_PROGRAM], library, func, retprobe=True)
            for func, entry in SSL_END_FUNCTIONS.items():
                self._obj.attach_uprobe(programs[entry], library, func, retprobe=False)
        except (libbpf.LibbpfError, KeyError) as e:
            self.tls_problem = str(e)
            return
        self.tls_library = library

    def set_filter(self, pids: Collection[int], comms: Collection[str]) -> None:
        """Trace only these processes (by tgid, or by process name: the thread-group leader's,
        first 15 bytes); both empty: every process. Takes effect for the next syscall, without
        reloading the programs. ValueError (one line) when over capacity or not a pid; callable
        from any thread."""
        pid_keys, comm_keys = filter_keys(pids, comms)
        with self._filter_lock:
            if self._obj is None:
                raise ValueError("the kernel capture is closed")
            _sync_keys(self._obj.map_fd("pid_filter"), self._pid_keys, pid_keys)
            _sync_keys(self._obj.map_fd("comm_filter"), self._comm_keys, comm_keys)
            self._generation = (self._generation + 1) & 0xFFFFFFFF
            state = FILTER_STATE.pack(self._generation, 1 if pid_keys else 0,
                                      1 if comm_keys else 0, b"")
            libbpf.map_update(self._obj.map_fd("filter_state"), struct.pack("<I", 0), state)

    def poll(self, timeout_ms: int = 100) -> list:
        return self.decoder.decode_batch(self._rb.poll(timeout_ms))

    def drain(self) -> list:
        return self.decoder.decode_batch(self._rb.drain())

    def tcp_open(self, limit: int = 65536) -> list:
        """The counters so far of the TCP sockets the kernel tracks (open ones, and closed ones
        whose record is on its way) that have counted something, as ``TcpOpen``
        (capture/tcp_summary.py)."""
        obj = self._obj
        raw = libbpf.map_values(obj.map_fd("tcp_health"), 8, obj.value_size("tcp_health"), limit)
        return [o for o in map(decode_open, raw) if o is not None]

    def counters(self) -> dict[str, int]:
        """Kernel-side counters summed over CPUs, plus undecodable records."""
        out = {}
        for i, name in enumerate(STATS):
            out[name] = self._percpu_sum(self._stats_fd, i)
        out["malformed_records"] = self.decoder.malformed
        out.update(self._tcp_health_counters())
        return out

    def _percpu_sum(self, fd: int, index: int) -> int:
        """Entry ``index`` of a per-CPU array of u64 counters, summed over the CPUs."""
        raw = libbpf.map_lookup(fd, struct.pack("<I", index), 8 * self._ncpu)
        return sum(struct.unpack(f"<{self._ncpu}Q", raw)) if raw else 0

    def _tcp_health_counters(self) -> dict[str, int]:
        """The TCP health programs' counters and the runs the kernel skipped (recursion
        misses). A skipped run of a ``tcp_health_*`` program is run by its ``tcp_nested_*``
        twin (bpf/l7scope.bpf.c), which counts it: only what that did not run is missed (a
        skipped run of a twin is one its first program ran)."""
        # the misses first: the kernel counts one before the twin counts its run, so what is
        # read never shows a run as missed that was not
        misses = [(name, libbpf.recursion_misses(fd)) for name, fd in self._prog_fds
                  if not name.startswith("tcp_nested_")]
        fd = self._obj.map_fd("tcp_health_counts")
        counts = [self._percpu_sum(fd, i) for i in range(TCP_COUNT_MAX)]
        caught = counts[TCP_COUNT_NESTED]
        tcp = sum(n for name, n in misses if name.startswith("tcp_health"))
        return {"bpf_runs_missed": max(0, sum(n for _, n in misses) - caught),
                "tcp_health_runs_missed": max(0, tcp - caught),
                "tcp_health_runs_nested": caught,
                "tcp_health_entries_failed": counts[TCP_COUNT_NO_ENTRY]}

    def close(self) -> None:
        if self._rb is not None:
            self._rb.close()
            self._rb = None
        with self._filter_lock:  # a set_filter from another thread finds it open or closed
            if self._obj is not None:
                self._obj.close()
                self._obj = None


def config_bytes(o: KernelOptions, self_tgid: int) -> bytes:
    """struct l7_config for these options, packed by field name."""
    ring = _pow2(o.ringbuf_bytes)
    wakeup = o.wakeup_bytes if o.wakeup_bytes is not None else min(WAKEUP_BYTES_MAX, ring // 16)
    values = {"self_tgid": self_tgid, "max_payload": max(0, o.max_payload), "pad": b"",
              "capture_all": 1 if o.capture_all else 0,
              "max_checks": max(1, min(255, o.max_checks)),
              "wakeup_bytes": max(0, min(wakeup, ring // 2))}
    return CONFIG.pack(*(values[name] for name in CONFIG_FIELDS))


def comm_key(name: str) -> bytes:
    """A process name as comm_filter keys it: the kernel's first 15 bytes, NUL-padded."""
    return name.encode()[:COMM_KEY_LEN - 1].ljust(COMM_KEY_LEN, b"\0")


def filter_keys(pids: Collection[int], comms: Collection[str]) -> tuple[set[bytes], set[bytes]]:
    """The map keys of a filter; ValueError with a one-line reason when it cannot be kept."""
    pid_keys = set()
    for pid in pids:
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 1 << 32:
            raise ValueError(f"pid {pid!r} is not a process id")
        pid_keys.add(struct.pack("<I", pid))
    comm_keys = {comm_key(name) for name in comms}
    if len(pid_keys) > PID_FILTER_MAX:
        raise ValueError(f"{len(pid_keys)} pids to trace: the kernel filter holds at most "
                         f"{PID_FILTER_MAX}")
    if len(comm_keys) > COMM_FILTER_MAX:
        raise ValueError(f"{len(comm_keys)} process names to trace: the kernel filter holds at "
                         f"most {COMM_FILTER_MAX}")
    return pid_keys, comm_keys


def _sync_keys(fd: int, have: set[bytes], want: set[bytes]) -> None:
    """Make the map (whose keys are `have`, kept up to date as it changes) hold `want`:
    the unwanted keys go first, so the map never needs more than its capacity."""
    for key in have - want:
        libbpf.map_delete(fd, key)
        have.discard(key)
    for key in want - have:
        libbpf.map_update(fd, key, b"\x01")
        have.add(key)


def _pow2(n: int) -> int:
    p = 4096
    while p < n:
        p <<= 1
    return p
