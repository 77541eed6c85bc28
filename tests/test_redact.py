"""Redaction of credential headers, secret query parameters and body fields; rendering."""
from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l7scope.config import RedactConfig
from l7scope.redact import (
    MAX_SCAN_STRINGS, NOT_SCANNED, REDACTED, Redactor, redact_body, redact_headers, redact_path,
)


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


# --- secrets stay in by default: query strings ---------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("/a?token=SEKRIT1&x=1", f"/a?token={REDACTED}&x=1"),
    ("/a?x=1&API_KEY=k1&apikey=k2&Key=k3", f"/a?x=1&API_KEY={REDACTED}&apikey={REDACTED}&Key={REDACTED}"),
    ("/cb?code=c&state=s&sig=1;sid=2", f"/cb?code={REDACTED}&state=s&sig={REDACTED};sid={REDACTED}"),
    ("/a?%61pi_key=z&pass%77ord=p", f"/a?%61pi_key={REDACTED}&pass%77ord={REDACTED}"),
    ("/a?user[password]=p&b[]=2", f"/a?user[password]={REDACTED}&b[]=2"),
    ("/s3/o?X-Amz-Signature=ab&X-Amz-Credential=cd&v=1",
     f"/s3/o?X-Amz-Signature={REDACTED}&X-Amz-Credential={REDACTED}&v=1"),
    ("/cb#access_token=t&state=1", f"/cb#access_token={REDACTED}&state=1"),
    ("/q?a=1#id_token=t", f"/q?a=1#id_token={REDACTED}"),
    ("http://user:pw@proxy.test/x?y=1", f"http://{REDACTED}@proxy.test/x?y=1"),
    ("/a?token=&x", "/a?token=&x"),        # nothing to hide in an empty value
    ("/a?code", "/a?code"),
    ("/a?tokens=1&my_token=2", "/a?tokens=1&my_token=2"),  # whole names only
    ("/plain/path", "/plain/path"),
    ("", ""),
])
def test_redact_path_default_secret_parameters(path, expected):
    assert Redactor().redact_path(path) == expected
    assert redact_path(path) == expected
    assert redact_path(expected) == expected  # idempotent: applying it twice changes nothing


def test_redact_path_configured_names_and_defaults_off():
    r = Redactor(query_params=["Ticket"])
    assert r.redact_path("/a?ticket=1&token=2") == f"/a?ticket={REDACTED}&token={REDACTED}"
    off = Redactor(defaults=False, query_params=["ticket"])
    assert off.redact_path("/a?ticket=1&token=2") == f"/a?ticket={REDACTED}&token=2"
    nothing = Redactor(defaults=False)
    assert nothing.redact_path("http://u:p@h/a?token=2") == "http://u:p@h/a?token=2"


def test_url_headers_keep_the_url_with_secret_parameters_redacted():
    out = Redactor().redact_headers([(":path", "/a?token=t"), ("Referer", "https://x/?code=c"),
                                     ("location", "/cb#access_token=a"), ("X-Other", "?token=t")])
    assert out == [(":path", f"/a?token={REDACTED}"), ("Referer", f"https://x/?code={REDACTED}"),
                   ("location", f"/cb#access_token={REDACTED}"), ("X-Other", "?token=t")]


def test_redact_path_from_config():
    r = Redactor.from_config(RedactConfig(query_params=("ticket",)))
    assert r.redact_path("/a?ticket=1&sid=2") == f"/a?ticket={REDACTED}&sid={REDACTED}"


# --- secrets stay in by default: bodies -----------------------------------------------------

J = [("Content-Type", "application/json")]


@pytest.mark.parametrize("headers, body, expected", [
    (J, b'{"user":"ann","password":"S2"}', f'{{"user":"ann","password":"{REDACTED}"}}'),
    ([("Content-Type", "text/plain")], b'{"Password": "S2", "n": 1}',
     f'{{"Password": "{REDACTED}", "n": 1}}'),
    ([], b'{"TOKEN":"S2"}', f'{{"TOKEN":"{REDACTED}"}}'),
    (J, b'{"pass\\u0077ord": "S2", "x": 1', f'{{"pass\\u0077ord": "{REDACTED}", "x": 1'),
    (J, b'{"a": {"client_secret": {"k": ["S2", "}"]}, "b": 2}, "c": 3}',
     f'{{"a": {{"client_secret": "{REDACTED}", "b": 2}}, "c": 3}}'),
    (J, b'{"a": {"api_key": {"k": ["S2", "x', f'{{"a": {{"api_key": "{REDACTED}"'),
    (J, b'{"authorization" : "Bearer S2"}', f'{{"authorization" : "{REDACTED}"}}'),
    (J, b'[{"refresh_token":12345},{"access_token":true}]',
     f'[{{"refresh_token":"{REDACTED}"}},{{"access_token":"{REDACTED}"}}]'),
    (J, b'{"note": "say \\"password\\": x", "ok": 1}', '{"note": "say \\"password\\": x", "ok": 1}'),
    ([("Content-Type", "application/x-www-form-urlencoded")], b"user=ann&password=S3&x=1",
     f"user=ann&password={REDACTED}&x=1"),
    ([], b"user=ann&Passwd=S3", f"user=ann&Passwd={REDACTED}"),
    ([("Content-Type", "text/plain")], b"grant_type=x&client_secret=S3&user%5Bpassword%5D=S4",
     f"grant_type=x&client_secret={REDACTED}&user%5Bpassword%5D={REDACTED}"),
    (J, b'{"next": "/login?token=S3&x=1"}', f'{{"next": "/login?token={REDACTED}&x=1"}}'),
    (J, b'{"password":', f'{{"password":"{REDACTED}"'),
])
def test_body_secrets_redacted_by_default_whatever_the_content_type(headers, body, expected):
    assert Redactor().render_body(headers, body, len(body)) == expected


def test_body_fields_configured_and_defaults_off():
    body = b'{"pin": "1", "password": "p"}'
    assert Redactor(body_fields=["PIN"]).render_body(J, body, 9) == \
        f'{{"pin": "{REDACTED}", "password": "{REDACTED}"}}'
    assert Redactor(defaults=False, body_fields=["pin"]).render_body(J, body, 9) == \
        f'{{"pin": "{REDACTED}", "password": "p"}}'
    assert Redactor(defaults=False).render_body(J, body, 9) == body.decode()


def test_deeply_nested_body_is_redacted_without_recursion():
    depth = 10_000
    body = b'{"a":' * depth + b'{"password":"S2"}' + b"}" * depth
    text = Redactor(json_fields=["password"]).render_body(J, body[:60_000], len(body))
    assert "S2" not in text and text.count(REDACTED) == 1
    assert text.startswith('{"a":{"a":')


def test_scan_is_bounded_and_the_unscanned_rest_is_not_shown():
    body = b"[" + b'"",' * 20_000 + b'{"password":"S2"}]'
    text = redact_body(J, body, len(body))
    assert "S2" not in text and text.endswith(NOT_SCANNED)
    assert text.count('""') == MAX_SCAN_STRINGS


@given(st.text(max_size=120), st.sampled_from(["password", "PassWord", "pass\\u0077ord", "token"]),
       st.sampled_from(['"', "", "{", "["]), st.text(max_size=80))
def test_fuzz_planted_json_secret_never_leaks(prefix, key, opener, tail):
    # the key starts a member of an object: whatever precedes it is closed off first
    doc = json.dumps(prefix) + ', "' + key + '": ' + opener + "S3CR3T" + tail
    assert "S3CR3T" not in Redactor().redact_json_text("[" + doc)


def test_documented_default_lists_are_the_built_in_ones():
    from pathlib import Path

    from l7scope.redact import DEFAULT_BODY_FIELDS, DEFAULT_QUERY_PARAMS, SENSITIVE_HEADERS
    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    section = doc[doc.index("## Redaction"):]
    query = section[section.index("**query strings**"):section.index("**bodies**")]
    body = section[section.index("**bodies**"):]
    assert all(f"`{n}`" in query for n in DEFAULT_QUERY_PARAMS)
    assert all(f"`{n}`" in body for n in DEFAULT_BODY_FIELDS)
    assert all(f"`{n}`".lower() in section.lower() for n in SENSITIVE_HEADERS)


_NAME = st.sampled_from(["token", "Token", "API_KEY", "%73ig", "a[password]", "page", "q", "x+y",
                         "tokens", "é", "code"])


@given(st.lists(st.tuples(_NAME, st.sampled_from(["1", "", "a b", "%41"])), max_size=6),
       st.sampled_from(["&", ";"]), st.sampled_from(["?", "#", "?z=1#"]))
def test_fuzz_planted_query_secret_never_leaks(params, sep, start):
    pairs = [f"{name}={value}" for name, value in params] + ["Access_Token=S3CR3T"]
    path = "/p" + start + sep.join(pairs)
    out = Redactor().redact_path(path)
    assert "S3CR3T" not in out
    assert out.count(REDACTED) == 1 + sum(
        1 for name, value in params if value and name.lower() in ("token", "api_key", "%73ig",
                                                                   "a[password]", "code"))
