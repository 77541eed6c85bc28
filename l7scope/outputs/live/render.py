"""Drawing the live view with rich: the pair table, a pair's detail, the counter footer.

Every line is a rich ``Text`` cut to the terminal width (cells, so wide characters count
twice) and the screen never gets more lines than the terminal has, so nothing wraps or
scrolls. Text that comes from captured traffic (paths, headers, bodies, command names) is
never parsed as rich markup and has its control characters (C0, DEL, C1, bidirectional
overrides) replaced with "?", so captured bytes cannot move the cursor or recolour the
screen.

Counters are explained where they are shown: keys with "internal_error" are internal errors
(a bug of ours; that connection's analysis stopped), keys starting "parse_error_" are parse
errors (traffic seen but not understood), keys with "drop", "full", "shed" or "lost" are
drops (data the agent had to let go). Each non-zero one gets a line, labelled "drop",
"parse" or "bug", saying what it means (the first four; the stop line lists them all).
"""
from __future__ import annotations

from rich.text import Text

from l7scope.outputs.live.view import SAMPLE_KINDS, LiveView, RowFigures
from l7scope.outputs.live.window import CLASSES

_UNSAFE = {c: "?" for c in [*range(0x20), 0x7f, *range(0x80, 0xa0),
                            *range(0x202a, 0x202f), *range(0x2066, 0x206a)]}
_UNSAFE[0x09] = " "
HELP = "/ filter  s sort  p pause  \u2191\u2193 select  Enter open  q quit"
DETAIL_HELP = "Esc back  \u2191\u2193 sample  q quit"
MAX_FOOTER = 4

# What a counter means, by the first fragment of its name found (checked in order).
_MEANINGS = (
    ("ringbuf_full", "ring buffer full, events lost (--ringbuf-mb)"),
    ("kernel_drops", "events the kernel could not queue"),
    ("shed_memory", "parser memory budget reached, connections let go"),
    ("evicted", "connection table full, oldest let go"),
    ("queue_full", "an output's queue was full, records lost"),
    ("send_failed", "an exporter could not deliver them"),
    ("pending", "too many requests awaiting responses"),
    ("streams", "too many HTTP/2 streams open"),
    ("lost_heads", "message heads lost in a capture gap"),
    ("discarded", "bytes skipped, stream not followed"),
    ("pair_limit", "too many process pairs to aggregate"),
    ("framing_lost", "framing lost (gap or bad frames), rest skipped"),
    ("malformed", "bytes break the protocol's grammar"),
)


def clean(text: str) -> str:
    """Captured text made safe to put on a terminal."""
    return text.translate(_UNSAFE)


def _fit(text: str, width: int) -> str:
    text = clean(text)
    return text if len(text) <= width else text[:max(0, width - 1)] + "\u2026"


def duration(seconds: float | None, exact: bool = True) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    if ms < 10:
        text = f"{ms:.2f}ms"
    elif ms < 100:
        text = f"{ms:.1f}ms"
    elif ms < 1000:
        text = f"{ms:.0f}ms"
    elif seconds < 100:
        text = f"{seconds:.2f}s"
    else:
        text = f"{seconds:.0f}s"
    return text if exact else "~" + text


def count(n: int) -> str:
    if n < 10_000:
        return str(n)
    if n < 999_500:
        return f"{n / 1000:.0f}k"
    return f"{n / 1e6:.1f}M" if n < 9_950_000 else f"{n / 1e6:.0f}M"


def rate(r: float) -> str:
    return f"{r:.1f}" if r < 100 else f"{r:.0f}" if r < 100_000 else count(int(r))


# --- the table -----------------------------------------------------------------------------

def _name_widths(width: int) -> int:
    return max(8, min(40, (width - 50) // 2))


def table_header(width: int) -> Text:
    n = _name_widths(width)
    return Text(f"{'CLIENT':<{n}} {'SERVER':<{n}} {'PROTO':<5} {'REQ/S':>6} {'2XX':>4} "
                f"{'4XX':>4} {'5XX':>4} {'ERR':>4} {'P50':>7} {'P99':>7}", style="bold reverse")


def table_row(r: RowFigures, width: int, selected: bool) -> Text:
    n = _name_widths(width)
    client, server, proto = r.key
    c = r.figures.classes
    line = Text(style="reverse" if selected else "")
    line.append(f"{_fit(client, n):<{n}} {_fit(server, n):<{n}} {_fit(proto, 5):<5} "
                f"{rate(r.rate):>6} {count(c[0]):>4} ")
    line.append(f"{count(c[2]):>4}", style="yellow" if c[2] else "")
    line.append(" ")
    line.append(f"{count(c[3]):>4}", style="bold red" if c[3] else "")
    line.append(" ")
    line.append(f"{count(c[4]):>4}", style="red" if c[4] else "")
    exact = r.figures.exact
    line.append(f" {duration(r.figures.p50, exact):>7} {duration(r.figures.p99, exact):>7}")
    return line


def title(view: LiveView, rows: int) -> Text:
    t = Text("l7scope live", style="bold cyan")
    t.append(f"  {view.total} exchanges  {rows} pair{'' if rows == 1 else 's'}"
             f"  last {view.window_s}s"
             f"  sort: {('rate', 'errors', 'p99')[view.sort]}")
    if view.filter:
        t.append("  filter: ")
        t.append(clean(view.filter), style="bold")
    if view.paused:
        t.append("  PAUSED", style="bold yellow")
    return t


def recent_line(r) -> Text:
    return Text(clean(f"{r.time} {r.side:6} {r.who} {r.method} {r.path} -> {r.status} "
                      f"{duration(r.duration_s)}"))


def counter_lines(counters: dict) -> list[Text]:
    """One line per non-zero drop / parse error / internal error counter, explained."""
    found = []
    for key, value in counters.items():
        if not value or not isinstance(value, int):
            continue
        if "internal_error" in key:
            found.append(("bug", key, value, "ours; that connection's analysis stopped"))
        elif key.startswith("parse_error_"):
            found.append(("parse", key, value, _meaning(key) or "seen, not understood as HTTP"))
        elif any(w in key for w in ("drop", "full", "shed", "lost")):
            found.append(("drop", key, value, _meaning(key) or "data let go, not analysed"))
    if not found:
        return [Text("no drops, no parse errors, no internal errors", style="green")]
    style = {"drop": "yellow", "parse": "magenta", "bug": "bold red"}
    lines = []
    for kind, key, value, meaning in found[:MAX_FOOTER]:
        line = Text(f"{kind:<5} ", style=style[kind])
        line.append(f"{key}={value}", style="bold")
        line.append(f" {meaning}")
        lines.append(line)
    if len(found) > MAX_FOOTER:
        lines[-1] = Text(f"+{len(found) - MAX_FOOTER + 1} more counters (all listed at stop)")
    return lines


def _meaning(key: str) -> str | None:
    return next((text for fragment, text in _MEANINGS if fragment in key), None)


def table_screen(view: LiveView, rows: list[RowFigures], counters: dict, width: int,
                 height: int) -> list[Text]:
    footer = counter_lines(counters)
    help_line = (Text(f"filter: {clean(view.editing)}_  (Enter apply, Esc cancel)",
                      style="bold") if view.mode == "filter" else Text(HELP, style="dim"))
    note = [Text(clean(view.note), style="dim")] if view.note else []
    room = max(1, height - 3 - len(footer) - len(note))
    shown = rows[:max(1, room - 4)] if rows else []
    start = max(0, min(view.selected - len(shown) + 1, len(rows) - len(shown)))
    shown = rows[start:start + len(shown)]
    lines = [title(view, len(rows)), *note, table_header(width)]
    lines += [table_row(r, width, start + i == view.selected) for i, r in enumerate(shown)]
    if not rows:
        lines.append(Text("(no exchanges in the window" +
                          (" matching the filter)" if view.filter else ")"), style="dim"))
    recent_room = room - len(lines) + 2 - 1
    if recent_room > 0 and view.last_recent:
        lines.append(Text("recent:", style="bold"))
        lines += [recent_line(r) for r in list(view.last_recent)[-recent_room:]]
    return lines + footer + [help_line]


# --- a pair in detail ----------------------------------------------------------------------

def detail_screen(view: LiveView, now_s: float, width: int, height: int, redactor) -> list[Text]:
    row = view.rows.get(view.opened)
    client, server, proto = view.opened or ("?", "?", "?")
    head = Text("pair ", style="bold cyan")
    head.append(clean(f"{client} -> {server}  {proto}"), style="bold")
    lines = [head]
    if row is None:
        return lines + [Text(DETAIL_HELP, style="dim")]
    f = row.window.figures(now_s)
    lines.append(Text(f"last {view.window_s}s: {f.total} exchanges  p50 "
                      f"{duration(f.p50, f.exact)}  p99 {duration(f.p99, f.exact)}"))
    lines.append(Text("  ".join(f"{name} {n}" for name, n in zip(CLASSES, f.classes))))
    lines.append(Text("recent exchanges:", style="bold"))
    lines += [recent_line(r) for r in list(row.recent)[-min(6, max(1, height // 4)):]]
    samples = view.samples()
    if samples:
        view.sample_index = min(view.sample_index, len(samples) - 1)
        kind, ex = samples[view.sample_index]
        lines.append(Text(f"sampled exchange {view.sample_index + 1}/{len(samples)}: {kind}",
                          style="bold"))
        lines += [Text(t, style=s) for t, s in raw_lines(ex, redactor)]
    return lines[:max(1, height - 1)] + [Text(DETAIL_HELP, style="dim")]


def raw_lines(ex, redactor) -> list[tuple[str, str]]:
    """The sampled request and response as raw text lines (redacted), with a style each."""
    out: list[tuple[str, str]] = []
    req, resp = ex.request, ex.response
    if req is not None:
        version = req.version or ("HTTP/2" if ex.protocol != "http1" else "HTTP/1.1")
        path = redactor.redact_path(req.path or ex.path or "")
        out.append((clean(f"{req.method or ex.method or '?'} {path} {version}"), "bold green"))
        out += _message_lines(req, redactor)
    if resp is not None:
        version = resp.version or "HTTP/2"
        out.append((clean(f"{version} {resp.status if resp.status is not None else '?'}"),
                    "bold yellow" if (resp.status or 0) >= 400 else "bold green"))
        out += _message_lines(resp, redactor)
    else:
        out.append(("(no response)", "red"))
    return out


def _message_lines(msg, redactor) -> list[tuple[str, str]]:
    out = [(clean(f"{k}: {v}"), "") for k, v in redactor.redact_headers(msg.headers)]
    if msg.body_len:
        body = redactor.render_body(msg.headers, msg.body, msg.body_len)
        out += [(clean(line), "cyan") for line in body.splitlines()[:20]]
    return out
