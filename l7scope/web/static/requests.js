// The pair's Requests tab: the three sampled lists (slow, 4xx, 5xx) from /api/samples; a click
// on a row shows the raw request and response, the trace id and a "copy as curl" command.

import { getJson } from "./api.js";
import { h, clear, fmtMs, fmtClock } from "./dom.js";
import { buildCurl } from "./curl.js";

const LISTS = [
  ["slow", "Slow", "slowest first"],
  ["4xx", "4xx", "newest first"],
  ["5xx", "5xx and gRPC errors", "newest first"],
];

export function sampleKey(smp) {
  const ex = smp.exchange || {};
  return [smp.list, ex.side, ex.conn_id, ex.stream_id, ex.start_ns, ex.path].join("|");
}

function row(smp, selected, onPick) {
  const ex = smp.exchange || {};
  const status = ex.grpc_status !== null && ex.grpc_status !== undefined && ex.grpc_status !== 0
    ? `${ex.status ?? "–"} / grpc ${ex.grpc_status}` : String(ex.status ?? "no response");
  const pick = () => onPick(smp);
  return h("tr", {
    class: "sample-row" + (selected ? " selected" : ""), "data-testid": "sample-row",
    "data-path": ex.path, "data-status": ex.status ?? "", "data-list": smp.list,
    tabindex: "0", role: "button", "aria-pressed": selected ? "true" : "false",
    onclick: pick, onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); } },
  }, [
    h("td", { title: ex.time || "", text: fmtClock(ex.time) }),
    h("td", { text: ex.side }),
    h("td", { class: "path", title: `${ex.method} ${ex.path}`, text: `${ex.method} ${ex.path}` }),
    h("td", { text: status }),
    h("td", { class: "num", text: fmtMs(ex.duration_ns == null ? null : ex.duration_ns / 1e6) }),
  ]);
}

function listSection([name, title, order], result, selectedKey, onPick) {
  const body = !result.ok
    ? h("p", { class: "error", "data-testid": "samples-error", text: result.error })
    : !result.data.samples.length
      ? h("p", { class: "empty", text: "none sampled in this window" })
      : h("table", { class: "grid" }, [
          h("thead", {}, h("tr", {}, ["time (UTC)", "side", "request", "status", "duration"].map((t) => h("th", { text: t })))),
          h("tbody", {}, result.data.samples.map((smp) => row(smp, sampleKey(smp) === selectedKey, onPick))),
        ]);
  const count = result.ok ? ` (${result.data.samples.length})` : "";
  return h("section", { class: "sample-list", "data-testid": `samples-${name}` }, [
    h("h3", { text: `${title}${count}` }, [h("small", { text: ` ${order}` })]), body]);
}

function rawBlock(label, text, testid) {
  return h("div", { class: "raw" }, [
    h("h4", { text: label }),
    text === null || text === undefined
      ? h("p", { class: "empty", "data-testid": testid, text: "not captured" })
      : h("pre", { "data-testid": testid, text }),
  ]);
}

export function renderDetail(container, smp) {
  clear(container);
  const ex = smp.exchange || {};
  const trace = smp.trace || ex.trace;
  const curl = buildCurl(smp);
  const copyBtn = h("button", { type: "button", "data-testid": "copy-curl", text: "Copy as curl" });
  const cmd = h("pre", { class: "curl", "data-testid": "curl-command", text: curl.command || "(no request text to build from)" });
  copyBtn.addEventListener("click", async () => {
    if (!curl.command) return;
    try {
      await navigator.clipboard.writeText(curl.command);
      copyBtn.textContent = "Copied";
    } catch (e) {  // no clipboard permission: select the text for a manual copy
      const range = document.createRange();
      range.selectNodeContents(cmd);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      copyBtn.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { copyBtn.textContent = "Copy as curl"; }, 2000);
  });
  container.append(
    h("h3", { text: `${ex.method || "?"} ${ex.path || "?"} → ${ex.status ?? "no response"}` }),
    h("dl", { class: "meta" }, [
      h("dt", { text: "sampled as" }), h("dd", { text: smp.reason }),
      h("dt", { text: "observed by" }), h("dd", { text: `${ex.side} ${ex.name || ex.comm || ""} (pid ${ex.pid})` }),
      h("dt", { text: "time" }), h("dd", { text: ex.time || "–" }),
      h("dt", { text: "duration" }), h("dd", { text: fmtMs(ex.duration_ns == null ? null : ex.duration_ns / 1e6) }),
      h("dt", { text: "connection" }), h("dd", { text: `${ex.local} ⇄ ${ex.remote}${ex.tls ? " (TLS)" : ""}` }),
      h("dt", { text: "trace id" }), h("dd", { "data-testid": "sample-trace-id", text: trace ? `${trace.trace_id} (${trace.provider})` : "none" }),
      ex.partial ? h("dt", { text: "partial" }) : null,
      ex.partial ? h("dd", { text: (ex.notes || []).join("; ") }) : null,
    ]),
    h("div", { class: "raw-pair" }, [rawBlock("Request", smp.request, "sample-request"), rawBlock("Response", smp.response, "sample-response")]),
    h("div", { class: "curl-box" }, [copyBtn, cmd, ...curl.notes.map((n) => h("p", { class: "note", text: n }))]),
  );
}

// The tab: the selection survives refreshes of the lists, and the detail is rebuilt only when
// another sample is picked (a refresh never clears text the user is selecting to copy).
export class RequestsTab {
  constructor() {
    this.selectedKey = null;
    this.selected = null;
    this.lists = null;
    this.detail = null;
    this.shownKey = undefined;
    this.results = [];
  }

  async render(container, edge, windowS) {
    const results = await Promise.all(LISTS.map(([name]) => getJson("/api/samples",
      { client: edge.client, server: edge.server, list: name, since: windowS, limit: 20 })));
    if (!this.lists || !container.contains(this.lists)) {
      this.lists = h("div", { class: "sample-lists" });
      this.detail = h("div", { class: "sample-detail", "data-testid": "sample-detail" });
      this.shownKey = undefined;
      clear(container).append(this.lists, this.detail);
    }
    this.results = results;
    this.redrawLists();
    if (this.shownKey !== this.selectedKey) this.showDetail();
  }

  pick(smp) {
    this.selectedKey = sampleKey(smp);
    this.selected = smp;
    this.redrawLists();
    this.showDetail();
  }

  showDetail() {
    this.shownKey = this.selectedKey;
    if (this.selected) renderDetail(this.detail, this.selected);
    else clear(this.detail).append(h("p", { class: "empty", text: "Click a sampled request to read it." }));
  }

  redrawLists() {
    const pick = (smp) => this.pick(smp);
    clear(this.lists).append(...LISTS.map((l, i) => listSection(l, this.results[i], this.selectedKey, pick)));
  }
}
