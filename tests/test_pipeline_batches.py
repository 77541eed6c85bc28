"""Batches: the exchanges of one feed() (one ring-buffer batch) reach each batch observer as
one list, in order, before the tick that follows and before an exec or exit record of the same
feed; one failing observer is counted and the others get every record."""
from __future__ import annotations

import pytest

from l7scope import pipeline as P
from l7scope.capture.proc_events import ProcessExec
from l7scope.exchange import WallClock
from l7scope.outputs import FanOut, Sink
from l7scope.pipeline import Pipeline
from tests.test_pipeline_errors import conversation, paths


def three():
    return conversation(1, b"a") + conversation(2, b"b", t0=100) + conversation(3, b"c", t0=200)


def test_one_feed_is_one_batch_in_order():
    batches = []
    p = Pipeline(batch_observers=[batches.append], clock=WallClock(offset_ns=0))
    p.feed(three())
    p.feed(conversation(4, b"d", t0=300))
    assert [paths(b) for b in batches] == [["/a", "/b", "/c"], ["/d"]]
    assert p.exchanges == 4


def test_an_exec_record_hands_over_the_exchanges_built_before_it():
    seen = []
    p = Pipeline(batch_observers=[lambda b: seen.append(paths(b))], clock=WallClock(offset_ns=0))
    p.on_process_event = lambda ev: seen.append(("exec", ev.pid))
    p.feed(conversation(1, b"a") + [ProcessExec(9, 50, "c", "/bin/c")]
           + conversation(2, b"b", t0=100))
    assert seen == [["/a"], ("exec", 9), ["/b"]]


def test_a_long_feed_hands_over_every_max_batch(monkeypatch):
    monkeypatch.setattr(P, "MAX_BATCH", 2)
    batches = []
    p = Pipeline(batch_observers=[batches.append], clock=WallClock(offset_ns=0))
    p.feed(three())
    assert [paths(b) for b in batches] == [["/a", "/b"], ["/c"]]


def test_tick_and_finish_hand_over_what_they_close():
    batches = []
    p = Pipeline(batch_observers=[batches.append], clock=WallClock(offset_ns=0))
    p.feed(conversation(1, b"a")[:2])  # a request, no response yet
    assert batches == []
    p.finish()
    assert [(paths(b), b[0].status) for b in batches] == [(["/a"], None)]


class Failing(Sink):
    name = "failing"

    def __init__(self, log):
        self.log = log
        self.on_exchange = self._one

    def _one(self, ex):
        if ex.path == "/b":
            raise ZeroDivisionError("simulated")
        self.log.append(("failing", ex.path))


class Whole(Sink):
    """A sink working on whole batches (raising once for the batch holding /c)."""
    name = "whole"

    def __init__(self, log):
        self.log = log

    def on_exchanges(self, batch):
        self.log.append(("whole", paths(batch)))
        if "/c" in paths(batch):
            raise KeyError("whole batch")


def test_failing_sinks_are_counted_and_every_sink_gets_every_record():
    log = []
    fan = FanOut([Failing(log), Whole(log)], metrics=None, sampler=None, interval_ns=1)
    p = Pipeline(batch_observers=fan.batch_observers(), clock=WallClock(offset_ns=0))
    p.feed(three())
    assert log == [("failing", "/a"), ("failing", "/c"), ("whole", ["/a", "/b", "/c"])]
    assert p.table.counters["internal_error_output"] == 2  # /b in one sink, the batch in one
    assert list(p.table.internal_errors) == ["output: ZeroDivisionError in _one",
                                             "output: KeyError in on_exchanges"]


def test_a_sink_without_exchanges_is_not_an_observer():
    assert FanOut([Sink()], metrics=None, sampler=None, interval_ns=1).batch_observers() == []


def test_an_os_error_out_of_a_batch_observer_goes_up():
    def full_disk(batch):
        raise OSError(28, "No space left on device")

    p = Pipeline(batch_observers=[full_disk], clock=WallClock(offset_ns=0))
    with pytest.raises(OSError):
        p.feed(conversation(1, b"a"))
