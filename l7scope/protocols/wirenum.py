"""Numbers from the wire, parsed by explicit ASCII rules with a bounded length.

Captured bytes are written by anyone, so a number is never read with ``int()`` on text that
``str.isdigit()`` accepted: that accepts non-ASCII digits (``"١٢٣"``, ``"²"``) which ``int()``
then refuses or reads as a different value, and it has no length bound. Every function here
answers None for anything that is not exactly the ASCII form it names.
"""
from __future__ import annotations

_DEC = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _ascii(text: str | bytes) -> bytes | None:
    if isinstance(text, str):
        if not text.isascii():
            return None
        return text.encode("ascii")
    return bytes(text)


def parse_status(text: str | bytes) -> int | None:
    """RFC 9110 15: ``status-code = 3DIGIT``; 100..999 (a leading 0 is not a status)."""
    raw = _ascii(text)
    if raw is None or len(raw) != 3 or not _DEC.issuperset(raw) or raw[0] == 0x30:
        return None
    return int(raw)


def parse_decimal(text: str | bytes, max_digits: int = 18) -> int | None:
    """``1*DIGIT`` (RFC 9110 8.6 Content-Length), at most max_digits digits."""
    raw = _ascii(text)
    if raw is None or not raw or len(raw) > max_digits or not _DEC.issuperset(raw):
        return None
    return int(raw)


def parse_hex(text: str | bytes, max_digits: int = 15) -> int | None:
    """``1*HEXDIG`` (RFC 9112 7.1 chunk-size), at most max_digits digits."""
    raw = _ascii(text)
    if raw is None or not raw or len(raw) > max_digits or not _HEX.issuperset(raw):
        return None
    return int(raw, 16)
