"""A bounded queue with a background worker that sends batches, retrying with backoff.

Theory of operation
-------------------
Exporters must never slow the capture path: ``put`` never waits. When the queue holds
``queue_size`` items the new item is dropped and counted (``dropped_queue_full``).

One daemon worker thread takes up to ``batch_size`` items (waiting at most
``flush_interval_s`` for a batch to fill) and calls ``send(batch)``. ``send`` raises on
failure; the worker then retries (unless it raised PermanentSendError) the same batch up to
``max_retries`` times, sleeping
``backoff_initial_s * 2**attempt`` (capped by ``backoff_max_s``) between tries, and finally
drops the batch, counting its items (``dropped_send_failed``). A slow receiver only delays the
worker (each send is bounded by the exporter's own timeout) while the queue absorbs, then
drops, new items.

``stop(timeout_s)`` asks the worker to flush what is queued and waits at most ``timeout_s``;
from then on retries stop (a failing send is not retried while stopping). When the wait ends,
whatever is still queued and the batch still inside ``send`` (a receiver that hangs) are
counted ``dropped_at_stop``; that batch is then abandoned: should its ``send`` return later,
it is not counted again. An item offered after stop is refused and counted
``dropped_at_stop`` too.

Every item offered ends in exactly one place, so at any time::

    offered == sent_items + dropped_queue_full + dropped_send_failed + dropped_at_stop
               + pending

with ``pending`` (queued plus in flight) 0 once ``stop`` returned. ``queued`` counts the
items accepted by ``put``. Counters are read with ``stats()``.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PermanentSendError(Exception):
    """A send failure that retrying cannot fix (e.g. the receiver rejected the payload)."""


class BatchingQueue(Generic[T]):
    def __init__(self, send: Callable[[list[T]], None], *, name: str = "exporter",
                 queue_size: int = 1000, batch_size: int = 100, flush_interval_s: float = 1.0,
                 max_retries: int = 3, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 10.0, on_error: Callable[[BaseException], None] | None = None):
        self._send = send
        self._name = name
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_retries = max_retries
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._on_error = on_error
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_flight: list[T] | None = None  # the batch inside send; None when none
        self.last_error: str | None = None
        self._counters = {"offered": 0, "queued": 0, "sent_items": 0, "sent_batches": 0,
                          "send_errors": 0,
                          "retries": 0, "dropped_queue_full": 0, "dropped_send_failed": 0,
                          "dropped_at_stop": 0}

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"l7scope-{self._name}",
                                        daemon=True)
        self._thread.start()

    def put(self, item: T) -> bool:
        """Enqueue without waiting; False (and counted) when the queue is full or stopped."""
        with self._cond:
            self._counters["offered"] += 1
            if self._stopping.is_set():
                self._counters["dropped_at_stop"] += 1
                return False
            if len(self._items) >= self._queue_size:
                self._counters["dropped_queue_full"] += 1
                return False
            self._items.append(item)
            self._counters["queued"] += 1
            if len(self._items) >= self._batch_size:
                self._cond.notify()
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued within ``timeout_s``; count the rest, and a batch still in
        flight, as dropped_at_stop (that batch is abandoned: not counted again later)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._cond:
            left = len(self._items) + len(self._in_flight or ())
            self._counters["dropped_at_stop"] += left
            self._items.clear()
            self._in_flight = None

    def stats(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counters,
                        pending=len(self._items) + len(self._in_flight or ()))

    # --- worker ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._deliver(batch)

    def _next_batch(self) -> list[T] | None:
        """Up to batch_size items; None when stopping and empty."""
        deadline = time.monotonic() + self._flush_interval_s
        with self._cond:
            while len(self._items) < self._batch_size and not self._stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if not self._items:
                return None if self._stopping.is_set() else []
            n = min(self._batch_size, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self._in_flight = batch
            return batch

    def _deliver(self, batch: list[T]) -> None:
        if not batch:
            return
        attempt = 0
        while True:
            try:
                self._send(batch)
            except Exception as e:  # any transport failure; the worker must survive it
                self._record_failure(e)
                if (attempt >= self._max_retries or self._stopping.is_set()
                        or isinstance(e, PermanentSendError)):
                    self._settle(batch, "dropped_send_failed")
                    return
                self._count(retries=1)
                delay = min(self._backoff_max_s, self._backoff_initial_s * 2 ** attempt)
                attempt += 1
                if self._stopping.wait(delay):
                    self._settle(batch, "dropped_send_failed")
                    return
                continue
            self._settle(batch, "sent_items", sent_batches=1)
            return

    def _settle(self, batch: list[T], outcome: str, **more: int) -> None:
        """Count ``batch`` under ``outcome`` unless stop already counted it (abandoned)."""
        with self._cond:
            if self._in_flight is not batch:
                return
            self._in_flight = None
            self._counters[outcome] += len(batch)
            for key, n in more.items():
                self._counters[key] += n

    def _record_failure(self, error: Exception) -> None:
        self._count(send_errors=1)
        self.last_error = f"{type(error).__name__}: {error}"[:300]
        if self._on_error is not None:
            self._on_error(error)

    def _count(self, **deltas: int) -> None:
        with self._cond:
            for key, n in deltas.items():
                self._counters[key] += n


def http_post(url: str, body: bytes, content_type: str, timeout_s: float) -> int:
    """POST ``body``; the HTTP status on 2xx. Raises on transport errors and non-2xx answers
    (4xx other than 408/429 as PermanentSendError: the payload itself was refused)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read(64 * 1024)
            return response.status
    except urllib.error.HTTPError as e:
        if 400 <= e.code < 500 and e.code not in (408, 429):
            raise PermanentSendError(f"HTTP {e.code} from {url}") from None
        raise


def put_with_context(queue: BatchingQueue, sampled, skipped: dict[str, int], accepts) -> None:
    """Queue the sampled exchanges whose trace context this exporter carries (``accepts``);
    count the others as skipped_no_context / skipped_unsupported_context."""
    for s in sampled:
        trace = s.exchange.trace
        if trace is None:
            skipped["skipped_no_context"] += 1
        elif not accepts(trace):
            skipped["skipped_unsupported_context"] += 1
        else:
            queue.put(s)
