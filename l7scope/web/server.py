"""WebOutput: the agent's store, JSON API and web UI as one output (docs/ui.md).

Theory of operation
-------------------
The agent builds one ``WebOutput`` from ``--ui HOST:PORT`` (default 127.0.0.1:7070; ``off``
turns it off) and ``--store`` and uses it like its other outputs:

    web = WebOutput.open(ui="127.0.0.1:7070", store=None, to_wall_ns=..., peer_name=...,
                         source="kernel", now_ns=time.time_ns)
    observers.append(web.sink)                 # every Exchange, on the capture path
    web.on_interval(snapshot, top_n_lists)     # each metrics interval
    web.set_counters(counters)                 # each counters snapshot (status page, store)
    web.close(final_counters)                  # writes what is queued, stops the listener

``open`` opens the store (a StoreError is one line for the user), starts the store's writer
thread, and starts one HttpListener (outputs/http.py) that serves ``/api/...`` (web/api.py),
the UI at ``/`` (web/ui.py) and, when given, a Prometheus handler at ``/metrics``. The sink
never blocks capture (store/writer.py); the listener runs on its own thread. The status page
reads the latest counters snapshot handed over by the agent's own thread (the live counters
are not read from the listener's thread, so no dict is copied while it changes).

``close(final)`` writes what the sink has queued and the final counters, then stops the
listener; ``close(final, keep_serving=True)`` (a capture file read with ``--ui``) leaves the
listener up until ``stop()``.
"""
from __future__ import annotations

import time

from l7scope.outputs.http import HttpListener, listen_warning
from l7scope.outputs.store import StoreError, StoreSink, open_store
from l7scope.web.api import Api
from l7scope.web.ui import UiFiles

DEFAULT_UI = "127.0.0.1:7070"


class WebError(Exception):
    """The UI cannot start (address in use, store unusable): one line for the user."""


class WebOutput:
    def __init__(self, store, sink: StoreSink, listener: HttpListener, api: Api):
        self.store, self.sink, self.listener, self.api = store, sink, listener, api
        self._counters: dict = {}
        self._closed = False

    @classmethod
    def open(cls, *, ui: str = DEFAULT_UI, store: str | None = None, to_wall_ns=None,
             peer_name=None, source: str = "kernel", now_ns=time.time_ns,
             prometheus=None) -> "WebOutput":
        """Store + listener started; WebError with one line when either cannot."""
        try:
            listener = HttpListener(ui, name="ui")
        except ValueError as e:
            raise WebError(f"--ui {ui}: {e}") from None
        try:
            st = open_store(store)
        except StoreError as e:
            raise WebError(str(e)) from None
        sink = StoreSink(st, peer_name=peer_name, to_wall_ns=to_wall_ns, now_ns=now_ns)
        web = cls(st, sink, listener, None)
        web.api = Api(st, counters=web.latest_counters, source=source, now_ns=now_ns,
                      node=sink.node)  # the name the rows are written with
        web.api.mount(listener)
        UiFiles().mount(listener)
        if prometheus is not None:
            listener.add_route("GET", "/metrics", prometheus)
        try:
            listener.start()
        except OSError as e:
            sink.close()
            st.close()
            raise WebError(f"--ui {ui}: {e.strerror or e}") from None
        return web

    @property
    def url(self) -> str:
        host, port = self.listener.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def banner(self, ui: str) -> list[str]:
        """The lines to print at start: the address, and a warning beyond loopback."""
        lines = [f"l7scope: web UI at {self.url} (store {getattr(self.store, 'path', '?')})"]
        warning = listen_warning(ui)
        if warning:
            lines.append(f"l7scope: warning: {warning}")
        return lines

    def on_interval(self, snapshot, top_n_lists: dict | None = None) -> None:
        self.sink.on_interval(snapshot, top_n_lists, dict(self._counters) or None)

    def set_counters(self, counters: dict) -> None:
        self._counters = dict(counters)

    def latest_counters(self) -> dict:
        return self._counters

    def counters(self) -> dict[str, int]:
        """The store's counters and the listener's (``ui_...``), for the agent's counters."""
        out = self.sink.counters()
        out.update({f"ui_{k}": v for k, v in self.listener.stats().items()})
        return out

    def close(self, final_counters: dict | None = None, keep_serving: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self.sink.close()
        if final_counters is not None:
            self.set_counters(final_counters)
            self.sink.on_interval((), None, dict(final_counters))
        if not keep_serving:
            self.stop()

    def stop(self) -> None:
        self.listener.stop()
        self.store.close()
