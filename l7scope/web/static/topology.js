// The topology graph: nodes (processes, remote ends) in columns, clients left and servers
// right, edges as curves coloured by error ratio, drawn in SVG.
//
// Layout: edges are taken most requests first and kept when they close no cycle; each node's
// column is its longest path from a node nothing calls (so curl -> nginx -> python3 reads left
// to right); a dropped (cycle) edge is drawn as a curve below. An edge across several columns
// gets a lane (a waypoint) in each column it crosses. Within a column nodes and lanes are
// ordered by the mean row of what links into them, then by id, so the picture is stable
// between refreshes.
//
// A pair with TCP but no recognised protocol (protocol "tcp": a database, a custom protocol)
// is a dashed line labelled with its bytes, connections and retransmits; it opens on the TCP
// tab. An L7 edge names its pair's TCP figures in its description (title, aria-label).

import { s, h, clear, fmtMs, fmtNum, fmtRate, fmtSig, nodeLabel, plural, PROTOCOL_NAMES } from "./dom.js";

const COL_W = 340, ROW_H = 96, NODE_W = 168, NODE_H = 44, PAD = 24, LOOP_ROOM = 56;
export const AMBER_RATIO = 0.01, RED_RATIO = 0.05;

export function edgeKey(e) {
  return `${e.client}|${e.server}|${e.protocol}`;
}

export function isTcpOnly(e) {
  return e.protocol === "tcp";
}

export function errorClass(e) {
  if (isTcpOnly(e)) return "tcp";
  if (!e.requests) return "idle";
  const ratio = e.errors / e.requests;
  return ratio >= RED_RATIO ? "red" : ratio >= AMBER_RATIO ? "amber" : "green";
}

function reaches(adj, from, to) {
  const seen = new Set([from]);
  const stack = [from];
  while (stack.length) {
    const n = stack.pop();
    if (n === to) return true;
    for (const m of adj.get(n) || []) if (!seen.has(m)) { seen.add(m); stack.push(m); }
  }
  return false;
}

function columns(nodes, edges) {
  const adj = new Map(nodes.map((n) => [n.id, []]));
  const forward = [];
  for (const e of edges) {  // the API lists edges most requests first
    if (e.client === e.server || reaches(adj, e.server, e.client)) continue;
    adj.get(e.client).push(e.server);
    forward.push(e);
  }
  const col = new Map(nodes.map((n) => [n.id, 0]));
  for (let round = 0; round < nodes.length; round++) {  // longest path on a DAG: <= n rounds
    let moved = false;
    for (const e of forward) {
      if (col.get(e.client) + 1 > col.get(e.server)) { col.set(e.server, col.get(e.client) + 1); moved = true; }
    }
    if (!moved) break;
  }
  return col;
}

// Columns hold the nodes and, for an edge that spans several columns, one waypoint per column
// crossed (so a long edge has its own lane and never runs behind a node); each column is
// ordered by the mean row of what links into it, then by id.
export function layout(nodes, edges) {
  const col = columns(nodes, edges);
  const members = new Map();
  const add = (c, id) => { if (!members.has(c)) members.set(c, []); members.get(c).push(id); };
  for (const n of nodes) add(col.get(n.id), n.id);
  const into = new Map();  // id -> ids linking into it from the column before
  const link = (from, to) => { if (!into.has(to)) into.set(to, []); into.get(to).push(from); };
  const via = new Map();  // edge key -> waypoint ids
  for (const e of edges) {
    const c0 = col.get(e.client), c1 = col.get(e.server);
    if (c1 <= c0) continue;
    let prev = e.client;
    const points = [];
    for (let c = c0 + 1; c < c1; c++) {
      const id = `~via:${edgeKey(e)}:${c}`;  // "~" sorts after node ids
      add(c, id);
      points.push(id);
      link(prev, id);
      prev = id;
    }
    link(prev, e.server);
    via.set(edgeKey(e), points);
  }
  const looped = new Set();  // ends of loops (self, same column, leftwards): room below them
  for (const e of edges) {
    if (col.get(e.server) <= col.get(e.client)) { looped.add(e.client); looped.add(e.server); }
  }
  const row = new Map();
  const pos = new Map();
  let bottom = 0;
  for (const c of [...members.keys()].sort((a, b) => a - b)) {
    const key = (id) => {
      const r = (into.get(id) || []).filter((f) => row.has(f)).map((f) => row.get(f));
      return r.length ? r.reduce((a, b) => a + b, 0) / r.length : Infinity;
    };
    const ids = members.get(c).sort((a, b) => key(a) - key(b) || (a < b ? -1 : a > b ? 1 : 0));
    let y = PAD;
    ids.forEach((id, i) => {
      row.set(id, i);
      pos.set(id, { x: PAD + c * COL_W, y, col: c });
      bottom = Math.max(bottom, y);
      y += ROW_H + (looped.has(id) ? LOOP_ROOM : 0);
    });
  }
  const routes = new Map([...via].map(([k, ids]) => [k, ids.map((id) => pos.get(id))]));
  const ncols = members.size ? Math.max(...members.keys()) + 1 : 0;
  return { pos, routes, width: PAD * 2 + Math.max(0, ncols - 1) * COL_W + NODE_W,
           height: bottom + PAD + NODE_H + 72 };
}

function edgePath(a, b, offset, waypoints) {
  if (b.col > a.col) {
    const mid = (p) => p.y + NODE_H / 2 + offset;
    const stops = [[a.x + NODE_W, mid(a)]];
    for (const w of waypoints) stops.push([w.x, mid(w)], [w.x + NODE_W, mid(w)]);
    stops.push([b.x, mid(b)]);
    let d = `M${stops[0][0]},${stops[0][1]}`;
    for (let i = 1; i < stops.length; i++) {
      const [x0, y0] = stops[i - 1], [x1, y1] = stops[i];
      const dx = (x1 - x0) / 2;
      d += i % 2 ? ` C${x0 + dx},${y0} ${x1 - dx},${y1} ${x1},${y1}` : ` L${x1},${y1}`;
    }
    const label = waypoints.length  // on the first lane, where no node is
      ? { x: waypoints[0].x + NODE_W / 2, y: mid(waypoints[0]) + 2 }
      : { x: (stops[0][0] + stops[1][0]) / 2, y: (stops[0][1] + stops[1][1]) / 2 };
    return { d, mid: label };
  }
  // same column, leftwards (a call back, or a cycle) or to itself: a loop under the boxes,
  // its label under the loop
  const spread = a === b ? 34 + Math.abs(offset) : offset;
  const x0 = a.x + NODE_W / 2 + spread, y0 = a.y + NODE_H, x1 = b.x + NODE_W / 2 - spread, y1 = b.y + NODE_H;
  const dip = Math.max(y0, y1) + 30 + Math.abs(offset);
  return { d: `M${x0},${y0} C${x0},${dip} ${x1},${dip} ${x1},${y1}`,
           mid: { x: (x0 + x1) / 2, y: dip + 30 } };
}

// 1000 -> "1,000 B", 6400 -> "6.3 KiB", 1048576 -> "1 MiB"
export function fmtSize(n) {
  if (!(n >= 1024)) return `${fmtNum(n || 0, 0)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${fmtSig(v)} ${units[i]}`;
}

function tcpCounts(t) {
  const conns = Math.max(t.connects, t.accepts);
  return [plural(conns, "conn"), t.connect_failures ? `${t.connect_failures} failed` : null,
          t.retransmits ? `${fmtNum(t.retransmits, 0)} retrans` : null].filter(Boolean).join(" · ");
}

function tcpText(t) {
  return `${plural(Math.max(t.connects, t.accepts), "connection")}, ${t.connect_failures} failed connects, `
    + `${fmtSize(t.bytes_sent)} sent, ${fmtSize(t.bytes_received)} received, `
    + `${plural(t.retransmits, "retransmit")}, ${plural(t.resets_sent + t.resets_received, "reset")}, ${plural(t.drops, "drop")}`;
}

function edgeLabels(e, windowS) {
  if (isTcpOnly(e)) {
    return [`TCP · ${fmtSize(e.tcp.bytes_sent)} → · ${fmtSize(e.tcp.bytes_received)} ←`, tcpCounts(e.tcp)];
  }
  const err = e.errors ? ` · ${e.errors} err` : "";
  return [`${PROTOCOL_NAMES[e.protocol] || e.protocol} · p99 ${fmtMs(e.p99_ms)}`,
          `${e.requests} req · ${fmtRate(e.requests / windowS)}${err}`];
}

function describe(e, windowS) {
  if (isTcpOnly(e)) {
    return `${nodeLabel(e.client)} to ${nodeLabel(e.server)}, TCP only (no recognised protocol): ${tcpText(e.tcp)}`;
  }
  const tcp = e.tcp ? `; TCP: ${tcpText(e.tcp)}` : "";
  return `${nodeLabel(e.client)} to ${nodeLabel(e.server)}, ${PROTOCOL_NAMES[e.protocol] || e.protocol}: `
    + `${e.requests} requests (${fmtRate(e.requests / windowS)}), ${e.errors} errors, `
    + `p50 ${fmtMs(e.p50_ms)}, p99 ${fmtMs(e.p99_ms)}${tcp}`;
}

function lineWidth(e) {
  const weight = isTcpOnly(e) ? Math.log10(1 + e.tcp.bytes_sent + e.tcp.bytes_received) / 3
    : Math.log10(1 + e.requests) * 1.5;
  return 1.5 + Math.min(5, weight);
}

function drawEdge(e, a, b, offset, waypoints, ctx) {
  const { d, mid } = edgePath(a, b, offset, waypoints);
  const width = lineWidth(e);
  const key = edgeKey(e);
  const g = s("g", {
    class: `edge err-${errorClass(e)}${isTcpOnly(e) ? " tcp-only" : ""}${key === ctx.selected ? " selected" : ""}`,
    "data-testid": "edge", "data-client": e.client, "data-server": e.server,
    "data-protocol": e.protocol, "data-key": key, role: "button", tabindex: "0",
    "aria-label": describe(e, ctx.windowS), "aria-pressed": key === ctx.selected ? "true" : "false",
    onclick: () => ctx.onSelect(e),
    onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); ctx.onSelect(e); } },
  }, [
    s("title", { text: describe(e, ctx.windowS) }),
    s("path", { d, class: "edge-hit" }),
    s("path", { d, class: "edge-line", "stroke-width": width.toFixed(1), "marker-end": `url(#arrow-${errorClass(e)})` }),
    ...edgeLabels(e, ctx.windowS).map((text, i) => s("text", {
      x: mid.x, y: mid.y - 20 + i * 13, class: "edge-label", "text-anchor": "middle", text })),
  ]);
  return g;
}

function drawNode(n, p) {
  const name = n.name || nodeLabel(n.id);
  const short = name.length > 22 ? name.slice(0, 21) + "…" : name;
  const sub = n.kind === "process" ? (n.pid !== null ? `process · pid ${n.pid}` : "process") : "remote";
  const tip = [name, n.exe, n.container_id ? `container ${n.container_id}` : null].filter(Boolean).join("\n");
  return s("g", { class: `node node-${n.kind}`, "data-testid": "node", "data-id": n.id,
                  transform: `translate(${p.x},${p.y})` }, [
    s("title", { text: tip }),
    s("rect", { width: NODE_W, height: NODE_H, rx: 6, ry: 6 }),
    s("text", { x: 10, y: 18, class: "node-name", text: short }),
    s("text", { x: 10, y: 34, class: "node-sub", text: sub }),
  ]);
}

function markers() {
  return s("defs", {}, ["green", "amber", "red", "idle", "tcp"].map((c) =>
    s("marker", { id: `arrow-${c}`, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
                  markerHeight: "7", orient: "auto-start-reverse", class: `arrow err-${c}` },
      [s("path", { d: "M0,0 L10,5 L0,10 z" })])));
}

// Draws doc ({nodes, edges}) into container; ctx: {selected, windowS, onSelect}.
export function renderTopology(container, doc, ctx) {
  const focused = document.activeElement && document.activeElement.getAttribute
    ? document.activeElement.getAttribute("data-key") : null;
  clear(container);
  if (!doc.edges.length) {
    container.append(h("p", { class: "empty", "data-testid": "topology-empty",
      text: "No traffic in this window yet. Requests between processes appear here within seconds." }));
    return;
  }
  const { pos, routes, width, height } = layout(doc.nodes, doc.edges);
  const svg = s("svg", { class: "topology", "data-testid": "topology-graph", role: "group",
                         "aria-label": "topology", width, height, viewBox: `0 0 ${width} ${height}` });
  svg.append(markers());
  const pairCount = new Map();
  const edgesG = s("g", { class: "edges" });
  for (const e of doc.edges) {
    const pair = [e.client, e.server].sort().join("|");
    const k = pairCount.get(pair) || 0;
    pairCount.set(pair, k + 1);
    const offset = (k % 2 ? 1 : -1) * Math.ceil(k / 2) * 16;
    edgesG.append(drawEdge(e, pos.get(e.client), pos.get(e.server), offset, routes.get(edgeKey(e)) || [], ctx));
  }
  const nodesG = s("g", { class: "nodes" }, doc.nodes.map((n) => drawNode(n, pos.get(n.id))));
  svg.append(edgesG, nodesG);
  container.append(svg);
  if (doc.tcp_only_left_out) {
    container.append(h("p", { class: "note", "data-testid": "tcp-only-left-out",
      text: `${plural(doc.tcp_only_left_out, "more TCP-only pair")} not drawn: the busiest by bytes are shown.` }));
  }
  if (focused) {
    const again = svg.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}
