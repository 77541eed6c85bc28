"""Keyboard input for the live view: a sans-IO key decoder and a non-blocking cbreak terminal.

Theory of operation
-------------------
``KeyDecoder.feed(data)`` turns the bytes a terminal sends into key names: printable
characters as themselves, "enter" (CR or LF), "backspace" (DEL or BS), "esc", "up", "down",
"left", "right", "pgup", "pgdn", "home", "end". Escape sequences are CSI (ESC [ params final)
or SS3 (ESC O final), ECMA-48 section 5.4: parameter bytes 0x30-0x3F, intermediate bytes
0x20-0x2F, a final byte 0x40-0x7E. A sequence split across reads is kept (at most 16 bytes)
and finished by the next read; an ESC that ends a read with nothing after it is the Esc key
(a terminal sends a whole sequence in one write). A UTF-8 character split across reads
is completed by the next. Unknown sequences and other control characters are dropped.

``TerminalInput`` puts a tty in cbreak mode (no line buffering, no echo; Ctrl-C still
raises SIGINT) and reads what is there without blocking (select with a zero timeout). The
saved termios settings are restored by ``restore()``, which is also registered with atexit,
so the terminal comes back after a normal stop, after Ctrl-C (SIGINT ends the agent loop or
raises KeyboardInterrupt; both run atexit) and after an uncaught exception.
"""
from __future__ import annotations

import atexit
import codecs
import os
import select

_CSI_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end"}
_CSI_TILDE = {"1": "home", "4": "end", "5": "pgup", "6": "pgdn", "7": "home", "8": "end"}
MAX_PENDING = 16


class KeyDecoder:
    def __init__(self):
        self._pending = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + self._utf8.decode(data)
        self._pending = ""
        keys: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                i = self._escape(text, i, keys)
                continue
            if ch in "\r\n":
                keys.append("enter")
            elif ch in "\x7f\x08":
                keys.append("backspace")
            elif ch.isprintable():
                keys.append(ch)
            i += 1
        return keys

    def _escape(self, text: str, i: int, keys: list[str]) -> int:
        """Decode the sequence at text[i] (an ESC); returns the index after it."""
        if i + 1 >= len(text):
            keys.append("esc")
            return i + 1
        intro = text[i + 1]
        if intro not in "[O":
            keys.append("esc")
            return i + 1
        j = i + 2
        while j < len(text) and "\x20" <= text[j] <= "\x3f":
            j += 1
        if j >= len(text):
            if len(text) - i <= MAX_PENDING:
                self._pending = text[i:]  # the rest arrives with the next read
            return len(text)
        final, params = text[j], text[i + 2:j]
        if "\x40" <= final <= "\x7e":
            name = _CSI_TILDE.get(params) if final == "~" else _CSI_FINAL.get(final)
            if name:
                keys.append(name)
        return j + 1


class TerminalInput:
    """Non-blocking keys from a terminal file descriptor in cbreak mode."""

    def __init__(self, fd: int):
        import termios
        import tty

        self.fd = fd
        self._saved = termios.tcgetattr(fd)
        self._decoder = KeyDecoder()
        tty.setcbreak(fd, termios.TCSANOW)
        atexit.register(self.restore)

    @classmethod
    def open_stdin(cls) -> TerminalInput | None:
        """Keys from standard input when it is a terminal, else None (no keys)."""
        try:
            fd = 0
            return cls(fd) if os.isatty(fd) else None
        except (OSError, ImportError):
            return None

    def keys(self) -> list[str]:
        out: list[str] = []
        for _ in range(8):  # a bounded number of reads per call
            if self._saved is None or not select.select([self.fd], [], [], 0)[0]:
                break
            try:
                data = os.read(self.fd, 256)
            except OSError:
                break
            if not data:
                break
            out += self._decoder.feed(data)
        return out

    def restore(self) -> None:
        if self._saved is None:
            return
        import termios

        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        except OSError:
            pass
        self._saved = None
        atexit.unregister(self.restore)
