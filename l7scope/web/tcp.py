"""GET /api/tcp: TCP health between processes over time (docs/api.md), from the store's
``tcp_metrics`` rows (the agent's per-pair, per-interval records, docs/metrics.md).

Theory of operation
-------------------
The parameters are /api/metrics's (client, server, since, step; queries.parse_tcp) and so is
the time axis (queries.time_steps: slot-aligned start, whole 10-second slots per step, at most
MAX_POINTS points). A backend answers two questions per step ``t``: the sums of the integer
columns (``tcp_sums``: schema.TCP_SUMS) and, for each JSON map column (``tcp_keyed``:
failures and drops by reason, the buckets of the connect time and RTT histograms), the sum per
key. The shaping here is the same for every backend:

- counts as sums; bytes also per second of the step;
- ``connect_ms`` and ``rtt_us``: count, mean (exact: the records' sums over their counts) and
  p50/p90/p99, each the upper bound of the histogram bucket that holds that nearest rank
  (bounds of docs/metrics.md; a rank in the +Inf bucket gives the largest finite bound);
- ``totals``: the same over the whole range, per second over the range.

A record's row is dated by the start of its interval; a connection is reported in the interval
in which it closed (docs/metrics.md, Limits).
"""
from __future__ import annotations

import math

from l7scope.outputs.store import queries, schema

QUANTILES = queries.QUANTILES
_COUNTS = ("connects", "accepts", "connect_failures", "bytes_sent", "bytes_received",
           "write_calls", "read_calls", "retransmits", "resets_sent", "resets_received", "drops")
_MAPS = {"connect_failures_by_reason": "connect_failures_by_reason",
         "drops_by_reason": "drops_by_reason"}


class TcpApi:
    """The /api/tcp handler over a store backend; ``now_ns`` as the Api's."""

    def __init__(self, store, now_ns):
        self.store = store
        self._now = now_ns

    def __call__(self, query: dict) -> dict:
        q = queries.parse_tcp(query)
        now = self._now()
        t0, step_s, slots = queries.time_steps(q.since_s, q.step_s, now, self.store.tcp_oldest_ts)
        step_ns = int(step_s * 1e9)
        sums = [_empty_sums() for _ in range(slots)]
        keyed = [_empty_keyed() for _ in range(slots)]
        for r in self.store.tcp_sums(q, t0, step_ns):
            if 0 <= r["t"] < slots:
                for c in schema.TCP_SUMS:
                    sums[r["t"]][c] += r[c] or 0
        for r in self.store.tcp_keyed(q, t0, step_ns):
            if 0 <= r["t"] < slots and r["kind"] in keyed[r["t"]]:
                cell = keyed[r["t"]][r["kind"]]
                cell[r["key"]] = cell.get(r["key"], 0) + r["n"]
        series = [{"t_ns": t0 + i * step_ns, **_point(s, k, step_s)}
                  for i, (s, k) in enumerate(zip(sums, keyed))]
        span_s = max(1e-9, (now - t0) / 1e9)
        return {"from_ns": t0, "to_ns": now, "step_s": step_s, "series": series,
                "totals": _point(_add_sums(sums), _add_keyed(keyed), span_s)}


def _empty_sums() -> dict:
    return dict.fromkeys(schema.TCP_SUMS, 0)


def _empty_keyed() -> dict:
    return {kind: {} for kind in schema.TCP_KEYED}


def _add_sums(cells: list[dict]) -> dict:
    out = _empty_sums()
    for cell in cells:
        for c in schema.TCP_SUMS:
            out[c] += cell[c]
    return out


def _add_keyed(cells: list[dict]) -> dict:
    out = _empty_keyed()
    for cell in cells:
        for kind, values in cell.items():
            for key, n in values.items():
                out[kind][key] = out[kind].get(key, 0) + n
    return out


def _point(s: dict, k: dict, seconds: float) -> dict:
    """One step's (or the range's) JSON from its sums and maps."""
    out = {c: s[c] for c in _COUNTS}
    out["bytes_sent_per_s"] = round(s["bytes_sent"] / seconds, 3)
    out["bytes_received_per_s"] = round(s["bytes_received"] / seconds, 3)
    out["write_ms"] = round(s["write_us"] / 1000, 3)
    out["connect_ms"] = _distribution(s["connect_ms_count"], s["connect_us_sum"] / 1000,
                                      k["connect_ms_buckets"])
    out["rtt_us"] = _distribution(s["rtt_us_count"], s["rtt_us_sum"], k["rtt_us_buckets"])
    for name, kind in _MAPS.items():
        out[name] = dict(sorted(k[kind].items()))
    return out


def _distribution(count: int, total: float, buckets: dict) -> dict:
    out = {"count": count, "mean": round(total / count, 3) if count else None}
    for name, q in QUANTILES:
        out[name] = bucket_quantile(buckets, q)
    return out


def _bound(key: str) -> float:
    return math.inf if key == "+Inf" else float(key)


def bucket_quantile(buckets: dict, q: float):
    """Nearest-rank quantile of {"upper bound": n}: that bucket's upper bound (the largest
    finite bound when the rank falls in +Inf); None when empty or unreadable."""
    try:
        ordered = sorted((_bound(key), n) for key, n in buckets.items())
    except ValueError:
        return None
    total = sum(n for _, n in ordered if n > 0)
    if not total:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for bound, n in ordered:
        seen += n
        if seen >= rank:
            if math.isinf(bound):
                finite = [b for b, _ in ordered if not math.isinf(b)]
                return _num(finite[-1]) if finite else None
            return _num(bound)
    return None


def _num(value: float):
    return int(value) if float(value).is_integer() else value
