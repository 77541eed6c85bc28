"""Configuration parsing: defaults, a full file, and one test per validation error."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.config import (
    MAX_CONFIG_BYTES, CaptureSettings, Config, ConfigError, QueueSettings, RedactConfig,
    SamplingRule, load_config, parse_config,
)

FULL = """
sampling:
  top_n: 5
  rules:
    - min_duration_ms: 300
      when_4xx: false
    - uri_regex: "^/api/.*"
      min_duration_ms: 200
      when_5xx: true
      settings: {capture_request: true, capture_response: false,
                 require_complete_request: true, max_request_bytes: 1024,
                 max_response_bytes: 2048}
exporters:
  zipkin: {url: "http://127.0.0.1:9411/api/v2/spans", queue_size: 50, timeout_s: 2.5}
  otlp: {}
  skywalking: {address: "oap:11800", max_retries: 0}
redact: {headers: [X-Secret], json_fields: [password, token], body_fields: [pin, token],
         query_params: [ticket], defaults: false}
metrics_interval_s: 15
service_name: edge
"""


def test_defaults():
    c = Config.default()
    assert c == parse_config({})
    assert c.sampling.top_n == 10
    assert c.sampling.rules == (SamplingRule(None, 500, True, True, CaptureSettings()),)
    assert c.exporters.zipkin is None and c.exporters.otlp is None
    assert c.exporters.skywalking is None
    assert c.metrics_interval_s == 10
    assert c.service_name == "l7scope"


def test_full_file(tmp_path):
    path = tmp_path / "l7scope.yaml"
    path.write_text(FULL)
    c = load_config(str(path))
    assert c.sampling.top_n == 5
    default, api = c.sampling.rules
    assert (default.uri_regex, default.min_duration_ms, default.when_4xx) == (None, 300, False)
    assert api.uri_regex == "^/api/.*" and api.pattern.search("/api/x")
    assert api.settings == CaptureSettings(True, False, True, False, 1024, 2048)
    assert c.exporters.zipkin.queue == QueueSettings(queue_size=50, timeout_s=2.5)
    assert c.exporters.otlp.endpoint == "http://127.0.0.1:4318"
    assert c.exporters.skywalking.address == "oap:11800"
    assert c.exporters.skywalking.queue.max_retries == 0
    assert c.redact == RedactConfig(headers=("X-Secret",), body_fields=("pin", "token", "password"),
                                    query_params=("ticket",), defaults=False)
    assert (c.metrics_interval_s, c.service_name) == (15, "edge")


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(str(path)) == Config.default()


def test_unreadable_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        Config.default().metrics_interval_s = 1


R = "sampling.rules"


@pytest.mark.parametrize("doc, message", [
    ([1], "(top level): must be a mapping"),
    ({"sampl": {}}, "sampl: unknown key"),
    ({"sampling": {"top": 1}}, "sampling.top: unknown key"),
    ({"sampling": {"rules": [{"uri": "x"}]}}, f"{R}[0].uri: unknown key"),
    ({"sampling": {"rules": [{"settings": {"max_req": 1}}]}}, f"{R}[0].settings.max_req: unknown key"),
    ({"exporters": {"jaeger": {}}}, "exporters.jaeger: unknown key"),
    ({"exporters": {"zipkin": {"endpoint": "x"}}}, "exporters.zipkin.endpoint: unknown key"),
    ({"redact": {"body": []}}, "redact.body: unknown key"),
    ({"sampling": {"top_n": 0}}, "sampling.top_n: must be a positive integer"),
    ({"sampling": {"top_n": "5"}}, "sampling.top_n: must be a positive integer"),
    ({"sampling": {"top_n": True}}, "sampling.top_n: must be a positive integer"),
    ({"sampling": {"rules": {"a": 1}}}, f"{R}: must be a list"),
    ({"sampling": {"rules": ["x"]}}, f"{R}[0]: must be a mapping"),
    ({"sampling": {"rules": [{}, {"min_duration_ms": 5}]}}, f"{R}[1]: a second default rule"),
    ({"sampling": {"rules": [{"uri_regex": "^/a"}, {"uri_regex": "^/a"}]}},
     f"{R}[1].uri_regex: duplicate of {R}[0].uri_regex"),
    ({"sampling": {"rules": [{"uri_regex": "(unclosed"}]}}, f"{R}[0].uri_regex: does not compile"),
    ({"sampling": {"rules": [{"uri_regex": 5}]}}, f"{R}[0].uri_regex: must be a non-empty string"),
    ({"sampling": {"rules": [{"min_duration_ms": -1}]}}, f"{R}[0].min_duration_ms: must be a number >= 0"),
    ({"sampling": {"rules": [{"min_duration_ms": "1s"}]}}, f"{R}[0].min_duration_ms: must be a number >= 0"),
    ({"sampling": {"rules": [{"when_4xx": "yes"}]}}, f"{R}[0].when_4xx: must be true or false"),
    ({"sampling": {"rules": [{}, {"uri_regex": "a", "settings": {"max_request_bytes": 0}}]}},
     f"{R}[1].settings.max_request_bytes: must be a positive integer"),
    ({"sampling": {"rules": [{"settings": {"max_response_bytes": 1.5}}]}},
     f"{R}[0].settings.max_response_bytes: must be a positive integer"),
    ({"sampling": {"rules": [{"settings": {"capture_request": 1}}]}},
     f"{R}[0].settings.capture_request: must be true or false"),
    ({"sampling": {"rules": [{"settings": []}]}}, f"{R}[0].settings: must be a mapping"),
    ({"exporters": {"zipkin": {"url": ""}}}, "exporters.zipkin.url: must be a non-empty string"),
    ({"exporters": {"otlp": "http://x"}}, "exporters.otlp: must be a mapping"),
    ({"exporters": {"skywalking": {"queue_size": -3}}},
     "exporters.skywalking.queue_size: must be a positive integer"),
    ({"exporters": {"zipkin": {"batch_size": 0}}}, "exporters.zipkin.batch_size: must be a positive integer"),
    ({"exporters": {"otlp": {"timeout_s": 0}}}, "exporters.otlp.timeout_s: must be a number > 0"),
    ({"exporters": {"otlp": {"max_retries": -1}}}, "exporters.otlp.max_retries: must be an integer >= 0"),
    ({"redact": {"headers": "Authorization"}}, "redact.headers: must be a list of strings"),
    ({"redact": {"json_fields": ["ok", 3]}}, "redact.json_fields[1]: must be a non-empty string"),
    ({"redact": {"query_params": [""]}}, "redact.query_params[0]: must be a non-empty string"),
    ({"redact": {"body_fields": "password"}}, "redact.body_fields: must be a list of strings"),
    ({"redact": {"defaults": "no"}}, "redact.defaults: must be true or false"),
    ({"sampling": {"a\nb": 1}}, "sampling.'a\\nb': unknown key"),
    ({"x" * 500: 1}, "'" + "x" * 63 + "...: unknown key"),
    ({"metrics_interval_s": 0}, "metrics_interval_s: must be a number > 0"),
    ({"metrics_interval_s": float("nan")}, "metrics_interval_s: must be a number > 0"),
    ({"service_name": 7}, "service_name: must be a non-empty string"),
    ({1: 2}, "(top level): key 1 must be a string"),
])
def test_validation_errors_name_the_field(doc, message):
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert str(err.value).startswith(message)


def test_rules_without_default_rule_are_allowed():
    c = parse_config({"sampling": {"rules": [{"uri_regex": "^/a"}]}})
    assert [r.uri_regex for r in c.sampling.rules] == ["^/a"]


def test_redact_defaults():
    assert Config.default().redact == RedactConfig((), (), (), True)


# --- hostile files: one-line ConfigError, never another exception ------------------------

def _load_bytes(tmp_path, data: bytes) -> str:
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    message = str(err.value)
    assert "\n" not in message and len(message) < 400
    return message.replace(str(path), "FILE")


@pytest.mark.parametrize("data, message", [
    (b"service_name: \xff\xfe\n", "FILE: not valid UTF-8: line 1, byte 14"),
    (b"a: 1\nservice_name: caf\xc3\n", "FILE: not valid UTF-8: line 2, byte 22"),
    (b"sampling: " + b"[" * 5000 + b"]" * 5000, "FILE: "),
    (b"sampling: " + b"{a: " * 40 + b"1" + b"}" * 40, "FILE: nested deeper than 32 levels (line 1)"),
    (b"".join(b" " * i + b"a:\n" for i in range(200)), "FILE: nested deeper than 32 levels (line 33)"),
    (b"- 1\n- 2\n", "(top level): must be a mapping"),
    (b"just text\n", "(top level): must be a mapping"),
    (b"service_name: 2001-02-30\n", "FILE: not valid YAML: ValueError: day is out of range"),
    (b"service_name: !!binary '#!'\n", "service_name: must be a non-empty string"),
    (b"service_name: !!binary 'a'\n", "FILE: not valid YAML: "),
    (b"service_name: !!python/object:os.system {}\n", "FILE: not valid YAML: "),
    (b"service_name: a\x00b\n", "FILE: not valid YAML: "),
    (b"sampling:\n  rules: [{uri_regex: '" + b"(" * 3000 + b")" * 3000 + b"'}]\n",
     "sampling.rules[0].uri_regex: does not compile"),
    (b"? [a, b]\n: 1\n", "FILE: not valid YAML: "),
    (b"# " + b"x" * MAX_CONFIG_BYTES + b"\n", f"FILE: too large (more than {MAX_CONFIG_BYTES} bytes)"),
])
def test_hostile_files_give_one_line_config_errors(tmp_path, data, message):
    assert _load_bytes(tmp_path, data).startswith(message)


def test_deep_flow_nesting_is_refused_before_the_document_is_built(tmp_path):
    assert "nest" in _load_bytes(tmp_path, b"sampling: " + b"[" * 5000 + b"]" * 5000)


def test_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading must not block
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(str(fifo))
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(str(tmp_path))


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfservice_name: edge\n")
    assert load_config(str(path)).service_name == "edge"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet="{}[]:,-?&*!|>'\"\n #ab1", max_size=200)
       .map(str.encode))
def test_fuzz_load_config_raises_only_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_bytes(data)
    try:
        load_config(str(path))
    except ConfigError as e:
        assert "\n" not in str(e)
