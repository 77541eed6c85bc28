"""The store: exchanges, pair metrics, TCP metrics, samples, processes and counter snapshots
kept on disk for the API (docs/store.md).

    store = open_store()                       # SQLite file under the default data directory
    sink = StoreSink(store, peer_name=..., to_wall_ns=...)
    sink(exchange); sink.on_interval(snapshot, top_n_lists, counters); sink.close()

A backend answers the specs of queries.py with plain rows and keeps all of its SQL in one
module: sqlite.py (the embedded file) or clickhouse.py (``clickhouse://host:8123/db``, many
nodes into one server; docs/deploy.md), with the same interface and logical schema.
"""
from __future__ import annotations

import dataclasses
import os

from l7scope.outputs.store.retention import Retention
from l7scope.outputs.store.writer import StoreSink

DB_NAME = "l7scope.db"
PASSWORD_ENV = "L7SCOPE_CLICKHOUSE_PASSWORD"  # a clickhouse:// URL with a user and no password


class StoreError(Exception):
    """The store cannot be opened; one line for the user."""


def default_data_dir() -> str:
    """/var/lib/l7scope for root, else $XDG_DATA_HOME/l7scope (~/.local/share/l7scope)."""
    if os.geteuid() == 0:
        return "/var/lib/l7scope"
    base = (os.environ.get("XDG_DATA_HOME")
            or os.path.join(os.path.expanduser("~"), ".local", "share"))
    return os.path.join(base, "l7scope")


def open_store(spec: str | None = None, **options):
    """A store from ``--store``: None or "" -> the default file, a path (a directory gets
    l7scope.db inside), "sqlite:///path", or "clickhouse://[user[:password]@]host[:port]/db"
    (``options`` go to ClickHouseStore; a user without a password takes
    $L7SCOPE_CLICKHOUSE_PASSWORD). Raises StoreError with one line (never a password)."""
    if spec and spec.startswith("clickhouse://"):
        return _open_clickhouse(spec, **options)
    path = _path_of(spec)
    from l7scope.outputs.store.sqlite import SqliteStore

    try:
        return SqliteStore(path)
    except OSError as e:
        raise StoreError(f"store {path}: {e.strerror or e}") from None
    except Exception as e:  # sqlite3.Error: not a database, locked, read-only file system
        raise StoreError(f"store {path}: {e}") from None


def _open_clickhouse(spec: str, **options):
    from l7scope.outputs.store.clickhouse import ClickHouseStore
    from l7scope.outputs.store.clickhouse_http import ClickHouseError, parse_url

    try:
        endpoint = parse_url(spec)
    except ValueError as e:
        raise StoreError(f"store: {e}") from None
    if endpoint.user is not None and endpoint.password is None:  # kept out of argv and ps
        password = os.environ.get(PASSWORD_ENV)
        if password is not None:
            endpoint = dataclasses.replace(endpoint, password=password)
    store = ClickHouseStore(endpoint, **options)
    try:
        store.create_schema()
    except ClickHouseError as e:
        store.close()
        raise StoreError(f"store {endpoint.redacted()}: {e}") from None
    return store


def _path_of(spec: str | None) -> str:
    if not spec:
        return os.path.join(default_data_dir(), DB_NAME)
    if spec.startswith("sqlite://"):
        spec = spec[len("sqlite://"):]
    elif "://" in spec:
        raise StoreError(f"store {spec.split('://', 1)[0]}://...: unknown kind "
                         "(a file path, sqlite:///path or clickhouse://host:8123/db)")
    if os.path.isdir(spec) or spec.endswith("/"):
        return os.path.join(spec, DB_NAME)
    return spec


__all__ = ["Retention", "StoreError", "StoreSink", "default_data_dir", "open_store"]
