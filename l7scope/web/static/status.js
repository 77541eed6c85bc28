// Counters / status page from /api/status: drops named as drops, parse errors as parse errors.

import { getJson } from "./api.js";
import { h, clear, fmtNum, fmtTimeNs } from "./dom.js";

function counterTable(title, counters, testid, note) {
  const names = Object.keys(counters).sort();
  return h("section", { class: "counters", "data-testid": testid }, [
    h("h3", { text: title }),
    note ? h("p", { class: "note", text: note }) : null,
    names.length
      ? h("table", { class: "grid" }, h("tbody", {}, names.map((k) =>
          h("tr", { class: counters[k] ? "nonzero" : null, "data-counter": k }, [
            h("th", { scope: "row", text: k }), h("td", { class: "num", text: fmtNum(counters[k], 0) })]))))
      : h("p", { class: "empty", text: "none" }),
  ]);
}

export async function renderStatus(root) {
  const res = await getJson("/api/status");
  const body = h("div");
  if (!res.ok) {
    body.append(h("p", { class: "error", "data-testid": "status-error", text: res.error }));
  } else {
    const d = res.data;
    const drops = d.drops || {}, parse = d.parse_errors || {};
    const other = Object.fromEntries(Object.entries(d.counters || {}).filter(([k]) => !(k in drops) && !(k in parse)));
    const lost = Object.values(drops).reduce((a, b) => a + b, 0);
    body.append(
      h("dl", { class: "meta", "data-testid": "status-meta" }, [
        h("dt", { text: "version" }), h("dd", { text: d.version }),
        h("dt", { text: "node" }), h("dd", { text: d.node }),
        h("dt", { text: "source" }), h("dd", { text: d.source }),
        h("dt", { text: "started" }), h("dd", { text: `${fmtTimeNs(d.started_ns)} UTC (up ${fmtNum(d.uptime_s, 0)} s)` }),
        h("dt", { text: "store" }), h("dd", { text: `${d.store.kind || "–"} ${d.store.path || ""}` }),
        h("dt", { text: "counters at" }), h("dd", { text: d.counters_time_ns ? `${fmtTimeNs(d.counters_time_ns)} UTC` : "no snapshot yet" }),
        h("dt", { text: "API internal errors" }), h("dd", { text: String(d.api_internal_errors) }),
      ]),
      h("p", { class: lost ? "warn" : "ok", "data-testid": "drops-summary",
               text: lost ? `${fmtNum(lost, 0)} lost or not kept (see Drops)` : "nothing dropped" }),
      h("div", { class: "counter-tables" }, [
        counterTable("Drops", drops, "drops", "something lost or not kept (not a parse error)"),
        counterTable("Parse errors", parse, "parse-errors", "captured bytes that did not parse (nothing was lost)"),
        counterTable("Other counters", other, "counters"),
      ]),
    );
  }
  clear(root).append(h("h2", { text: "Agent status" }), ...body.childNodes);
}
