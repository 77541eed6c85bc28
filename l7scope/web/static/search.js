// Exchange search: the filters of GET /api/exchanges, results newest first. A 400 from the API
// (a bad regex, a status out of range) is shown as its one-line message.

import { getJson } from "./api.js";
import { h, clear, fmtMs, fmtClock, plural, PROTOCOL_NAMES } from "./dom.js";

const FIELDS = [
  { name: "since", label: "since (s)", type: "number", placeholder: "e.g. 3600", step: "any", min: "0" },
  { name: "client", label: "client", type: "text", placeholder: "proc:curl", list: "node-ids" },
  { name: "server", label: "server", type: "text", placeholder: "proc:nginx", list: "node-ids" },
  { name: "protocol", label: "protocol", options: ["", "http1", "http2", "grpc"] },
  { name: "status_min", label: "status ≥", type: "number", placeholder: "100", min: "100", max: "999" },
  { name: "status_max", label: "status ≤", type: "number", placeholder: "599", min: "100", max: "999" },
  { name: "min_duration_ms", label: "min duration (ms)", type: "number", placeholder: "500", step: "any", min: "0" },
  { name: "path_regex", label: "path regex", type: "text", placeholder: "^/api/" },
  { name: "limit", label: "limit", type: "number", placeholder: "100", min: "1", max: "1000" },
];

function field(f) {
  const id = `search-${f.name}`;
  const input = f.options
    ? h("select", { id, name: f.name, "data-testid": id }, f.options.map((o) => h("option", { value: o, text: o ? PROTOCOL_NAMES[o] : "any" })))
    : h("input", { id, name: f.name, "data-testid": id, type: f.type, placeholder: f.placeholder, step: f.step,
                   min: f.min, max: f.max, list: f.list, autocomplete: "off", spellcheck: "false" });
  return h("label", { for: id }, [h("span", { text: f.label }), input]);
}

function resultRow(ex) {
  return h("tr", { "data-testid": "search-row", "data-status": ex.status ?? "", "data-path": ex.path }, [
    h("td", { title: ex.time || "", text: fmtClock(ex.time) }),
    h("td", { text: ex.side }),
    h("td", { class: "pair", title: `${ex.client} → ${ex.server}`, text: `${ex.client} → ${ex.server}` }),
    h("td", { text: PROTOCOL_NAMES[ex.protocol] || ex.protocol }),
    h("td", { text: ex.method }),
    h("td", { class: "path", title: ex.path, text: ex.path }),
    h("td", { text: ex.status === null ? "none" : String(ex.status) + (ex.grpc_status ? ` / grpc ${ex.grpc_status}` : "") }),
    h("td", { class: "num", text: fmtMs(ex.duration_ns == null ? null : ex.duration_ns / 1e6) }),
  ]);
}

export class SearchView {
  constructor(root) {
    this.root = root;
    this.form = h("form", { class: "search-form", "data-testid": "search-form", role: "search" }, [
      ...FIELDS.map(field),
      h("button", { type: "submit", "data-testid": "search-submit", text: "Search" }),
    ]);
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.run(); });
    this.status = h("p", { class: "search-status", "data-testid": "search-status", "aria-live": "polite" });
    this.results = h("div", { class: "search-results", "data-testid": "search-results" });
    this.nodes = h("datalist", { id: "node-ids" });
    root.append(h("h2", { text: "Exchange search" }), this.form, this.nodes, this.status, this.results);
  }

  setNodeIds(ids) {
    clear(this.nodes).append(...ids.map((id) => h("option", { value: id })));
  }

  params() {
    const out = {};
    for (const el of this.form.elements) if (el.name && el.value.trim() !== "") out[el.name] = el.value.trim();
    return out;
  }

  async run() {
    this.status.classList.remove("error");
    this.status.textContent = "searching…";
    const res = await getJson("/api/exchanges", this.params());
    clear(this.results);
    if (!res.ok) {
      this.status.classList.add("error");
      this.status.setAttribute("data-testid", "search-error");
      this.status.textContent = res.error;
      return;
    }
    this.status.setAttribute("data-testid", "search-status");
    const found = res.data.exchanges;
    this.status.textContent = `${plural(found.length, "exchange")}, newest first`
      + (res.data.truncated ? " (the regex scan stopped at its limit: narrow the other filters)" : "");
    if (!found.length) return;
    this.results.append(h("table", { class: "grid", "data-testid": "search-table" }, [
      h("thead", {}, h("tr", {}, ["time (UTC)", "side", "client → server", "protocol", "method", "path", "status", "duration"].map((t) => h("th", { text: t })))),
      h("tbody", {}, found.map(resultRow)),
    ]));
  }
}
