"""A name for grouping processes the way their operators do: the service name.

Theory of operation
-------------------
``service_name`` takes the first rule that gives a name:

1. the container's name, when one is known (a resolver such as ``docker_container_name``);
2. else the short container id (its first 12 hex digits, as ``docker ps`` shows it);
3. else the systemd unit without ``.service`` -- not for the units that hold whatever a user
   runs (``user@0.service``, ``user-runtime-dir@0.service``, ``getty@tty1.service``...); session
   scopes and ``init.scope`` are not services, so they never get here;
4. else, for an interpreter (configurable, by default python, node, java, ruby, perl, php...;
   a versioned name such as ``python3.12`` counts as ``python3``), the process name plus what
   it runs: the script's base name (``python3 app.py``), the module (``python3 -m http.server``
   -> ``python3 http.server``), the jar (``java -jar app.jar`` -> ``java app.jar``) or the main
   class; options and their values are skipped, and ``-c``/``-e`` code gives no script;
5. else the process name.

Pure functions of strings; the table calls them once per process it loads.
"""
from __future__ import annotations

import json
import os
import re

DEFAULT_INTERPRETERS = (
    "python", "python2", "python3", "pypy", "pypy3", "node", "nodejs", "deno", "bun",
    "ruby", "perl", "php", "java", "dotnet", "bash", "sh", "lua", "Rscript", "erl", "beam.smp")
GENERIC_UNIT_PREFIXES = ("user@", "user-runtime-dir@", "getty@", "serial-getty@",
                         "autovt@", "container-getty@")
SHORT_ID_CHARS = 12
_VERSION_SUFFIX = re.compile(r"[\d.]+\Z")
# Options whose value is the next argument (the value is not the script).
_VALUE_OPTIONS = frozenset((
    "-W", "-X", "-Q",                                                  # python
    "-r", "--require", "--import", "--loader", "--env-file",           # node
    "-cp", "-classpath", "--class-path", "--module-path",              # java
    "--add-modules", "--add-opens", "--add-exports", "-I", "-C",       # java, ruby, perl
))
_CODE_OPTIONS = frozenset(("-c", "-e", "--eval", "--print"))
_MODULE_OPTIONS = frozenset(("-m", "--module", "-jar"))
_MAX_NAME_CHARS = 128
MAX_DOCKER_CONFIG_BYTES = 1 << 20


def service_name(name: str, args: tuple[str, ...] = (), *, container_id: str | None = None,
                 container_name: str | None = None, systemd_unit: str | None = None,
                 interpreters: frozenset[str] = frozenset(DEFAULT_INTERPRETERS)) -> str:
    """The grouping name of one process (rules in the module doc)."""
    if container_name:
        return container_name
    if container_id:
        return container_id[:SHORT_ID_CHARS]
    unit = unit_service(systemd_unit)
    if unit:
        return unit
    if is_interpreter(name, interpreters):
        what = interpreter_target(name, args)
        if what:
            return f"{name} {what}"
    return name


def unit_service(unit: str | None) -> str | None:
    """``nginx.service`` -> ``nginx``; None for generic units and anything not a service."""
    if not unit or not unit.endswith(".service") or unit.startswith(GENERIC_UNIT_PREFIXES):
        return None
    return unit[: -len(".service")] or None


def is_interpreter(name: str, interpreters: frozenset[str]) -> bool:
    """``name`` is listed, or is a listed name with a version (``python3.12``, ``node18``)."""
    if name in interpreters:
        return True
    base = _VERSION_SUFFIX.sub("", name)
    return bool(base) and base != name and (base in interpreters or
                                            base.rstrip("-") in interpreters)


def interpreter_target(name: str, args: tuple[str, ...]) -> str | None:
    """What the interpreter runs: script base name, module, jar or main class; else None."""
    i = 1  # args[0] is the interpreter itself
    java = name.startswith("java")
    while i < len(args):
        arg = args[i]
        if arg in _MODULE_OPTIONS:
            return _short(args[i + 1]) if i + 1 < len(args) else None
        if arg in _CODE_OPTIONS or (arg == "-p" and not java):  # node -p: print code
            return None
        if arg == "--":
            return _short(args[i + 1]) if i + 1 < len(args) else None
        if arg.startswith("-"):
            i += 2 if arg in _VALUE_OPTIONS or (arg == "-p" and java) else 1
            continue
        return _short(arg)
    return None


def _short(arg: str) -> str | None:
    """A script path's base name (``/srv/app/app.py`` -> ``app.py``), bounded."""
    base = arg.rstrip("/").rsplit("/", 1)[-1]
    return base[:_MAX_NAME_CHARS] or None


def docker_container_name(container_id: str, root: str = "/var/lib/docker") -> str | None:
    """The name docker gave a container (``Name`` in its config.v2.json), else None."""
    path = os.path.join(root, "containers", container_id, "config.v2.json")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DOCKER_CONFIG_BYTES + 1)
        if len(raw) > MAX_DOCKER_CONFIG_BYTES:
            return None
        name = json.loads(raw).get("Name")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(name, str):
        return None
    return name.lstrip("/")[:_MAX_NAME_CHARS] or None
