// The pair panel opened by a click on an edge: tabs HTTP/1.x and HTTP/2 / gRPC (charts over
// time from /api/metrics), Requests (requests.js) and TCP (tcp.js, from /api/tcp). A TCP-only
// edge (protocol "tcp") opens on its TCP tab, the others disabled.

import { getJson } from "./api.js";
import { h, clear, fmtSig, fmtRate, nodeLabel, plural, PROTOCOL_NAMES } from "./dom.js";
import { lineChart, statusChart } from "./charts.js";
import { RequestsTab } from "./requests.js";
import { tcpTab } from "./tcp.js";

export const TABS = [
  { id: "http1", label: "HTTP/1.x" },
  { id: "http2", label: "HTTP/2 / gRPC" },
  { id: "requests", label: "Requests" },
  { id: "tcp", label: "TCP" },
];

export function defaultTab(protocol) {
  return protocol === "tcp" ? "tcp" : protocol === "http1" ? "http1" : "http2";
}

const NO_L7 = "no request of a recognised protocol between these two: a TCP-only pair";

// The tabs for an edge: a TCP-only pair's HTTP tabs are disabled, with the reason as title.
export function tabsFor(edge) {
  if (!edge || edge.protocol !== "tcp") return TABS;
  return TABS.map((t) => (t.id === "tcp" ? t : { ...t, disabled: NO_L7 }));
}

function sum(series, f) {
  return series.reduce((a, p) => a + f(p), 0);
}

function protocolCharts(doc, protocol) {
  const series = doc.series;
  const times = series.map((p) => p.t_ns);
  const requests = sum(series, (p) => p.requests), errors = sum(series, (p) => p.errors);
  const spanS = (doc.to_ns - doc.from_ns) / 1e9;
  const pick = (side, q) => series.map((p) => (p[side] ? p[side][q] : null));
  const summary = h("p", { class: "summary", "data-testid": `summary-${protocol}` },
    `${PROTOCOL_NAMES[protocol]}: ${plural(requests, "request")} (${fmtRate(requests / spanS)}), `
    + `${plural(errors, "error")}${requests ? ` (${((100 * errors) / requests).toFixed(1)} %)` : ""}, step ${doc.step_s} s`);
  return h("section", { class: "protocol-charts", "data-testid": `charts-${protocol}` }, [
    summary,
    h("div", { class: "charts" }, [
      lineChart("Request rate (req/s)", times, [{ name: "requests/s", cls: "c-req", values: series.map((p) => p.requests_per_s) }],
        fmtSig, `chart-rate-${protocol}`),
      lineChart("Error rate (errors/s)", times, [{ name: "errors/s", cls: "c-err", values: series.map((p) => p.errors_per_s) }],
        fmtSig, `chart-errors-${protocol}`),
      lineChart("Duration (ms)", times, [
        { name: "p50 server", cls: "c-p50", values: pick("server_duration_ms", "p50") },
        { name: "p99 server", cls: "c-p99", values: pick("server_duration_ms", "p99") },
        { name: "p99 client", cls: "c-p99c", values: pick("client_duration_ms", "p99") },
      ], fmtSig, `chart-duration-${protocol}`),
      statusChart("Status codes (requests per step)", times, series, `chart-status-${protocol}`),
    ]),
  ]);
}

export class PairPanel {
  constructor(root, { onClose }) {
    this.root = root;
    this.onClose = onClose;
    this.edge = null;
    this.tab = null;
    this.requests = new RequestsTab();
    this.seq = 0;
  }

  open(edge, tab) {
    const same = this.edge && this.edge.client === edge.client && this.edge.server === edge.server;
    if (!same) this.requests = new RequestsTab();
    this.edge = { client: edge.client, server: edge.server, protocol: edge.protocol };
    this.tab = tab && tabsFor(edge).some((t) => t.id === tab && !t.disabled) ? tab : defaultTab(edge.protocol);
    this.drawFrame();
    return this.refresh();
  }

  close() {
    this.edge = null;
    clear(this.root);
    this.root.hidden = true;
  }

  drawFrame() {
    const e = this.edge;
    this.root.hidden = false;
    this.body = h("div", { class: "tab-body", role: "tabpanel", "data-testid": `tabpanel-${this.tab}` });
    const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "pair views" }, tabsFor(e).map((t) =>
      h("button", {
        type: "button", role: "tab", "data-testid": `tab-${t.id}`, "aria-selected": t.id === this.tab ? "true" : "false",
        disabled: t.disabled ? true : null, "aria-disabled": t.disabled ? "true" : null,
        title: t.disabled || null, class: t.id === this.tab ? "active" : null,
        onclick: () => { if (!t.disabled) { this.tab = t.id; this.drawFrame(); this.refresh(); this.onTab && this.onTab(t.id); } },
        text: t.label,
      })));
    clear(this.root).append(
      h("header", { class: "pair-head" }, [
        h("h2", { "data-testid": "pair-title", text: `${nodeLabel(e.client)} → ${nodeLabel(e.server)}` }),
        h("span", { class: "pair-ids", text: `${e.client} → ${e.server} · ${e.protocol === "tcp" ? "TCP only" : PROTOCOL_NAMES[e.protocol] || e.protocol}` }),
        h("button", { type: "button", class: "close", "data-testid": "pair-close", "aria-label": "close the pair",
                      onclick: () => this.onClose(), text: "×" }),
      ]),
      tabs, this.body);
  }

  // Fetches the current tab's data; an answer that arrives after a newer request is dropped.
  async refresh(windowS) {
    if (!this.edge) return;
    if (windowS !== undefined) this.windowS = windowS;
    const seq = ++this.seq;
    if (this.tab === "requests") {  // updates its own part of the panel in place
      await this.requests.render(this.body, this.edge, this.windowS);
      return;
    }
    const body = h("div");
    if (this.tab === "tcp") {
      const parts = await tcpTab(this.edge, this.windowS);
      if (seq !== this.seq || !this.edge) return;
      clear(this.body).append(...parts);
      return;
    }
    const protocols = this.tab === "http1" ? ["http1"] : ["http2", "grpc"];
    const docs = await Promise.all(protocols.map((p) => getJson("/api/metrics",
      { client: this.edge.client, server: this.edge.server, protocol: p, since: this.windowS })));
    const failed = docs.find((d) => !d.ok);
    if (failed) body.append(h("p", { class: "error", "data-testid": "metrics-error", text: failed.error }));
    const shown = docs.map((d, i) => [d, protocols[i]]).filter(([d]) => d.ok && sum(d.data.series, (p) => p.requests) > 0);
    for (const [d, p] of shown) body.append(protocolCharts(d.data, p));
    if (!failed && !shown.length) {
      body.append(h("p", { class: "empty", "data-testid": "metrics-empty",
        text: `No ${protocols.map((p) => PROTOCOL_NAMES[p]).join(" or ")} requests between these two in this window.` }));
    }
    if (seq !== this.seq || !this.edge) return;
    clear(this.body).append(...body.childNodes);
  }
}
