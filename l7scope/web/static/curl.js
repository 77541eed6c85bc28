// "Copy as curl": a shell command rebuilt from a sampled request's raw text (as the API gives
// it: start line, headers, a blank line, the rendered body), the exchange giving the scheme and
// the address when the text has no Host. Redacted values stay redacted: the command carries
// exactly the text that was sampled. Everything is shell-quoted; a value with control
// characters is written $'...' with escapes, so pasting it runs nothing else.

const SKIP_HEADERS = new Set(["host", "content-length", "connection", "transfer-encoding",
  "keep-alive", "upgrade", "proxy-connection", "te", "http2-settings"]);

export function shellQuote(text) {
  if (/[\x00-\x1f\x7f]/.test(text)) {
    const esc = text.replace(/[\\']/g, (c) => "\\" + c).replace(/[\x00-\x1f\x7f]/g, (c) => {
      const named = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }[c];
      return named || "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0");
    });
    return "$'" + esc + "'";
  }
  return "'" + text.replace(/'/g, "'\\''") + "'";
}

// raw request text -> {method, target, version, headers: [[name, value]], body, whole}
export function parseRequest(raw) {
  let sep = raw.indexOf("\r\n\r\n"), sepLen = 4;
  if (sep < 0) { sep = raw.indexOf("\n\n"); sepLen = 2; }
  const whole = sep >= 0;
  const head = whole ? raw.slice(0, sep) : raw;
  const body = whole ? raw.slice(sep + sepLen) : "";
  const lines = head.split(/\r?\n/);
  const [method = "GET", target = "/", version = ""] = lines[0].split(" ");
  const headers = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return { method, target, version, headers, body, whole };
}

function serverAddress(ex) {
  if (!ex) return null;
  if (ex.authority) return ex.authority;
  return ex.side === "server" ? ex.local : ex.remote;
}

// sample: {exchange, request} from /api/samples -> {command, notes: [one-line strings]}
export function buildCurl(sample) {
  const ex = sample.exchange || {};
  const notes = [];
  if (!sample.request) return { command: null, notes: ["the request text was not captured"] };
  const req = parseRequest(sample.request);
  if (!req.whole) notes.push("the request text was cut at the capture limit: headers or body may be missing");
  const host = (req.headers.find(([k]) => k.toLowerCase() === "host") || [])[1] || serverAddress(ex) || "localhost";
  const url = /^https?:\/\//i.test(req.target) ? req.target
    : `${ex.tls ? "https" : "http"}://${host}${req.target.startsWith("/") ? "" : "/"}${req.target}`;
  const args = ["curl"];
  const h2 = ex.protocol === "http2" || ex.protocol === "grpc" || req.version === "HTTP/2";
  if (h2) args.push(ex.tls ? "--http2" : "--http2-prior-knowledge");
  if (ex.protocol === "grpc") notes.push("gRPC: curl sends the call but does not decode gRPC framing");
  const binary = /^<binary \d+ bytes>$/.test(req.body.trim());
  const hasBody = req.body !== "" && !binary;
  if (req.method === "HEAD") args.push("-I");
  else if (req.method !== "GET" || hasBody) args.push("-X", shellQuote(req.method));
  args.push(shellQuote(url));
  for (const [name, value] of req.headers) {
    const low = name.toLowerCase();
    if (SKIP_HEADERS.has(low) || low.startsWith(":")) continue;
    if (low === "content-encoding" && hasBody) { notes.push("the body is shown decoded: content-encoding left out"); continue; }
    args.push("-H", shellQuote(`${name}: ${value}`));
  }
  if (hasBody) args.push("--data-raw", shellQuote(req.body));
  if (binary) notes.push(`the body is binary (${req.body.trim().slice(1, -1)}): not included`);
  if (/\[REDACTED/.test(sample.request)) notes.push("redacted values are left redacted: fill them in before running");
  return { command: args.join(" "), notes };
}
