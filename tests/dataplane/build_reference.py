"""The Python Exchange builder that dataplane/_buildmodule.c replaced, kept only as the
reference of a differential test (tests/dataplane/test_build.py); nothing in l7scope uses it.
It is Pipeline.build, _identity, _grpc_status, _merged_notes and WallClock.rfc3339 as they
were before the builder moved to C."""
from __future__ import annotations

import datetime as _dt

from l7scope.capture.events import format_endpoint
from l7scope.exchange import Exchange
from l7scope.protocols.wirenum import parse_decimal
from l7scope.tracecontext import extract as extract_trace

_NOBODY = (None, None, None, None, None)


def rfc3339(mono_ns: int, offset_ns: int) -> str:
    secs, ns = divmod(mono_ns + offset_ns, 1_000_000_000)
    shown = min(max(secs, 0), 253_402_300_799)
    t = _dt.datetime.fromtimestamp(shown, tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%06dZ" % (ns // 1000)


def grpc_status(resp):
    if resp is None:
        return None
    for fields in (resp.headers, resp.trailers):
        for k, v in fields:
            if len(k) == 11 and k.lower() == "grpc-status":
                return parse_decimal(v.strip(" \t"), max_digits=3)
    return None


def merged_notes(ep, req, resp):
    notes = list(ep.notes)
    for m in (req, resp):
        if m is not None and m.notes:
            for n in m.notes:
                if n not in notes:
                    notes.append(n)
    return tuple(notes)


def identity(p, conn):
    procs = p.processes
    info = procs.lookup(conn.pid) if procs is not None and conn.pid is not None else None
    if info is None:
        return conn.comm, None, None, None, conn.comm
    kept = conn.identity
    if kept is not None and kept[0] is info:
        return kept[1]
    who = (info.name, info.name, info.exe, info.container_id, conn.comm)
    conn.identity = (info, who)
    return who


def build(p, conn, ep):
    """``p``: a Pipeline (its configuration, counters and peer index are read as build did)."""
    req, resp = ep.request, ep.response
    if req is None and resp is None:
        p.counters["exchanges_without_messages"] += 1
        return None
    if ep.notes or (req is not None and req.notes) or (resp is not None and resp.notes):
        notes, partial = merged_notes(ep, req, resp), True
    else:
        notes = ()
        partial = (req is not None and not req.complete) or \
            (resp is not None and not resp.complete)
    if conn.endpoint_text is None:
        conn.endpoint_text = (format_endpoint(conn.local), format_endpoint(conn.remote))
    local, remote = conn.endpoint_text
    if p.capture_mode:
        side, pid, peer_pid, peer_name, who = None, None, None, None, _NOBODY
    else:
        side = "client" if conn.client_is_local() else "server"
        pid = conn.pid
        peer_pid, peer_name = p.peers.peer(local, remote)
        who = identity(p, conn)
        if peer_pid is not None and p.processes is not None:
            info = p.processes.lookup(peer_pid)
            if info is not None:
                peer_name = info.name or peer_name
    first = req or resp
    last = resp or req
    if req is not None:
        trace, request_id = extract_trace(req.headers, p.trace_errors)
        path = req.path
        if path is not None and p.redact_path is not None:
            path = p.redact_path(path)
        method, authority, request_bytes = req.method, req.authority, req.wire_bytes
    else:
        trace = request_id = path = method = authority = None
        request_bytes = 0
    if resp is not None:
        status, grpc, response_bytes = resp.status, grpc_status(resp), resp.wire_bytes
    else:
        status = grpc = None
        response_bytes = 0
    return tuple.__new__(Exchange, (
        ep.protocol, side, pid, who[0], local, remote, peer_pid, conn.conn_id, ep.stream_id,
        method, path, authority, status, grpc, request_bytes, response_bytes,
        first.start_ns, last.end_ns, rfc3339(first.start_ns, p.clock.offset_ns), trace,
        request_id, conn.tls, partial, notes, req, resp,
        peer_name if peer_pid is not None else None, who[1], who[2], who[3], who[4]))
