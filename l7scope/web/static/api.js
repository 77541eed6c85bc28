// The JSON API (docs/api.md): one fetch helper; a failure becomes a one-line message.

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === "") continue;
    q.set(k, String(v));
  }
  const text = q.toString();
  return text ? "?" + text : "";
}

// -> {ok: true, data} or {ok: false, status, error}
export async function getJson(path, params) {
  let resp;
  try {
    resp = await fetch(path + query(params), { headers: { Accept: "application/json" } });
  } catch (e) {
    return { ok: false, status: 0, error: "the agent is not answering (" + e.message + ")" };
  }
  let doc = null;
  try {
    doc = await resp.json();
  } catch (e) {
    doc = null;
  }
  if (!resp.ok) {
    const msg = doc && typeof doc.error === "string" ? doc.error : resp.status + " " + resp.statusText;
    return { ok: false, status: resp.status, error: msg.split("\n")[0] };
  }
  if (doc === null) return { ok: false, status: resp.status, error: "the answer is not JSON" };
  return { ok: true, status: resp.status, data: doc };
}
