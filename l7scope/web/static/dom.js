// Small DOM helpers. Captured text (paths, headers, bodies) is hostile: it only ever reaches
// the page through textContent / attributes set here, never through innerHTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of [].concat(children || [])) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h("div", {class: "x", "data-testid": "y", onclick: f}, [children...])
export function h(tag, attrs, children) {
  return fill(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined) return "–";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

export function fmtMs(v) {
  if (v === null || v === undefined) return "–";
  if (v >= 1000) return (v / 1000).toFixed(2) + " s";
  return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " ms";
}

// two significant digits: 0.043 -> "0.043", 4.25 -> "4.3", 1234 -> "1,234"
export function fmtSig(v) {
  if (v === null || v === undefined) return "–";
  if (v === 0 || Math.abs(v) >= 100) return fmtNum(v, 0);
  return String(Number(v.toPrecision(2)));
}

export function fmtRate(perSecond) {
  if (perSecond === null || perSecond === undefined) return "–";
  if (perSecond >= 1) return fmtSig(perSecond) + "/s";
  if (perSecond * 60 >= 1) return fmtSig(perSecond * 60) + "/min";
  return fmtSig(perSecond * 3600) + "/h";
}

// ns since the epoch -> "2026-11-30 19:10:42" (UTC)
export function fmtTimeNs(ns) {
  if (ns === null || ns === undefined) return "–";
  return new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19);
}

// An Exchange record's RFC 3339 "time" -> "19:10:42.123" with the date in a title.
export function fmtClock(rfc3339) {
  if (!rfc3339) return "–";
  const m = /T(\d\d:\d\d:\d\d(\.\d{1,3})?)/.exec(rfc3339);
  return m ? m[1] : rfc3339;
}

// Node id -> the name people read: "proc:nginx" -> "nginx", "remote:10.0.0.1:80" -> "10.0.0.1:80"
export function nodeLabel(id) {
  const i = id.indexOf(":");
  return i < 0 ? id : id.slice(i + 1);
}

// plural(1, "request") -> "1 request", plural(3, "error") -> "3 errors"
export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export const PROTOCOL_NAMES = { http1: "HTTP/1.x", http2: "HTTP/2", grpc: "gRPC" };
