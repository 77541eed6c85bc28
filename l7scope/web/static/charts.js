// Hand-drawn SVG charts over the /api/metrics series: lines (with gaps where a step has no
// value) and stacked status bars. Each point also has a <title> so a hover reads the value.

import { s, h, fmtNum } from "./dom.js";

const W = 520, H = 170, L = 56, R = 12, T = 12, B = 28;

function niceMax(v, integer) {
  if (!(v > 0)) return integer ? 3 : 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  let top = 10 * p;
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) { top = m * p; break; }
  return integer ? 3 * Math.ceil(top / 3) : top;  // counts: whole numbers at the 3 grid lines
}

function clock(ns) {
  return new Date(ns / 1e6).toISOString().slice(11, 19);
}

function frame(maxY, fmt, t0, t1) {
  const g = s("g", { class: "axes" });
  for (let i = 0; i <= 3; i++) {
    const v = (maxY * i) / 3;
    const y = T + (H - T - B) * (1 - i / 3);
    g.append(s("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }),
             s("text", { x: L - 6, y: y + 4, "text-anchor": "end", class: "tick", text: fmt(v) }));
  }
  g.append(s("text", { x: L, y: H - 8, class: "tick", text: clock(t0) }),
           s("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "tick", text: clock(t1) + " UTC" }));
  return g;
}

function legend(series) {
  return h("div", { class: "legend" }, series.map((sr) =>
    h("span", { class: `key ${sr.cls}` }, [h("i", { "aria-hidden": "true" }), sr.name])));
}

// lineChart(title, times_ns, [{name, cls, values}], fmt, testid, {integer}): integer for counts
export function lineChart(title, times, series, fmt, testid, opts) {
  const all = series.flatMap((sr) => sr.values).filter((v) => v !== null && v !== undefined);
  const maxY = niceMax(Math.max(0, ...all), opts && opts.integer);
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (i) => L + (times.length > 1 ? (i * (W - L - R)) / (times.length - 1) : (W - L - R) / 2);
  const y = (v) => T + (H - T - B) * (1 - v / maxY);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(frame(maxY, fmt, t0, t1));
  for (const sr of series) {
    let d = "";
    let pen = false;
    const dots = s("g", { class: `dots ${sr.cls}` });
    sr.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      if (v > 0) dots.append(s("circle", { cx: x(i), cy: y(v), r: 2.5 }, [s("title", { text: `${clock(times[i])} ${sr.name}: ${fmt(v)}` })]));
    });
    svg.append(s("path", { d, class: `line ${sr.cls}` }), dots);
  }
  return h("figure", { class: "chart-box", "data-testid": testid }, [h("figcaption", { text: title }), svg, legend(series)]);
}

export const STATUS_CLASSES = ["2xx", "3xx", "4xx", "5xx", "1xx", "none"];

export function statusClass(code) {
  return code === "none" ? "none" : `${code[0]}xx`;
}

export function statusChart(title, times, series, testid) {
  const stacks = series.map((p) => {
    const c = Object.fromEntries(STATUS_CLASSES.map((k) => [k, 0]));
    for (const [code, n] of Object.entries(p.status || {})) c[statusClass(code)] += n;
    return c;
  });
  const maxY = niceMax(Math.max(0, ...stacks.map((c) => Object.values(c).reduce((a, b) => a + b, 0))));
  const n = Math.max(1, times.length);
  const bw = Math.max(1, ((W - L - R) / n) * 0.8);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(frame(maxY, (v) => fmtNum(v, 0), times[0], times[times.length - 1]));
  stacks.forEach((c, i) => {
    let base = 0;
    const x = L + ((i + 0.1) * (W - L - R)) / n;
    for (const k of STATUS_CLASSES) {
      if (!c[k]) continue;
      const y0 = T + (H - T - B) * (1 - base / maxY), y1 = T + (H - T - B) * (1 - (base + c[k]) / maxY);
      svg.append(s("rect", { x, y: y1, width: bw, height: Math.max(0.5, y0 - y1), class: `bar s${k}` },
        [s("title", { text: `${clock(times[i])} ${k}: ${c[k]}` })]));
      base += c[k];
    }
  });
  const totals = {};
  for (const p of series) for (const [code, k] of Object.entries(p.status || {})) totals[code] = (totals[code] || 0) + k;
  const keys = Object.keys(totals).sort();
  const table = h("ul", { class: "status-totals", "data-testid": `${testid}-totals` }, keys.map((code) =>
    h("li", { class: `s${statusClass(code)}`, "data-status": code, text: `${code}: ${totals[code]}` })));
  return h("figure", { class: "chart-box", "data-testid": testid }, [h("figcaption", { text: title }), svg, table]);
}

// stackedChart(title, times_ns, [{key: n}] per step, testid): bars stacked by key (reasons of
// drops, of failed connects), up to 6 colours, then the totals per key underneath.
export function stackedChart(title, times, steps, testid) {
  const totals = {};
  for (const p of steps) for (const [k, n] of Object.entries(p || {})) totals[k] = (totals[k] || 0) + n;
  const keys = Object.keys(totals).sort((a, b) => totals[b] - totals[a] || (a < b ? -1 : 1));
  const colour = (k) => `k${Math.min(keys.indexOf(k), 5)}`;
  const maxY = niceMax(Math.max(0, ...steps.map((p) => Object.values(p || {}).reduce((a, b) => a + b, 0))), true);
  const n = Math.max(1, times.length);
  const bw = Math.max(1, ((W - L - R) / n) * 0.8);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(frame(maxY, (v) => fmtNum(v, 0), times[0], times[times.length - 1]));
  steps.forEach((p, i) => {
    let base = 0;
    const x = L + ((i + 0.1) * (W - L - R)) / n;
    for (const k of keys) {
      const v = (p || {})[k];
      if (!v) continue;
      const y0 = T + (H - T - B) * (1 - base / maxY), y1 = T + (H - T - B) * (1 - (base + v) / maxY);
      svg.append(s("rect", { x, y: y1, width: bw, height: Math.max(0.5, y0 - y1), class: `bar ${colour(k)}` },
        [s("title", { text: `${clock(times[i])} ${k}: ${v}` })]));
      base += v;
    }
  });
  const list = h("ul", { class: "status-totals", "data-testid": `${testid}-totals` }, keys.length
    ? keys.map((k) => h("li", { class: colour(k), "data-key": k, text: `${k}: ${totals[k]}` }))
    : [h("li", { class: "none", text: "none" })]);
  return h("figure", { class: "chart-box", "data-testid": testid }, [h("figcaption", { text: title }), svg, list]);
}
