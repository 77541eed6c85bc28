"""Key decoding: whole, byte by byte, and sequences split at every point."""
from __future__ import annotations

from l7scope.outputs.live.keys import KeyDecoder

STREAM = b"/api\x7f\r\x1b[A\x1b[B\x1bOC\x1b[5~s\xc3\xa9q\x1b[99Zp\x01"
KEYS = ["/", "a", "p", "i", "backspace", "enter", "up", "down", "right", "pgup", "s", "\u00e9",
        "q", "p"]


def test_whole():
    assert KeyDecoder().feed(STREAM) == KEYS


def test_byte_by_byte_without_escapes():
    plain = b"/api\x7f\rs\xc3\xa9q\x01p\n"
    d = KeyDecoder()
    keys = [k for i in range(len(plain)) for k in d.feed(plain[i:i + 1])]
    assert keys == ["/", "a", "p", "i", "backspace", "enter", "s", "\u00e9", "q", "p", "enter"]


def test_every_split():
    """A terminal writes a sequence whole; a read may still end inside one, except right
    after its ESC (which is then the Esc key)."""
    for cut in range(1, len(STREAM)):
        if STREAM[cut - 1:cut] == b"\x1b":
            continue
        d = KeyDecoder()
        assert d.feed(STREAM[:cut]) + d.feed(STREAM[cut:]) == KEYS, cut


def test_lone_escape_is_the_esc_key():
    d = KeyDecoder()
    assert d.feed(b"\x1b") == ["esc"]
    assert d.feed(b"\x1bq") == ["esc", "q"]
