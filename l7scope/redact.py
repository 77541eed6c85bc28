"""What of a captured message may be shown: header and JSON-field redaction, body rendering.

Theory of operation
-------------------
Everything l7scope exports, stores or prints passes through a ``Redactor`` first:

* headers: the values of credential headers (Authorization, Proxy-Authorization, Cookie,
  Set-Cookie, X-Api-Key) and of the configured extra header names become "[REDACTED]";
* JSON bodies: the values of configured field names, at any depth, become "[REDACTED]".
  A body prefix that is not a whole JSON document (truncated capture) is redacted textually:
  every ``"name": value`` occurrence of a configured name has its value replaced up to the
  next delimiter, and an unterminated trailing value is cut, so a truncation cannot leak it;
* bodies are rendered for people by ``render_body``: text and JSON shown as text, gzip/deflate
  inflated first (output bounded), anything else summarised as ``<binary N bytes>``.

Redaction never raises on captured bytes; undecodable input is summarised, not shown.
"""
from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable

REDACTED = "[REDACTED]"
SENSITIVE_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie",
                     "x-api-key")
MAX_INFLATED_BYTES = 64 * 1024

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "application/grpc-web-text")
_TEXT_SUFFIXES = ("+json", "+xml")


class Redactor:
    """Redacts headers and JSON fields; one instance per configuration, immutable."""

    __slots__ = ("_headers", "_fields", "_field_text_re", "_cut_value_re")

    def __init__(self, headers: Iterable[str] = (), json_fields: Iterable[str] = ()):
        self._headers = frozenset(SENSITIVE_HEADERS) | {h.lower() for h in headers}
        self._fields = frozenset(json_fields)
        self._field_text_re = _field_text_regex(self._fields)
        self._cut_value_re = _cut_value_regex(self._fields)

    @classmethod
    def from_config(cls, redact_config) -> Redactor:
        return cls(redact_config.headers, redact_config.json_fields)

    def redact_headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, REDACTED if k.lower() in self._headers else v) for k, v in headers]

    def redact_json_text(self, text: str) -> str:
        """Redact configured fields in a JSON document (or a truncated prefix of one)."""
        if not self._fields:
            return text
        try:
            doc = json.loads(text)
        except ValueError:
            return self._redact_json_prefix(text)
        return json.dumps(self._redact_value(doc), ensure_ascii=False,
                          separators=(",", ":"))

    def _redact_value(self, value):
        if isinstance(value, dict):
            return {k: REDACTED if k in self._fields else self._redact_value(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_value(v) for v in value]
        return value

    def _redact_json_prefix(self, text: str) -> str:
        assert self._field_text_re is not None and self._cut_value_re is not None
        out = self._field_text_re.sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)
        cut = self._cut_value_re.search(out)
        if cut:
            out = out[:cut.start(1)] + '"' + REDACTED + '"'
        return out

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
        text = _as_text(data, hdrs.get("content-type", ""))
        if text is None:
            return f"<binary {body_len} bytes>"
        if _is_json(hdrs.get("content-type", ""), text):
            return self.redact_json_text(text)
        return text


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Default-policy header redaction (credential headers only)."""
    return _DEFAULT.redact_headers(headers)


def redact_body(headers: Iterable[tuple[str, str]], body: bytes, body_len: int) -> str:
    """Default-policy body rendering (no JSON fields configured)."""
    return _DEFAULT.render_body(headers, body, body_len)


def _field_text_regex(fields: frozenset[str]) -> re.Pattern | None:
    if not fields:
        return None
    names = "|".join(re.escape(json.dumps(f)[1:-1]) for f in sorted(fields))
    # "name" : "string with \" escapes"  |  "name" : scalar  (objects/arrays: opening only)
    return re.compile(r'("(?:' + names + r')"\s*:\s*)'
                      r'(?:"(?:[^"\\]|\\.)*"|[^\s,}\]"{\[]+)')


def _cut_value_regex(fields: frozenset[str]) -> re.Pattern | None:
    if not fields:
        return None
    names = "|".join(re.escape(json.dumps(f)[1:-1]) for f in sorted(fields))
    # A configured name whose value was cut by the capture limit: string never closed, or
    # the prefix ends right after the colon.
    return re.compile(r'"(?:' + names + r')"\s*:\s*("(?:[^"\\]|\\.)*\\?$|$)')


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


def _is_json(content_type: str, text: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return True
    return not ctype and text.lstrip()[:1] in ("{", "[")


_DEFAULT = Redactor()
