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

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 32
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same rules


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
    """Names added to the built-in lists of l7scope.redact (``defaults: false`` drops those)."""

    headers: tuple[str, ...] = ()
    body_fields: tuple[str, ...] = ()  # JSON and form fields ("json_fields" is an older name)
    query_params: tuple[str, ...] = ()
    defaults: bool = True


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
    """Read and parse a YAML file; an empty file gives the defaults.

    Raises ConfigError only, with one line naming the problem, whatever the file holds
    (the SIGHUP reload relies on it to keep the running rules)."""
    doc = _parse_yaml(_read_text(path), path)
    try:
        return parse_config({} if doc is None else doc)
    except ConfigError:
        raise
    except (Exception, RecursionError) as e:  # a checker bug must not stop the agent
        raise ConfigError(f"{path}: cannot be checked: {_problem(e)}") from None


def _read_text(path: str) -> str:
    """The file's text: a regular file of at most MAX_CONFIG_BYTES bytes of UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{path}: not a regular file")
        data = _read_at_most(fd, MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: too large (more than {MAX_CONFIG_BYTES} bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: not valid UTF-8: line {line}, byte {e.start}") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _parse_yaml(text: str, path: str) -> Any:
    """The YAML document; nesting is checked on the event stream (iterative) before the
    document is built (recursive), so depth never meets the interpreter's recursion limit."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_CONFIG_DEPTH:
                    raise ConfigError(f"{path}: nested deeper than {MAX_CONFIG_DEPTH} levels "
                                      f"(line {event.start_mark.line + 1})")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except ConfigError:
        raise
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: aliases nested too deeply") from None
    except Exception as e:  # a value the safe constructor refuses, e.g. date 2001-02-30
        raise ConfigError(f"{path}: not valid YAML: {_problem(e)}") from None


def _problem(e: BaseException) -> str:
    """One short line: the exception's first line, bounded."""
    lines = str(e).strip().splitlines()
    return _bounded(f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__)


def _bounded(text: str, limit: int = 160) -> str:
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line, "line L column C: problem" (PyYAML's own text spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or _problem(error)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return where + _bounded(problem)


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
        except (re.error, RecursionError, OverflowError, ValueError, MemoryError) as e:
            raise ConfigError(f"{path}.uri_regex: does not compile: {_problem(e)}") from None
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
    _refuse_unknown(d, path, ("headers", "body_fields", "json_fields", "query_params",
                              "defaults"))
    fields = _str_list(d, "body_fields", path) + _str_list(d, "json_fields", path)
    return RedactConfig(headers=_str_list(d, "headers", path),
                        body_fields=tuple(dict.fromkeys(fields)),
                        query_params=_str_list(d, "query_params", path),
                        defaults=_bool(d, "defaults", path, True))


# --- typed getters: each names the field path in its error ------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def _join(path: str, key: str) -> str:
    """``path.key``; a key that is not plain (spaces, dots, newlines, long) shown quoted."""
    shown = key if _PLAIN_KEY.fullmatch(key) else _bounded(repr(key), 64)
    return f"{path}.{shown}" if path else shown


def _mapping(raw: Any, path: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping")
    for k in raw:
        if not isinstance(k, str):
            raise ConfigError(f"{path}: key {_bounded(repr(k), 64)} must be a string")
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
