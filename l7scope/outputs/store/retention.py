"""Retention: the store is bounded in time and in size.

Theory of operation
-------------------
The writer thread calls ``Retention.maybe_enforce(store, now_ns)`` after its batches; at most
every ``check_every_s`` seconds it runs one pass:

1. time: every row whose ``ts_ns`` is older than ``now - max_age_s`` goes (all tables; a
   process whose last sighting is that old too);
2. size: while the database is larger than ``max_bytes`` (SQLite: page_count * page_size
   after freed pages went back to the file system), the oldest tenth of the first non-empty
   table among exchanges, samples, pair metrics and counter snapshots goes; the loop ends when
   the size is under the bound or nothing is left to delete.

Both kinds of deletion are counted (``store_rows_deleted_age``, ``store_rows_deleted_size``).
A backend provides delete_before(ts), delete_oldest(fraction), reclaim() and size_bytes();
ClickHouse does the time part itself with a table TTL.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_AGE_S = 24 * 3600
DEFAULT_MAX_BYTES = 1 << 30
SIZE_STEP = 0.1  # fraction of a table deleted per size step
MAX_SIZE_STEPS = 64  # bound on one pass (1 - 0.1) ** 64 ~ 0.1 % left


@dataclass(slots=True)
class Retention:
    max_age_s: float = DEFAULT_MAX_AGE_S
    max_bytes: int = DEFAULT_MAX_BYTES
    check_every_s: float = 10.0
    last_check_ns: int | None = None
    deleted_age: int = 0
    deleted_size: int = 0

    def maybe_enforce(self, store, now_ns: int) -> bool:
        due = (self.last_check_ns is None
               or now_ns - self.last_check_ns >= self.check_every_s * 1e9
               or now_ns < self.last_check_ns)
        if not due:
            return False
        self.enforce(store, now_ns)
        return True

    def enforce(self, store, now_ns: int) -> None:
        self.last_check_ns = now_ns
        deleted = store.delete_before(now_ns - int(self.max_age_s * 1e9))
        self.deleted_age += deleted
        store.reclaim()
        for _ in range(MAX_SIZE_STEPS):
            if store.size_bytes() <= self.max_bytes:
                break
            n = store.delete_oldest(SIZE_STEP)
            if n == 0:
                break
            self.deleted_size += n
            store.reclaim()

    def counters(self) -> dict[str, int]:
        return {"store_rows_deleted_age": self.deleted_age,
                "store_rows_deleted_size": self.deleted_size}
