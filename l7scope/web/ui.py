"""The web UI's static files (docs/ui.md), served from the package.

Theory of operation
-------------------
At construction every regular file under ``l7scope/web/static/`` (sub-folders included, at
most ``MAX_FILES`` files and ``MAX_TOTAL_BYTES`` in all) is read once into a table
``url path -> (body, content type, etag)``. A request is answered from that table only: a
path that is not a key is 404, so no request can name a file outside the folder (there is no
file-system lookup at request time, hence no directory traversal, symlink or encoding trick to
worry about). ``/`` is ``index.html``.

``handle(method, path, headers) -> (status, content_type, body, extra_headers)`` is the whole
behaviour; ``route(request)`` adapts it to the agent's HTTP listener (outputs/http.py), whose
handlers return ``(status, content_type, body)``, and ``mount(listener)`` adds it at ``/``
(the longest prefix wins there, so ``/api`` and ``/metrics`` keep their own handlers).

Caching: the files change only with the package, so every answer carries a strong ETag (a
hash of the bytes) and ``Cache-Control: no-cache`` (the browser keeps the file and asks again
each time; an ``If-None-Match`` that matches is a ``304`` without body). The security headers
keep the page to its own origin: scripts, styles and fetches from ``'self'`` only, no framing,
no content sniffing.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_FILES = 256
MAX_TOTAL_BYTES = 8 << 20

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
SECURITY_HEADERS = (
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_TEXT_404 = b"404 Not Found\n"


class UiFiles:
    """The static files of the UI, read once; see the module docstring."""

    def __init__(self, root: Path | str = STATIC_DIR):
        self.root = Path(root)
        self.files: dict[str, tuple[bytes, str, str]] = {}
        self.skipped = 0  # files over MAX_FILES / MAX_TOTAL_BYTES or of an unknown type
        self._load()

    def _load(self) -> None:
        total = 0
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            ctype = CONTENT_TYPES.get(path.suffix.lower())
            size = path.stat().st_size
            if (ctype is None or len(self.files) >= MAX_FILES
                    or total + size > MAX_TOTAL_BYTES):
                self.skipped += 1
                continue
            body = path.read_bytes()
            total += len(body)
            url = "/" + path.relative_to(self.root).as_posix()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self.files[url] = (body, ctype, etag)

    def handle(self, method: str, path: str,
               headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, str, bytes, tuple]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"405 Method Not Allowed\n", ()
        entry = self.files.get("/index.html" if path in ("", "/") else path)
        if entry is None:
            return 404, "text/plain; charset=utf-8", _TEXT_404, SECURITY_HEADERS
        body, ctype, etag = entry
        extra = (("ETag", etag), ("Cache-Control", "no-cache")) + SECURITY_HEADERS
        if etag in _if_none_match(headers):
            return 304, ctype, b"", extra
        return 200, ctype, body, extra

    def route(self, request) -> tuple[int, str, bytes]:
        """Adapter for outputs/http.py's listener (its handlers give no extra headers)."""
        status, ctype, body, _ = self.handle(request.method, request.path)  # no ETag sent, no 304
        return status, ctype, body

    def mount(self, listener) -> None:
        """Serves the UI at / on an outputs/http.py HttpListener (HEAD follows GET)."""
        listener.add_route("GET", "/", self.route)


def _if_none_match(headers) -> set[str]:
    for name, value in headers:
        if name.lower() == "if-none-match":
            return {v.strip().removeprefix("W/") for v in value.split(",")}
    return set()


def static_files() -> list[str]:
    """The url paths shipped (for docs and tests)."""
    return sorted(UiFiles().files)


if __name__ == "__main__":  # pragma: no cover - a quick look at what is shipped
    for name in static_files():
        print(name, os.path.getsize(STATIC_DIR / name.lstrip("/")))
