"""What of a captured message may be shown: redaction of headers, paths and bodies; rendering.

Theory of operation
-------------------
Everything l7scope exports, stores or prints passes through a ``Redactor`` first. Secrets stay
in by default: the built-in name lists below apply unless the configuration turns them off
(``redact.defaults: false``); configured names are added to them. Names match
case-insensitively.

* headers: the values of credential headers (Authorization, Cookie, ...) and of configured
  names become "[REDACTED]"; headers that carry a URL (``:path``, Referer, Location,
  Content-Location) keep the URL with its secret query parameters redacted;
* paths (``redact_path``): in the query string and the fragment, the value of every
  parameter whose name (percent-decoded, ``+`` as space; in ``user[password]`` either part)
  is a secret parameter name is replaced; ``user:pass@`` in an absolute URL is replaced.
  A path with no ``?``, ``#`` or ``@`` is returned as it is (the common, fast case);
* bodies: every text body is scanned, whatever its content type says, by two tolerant
  scanners. The JSON scanner walks the string tokens in order (a linear pass, no recursion,
  no parsing into objects): a string followed by ``:`` is a key; when its decoded name
  (escapes such as ``pass\\u0077ord`` undone) is a secret field, its value (string, number,
  literal, or a whole object/array with brackets matched iteratively) is replaced. A value
  cut by the capture limit is replaced up to the end, so a truncation cannot leak it. The
  form scanner replaces ``name=value`` values of secret fields (forms sent as text/plain or
  without a content type, parameters inside JSON strings). Work is bounded per body: the text
  is cut at MAX_INFLATED_BYTES characters before scanning, and the JSON scanner stops after
  MAX_SCAN_STRINGS string tokens, replacing the unscanned rest by a marker;
* bodies are rendered for people by ``render_body``: text and JSON shown as text, gzip/deflate
  inflated first (output bounded), anything else summarised as ``<binary N bytes>``.

Redaction never raises on captured bytes; undecodable input is summarised, not shown.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"
SENSITIVE_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie",
                     "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token")
URL_HEADERS = (":path", "referer", "location", "content-location")
DEFAULT_QUERY_PARAMS = (
    "token", "access_token", "refresh_token", "id_token", "auth_token", "private_token",
    "api_key", "apikey", "api-key", "key", "password", "passwd", "pwd", "pass", "secret",
    "client_secret", "session", "sessionid", "session_id", "sid", "sig", "signature", "code",
    "auth", "authorization", "credentials", "jwt", "assertion", "client_assertion",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
    "x-goog-credential")
DEFAULT_BODY_FIELDS = (
    "password", "passwd", "pwd", "token", "access_token", "refresh_token", "id_token",
    "secret", "client_secret", "api_key", "apikey", "authorization", "private_key")
MAX_INFLATED_BYTES = 64 * 1024
MAX_SCAN_STRINGS = 16_384
NOT_SCANNED = "[REDACTED: not scanned]"
_MAX_NAME_CHARS = 256  # a longer key or parameter name is never a secret name

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "application/grpc-web-text")
_TEXT_SUFFIXES = ("+json", "+xml")

# A JSON string from its opening quote: to the closing quote, or to the end when cut
# (possessive: linear even on a long run of escapes).
_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.S)
_COLON = re.compile(r"\s*+:\s*+")
_STRUCTURE = re.compile(r'["{}\[\]]')
_SCALAR = re.compile(r"[^\s,}\]]*+")
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# name=value in a query string or fragment: "&" and ";" separate parameters.
_QUERY_PARAM = re.compile(r"(?:^|(?<=[&;]))([^=&;]{1,256})=([^&;]*)")
# name=value in a body: at the start or after a separator, space or quote; the value stops
# at a separator, space or quote (a form encodes those), so JSON around it stays whole.
_BODY_PARAM = re.compile(r"""(?:^|(?<=[?&;\s"'#]))([^=&;\s"'?#]{1,256})=([^&;\s"'<>#]*)""")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#@]*)@")
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")


class Redactor:
    """Redacts headers, paths and bodies; one instance per configuration, immutable."""

    __slots__ = ("_headers", "_fields", "_params", "_userinfo", "_any_param")

    def __init__(self, headers: Iterable[str] = (), json_fields: Iterable[str] = (), *,
                 query_params: Iterable[str] = (), body_fields: Iterable[str] = (),
                 defaults: bool = True):
        builtin = defaults
        self._headers = frozenset(SENSITIVE_HEADERS if builtin else ()) | {
            h.lower() for h in headers}
        self._fields = _names(DEFAULT_BODY_FIELDS if builtin else (), json_fields, body_fields)
        self._params = _names(DEFAULT_QUERY_PARAMS if builtin else (), query_params)
        self._userinfo = builtin
        # finds any secret name anywhere in a lowercased query: where it finds none, no
        # parameter can be named one (the common case, decided by one scan)
        self._any_param = re.compile("|".join(map(re.escape, sorted(self._params))))

    @classmethod
    def from_config(cls, redact_config) -> Redactor:
        return cls(redact_config.headers, query_params=redact_config.query_params,
                   body_fields=redact_config.body_fields, defaults=redact_config.defaults)

    @property
    def body_fields(self) -> frozenset[str]:
        return self._fields

    @property
    def query_params(self) -> frozenset[str]:
        return self._params

    # --- headers and paths ---------------------------------------------------------------

    def redact_headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for k, v in headers:
            name = k.lower()
            if name in self._headers:
                v = REDACTED
            elif name in URL_HEADERS:
                v = self.redact_path(v)
            out.append((k, v))
        return out

    def redact_path(self, path: str) -> str:
        """The path (or URL) with the values of secret query/fragment parameters replaced."""
        if not path or ("?" not in path and "#" not in path and "@" not in path):
            return path
        if self._userinfo and "@" in path:
            path = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", path, count=1)
        if not self._params:
            return path
        base, hash_, fragment = path.partition("#")
        head, qmark, query = base.partition("?")
        if qmark and self._may_hold_secret(query):
            query = _QUERY_PARAM.sub(self._param_value, query)
        if hash_ and self._may_hold_secret(fragment):
            fragment = _QUERY_PARAM.sub(self._param_value, fragment)
        return head + qmark + query + hash_ + fragment

    def _may_hold_secret(self, params: str) -> bool:
        """False when no parameter can have a secret name: plain ASCII names, none listed
        (the common case, checked with set lookups before any regex callback runs)."""
        if "%" in params or "+" in params or "[" in params or not params.isascii():
            return True
        if self._any_param.search(params.lower()) is None:
            return False
        names = self._params
        return any(part.partition("=")[0].lower() in names
                   for part in params.replace(";", "&").split("&"))

    def _param_value(self, m: re.Match) -> str:
        secret = m.group(2) and _is_secret_param(m.group(1), self._params)
        return m.group(1) + "=" + (REDACTED if secret else m.group(2))

    # --- bodies --------------------------------------------------------------------------

    def redact_json_text(self, text: str) -> str:
        """Secret fields redacted in a JSON document or a cut prefix of one (any text works)."""
        if not self._fields:
            return text
        return _redact_json_like(text, self._fields)

    def redact_text(self, text: str) -> str:
        """A body's text with secret JSON fields and form fields redacted."""
        if not self._fields:
            return text
        text = _redact_json_like(text, self._fields)
        if "=" in text:
            text = _BODY_PARAM.sub(self._body_param_value, text)
        return text

    def _body_param_value(self, m: re.Match) -> str:
        secret = m.group(2) and _is_secret_param(m.group(1), self._fields)
        return m.group(1) + "=" + (REDACTED if secret else m.group(2))

    def render_body(self, headers: Iterable[tuple[str, str]], body: bytes,
                    body_len: int) -> str:
        """Text for people: decoded, inflated and redacted, or a ``<binary N bytes>`` summary."""
        hdrs = {k.lower(): v for k, v in headers}
        if not body:
            return ""
        encoding = hdrs.get("content-encoding", "identity").strip().lower()
        data = _inflate(body, encoding)
        if data is None:
            return f"<binary {body_len} bytes>"
        text = _as_text(data[:MAX_INFLATED_BYTES], hdrs.get("content-type", ""))
        if text is None:
            return f"<binary {body_len} bytes>"
        return self.redact_text(text)


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Default-policy header redaction."""
    return _DEFAULT.redact_headers(headers)


def redact_body(headers: Iterable[tuple[str, str]], body: bytes, body_len: int) -> str:
    """Default-policy body rendering."""
    return _DEFAULT.render_body(headers, body, body_len)


def redact_path(path: str) -> str:
    """Default-policy path redaction."""
    return _DEFAULT.redact_path(path)


# --- names -------------------------------------------------------------------------------

def _names(*lists: Iterable[str]) -> frozenset[str]:
    return frozenset(n.casefold() for names in lists for n in names)


def _is_secret_param(raw: str, names: frozenset[str]) -> bool:
    """``raw`` as written in a query or form; ``a[b][c]`` matches on a, b or c."""
    name = unquote_plus(raw).casefold() if ("%" in raw or "+" in raw) else raw.casefold()
    if name in names:
        return True
    if "[" not in name:
        return False
    base = name.split("[", 1)[0]
    return base in names or any(part in names for part in _BRACKETED.findall(name))


def _decode_key(raw: str) -> str:
    """A JSON string's content with its escapes undone (tolerant: never raises)."""
    if "\\" not in raw:
        return raw
    return _ESCAPE.sub(_unescape_one, raw)


def _unescape_one(m: re.Match) -> str:
    esc = m.group(1)
    if len(esc) == 5:
        return chr(int(esc[1:], 16))
    return _SIMPLE_ESCAPES.get(esc, esc)


# --- the tolerant JSON scanner -----------------------------------------------------------

def _redact_json_like(text: str, fields: frozenset[str]) -> str:
    """One pass over the string tokens; values of secret keys replaced (see module doc)."""
    out: list[str] = []
    last = pos = 0
    for _ in range(MAX_SCAN_STRINGS):
        q = text.find('"', pos)
        if q < 0:
            break
        end = _STRING.match(text, q).end()
        colon = _COLON.match(text, end) if text[end - 1:end] == '"' and end - q > 1 else None
        pos = end
        if colon is None or end - q - 2 > _MAX_NAME_CHARS * 6:
            continue
        if _decode_key(text[q + 1:end - 1]).casefold() not in fields:
            continue
        value_start = colon.end()
        out += (text[last:value_start], '"', REDACTED, '"')
        last = pos = _value_end(text, value_start)
    else:
        if text.find('"', pos) >= 0:  # the scan bound was reached: show nothing unscanned
            out += (text[last:pos], NOT_SCANNED)
            return "".join(out)
    out.append(text[last:])
    return "".join(out)


def _value_end(text: str, i: int) -> int:
    """End of the JSON value starting at ``i`` (the end of the text when it was cut)."""
    if i >= len(text):
        return len(text)
    first = text[i]
    if first == '"':
        return _STRING.match(text, i).end()
    if first in "{[":
        return _container_end(text, i)
    return _SCALAR.match(text, i).end()


def _container_end(text: str, i: int) -> int:
    """Brackets matched iteratively (strings skipped); a cut container ends the text."""
    depth, pos = 0, i
    while True:
        m = _STRUCTURE.search(text, pos)
        if m is None:
            return len(text)
        ch = m.group()
        if ch == '"':
            pos = _STRING.match(text, m.start()).end()
            continue
        depth += 1 if ch in "{[" else -1
        pos = m.end()
        if depth <= 0:
            return pos


# --- rendering ---------------------------------------------------------------------------

def _inflate(body: bytes, encoding: str) -> bytes | None:
    """Decoded bytes (at most MAX_INFLATED_BYTES), or None when not decodable."""
    if encoding in ("identity", ""):
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        return None
    try:
        # A truncated capture yields what was decodable so far; bounded output.
        return zlib.decompressobj(wbits).decompress(body, MAX_INFLATED_BYTES)
    except zlib.error:
        return None


def _as_text(data: bytes, content_type: str) -> str | None:
    ctype = content_type.split(";")[0].strip().lower()
    declared = ctype.startswith(_TEXT_TYPES) or ctype.endswith(_TEXT_SUFFIXES)
    if ctype and not declared:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        # A UTF-8 sequence cut by the capture limit at the very end is still text.
        if e.start < len(data) - 3:
            return None
        text = data[:e.start].decode("utf-8")
    if not declared and any(c < " " and c not in "\r\n\t" for c in text):
        return None
    return text


_DEFAULT = Redactor()
