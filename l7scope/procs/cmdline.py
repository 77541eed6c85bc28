"""A process's command line, bounded and with the secrets in its arguments redacted.

Theory of operation
-------------------
``/proc/PID/cmdline`` is the argument vector joined by NUL bytes (a process may rewrite it
into one string with spaces, as nginx and postgres do). ``parse_cmdline`` takes at most
``max_bytes`` of it (the caller reads ``max_bytes + 1`` so a longer one is known to be cut),
splits it into arguments, decodes them as UTF-8 (bad bytes replaced) and redacts:

* ``--name=value``, ``-name=value`` and ``NAME=value`` (environment style, as after ``env``):
  the value, when the name is a secret name;
* ``--name value`` / ``-name value``: the next argument, when the name is a secret name and
  the next argument does not start with ``-`` (then the flag had no value);
* ``scheme://user:password@host`` anywhere in an argument: the password. When the line was cut
  inside such a URL (no ``@`` yet), everything after ``user:`` is replaced, so a cut never
  shows the start of a password;
* an argument holding spaces (a rewritten process title) is redacted word by word.

A name is secret when, lowercased with ``_`` read as ``-``, it contains one of SECRET_WORDS
and does not end in ``-file``, ``-path`` or ``-dir`` (``--password-file /run/secrets/db`` names
a file, and showing where the secret lives is useful). The rendered line is the redacted
arguments joined by spaces, cut at ``max_bytes`` characters; a cut line ends with "...".
"""
from __future__ import annotations

import re

REDACTED = "[REDACTED]"
MAX_CMDLINE_BYTES = 4096
SECRET_WORDS = ("password", "passwd", "secret", "token", "api-key", "apikey", "credential")
_NOT_SECRET_SUFFIXES = ("-file", "-path", "-dir")
_FLAG = re.compile(r"-{1,2}[A-Za-z][\w.-]*")
_ASSIGNMENT = re.compile(r"(-{0,2}[A-Za-z_][\w.-]*)=(.*)", re.S)
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):([^/\s@]*)@")
_URL_CUT = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):[^/\s@]*\Z")
_WORDS = re.compile(r"(\s+)")
CUT_MARK = "..."


def is_secret_name(name: str) -> bool:
    """True when an argument or variable named ``name`` carries a secret (module doc)."""
    norm = name.lstrip("-").lower().replace("_", "-")
    if norm.endswith(_NOT_SECRET_SUFFIXES):
        return False
    return any(word in norm for word in SECRET_WORDS)


def parse_cmdline(raw: bytes, max_bytes: int = MAX_CMDLINE_BYTES) -> tuple[tuple[str, ...], bool]:
    """NUL-separated bytes -> (redacted arguments, cut); ``cut`` when raw was over max_bytes."""
    cut = len(raw) > max_bytes
    parts = raw[:max_bytes].split(b"\0")
    if parts and parts[-1] == b"" and not cut:
        parts.pop()
    args = [p.decode("utf-8", "replace") for p in parts]
    return tuple(redact_args(args, cut=cut)), cut


def redact_args(args: list[str], cut: bool = False) -> list[str]:
    """The arguments with secret values replaced; ``cut``: the last one may be incomplete."""
    out = []
    secret_next = False
    for arg in args:
        if secret_next and not arg.startswith("-"):
            out.append(REDACTED)
            secret_next = False
            continue
        secret_next = bool(_FLAG.fullmatch(arg)) and is_secret_name(arg)
        out.append(_redact_one(arg))
    if cut and out:
        out[-1] = _URL_CUT.sub(lambda m: m.group(1) + ":" + REDACTED, out[-1])
    return out


def _redact_one(arg: str) -> str:
    """One argument: assignment value, URL password, or word by word when it holds spaces."""
    if any(c.isspace() for c in arg):
        words = _WORDS.split(arg)
        redacted = redact_args(words[::2])
        words[::2] = redacted
        return "".join(words)
    m = _ASSIGNMENT.fullmatch(arg)
    if m and m.group(2) and is_secret_name(m.group(1)):
        return m.group(1) + "=" + REDACTED
    if "@" in arg:
        return _URL_USERINFO.sub(lambda u: u.group(1) + ":" + REDACTED + "@", arg)
    return arg


def render(args: tuple[str, ...], cut: bool, max_chars: int = MAX_CMDLINE_BYTES) -> str:
    """Arguments joined by spaces, at most ``max_chars`` characters plus a cut mark."""
    text = " ".join(args)
    if len(text) > max_chars:
        text, cut = text[:max_chars], True
    return text + CUT_MARK if cut else text
