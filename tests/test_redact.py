"""Redaction of credential headers and JSON fields; body rendering for people."""
from __future__ import annotations

import gzip
import json
import zlib

from hypothesis import given
from hypothesis import strategies as st

from l7scope.config import RedactConfig
from l7scope.redact import REDACTED, Redactor, redact_body, redact_headers


def test_default_credential_headers_any_case():
    headers = [("authorization", "Bearer abc"), ("Proxy-Authorization", "Basic x"),
               ("COOKIE", "sid=1"), ("Set-Cookie", "sid=2; HttpOnly"), ("X-Api-Key", "k"),
               ("Content-Type", "text/plain")]
    assert redact_headers(headers) == [
        ("authorization", REDACTED), ("Proxy-Authorization", REDACTED), ("COOKIE", REDACTED),
        ("Set-Cookie", REDACTED), ("X-Api-Key", REDACTED), ("Content-Type", "text/plain")]


def test_configured_headers():
    r = Redactor.from_config(RedactConfig(headers=("X-Secret",)))
    assert r.redact_headers([("x-secret", "v"), ("Cookie", "c"), ("X-Other", "o")]) == [
        ("x-secret", REDACTED), ("Cookie", REDACTED), ("X-Other", "o")]


def test_nested_json_fields():
    r = Redactor(json_fields=["password", "token"])
    body = {"user": "ann", "password": "p", "nested": {"token": {"a": 1}, "keep": 2},
            "list": [{"password": "q"}, 3]}
    out = json.loads(r.redact_json_text(json.dumps(body)))
    assert out == {"user": "ann", "password": REDACTED,
                   "nested": {"token": REDACTED, "keep": 2},
                   "list": [{"password": REDACTED}, 3]}


def test_truncated_json_prefix_is_redacted_textually():
    r = Redactor(json_fields=["password"])
    assert r.redact_json_text('{"a": 1, "password": "hunter2", "b": [1, 2') == \
        '{"a": 1, "password": "[REDACTED]", "b": [1, 2'
    # the capture limit cut the secret itself: what is left of it must not leak
    assert r.redact_json_text('{"a": 1, "password": "hunt') == '{"a": 1, "password": "[REDACTED]"'
    assert r.redact_json_text('{"password": 12345, "x') == '{"password": "[REDACTED]", "x'
    assert r.redact_json_text('{"password":') == '{"password":"[REDACTED]"'


def test_render_json_text_and_binary():
    r = Redactor(json_fields=["password"])
    ctype = [("Content-Type", "application/json; charset=utf-8")]
    assert r.render_body(ctype, b'{"password":"x","n":1}', 22) == '{"password":"[REDACTED]","n":1}'
    assert r.render_body([("Content-Type", "text/plain")], b"hello", 5) == "hello"
    assert r.render_body([("Content-Type", "image/png")], b"\x89PNG\r\n", 1234) == \
        "<binary 1234 bytes>"
    assert r.render_body([], b"\x00\x01\x02", 3) == "<binary 3 bytes>"
    assert r.render_body([], b"plain words", 11) == "plain words"
    assert r.render_body([], b"", 0) == ""


def test_render_gzip_and_deflate_inflated():
    r = Redactor(json_fields=["token"])
    body = gzip.compress(b'{"token":"t","v":2}')
    headers = [("Content-Encoding", "gzip"), ("Content-Type", "application/json")]
    assert r.render_body(headers, body, len(body)) == '{"token":"[REDACTED]","v":2}'
    deflated = zlib.compress(b"some text")
    assert r.render_body([("content-encoding", "deflate")], deflated, 17) == "some text"


def test_render_truncated_gzip_shows_what_decodes_and_bad_gzip_is_binary():
    data = "".join(f"line {i} squared {i * i}\n" for i in range(3000)).encode()
    body = gzip.compress(data)
    text = redact_body([("Content-Encoding", "gzip"), ("Content-Type", "text/plain")],
                       body[: len(body) // 2], len(body))
    assert data.decode().startswith(text) and text
    assert redact_body([("Content-Encoding", "gzip")], b"not gzip", 99) == "<binary 99 bytes>"
    assert redact_body([("Content-Encoding", "br")], b"\x0b\x02", 2) == "<binary 2 bytes>"


def test_inflate_is_bounded():
    bomb = gzip.compress(b"a" * (10 * 1024 * 1024))
    text = redact_body([("Content-Encoding", "gzip"), ("Content-Type", "text/plain")],
                       bomb, len(bomb))
    assert len(text) == 64 * 1024


def test_utf8_cut_at_the_end_is_still_text():
    body = "héllo wörld".encode()[:-2]  # cuts the two-byte "ö"... then "rld" stays
    assert redact_body([("Content-Type", "text/plain")], "abcé".encode()[:-1], 5) == "abc"
    assert redact_body([], body, len(body)).startswith("héllo")


@given(st.binary(max_size=300), st.sampled_from(["", "gzip", "deflate", "identity"]),
       st.sampled_from(["", "application/json", "text/html", "application/octet-stream"]))
def test_fuzz_render_never_raises(body, encoding, ctype):
    r = Redactor(json_fields=["password", "a.b"])
    headers = [("Content-Encoding", encoding), ("Content-Type", ctype)]
    assert isinstance(r.render_body(headers, body, len(body)), str)


@given(st.text(max_size=200))
def test_fuzz_json_prefix_never_raises_and_never_leaks(text):
    r = Redactor(json_fields=["password"])
    secret_doc = '{"password": "' + "S3CR3T" + text
    assert "S3CR3T" not in r.redact_json_text(secret_doc)
