// l7scope web UI: views Topology (with the pair panel), Search, Tasks and Status over the JSON API.
// The address bar keeps the view, the selected pair and its tab (#/topology?edge=...&tab=...),
// so a reload or a shared link opens the same place. Every POLL_MS the visible view is
// fetched again; the selection survives the refresh.

import { getJson } from "./api.js";
import { h } from "./dom.js";
import { renderTopology, edgeKey } from "./topology.js";
import { PairPanel } from "./pair.js";
import { SearchView } from "./search.js";
import { renderStatus } from "./status.js";
import { TasksView } from "./tasks.js";

export const POLL_MS = 5000;
const WINDOWS = [[300, "last 5 min"], [900, "last 15 min"], [3600, "last hour"], [21600, "last 6 hours"], [86400, "last 24 hours"]];
const VIEWS = ["topology", "search", "tasks", "status"];

const state = { view: "topology", windowS: 900, selected: null, tab: null, lastTopology: "" };
const $ = (id) => document.getElementById(id);

function readHash() {
  const [path, qs] = location.hash.replace(/^#\/?/, "").split("?");
  const q = new URLSearchParams(qs || "");
  state.view = VIEWS.includes(path) ? path : "topology";
  const edge = q.get("edge");
  state.selected = edge && edge.split("|").length === 3 ? edge : null;
  state.tab = q.get("tab");
  const w = Number(q.get("since"));
  if (WINDOWS.some(([s]) => s === w)) state.windowS = w;
}

function writeHash() {
  const q = new URLSearchParams();
  if (state.view === "topology" && state.selected) q.set("edge", state.selected);
  if (state.view === "topology" && state.selected && state.tab) q.set("tab", state.tab);
  if (state.windowS !== 900) q.set("since", String(state.windowS));
  const text = q.toString();
  history.replaceState(null, "", `#/${state.view}${text ? "?" + text : ""}`);
}

function setLive(ok, text) {
  const el = $("live");
  el.textContent = text;
  el.className = ok ? "live ok" : "live error";
}

let pair, search, tasks;

function showView() {
  for (const v of VIEWS) {
    $(`view-${v}`).hidden = v !== state.view;
    const link = $(`nav-${v}`);
    link.classList.toggle("active", v === state.view);
    link.setAttribute("aria-current", v === state.view ? "page" : "false");
  }
}

function selectEdge(e) {
  state.selected = edgeKey(e);
  state.tab = null;
  writeHash();
  for (const g of document.querySelectorAll("[data-testid=edge]")) {
    const on = g.getAttribute("data-key") === state.selected;
    g.classList.toggle("selected", on);
    g.setAttribute("aria-pressed", on ? "true" : "false");
  }
  pair.windowS = state.windowS;
  pair.open(e);
  $("pair").scrollIntoView({ block: "nearest" });
}

async function refreshTopology(force) {
  const res = await getJson("/api/topology", { since: state.windowS });
  if (!res.ok) {
    setLive(false, `topology: ${res.error}`);
    return;
  }
  setLive(true, `updated ${new Date().toISOString().slice(11, 19)} UTC`);
  const text = JSON.stringify(res.data);
  search.setNodeIds(res.data.nodes.map((n) => n.id));
  if (text === state.lastTopology && !force) return;  // unchanged: keep hover and focus as they are
  state.lastTopology = text;
  renderTopology($("graph"), res.data, { selected: state.selected, windowS: state.windowS, onSelect: selectEdge });
}

async function tick(force) {
  if (document.hidden && !force) return;
  if (state.view === "topology") {
    await refreshTopology(force);
    if (pair.edge) await pair.refresh(state.windowS);
  } else if (state.view === "status") {
    await renderStatus($("status-body"));
  } else if (state.view === "tasks") {
    const res = await tasks.refresh(force);
    setLive(res.ok, res.ok ? `updated ${new Date().toISOString().slice(11, 19)} UTC` : `tasks: ${res.error}`);
  }
}

function route() {
  readHash();
  showView();
  if (state.view === "topology" && state.selected) {
    const [client, server, protocol] = state.selected.split("|");
    pair.windowS = state.windowS;
    if (!pair.edge || edgeKey(pair.edge) !== state.selected || pair.tab !== state.tab) pair.open({ client, server, protocol }, state.tab);
  } else if (state.view === "topology") {
    pair.close();
  }
  tick(true);
}

function buildHeader() {
  for (const v of VIEWS) {
    $(`nav-${v}`).addEventListener("click", (ev) => {
      ev.preventDefault();
      state.view = v;
      writeHash();
      showView();
      tick(true);
    });
  }
  const select = $("window");
  for (const [s, label] of WINDOWS) select.append(h("option", { value: String(s), text: label }));
  select.value = String(state.windowS);
  select.addEventListener("change", () => {
    state.windowS = Number(select.value);
    writeHash();
    tick(true);
  });
}

function main() {
  readHash();
  pair = new PairPanel($("pair"), {
    onClose: () => {
      state.selected = null;
      state.tab = null;
      writeHash();
      pair.close();
      refreshTopology(true);
    },
  });
  pair.onTab = (tab) => { state.tab = tab; writeHash(); };
  search = new SearchView($("view-search"));
  tasks = new TasksView($("view-tasks"));
  buildHeader();
  window.addEventListener("hashchange", route);
  route();
  setInterval(() => tick(false), POLL_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(true); });
}

main();
