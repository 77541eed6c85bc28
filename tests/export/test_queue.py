"""BatchingQueue: batching, bounded queue, retries with backoff, stop flushing."""
from __future__ import annotations

import threading

from l7scope.export.queue import BatchingQueue, PermanentSendError, http_post
from tests.export import HttpReceiver, free_port, wait_for

_DROPS = ("dropped_queue_full", "dropped_send_failed", "dropped_at_stop")


def _reconciles(s: dict) -> bool:
    """Every offered item is sent, dropped for one reason, or still pending."""
    return s["offered"] == s["sent_items"] + sum(s[k] for k in _DROPS) + s["pending"]


def test_batches_are_sent_in_order_and_counted():
    sent: list[list[int]] = []
    q = BatchingQueue(sent.append, batch_size=3, flush_interval_s=0.01)
    q.start()
    for i in range(7):
        assert q.put(i)
    q.stop(5)
    assert [x for batch in sent for x in batch] == list(range(7))
    assert all(len(b) <= 3 for b in sent)
    s = q.stats()
    assert (s["queued"], s["sent_items"], s["dropped_queue_full"], s["pending"]) == (7, 7, 0, 0)


def test_put_never_waits_while_send_is_stuck_and_queue_is_bounded():
    release, entered = threading.Event(), threading.Event()

    def stuck_send(batch):
        entered.set()
        release.wait(30)

    q = BatchingQueue(stuck_send, queue_size=5, batch_size=1, flush_interval_s=0.01)
    q.start()
    q.put("first")
    wait_for(entered.is_set)  # the worker holds "first" inside send
    results = [q.put(i) for i in range(10)]
    assert results == [True] * 5 + [False] * 5
    s = q.stats()
    assert (s["dropped_queue_full"], s["pending"]) == (5, 6)
    release.set()
    q.stop(5)
    assert q.stats()["sent_items"] == 6


def test_failed_send_is_retried_then_dropped_and_counted():
    calls = []

    def failing(batch):
        calls.append(list(batch))
        raise ConnectionRefusedError("refused")

    q = BatchingQueue(failing, batch_size=10, flush_interval_s=0.01, max_retries=2,
                      backoff_initial_s=0.001)
    q.start()
    for i in range(3):
        q.put(i)
    wait_for(lambda: q.stats()["dropped_send_failed"] == 3)
    q.stop(5)
    s = q.stats()
    assert calls == [[0, 1, 2]] * 3
    assert (s["send_errors"], s["retries"], s["sent_items"]) == (3, 2, 0)
    assert q.last_error == "ConnectionRefusedError: refused"


def test_transient_failure_then_success():
    outcomes = [OSError("reset"), None]
    sent = []

    def flaky(batch):
        err = outcomes.pop(0)
        if err:
            raise err
        sent.extend(batch)

    q = BatchingQueue(flaky, flush_interval_s=0.01, backoff_initial_s=0.001)
    q.start()
    q.put("x")
    wait_for(lambda: q.stats()["sent_items"] == 1)
    q.stop(5)
    assert sent == ["x"] and q.stats()["retries"] == 1


def test_permanent_error_is_not_retried():
    def rejected(batch):
        raise PermanentSendError("HTTP 400")

    q = BatchingQueue(rejected, flush_interval_s=0.01, max_retries=5, backoff_initial_s=0.001)
    q.start()
    q.put("x")
    wait_for(lambda: q.stats()["dropped_send_failed"] == 1)
    q.stop(5)
    assert (q.stats()["retries"], q.stats()["send_errors"]) == (0, 1)


def test_stop_gives_up_on_a_stuck_send_and_counts_what_was_left():
    release = threading.Event()
    entered = threading.Event()
    done = threading.Event()

    def stuck(batch):
        entered.set()
        release.wait(30)
        done.set()

    q = BatchingQueue(stuck, batch_size=1, flush_interval_s=0.01)
    q.start()
    q.put(1)
    wait_for(entered.is_set)
    q.put(2)
    q.put(3)
    q.stop(0.05)
    s = q.stats()
    assert (s["dropped_at_stop"], s["sent_items"], s["pending"]) == (3, 0, 0)  # 1 in flight
    assert q.put(4) is False  # stopped: refused and counted
    assert q.stats()["dropped_at_stop"] == 4 and q.stats()["dropped_queue_full"] == 0
    release.set()
    wait_for(done.is_set)
    q._thread.join(5)
    assert q.stats()["sent_items"] == 0  # the abandoned batch is not counted twice
    assert _reconciles(q.stats())


def _json_sender(url: str):
    return lambda batch: http_post(url, repr(batch).encode(), "text/plain", timeout_s=20)


def test_batch_in_flight_to_a_hanging_receiver_is_counted_at_stop():
    receiver = HttpReceiver()
    receiver.hold.clear()  # takes the request, never answers until released
    try:
        q = BatchingQueue(_json_sender(f"http://127.0.0.1:{receiver.port}/"), batch_size=2,
                          flush_interval_s=0.01)
        q.start()
        for i in range(5):
            q.put(i)
        assert receiver.arrived.wait(10)
        q.stop(0.2)
        s = q.stats()
        assert (s["offered"], s["sent_items"], s["dropped_at_stop"], s["pending"]) == (5, 0, 5, 0)
        receiver.hold.set()  # the receiver answers late: still not counted as sent
        q._thread.join(10)
        assert not q._thread.is_alive()
        s = q.stats()
        assert (s["sent_items"], s["dropped_at_stop"], s["dropped_send_failed"]) == (0, 5, 0)
        assert _reconciles(s)
    finally:
        receiver.close()


def test_receiver_down_at_stop_ends_every_item_as_failed():
    q = BatchingQueue(_json_sender(f"http://127.0.0.1:{free_port()}/"), batch_size=2,
                      flush_interval_s=0.01, max_retries=5, backoff_initial_s=30)
    q.start()
    for i in range(4):
        q.put(i)
    wait_for(lambda: q.stats()["send_errors"] >= 1)  # the worker waits 30 s to retry
    q.stop(5)  # cancels that retry; the rest is tried once each while stopping
    s = q.stats()
    assert (s["offered"], s["sent_items"], s["dropped_send_failed"], s["pending"]) == (4, 0, 4, 0)
    assert _reconciles(s)


def test_totals_reconcile_while_running_and_after_a_clean_stop():
    receiver = HttpReceiver()
    try:
        q = BatchingQueue(_json_sender(f"http://127.0.0.1:{receiver.port}/"), batch_size=3,
                          queue_size=10, flush_interval_s=0.01)
        q.start()
        for i in range(25):
            q.put(i)
            assert _reconciles(q.stats())
        q.stop(10)
        s = q.stats()
        assert s["pending"] == 0 and s["offered"] == 25 and _reconciles(s)
        assert s["sent_items"] == sum(len(eval(body)) for _, _, body in receiver.posts)
    finally:
        receiver.close()
