"""The ring-buffer reader takes at most one batch of records per poll (capture/libbpf.py): a
reader that fell behind a full ring holds one batch in memory, not the whole ring, and every
record still arrives, in order, over the following polls."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.kernel.conftest import cannot_run

pytestmark = pytest.mark.kernel

REQUESTS = 300
BATCH = 4096
CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for i in range(int(sys.argv[2])):
    s.sendall(b"GET /hello?n=%d HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n" % i)
    got = b""
    while not got.endswith(b"world\\n"):
        got += s.recv(65536)
s.close()
"""


def test_a_full_ring_is_read_one_bounded_batch_at_a_time(python_server):
    from l7scope.capture import libbpf
    from l7scope.capture.events import DataChunk
    from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions

    port, server_pid = python_server
    try:
        capture = KernelCapture(KernelOptions(pids=(server_pid,), tls=False))
    except CaptureUnavailable as e:
        cannot_run(str(e))
    try:
        capture._rb.close()  # the same ring read through a reader with a small batch
        capture._rb = rb = libbpf.RingBuffer(capture._obj.map_fd("events"), batch_bytes=BATCH)
        # every request made before the first poll: the ring holds all of them at once
        subprocess.run([sys.executable, "-c", CLIENT, str(port), str(REQUESTS)], check=True,
                       timeout=60)
        batches, was_cut = [], []
        while True:
            batch = rb.poll(200)
            was_cut.append(rb.cut)
            if not batch and not rb.cut:
                break
            batches.append(batch)
        events = [e for b in batches for e in map(capture.decoder.decode, b) if e is not None]
        counters = capture.counters()
    finally:
        capture.close()
    sizes = [sum(map(len, b)) for b in batches]
    largest_record = max(len(r) for b in batches for r in b)
    assert max(sizes) < BATCH + largest_record, sizes
    # ~300 x 2 records of ~200 bytes: most batches stop at the limit (the last ones may not,
    # when the records of the connection's end arrive while the reader catches up)
    assert len(batches) > 20 and sum(was_cut) > len(batches) // 2, (sizes, was_cut)
    received = [e.data for e in events if isinstance(e, DataChunk) and not e.egress]
    sent = [b"GET /hello?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(REQUESTS)]
    if b"".join(received) != b"".join(sent):  # every request, once, in order: say where not
        first = next((i for i, (a, b) in enumerate(zip(received, sent)) if a != b), None)
        pytest.fail(f"{len(received)} reads for {REQUESTS} requests; first difference at read "
                    f"{first}: {received[first - 1:first + 2] if first else received[-3:]}; "
                    f"counters {counters}; batches {[len(b) for b in batches]}")


def test_the_reader_refuses_a_map_that_is_not_a_ring_buffer():
    from l7scope.capture import libbpf
    from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions

    try:
        capture = KernelCapture(KernelOptions(pids=(1,), tls=False))
    except CaptureUnavailable as e:
        cannot_run(str(e))
    try:
        with pytest.raises(libbpf.LibbpfError,
                           match="creating ring buffer reader: not a BPF ring buffer map"):
            libbpf.RingBuffer(capture._obj.map_fd("stats"))
        with pytest.raises(libbpf.LibbpfError, match="creating ring buffer reader"):
            libbpf.RingBuffer(0)  # not a BPF map at all
    finally:
        capture.close()
