"""The purge lock: one purge at a time, per installation (`locks.hold`: the same rule for
keys, the database's clock and dead owners as every other lock)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from meeting_governance.context import AppContext
from meeting_governance.locks import Lock, hold

LOCK_NAME = "purge"
LOCK_TTL = timedelta(minutes=10)


@contextmanager
def purge_lock(app: AppContext) -> Iterator[Lock]:
    """Hold the purge lock or raise `LockedError` at once (never wait behind another purge)."""
    with hold(app, LOCK_NAME, ttl=LOCK_TTL, busy="another purge is running") as lock:
        yield lock
