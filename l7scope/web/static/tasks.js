// Tasks page: start an analysis task (processes, sampling rules, duration) and stop running
// ones, over GET/POST/DELETE /api/tasks (docs/api.md). While a task runs the agent captures
// only the running tasks' processes; the line at the top says what is captured now.

import { getJson } from "./api.js";
import { h, clear, fmtNum, fmtTimeNs, plural } from "./dom.js";

// -> {ok, status, data} or {ok: false, status, error} (one line), like getJson
async function sendJson(method, path, body) {
  let resp;
  try {
    resp = await fetch(path, {
      method, headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { ok: false, status: 0, error: "the agent is not answering (" + e.message + ")" };
  }
  let doc = null;
  try { doc = await resp.json(); } catch (e) { doc = null; }
  if (!resp.ok) {
    const msg = doc && typeof doc.error === "string" ? doc.error : resp.status + " " + resp.statusText;
    return { ok: false, status: resp.status, error: msg.split("\n")[0] };
  }
  return { ok: true, status: resp.status, data: doc };
}

const processes = (n) => `${n} process${n === 1 ? "" : "es"}`;

// "1, 2,3" -> ["1", "2", "3"]
function items(text) {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function input(name, label, attrs) {
  const id = `task-${name}`;
  return h("label", { for: id }, [h("span", { text: label }),
    h("input", { id, name, "data-testid": id, autocomplete: "off", spellcheck: "false", ...attrs })]);
}

function check(name, label) {
  const id = `task-${name}`;
  return h("label", { for: id, class: "check" }, [
    h("input", { id, name, type: "checkbox", checked: true, "data-testid": id }), h("span", { text: label })]);
}

function captureLine(d) {
  const c = d.capture;
  let text;
  if (c.filter === "none") text = "Packet capture: no process filter; running tasks shape sampling only.";
  else if (c.mode === "default") {
    text = c.every_process ? "No task running: every process is captured (the default task)."
      : `No task running: the default task captures pids [${c.pids.join(", ")}] and names [${c.names.join(", ")}].`;
  } else {
    text = `Capturing only the running tasks' processes (${c.filter} filter): ` +
      `${plural(c.pids.length, "pid")}${c.names.length ? ", names " + c.names.join(", ") : ""}.`;
  }
  return h("p", { class: c.problem ? "warn" : "capture-line", "data-testid": "tasks-capture",
                  "data-mode": c.mode, text: c.problem ? `${text} Not in force: ${c.problem}` : text });
}

function describeProcesses(p) {
  const parts = [];
  if (p.pids.length) parts.push("pids " + p.pids.join(", "));
  if (p.names.length) parts.push("names " + p.names.join(", "));
  if (p.exe.length) parts.push("exe " + p.exe.join(", "));
  return parts.join("; ");
}

function describeRules(r) {
  const parts = [];
  if (r.uri_regex) parts.push(`uri ~ ${r.uri_regex}`);
  parts.push(`≥ ${fmtNum(r.min_duration_ms)} ms`);
  if (r.when_4xx) parts.push("4xx");
  if (r.when_5xx) parts.push("5xx");
  const keep = [r.capture_request ? "request" : null, r.capture_response ? "response" : null].filter(Boolean);
  parts.push(keep.length ? "keeps " + keep.join(" + ") : "keeps no text");
  return parts.join(", ");
}

export class TasksView {
  constructor(root) {
    this.root = root;
    this.capture = h("div", { "data-testid": "tasks-capture-box" });
    this.procs = h("select", { id: "task-pick", "data-testid": "task-pick", "aria-label": "running process" });
    this.form = this.buildForm();
    this.message = h("p", { class: "task-message", "data-testid": "task-message", "aria-live": "polite" });
    this.list = h("div", { class: "task-list", "data-testid": "task-list" });
    root.append(h("h2", { text: "Analysis tasks" }),
      h("p", { class: "hint", text: "A task captures only the processes it names, samples them by its own rules, and ends after its duration. While any task runs, only the running tasks' processes are captured; with none, the configuration's filters and rules apply." }),
      this.capture, this.form, this.message, this.list);
    this.processesLoaded = false;
  }

  buildForm() {
    const f = h("form", { class: "task-form search-form", "data-testid": "task-form" }, [
      h("fieldset", {}, [h("legend", { text: "Processes" }),
        h("label", { for: "task-pick" }, [h("span", { text: "running process" }), this.procs]),
        h("button", { type: "button", "data-testid": "task-add-pid", text: "add pid", onclick: () => this.addPicked("pids") }),
        h("button", { type: "button", "data-testid": "task-add-name", text: "add name", onclick: () => this.addPicked("names") }),
        input("pids", "pids (comma separated)", { placeholder: "1234, 5678" }),
        input("names", "process names", { placeholder: "nginx, python3" }),
        input("exe", "executable patterns", { placeholder: "/usr/sbin/nginx, */python3*" })]),
      h("fieldset", {}, [h("legend", { text: "Sampling" }),
        input("uri_regex", "URI regex", { placeholder: "^/api/" }),
        input("min_duration_ms", "min duration (ms)", { type: "number", min: "0", step: "any", value: "500" }),
        check("when_4xx", "4xx"), check("when_5xx", "5xx"),
        check("capture_request", "keep request"), check("capture_response", "keep response")]),
      h("fieldset", {}, [h("legend", { text: "Task" }),
        input("duration_s", "duration (s)", { type: "number", min: "1", max: "86400", step: "any", value: "600" }),
        input("label", "label", { placeholder: "optional" }),
        h("button", { type: "submit", "data-testid": "task-start", text: "Start task" })]),
    ]);
    f.addEventListener("submit", (ev) => { ev.preventDefault(); this.start(); });
    return f;
  }

  addPicked(field) {
    const opt = this.procs.selectedOptions[0];
    if (!opt || !opt.value) return this.say(false, "choose a running process first");
    const el = this.form.elements[field];
    const value = field === "pids" ? opt.value : opt.getAttribute("data-name");
    const have = items(el.value);
    if (!have.includes(value)) el.value = [...have, value].join(", ");
  }

  async loadProcesses() {
    const res = await getJson("/api/processes");
    if (!res.ok) return;
    this.processesLoaded = true;
    const chosen = this.procs.value;
    clear(this.procs).append(h("option", { value: "", text: "choose…" }),
      ...res.data.processes.map((p) => h("option", { value: String(p.pid), "data-name": p.name,
        text: `${p.name} (${p.pid})${p.exe ? " " + p.exe : ""}` })));
    this.procs.value = chosen;
  }

  body() {
    const e = this.form.elements, out = { processes: {}, sampling: {} };
    const pids = items(e.pids.value).map(Number);
    if (pids.length) out.processes.pids = pids;
    if (items(e.names.value).length) out.processes.names = items(e.names.value);
    if (items(e.exe.value).length) out.processes.exe = items(e.exe.value);
    if (e.uri_regex.value.trim()) out.sampling.uri_regex = e.uri_regex.value.trim();
    if (e.min_duration_ms.value !== "") out.sampling.min_duration_ms = Number(e.min_duration_ms.value);
    for (const k of ["when_4xx", "when_5xx", "capture_request", "capture_response"]) out.sampling[k] = e[k].checked;
    if (e.duration_s.value !== "") out.duration_s = Number(e.duration_s.value);
    if (e.label.value.trim()) out.label = e.label.value.trim();
    return out;
  }

  say(ok, text) {
    this.message.className = "task-message " + (ok ? "ok" : "error");
    this.message.setAttribute("data-testid", ok ? "task-message" : "task-error");
    this.message.textContent = text;
  }

  async start() {
    const res = await sendJson("POST", "/api/tasks", this.body());
    if (!res.ok) return this.say(false, res.error);
    const t = res.data.task;
    this.say(true, `task ${t.id} started: ${processes(t.resolved_count)} now`);
    await this.refresh();
  }

  async stop(id) {
    const res = await sendJson("DELETE", `/api/tasks/${encodeURIComponent(id)}`);
    if (!res.ok) return this.say(false, res.error);
    this.say(true, `task ${id} stopped`);
    await this.refresh();
  }

  row(t) {
    const running = t.state === "running";
    const resolved = t.resolved.map((p) => `${p.name || "?"}(${p.pid})`).join(", ");
    return h("tr", { "data-testid": "task-row", "data-task-id": t.id, "data-state": t.state }, [
      h("td", { text: t.id }),
      h("td", { text: t.label || "" }),
      h("td", { "data-testid": "task-state", text: running ? "running" : `ended (${t.end_reason})` }),
      h("td", { class: "path", title: describeProcesses(t.processes), text: describeProcesses(t.processes) }),
      h("td", { class: "path", "data-testid": "task-resolved", title: resolved,
                text: running ? `${t.resolved_count}: ${resolved}` : "" }),
      h("td", { class: "path", title: describeRules(t.sampling), text: describeRules(t.sampling) }),
      h("td", { title: `started ${fmtTimeNs(t.started_ns)} UTC`, text: fmtTimeNs(t.started_ns).slice(11) }),
      h("td", { class: "num", "data-testid": "task-remaining", text: running ? `${fmtNum(t.remaining_s, 0)} s` : "–" }),
      h("td", {}, running ? h("button", { type: "button", "data-testid": "task-stop", "data-task-id": t.id,
                                         text: "Stop", onclick: () => this.stop(t.id) }) : null),
    ]);
  }

  // the list again (and the process picker when `withProcesses`, or never loaded); -> the answer
  async refresh(withProcesses) {
    if (withProcesses || !this.processesLoaded) await this.loadProcesses();
    const res = await getJson("/api/tasks");
    if (!res.ok) {
      clear(this.capture).append(h("p", { class: "error", "data-testid": "tasks-error", text: res.error }));
      return res;
    }
    const d = res.data;
    clear(this.capture).append(captureLine(d));
    clear(this.list);
    if (!d.tasks.length) {
      this.list.append(h("p", { class: "empty", "data-testid": "tasks-empty", text: "no tasks yet" }));
      return res;
    }
    this.list.append(h("table", { class: "grid", "data-testid": "task-table" }, [
      h("thead", {}, h("tr", {}, ["id", "label", "state", "processes", "resolved now", "sampling", "started (UTC)", "remaining", ""].map((x) => h("th", { text: x })))),
      h("tbody", {}, d.tasks.map((t) => this.row(t))),
    ]));
    return res;
  }
}
