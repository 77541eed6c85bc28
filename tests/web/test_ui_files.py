"""The UI's static files: served from the package with their content types, nothing outside the
folder reachable, cache and security headers, no address outside the agent in any file, and the
files listed in the package data so an installed agent ships them."""
from __future__ import annotations

import fnmatch
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from l7scope.web import ui
from l7scope.web.ui import UiFiles

STATIC = Path(ui.__file__).parent / "static"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files():
    return UiFiles()


def test_every_shipped_file_is_served_with_its_type(files):
    shipped = sorted("/" + p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
    assert sorted(files.files) == shipped and files.skipped == 0
    types = {name: files.handle("GET", name)[1] for name in shipped}
    assert types["/index.html"] == "text/html; charset=utf-8"
    assert types["/app.js"] == "text/javascript; charset=utf-8"
    assert types["/app.css"] == "text/css; charset=utf-8"
    assert types["/favicon.svg"] == "image/svg+xml"
    assert all(t == "text/javascript; charset=utf-8" for n, t in types.items() if n.endswith(".js"))
    status, ctype, body, _ = files.handle("GET", "/")
    assert (status, ctype) == (200, "text/html; charset=utf-8")
    assert body == (STATIC / "index.html").read_bytes()


@pytest.mark.parametrize("path", [
    "/../ui.py", "/static/../ui.py", "/..%2fui.py", "//etc/passwd", "/etc/passwd", "/%2e%2e/ui.py",
    "/app.js/", "/APP.JS", "/app.js%00", "/./app.js", "/index.html/..", "/api.py", "/__init__.py",
])
def test_nothing_outside_the_table_is_served(files, path):
    status, ctype, body, _ = files.handle("GET", path)
    assert (status, body) == (404, b"404 Not Found\n")


def test_methods_cache_and_security_headers(files):
    status, _, body, headers = files.handle("GET", "/app.js")
    hdrs = dict(headers)
    assert status == 200 and body == (STATIC / "app.js").read_bytes()
    assert hdrs["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', hdrs["ETag"])
    assert "script-src 'self'" in hdrs["Content-Security-Policy"]
    assert hdrs["X-Content-Type-Options"] == "nosniff"
    status, _, body, again = files.handle("GET", "/app.js", (("if-none-match", hdrs["ETag"]),))
    assert (status, body, dict(again)["ETag"]) == (304, b"", hdrs["ETag"])
    assert files.handle("GET", "/app.js", (("if-none-match", '"other"'),))[0] == 200
    assert files.handle("POST", "/app.js")[0] == 405
    assert files.handle("HEAD", "/app.js")[0] == 200


def test_a_symlink_or_an_unknown_type_in_the_folder_is_not_served(tmp_path):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    (tmp_path / "secret.py").write_text("x = 1")
    (tmp_path / "link.js").symlink_to(ROOT / "l7scope" / "web" / "ui.py")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lib.js").write_text("export const a = 1;")
    f = UiFiles(tmp_path)
    assert sorted(f.files) == ["/index.html", "/sub/lib.js"]
    assert f.skipped == 1  # secret.py; the symlink is not even considered
    assert f.handle("GET", "/sub/lib.js")[:2] == (200, "text/javascript; charset=utf-8")


def test_every_reference_resolves_and_nothing_leaves_the_agent(files):
    """index.html's and the modules' references name shipped files; no http(s) address in any
    file except the SVG namespace (no CDN at run time)."""
    texts = {n: b.decode() for n, (b, t, _) in files.files.items() if not t.startswith("image/png")}
    refs = re.findall(r'(?:src|href)="(/[^"#]*)"', texts["/index.html"])
    for name, text in texts.items():
        if name.endswith(".js"):
            refs += ["/" + m for m in re.findall(r'from "\./([\w.-]+)"', text)]
            refs += ["/" + m for m in re.findall(r'import\("\./([\w.-]+)"\)', text)]
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not {u for u in urls if not u.startswith("http://${")}, (name, urls)
    assert "/app.js" in refs and "/app.css" in refs and "/topology.js" in refs
    missing = [r for r in refs if r not in files.files and not r.startswith("/api/")]
    assert missing == []


def test_the_static_files_are_package_data():
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["l7scope"]
    for p in STATIC.rglob("*"):
        if p.is_file():
            rel = p.relative_to(ROOT / "l7scope").as_posix()
            assert any(fnmatch.fnmatch(rel, pat) and rel.count("/") == pat.count("/")
                       for pat in patterns), rel


def test_mounted_with_the_api_on_the_agent_listener(tmp_path):
    from l7scope.outputs.http import HttpListener
    from l7scope.outputs.store.sqlite import SqliteStore
    from l7scope.web.api import Api

    store = SqliteStore(str(tmp_path / "l7scope.db"))
    listener = HttpListener("127.0.0.1:0")
    Api(store).mount(listener)
    files = UiFiles()
    files.mount(listener)
    listener.add_route("GET", "/metrics", lambda r: (200, "text/plain; version=0.0.4", b"up 1\n"))
    listener.start()
    base = "http://%s:%d" % listener.address
    try:
        def get(path):
            try:
                with urllib.request.urlopen(base + path, timeout=10) as r:
                    return r.status, r.headers["Content-Type"], r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers["Content-Type"], e.read()

        assert get("/") == (200, "text/html; charset=utf-8", (STATIC / "index.html").read_bytes())
        assert get("/app.js")[:2] == (200, "text/javascript; charset=utf-8")
        status, ctype, body = get("/api/topology")
        assert (status, ctype, json.loads(body)) == (
            200, "application/json", {"nodes": [], "edges": [], "tcp_only_left_out": 0})
        assert get("/metrics") == (200, "text/plain; version=0.0.4", b"up 1\n")
        assert get("/nope")[:1] == (404,) and get("/../etc/passwd")[0] == 404
    finally:
        listener.stop()
        store.close()
