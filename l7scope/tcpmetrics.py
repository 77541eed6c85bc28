"""TCP health per process pair: the kernel's per-socket summaries joined with the byte counts.

Theory of operation
-------------------
The kernel emits one L7_KIND_TCP record per TCP socket when it closes (bpf/l7scope.bpf.c, "TCP
health"): connect latency or why the connect failed, smoothed RTT and its variance, segments
retransmitted, resets sent and received, drops by reason. It is decoded into a ``TcpSummary``
(``decode_tcp``, called by capture/wire.py). The bytes and syscalls are not counted twice in the
kernel: the DATA records already carry every send and receive of a traced socket (payload or
not), so ``TcpMetrics.feed`` adds them up per socket, keyed by its endpoints (local, remote),
and also learns the owning process from them and from OPEN records (an accepted socket's
summary has no owner: the kernel sees its handshake in softirq). That per-record counting runs
in C (``SocketBytes``, dataplane/_sockbytesmodule.c), a batch of events per call; Python sees
the summaries, and each socket's counts when its summary or the interval takes them.

When a summary arrives the socket's byte counts are joined to it and it waits for the interval.
``snapshot`` then pairs the two ends of connections whose both ends are local (the client's
(local, remote) is the server's (remote, local)), so a connection counts once per pair:

- client / server: "comm(pid)" of the local process at that end, else the other end's view of
  the address ("ip" for a remote client, "ip:port" for a remote server), as pair metrics do;
- connects, connect_failures, connect_ms: from the client end (accepts from the server end);
- bytes_sent / bytes_received (client -> server / server -> client) and resets: from the end
  that did the sending (the client's sends, the server's sends) when it is seen, else from the
  receiving end;
- retransmits, drops: the sum of both ends (each is a different segment); rtt_us: one sample
  per socket.

Open sockets are reported every interval as well (``live``: KernelSource.tcp_open, the kernel's
tcp_health entries read once per interval): what each moved since the interval before, its
bytes from the DATA records (their counts start afresh once reported) and its retransmits,
resets and drops as the difference from what was reported last (kept per socket in
``_reported``, and taken off the summary when it comes). The connect, accept and RTT wait for
the close.

State is bounded: at most ``max_sockets`` open sockets' byte counts and ``max_sockets`` closed
sockets per interval; what does not fit is counted (``tcp_sockets_evicted``,
``tcp_summaries_dropped``), never kept.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from l7scope.capture.events import ConnectionOpened, DataChunk, Role
from l7scope.capture.tcp_summary import TcpOpen, TcpSummary
from l7scope.conn.table import guess_role
from l7scope.dataplane._sockbytes import SocketBytes
from l7scope.metrics import process_name
from l7scope.metrics_types import DURATION_MS_BOUNDS, Histogram

RTT_US_BOUNDS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
                 500000, 1000000)
DROP_FORMAT = "/sys/kernel/tracing/events/skb/kfree_skb/format"
# the tracepoints each metric needs: a kernel without one reports the metric as unavailable
# (the event's name: the programs attach to some as raw tracepoints, "raw_tp/kfree_skb")
NEEDS = {"tcp_metrics": "tcp_destroy_sock", "connects": "inet_sock_set_state",
         "retransmits": "tcp_destroy_sock",  # tcp_sock.total_retrans, read at close
         "resets_sent": "tcp_send_reset", "resets_received": "tcp_receive_reset",
         "drops": "kfree_skb"}


def drop_reason_names(path: str = DROP_FORMAT) -> dict[int, str]:
    """enum skb_drop_reason numbers -> names, from the kfree_skb tracepoint's print format
    (the kernel's own table: `{ 2, "NOT_SPECIFIED" }`); empty when it cannot be read."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}
    pairs = re.findall(r'\{\s*(0x[0-9a-fA-F]+|\d+),\s*"(\w+)"\s*\}', text)
    return {int(n, 0): name for n, name in pairs}


def unavailable(missing_tracepoints) -> list[str]:
    """The metrics this kernel cannot give: their tracepoint was not attached."""
    missing = " ".join(missing_tracepoints)
    return sorted(m for m, tp in NEEDS.items() if tp in missing)


@dataclass(slots=True)
class _Bytes:
    """A socket's traffic from its DATA records, and its owner (SocketBytes counts them; this
    is what it hands back)."""

    pid: int | None = None
    comm: str | None = None
    role: Role = Role.UNKNOWN
    sent: int = 0
    received: int = 0
    writes: int = 0
    reads: int = 0
    write_ns: int = 0


@dataclass(slots=True)
class _Pair:
    client_pid: int | None
    server_pid: int | None
    connects: int = 0
    accepts: int = 0
    failures: Counter = field(default_factory=Counter)
    connect_ms: list = field(default_factory=list)
    rtt_us: list = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0
    write_calls: int = 0
    read_calls: int = 0
    write_ns: int = 0
    retransmits: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    drops: Counter = field(default_factory=Counter)


def _histogram(values: list, bounds: tuple) -> Histogram:
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
    return Histogram(bounds, tuple(counts), float(sum(values)), len(values))


def _addr(ep) -> str:
    return ep[0] if ep else "?"


def _addr_port(ep) -> str:
    if not ep:
        return "?"
    return f"[{ep[0]}]:{ep[1]}" if ":" in ep[0] else f"{ep[0]}:{ep[1]}"


class TcpMetrics:
    """Per-pair TCP health over intervals: ``feed`` every capture event, ``snapshot`` each
    interval (``kind: tcp_metrics`` records for --metrics-output)."""

    def __init__(self, max_sockets: int = 65536, name=process_name, owned_only: bool = False,
                 reasons: dict[int, str] | None = None, max_pairs: int = 4096, live=None,
                 listening=None):
        self.max_sockets = max_sockets
        # a socket whose connect/accept the kernel never saw (it predates the agent) is told
        # client or server as the connection table tells it: a listening local port (this
        # container of the host's listening ports), else the ports (conn/table.py guess_role)
        self.listening = listening
        self.max_pairs = max_pairs
        self.name = name
        self.owned_only = owned_only  # --pid/--comm: sockets no traced process owns are left out
        self.reasons = drop_reason_names() if reasons is None else reasons
        self.counters = Counter(tcp_sockets_evicted=0, tcp_summaries_dropped=0,
                                tcp_pairs_overflow=0, tcp_unowned_skipped=0,
                                tcp_open_read_errors=0)
        # open sockets' traffic, counted in C (dataplane/_sockbytesmodule.c): dict-like
        # get/pop/len/in, plus reset(key) and take_moved() (the sockets with bytes since the
        # last interval); full: the oldest inserted is evicted (tcp_sockets_evicted)
        self._open = SocketBytes(max_sockets, self.counters, DataChunk, ConnectionOpened,
                                 TcpSummary, Role.UNKNOWN, _Bytes)
        self._closed: list[tuple[TcpSummary, _Bytes]] = []
        # open sockets: ``live()`` gives the kernel's counters so far (KernelSource.tcp_open);
        # what an interval reported of them is kept, so that the next one and the close
        # report the rest
        self.live = live
        self._reported: OrderedDict[tuple, TcpOpen] = OrderedDict()

    # ---- events ----

    def feed(self, events) -> None:
        """DataChunks add to their socket's counts and ConnectionOpened names its owner (in C);
        each TcpSummary comes to ``_summary`` at its place in the batch."""
        self._open.feed(events, self._summary)

    def _summary(self, s: TcpSummary) -> None:
        b = self._open.pop((s.local, s.remote), None) or _Bytes()
        done = self._reported.pop((s.local, s.remote), None)
        if done is not None:  # earlier intervals reported part of it: the rest now
            s = dataclasses.replace(s, **_minus(s, done))
        if s.pid is not None:
            b.pid, b.comm = s.pid, s.comm
        if b.pid is None and self.owned_only:
            self.counters["tcp_unowned_skipped"] += 1
            return
        if len(self._closed) >= self.max_sockets:
            self.counters["tcp_summaries_dropped"] += 1
            return
        self._closed.append((s, b))

    # ---- open sockets ----

    def _open_reports(self) -> list[tuple]:
        """Open sockets' traffic and counters since the last interval, as (summary, bytes) with
        outcome "open"; their byte counts start afresh, their counters are remembered."""
        live = {}
        if self.live is not None:
            try:
                live = {(o.local, o.remote): o for o in self.live()}
            except OSError:  # the kernel table unreadable: bytes only this interval
                self.counters["tcp_open_read_errors"] += 1
        out = []
        for key in dict.fromkeys([*self._open.take_moved(), *live]):
            b, o = self._open.get(key), live.get(key)
            if b is None and o is None:
                continue
            item = self._open_delta(key, b or _Bytes(role=o.role), o)
            if item is not None:
                out.append(item)
        return out

    def _open_delta(self, key: tuple, b: _Bytes, o: TcpOpen | None):
        done = self._reported.get(key)
        now = o if o is not None else done
        # with something reported earlier, now is that or newer (never None)
        d = _counts(now) if done is None else _minus(now, done)
        moved = b.sent or b.received or b.writes or b.reads
        if not moved and not any(d[k] for k in ("retransmits", "resets_sent", "resets_received",
                                                "drops_other")) and not d["drops"]:
            return None
        if b.pid is None and self.owned_only:
            return None
        if o is not None:
            self._remember(key, o)
        part = b  # a copy: the socket's counts start afresh
        self._open.reset(key)
        role = o.role if o is not None and o.role != Role.UNKNOWN else b.role
        return _OpenPart(role=role, local=key[0], remote=key[1], pid=b.pid, comm=b.comm,
                         **d), part

    def _remember(self, key: tuple, o: TcpOpen) -> None:
        self._reported[key] = o
        self._reported.move_to_end(key)
        if len(self._reported) > self.max_sockets:
            self._reported.popitem(last=False)
            self.counters["tcp_sockets_evicted"] += 1

    # ---- interval ----

    def snapshot(self, start_wall_ns: int, end_wall_ns: int) -> list[dict]:
        """The interval's records, one per (client, server) pair; the interval starts afresh."""
        closed, self._closed = self._closed, []
        closed += self._open_reports()
        roles = [self._role(s) for s, _ in closed]
        servers = {(s.local, s.remote): (s, b)
                   for (s, b), role in zip(closed, roles) if role == Role.SERVER}
        pairs: dict[tuple, _Pair] = {}
        for (s, b), role in zip(closed, roles):
            if role == Role.SERVER:
                continue
            self._add(pairs, (s, b), servers.pop((s.remote, s.local), None))
        for sb in servers.values():
            self._add(pairs, None, sb)
        return [self._record(k, p, start_wall_ns, end_wall_ns) for k, p in pairs.items()]

    def _role(self, s) -> Role:
        if s.role != Role.UNKNOWN:
            return s.role
        return guess_role(s.local, s.remote, self.listening)

    def _add(self, pairs: dict, client, server) -> None:
        cs, cb = client or (None, None)
        ss, sb = server or (None, None)
        cname = (self.name(cb.comm, cb.pid) if cb is not None and cb.pid
                 else _addr(ss.remote if ss is not None else cs.local))
        sname = (self.name(sb.comm, sb.pid) if sb is not None and sb.pid
                 else _addr_port(cs.remote if cs is not None else ss.local))
        p = pairs.get((cname, sname))
        if p is None:
            if len(pairs) >= self.max_pairs:
                self.counters["tcp_pairs_overflow"] += 1
                return
            p = pairs[(cname, sname)] = _Pair(cb.pid if cb else None, sb.pid if sb else None)
        if cs is not None:
            _client_side(p, cs, cb)
        if ss is not None:
            _server_side(p, ss, sb, client_seen=cs is not None)
        for s in (cs, ss):
            if s is not None and s.outcome == "established" and s.srtt_us:
                p.rtt_us.append(s.srtt_us)
            if s is not None:
                p.retransmits += s.retransmits
                for reason, n in s.drops:
                    p.drops[self.reasons.get(reason, str(reason))] += n
                if s.drops_other:
                    p.drops["other"] += s.drops_other

    def _record(self, key: tuple, p: _Pair, start: int, end: int) -> dict:
        return {
            "kind": "tcp_metrics", "client": key[0], "server": key[1],
            "client_pid": p.client_pid, "server_pid": p.server_pid,
            "interval_start_ns": start, "interval_end_ns": end,
            "connects": p.connects, "accepts": p.accepts,
            "connect_failures": sum(p.failures.values()),
            "connect_failures_by_reason": dict(p.failures),
            "connect_ms": _histogram(p.connect_ms, DURATION_MS_BOUNDS).to_dict(),
            "bytes_sent": p.bytes_sent, "bytes_received": p.bytes_received,
            "write_calls": p.write_calls, "read_calls": p.read_calls,
            "write_ms": round(p.write_ns / 1e6, 3),
            "rtt_us": _histogram(p.rtt_us, RTT_US_BOUNDS).to_dict(),
            "retransmits": p.retransmits, "resets_sent": p.resets_sent,
            "resets_received": p.resets_received, "drops": dict(p.drops),
        }


def _client_side(p: _Pair, s: TcpSummary, b: _Bytes) -> None:
    """The client's own view: its connect, its sends and reads, the resets it sent."""
    if s.outcome == "open":  # an interval of an open connection: its connect comes at close
        pass
    elif s.outcome == "established":
        p.connects += 1
        if s.connect_ns:
            p.connect_ms.append(s.connect_ns / 1e6)
    else:
        p.failures[s.outcome] += 1
    p.bytes_sent += b.sent
    p.bytes_received += b.received
    p.write_calls += b.writes
    p.read_calls += b.reads
    p.write_ns += b.write_ns
    p.resets_sent += s.resets_sent
    p.resets_received += s.resets_received


def _server_side(p: _Pair, s: TcpSummary, b: _Bytes, client_seen: bool) -> None:
    """The server's view. With the client seen, only what the client could not see: its
    accept, and the resets it sent (the client counted those it received: replaced)."""
    p.accepts += s.outcome != "open"
    p.write_calls += b.writes
    p.read_calls += b.reads
    p.write_ns += b.write_ns
    if client_seen:
        return
    p.bytes_sent += b.received
    p.bytes_received += b.sent
    p.resets_sent += s.resets_received
    p.resets_received += s.resets_sent



@dataclass(frozen=True, slots=True)
class _OpenPart:
    """An open socket's share of one interval, shaped like the TcpSummary fields it uses."""

    role: Role
    local: tuple
    remote: tuple
    pid: int | None
    comm: str | None
    retransmits: int
    resets_sent: int
    resets_received: int
    drops: tuple
    drops_other: int
    outcome: str = "open"
    srtt_us: int = 0


def _counts(o) -> dict:
    if o is None:
        return {"retransmits": 0, "resets_sent": 0, "resets_received": 0, "drops": (),
                "drops_other": 0}
    return {"retransmits": o.retransmits, "resets_sent": o.resets_sent,
            "resets_received": o.resets_received, "drops": o.drops,
            "drops_other": o.drops_other}


def _minus(now, done) -> dict:
    """``now``'s counters less what ``done`` (reported earlier) had, never below 0."""
    was = dict(done.drops)
    drops = tuple((r, n - was.get(r, 0)) for r, n in now.drops if n > was.get(r, 0))
    return {"retransmits": max(0, now.retransmits - done.retransmits),
            "resets_sent": max(0, now.resets_sent - done.resets_sent),
            "resets_received": max(0, now.resets_received - done.resets_received),
            "drops": drops, "drops_other": max(0, now.drops_other - done.drops_other)}
