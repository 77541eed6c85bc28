"""Checks made before a capture starts, each answering with one line a user can act on.

Theory of operation
-------------------
The kernel answers a bad request with an errno ("Invalid argument", "Operation not
permitted"); these checks ask the same questions first, from what the kernel documents and
what /proc says about this process, and phrase the answer in the agent's terms (the option to
change, the capability to grant). Each returns None when all is well, else the line; the
caller decides (the CLI prints it and exits 2). Nothing here opens a socket or loads BPF.

Ring buffer (``--ringbuf-mb``). kernel/bpf/ringbuf.c, ringbuf_map_alloc(): ``max_entries``
must be a power of two and a multiple of the page size (else EINVAL); it is a u32, so the
largest is 2^31 bytes (2048 MiB; the 64 GiB RINGBUF_MAX_DATA_SZ is never reached). The area
is allocated at load time from the kernel's memory (charged to the agent's memory cgroup):
asking for more than the host has available fails with ENOMEM. The agent rounds the MiB
given up to a power of two (``ringbuf_bytes``) and says so when it did.

Interface capture (``--interface``). An AF_PACKET socket needs CAP_NET_RAW in the
effective set (``CapEff`` in /proc/self/status, bit 13), whatever the uid: root with the
capability dropped is refused as well. The interface must exist (/sys/class/net/NAME).
"""
from __future__ import annotations

import os

MIB = 1 << 20
MAX_RINGBUF_MB = 2048  # u32 max_entries, a power of two: 2^31 bytes
CAP_NET_RAW = 13


def ringbuf_bytes(mb: int, page_size: int | None = None) -> int:
    """The ring buffer size the kernel accepts for ``mb`` MiB: the next power of two, at
    least one page."""
    page = page_size or os.sysconf("SC_PAGE_SIZE")
    size = max(page, mb * MIB)
    return 1 << (size - 1).bit_length()


def ringbuf_problem(mb: int, mem_available: int | None = None) -> str | None:
    """None when ``--ringbuf-mb mb`` can be loaded, else one line saying why not.

    ``mem_available`` (bytes) defaults to /proc/meminfo's MemAvailable."""
    if not 1 <= mb <= MAX_RINGBUF_MB:
        return (f"--ringbuf-mb {mb}: the kernel's ring buffer is 1 to {MAX_RINGBUF_MB} MiB "
                "(a power of two; 16 is the default)")
    size = ringbuf_bytes(mb)
    avail = meminfo_available() if mem_available is None else mem_available
    if avail is not None and size > avail // 2:
        return (f"--ringbuf-mb {mb}: a {size // MIB} MiB ring buffer is more than half the "
                f"{avail // MIB} MiB of memory this host has available; use a smaller size")
    return None


def ringbuf_note(mb: int) -> str | None:
    """A line when ``mb`` is rounded up (the kernel takes powers of two), else None."""
    size = ringbuf_bytes(mb)
    if size == mb * MIB:
        return None
    return f"--ringbuf-mb {mb}: rounded up to {size // MIB} MiB (a power of two)"


def ringbuf_load_error(err: int, mb: int) -> str | None:
    """The line for an errno met while loading the ring buffer map, None when not its kind."""
    import errno

    if err == errno.ENOMEM:
        return (f"--ringbuf-mb {mb}: the kernel could not allocate a {ringbuf_bytes(mb) // MIB}"
                " MiB ring buffer (out of memory, or the memory cgroup's limit); use a smaller "
                "size")
    if err in (errno.EINVAL, errno.E2BIG):
        return (f"--ringbuf-mb {mb}: the kernel refused a {ringbuf_bytes(mb) // MIB} MiB ring "
                f"buffer ({os.strerror(err)})")
    return None


def meminfo_available(text: str | None = None) -> int | None:
    """MemAvailable of /proc/meminfo (or of ``text``) in bytes; None when unknown."""
    if text is None:
        try:
            with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
                text = f.read(16384)
        except OSError:
            return None
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == "MemAvailable":
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB" and parts[0].isascii() and parts[0].isdigit():
                return int(parts[0]) * 1024
            return None
    return None


def effective_capabilities(status_text: str | None = None) -> int | None:
    """CapEff of /proc/self/status (or of ``status_text``) as a bit mask; None when unknown."""
    if status_text is None:
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as f:
                status_text = f.read(16384)
        except OSError:
            return None
    for line in status_text.splitlines():
        name, _, rest = line.partition(":")
        if name == "CapEff":
            value = rest.strip()
            if value and len(value) <= 16 and all(c in "0123456789abcdefABCDEF" for c in value):
                return int(value, 16)
            return None
    return None


def interface_problem(interface: str, status_text: str | None = None,
                      sys_class_net: str = "/sys/class/net") -> str | None:
    """None when capturing on ``interface`` can start, else one line saying why not."""
    caps = effective_capabilities(status_text)
    if caps is not None and not caps >> CAP_NET_RAW & 1:
        return (f"capturing on {interface} needs the CAP_NET_RAW capability, which this process "
                "does not have: run it as root (sudo) or grant it (systemd: "
                "AmbientCapabilities=CAP_NET_RAW)")
    if "/" in interface or interface in ("", ".", "..") or \
            not os.path.isdir(os.path.join(sys_class_net, interface)):
        names = sorted(os.listdir(sys_class_net)) if os.path.isdir(sys_class_net) else []
        listed = f" (interfaces here: {', '.join(names[:12])})" if names else ""
        return f"no network interface named {interface!r}{listed}"
    return None
