"""A thin ctypes binding to the system libbpf (libbpf.so.1), just the calls the agent needs.

Why ctypes on the system library: libbpf is the reference loader (CO-RE relocation, BTF,
ring buffers) and Debian ships it; ctypes needs no compiler and no extra Python package at run
time, so `make install` stays small and the agent runs wherever libbpf1 is installed. Each call
here is a plain function; errors come back as LibbpfError with errno text.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

_PRINT_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class LibbpfError(OSError):
    pass


BTF_KIND_DATASEC = 15  # include/uapi/linux/btf.h


class UprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts of libbpf 1.1 (sz, ref_ctr_offset, bpf_cookie, retprobe, func_name)."""

    _fields_ = [("sz", ctypes.c_size_t), ("ref_ctr_offset", ctypes.c_size_t),
                ("bpf_cookie", ctypes.c_uint64), ("retprobe", ctypes.c_bool),
                ("func_name", ctypes.c_char_p)]


def _load_library() -> ctypes.CDLL:
    for name in ("libbpf.so.1", ctypes.util.find_library("bpf") or ""):
        if not name:
            continue
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
    raise LibbpfError(errno.ENOENT, "libbpf.so.1 not found (install Debian package libbpf1)")


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load_library()
        _declare(_lib)
    return _lib


def _declare(L: ctypes.CDLL) -> None:
    vp, cp, i, u32, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
    sigs = {
        "bpf_object__open_file": (vp, [cp, vp]),
        "bpf_object__load": (i, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_map_by_name": (vp, [vp, cp]),
        "bpf_object__next_program": (vp, [vp, vp]),
        "bpf_object__next_map": (vp, [vp, vp]),
        "bpf_program__name": (cp, [vp]),
        "bpf_program__section_name": (cp, [vp]),
        "bpf_program__set_autoload": (i, [vp, ctypes.c_bool]),
        "bpf_program__fd": (i, [vp]),
        "bpf_program__attach": (vp, [vp]),
        "bpf_program__attach_uprobe_opts": (vp, [vp, ctypes.c_int, cp, sz, vp]),
        "bpf_link__destroy": (i, [vp]),
        "bpf_map__fd": (i, [vp]),
        "bpf_map__name": (cp, [vp]),
        "bpf_map__set_max_entries": (i, [vp, u32]),
        "bpf_map__value_size": (u32, [vp]),
        "bpf_map__initial_value": (vp, [vp, ctypes.POINTER(sz)]),
        "bpf_map_lookup_elem": (i, [i, vp, vp]),
        "bpf_map_update_elem": (i, [i, vp, vp, ctypes.c_uint64]),
        "bpf_map_delete_elem": (i, [i, vp]),
        "bpf_map_get_next_key": (i, [i, vp, vp]),
        "bpf_map_lookup_batch": (i, [i, vp, vp, vp, vp, ctypes.POINTER(u32), vp]),
        "libbpf_set_print": (vp, [vp]),
        "libbpf_num_possible_cpus": (i, []),
        "bpf_object__btf": (vp, [vp]),
        "btf__find_by_name_kind": (i, [vp, cp, u32]),
        "btf__type_by_id": (vp, [vp, u32]),
        "btf__name_by_offset": (cp, [vp, u32]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(L, name)
        fn.restype = res
        fn.argtypes = args


def _err(what: str, code: int | None = None) -> LibbpfError:
    code = abs(code) if code else ctypes.get_errno() or errno.EINVAL
    return LibbpfError(code, f"{what}: {os.strerror(code)}")


_print_keep = None


def set_print(callback) -> None:
    """Route libbpf's messages: callback(level:int, text:str), or None to silence them.

    libbpf passes a printf format and a va_list; we format with the C library's vsnprintf.
    """
    global _print_keep
    libc = ctypes.CDLL(None)
    vsnprintf = libc.vsnprintf
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def _cb(level, fmt, args):
        if callback is not None:
            buf = ctypes.create_string_buffer(2048)
            vsnprintf(buf, len(buf), fmt, args)
            callback(level, buf.value.decode(errors="replace"))
        return 0

    _print_keep = _PRINT_CB(_cb)
    lib().libbpf_set_print(ctypes.cast(_print_keep, ctypes.c_void_p))


class BpfObject:
    """open -> configure (rodata, map sizes, autoload) -> load -> attach -> close."""

    def __init__(self, path: str):
        L = lib()
        self._obj = L.bpf_object__open_file(path.encode(), None)
        if not self._obj:
            raise _err(f"opening {path}")
        self._links: list[int] = []

    def programs(self) -> list[tuple[int, str, str]]:
        L, out, prog = lib(), [], None
        while True:
            prog = L.bpf_object__next_program(self._obj, prog)
            if not prog:
                return out
            out.append((prog, L.bpf_program__name(prog).decode(),
                        L.bpf_program__section_name(prog).decode()))

    def map(self, name: str) -> int:
        L, m = lib(), None
        found = L.bpf_object__find_map_by_name(self._obj, name.encode())
        if found:
            return found
        while True:  # internal maps carry an object-name prefix ("l7scope_.rodata")
            m = L.bpf_object__next_map(self._obj, m)
            if not m:
                raise LibbpfError(errno.ENOENT, f"map {name} not in object")
            if L.bpf_map__name(m).decode().endswith(name):
                return m

    def set_max_entries(self, map_name: str, n: int) -> None:
        rc = lib().bpf_map__set_max_entries(self.map(map_name), n)
        if rc:
            raise _err(f"sizing map {map_name}", rc)

    def write_initial_value(self, map_name: str, data: bytes, offset: int = 0) -> None:
        size = ctypes.c_size_t(0)
        ptr = lib().bpf_map__initial_value(self.map(map_name), ctypes.byref(size))
        if not ptr or offset + len(data) > size.value:
            raise LibbpfError(errno.EINVAL, f"{map_name}: initial value too small")
        ctypes.memmove(ptr + offset, data, len(data))

    def set_autoload(self, prog: int, on: bool) -> None:
        lib().bpf_program__set_autoload(prog, on)

    def load(self) -> None:
        rc = lib().bpf_object__load(self._obj)
        if rc:
            raise _err("loading BPF programs", rc)

    def attach(self, prog: int, name: str) -> None:
        link = lib().bpf_program__attach(prog)
        if not link:
            raise _err(f"attaching {name}")
        self._links.append(link)

    def attach_uprobe(self, prog: int, binary: str, func: str, retprobe: bool) -> None:
        """Attach to `func` of the shared library `binary` in every process (pid -1)."""
        opts = UprobeOpts(ctypes.sizeof(UprobeOpts), 0, 0, retprobe, func.encode())
        link = lib().bpf_program__attach_uprobe_opts(prog, -1, binary.encode(), 0,
                                                     ctypes.byref(opts))
        if not link:
            raise _err(f"attaching {'uretprobe' if retprobe else 'uprobe'} {binary}:{func}")
        self._links.append(link)

    def section_variable(self, section: str, name: str) -> tuple[int, int]:
        """(offset, size) of global variable `name` in data section `section` (".rodata"),
        from the object's BTF: where a knob lives in the map's initial value."""
        L = lib()
        btf = L.bpf_object__btf(self._obj)
        sec_id = L.btf__find_by_name_kind(btf, section.encode(), BTF_KIND_DATASEC) if btf else -1
        if sec_id < 0:
            raise LibbpfError(errno.ENOENT, f"no BTF for section {section}")
        sec = L.btf__type_by_id(btf, sec_id)
        _name_off, info, _size = (ctypes.c_uint32 * 3).from_address(sec)
        for i in range(info & 0xFFFF):  # struct btf_var_secinfo {type, offset, size} follow
            var_type, offset, size = (ctypes.c_uint32 * 3).from_address(sec + 12 + 12 * i)
            var = L.btf__type_by_id(btf, var_type)
            if var and L.btf__name_by_offset(btf, ctypes.c_uint32.from_address(var).value) \
                    == name.encode():
                return offset, size
        raise LibbpfError(errno.ENOENT, f"variable {name} not in {section}")

    def map_fd(self, name: str) -> int:
        return lib().bpf_map__fd(self.map(name))

    def value_size(self, name: str) -> int:
        return lib().bpf_map__value_size(self.map(name))

    def close(self) -> None:
        L = lib()
        for link in self._links:
            L.bpf_link__destroy(link)
        self._links.clear()
        if self._obj:
            L.bpf_object__close(self._obj)
            self._obj = None


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    if lib().bpf_map_lookup_elem(fd, k, v):
        return None
    return v.raw


def prog_fd(prog: int) -> int:
    """A loaded program's fd (negative when it was not loaded)."""
    return lib().bpf_program__fd(prog)


def recursion_misses(fd: int) -> int:
    """Runs of the program the kernel skipped because a BPF program was already running on that
    CPU (a tracepoint hit in an interrupt on top of one): /proc/self/fdinfo, 0 when not shown."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("recursion_misses:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def map_values(fd: int, key_size: int, value_size: int, limit: int, chunk: int = 1024):
    """At most ``limit`` values of a hash map, ``chunk`` entries a syscall (the batch lookup);
    key by key on a kernel without it."""
    L, n = lib(), 0
    keys = ctypes.create_string_buffer(key_size * chunk)
    values = ctypes.create_string_buffer(value_size * chunk)
    token_in, token_out = ctypes.create_string_buffer(8), ctypes.create_string_buffer(8)
    first = True
    while n < limit:
        count = ctypes.c_uint32(min(chunk, limit - n))
        rc = L.bpf_map_lookup_batch(fd, None if first else token_in, token_out, keys, values,
                                    ctypes.byref(count), None)
        err = ctypes.get_errno() if rc else 0
        raw = values.raw
        for i in range(count.value):
            yield raw[i * value_size:(i + 1) * value_size]
        n += count.value
        if rc:
            if first and count.value == 0 and rc != -errno.ENOENT and err != errno.ENOENT:
                yield from _values_by_key(L, fd, key_size, value_size, limit)
            return
        first = False
        ctypes.memmove(token_in, token_out, 8)


def _values_by_key(L, fd: int, key_size: int, value_size: int, limit: int):
    n = 0
    key, prev = ctypes.create_string_buffer(key_size), ctypes.create_string_buffer(key_size)
    v = ctypes.create_string_buffer(value_size)
    first = True
    while n < limit and not L.bpf_map_get_next_key(fd, None if first else prev, key):
        first, n = False, n + 1
        if not L.bpf_map_lookup_elem(fd, key, v):
            yield v.raw
        ctypes.memmove(prev, key, key_size)


def map_update(fd: int, key: bytes, value: bytes) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    if lib().bpf_map_update_elem(fd, k, v, 0):
        raise _err("updating map")


def map_delete(fd: int, key: bytes) -> bool:
    """Remove key; False when it was not there."""
    k = ctypes.create_string_buffer(key, len(key))
    rc = lib().bpf_map_delete_elem(fd, k)  # libbpf 1.x: -errno (errno set too)
    if rc == -errno.ENOENT:
        return False
    if rc:
        raise _err("deleting from map", rc)
    return True


def possible_cpus() -> int:
    n = lib().libbpf_num_possible_cpus()
    return n if n > 0 else os.cpu_count() or 1


BATCH_BYTES = 1 << 20  # record bytes taken per poll: what one batch can hold in memory


class RingBuffer:
    """Reads records in batches: poll() returns the raw records that arrived (copied).

    The ring's pages are read directly by compiled code (dataplane/_ringbufmodule.c): no
    call back into Python per record. A batch stops at ``batch_bytes`` of records, so a
    reader that fell behind a full ring holds one batch in memory, never the whole ring; the
    next poll then reads on without waiting, as the producer's wakeup for those records was
    already spent."""

    def __init__(self, map_fd: int, batch_bytes: int = BATCH_BYTES):
        from l7scope.dataplane._ringbuf import Reader
        self.batch_bytes = batch_bytes
        try:
            self._rb = Reader(map_fd)
        except (OSError, ValueError) as e:
            raise LibbpfError(getattr(e, "errno", None) or errno.EINVAL,
                              f"creating ring buffer reader: {e}") from None

    @property
    def cut(self) -> bool:
        """The last batch stopped at the limit: records are still waiting."""
        return bool(self._rb.cut)

    def poll(self, timeout_ms: int) -> list[bytes]:
        """Records that arrived, at most one batch. The producer may hold back its wakeup until
        a batch is pending, so what is there when the wait times out is read too."""
        rb = self._rb
        if not rb.cut:
            rb.wait(timeout_ms)
        return rb.read(self.batch_bytes)

    def drain(self) -> list[bytes]:
        """Everything still in the ring (at stop), batch after batch."""
        rb = self._rb
        out = rb.read(self.batch_bytes)
        while rb.cut:
            out += rb.read(self.batch_bytes)
        return out

    def close(self) -> None:
        self._rb.close()
