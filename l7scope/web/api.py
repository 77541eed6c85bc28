"""The HTTP API (docs/api.md): JSON read from the store, as plain handler functions.

Theory of operation
-------------------
``Api.handle(method, path, query, body) -> (status, content_type, body_bytes)`` is the one
entry point; an HTTP listener mounts it under "/api/" (``query`` is the parsed query string,
name -> list of values, as urllib.parse.parse_qs gives it). Each endpoint parses its
parameters into a spec (store/queries.py; a bad one is a 400 with a one-line JSON reason),
asks the store's backend for rows and shapes them into the contract's JSON. This module is the
error boundary of a request: a store failure is a 503, our own bug a 500 with its type
counted in ``api_internal_errors``; the listener never sees an exception. A backend that
runs ``path_regex`` itself (``regex_in_query``: ClickHouse's RE2) gets it in its exchanges()
query; otherwise the paths are matched here, over a bounded number of candidates.

``since`` counts back from ``now_ns()``: the wall clock for live capture; a capture-file run
passes the time of its last packet, so "the last hour" means the file's last hour. The
topology and the metrics read the 10-second rollup (store/rollup.py): their ``since`` starts
at the beginning of the slot it falls in, and a metrics ``step`` is whole slots. The topology
also reads the ``tcp_metrics`` rows since that same start (store.tcp_edges): a pair's TCP sums
join its L7 edges (``tcp``), and a pair with TCP but no L7 edge becomes an edge of protocol
"tcp" (a database, a custom protocol), so its TCP tab is one click away.
"""
from __future__ import annotations

import json
import socket
import time
from urllib.parse import parse_qs

from l7scope.outputs.store import queries, schema
from l7scope.outputs.store.queries import BadRequest
from l7scope.outputs.store.rollup import SLOT_NS
from l7scope.web.tcp import TcpApi

JSON_TYPE = "application/json"
_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
MAX_TCP_ONLY_EDGES = 300  # a host's every connection is a pair: the busiest are drawn
DROP_WORDS = ("drop", "full", "lost", "shed", "evicted", "not_stored")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("l7scope")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def reply(status: int, obj) -> tuple[int, str, bytes]:
    return status, JSON_TYPE, (_ENCODE(obj) + "\n").encode()


class Api:
    def __init__(self, store, *, counters=None, source: str = "kernel", node: str | None = None,
                 now_ns=time.time_ns, started_ns: int | None = None):
        self.store = store
        self._counters = counters
        self.source = source
        self.node = node or socket.gethostname()
        self._now = now_ns
        self._started_mono = time.monotonic()
        self.started_ns = started_ns if started_ns is not None else time.time_ns()
        self.internal_errors = 0
        self._routes = {
            "/api/topology": self.topology, "/api/exchanges": self.exchanges,
            "/api/samples": self.samples, "/api/metrics": self.metrics,
            "/api/status": self.status,
        }
        self._routes["/api/tcp"] = TcpApi(store, now_ns)  # web/tcp.py

    def handle(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str, bytes]:
        route = self._routes.get(path.rstrip("/") or "/")
        if route is None:
            return reply(404, {"error": f"no such endpoint: {path[:100]}"})
        if method not in ("GET", "HEAD"):
            return reply(405, {"error": f"{method[:10]} not allowed; use GET"})
        try:
            return reply(200, route(query or {}))
        except BadRequest as e:
            return reply(400, {"error": str(e)})
        except Exception as e:  # noqa: BLE001 - the request's error boundary
            if _is_store_error(e):
                return reply(503, {"error": f"store: {e}"[:200]})
            self.internal_errors += 1
            return reply(500, {"error": f"internal error: {type(e).__name__}"})

    def route(self, request) -> tuple[int, str, bytes]:
        """Adapter for outputs/http.py's listener: its Request -> handle(...)."""
        try:
            query = parse_qs(request.query, max_num_fields=64) if request.query else {}
        except ValueError:
            return reply(400, {"error": "more than 64 query parameters"})
        return self.handle(request.method, request.path, query, request.body)

    def mount(self, listener) -> None:
        """Serves /api/... on an outputs/http.py HttpListener (GET; HEAD follows GET)."""
        listener.add_route("GET", "/api", self.route)

    def _since_ts(self, since_s: float | None) -> int | None:
        return None if since_s is None else self._now() - int(since_s * 1e9)

    # --- endpoints -------------------------------------------------------------------------

    def topology(self, query: dict) -> dict:
        q = queries.parse_topology(query)
        since = _slot_floor(self._since_ts(q.since_s))
        out = _l7_edges(self.store.topology_edges(since))
        tcp = _tcp_figures(self.store.tcp_edges(since))
        for e in out:  # an L7 edge gains its pair's TCP figures (the same on each protocol)
            e["tcp"] = tcp.get((e["client"], e["server"]))
        l7_pairs = {(e["client"], e["server"]) for e in out}
        tcp_only, left_out = _tcp_only_edges({k: v for k, v in tcp.items() if k not in l7_pairs})
        out.sort(key=lambda d: (-d["requests"], d["client"], d["server"], d["protocol"]))
        out += tcp_only
        ids = sorted({d["client"] for d in out} | {d["server"] for d in out})
        return {"nodes": self._nodes(ids), "edges": out, "tcp_only_left_out": left_out}

    def _nodes(self, ids: list[str]) -> list[dict]:
        procs = {p["name"]: p for p in self.store.processes()}
        nodes = []
        for node_id in ids:
            kind = queries.node_kind(node_id)
            name = node_id.split(":", 1)[1]
            p = procs.get(name) if kind == "process" else None
            nodes.append({"id": node_id, "kind": kind, "pid": p["pid"] if p else None,
                          "name": name, "exe": p["exe"] if p else None,
                          "container_id": p["container_id"] if p else None})
        return nodes

    def exchanges(self, query: dict) -> dict:
        q = queries.parse_exchanges(query)
        since = self._since_ts(q.since_s)
        if q.path_regex is not None and getattr(self.store, "regex_in_query", False):
            self.store.check_path_regex(q.path_regex)  # a server-side engine (ClickHouse RE2)
            found, truncated = list(self.store.exchanges(q, since, q.limit)), False
        elif q.path_regex is None:
            found, truncated = list(self.store.exchanges(q, since, q.limit)), False
        else:  # paths first, whole rows only for the matches
            paths = self.store.exchange_paths(q, since, queries.MAX_CANDIDATES)
            hits, truncated = queries.regex_filter(paths, q.path_regex, q.limit)
            found = self.store.exchanges_by_id([h["id"] for h in hits])
        return {"exchanges": [schema.exchange_from_row(r) for r in found], "truncated": truncated}

    def samples(self, query: dict) -> dict:
        q = queries.parse_samples(query)
        out = []
        for r in self.store.samples(q, self._since_ts(q.since_s)):
            out.append({"exchange": json.loads(r["exchange"]), "reason": r["reason"],
                        "list": r["list"], "request": r["request"], "response": r["response"],
                        "trace": json.loads(r["trace"]) if r["trace"] else None})
        return {"samples": out}

    def metrics(self, query: dict) -> dict:
        q = queries.parse_metrics(query)
        now = self._now()
        t0, step_s, slots = queries.time_steps(q.since_s, q.step_s, now, self.store.oldest_ts)
        step_ns = int(step_s * 1e9)
        rows = self.store.metrics(q, t0, step_ns)
        return {"from_ns": t0, "to_ns": now, "step_s": step_s,
                "series": _series(rows, t0, step_ns, slots, step_s)}

    def status(self, query: dict) -> dict:
        queries._check_known(query, ())
        counters, at = self._current_counters()
        return {"version": _version(), "node": self.node, "source": self.source,
                "started_ns": self.started_ns,
                "uptime_s": round(time.monotonic() - self._started_mono, 3),
                "store": {"kind": getattr(self.store, "kind", None),
                          "path": getattr(self.store, "path", None),
                          "last_error": getattr(self.store, "last_error", None)},
                "counters_time_ns": at, "counters": counters,
                "drops": {k: v for k, v in counters.items() if any(w in k for w in DROP_WORDS)},
                "parse_errors": {k: v for k, v in counters.items() if k.startswith("parse_error")},
                "api_internal_errors": self.internal_errors}

    def _current_counters(self) -> tuple[dict, int | None]:
        if self._counters is not None:
            return dict(self._counters()), self._now()
        latest = self.store.latest_counters()
        return (json.loads(latest[1]), latest[0]) if latest else ({}, None)


def _l7_edges(rows: list[dict]) -> list[dict]:
    """The rollup's rows (store.topology_edges) as one edge per (client, server, protocol)."""
    edges: dict[tuple, dict] = {}
    for r in rows:
        e = edges.setdefault((r["client"], r["server"], r["protocol"]),
                             {"requests": 0, "errors": 0, "dur": []})
        if r["kind"] == "status":
            e["requests"] += r["n"]
        elif r["kind"] == "error":
            e["errors"] += r["n"]
        else:
            e["dur"].append((r["key"], r["n"], r["low"], r["high"]))
    return [{"client": client, "server": server, "protocol": protocol,
             "requests": e["requests"], "errors": e["errors"],
             "p50_ms": queries.ms(queries.quantile(e["dur"], 0.5)),
             "p99_ms": queries.ms(queries.quantile(e["dur"], 0.99))}
            for (client, server, protocol), e in edges.items()]


def _tcp_figures(rows: list[dict]) -> dict[tuple, dict]:
    """(client, server) -> the pair's TCP sums over the window (store.tcp_edges)."""
    out: dict[tuple, dict] = {}
    for r in rows:
        cell = out.setdefault((r["client"], r["server"]), dict.fromkeys(schema.TCP_EDGE_SUMS, 0))
        for c in schema.TCP_EDGE_SUMS:
            cell[c] += r[c] or 0
    return out


def _tcp_only_edges(pairs: dict[tuple, dict]) -> tuple[list[dict], int]:
    """Edges of protocol "tcp" for pairs with TCP figures and no L7 edge: the
    MAX_TCP_ONLY_EDGES that moved the most bytes (then by client, server), and how many more
    there were."""
    ranked = sorted(pairs.items(), key=lambda kv: (
        -(kv[1]["bytes_sent"] + kv[1]["bytes_received"]), kv[0]))
    edges = [{"client": client, "server": server, "protocol": "tcp", "requests": 0,
              "errors": 0, "p50_ms": None, "p99_ms": None, "tcp": figures}
             for (client, server), figures in ranked[:MAX_TCP_ONLY_EDGES]]
    return edges, max(0, len(ranked) - MAX_TCP_ONLY_EDGES)


_DISTRIBUTIONS = (("client_duration_ms", "dur_client", queries.ms),
                  ("server_duration_ms", "dur_server", queries.ms),
                  ("request_bytes", "req_bytes", None), ("response_bytes", "resp_bytes", None))


def _series(rows: list[dict], t0: int, step_ns: int, slots: int, step_s: float) -> list[dict]:
    points = [{"t_ns": t0 + i * step_ns, "requests": 0, "errors": 0, "status": {}}
              for i in range(slots)]
    buckets = [{kind: [] for _, kind, _ in _DISTRIBUTIONS} for _ in range(slots)]
    for r in rows:
        t, kind = r["t"], r["kind"]
        if not 0 <= t < slots:
            continue
        if kind == "status":
            points[t]["requests"] += r["n"]
            points[t]["status"][str(r["key"]) if r["key"] else "none"] = r["n"]
        elif kind == "error":
            points[t]["errors"] += r["n"]
        elif kind in buckets[t]:
            buckets[t][kind].append((r["key"], r["n"], r["low"], r["high"]))
    for p, b in zip(points, buckets):
        p["requests_per_s"] = round(p["requests"] / step_s, 6)
        p["errors_per_s"] = round(p["errors"] / step_s, 6)
        p["error_ratio"] = round(p["errors"] / p["requests"], 6) if p["requests"] else None
        for name, kind, scale in _DISTRIBUTIONS:
            p[name] = queries.percentiles(b[kind], scale=scale or _plain)
    return points


def _slot_floor(ts_ns: int | None) -> int | None:
    return None if ts_ns is None else ts_ns - ts_ns % SLOT_NS


def _plain(v):
    return v


def _is_store_error(e: Exception) -> bool:
    import sqlite3

    return isinstance(e, (sqlite3.Error, OSError, queries.StoreUnavailable))
