"""The agent's YAML configuration (``--config PATH``), parsed into frozen dataclasses.

Theory of operation
-------------------
Every key is optional; a missing key takes its documented default (docs/configuration.md).
Parsing walks the document with a "path" (``sampling.rules[1].settings``) so that every error,
including an unknown key, names exactly where it is. Nothing is coerced: a string where a
number belongs is an error, not a guess. The result is immutable and safe to share between
threads; a SIGHUP reload parses a new Config and swaps it in whole.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending field path."""


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    capture_request: bool = True
    capture_response: bool = True
    require_complete_request: bool = False
    require_complete_response: bool = False
    max_request_bytes: int = 4096
    max_response_bytes: int = 4096


@dataclass(frozen=True, slots=True)
class SamplingRule:
    uri_regex: str | None = None  # None: the default rule
    min_duration_ms: float = 500
    when_4xx: bool = True
    when_5xx: bool = True
    settings: CaptureSettings = CaptureSettings()
    pattern: re.Pattern | None = field(default=None, compare=False, repr=False)

    @property
    def is_default(self) -> bool:
        return self.uri_regex is None


DEFAULT_RULE = SamplingRule()


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    top_n: int = 10
    rules: tuple[SamplingRule, ...] = (DEFAULT_RULE,)


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Shared by every exporter: bounded queue, batching, retries."""

    queue_size: int = 1000
    batch_size: int = 100
    timeout_s: float = 5.0
    max_retries: int = 3


@dataclass(frozen=True, slots=True)
class ZipkinConfig:
    url: str = "http://127.0.0.1:9411/api/v2/spans"
    queue: QueueSettings = QueueSettings()


@dataclass(frozen=True, slots=True)
class OtlpConfig:
    endpoint: str = "http://127.0.0.1:4318"
    queue: QueueSettings = QueueSettings()


@dataclass(frozen=True, slots=True)
class SkyWalkingConfig:
    address: str = "127.0.0.1:11800"
    queue: QueueSettings = QueueSettings()


@dataclass(frozen=True, slots=True)
class ExportersConfig:
    zipkin: ZipkinConfig | None = None
    otlp: OtlpConfig | None = None
    skywalking: SkyWalkingConfig | None = None


@dataclass(frozen=True, slots=True)
class RedactConfig:
    headers: tuple[str, ...] = ()
    json_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    sampling: SamplingConfig = SamplingConfig()
    exporters: ExportersConfig = ExportersConfig()
    redact: RedactConfig = RedactConfig()
    metrics_interval_s: float = 10
    service_name: str = "l7scope"

    @staticmethod
    def default() -> Config:
        return Config()


def load_config(path: str) -> Config:
    """Read and parse a YAML file; an empty file gives the defaults."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    return parse_config({} if doc is None else doc)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line, "line L column C: problem" (PyYAML's own text spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return where + problem


def parse_config(doc: Any) -> Config:
    d = _mapping(doc, "(top level)")
    _refuse_unknown(d, "", ("sampling", "exporters", "redact", "metrics_interval_s",
                            "service_name"))
    return Config(
        sampling=_sampling(d.get("sampling", {}), "sampling"),
        exporters=_exporters(d.get("exporters", {}), "exporters"),
        redact=_redact(d.get("redact", {}), "redact"),
        metrics_interval_s=_positive_number(d, "metrics_interval_s", "", 10),
        service_name=_nonempty_str(d, "service_name", "", "l7scope"),
    )


# --- sections ----------------------------------------------------------------------------

def _sampling(raw: Any, path: str) -> SamplingConfig:
    d = _mapping(raw, path)
    _refuse_unknown(d, path, ("top_n", "rules"))
    top_n = _positive_int(d, "top_n", path, 10)
    if "rules" not in d or d["rules"] is None:
        return SamplingConfig(top_n=top_n)
    if not isinstance(d["rules"], list):
        raise ConfigError(f"{path}.rules: must be a list")
    rules = tuple(_rule(r, f"{path}.rules[{i}]") for i, r in enumerate(d["rules"]))
    _check_rule_set(rules, f"{path}.rules")
    return SamplingConfig(top_n=top_n, rules=rules)


def _check_rule_set(rules: tuple[SamplingRule, ...], path: str) -> None:
    seen: dict[str | None, int] = {}
    for i, rule in enumerate(rules):
        if rule.uri_regex in seen:
            first = seen[rule.uri_regex]
            if rule.uri_regex is None:
                raise ConfigError(f"{path}[{i}]: a second default rule (no uri_regex); "
                                  f"the first is {path}[{first}]")
            raise ConfigError(f"{path}[{i}].uri_regex: duplicate of {path}[{first}].uri_regex")
        seen[rule.uri_regex] = i


def _rule(raw: Any, path: str) -> SamplingRule:
    d = _mapping(raw, path)
    _refuse_unknown(d, path, ("uri_regex", "min_duration_ms", "when_4xx", "when_5xx",
                              "settings"))
    regex, pattern = None, None
    if d.get("uri_regex") is not None:
        regex = _nonempty_str(d, "uri_regex", path, None)
        try:
            pattern = re.compile(regex)
        except re.error as e:
            raise ConfigError(f"{path}.uri_regex: does not compile: {e}") from None
    return SamplingRule(
        uri_regex=regex,
        min_duration_ms=_nonnegative_number(d, "min_duration_ms", path, 500),
        when_4xx=_bool(d, "when_4xx", path, True),
        when_5xx=_bool(d, "when_5xx", path, True),
        settings=_settings(d.get("settings", {}), f"{path}.settings"),
        pattern=pattern,
    )


def _settings(raw: Any, path: str) -> CaptureSettings:
    d = _mapping(raw, path)
    names = CaptureSettings.__dataclass_fields__
    _refuse_unknown(d, path, tuple(names))
    dflt = CaptureSettings()
    return CaptureSettings(
        **{n: _bool(d, n, path, getattr(dflt, n)) for n in names if not n.startswith("max_")},
        max_request_bytes=_positive_int(d, "max_request_bytes", path, dflt.max_request_bytes),
        max_response_bytes=_positive_int(d, "max_response_bytes", path,
                                         dflt.max_response_bytes),
    )


def _exporters(raw: Any, path: str) -> ExportersConfig:
    d = _mapping(raw, path)
    _refuse_unknown(d, path, ("zipkin", "otlp", "skywalking"))
    out = {}
    for name, cls, key in (("zipkin", ZipkinConfig, "url"), ("otlp", OtlpConfig, "endpoint"),
                           ("skywalking", SkyWalkingConfig, "address")):
        if d.get(name) is None:
            continue
        sub = _mapping(d[name], f"{path}.{name}")
        sub_path = f"{path}.{name}"
        _refuse_unknown(sub, sub_path, (key, *QueueSettings.__dataclass_fields__))
        target = _nonempty_str(sub, key, sub_path, cls.__dataclass_fields__[key].default)
        out[name] = cls(target, _queue(sub, sub_path))
    return ExportersConfig(**out)


def _queue(d: dict, path: str) -> QueueSettings:
    dflt = QueueSettings()
    return QueueSettings(
        queue_size=_positive_int(d, "queue_size", path, dflt.queue_size),
        batch_size=_positive_int(d, "batch_size", path, dflt.batch_size),
        timeout_s=_positive_number(d, "timeout_s", path, dflt.timeout_s),
        max_retries=_nonnegative_int(d, "max_retries", path, dflt.max_retries),
    )


def _redact(raw: Any, path: str) -> RedactConfig:
    d = _mapping(raw, path)
    _refuse_unknown(d, path, ("headers", "json_fields"))
    return RedactConfig(headers=_str_list(d, "headers", path),
                        json_fields=_str_list(d, "json_fields", path))


# --- typed getters: each names the field path in its error ------------------------------

def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mapping(raw: Any, path: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping")
    for k in raw:
        if not isinstance(k, str):
            raise ConfigError(f"{path}: key {k!r} must be a string")
    return raw


def _refuse_unknown(d: dict, path: str, known: tuple[str, ...]) -> None:
    for key in d:
        if key not in known:
            raise ConfigError(f"{_join(path, key)}: unknown key "
                              f"(known: {', '.join(sorted(known))})")


def _bool(d: dict, key: str, path: str, default: bool) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{_join(path, key)}: must be true or false")
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(d: dict, key: str, path: str, default: int) -> int:
    v = d.get(key, default)
    if not _is_int(v) or v <= 0:
        raise ConfigError(f"{_join(path, key)}: must be a positive integer")
    return v


def _nonnegative_int(d: dict, key: str, path: str, default: int) -> int:
    v = d.get(key, default)
    if not _is_int(v) or v < 0:
        raise ConfigError(f"{_join(path, key)}: must be an integer >= 0")
    return v


def _number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and v == v and v not in (float("inf"),)


def _positive_number(d: dict, key: str, path: str, default: float) -> float:
    v = d.get(key, default)
    if not _number(v) or v <= 0:
        raise ConfigError(f"{_join(path, key)}: must be a number > 0")
    return v


def _nonnegative_number(d: dict, key: str, path: str, default: float) -> float:
    v = d.get(key, default)
    if not _number(v) or v < 0:
        raise ConfigError(f"{_join(path, key)}: must be a number >= 0")
    return v


def _nonempty_str(d: dict, key: str, path: str, default: str | None) -> str:
    v = d.get(key, default)
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{_join(path, key)}: must be a non-empty string")
    return v


def _str_list(d: dict, key: str, path: str) -> tuple[str, ...]:
    v = d.get(key, [])
    if v is None:
        return ()
    if not isinstance(v, list):
        raise ConfigError(f"{_join(path, key)}: must be a list of strings")
    for i, item in enumerate(v):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{_join(path, key)}[{i}]: must be a non-empty string")
    return tuple(v)
