"""Outputs: a fan-out of sinks with one small interface.

Theory of operation
-------------------
Everything downstream of an Exchange record is a ``Sink``. The pipeline hands each batch of
Exchanges (those of one ring-buffer batch, in lists of at most pipeline.MAX_BATCH) to
``FanOut.batch_observers()``: each sink's ``on_exchanges(batch)`` once, sink after sink. The
base ``on_exchanges`` gives the sink's ``on_exchange`` every record (``each``): a record it
fails on is returned as an exception, counted by the pipeline as ``internal_error_output``,
and the sink still gets the rest; the other sinks get every record whatever one sink does. A sink that works on whole batches (JSON
Lines, metrics, sampling: compiled code over the batch) overrides ``on_exchanges``.
The run loop calls ``FanOut.tick(now_wall_ns, counters_fn)`` every turn; once per metrics
interval the fan-out takes the interval's pair metrics (MetricsAggregator) and top-N samples
(Sampler) and gives them, with a counters snapshot, to every sink's ``on_interval``. Nothing
here reaches back into the pipeline: what a sink needs travels on the Exchange (``peer_name``)
or in the snapshot.

A sink (override what it uses; the base does nothing):

    on_exchange(ex)                              every Exchange, on the capture thread; None
                                                 (the default) when the sink takes none
    on_exchanges(batch) -> exceptions or None    a list of Exchanges in order, shared by the
                                                 sinks: read, never changed (the default:
                                                 ``on_exchange`` for each, ``each``); OSError
                                                 goes up, anything else is the sink's bug
    on_tick(now_wall_ns, counters_fn)            every loop turn (flush, redraw); counters_fn()
                                                 only when really needed, it is not free
    on_interval(snapshot, top_n, counters, now_wall_ns)
                                                 the interval's PairMetrics list, {pair: TopN},
                                                 and a counters dict (or None)
    stop()                                       finish background work (exporters drain, the
                                                 store writes its queue)
    counters() -> dict                           the sink's own counters, prefixed by its name
    close(aborted)                               release files and sockets; ``aborted`` when
                                                 the run failed (a partial file may be removed)

Stop, in order (``finish``): the last interval; ``stop()`` of every sink; the final counters
(which so include what the stop sent or dropped) as one more ``on_interval((), {}, final,
now)``; then ``close(False)``. A failed run skips straight to ``close(True)``.
"""
from __future__ import annotations

from collections.abc import Callable


def each(observe: Callable, batch: list) -> list[Exception]:
    """``observe`` called for every record of ``batch``; the exceptions (not OSError: a full
    disk or a closed pipe goes up at once) of the records it failed on, in order."""
    errors = []
    for ex in batch:
        try:
            observe(ex)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - one record failing spares the rest
            errors.append(exc)
    return errors


class Sink:
    """One output; see the module docstring. Subclasses set ``name``."""

    name = "sink"
    on_exchange: Callable | None = None

    def on_exchanges(self, batch: list) -> list[Exception] | None:
        return each(self.on_exchange, batch)

    def takes_exchanges(self) -> bool:
        return self.on_exchange is not None or type(self).on_exchanges is not Sink.on_exchanges

    def on_tick(self, now_wall_ns: int, counters_fn: Callable[[], dict]) -> None:
        pass

    def on_interval(self, snapshot: list, top_n: dict, counters: dict | None,
                    now_wall_ns: int) -> None:
        pass

    def on_tcp_metrics(self, records: list[dict]) -> None:
        """The interval's ``tcp_metrics`` records (docs/metrics.md), when the source has them."""

    def stop(self) -> None:
        pass

    def counters(self) -> dict:
        return {}

    def close(self, aborted: bool = False) -> None:
        pass


class FanOut:
    """The sinks of one run, the interval clock, and the order of stop."""

    def __init__(self, sinks, *, metrics, sampler, interval_ns: int,
                 on_error: Callable[[BaseException], None] | None = None):
        self.sinks: list[Sink] = list(sinks)
        self.metrics = metrics
        self.sampler = sampler
        self.interval_ns = interval_ns
        self.interval_start: int | None = None
        self.on_error = on_error
        self.tcp = None  # TCP health per pair (tcpmetrics.TcpMetrics) where the source gives it
        self._closed = False

    def batch_observers(self) -> list[Callable]:
        """The pipeline's batch observers: each exchange-taking sink's ``on_exchanges``."""
        return [s.on_exchanges for s in self.sinks if s.takes_exchanges()]

    def tick(self, now_wall_ns: int, counters_fn: Callable[[], dict]) -> None:
        if self.interval_start is None:
            self.interval_start = now_wall_ns
        if now_wall_ns - self.interval_start >= self.interval_ns:
            self.interval(now_wall_ns, counters_fn())
        self._each("on_tick", now_wall_ns, counters_fn)

    def interval(self, now_wall_ns: int, counters: dict | None) -> None:
        """The interval's pair metrics and top-N samples (and counters) to every sink."""
        start = self.interval_start if self.interval_start is not None else now_wall_ns
        snapshot = self.metrics.snapshot(start, now_wall_ns)
        top = self.sampler.drain()
        tcp = self.tcp.snapshot(start, now_wall_ns) if self.tcp is not None else []
        self.interval_start = now_wall_ns
        if tcp:
            self._each("on_tcp_metrics", tcp)
        self._each("on_interval", snapshot, top, counters, now_wall_ns)

    def finish(self, now_wall_ns: int, counters_fn: Callable[[], dict]) -> dict:
        """Last interval, every sink stopped, the final counters out; returns them."""
        self.interval(now_wall_ns, None)
        self._each("stop")
        final = counters_fn()
        self._each("on_interval", [], {}, final, now_wall_ns)
        return final

    def counters(self) -> dict:
        out = {f"sampler_{k}": v for k, v in self.sampler.counters.items()}
        out["metrics_overflow_records"] = self.metrics.overflow_records
        bad = getattr(self.metrics, "bad_records", 0)
        if bad:  # records the aggregator could not read (the pipeline makes none): once seen
            out["metrics_bad_records"] = bad
        if self.tcp is not None:
            out.update(self.tcp.counters)
        for s in self.sinks:
            try:
                for k, v in s.counters().items():  # two sinks of a kind: their sums
                    out[k] = out[k] + v if k in out and type(v) is int else v
            except Exception as e:  # noqa: BLE001 - a sink's bug costs its counters only
                self._error(e)
        return out

    def close(self, aborted: bool = False) -> None:
        """Every sink closed, each on its own (one failing does not keep the others open)."""
        if self._closed:
            return
        self._closed = True
        for s in self.sinks:
            try:
                s.close(aborted)
            except Exception as e:  # noqa: BLE001 - close the others whatever happens
                if not aborted:
                    self._error(e)

    def _each(self, method: str, *args) -> None:
        for s in self.sinks:
            try:
                getattr(s, method)(*args)
            except OSError:
                raise  # a full disk or a closed pipe: not our bug, the run's cleanup handles it
            except Exception as e:  # noqa: BLE001 - one sink failing spares the others
                self._error(e)

    def _error(self, exc: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(exc)
