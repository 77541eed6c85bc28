// The pair's TCP tab: /api/tcp for the pair over the time window. A totals line, the totals
// in detail, and charts per step: bytes, RTT, retransmits, resets, connect time, connects and
// failures, drops by reason. Connections are counted in the interval in which they closed.

import { getJson } from "./api.js";
import { h, fmtNum, fmtSig, plural } from "./dom.js";
import { lineChart, stackedChart } from "./charts.js";

const UNITS = ["KiB", "MiB", "GiB", "TiB"];
const INTEGER = { integer: true };

// 6400 -> "6,400 B (6.3 KiB)": the exact count, and its size when it is one KiB or more
export function fmtBytes(n) {
  const exact = `${fmtNum(n, 0)} B`;
  if (!(n >= 1024)) return exact;
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return `${exact} (${fmtSig(v)} ${UNITS[i]})`;
}

function fmtByteRate(v) {
  if (v === null || v === undefined) return "–";
  if (v < 1024) return `${fmtSig(v)} B/s`;
  let x = v / 1024, i = 0;
  while (x >= 1024 && i < UNITS.length - 1) { x /= 1024; i++; }
  return `${fmtSig(x)} ${UNITS[i]}/s`;
}

// up to 3 decimals, no trailing zeros: 0.25 -> "0.25", 293.3333 -> "293.333", 2500 -> "2,500"
function num3(v) {
  if (v === null || v === undefined) return "–";
  return Math.abs(v) >= 1000 ? fmtNum(v, 0) : String(Number(v.toFixed(3)));
}

// {count, mean, p50, p90, p99} -> "mean 0.713 ms · p50 ≤ 0.5 ms · p99 ≤ 5 ms (8)"
function fmtDist(d, unit, what) {
  if (!d || !d.count) return "–";
  const v = (x) => `${num3(x)} ${unit}`;
  return `mean ${v(d.mean)} · p50 ≤ ${v(d.p50)} · p99 ≤ ${v(d.p99)} (${plural(d.count, what)})`;
}

function fmtReasons(total, byReason) {
  const parts = Object.entries(byReason || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, n]) => `${k} ${fmtNum(n, 0)}`);
  return parts.length ? `${fmtNum(total, 0)} (${parts.join(", ")})` : fmtNum(total, 0);
}

function summaryLine(t, stepS) {
  return `TCP: ${plural(t.connects, "connect")}, ${t.connect_failures} failed, `
    + `${fmtNum(t.bytes_sent, 0)} B sent, ${fmtNum(t.bytes_received, 0)} B received, `
    + `${plural(t.retransmits, "retransmit")}, ${plural(t.resets_sent + t.resets_received, "reset")}, `
    + `${plural(t.drops, "drop")}, step ${stepS} s`;
}

function totalsList(t) {
  const rows = [
    ["connects", "connects", fmtNum(t.connects, 0)],
    ["accepts", "accepts", fmtNum(t.accepts, 0)],
    ["connect_failures", "failed connects", fmtReasons(t.connect_failures, t.connect_failures_by_reason)],
    ["connect_ms", "connect time", fmtDist(t.connect_ms, "ms", "connect")],
    ["bytes_sent", "bytes sent (client → server)", fmtBytes(t.bytes_sent)],
    ["bytes_received", "bytes received (server → client)", fmtBytes(t.bytes_received)],
    ["rtt_us", "RTT (smoothed, per socket)", fmtDist(t.rtt_us, "µs", "socket")],
    ["retransmits", "retransmitted segments", fmtNum(t.retransmits, 0)],
    ["resets_sent", "resets sent by the client", fmtNum(t.resets_sent, 0)],
    ["resets_received", "resets received by the client", fmtNum(t.resets_received, 0)],
    ["drops", "drops", fmtReasons(t.drops, t.drops_by_reason)],
    ["calls", "syscalls", `${fmtNum(t.write_calls, 0)} writes (${num3(t.write_ms)} ms), ${fmtNum(t.read_calls, 0)} reads`],
  ];
  return h("dl", { class: "meta tcp-totals", "data-testid": "tcp-totals" }, rows.flatMap(([key, label, text]) => [
    h("dt", { text: label }), h("dd", { "data-testid": `tcp-total-${key}`, text }),
  ]));
}

function charts(doc) {
  const series = doc.series;
  const times = series.map((p) => p.t_ns);
  const col = (f) => series.map(f);
  const ms = (v) => fmtSig(v), count = (v) => fmtNum(v, 0);
  return h("div", { class: "charts" }, [
    lineChart("Bytes (per second)", times, [
      { name: "sent", cls: "c-req", values: col((p) => p.bytes_sent_per_s) },
      { name: "received", cls: "c-p50", values: col((p) => p.bytes_received_per_s) },
    ], fmtByteRate, "chart-tcp-bytes"),
    lineChart("RTT (µs)", times, [
      { name: "p50", cls: "c-p50", values: col((p) => p.rtt_us.p50) },
      { name: "p99", cls: "c-p99", values: col((p) => p.rtt_us.p99) },
      { name: "mean", cls: "c-p99c", values: col((p) => p.rtt_us.mean) },
    ], ms, "chart-tcp-rtt"),
    lineChart("Retransmitted segments (per step)", times, [
      { name: "retransmits", cls: "c-err", values: col((p) => p.retransmits) },
    ], count, "chart-tcp-retransmits", INTEGER),
    lineChart("Resets (per step)", times, [
      { name: "sent by the client", cls: "c-req", values: col((p) => p.resets_sent) },
      { name: "received by the client", cls: "c-err", values: col((p) => p.resets_received) },
    ], count, "chart-tcp-resets", INTEGER),
    lineChart("Connect time (ms)", times, [
      { name: "p50", cls: "c-p50", values: col((p) => p.connect_ms.p50) },
      { name: "p99", cls: "c-p99", values: col((p) => p.connect_ms.p99) },
      { name: "mean", cls: "c-p99c", values: col((p) => p.connect_ms.mean) },
    ], ms, "chart-tcp-connect"),
    lineChart("Connects (per step)", times, [
      { name: "connects", cls: "c-req", values: col((p) => p.connects) },
      { name: "accepts", cls: "c-p50", values: col((p) => p.accepts) },
      { name: "failed", cls: "c-err", values: col((p) => p.connect_failures) },
    ], count, "chart-tcp-connects", INTEGER),
    stackedChart("Drops by reason (per step)", times, col((p) => p.drops_by_reason), "chart-tcp-drops"),
  ]);
}

function seenAnything(t) {
  return t.connects || t.accepts || t.connect_failures || t.bytes_sent || t.bytes_received
    || t.rtt_us.count || t.retransmits || t.resets_sent || t.resets_received || t.drops;
}

// -> the tab's content for the edge over the window
export async function tcpTab(edge, windowS) {
  const res = await getJson("/api/tcp", { client: edge.client, server: edge.server, since: windowS });
  if (!res.ok) return [h("p", { class: "error", "data-testid": "tcp-error", text: res.error })];
  const doc = res.data, t = doc.totals;
  if (!seenAnything(t)) {
    return [h("p", { class: "empty", "data-testid": "tcp-empty",
      text: "No TCP connection between these two closed in this window (TCP metrics come from the kernel agent, not from capture files)." })];
  }
  return [h("section", { class: "tcp-charts", "data-testid": "charts-tcp" }, [
    h("p", { class: "summary", "data-testid": "summary-tcp", text: summaryLine(t, doc.step_s) }),
    totalsList(t),
    h("p", { class: "note", text: "Connections are counted in the interval in which they closed; p50/p99 are histogram bucket bounds." }),
    charts(doc),
  ])];
}
